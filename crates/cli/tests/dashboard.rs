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
