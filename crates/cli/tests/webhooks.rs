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
async fn a_receiver_that_keeps_failing_costs_four_attempts_and_the_run_still_succeeds() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let north = env.tenant_id("northwindtraders");
    let (url, seen) = receiver(usize::MAX).await;
    write_config(&env, &url, 1);
    let out = run_inspect(&env, &north);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed after 4 attempts (http 500)"), "{stderr}");
    let got = received(&seen);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 500, 500, 500], "{got:?}");
    // The alert is recorded open whatever became of its delivery.
    let open = env.json(&["alerts", "--json", "--open"]);
    assert_eq!(open["alerts"].as_array().map(Vec::len), Some(1), "{open:#}");
}
