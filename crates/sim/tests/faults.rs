//! Injected faults: each one happens on exactly the requests the seeded dice pick (so at the configured
//! rate, reproducibly), and the server is healthy afterwards.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sim::faults::{FaultConfig, FaultDice, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Normal,
    Status(u16),
    Reset,
    Truncated,
    Slow,
}

/// The outcomes the simulator's dice give for `n` requests under `config`, computed independently here.
fn expected(config: &Value, n: usize) -> Vec<Seen> {
    let config: FaultConfig = serde_json::from_value(config.clone()).unwrap();
    let dice = FaultDice::default();
    (0..n)
        .map(|_| match dice.decide(&config).outcome {
            Outcome::Normal => Seen::Normal,
            Outcome::Status(c) => Seen::Status(c),
            Outcome::Reset => Seen::Reset,
            Outcome::Truncate => Seen::Truncated,
            Outcome::SlowBody => Seen::Slow,
        })
        .collect()
}

/// A client without connection reuse, so that a dropped connection affects only its own request.
fn fresh_client(sim: &TestSim) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(sim.ca_pem.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn observe(client: &reqwest::Client, url: &str, token: &str, slow_after: Duration) -> Seen {
    let started = Instant::now();
    let resp = match client.get(url).bearer_auth(token).send().await {
        Ok(r) => r,
        Err(_) => return Seen::Reset,
    };
    let status = resp.status().as_u16();
    let body = resp.bytes().await;
    if status != 200 {
        let body = body.expect("error bodies are whole");
        let v: Value = serde_json::from_slice(&body).expect("Graph error JSON");
        assert!(v["error"]["code"].is_string(), "{v}");
        return Seen::Status(status);
    }
    match body {
        Err(_) => Seen::Truncated,
        Ok(b) if serde_json::from_slice::<Value>(&b).is_err() => Seen::Truncated,
        Ok(_) if started.elapsed() >= slow_after => Seen::Slow,
        Ok(_) => Seen::Normal,
    }
}

async fn run(sim: &TestSim, config: Value, n: usize, slow_after: Duration) -> Vec<Seen> {
    let token = sim.automation_token().await;
    sim.set_faults(config).await;
    let client = fresh_client(sim);
    let url = sim.url("/v1.0/users");
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(observe(&client, &url, &token, slow_after).await);
    }
    seen
}

/// After the faults are cleared the server answers every request normally.
async fn assert_healthy(sim: &TestSim, injected: usize) {
    sim.set_faults(json!({})).await;
    let token = sim.automation_token().await;
    for _ in 0..10 {
        let r = sim.graph(&token, "/v1.0/users").await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json();
    }
    assert_eq!(sim.get("/_sim/health").await.json()["ok"], true);
    assert_eq!(sim.counters().await["faults_injected"], injected);
}

fn count(seen: &[Seen], f: impl Fn(&Seen) -> bool) -> usize {
    seen.iter().filter(|s| f(s)).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_hit_the_seeded_share_of_requests() {
    let sim = TestSim::demo().await;
    let config = json!({"seed": 7, "error_rate": 0.3, "retry_after": 4});
    let seen = run(&sim, config.clone(), 80, Duration::MAX).await;
    assert_eq!(seen, expected(&config, 80));
    let errors = count(&seen, |s| matches!(s, Seen::Status(_)));
    assert!((12..=36).contains(&errors), "{errors} of 80 at a rate of 0.3");
    for code in [500, 502, 503, 504] {
        assert!(seen.contains(&Seen::Status(code)), "{code} never injected: {seen:?}");
    }
    assert_healthy(&sim, errors).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_503_carries_retry_after_and_statuses_can_be_chosen() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    sim.set_faults(json!({"seed": 1, "error_rate": 1.0, "error_statuses": [503], "retry_after": 4})).await;
    let r = sim.graph(&token, "/v1.0/organization").await;
    assert_graph(&r, 503, "ServiceUnavailable");
    assert_eq!(r.header("retry-after"), Some("4"));
    sim.set_faults(json!({"seed": 1, "error_rate": 1.0, "error_statuses": [502]})).await;
    let r = sim.graph(&token, "/v1.0/organization").await;
    assert_graph(&r, 502, "BadGateway");
    assert_eq!(r.header("retry-after"), None);
    assert_healthy(&sim, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_resets_hit_the_seeded_share_of_requests() {
    let sim = TestSim::demo().await;
    let config = json!({"seed": 11, "reset_rate": 0.25});
    let seen = run(&sim, config.clone(), 60, Duration::MAX).await;
    assert_eq!(seen, expected(&config, 60));
    let resets = count(&seen, |s| *s == Seen::Reset);
    assert!((6..=25).contains(&resets), "{resets} of 60 at a rate of 0.25");
    assert_healthy(&sim, resets).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_bodies_hit_the_seeded_share_of_requests() {
    let sim = TestSim::demo().await;
    let config = json!({"seed": 5, "truncate_rate": 0.3});
    let seen = run(&sim, config.clone(), 60, Duration::MAX).await;
    assert_eq!(seen, expected(&config, 60));
    let cut = count(&seen, |s| *s == Seen::Truncated);
    assert!((8..=28).contains(&cut), "{cut} of 60 at a rate of 0.3");
    assert_healthy(&sim, cut).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_hit_the_seeded_share_of_requests() {
    let sim = TestSim::demo().await;
    // The user list is over a dozen 256-byte chunks, so a slow body takes over half a second, far above
    // what a normal answer takes even on a busy machine.
    let config = json!({"seed": 3, "slow_body_rate": 0.3, "slow_body_ms": 40});
    let seen = run(&sim, config.clone(), 24, Duration::from_millis(300)).await;
    assert_eq!(seen, expected(&config, 24));
    let slow = count(&seen, |s| *s == Seen::Slow);
    assert!((3..=13).contains(&slow), "{slow} of 24 at a rate of 0.3");
    assert_healthy(&sim, slow).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_delays_every_request() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    sim.set_faults(json!({"latency_ms": 150})).await;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(sim.graph(&token, "/v1.0/organization").await.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
    }
    sim.set_faults(json!({})).await;
    // Without the fault the fastest of a few requests is well under the latency (the best of three, so
    // that a busy machine does not make this flaky).
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(sim.graph(&token, "/v1.0/organization").await.status, 200);
        fastest = fastest.min(started.elapsed());
    }
    assert!(fastest < Duration::from_millis(150), "{fastest:?}");
    assert_healthy(&sim, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_can_be_limited_to_tenants_and_extended_to_identity() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    let north = sim.refresh(&sim.tenant("northwind"), tokens["refresh_token"].as_str().unwrap(), None).await;
    let north = north.json()["access_token"].as_str().unwrap().to_string();
    let app = sim.automation_token().await;
    sim.set_faults(json!({"seed": 2, "error_rate": 1.0, "tenants": [sim.tenant("northwind")]})).await;
    assert_eq!(sim.graph(&app, "/v1.0/organization").await.status, 200);
    assert!(sim.graph(&north, "/v1.0/organization").await.status >= 500);
    // Identity endpoints are left alone unless asked for.
    assert_eq!(sim.client_credentials(&lakeside, AUTOMATION, AUTOMATION_SECRET).await.status, 200);
    sim.set_faults(json!({"seed": 2, "error_rate": 1.0, "error_statuses": [503], "retry_after": 9, "identity": true}))
        .await;
    let r = sim.client_credentials(&lakeside, AUTOMATION, AUTOMATION_SECRET).await;
    let body = assert_aad(&r, 503, "temporarily_unavailable", 90033);
    assert!(body["error_description"].as_str().unwrap().contains("transient"));
    assert_eq!(r.header("retry-after"), Some("9"));
    // Discovery and the control API are never faulted.
    assert_eq!(sim.get(&format!("/{lakeside}/v2.0/.well-known/openid-configuration")).await.status, 200);
    assert_healthy(&sim, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn next_links_can_point_elsewhere_or_loop() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    sim.set_faults(json!({"foreign_next_link": true})).await;
    let body = sim.graph(&token, "/v1.0/users?$top=5").await.json();
    let next = body["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with("https://graph.attacker.example/v1.0/users?$top=5&$skiptoken="), "{next}");
    sim.set_faults(json!({"looping_next_link": true})).await;
    let first = sim.graph(&token, "/v1.0/users?$top=5").await.json();
    let link = first["@odata.nextLink"].as_str().unwrap().to_string();
    assert_eq!(link, sim.url("/v1.0/users?$top=5"));
    let mut url = link.clone();
    for _ in 0..3 {
        let page = sim.graph(&token, &url).await.json();
        assert_eq!(page["value"], first["value"], "the loop serves the same page");
        url = page["@odata.nextLink"].as_str().unwrap().to_string();
        assert_eq!(url, link);
    }
    // A loop from a later page points back at that page.
    sim.set_faults(json!({})).await;
    let second_url =
        sim.graph(&token, "/v1.0/users?$top=5").await.json()["@odata.nextLink"].as_str().unwrap().to_string();
    sim.set_faults(json!({"looping_next_link": true})).await;
    let second = sim.graph(&token, &second_url).await.json();
    assert_eq!(second["@odata.nextLink"].as_str().unwrap(), second_url);
    sim.set_faults(json!({})).await;
    let normal = sim.graph(&token, "/v1.0/users?$top=5").await.json();
    assert!(normal["@odata.nextLink"].as_str().unwrap().starts_with(sim.base()));
    assert_healthy(&sim, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strings_stay_valid_json() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    sim.set_faults(json!({"long_strings": true})).await;
    let r = sim.graph(&token, "/v1.0/users?$top=3").await;
    assert_eq!(r.status, 200);
    for u in r.json()["value"].as_array().unwrap() {
        assert!(u["displayName"].as_str().unwrap().chars().count() > 40_000);
    }
    let groups = sim.graph(&token, "/v1.0/groups").await.json();
    assert!(groups["value"][0]["displayName"].as_str().unwrap().len() > 40_000);
    sim.set_faults(json!({"unusual_unicode": true})).await;
    let r = sim.graph(&token, "/v1.0/users?$top=3").await;
    assert!(r.text.contains("\\u0000"), "NUL is escaped in JSON");
    for u in r.json()["value"].as_array().unwrap() {
        let name = u["displayName"].as_str().unwrap();
        for c in ['\u{202E}', '\u{200D}', '\u{0000}', '\u{1F469}'] {
            assert!(name.contains(c), "{name:?} lacks {c:?}");
        }
    }
    assert_healthy(&sim, 0).await;
    let r = sim.graph(&token, "/v1.0/users?$top=3").await.json();
    assert!(!r["value"][0]["displayName"].as_str().unwrap().contains('\u{202E}'));
}
