//! The dashboard in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver) against `tenantscope serve` and the simulator. Each journey checks what an engineer
//! reads and does, runs axe-core in the page (serious or critical violations fail the test), and
//! saves screenshots under `target/browser-screenshots/` for review.
//!
//! `scripts/test` installs Chromium, chromedriver and axe-core; without them the test fails and says
//! so, unless `TENANTSCOPE_SKIP_BROWSER=1` asks to skip it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::platform::{inspected, store_of, unscheduled};
use common::{Env, Killed};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sim::WorldSource;

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join("browser-screenshots")
}

fn axe_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("axe-core is missing at {} ({e}): run scripts/test, which installs it", path.display())
    })
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn browser() -> Option<(Killed, Client)> {
    if std::env::var("TENANTSCOPE_SKIP_BROWSER").is_ok_and(|v| v.trim() == "1") {
        eprintln!("TENANTSCOPE_SKIP_BROWSER=1: skipping the browser tests");
        return None;
    }
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromedriver is not installed: run scripts/test (it installs Debian's chromium and chromium-driver), or set TENANTSCOPE_SKIP_BROWSER=1");
    let port = free_port();
    let child = std::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let child = Killed(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        // The simulator's sign-in pages are served over HTTPS with the test's own CA, which this
        // throwaway browser is told to accept; the dashboard itself is plain HTTP on loopback.
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-GB", "--ignore-certificate-errors"]}),
    );
    for _ in 0..100 {
        if let Ok(client) = ClientBuilder::rustls()
            .expect("TLS for the WebDriver connection")
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            return Some((child, client));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on port {port}");
}

/// `tenantscope serve` over plain HTTP on loopback (the browser trusts no test CA).
async fn serve(env: &Env) -> (Killed, String) {
    serve_on(env, 0, &[], &[]).await
}

/// `tenantscope serve` on `port` (0: any), with more arguments and environment variables.
async fn serve_on(env: &Env, port: u16, args: &[&str], vars: &[(&str, &str)]) -> (Killed, String) {
    let ready = env.dir.path().join("serve-ready");
    let _ = std::fs::remove_file(&ready);
    let mut command = env.command();
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--ready-file"])
        .arg(&ready)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in vars {
        command.env(k, v);
    }
    // Killed (and waited for) when dropped, whichever way this returns.
    let child = Killed(command.spawn().expect("serve starts"));
    for _ in 0..300 {
        if let Ok(url) = std::fs::read_to_string(&ready)
            && !url.trim().is_empty()
        {
            return (child, url.trim().to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

/// A one-time sign-in link for a person of `role`.
async fn link(store: &dyn store::Store, base: &str, name: &str, role: server::auth::Role) -> String {
    let (secret, record) = server::ui::new_sign_in_link(name, role, chrono::Utc::now()).expect("link");
    store.token_put(&record).await.expect("token");
    format!("{base}/signin/link?token={secret}")
}

/// Runs axe-core in the page; fails on serious or critical violations.
async fn accessible(client: &Client, axe: &str, page: &str) {
    client.execute(axe, vec![]).await.expect("axe loads");
    let found = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, {resultTypes: ["violations"]})
                 .then(r => done(r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
                   .map(v => v.id + ": " + v.help + " (" + v.nodes.map(n => n.target.join(" ")).join(", ") + ")")))
                 .catch(e => done(["axe failed: " + e]));"#,
            vec![],
        )
        .await
        .expect("axe runs");
    let violations: Vec<String> = serde_json::from_value(found).unwrap_or_default();
    assert!(violations.is_empty(), "{page}: serious or critical accessibility violations:\n{}", violations.join("\n"));
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    let dir = screenshots();
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// The text of the element matched by `css`, waiting for it to appear (after a form posts, the
/// next page takes a moment).
async fn wait_text(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// The text of an element. A page that follows a job live replaces elements as it goes, and reloads
/// itself when the job ends, so an element may be missing for the moment the new page loads, or gone
/// when its text is asked for; it is then looked for again.
async fn text_of(client: &Client, css: &str) -> String {
    let mut attempts = 0;
    loop {
        let element = match client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) if attempts < 20 => {
                attempts += 1;
                eprintln!("{css} not found ({e}); the page may be reloading, looking again");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            // The page as it was, to tell a slow page from a wrong one when this fails.
            Err(e) => panic!(
                "no {css} on {}: {e}\n{}",
                client.current_url().await.map(|u| u.to_string()).unwrap_or_default(),
                client.source().await.unwrap_or_default()
            ),
        };
        match element.text().await {
            Ok(text) => return text,
            Err(e) if attempts < 20 => {
                attempts += 1;
                eprintln!("{css} changed while read ({e}); reading it again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("text of {css}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_reads_a_cause_reruns_with_a_trace_and_a_viewer_changes_nothing() {
    let Some((_driver, client)) = browser().await else { return };
    let axe = axe_source();
    let env = Env::start(WorldSource::Demo).await;
    inspected(&env).await;
    unscheduled(&env, "");
    let (_server, base) = serve(&env).await;
    let store = store_of(&env).await;
    let northwind = env.tenant_id("northwind");
    store
        .set_tenant_label(&store::TenantId::new(&northwind), Some("<img src=x onerror=alert(1)>"))
        .await
        .expect("label");

    // An engineer opens the link and lands on the overview: the causes, each with its fix.
    client.goto(&link(store.as_ref(), &base, "Erin Engineer", server::auth::Role::Engineer).await).await.expect("link");
    assert_eq!(client.current_url().await.expect("url").path(), "/");
    let card = text_of(&client, "#cause-conditional_access_blocked").await;
    assert!(card.contains("Proseware"), "{card}");
    screenshot(&client, "overview").await;
    accessible(&client, &axe, "overview").await;

    // The failed tenants, then one of them: its cause and the numbered fix.
    client.goto(&format!("{base}/tenants?status=failed")).await.expect("tenants");
    screenshot(&client, "tenants-failed").await;
    accessible(&client, &axe, "tenants").await;
    client.find(Locator::LinkText("Proseware, Inc.")).await.expect("Proseware's row").click().await.expect("open");
    assert_eq!(text_of(&client, "#diag").await, "conditional_access_blocked");
    let steps = client.find_all(Locator::Css(".cause ol li")).await.expect("fix steps");
    assert!(steps.len() >= 2, "a numbered fix");
    screenshot(&client, "tenant-failed").await;
    accessible(&client, &axe, "tenant").await;

    // Run with the cache cleared and a debug trace: the job's page follows it live and then
    // offers the trace.
    client
        .find(Locator::XPath("//button[normalize-space()='Run with clear cache + debug']"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("run");
    let mut at = client.current_url().await.expect("url");
    for _ in 0..50 {
        if at.path().starts_with("/jobs/") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        at = client.current_url().await.expect("url");
    }
    assert!(at.path().starts_with("/jobs/"), "{at}: {}", client.source().await.unwrap_or_default());
    screenshot(&client, "job-running").await;
    let trace = client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("a[download]"))
        .await
        .expect("the trace link once the job is done");
    assert!(trace.text().await.expect("text").contains("Download debug trace"));
    assert_eq!(text_of(&client, "#job-status").await, "succeeded");
    screenshot(&client, "job-done").await;
    accessible(&client, &axe, "job").await;

    // A viewer: no button that changes state, a forged post refused, and a hostile label shown as
    // text, not as an image.
    client.delete_all_cookies().await.expect("sign out");
    client.goto(&link(store.as_ref(), &base, "Vic Viewer", server::auth::Role::Viewer).await).await.expect("link");
    client.goto(&format!("{base}/tenants/{northwind}")).await.expect("tenant");
    let buttons = client.find_all(Locator::Css("main button")).await.expect("buttons");
    assert!(buttons.is_empty(), "a viewer sees no button");
    assert!(text_of(&client, "h1").await.contains("<img src=x onerror=alert(1)>"), "the label is text");
    assert!(client.find_all(Locator::Css("main img")).await.expect("images").is_empty(), "no image was made of it");
    let status: Value = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               fetch("/ui/jobs", {method: "POST", body: new URLSearchParams({csrf: "forged", kind: "inspect"})})
                 .then(r => done(r.status)).catch(e => done(String(e)));"#,
            vec![],
        )
        .await
        .expect("forged post");
    assert_eq!(status, json!(403));
    screenshot(&client, "tenant-viewer").await;
    accessible(&client, &axe, "tenant as a viewer").await;
    client.close().await.expect("close the browser");
}

/// Clicks the button whose text is `label`.
async fn press(client: &Client, label: &str) {
    client
        .find(Locator::XPath(&format!("//button[normalize-space()='{label}']")))
        .await
        .unwrap_or_else(|e| panic!("no button {label}: {e}"))
        .click()
        .await
        .expect("click");
}

/// Fills the input matched by `css`, replacing what it held.
async fn fill(client: &Client, css: &str, text: &str) {
    let input = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// Waits until the current path starts with `prefix`.
async fn arrive(client: &Client, prefix: &str) -> url::Url {
    for _ in 0..150 {
        let at = client.current_url().await.expect("url");
        if at.path().starts_with(prefix) {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never reached {prefix}: at {}", client.current_url().await.expect("url"));
}

/// An engineer's daily pages in the browser: the fleet's posture, an alert acknowledged, a
/// dataprint queried with JMESPath, two dataprints compared after a change, the changes and the
/// runs, a baseline saved; each page passes axe-core and is kept as a screenshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_acknowledges_an_alert_queries_and_compares_dataprints() {
    let Some((_driver, client)) = browser().await else { return };
    let axe = axe_source();
    let env = Env::start(WorldSource::Demo).await;
    std::fs::create_dir_all(env.data_dir()).expect("data directory");
    unscheduled(&env, "");
    let config = env.data_dir().join("config.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("\n[[alert]]\nname = \"global_admins_present\"\nkind = \"threshold\"\nmetric = \"global_admins\"\nop = \">=\"\nvalue = 1\nseverity = \"high\"\ndescription = \"A tenant has standing Global Administrators.\"\n");
    std::fs::write(&config, text).expect("config");
    inspected(&env).await;
    let (_server, base) = serve(&env).await;
    let store = store_of(&env).await;
    let northwind = env.tenant_id("northwind");
    client.goto(&link(store.as_ref(), &base, "Erin Engineer", server::auth::Role::Engineer).await).await.expect("link");

    // The overview draws the fleet's posture.
    client.goto(&format!("{base}/#posture")).await.expect("overview");
    assert!(!client.find_all(Locator::Css("#posture + .charts svg")).await.expect("charts").is_empty());
    screenshot(&client, "overview-posture").await;

    // Alerts: acknowledge one, with a reason.
    client.goto(&format!("{base}/alerts")).await.expect("alerts");
    accessible(&client, &axe, "alerts").await;
    fill(&client, "#reason-1", "tracked in the PSA").await;
    client
        .find(Locator::Css("#alert-1 form[action='/ui/alerts/ack'] button"))
        .await
        .expect("the first alert's button")
        .click()
        .await
        .expect("acknowledge");
    assert!(wait_text(&client, ".banner").await.contains("acknowledged"));
    assert!(text_of(&client, "#alert-1").await.contains("acknowledged by Erin Engineer"));
    screenshot(&client, "alerts-acknowledged").await;

    // The explorer: Northwind's dataprint, queried.
    client.goto(&format!("{base}/tenants/{northwind}")).await.expect("tenant");
    client.find(Locator::Css("main a[href$='/dataprints']")).await.expect("explorer link").click().await.expect("open");
    arrive(&client, &format!("/tenants/{northwind}/dataprints")).await;
    client.find(Locator::LinkText("explore")).await.expect("a dataprint").click().await.expect("open");
    arrive(&client, "/dataprints/").await;
    fill(&client, "#query", "values(collections.users)[?accountEnabled == `true`] | length(@)").await;
    press(&client, "Query").await;
    let enabled: u64 = wait_text(&client, "#query-result").await.trim().parse().expect("a count of enabled users");
    assert!(enabled > 0);
    screenshot(&client, "dataprint-query").await;
    accessible(&client, &axe, "dataprint explorer").await;
    fill(&client, "#query", "collections.[").await;
    press(&client, "Query").await;
    assert!(wait_text(&client, "#query-error").await.contains("invalid JMESPath"));

    // A change, a second inspection, and the two dataprints compared.
    env.control(
        "actions",
        json!([{"action": "create_user", "tenant": northwind, "upn": "eve@northwindtraders.onmicrosoft.com", "display_name": "Eve <b>Admin</b>", "roles": ["Global Administrator"]}]),
    )
    .await;
    client.goto(&format!("{base}/tenants/{northwind}")).await.expect("tenant");
    press(&client, "Run now").await;
    arrive(&client, "/jobs/").await;
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath("//span[@id='job-status' and normalize-space()='succeeded']"))
        .await
        .expect("the run succeeds");
    client.goto(&format!("{base}/tenants/{northwind}/dataprints")).await.expect("dataprints");
    press(&client, "Compare").await;
    arrive(&client, "/compare").await;
    let table = wait_text(&client, "table.compare").await;
    assert!(table.contains("Eve <b>Admin</b>"), "the new user, as text: {table}");
    assert!(client.find_all(Locator::Css("table.compare b")).await.expect("bold").is_empty(), "no markup was made");
    screenshot(&client, "dataprints-compared").await;
    accessible(&client, &axe, "compare").await;

    // The timeline, the runs, a baseline, and the settings.
    client.goto(&format!("{base}/changes?tenant={northwind}")).await.expect("changes");
    assert!(text_of(&client, "main table").await.contains("Eve <b>Admin</b>"));
    screenshot(&client, "changes").await;
    accessible(&client, &axe, "changes").await;
    client.goto(&format!("{base}/jobs")).await.expect("runs");
    assert!(text_of(&client, "main table").await.contains("user"), "the engineer's run is there, by trigger");
    screenshot(&client, "runs").await;
    accessible(&client, &axe, "runs").await;
    client.find(Locator::LinkText("per tenant")).await.expect("a run's tenants").click().await.expect("open");
    arrive(&client, "/runs/").await;
    accessible(&client, &axe, "run").await;
    client.goto(&format!("{base}/baselines")).await.expect("baselines");
    client
        .find(Locator::Css("#b-tenant"))
        .await
        .expect("tenant select")
        .select_by_label("Northwind Traders")
        .await
        .expect("choose Northwind");
    press(&client, "Save baseline").await;
    assert!(wait_text(&client, ".banner").await.contains("saved"));
    assert!(text_of(&client, "#baseline-1").await.contains("gold"));
    screenshot(&client, "baselines").await;
    accessible(&client, &axe, "baselines").await;
    client.goto(&format!("{base}/settings")).await.expect("settings");
    accessible(&client, &axe, "settings").await;
    client.goto(&format!("{base}/tenants?sort=-users")).await.expect("tenants");
    accessible(&client, &axe, "tenants with figures").await;
    client.goto(&format!("{base}/tenants/{northwind}")).await.expect("tenant");
    screenshot(&client, "tenant-ok").await;
    accessible(&client, &axe, "tenant with GDAP and figures").await;
    client.close().await.expect("close the browser");
}

/// The demo world with the platform's own app registration in the partner's tenant (redirect to
/// `port`, Megan given the administrator app role), so that operators sign in with Microsoft.
fn world_with_platform_app(port: u16) -> String {
    let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/src/world/demo.toml"))
        .expect("the demo world");
    let app = format!(
        r#"[[apps]]
key = "platform"
client_id = "6a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
name = "tenantscope platform"
home = "lakeside"
redirect_uris = ["http://127.0.0.1:{port}/auth/callback"]
delegated = ["User.Read"]
secrets = [{{ name = "platform", value = "platform-secret-Q7~x", expires = "+300d" }}]
app_roles = [{{ value = "TenantScope.Admin", assigned = ["megan@lakesideit.onmicrosoft.com"] }}]

"#
    );
    // The app goes before the first tenant, so that the tables after it stay where they were; an
    // administrator of the partner consented to it for everyone.
    let consent = "[[tenants.consents]]\napp = \"automation\"\napplication = \"all\"\n";
    assert!(demo.contains(consent), "the demo world's partner consents changed");
    demo.replacen("[[tenants]]", &format!("{app}[[tenants]]"), 1).replacen(
        consent,
        &format!("{consent}\n[[tenants.consents]]\napp = \"platform\"\ndelegated = \"all\"\n"),
        1,
    )
}

/// Walks the simulator's sign-in pages in the browser as `person`: account and password, the
/// authenticator's code, consent; returns when no sign-in form is left.
async fn sign_in_as(client: &Client, person: &sim::signin::Person, last_code: &mut Option<String>) {
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if !client.find_all(Locator::Css("#login-form")).await.expect("forms").is_empty() {
            fill(client, "#login-form input[name=login]", &person.upn).await;
            fill(client, "#login-form input[name=passwd]", &person.password).await;
            press(client, "Sign in").await;
        } else if !client.find_all(Locator::Css("#mfa-form")).await.expect("forms").is_empty() {
            // A code is accepted once: wait for the next one when this one was used.
            let secret = person.totp_secret.as_deref().expect("an authenticator");
            let mut code = sim::signin::totp_now(secret).expect("a code");
            while Some(&code) == last_code.as_ref() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                code = sim::signin::totp_now(secret).expect("a code");
            }
            fill(client, "#mfa-form input[name=otc]", &code).await;
            *last_code = Some(code);
            press(client, "Verify").await;
        } else if !client.find_all(Locator::Css("#consent-form")).await.expect("forms").is_empty() {
            press(client, "Accept").await;
        } else {
            return;
        }
    }
    panic!("the sign-in did not end: {}", client.source().await.unwrap_or_default());
}

/// A newcomer's platform from empty, in the browser: an operator signs in with Microsoft through
/// the simulator's pages, connects the partner with MFA from the partner page, starts the first
/// inspection and watches its progress bar move, then reads the causes on the overview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_connects_the_partner_and_watches_the_first_run() {
    let Some((_driver, client)) = browser().await else { return };
    let axe = axe_source();
    let port = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let world = dir.path().join("world.toml");
    std::fs::write(&world, world_with_platform_app(port)).expect("world");
    let env = Env::start(WorldSource::File(world)).await;
    std::fs::create_dir_all(env.data_dir()).expect("data directory");
    unscheduled(&env, "");
    let config = env.data_dir().join("config.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        r#"
[server.access.oidc]
tenant = "lakesideit.onmicrosoft.com"
client_id = "6a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
client_secret_env = "TS_TEST_OIDC_SECRET"
app_roles = { "TenantScope.Admin" = "admin" }
"#,
    );
    std::fs::write(&config, text).expect("config");
    let (_server, base) =
        serve_on(&env, port, &["--client-id", common::DEMO_CLIENT], &[("TS_TEST_OIDC_SECRET", "platform-secret-Q7~x")])
            .await;
    let megan = env.person(common::MEGAN);
    let mut last_code = None;

    // Signing in with Microsoft: the simulator's pages, then the dashboard as Megan, an admin.
    client.goto(&base).await.expect("dashboard");
    arrive(&client, "/signin").await;
    screenshot(&client, "signin").await;
    accessible(&client, &axe, "sign-in").await;
    client.find(Locator::LinkText("Sign in with Microsoft")).await.expect("the button").click().await.expect("go");
    sign_in_as(&client, &megan, &mut last_code).await;
    let at = client.current_url().await.expect("url");
    assert_eq!(at.path(), "/", "{at}: {}", client.source().await.unwrap_or_default());
    let who = text_of(&client, ".who").await;
    assert!(who.contains(common::MEGAN), "{who}");
    assert!(text_of(&client, ".who .badge").await.contains("admin"));
    // Nothing is known yet: the empty state says what to do.
    assert!(text_of(&client, "main .banner").await.contains("Connect the partner"));
    screenshot(&client, "empty").await;

    // The partner connection: Microsoft's device code, typed on the simulator's page with MFA.
    client.goto(&format!("{base}/partner")).await.expect("partner");
    press(&client, "Open Microsoft Sign-In").await;
    if client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#partner-pending")).await.is_err() {
        panic!("no device code on the partner page: {}", client.source().await.unwrap_or_default());
    }
    let pending = text_of(&client, "#partner-pending").await;
    let code = client.find(Locator::Css("#partner-pending code")).await.expect("code").text().await.expect("text");
    let verification = client
        .find(Locator::Css("#partner-pending a"))
        .await
        .expect("link")
        .attr("href")
        .await
        .expect("href")
        .expect("a verification address");
    assert!(pending.contains(&code), "{pending}");
    screenshot(&client, "partner-code").await;
    client.goto(&verification).await.expect("device login");
    fill(&client, "#device-form input[name=code]", &code).await;
    press(&client, "Next").await;
    sign_in_as(&client, &megan, &mut last_code).await;
    client.goto(&format!("{base}/partner")).await.expect("partner");
    // The page looks again by itself until the sign-in has ended: the server polls the token
    // endpoint at the interval Microsoft gives, and with three browsers, three servers and their
    // clouds sharing two cores the first poll that finds the approval can come well after it.
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath("//span[normalize-space()='MFA claim present']"))
        .await
        .expect("the partner is connected with MFA");
    assert!(text_of(&client, "main").await.to_lowercase().contains(common::MEGAN));
    screenshot(&client, "partner-connected").await;
    accessible(&client, &axe, "partner").await;

    // The first run, slowed so that its progress can be watched.
    env.control_with(reqwest::Method::PUT, "faults", json!({"latency_ms": 120})).await;
    client.goto(&format!("{base}/jobs")).await.expect("runs");
    press(&client, "Inspect every tenant now").await;
    arrive(&client, "/jobs/").await;
    let mut moved = false;
    for _ in 0..600 {
        let status = text_of(&client, "#job-status").await;
        let done = client
            .execute("const p = document.getElementById('job-progress'); return p ? p.value : 0;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        if status == "running" && done > 0.0 && !moved {
            moved = true;
            screenshot(&client, "first-run-progress").await;
            accessible(&client, &axe, "a running job").await;
        }
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the progress bar moved while the run ran");
    assert_eq!(text_of(&client, "#job-status").await, "succeeded");
    env.control_with(reqwest::Method::PUT, "faults", json!({})).await;
    client.goto(&base).await.expect("overview");
    assert!(text_of(&client, "#cause-gdap_missing").await.contains("Alpine Ski House"));
    screenshot(&client, "overview-after-first-run").await;
    client.close().await.expect("close the browser");
}
