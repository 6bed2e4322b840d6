//! The binary, end to end, against the simulator over HTTPS: sign-ins, inspections with their
//! diagnoses, doctor, explain, reports, history, and what must never leak.

mod common;

use std::collections::BTreeMap;

use common::{DEMO_CLIENT, Env, MEGAN, files};
use serde_json::{Value, json};
use sim::WorldSource;

/// Signs in the demo's partner, two direct admins and an app credential, then lets the tenants change
/// and two hours pass, as the demo does.
async fn demo_setup(env: &Env) {
    let text = env.login(MEGAN, &[]).await;
    assert!(text.contains("with MFA"), "{text}");
    env.login("it-admin@adatumcorp.onmicrosoft.com", &["--direct", "--tenant", "adatumcorp.onmicrosoft.com"]).await;
    env.login(
        "it-admin@fabrikamresidences.onmicrosoft.com",
        &["--direct", "--tenant", "fabrikamresidences.onmicrosoft.com"],
    )
    .await;
    let app =
        env.sim.ready.apps.iter().find(|a| a.display_name == "Woodgrove tenantscope reader").expect("app").clone();
    let out = env
        .command()
        .args([
            "tenants",
            "add-app",
            "--tenant",
            "woodgrovebank.onmicrosoft.com",
            "--client-id",
            &app.client_id,
            "--secret-env",
            "WOODGROVE_SECRET",
            "--label",
            "Woodgrove Bank",
        ])
        .env("WOODGROVE_SECRET", app.client_secret.expect("secret"))
        .output()
        .expect("add-app");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.control("scenarios/after-sign-in", json!({})).await;
    env.control("clock", json!({"by": "2h"})).await;
}

fn expected_causes() -> BTreeMap<&'static str, Option<&'static str>> {
    BTreeMap::from([
        ("Northwind Traders", None),
        ("Tailspin Toys", None),
        ("Wide World Importers", None),
        ("Alpine Ski House", Some("gdap_missing")),
        ("Bellows College", Some("gdap_expired")),
        ("Coho Winery", Some("gdap_role_missing")),
        ("Fourth Coffee", Some("user_not_in_tenant")),
        ("Litware Inc.", Some("consent_missing")),
        ("Margie's Travel", Some("permission_missing")),
        ("Proseware, Inc.", Some("conditional_access_blocked")),
        ("Trey Research", Some("mfa_expired")),
        ("woodgrovebank.onmicrosoft.com", Some("client_credential_expired")),
        ("adatumcorp.onmicrosoft.com", Some("refresh_token_revoked")),
        ("fabrikamresidences.onmicrosoft.com", Some("account_disabled")),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_customer_gets_its_cause_from_inspect_and_doctor() {
    let env = Env::start(WorldSource::Demo).await;
    demo_setup(&env).await;
    let report = env.json(&["inspect", "--json"]);
    let tenants = report["tenants"].as_array().expect("tenants");
    let expected = expected_causes();
    assert_eq!(tenants.len(), expected.len(), "{report:#}");
    for t in tenants {
        let name = t["display_name"].as_str().unwrap_or_default();
        let want = expected.get(name).unwrap_or_else(|| panic!("unexpected tenant {name}"));
        match want {
            None => {
                assert_eq!(t["status"], "ok", "{name}: {t:#}");
                assert!(t["diagnosis"].is_null());
            }
            Some(cause) => {
                assert_ne!(t["status"], "ok", "{name}");
                assert_eq!(t["diagnosis"]["cause"], *cause, "{name}: {:#}", t["diagnosis"]);
                assert!(t["diagnosis"]["summary"].as_str().is_some_and(|s| !s.is_empty()));
                assert!(t["diagnosis"]["fix"].as_array().is_some_and(|f| !f.is_empty()));
            }
        }
        for c in t["collectors"].as_array().expect("collectors") {
            assert!(matches!(c["status"].as_str(), Some("ok" | "skipped" | "failed")));
            if c["status"] == "failed" {
                assert!(!c["diagnosis"].is_null(), "{name}/{}: a failed collector carries a diagnosis", c["name"]);
            }
            if c["status"] == "skipped" {
                assert!(!c["reason"].is_null());
            }
        }
    }
    // Licence gaps are skips with the reason, not failures.
    let wide = tenants.iter().find(|t| t["display_name"] == "Wide World Importers").expect("wide world");
    let ca = wide["collectors"].as_array().unwrap().iter().find(|c| c["name"] == "conditionalAccessPolicies").unwrap();
    assert_eq!((ca["status"].as_str(), ca["reason"]["kind"].as_str()), (Some("skipped"), Some("license")));
    // The summary groups tenants by cause.
    assert!(report["causes"].as_array().is_some_and(|c| {
        c.iter().any(|x| x["cause"] == "gdap_missing" && x["tenants"].as_array().is_some_and(|t| t.len() == 1))
    }));
    // Doctor names the same causes.
    for (domain, cause) in [
        ("cohowinery", "gdap_role_missing"),
        ("litwareinc", "consent_missing"),
        ("prosewareinc", "conditional_access_blocked"),
        ("alpineskihouse", "gdap_missing"),
        ("margiestravel", "permission_missing"),
        ("bellowscollege", "gdap_expired"),
    ] {
        let d = env.json(&["doctor", "--tenant", &env.tenant_id(domain), "--json"]);
        assert_eq!(d["cause"], cause, "doctor {domain}: {d:#}");
        assert_eq!(d["checks"].as_array().map(Vec::len), Some(6), "six checks");
    }
    let healthy = env.run(&["doctor", "--tenant", &env.tenant_id("northwindtraders")]);
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stdout));
    // The tenants command shows the last status of each.
    let list = env.json(&["tenants", "--json"]);
    assert!(list["tenants"].as_array().is_some_and(|t| t.len() >= 15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_token_is_found_by_doctor() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let margie = env.tenant_id("margiestravel");
    let first = env.json(&["inspect", "--json", "--tenant", &margie]);
    assert_eq!(first["tenants"][0]["diagnosis"]["cause"], "permission_missing");
    // The customer fixes consent; the cached token still carries the old scopes.
    env.control("scenarios/fix-margie-consent", json!({})).await;
    let d = env.json(&["doctor", "--tenant", &margie, "--json"]);
    assert_eq!(d["cause"], "token_cache_stale", "{d:#}");
    // Doctor refreshed the token, so the next inspection succeeds.
    let again = env.json(&["inspect", "--json", "--tenant", &margie, "--full"]);
    assert_eq!(again["tenants"][0]["status"], "ok", "{again:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_without_mfa_is_named() {
    let env = Env::start(WorldSource::Demo).await;
    let text = env.login("legacy-sync@lakesideit.onmicrosoft.com", &[]).await;
    assert!(text.contains("no MFA claim"), "login warns: {text}");
    let report = env.json(&["inspect", "--json", "--tenant", &env.tenant_id("northwindtraders")]);
    assert_eq!(report["partner"]["diagnosis"]["cause"], "mfa_claim_missing", "{:#}", report["partner"]["collectors"]);
    assert_eq!(
        report["tenants"][0]["diagnosis"]["cause"], "mfa_claim_missing",
        "{:#}",
        report["tenants"][0]["diagnosis"]
    );
    let d = env.json(&["doctor", "--json"]);
    assert_eq!(d["checks"][0]["status"], "fail");
    assert_eq!(d["cause"], "mfa_claim_missing");
    assert!(report["warnings"].as_array().is_some_and(|w| w.iter().any(|x| x["kind"] == "partner_token_without_mfa")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_reads_changes_only_and_history_sees_them() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let north = env.tenant_id("northwindtraders");
    let first = env.json(&["inspect", "--json", "--tenant", &north]);
    // Conditional Access allows one request per second per tenant, across processes; runs are far
    // more apart than that in use.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = env.json(&["inspect", "--json", "--tenant", &north]);
    let requests = |r: &Value| r["tenants"][0]["requests"].as_u64().unwrap_or(0);
    // The ratio over a whole partner is measured by the 1,000-customer benchmark; one small tenant
    // only shows that the second run reads less.
    assert!(
        requests(&second) * 4 <= requests(&first),
        "first {} second {}: {:#}",
        requests(&first),
        requests(&second),
        second["tenants"][0]["collectors"]
    );
    let modes: Vec<&str> =
        second["tenants"][0]["collectors"].as_array().unwrap().iter().filter_map(|c| c["mode"].as_str()).collect();
    assert!(modes.contains(&"delta") && modes.contains(&"reused"), "{modes:?}");
    // The security-relevant reads and the delta checks of users and groups ride in one batch
    // request; named locations, the second Conditional Access read, follow a second later.
    assert_eq!(requests(&second), 2, "{second:#}");
    env.control("actions", json!([
        {"action": "create_user", "tenant": "northwindtraders.onmicrosoft.com", "upn": "eve@northwindtraders.onmicrosoft.com", "display_name": "Eve Admin", "roles": ["Global Administrator"]},
    ])).await;
    // The delta round that starts in the batch brings the new user.
    let third = env.json(&["inspect", "--json", "--tenant", &north]);
    assert_eq!(third["tenants"][0]["status"], "ok");
    let kinds = |changes: &Value| -> Vec<String> {
        changes["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["event"]["kind"].as_str().map(String::from))
            .collect()
    };
    let after_delta = kinds(&env.json(&["changes", "--json", "--tenant", &north]));
    assert!(after_delta.iter().any(|k| k == "user_added"), "{after_delta:?}");
    // Role assignments are read by every run, so the new global admin was seen without --full.
    let kinds = kinds(&env.json(&["changes", "--json", "--tenant", &north]));
    assert!(kinds.iter().any(|k| k.contains("global_admin")), "{kinds:?}");
    let metrics = env.json(&["metrics", "--json", "--tenant", &north]);
    assert!(metrics["tenants"][0]["metrics"]["global_admins"].as_u64().is_some_and(|n| n >= 2), "{metrics:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_access_assignments_are_reused_within_their_window() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let north = env.tenant_id("northwindtraders");
    let first = env.json(&["inspect", "--json", "--tenant", &north]);
    let second = env.json(&["inspect", "--json", "--tenant", &north]);
    let assignments = |r: &Value| -> Value {
        r["partner"]["collectors"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "accessAssignments"))
            .cloned()
            .unwrap_or_else(|| panic!("no accessAssignments collector: {r:#}"))
    };
    let (a1, a2) = (assignments(&first), assignments(&second));
    assert_eq!((a1["status"].as_str(), a1["mode"].as_str()), (Some("ok"), Some("batch")), "{a1:#}");
    // Read a moment ago: the second run keeps them, with the time they were read.
    assert_eq!((a2["status"].as_str(), a2["mode"].as_str()), (Some("ok"), Some("reused")), "{a2:#}");
    assert_eq!(a1["items"], a2["items"]);
    assert!(a1["items"].as_u64().is_some_and(|n| n > 0), "{a1:#}");
    assert_eq!(a1["collected_at"], a2["collected_at"]);
    // The customer is still reached through the reused assignments.
    assert_eq!(second["tenants"][0]["status"], "ok", "{second:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_pasted_text() {
    let env = Env::start(WorldSource::Demo).await;
    let mut child = env
        .command()
        .args(["explain", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("explain");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(br#"{"error":{"code":"unauthorized","message":"You are not authorized to access the resource.","innerError":{"code":"unauthorizedMissingMfaTokenClaim","message":"The MFA claim was missing in the token."}}}"#).unwrap();
    }
    let out = child.wait_with_output().expect("explain output");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["cause"], "mfa_claim_missing");
    assert_eq!(v["candidates"][0]["cause"], v["cause"]);
    let file = env.dir.path().join("err.txt");
    std::fs::write(&file, "Unable to get Microsoft access_token (SSO auth). Request failed with status code 401 calling https://login.microsoftonline.com/0f3c2a55-1111-4222-8333-444455556666/oauth2/v2.0/token").unwrap();
    let v = env.json(&["explain", "--json", file.to_str().unwrap()]);
    assert!(v["candidates"].as_array().is_some_and(|c| c.len() > 1), "an ambiguous 401 gives ranked candidates");
    assert!(v["distinguish"].as_array().is_some_and(|d| !d.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_permissions_and_secrets() {
    let env = Env::start(WorldSource::Demo).await;
    let login = env.login(MEGAN, &["--debug"]).await;
    let app = env.sim.ready.apps.iter().find(|a| a.display_name == "Woodgrove tenantscope reader").unwrap().clone();
    let secret = app.client_secret.clone().unwrap();
    let out = env
        .command()
        .args([
            "tenants",
            "add-app",
            "--tenant",
            "woodgrovebank.onmicrosoft.com",
            "--client-id",
            &app.client_id,
            "--secret-env",
            "S",
            "--label",
            "Woodgrove Bank",
        ])
        .env("S", &secret)
        .output()
        .unwrap();
    assert!(out.status.success());
    let har = env.dir.path().join("trace.har");
    let inspect = env.command().args(["-vv", "inspect", &format!("--debug={}", har.display())]).output().unwrap();
    let logs =
        format!("{login}{}{}", String::from_utf8_lossy(&inspect.stdout), String::from_utf8_lossy(&inspect.stderr));
    let har_text = std::fs::read_to_string(&har).expect("HAR written");
    let har_json: Value = serde_json::from_str(&har_text).expect("HAR is JSON");
    assert_eq!(har_json["log"]["version"], "1.2");
    assert!(har_json["log"]["entries"].as_array().is_some_and(|e| e.len() > 20));
    // Known secrets of the simulated world: the app secret, the partner's password and authenticator
    // seed; refresh tokens of the simulator start with 1.AXsim, access tokens are JWTs.
    let megan = env.person(MEGAN);
    let mut haystacks = vec![("logs", logs), ("har", har_text)];
    for f in files(&env.data_dir()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        haystacks.push((f.to_str().unwrap_or("").to_string().leak(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    for (name, text) in &haystacks {
        for secret in [
            secret.as_str(),
            megan.password.as_str(),
            megan.totp_secret.as_deref().unwrap_or("-none-"),
            "1.AXsim",
            "eyJ0eXAiOiJKV1Qi",
        ] {
            assert!(!text.contains(secret), "{secret:.12}… appears in {name}");
        }
    }
    let html = env.run(&["report", "--format", "html", "--output", env.dir.path().join("r.html").to_str().unwrap()]);
    assert!(html.status.success());
    let page = std::fs::read_to_string(env.dir.path().join("r.html")).unwrap();
    assert!(page.contains("Woodgrove") && page.contains("client_credential_expired"));
    assert!(
        !page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http://"),
        "self-contained"
    );
    let csv = env.run(&["report", "--format", "csv"]);
    assert!(String::from_utf8_lossy(&csv.stdout).lines().count() >= 15);
    let json_report = env.json(&["report", "--format", "json"]);
    // The partner is reported on its own; the tenant list holds the customers.
    assert!(json_report["partner"]["partner"] == true, "{json_report:#}");
    assert!(json_report["tenants"].as_array().is_some_and(|t| t.len() >= 12), "{json_report:#}");
    let perms = env.json(&["permissions", "--json", "--tenant", &env.tenant_id("margiestravel")]);
    assert!(perms["tenant"]["missing"].as_array().is_some_and(|m| m.iter().any(|x| x == "Policy.Read.All")));
    let claims = env.json(&["token", "--tenant", &env.tenant_id("northwindtraders"), "--json"]);
    assert!(claims["claims"]["amr"].as_array().is_some_and(|a| a.iter().any(|x| x == "mfa")));
    assert!(!claims.to_string().contains("eyJ"), "token --claims never prints the token");
    let _ = DEMO_CLIENT;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_forgets_everything() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    assert!(env.run(&["logout"]).status.success());
    let out = env.run(&["token", "--tenant", &env.tenant_id("northwindtraders")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("login"), "{}", String::from_utf8_lossy(&out.stderr));
}
