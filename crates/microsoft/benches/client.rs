//! The Microsoft client's own costs: a token lookup that the cache answers, and Graph paging throughput
//! against the simulator in a separate process (one tenant of 20,000 users read in pages of 999).
//!
//! Paging is measured twice: with the client's default per-tenant pacing, which is what an inspection
//! gets, and with the pacing lifted (and the simulator's throttling off), which shows what the client
//! itself can parse and stream. Run with `cargo bench -p microsoft --bench client`.

#[path = "../../sim/benches/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use microsoft::graph::{GraphClient, GraphOptions, Target};
use microsoft::http::{Transport, TransportOptions};
use microsoft::{AccountRole, Authenticator, Cloud, Grant, MemoryTokenStore};
use serde_json::json;
use sim::signin::{Browser, Person};
use support::{Server, serve_if_child};

const ADMIN: &str = "admin@generatedmsp.onmicrosoft.com";
const USERS: u64 = 20_000;

fn main() {
    serve_if_child();
    if !support::benchmarking() {
        println!("benchmark skipped: run it with cargo bench -p microsoft");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let server = Server::start(&format!("generate:customers=1,users={USERS}..{USERS},seed=3,broken=0"));
        let cloud = Cloud::from_file(std::path::Path::new(&server.ready.cloud_file)).expect("cloud file");
        let transport = Transport::new(&cloud, TransportOptions::default(), None).expect("transport");
        let app = server.ready.apps[0].client_id.clone();
        let auth = Arc::new(Authenticator::new(cloud, transport, Arc::new(MemoryTokenStore::default()), app));
        let partner = server.ready.tenants.iter().find(|t| t.role == "partner").expect("partner").id.clone();
        let customer = server.ready.tenants.iter().find(|t| t.role == "customer").expect("customer").id.clone();

        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let browser = Browser::new(&server.ready.base_url, &server.ca_pem).expect("browser");
        let user = server.ready.users.iter().find(|u| u.upn == ADMIN).expect("admin");
        let person = Person {
            upn: user.upn.clone(),
            password: user.password.clone(),
            totp_secret: user.totp_secret.clone(),
            accept_consent: true,
        };
        let approver = tokio::spawn(async move {
            let code = rx.await.expect("device code");
            browser.approve_device_code(&code, &person).await.expect("sign-in");
        });
        let mut tx = Some(tx);
        auth.login_device_code(&partner, AccountRole::Partner, |dc| {
            if let Some(tx) = tx.take() {
                let _ = tx.send(dc.user_code.clone());
            }
        })
        .await
        .expect("device-code sign-in");
        approver.await.expect("approver");

        cache_hits(&auth, &customer).await;
        server.control(reqwest::Method::PUT, "/_sim/throttle", json!({"enabled": false})).await;
        let target = Target { tenant: customer.clone(), grant: Grant::Partner };
        paging(&server, auth.clone(), &target, "default pacing (40 requests/s per tenant)", GraphOptions::default())
            .await;
        let unpaced = GraphOptions { directory_units_per_10s: 1_000_000, ..GraphOptions::default() };
        paging(&server, auth, &target, "pacing lifted", unpaced).await;
    });
}

/// Lookups of a token the cache holds, from one task and from eight at once.
async fn cache_hits(auth: &Arc<Authenticator>, tenant: &str) {
    let first = auth.access_token(tenant, &Grant::Partner).await.expect("GDAP token");
    assert!(!first.from_cache);
    const N: u32 = 200_000;
    let started = Instant::now();
    for _ in 0..N {
        let t = auth.access_token(tenant, &Grant::Partner).await.expect("cached token");
        assert!(t.from_cache);
    }
    let one = started.elapsed();
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (auth, tenant) = (auth.clone(), tenant.to_string());
            tokio::spawn(async move {
                for _ in 0..N / 8 {
                    auth.access_token(&tenant, &Grant::Partner).await.expect("cached token");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let eight = started.elapsed();
    println!(
        "cache-hit token lookup: {:.2} µs each from one task ({:.0}/s); {:.0}/s from eight tasks",
        one.as_secs_f64() * 1e6 / f64::from(N),
        f64::from(N) / one.as_secs_f64(),
        f64::from(N) / eight.as_secs_f64()
    );
}

/// Reads every user of the tenant five times over, in pages of 999, and reports the rate.
async fn paging(server: &Server, auth: Arc<Authenticator>, target: &Target, label: &str, options: GraphOptions) {
    let client = GraphClient::new(auth, options);
    let rounds = 5;
    let (cpu_client, cpu_server) = (support::cpu_seconds(std::process::id()), server.cpu_seconds());
    let started = Instant::now();
    let (mut items, mut pages) = (0u64, 0u64);
    let mut slowest = Duration::ZERO;
    for _ in 0..rounds {
        let mut stream = std::pin::pin!(client.pages(target, "users?$top=999", Vec::new()));
        let mut last = Instant::now();
        while let Some(page) = stream.next().await {
            let page = page.expect("page");
            items += page.items.len() as u64;
            pages += 1;
            slowest = slowest.max(last.elapsed());
            last = Instant::now();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(items, USERS * rounds, "every user read in every round");
    println!(
        "Graph paging, {label}: {:.0} users/s, {:.1} pages/s, slowest page {:.0} ms; CPU per page: client {:.2} ms, simulator {:.2} ms",
        items as f64 / elapsed,
        pages as f64 / elapsed,
        slowest.as_secs_f64() * 1e3,
        (support::cpu_seconds(std::process::id()) - cpu_client) * 1e3 / pages as f64,
        (server.cpu_seconds() - cpu_server) * 1e3 / pages as f64,
    );
}
