//! Alerts delivered by the binary to a local webhook receiver: the signature, the retry after a
//! failed delivery, deduplication while the alert stays open, and the resolution.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, MEGAN};
use serde_json::Value;
use sim::WorldSource;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const SECRET: &str = "whsec-test-7d1f0c";

/// One request the receiver got, and the status it answered with.
#[derive(Debug, Clone)]
struct Received {
    signature: Option<String>,
    event: Option<String>,
    body: Vec<u8>,
    status: u16,
}

/// A webhook receiver on loopback: it answers the first `failures` requests with 500, the rest with
/// 200, and keeps every request. Plain HTTP/1.1, one request per connection.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks/tenantscope", listener.local_addr().expect("address"));
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).await.is_err() || !line.starts_with("POST /hooks/tenantscope ") {
                    return;
                }
                let (mut length, mut signature, mut event) = (0usize, None, None);
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.trim_end().split_once(':') {
                        let value = value.trim().to_owned();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.parse().unwrap_or(0),
                            "x-tenantscope-signature" => signature = Some(value),
                            "x-tenantscope-event" => event = Some(value),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                let status = {
                    let mut log = log.lock().expect("log");
                    let status = if log.len() < failures { 500 } else { 200 };
                    log.push(Received { signature, event, body, status });
                    status
                };
                let reason = if status == 200 { "OK" } else { "Internal Server Error" };
                let response = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = reader.get_mut().write_all(response.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

fn write_config(env: &Env, url: &str, threshold: u32) {
    let config = format!(
        r#"
[[alert]]
name = "global_admins_present"
kind = "threshold"
metric = "global_admins"
op = ">="
value = {threshold}
severity = "high"

[[webhook]]
url = "{url}"
secret_env = "HOOK_SECRET"
"#
    );
    std::fs::write(env.data_dir().join("config.toml"), config).expect("config written");
}

/// Runs `inspect` of one tenant with the webhook's secret in the environment.
fn run_inspect(env: &Env, tenant: &str) -> std::process::Output {
    env.command()
        .args(["inspect", "--json", "--tenant", tenant])
        .env("HOOK_SECRET", SECRET)
        .output()
        .expect("inspect runs")
}

fn alerts_retry(env: &Env) -> std::process::Output {
    env.command().args(["alerts", "retry"]).env("HOOK_SECRET", SECRET).output().expect("retry runs")
}

fn inspect(env: &Env, tenant: &str) -> Value {
    let out = run_inspect(env, tenant);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("inspect prints JSON")
}

fn received(seen: &Arc<Mutex<Vec<Received>>>) -> Vec<Received> {
    seen.lock().expect("log").clone()
}

/// Checks a request's signature with the receiver's secret, and that another secret fails.
fn check_signature(r: &Received) -> Value {
    let header = r.signature.as_deref().expect("signature header");
    let now = chrono::Utc::now();
    history::verify_signature(header, &r.body, SECRET.as_bytes(), now, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("signature {header} does not verify: {e}"));
    assert!(history::verify_signature(header, &r.body, b"another secret", now, Duration::from_secs(300)).is_err());
    let mut tampered = r.body.clone();
    tampered.push(b' ');
    assert!(history::verify_signature(header, &tampered, SECRET.as_bytes(), now, Duration::from_secs(300)).is_err());
    serde_json::from_slice(&r.body).expect("body is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_webhook_signed_once_with_a_retry_and_then_resolve() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let north = env.tenant_id("northwindtraders");
    let (url, seen) = receiver(1).await;
    write_config(&env, &url, 1);

    // The alert opens: the first delivery fails, the retry succeeds.
    let report = inspect(&env, &north);
    assert_eq!(report["tenants"][0]["status"], "ok", "{report:#}");
    let got = received(&seen);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 200], "{got:?}");
    let bodies: Vec<Value> = got.iter().map(check_signature).collect();
    for (r, body) in got.iter().zip(&bodies) {
        assert_eq!(r.event.as_deref(), Some("alert.opened"));
        assert_eq!(body["type"], "alert.opened");
        assert_eq!(body["alert"]["rule"], "global_admins_present");
        assert_eq!(body["tenant"]["id"], north.as_str());
        assert_eq!(body["metric"]["name"], "global_admins");
        assert!(body["metric"]["value"].as_u64().is_some_and(|n| n >= 1), "{body:#}");
    }
    // A retry is the same alert, signed again at its own time.
    assert_eq!(bodies[0]["id"], bodies[1]["id"]);
    let id = bodies[1]["id"].clone();
    let open = env.json(&["alerts", "--json", "--open"]);
    let alerts = open["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{open:#}");

    // Still over the threshold: the alert stays open and is not sent again.
    inspect(&env, &north);
    assert_eq!(received(&seen).len(), 2, "{:?}", received(&seen));
    let open = env.json(&["alerts", "--json", "--open"]);
    assert_eq!(open["alerts"].as_array().map(Vec::len), Some(1), "{open:#}");

    // The condition clears: the resolution is sent once, with the same id.
    write_config(&env, &url, 1000);
    inspect(&env, &north);
    let got = received(&seen);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].status, 200);
    assert_eq!(got[2].event.as_deref(), Some("alert.resolved"));
    let body = check_signature(&got[2]);
    assert_eq!(body["type"], "alert.resolved");
    assert_eq!(body["id"], id);
    assert!(body["resolved_at"].is_string(), "{body:#}");
    let open = env.json(&["alerts", "--json", "--open"]);
    assert_eq!(open["alerts"].as_array().map(Vec::len), Some(0), "{open:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_stays_queued_and_is_delivered_later_exactly_once() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let north = env.tenant_id("northwindtraders");
    // The receiver fails its first four requests: the run's quick attempts.
    let (url, seen) = receiver(4).await;
    write_config(&env, &url, 1);
    let out = run_inspect(&env, &north);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed (http 500); it stays queued for the next run"), "{stderr}");
    let got = received(&seen);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 500, 500, 500], "{got:?}");
    // The alert is recorded open whatever became of its delivery, and its notification waits.
    let open = env.json(&["alerts", "--json", "--open"]);
    assert_eq!(open["alerts"].as_array().map(Vec::len), Some(1), "{open:#}");
    let outbox = env.json(&["alerts", "outbox", "--json"]);
    assert_eq!(outbox["outbox"][0]["status"], "pending", "{outbox:#}");
    assert_eq!(outbox["outbox"][0]["attempts"], 4);
    // A later run sends nothing new before the retry is due; `alerts retry` sends it now, once.
    run_inspect(&env, &north);
    assert_eq!(received(&seen).len(), 4);
    let retry = alerts_retry(&env);
    assert!(retry.status.success(), "{}", String::from_utf8_lossy(&retry.stderr));
    let got = received(&seen);
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 500, 500, 200],
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    assert_eq!(env.json(&["alerts", "outbox", "--json"])["outbox"][0]["status"], "delivered");
    alerts_retry(&env);
    assert_eq!(received(&seen).len(), 5, "never twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_signing_secret_delays_delivery_without_losing_it() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let north = env.tenant_id("northwindtraders");
    let (url, seen) = receiver(0).await;
    write_config(&env, &url, 1);
    let out = env
        .command()
        .args(["inspect", "--json", "--tenant", &north])
        .env_remove("HOOK_SECRET")
        .output()
        .expect("inspect");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not set"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(received(&seen).is_empty());
    let retry = env.command().args(["alerts", "retry"]).env("HOOK_SECRET", SECRET).output().expect("retry");
    assert!(retry.status.success(), "{}", String::from_utf8_lossy(&retry.stderr));
    let got = received(&seen);
    assert_eq!(got.len(), 1, "{got:?}");
    check_signature(&got[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_acknowledged_and_muted_with_who_and_when() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let north = env.tenant_id("northwindtraders");
    let (url, seen) = receiver(0).await;
    write_config(&env, &url, 1);
    run_inspect(&env, &north);
    let open = env.json(&["alerts", "--json", "--open"]);
    let id = open["alerts"][0]["id"].as_str().expect("id").to_string();
    let ack = env.run(&["alerts", "ack", &id[..8], "--reason", "known admin"]);
    assert!(ack.status.success(), "{}", String::from_utf8_lossy(&ack.stderr));
    let after = env.json(&["alerts", "--json"]);
    let a = &after["alerts"][0];
    assert_eq!(a["acknowledged"]["by"], MEGAN, "{a:#}");
    assert_eq!(a["acknowledged"]["reason"], "known admin");
    let text = String::from_utf8_lossy(&env.run(&["alerts"]).stdout).to_string();
    assert!(text.contains(&format!("acknowledged by {MEGAN}")), "{text}");
    // Muted: the rule's next alert for the tenant is recorded, not sent.
    let mute = env.run(&[
        "alerts",
        "mute",
        "--tenant",
        "Northwind Traders",
        "--rule",
        "global_admins_present",
        "--until",
        "2099-01-01",
        "--reason",
        "migration",
    ]);
    assert!(mute.status.success(), "{}", String::from_utf8_lossy(&mute.stderr));
    let sent = received(&seen).len();
    write_config(&env, &url, 1000);
    run_inspect(&env, &north);
    assert_eq!(received(&seen).len(), sent, "a muted rule's transitions are not sent");
    let text = String::from_utf8_lossy(&env.run(&["alerts"]).stdout).to_string();
    assert!(text.contains("Muted rules:") && text.contains("global_admins_present"), "{text}");
}
