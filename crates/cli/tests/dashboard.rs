//! The dashboard served by the real binary over HTTPS, read as a browser reads it: a session
//! cookie, pages, forms with the session's CSRF token, the page's security headers and its assets.
//! (Sessions are put in the store directly here; signing in to get one is `serve.rs`'s test.)

mod common;

use common::platform::{api_token, inspected, start_server, store_of, tls_files, unscheduled};
use common::{Env, MEGAN};
use reqwest::{StatusCode, header};
use sim::WorldSource;

/// A session of `role` for a person called `name`; returns (cookie, CSRF token).
async fn session(store: &dyn store::Store, name: &str, role: &str) -> (String, String) {
    let id = server::auth::random_secret().expect("random");
    let csrf = server::auth::random_secret().expect("random");
    let now = chrono::Utc::now();
    store
        .session_put(&store::SessionRecord {
            id_hash: server::auth::hash_secret(&id),
            subject: format!("oid-{role}"),
            name: name.to_string(),
            role: role.to_string(),
            csrf: csrf.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            last_seen_at: now,
            address: None,
            revoked_at: None,
        })
        .await
        .expect("session");
    (format!("__Host-tenantscope={id}"), csrf)
}

/// The page as a browser shows its text (the entities the templates write, decoded).
fn shown(page: &str) -> String {
    page.replace("&#60;", "<").replace("&#62;", ">").replace("&#38;", "&").replace("&#34;", "\"").replace("&#39;", "'")
}

struct Browser {
    http: reqwest::Client,
    url: String,
    cookie: Option<String>,
}

impl Browser {
    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        let resp = req.send().await.expect("page");
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.text().await.expect("body"))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Option<String>) {
        let mut req = self.http.post(format!("{}{path}", self.url)).form(form);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        let resp = req.send().await.expect("form");
        let location = resp.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
        (resp.status(), location)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_causes_and_fixes_and_runs_a_tenant_for_an_engineer_only() {
    let env = Env::start(WorldSource::Demo).await;
    inspected(&env).await;
    unscheduled(&env, "");
    let (ca, cert, key) = tls_files(env.dir.path());
    let engineer_token = api_token(&env, "engineer", "engineer");
    let server = start_server(&env, &ca, &cert, &key).await;
    let store = store_of(&env).await;
    // An engineer's own label for a customer is data too: markup in it stays text.
    let northwind = env.tenant_id("northwind");
    store
        .set_tenant_label(&store::TenantId::new(&northwind), Some("<img src=x onerror=alert(1)>"))
        .await
        .expect("label");
    let (viewer_cookie, viewer_csrf) = session(store.as_ref(), "Vera <script>alert(1)</script>", "viewer").await;
    let (engineer_cookie, engineer_csrf) = session(store.as_ref(), "Megan Bowen", "engineer").await;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let anonymous = Browser { http: http.clone(), url: server.url.clone(), cookie: None };
    let viewer = Browser { http: http.clone(), url: server.url.clone(), cookie: Some(viewer_cookie) };
    let engineer = Browser { http: http.clone(), url: server.url.clone(), cookie: Some(engineer_cookie) };

    // Without a session, every page sends the browser to sign in, and back afterwards.
    let (status, headers, _) = anonymous.get("/tenants?status=failed").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers.get(header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or_default();
    assert_eq!(location, "/signin?return_to=%2Ftenants%3Fstatus%3Dfailed");
    let (status, _, page) = anonymous.get(location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Sign in"), "{page}");

    // The overview: every failing customer under its cause, with the fix; a strict policy and
    // no inline script.
    let (status, headers, page) = viewer.get("/").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csp = headers.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    for cause in ["gdap_missing", "conditional_access_blocked", "consent_missing"] {
        assert!(page.contains(&format!("id=\"cause-{cause}\"")), "no card for {cause}");
    }
    assert!(!page.contains("<script>") && !page.contains(" style=\"") && !page.contains("onclick"), "inline code");
    assert!(shown(&page).contains("Vera <script>") && !page.contains("Vera <script>"), "the operator's name is text");
    assert!(shown(&page).contains("<img src=x onerror=alert(1)>") && !page.contains("<img src=x"), "the label is text");

    // The tenants page filters and sorts on the server.
    let (_, _, page) = viewer.get("/tenants?status=failed&sort=-name").await;
    assert!(page.contains("badge failed") && !page.contains("badge ok"), "only failed tenants");
    assert!(page.contains("aria-sort=\"descending\""));

    // A failed tenant's page: its cause, the numbered fix, the evidence; a viewer gets no button,
    // and the server refuses the viewer's form anyway.
    let proseware = env.tenant_id("prosewareinc");
    let (_, _, page) = viewer.get(&format!("/tenants/{proseware}")).await;
    assert!(page.contains("<code>conditional_access_blocked</code>") && page.contains("<ol>"), "{page}");
    assert!(page.contains("Evidence"));
    assert!(!page.contains("Run now"), "a viewer sees no run button");
    let (status, _) =
        viewer.post("/ui/jobs", &[("csrf", &viewer_csrf), ("kind", "inspect"), ("tenant", &proseware)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer cannot start a job");

    // An engineer runs it with the cache cleared and a trace: a forged form is refused, the real
    // one queues the job and shows its page, which offers the trace once the job is done.
    let (_, _, page) = engineer.get(&format!("/tenants/{proseware}")).await;
    assert!(page.contains("Run with clear cache + debug"));
    let (status, _) =
        engineer.post("/ui/jobs", &[("csrf", "forged"), ("kind", "inspect"), ("tenant", &proseware)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let form = [
        ("csrf", engineer_csrf.as_str()),
        ("kind", "inspect"),
        ("tenant", &proseware),
        ("clear_cache", "true"),
        ("debug", "true"),
    ];
    let (status, location) = engineer.post("/ui/jobs", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let job_page = location.expect("the job's page");
    let id = job_page.trim_start_matches("/jobs/").to_string();
    let done = server.wait_job(&engineer_token, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!((done["params"]["clear_cache"].as_bool(), done["params"]["debug"].as_bool()), (Some(true), Some(true)));
    let (status, _, page) = engineer.get(&job_page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Download debug trace (HAR)") && page.contains("<progress"), "{page}");
    let (_, _, jobs) = engineer.get("/jobs").await;
    assert!(jobs.contains(&id));

    // The assets: named by their content, cached for a year.
    let css = page.split("href=\"/assets/").nth(1).and_then(|s| s.split('"').next()).expect("stylesheet").to_string();
    let (status, headers, body) = viewer.get(&format!("/assets/{css}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::CACHE_CONTROL).is_some_and(|v| v.to_str().unwrap_or("").contains("immutable")));
    assert!(body.contains(".badge"));
    let (status, _, _) = viewer.get("/assets/tenantscope.0000.css").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The partner connection and the agents, as they are.
    let (_, _, page) = viewer.get("/partner").await;
    assert!(page.contains("MFA claim present") && page.to_lowercase().contains(MEGAN), "{page}");
    assert!(!page.contains("Open Microsoft Sign-In"), "only an admin gets the button");
    let (_, _, page) = viewer.get("/agents").await;
    assert!(page.contains("No agent is enrolled"));

    // Signing out ends the session.
    let (status, _) = viewer.post("/ui/sign-out", &[("csrf", &viewer_csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = viewer.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// The newcomer's first look: `demo --serve` runs the demo, then the platform on its data, and
/// prints a one-time link that opens the dashboard signed in; the link does not work twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_opens_the_dashboard_with_a_one_time_link() {
    use std::io::{BufRead as _, BufReader};
    let env = Env::start(WorldSource::Demo).await;
    let mut child = env
        .command()
        .args(["demo", "--serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo runs");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("/signin/link?token=") {
                let _ = tx.send(line.trim().to_string());
            }
        }
    });
    let link = tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(120)))
        .await
        .expect("join")
        .expect("the demo prints a sign-in link");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let resp = http.get(&link).send().await.expect("link");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let base = link.split("/signin/").next().expect("base").to_string();
    let page = http.get(format!("{base}/")).header(header::COOKIE, &cookie).send().await.expect("overview");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("body");
    assert!(page.contains("id=\"cause-gdap_missing\"") && page.contains("Demo engineer"), "{page}");
    // The link is spent.
    let again = http.get(&link).send().await.expect("link");
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let to = again.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or_default().to_string();
    assert!(to.starts_with("/signin"), "{to}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The first value of a hidden input named `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {name} field")) + marker.len();
    page[start..].split('"').next().unwrap_or_default().to_string()
}

/// A webhook receiver that answers 200 and keeps what it got.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let count = got.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                // Reads the head and as much body as the length says, then answers.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if seen.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                count.lock().expect("log").push(String::from_utf8_lossy(&seen).to_string());
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (url, got)
}

/// The pages an MSP team works in every day: alerts acknowledged and muted, the tenants exported,
/// a dataprint queried and two compared, the changes, the runs, a baseline saved and every
/// tenant's drift, and an administrator's settings (schedule, webhook test, API tokens, audit) —
/// each action refused to a role below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_pages_act_for_the_right_roles_only() {
    let env = Env::start(WorldSource::Demo).await;
    let (hook, received) = receiver().await;
    std::fs::create_dir_all(env.data_dir()).expect("data directory");
    unscheduled(&env, "");
    let config = env.data_dir().join("config.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[[alert]]\nname = \"global_admins_present\"\nkind = \"threshold\"\nmetric = \"global_admins\"\nop = \">=\"\nvalue = 1\nseverity = \"high\"\n\n[[webhook]]\nname = \"ops\"\nurl = \"{hook}\"\n"
    ));
    std::fs::write(&config, text).expect("config");
    inspected(&env).await;
    let (ca, cert, key) = tls_files(env.dir.path());
    let server = start_server(&env, &ca, &cert, &key).await;
    let store = store_of(&env).await;
    let northwind = env.tenant_id("northwind");
    let (viewer_cookie, viewer_csrf) = session(store.as_ref(), "Vera Viewer", "viewer").await;
    let (engineer_cookie, csrf) = session(store.as_ref(), "Megan Bowen", "engineer").await;
    let (admin_cookie, admin_csrf) = session(store.as_ref(), "Ada Admin", "admin").await;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let viewer = Browser { http: http.clone(), url: server.url.clone(), cookie: Some(viewer_cookie) };
    let engineer = Browser { http: http.clone(), url: server.url.clone(), cookie: Some(engineer_cookie) };
    let admin = Browser { http: http.clone(), url: server.url.clone(), cookie: Some(admin_cookie) };

    // The overview draws the fleet's posture as SVG.
    let (_, _, page) = engineer.get("/").await;
    assert!(page.contains("id=\"posture\"") && page.contains("<svg role=\"img\""), "{page}");

    // Alerts: the rule opened alerts; a viewer sees them without buttons and cannot acknowledge.
    let (status, _, page) = viewer.get("/alerts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("global_admins_present") && !page.contains("Acknowledge</button>"), "{page}");
    let (_, _, page) = engineer.get("/alerts").await;
    let alert = hidden(&page, "key");
    let (status, _) = viewer.post("/ui/alerts/ack", &[("csrf", &viewer_csrf), ("key", &alert)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, to) =
        engineer.post("/ui/alerts/ack", &[("csrf", &csrf), ("key", &alert), ("reason", "tracked in the PSA")]).await;
    assert_eq!((status, to.as_deref()), (StatusCode::SEE_OTHER, Some("/alerts?notice=acknowledged")));
    let (_, _, page) = engineer.get("/alerts?notice=acknowledged").await;
    assert!(page.contains("The alert is acknowledged.") && page.contains("acknowledged by Megan Bowen"), "{page}");
    let (status, _) = engineer
        .post(
            "/ui/alerts/mute",
            &[("csrf", &csrf), ("tenant", &northwind), ("rule", "global_admins_present"), ("days", "7")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = engineer.get("/alerts").await;
    let mutes = page.split("<h2>Mutes</h2>").nth(1).unwrap_or_default();
    assert!(mutes.contains("Northwind Traders") && mutes.contains("global_admins_present"), "{mutes}");
    let (status, _) = engineer
        .post(
            "/ui/alerts/mute",
            &[("csrf", &csrf), ("tenant", &northwind), ("rule", "global_admins_present"), ("days", "9999")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a mute of decades is refused");

    // Tags: an engineer tags a tenant, the list filters by tag, a viewer may not, and markup is
    // not a tag.
    let (status, _) =
        viewer.post("/ui/tenants/tags", &[("csrf", &viewer_csrf), ("tenant", &northwind), ("tags", "gold")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, to) =
        engineer.post("/ui/tenants/tags", &[("csrf", &csrf), ("tenant", &northwind), ("tags", "Gold, eu  gold")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to:?}");
    let (status, _) =
        engineer.post("/ui/tenants/tags", &[("csrf", &csrf), ("tenant", &northwind), ("tags", "<b>x</b>")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, page) = engineer.get("/tenants?tag=gold").await;
    assert!(page.contains("1 of ") && page.contains("Northwind Traders"), "{page}");
    let (_, _, page) = engineer.get(&format!("/tenants/{northwind}")).await;
    assert!(page.contains("value=\"eu gold\""), "the tags, sorted, in the form: {page}");

    // The tenants page's figures, and its CSV export with the same filters.
    let (_, _, page) = engineer.get("/tenants?sort=-users").await;
    assert!(page.contains("GDAP days left") && page.contains("aria-sort=\"descending\""), "{page}");
    let resp = http
        .get(format!("{}/tenants.csv?status=failed", server.url))
        .header(header::COOKIE, engineer.cookie.as_deref().unwrap_or_default())
        .send()
        .await
        .expect("csv");
    assert_eq!(resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("text/csv; charset=utf-8"));
    let csv = resp.text().await.expect("csv");
    let mut lines = csv.lines();
    assert!(lines.next().is_some_and(|h| h.starts_with("tenant_id,name,domain")), "{csv}");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.contains(",failed,")), "{csv}");

    // The explorer: a JMESPath query and its result, a bad query and why.
    let (_, _, page) = engineer.get(&format!("/tenants/{northwind}/dataprints")).await;
    let first =
        page.split("href=\"/dataprints/").nth(1).and_then(|s| s.split('"').next()).expect("a dataprint").to_string();
    let (status, _, page) = engineer.get(&format!("/dataprints/{first}?query=length%28collections.users%29")).await;
    assert_eq!(status, StatusCode::OK);
    let users: u64 = page
        .split("<pre id=\"query-result\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("a number of users");
    assert!(users > 0, "{page}");
    let (_, _, page) = engineer.get(&format!("/dataprints/{first}?query=collections.%5B")).await;
    assert!(page.contains("id=\"query-error\"") && page.contains("invalid JMESPath"), "{page}");

    // A change in the tenant, inspected again: two dataprints, compared field by field, and the
    // change on the timeline.
    env.control(
        "actions",
        serde_json::json!([{"action": "create_user", "tenant": northwind, "upn": "eve@northwindtraders.onmicrosoft.com", "display_name": "Eve Admin", "roles": ["Global Administrator"]}]),
    )
    .await;
    let out = env.run(&["inspect", "--tenant", &northwind]);
    assert!(out.status.code().is_some_and(|c| c <= 2), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, _, page) = engineer.get(&format!("/tenants/{northwind}/dataprints")).await;
    assert!(page.contains("<button type=\"submit\">Compare</button>"), "two dataprints can be compared: {page}");
    let (from, to) = (hidden_option(&page, "from"), hidden_option(&page, "to"));
    let (status, _, page) = engineer.get(&format!("/compare?from={from}&to={to}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Eve Admin") && page.contains("differences."), "{page}");
    let (_, _, page) = engineer.get(&format!("/changes?tenant={northwind}")).await;
    assert!(page.contains("Eve Admin"), "{page}");
    let (_, _, page) = engineer.get("/changes?severity=critical&kind=no_such_kind").await;
    assert!(page.contains("No change matches."), "{page}");
    let (_, _, page) = engineer.get(&format!("/tenants/{northwind}")).await;
    assert!(page.contains("GDAP relationships") && page.contains("Eve Admin"), "GDAP and the tenant's changes: {page}");

    // The runs: both command-line runs, each with its tenants.
    let (_, _, page) = engineer.get("/jobs").await;
    assert!(page.contains("command line"), "{page}");
    let run = page.split("href=\"/runs/").nth(1).and_then(|s| s.split('"').next()).expect("a run").to_string();
    let (status, _, page) = engineer.get(&format!("/runs/{run}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Northwind Traders") && page.contains("Graph requests"), "{page}");

    // Doctor from the tenant's page: the job's page lists the six checks, each with its status.
    let (status, to) = engineer.post("/ui/jobs", &[("csrf", &csrf), ("kind", "doctor"), ("tenant", &northwind)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let job = to.expect("the job's page");
    let mut page = String::new();
    for _ in 0..600 {
        page = engineer.get(&job).await.2;
        if page.contains("id=\"job-status\" data-job") && !page.contains(">running<") && !page.contains(">queued<") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let checks =
        page.split("<ol id=\"doctor-checks\"").nth(1).and_then(|s| s.split("</ol>").next()).unwrap_or_default();
    assert_eq!(checks.matches("<li>").count(), 6, "{page}");
    assert!(checks.contains("badge pass"), "{checks}");

    // A baseline: a viewer may not save one; an engineer saves Northwind's settings, Northwind
    // matches them and the drift of another tenant is listed.
    let (status, _) =
        viewer.post("/ui/baselines", &[("csrf", &viewer_csrf), ("tenant", &northwind), ("name", "gold")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        engineer.post("/ui/baselines", &[("csrf", &csrf), ("tenant", &northwind), ("name", "gold")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = engineer.get(&format!("/baselines?name=gold&tenant={northwind}")).await;
    assert!(page.contains("<h2 id=\"baseline-1\">gold</h2>") && page.contains("No drift."), "{page}");
    let (status, _) =
        engineer.post("/ui/baselines", &[("csrf", &csrf), ("tenant", &northwind), ("name", "../x")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Settings: an engineer reads the schedule but gets neither tokens nor the audit log, and may
    // not change anything.
    let (_, _, page) = engineer.get("/settings").await;
    assert!(page.contains("240 minutes") || page.contains("minutes"), "{page}");
    assert!(!page.contains("Create token") && !page.contains("Send test"), "{page}");
    let (status, _) = engineer.post("/ui/settings/schedule", &[("csrf", &csrf), ("every_minutes", "60")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An administrator changes the schedule, tests the webhook, and makes an API token that
    // works until it is revoked.
    let (status, _) = admin.post("/ui/settings/schedule", &[("csrf", &admin_csrf), ("every_minutes", "60")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = admin.get("/settings").await;
    assert!(page.contains("60 minutes") && page.contains("this page or the API"), "{page}");
    let (status, to) = admin.post("/ui/settings/webhook-test", &[("csrf", &admin_csrf), ("name", "ops")]).await;
    assert_eq!((status, to.as_deref()), (StatusCode::SEE_OTHER, Some("/settings?notice=test-sent")));
    let tests = received.lock().expect("log").iter().filter(|r| r.contains("tenantscope_test")).count();
    assert_eq!(tests, 1, "the webhook got the test once");
    let resp = http
        .post(format!("{}/ui/settings/tokens", server.url))
        .header(header::COOKIE, admin.cookie.as_deref().unwrap_or_default())
        .form(&[("csrf", admin_csrf.as_str()), ("name", "psa"), ("role", "viewer"), ("days", "30")])
        .send()
        .await
        .expect("create token");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));
    let page = resp.text().await.expect("page");
    let token =
        page.split("<pre id=\"new-token\">").nth(1).and_then(|s| s.split('<').next()).expect("the token").to_string();
    let me = |token: String| {
        let http = http.clone();
        let url = server.url.clone();
        async move { http.get(format!("{url}/api/v1/me")).bearer_auth(token).send().await.expect("me").status() }
    };
    assert_eq!(me(token.clone()).await, StatusCode::OK);
    let (status, _) = admin
        .post(
            "/ui/settings/tokens",
            &[("csrf", &admin_csrf), ("name", "sign-in link for Mallory"), ("role", "admin"), ("days", "30")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a token may not hide among sign-in links");
    let (_, _, page) = admin.get("/settings").await;
    let id = hidden(&page, "id");
    assert!(page.contains("token.create") && page.contains("webhook.test"), "the audit log: {page}");
    let (status, _) = admin.post("/ui/settings/tokens/revoke", &[("csrf", &admin_csrf), ("id", &id)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(me(token).await, StatusCode::UNAUTHORIZED);

    // An agent is enrolled from the agents page: the token and the command, shown once.
    let (status, _) =
        engineer.post("/ui/agents/enroll", &[("csrf", &csrf), ("name", "dc1"), ("pool", "dc1"), ("hours", "1")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = http
        .post(format!("{}/ui/agents/enroll", server.url))
        .header(header::COOKIE, admin.cookie.as_deref().unwrap_or_default())
        .form(&[("csrf", admin_csrf.as_str()), ("name", "dc1 agent"), ("pool", "dc1"), ("hours", "2")])
        .send()
        .await
        .expect("enroll");
    assert_eq!(resp.status(), StatusCode::OK);
    let page = shown(&resp.text().await.expect("page"));
    let command = page.split("<pre id=\"enroll-command\">").nth(1).and_then(|s| s.split('<').next()).expect("command");
    assert!(
        command.starts_with(&format!("tenantscope agent enroll --server {} --token tse_", server.url))
            && command.ends_with("--name 'dc1 agent'"),
        "{command}"
    );
}

/// The selected option of the select named `name`.
fn hidden_option(page: &str, name: &str) -> String {
    let select = page.split(&format!("<select id=\"{name}\" name=\"{name}\">")).nth(1).expect("the select");
    let select = select.split("</select>").next().unwrap_or_default();
    let selected = select.split("<option ").find(|o| o.contains(" selected")).expect("a selected option");
    selected.split("value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_string()
}
