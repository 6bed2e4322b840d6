//! Graph GETs per second with keep-alive: a small object (one user, default properties) and a page of
//! 999 users, from 16 and 64 concurrent clients, against a generated world whose customers have 1,000
//! users each. Throttling is switched off through the control API, since the point is the simulator's
//! own speed (Graph's limits would cap one app and tenant at 3,500 to 8,000 resource units per 10 s).
//!
//! Target: at least 10,000 small GETs per second on a 2-core machine. Run with
//! `cargo bench -p sim --bench graph`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Server, load, ok, run_length, serve_if_child};

fn main() {
    serve_if_child();
    if !support::benchmarking() {
        println!("benchmark skipped: run it with cargo bench -p sim");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let server = Server::start("generate:customers=3,users=1000..1000,seed=7,broken=0");
        server.control(reqwest::Method::PUT, "/_sim/throttle", json!({"enabled": false})).await;
        let partner = server.ready.tenants.iter().find(|t| t.role == "partner").expect("partner").id.clone();
        let customer = server.ready.tenants.iter().find(|t| t.role == "customer").expect("customer").id.clone();
        let app = server.ready.apps[0].client_id.clone();
        let tokens = server.device_code(&partner, &app, "admin@generatedmsp.onmicrosoft.com").await;
        // The partner admin's refresh token redeemed at a customer of 1,000 users.
        let at_customer: serde_json::Value = server
            .client()
            .post(server.url(&format!("/{customer}/oauth2/v2.0/token")))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", app.as_str()),
                ("refresh_token", tokens["refresh_token"].as_str().expect("refresh token")),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .expect("refresh")
            .json()
            .await
            .expect("token JSON");
        let token = at_customer["access_token"].as_str().expect("customer token").to_string();
        let page: serde_json::Value = server
            .client()
            .get(server.url("/v1.0/users?$top=999"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("users")
            .json()
            .await
            .expect("users JSON");
        let users = page["value"].as_array().expect("users");
        assert_eq!(users.len(), 999);
        let one = users[0]["id"].as_str().expect("id").to_string();
        let warmup = Duration::from_secs(1);
        let mut reports = Vec::new();
        for clients in [16, 64] {
            let (url, t) = (server.url(&format!("/v1.0/users/{one}")), token.clone());
            reports.push(
                load(&server, "GET one user", clients, warmup, run_length(), move |http, _| {
                    let (url, t) = (url.clone(), t.clone());
                    async move { ok(http.get(url).bearer_auth(t).send().await).await }
                })
                .await,
            );
            let (url, t) = (server.url("/v1.0/users?$top=999"), token.clone());
            reports.push(
                load(&server, "GET 999-user page", clients, warmup, run_length(), move |http, _| {
                    let (url, t) = (url.clone(), t.clone());
                    async move { ok(http.get(url).bearer_auth(t).send().await).await }
                })
                .await,
            );
        }
        println!("Graph GETs, simulator in a separate process, one keep-alive HTTPS connection per client");
        for r in &reports {
            r.print();
            assert_eq!(r.failures, 0, "{}: failures", r.name);
        }
        let small =
            reports.iter().filter(|r| r.name == "GET one user").map(|r| r.per_second()).fold(f64::MAX, f64::min);
        println!(
            "slowest small-GET rate {small:.0}/s (target 10000/s): {}",
            if small >= 10_000.0 { "met" } else { "MISSED" }
        );
    });
}
