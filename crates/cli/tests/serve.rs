//! `tenantscope serve` driven as an operator would: the real binary over HTTPS, against the
//! simulator, with API tokens, the scheduler, jobs, their live progress and debug traces, bad
//! requests, the audit log, and a `kill -9` in the middle of a job.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::platform::{CONFIG, Server, api_token, assert_problem, start_server, tls_files};
use common::{Env, MEGAN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim::WorldSource;

/// The demo partner's service account: it signs in without MFA.
const LEGACY_SYNC: &str = "legacy-sync@lakesideit.onmicrosoft.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_schedules_runs_and_answers_operators_on_sqlite() {
    platform(Env::start(WorldSource::Demo).await, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_schedules_runs_and_answers_operators_on_postgres() {
    let Some(url) = test_support::postgres_database("serve_platform").await else { return };
    platform(Env::start_on(WorldSource::Demo, url).await, "postgres").await;
}

async fn platform(env: Env, database: &str) {
    env.login(MEGAN, &[]).await;
    std::fs::write(env.data_dir().join("config.toml"), CONFIG).expect("config");
    let (ca, cert, key) = tls_files(env.dir.path());
    let admin = api_token(&env, "admin", "admin");
    let engineer = api_token(&env, "engineer", "engineer");
    let viewer = api_token(&env, "dashboard", "viewer");
    let server = start_server(&env, &ca, &cert, &key).await;

    // Health needs no sign-in; everything else does, and says how.
    let (status, health) = server.call(Method::GET, "/api/v1/health", None, None).await;
    assert_eq!((status, health["database"].as_str()), (StatusCode::OK, Some(database)), "{health}");
    let (status, body) = server.call(Method::GET, "/api/v1/tenants", None, None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = server.call(Method::GET, "/api/v1/tenants", Some("tsk_forged"), None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    // The authentication scheme is case-insensitive.
    let lower = server
        .http
        .get(format!("{}/api/v1/me", server.url))
        .header("authorization", format!("bearer {viewer}"))
        .send()
        .await
        .expect("me");
    assert_eq!(lower.status(), StatusCode::OK);

    // The scheduler inspects every tenant on its own: a job by `scheduler` succeeds.
    let mut scheduled = None;
    for _ in 0..300 {
        let (_, jobs) = server.call(Method::GET, "/api/v1/jobs?kind=inspect", Some(&viewer), None).await;
        if let Some(job) = jobs["items"].as_array().and_then(|j| j.iter().find(|j| j["created_by"] == "scheduler")) {
            scheduled = Some(job["id"].as_str().expect("id").to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scheduled = scheduled.expect("the scheduler queued an inspection");
    let job = server.wait_job(&viewer, &scheduled).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["result"]["tenants"].as_u64().expect("tenants") >= 3, "{job}");
    let (_, health) = server.call(Method::GET, "/api/v1/health", None, None).await;
    assert_eq!(health["scheduler"], true, "this replica holds the scheduler's lease");
    // The customers that run found are next due an interval after it, not at once: a few more
    // ticks queue nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, jobs) = server.call(Method::GET, "/api/v1/jobs?kind=inspect", Some(&viewer), None).await;
    let by_scheduler =
        jobs["items"].as_array().expect("items").iter().filter(|j| j["created_by"] == "scheduler").count();
    assert_eq!(by_scheduler, 1, "{jobs}");

    // The partner connection: signed in with MFA, and how far GDAP reaches.
    let (status, partner) = server.call(Method::GET, "/api/v1/partner", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{partner}");
    assert_eq!((partner["signed_in"].as_bool(), partner["mfa"].as_bool()), (Some(true), Some(true)), "{partner}");
    assert_eq!(partner["upn"].as_str().map(str::to_lowercase).as_deref(), Some(MEGAN));
    assert!(partner["fix"].is_null(), "{partner}");
    assert!(partner["customers"]["failed"].as_u64().is_some_and(|n| n > 0), "{partner}");

    // An admin re-authenticates the partner connection from the server: a device code to type,
    // then the new sign-in replaces the stored one.
    let (status, body) = server.call(Method::POST, "/api/v1/partner/sign-in", Some(&engineer), Some(json!({}))).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    // A sign-in without MFA (a service account the MFA policy excludes) is stored, and the
    // partner's state says what is wrong with it and how to fix it.
    let outcome = server.partner_sign_in(&env, &admin, LEGACY_SYNC).await;
    assert_eq!((outcome["status"].as_str(), outcome["mfa"].as_bool()), (Some("succeeded"), Some(false)), "{outcome}");
    let (_, partner) = server.call(Method::GET, "/api/v1/partner", Some(&viewer), None).await;
    assert_eq!((partner["signed_in"].as_bool(), partner["mfa"].as_bool()), (Some(true), Some(false)), "{partner}");
    assert!(partner["fix"].as_str().is_some_and(|f| f.contains("MFA")), "{partner}");
    // Re-authenticating with MFA replaces it.
    let outcome = server.partner_sign_in(&env, &admin, MEGAN).await;
    assert_eq!((outcome["status"].as_str(), outcome["mfa"].as_bool()), (Some("succeeded"), Some(true)), "{outcome}");
    let (_, partner) = server.call(Method::GET, "/api/v1/partner", Some(&viewer), None).await;
    assert_eq!((partner["signed_in"].as_bool(), partner["mfa"].as_bool()), (Some(true), Some(true)), "{partner}");
    assert!(partner["fix"].is_null(), "{partner}");

    // Every customer is listed with its state; a broken one with its cause and its summary.
    let (status, page) = server.call(Method::GET, "/api/v1/tenants?sort=status&limit=100", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(page["total"].as_u64(), Some(items.len() as u64));
    assert!(items.iter().all(|t| t["status"].is_string()), "every tenant was inspected: {page}");
    let broken = items.iter().find(|t| t["status"] == "failed").expect("the demo world has a failing customer");
    assert!(broken["cause"].is_string() && broken["summary"].is_string(), "{broken}");
    let (_, failed_only) = server.call(Method::GET, "/api/v1/tenants?status=failed", Some(&viewer), None).await;
    assert!(failed_only["items"].as_array().expect("items").iter().all(|t| t["status"] == "failed"));
    let (_, paged) = server.call(Method::GET, "/api/v1/tenants?limit=1&offset=1", Some(&viewer), None).await;
    assert_eq!(paged["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(paged["next"], "offset=2&limit=1");

    // A tenant's detail: diagnosis with evidence and fix, collectors, GDAP; and its dataprint.
    let north = env.tenant_id("northwindtraders");
    let (status, detail) = server.call(Method::GET, &format!("/api/v1/tenants/{north}"), Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(!detail["collectors"].as_array().expect("collectors").is_empty(), "{detail}");
    let (status, users) = server
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{north}/dataprint?query=length(keys(collections.users))"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{users}");
    assert!(users.as_u64().is_some_and(|n| n > 0), "{users}");
    let (status, body) = server
        .call(Method::GET, &format!("/api/v1/tenants/{north}/dataprint?query=collections.[[["), Some(&viewer), None)
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    // Its history: dataprints, a diff, changes, metrics.
    let (status, prints) =
        server.call(Method::GET, &format!("/api/v1/tenants/{north}/dataprints"), Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{prints}");
    let newest = prints[0]["id"].as_str().expect("a dataprint").to_string();
    let (status, doc) = server.call(Method::GET, &format!("/api/v1/dataprints/{newest}"), Some(&viewer), None).await;
    assert_eq!((status, doc["tenant"]["id"].as_str()), (StatusCode::OK, Some(north.as_str())), "{doc}");
    let (status, same) =
        server.call(Method::GET, &format!("/api/v1/dataprints/{newest}/diff/{newest}"), Some(&viewer), None).await;
    assert_eq!(
        (status, same.as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "a dataprint does not differ from itself: {same}"
    );
    let (status, metrics) =
        server.call(Method::GET, &format!("/api/v1/metrics?tenant={north}"), Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    assert!(metrics.as_array().is_some_and(|m| m.iter().any(|p| p["name"] == "users")), "{metrics}");
    let (status, body) = server.call(Method::GET, "/api/v1/changes?severity=apocalyptic", Some(&viewer), None).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(server.call(Method::GET, "/api/v1/changes?severity=high", Some(&viewer), None).await.0, StatusCode::OK);
    let (status, body) =
        server.call(Method::GET, "/api/v1/baselines/gold/drift?tenant=northwind.example", Some(&viewer), None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server.call(Method::GET, "/api/v1/tenants/no-such-tenant.example", Some(&viewer), None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);

    // Answers carry validators: the same list again is 304 without a body.
    let resp =
        server.http.get(format!("{}/api/v1/tenants", server.url)).bearer_auth(&viewer).send().await.expect("list");
    let etag = resp.headers().get("etag").expect("ETag").to_str().expect("text").to_string();
    assert_eq!(resp.headers().get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
    let again = server
        .http
        .get(format!("{}/api/v1/tenants", server.url))
        .bearer_auth(&viewer)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("list");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // A viewer may not start work; an engineer re-runs one tenant with the cache cleared and a trace.
    let rerun = json!({"kind": "inspect", "params": {"tenants": [north], "clear_cache": true, "debug": true}});
    let (status, body) = server.call(Method::POST, "/api/v1/jobs", Some(&viewer), Some(rerun.clone())).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, job) = server.call(Method::POST, "/api/v1/jobs", Some(&engineer), Some(rerun)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    // Its progress streams as Server-Sent Events until it ends.
    let events = server
        .http
        .get(format!("{}/api/v1/jobs/{id}/events", server.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("events");
    assert_eq!(events.headers().get("content-type").map(|v| v.as_bytes()), Some(&b"text/event-stream"[..]));
    let stream =
        tokio::time::timeout(Duration::from_secs(60), events.text()).await.expect("the stream ends").expect("text");
    assert!(stream.contains("event: progress"), "{stream}");
    assert!(stream.contains("event: end") && stream.contains("succeeded"), "{stream}");
    let job = server.wait_job(&viewer, &id).await;
    assert_eq!(job["result"]["tenants"], 1, "{job}");
    assert!(job["result"]["trace"]["exchanges"].as_u64().is_some_and(|n| n > 0), "{job}");
    // The trace downloads, redacted: no token in it.
    let (status, body) = server.call(Method::GET, &format!("/api/v1/jobs/{id}/trace"), Some(&viewer), None).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let trace = server
        .http
        .get(format!("{}/api/v1/jobs/{id}/trace", server.url))
        .bearer_auth(&engineer)
        .send()
        .await
        .expect("trace");
    assert_eq!(trace.status(), StatusCode::OK);
    let har = trace.text().await.expect("HAR");
    let parsed: Value = serde_json::from_str(&har).expect("HAR is JSON");
    assert!(parsed["log"]["entries"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(!har.contains("eyJ0eX") && !har.contains("eyJhbGci"), "no JWT may reach the trace");

    // Cancelling a finished job is a conflict; an unknown one is not found.
    let (status, body) = server.call(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), Some(&engineer), None).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = server.call(Method::POST, "/api/v1/jobs/nope/cancel", Some(&engineer), None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);

    // Bad requests get problem details with the right status, never a 500.
    let raw = |body: &'static str, ctype: &'static str| {
        server
            .http
            .post(format!("{}/api/v1/jobs", server.url))
            .bearer_auth(&engineer)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let resp = raw("{not json", "application/json").await.expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers().get("content-type").map(|v| v.as_bytes()), Some(&b"application/problem+json"[..]));
    assert_eq!(
        raw(r#"{"kind":"inspect","colour":"red"}"#, "application/json").await.expect("send").status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        raw(r#"{"kind":"inspect"}"#, "text/plain").await.expect("send").status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let (status, body) =
        server.call(Method::POST, "/api/v1/jobs", Some(&engineer), Some(json!({"kind": "reboot"}))).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let huge = format!(r#"{{"kind":"inspect","params":{{"tenants":["{}"]}}}}"#, "x".repeat(200_000));
    let resp = server
        .http
        .post(format!("{}/api/v1/jobs", server.url))
        .bearer_auth(&engineer)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = server.call(Method::GET, "/api/v1/tenants?sort=colour", Some(&viewer), None).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = server.call(Method::GET, "/api/v1/tenants?limit=-1", Some(&viewer), None).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = server.call(Method::GET, "/api/v1/tenants?bogus=1", Some(&viewer), None).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) =
        server.call(Method::POST, "/api/v1/alerts/no-such-alert/ack", Some(&engineer), Some(json!({}))).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);

    // API tokens: created by an admin (shown once), listed without the secret, revoked at once.
    let (status, body) = server
        .call(Method::POST, "/api/v1/tokens", Some(&engineer), Some(json!({"name": "x", "role": "viewer"})))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, created) = server
        .call(Method::POST, "/api/v1/tokens", Some(&admin), Some(json!({"name": "ci", "role": "viewer", "days": 7})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ci = created["token"].as_str().expect("token").to_string();
    assert_eq!(server.call(Method::GET, "/api/v1/runs", Some(&ci), None).await.0, StatusCode::OK);
    let (_, listed) = server.call(Method::GET, "/api/v1/tokens", Some(&admin), None).await;
    assert!(!listed.to_string().contains(&ci), "the list never shows a token");
    let token_id = created["id"].as_str().expect("id");
    assert_eq!(
        server.call(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), Some(&admin), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = server.call(Method::GET, "/api/v1/runs", Some(&ci), None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);

    // The schedule is set for every replica through the API, checked, and reset to the file's.
    let (_, schedule) = server.call(Method::GET, "/api/v1/settings/schedule", Some(&viewer), None).await;
    assert_eq!(
        (schedule["source"].as_str(), schedule["schedule"]["every_minutes"].as_u64()),
        (Some("file"), Some(240)),
        "{schedule}"
    );
    let vip = json!({"every_minutes": 120, "jitter": 0.05, "per_label": {"vip": 30}, "tick_seconds": 1});
    let (status, body) =
        server.call(Method::PUT, "/api/v1/settings/schedule", Some(&engineer), Some(vip.clone())).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) =
        server.call(Method::PUT, "/api/v1/settings/schedule", Some(&admin), Some(json!({"every_minutes": 1}))).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (status, set) = server.call(Method::PUT, "/api/v1/settings/schedule", Some(&admin), Some(vip)).await;
    assert_eq!((status, set["source"].as_str()), (StatusCode::OK, Some("api")), "{set}");
    let (_, schedule) = server.call(Method::GET, "/api/v1/settings/schedule", Some(&viewer), None).await;
    assert_eq!(schedule["schedule"]["per_label"]["vip"], 30, "{schedule}");
    let (_, reset) = server.call(Method::DELETE, "/api/v1/settings/schedule", Some(&admin), None).await;
    assert_eq!(reset["source"], "file", "{reset}");

    // The audit log has every state-changing action, with who did it; only admins read it.
    let (status, body) = server.call(Method::GET, "/api/v1/audit", Some(&engineer), None).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (_, audit) = server.call(Method::GET, "/api/v1/audit?limit=100", Some(&admin), None).await;
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or(""), e["actor"].as_str().unwrap_or("")))
        .collect();
    for expected in [
        "job.create",
        "job.trace.download",
        "token.create",
        "token.revoke",
        "partner.sign_in.start",
        "partner.sign_in.succeeded",
        "settings.schedule.set",
        "settings.schedule.reset",
    ] {
        assert!(actions.iter().any(|(a, _)| *a == expected), "{expected} missing from {actions:?}");
    }
    assert!(actions.iter().any(|(a, who)| *a == "job.create" && who.starts_with("token:engineer")), "{actions:?}");

    // The OpenAPI document describes the API.
    let (status, doc) = server.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    for path in ["/api/v1/tenants", "/api/v1/jobs", "/api/v1/jobs/{id}/events", "/api/v1/audit", "/api/v1/tokens"] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_its_job_and_commits_each_tenant_once_on_sqlite() {
    killed_server_resumes(Env::start(WorldSource::Demo).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_its_job_and_commits_each_tenant_once_on_postgres() {
    let Some(url) = test_support::postgres_database("serve_killed").await else { return };
    killed_server_resumes(Env::start_on(WorldSource::Demo, url).await).await;
}

async fn killed_server_resumes(env: Env) {
    env.login(MEGAN, &[]).await;
    // No scheduler, so that the only job is the one started here.
    std::fs::write(
        env.data_dir().join("config.toml"),
        CONFIG.replace("tick_seconds = 1", "tick_seconds = 1\nenabled = false"),
    )
    .expect("config");
    let (ca, cert, key) = tls_files(env.dir.path());
    let engineer = api_token(&env, "engineer", "engineer");
    // Every Graph answer is slow, so that the job is still running when the server dies.
    env.control_with(Method::PUT, "faults", json!({"latency_ms": 300})).await;
    let mut server = start_server(&env, &ca, &cert, &key).await;
    let (status, job) =
        server.call(Method::POST, "/api/v1/jobs", Some(&engineer), Some(json!({"kind": "inspect"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    // Wait until the job is running and has committed something, then kill the server outright.
    for _ in 0..600 {
        let (_, j) = server.call(Method::GET, &format!("/api/v1/jobs/{id}"), Some(&engineer), None).await;
        if j["status"] == "running" && j["progress"]["done"].as_u64().is_some_and(|d| d >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGKILL: no drain, no goodbye.
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    env.control_with(Method::PUT, "faults", json!({})).await;

    // After a restart the lease expires, the job is claimed again and finishes.
    let server = start_server(&env, &ca, &cert, &key).await;
    let job = server.wait_job(&engineer, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "the second attempt finished the job: {job}");

    // Each tenant has exactly one result for the job, across both attempts' runs.
    let runs = env.json(&["tenants", "--json"]);
    let tenants = runs["tenants"].as_array().map(Vec::len).unwrap_or(0);
    assert!(tenants >= 3, "{runs}");
    let (_, all_runs) = server.call(Method::GET, "/api/v1/runs?limit=10", Some(&engineer), None).await;
    let mut results = 0;
    for run in all_runs.as_array().expect("runs") {
        let (_, detail) = server
            .call(Method::GET, &format!("/api/v1/runs/{}", run["id"].as_str().expect("id")), Some(&engineer), None)
            .await;
        results += detail["tenants"].as_array().map(Vec::len).unwrap_or(0);
    }
    assert_eq!(results, tenants, "every tenant committed once over the job's two runs");
}

/// A world with the MSP's tenant, the platform's app registration (redirect to `port`, app roles
/// assigned to a user and to a group), and people with and without a role.
fn operator_world(port: u16) -> String {
    format!(
        r#"
name = "operators"
seed = 11

[[apps]]
key = "platform"
client_id = "6a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
name = "tenantscope platform"
home = "msp"
redirect_uris = ["https://127.0.0.1:{port}/auth/callback"]
delegated = ["User.Read"]
secrets = [{{ name = "platform", value = "platform-secret-Q7~x", expires = "+300d" }}]
app_roles = [
  {{ value = "TenantScope.Admin", assigned = ["ada@msp.onmicrosoft.com"] }},
  {{ value = "TenantScope.Engineer", assigned = ["group:Engineers"] }},
]

[[tenants]]
key = "msp"
name = "MSP"
domain = "msp.onmicrosoft.com"
kind = "customer"

[[tenants.users]]
upn = "ada"
name = "Ada Admin"
password = "Msp-Ada-Passw0rd!"

[[tenants.users]]
upn = "bob"
name = "Bob <script>alert(1)</script> Engineer"
password = "Msp-Bob-Passw0rd!"
groups = ["Engineers"]

[[tenants.users]]
upn = "carol"
name = "Carol Nobody"
password = "Msp-Carol-Passw0rd!"

[[tenants.groups]]
name = "Engineers"

[[tenants.consents]]
app = "platform"
delegated = "all"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_sign_in_with_microsoft_and_get_the_role_entra_assigns() {
    // The server's port is chosen first: the app registration's redirect URI names it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
    let dir = tempfile::tempdir().expect("dir");
    let world = dir.path().join("operators.toml");
    std::fs::write(&world, operator_world(port)).expect("world");
    let env = Env::start(WorldSource::File(world)).await;
    std::fs::create_dir_all(env.data_dir()).expect("data dir");
    std::fs::write(
        env.data_dir().join("config.toml"),
        r#"
[server.schedule]
enabled = false

[server.access.oidc]
tenant = "msp.onmicrosoft.com"
client_id = "6a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
client_secret_env = "TS_TEST_OIDC_SECRET"
app_roles = { "TenantScope.Admin" = "admin", "TenantScope.Engineer" = "engineer" }
"#,
    )
    .expect("config");
    let (ca, cert, key) = tls_files(env.dir.path());
    let ready = env.dir.path().join("ready-operators");
    let child = env
        .command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--ready-file"])
        .arg(&ready)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("TS_TEST_OIDC_SECRET", "platform-secret-Q7~x")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut server = Server { child, url: format!("https://127.0.0.1:{port}"), http: reqwest::Client::new() };
    for _ in 0..300 {
        if std::fs::read_to_string(&ready).is_ok_and(|t| !t.trim().is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let browser_of_operator = || {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    };

    // Signs `upn` in through the simulator's pages; returns the operator's client and the callback's answer.
    let person = |upn: &str| {
        let password = match upn.split('@').next() {
            Some("ada") => "Msp-Ada-Passw0rd!",
            Some("bob") => "Msp-Bob-Passw0rd!",
            _ => "Msp-Carol-Passw0rd!",
        };
        sim::signin::Person {
            upn: upn.to_string(),
            password: password.to_string(),
            totp_secret: None,
            accept_consent: true,
        }
    };
    let sign_in = |upn: &'static str| {
        let http = browser_of_operator();
        let url = server.url.clone();
        let env = &env;
        async move {
            let start = http.get(format!("{url}/auth/login?return_to=/api/v1/me")).send().await.expect("login");
            assert_eq!(start.status(), StatusCode::SEE_OTHER);
            let authorize = start.headers().get("location").expect("Location").to_str().expect("text").to_string();
            assert!(authorize.contains("code_challenge=") && authorize.contains("nonce="), "{authorize}");
            let outcome = env.browser().complete_authorize(&authorize, &person(upn)).await.expect("sign-in");
            let sim::signin::Outcome::CodeDelivered { redirect } = outcome else { panic!("no code: {outcome:?}") };
            let back = http.get(&redirect).send().await.expect("callback");
            (http, back, redirect)
        }
    };

    // Ada holds the admin app role: she lands where she asked, with a session and its CSRF token.
    let (ada, back, _) = sign_in("ada@msp.onmicrosoft.com").await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "{:?}", back.text().await);
    assert_eq!(back.headers().get("location").map(|v| v.as_bytes()), Some(&b"/api/v1/me"[..]));
    let cookies: Vec<String> =
        back.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("text").to_string()).collect();
    let session = cookies.iter().find(|c| c.starts_with("__Host-tenantscope=")).expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("Secure") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let me: Value = ada.get(format!("{}/api/v1/me", server.url)).send().await.expect("me").json().await.expect("json");
    assert_eq!(me["role"], "admin", "{me}");
    assert!(me["actor"].as_str().is_some_and(|a| a.contains("ada@msp.onmicrosoft.com")), "{me}");
    let csrf = me["csrf"].as_str().expect("CSRF token").to_string();
    // A state-changing request of a session needs its CSRF token.
    let job = json!({"kind": "doctor", "params": {"tenant": "msp.onmicrosoft.com"}});
    let forged = ada.post(format!("{}/api/v1/jobs", server.url)).json(&job).send().await.expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let wrong = ada
        .post(format!("{}/api/v1/jobs", server.url))
        .header("x-csrf-token", "nope")
        .json(&job)
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let ok = ada
        .post(format!("{}/api/v1/jobs", server.url))
        .header("x-csrf-token", &csrf)
        .json(&job)
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), StatusCode::ACCEPTED, "{:?}", ok.text().await);

    // Bob is an engineer through his group; his hostile display name stays data.
    let (bob, back, _) = sign_in("bob@msp.onmicrosoft.com").await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let me: Value = bob.get(format!("{}/api/v1/me", server.url)).send().await.expect("me").json().await.expect("json");
    assert_eq!(me["role"], "engineer", "{me}");
    let audit = bob.get(format!("{}/api/v1/audit", server.url)).send().await.expect("audit");
    assert_eq!(audit.status(), StatusCode::FORBIDDEN, "an engineer does not read the audit log");

    // Carol has no role: she is refused, and the refusal is audited.
    let (_, back, redirect) = sign_in("carol@msp.onmicrosoft.com").await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    // A person reads the refusal as a page of the dashboard.
    let page = back.text().await.expect("page");
    assert!(page.contains("<h1>") && page.contains("no tenantscope role"), "{page}");

    // A callback that is not this browser's sign-in is refused before its code or error is used.
    let stranger = browser_of_operator();
    let replay = stranger.get(&redirect).send().await.expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let forged = ada
        .get(format!("{}/auth/callback?state=forged&error=access_denied&error_description=evil", server.url))
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);

    // Signing out ends the session at once.
    let out = ada
        .post(format!("{}/api/v1/auth/logout", server.url))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        ada.get(format!("{}/api/v1/me", server.url)).send().await.expect("me").status(),
        StatusCode::UNAUTHORIZED
    );

    let admin_token = api_token(&env, "auditor", "admin");
    server.http = browser_of_operator();
    let (_, audit) =
        server.call(Method::GET, "/api/v1/audit?action=session.login.refused", Some(&admin_token), None).await;
    assert!(
        audit["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["actor"].as_str().is_some_and(|a| a.contains("carol")))),
        "{audit}"
    );
    let (_, logins) = server.call(Method::GET, "/api/v1/audit?action=session.login", Some(&admin_token), None).await;
    assert_eq!(logins["items"].as_array().map(Vec::len), Some(2), "{logins}");
}
