//! The dashboard in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver) against `tenantscope serve` and the simulator. Each journey checks what an engineer
//! reads and does, runs axe-core in the page (serious or critical violations fail the test), and
//! saves screenshots under `target/browser-screenshots/` for review.
//!
//! `scripts/test` installs Chromium, chromedriver and axe-core; without them the test fails and says
//! so, unless `TENANTSCOPE_SKIP_BROWSER=1` asks to skip it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::Env;
use common::platform::{inspected, store_of, unscheduled};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sim::WorldSource;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-GB"]}),
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
    let ready = env.dir.path().join("serve-ready");
    // Killed (and waited for) when dropped, whichever way this returns.
    let child = Killed(
        env.command()
            .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
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

async fn text_of(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).text().await.expect("text")
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
