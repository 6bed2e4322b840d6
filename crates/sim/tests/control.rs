//! The control API under `/_sim/`: every endpoint, its guard, scenarios, the clock and key rotation.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_needs_the_control_token() {
    let sim = TestSim::demo().await;
    let endpoints = [
        (Method::POST, "/_sim/actions"),
        (Method::GET, "/_sim/scenarios"),
        (Method::POST, "/_sim/scenarios/after-sign-in"),
        (Method::GET, "/_sim/clock"),
        (Method::POST, "/_sim/clock"),
        (Method::GET, "/_sim/counters"),
        (Method::POST, "/_sim/counters/reset"),
        (Method::GET, "/_sim/faults"),
        (Method::PUT, "/_sim/faults"),
        (Method::GET, "/_sim/throttle"),
        (Method::PUT, "/_sim/throttle"),
        (Method::POST, "/_sim/keys/rotate"),
        (Method::POST, "/_sim/delta/expire"),
        (Method::GET, "/_sim/world"),
    ];
    for (method, path) in &endpoints {
        for auth in [None, Some("Bearer wrong-token"), Some("Bearer "), Some(sim.running.ready.control_token.as_str())]
        {
            let mut req = sim.http.request(method.clone(), sim.url(path)).json(&json!({}));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = Resp::read(req.send().await.unwrap()).await;
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}");
            assert!(r.json()["error"].as_str().unwrap().contains("control token"));
        }
    }
    // Nothing changed: the scenario and key rotation above were refused.
    assert_eq!(sim.running.sim.keys.jwks()["keys"].as_array().unwrap().len(), 1);
    assert!(!sim.running.sim.world().user_by_upn(OPS).unwrap().1.per_user_mfa.eq(&sim::world::PerUserMfa::Enforced));
    // Health needs no token.
    let r = sim.get("/_sim/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ok": true}));
}

#[tokio::test(flavor = "multi_thread")]
async fn scenarios_are_listed_and_applied() {
    let sim = TestSim::demo().await;
    let list = sim.control(Method::GET, "/_sim/scenarios", None).await.json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["after-sign-in", "fix-margie-consent"]);
    assert_eq!(list[0]["actions"], 3);
    let r = sim.control(Method::POST, "/_sim/scenarios/after-sign-in", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["applied"], 3);
    let w = sim.running.sim.world();
    assert_eq!(w.user_by_upn(OPS).unwrap().1.per_user_mfa, sim::world::PerUserMfa::Enforced);
    assert!(!w.user_by_upn("it-admin@fabrikamresidences.onmicrosoft.com").unwrap().1.enabled);
    assert_eq!(w.user_by_upn("it-admin@adatumcorp.onmicrosoft.com").unwrap().1.password, "Adatum-Admin-2026-b!");
}

#[tokio::test(flavor = "multi_thread")]
async fn fixing_margies_consent_needs_a_new_token() {
    let sim = TestSim::demo().await;
    let tokens = sim.device_code(&sim.tenant("lakeside"), MEGAN).await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let margie = sim.tenant("margie");
    let old = sim.refresh(&margie, rt, None).await.json()["access_token"].as_str().unwrap().to_string();
    sim.scenario("fix-margie-consent").await;
    // The token minted before the consent change still lacks Policy.Read.All.
    assert_eq!(sim.graph(&old, "/v1.0/identity/conditionalAccess/policies").await.status, 403);
    let new = sim.refresh(&margie, rt, None).await.json()["access_token"].as_str().unwrap().to_string();
    assert!(claims(&new)["scp"].as_str().unwrap().split(' ').any(|s| s == "Policy.Read.All"));
    assert_eq!(sim.graph(&new, "/v1.0/identity/conditionalAccess/policies").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clock_moves_and_reads_back() {
    let sim = TestSim::demo().await;
    let before = sim.control(Method::GET, "/_sim/clock", None).await.json();
    assert_eq!(before["offset_seconds"], 0);
    let r = sim.control(Method::POST, "/_sim/clock", Some(json!({"by": "2h"}))).await.json();
    assert_eq!(r["offset_seconds"], 7200);
    let r = sim.control(Method::POST, "/_sim/clock", Some(json!({"seconds": -3600}))).await.json();
    assert_eq!(r["offset_seconds"], 3600);
    let r = sim.control(Method::POST, "/_sim/clock", Some(json!({"by": "+1d2h30m"}))).await.json();
    assert_eq!(r["offset_seconds"], 3600 + 86_400 + 9000);
    let now: chrono::DateTime<chrono::Utc> = serde_json::from_value(r["now"].clone()).unwrap();
    assert!((now - chrono::Utc::now()).num_seconds() >= 3600 + 86_400 + 8990);
    // Error timestamps follow the simulated clock.
    let t = sim.client_credentials(&sim.tenant("lakeside"), AUTOMATION, "bad").await.json();
    let stamp = chrono::NaiveDateTime::parse_from_str(t["timestamp"].as_str().unwrap(), "%Y-%m-%d %H:%M:%SZ").unwrap();
    assert!((stamp.and_utc() - chrono::Utc::now()).num_hours() >= 26);
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_count_and_reset() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    let _ = sim.client_credentials(&sim.tenant("lakeside"), AUTOMATION, "bad").await;
    for _ in 0..3 {
        sim.graph(&token, "/v1.0/users").await;
    }
    sim.graph("garbage", "/v1.0/users").await;
    let c = sim.counters().await;
    assert_eq!(c["token_requests"], 2);
    assert_eq!(c["token_errors"], 1);
    assert_eq!(c["graph_requests"], 4);
    assert_eq!(c["graph_errors"], 1);
    assert_eq!(c["paths"]["users"], 3);
    assert_eq!(c["tenants"][sim.tenant("lakeside")]["graph_requests"], 3);
    let r = sim.control(Method::POST, "/_sim/counters/reset", None).await;
    assert_eq!(r.status, 200);
    let c = sim.counters().await;
    assert_eq!(c["token_requests"], 0);
    assert_eq!(c["graph_requests"], 0);
    assert_eq!(c["paths"], json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_and_throttle_limits_read_back() {
    let sim = TestSim::demo().await;
    assert_eq!(sim.control(Method::GET, "/_sim/faults", None).await.json()["error_rate"], 0.0);
    let r = sim.control(Method::PUT, "/_sim/faults", Some(json!({"seed": 3, "latency_ms": 5}))).await;
    assert_eq!(r.status, 200);
    let f = sim.control(Method::GET, "/_sim/faults", None).await.json();
    assert_eq!(f["seed"], 3);
    assert_eq!(f["latency_ms"], 5);
    // The same configuration can be set through an action.
    sim.action(json!({"action": "set_faults", "faults": {"seed": 4}})).await;
    assert_eq!(sim.control(Method::GET, "/_sim/faults", None).await.json()["seed"], 4);
    let r = sim.control(Method::PUT, "/_sim/throttle", Some(json!({"small": 12.0}))).await;
    assert_eq!(r.json()["small"], 12.0);
    let l = sim.control(Method::GET, "/_sim/throttle", None).await.json();
    assert_eq!(l["small"], 12.0);
    assert_eq!(l["medium"], 5000.0, "unnamed limits keep their defaults");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_world_summary_lists_tenants_and_relationships() {
    let sim = TestSim::demo().await;
    let w = sim.control(Method::GET, "/_sim/world", None).await.json();
    assert_eq!(w["name"], "demo");
    assert_eq!(w["tenants"].as_array().unwrap().len(), 15);
    let wide =
        w["tenants"].as_array().unwrap().iter().find(|t| t["domain"] == "wideworldimporters.onmicrosoft.com").unwrap();
    assert_eq!(wide["p1"], false);
    assert_eq!(wide["security_defaults"], true);
    let bellows = w["gdap"].as_array().unwrap().iter().find(|g| g["display_name"] == "Bellows read-only").unwrap();
    assert_eq!(bellows["status"], "expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let jwks = |sim: &TestSim| {
        let path = format!("/{lakeside}/discovery/v2.0/keys");
        let url = sim.url(&path);
        let http = sim.http.clone();
        async move { Resp::read(http.get(url).send().await.unwrap()).await.json() }
    };
    let before = jwks(&sim).await;
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let old_kid = before["keys"][0]["kid"].as_str().unwrap().to_string();
    let old = sim.automation_token().await;
    let header = |t: &str| jsonwebtoken::decode_header(t).unwrap();
    assert_eq!(header(&old).kid.as_deref(), Some(old_kid.as_str()));
    let r = sim.control(Method::POST, "/_sim/keys/rotate", None).await;
    assert_eq!(r.status, 200);
    let new_kid = r.json()["active_kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    let after = jwks(&sim).await;
    let kids: Vec<&str> = after["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![new_kid.as_str(), old_kid.as_str()], "the new key first, the old one still published");
    for k in after["keys"].as_array().unwrap() {
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["x5t"], k["kid"]);
        assert_eq!(k["x5c"].as_array().unwrap().len(), 1);
    }
    let new = sim.automation_token().await;
    assert_eq!(header(&new).kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(sim.graph(&old, "/v1.0/organization").await.status, 200, "old tokens keep working");
    assert_eq!(sim.graph(&new, "/v1.0/organization").await.status, 200);
    // Each published key verifies the tokens it signed.
    for (token, kid) in [(&old, &old_kid), (&new, &new_kid)] {
        let jwk = after["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap();
        let key =
            jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
                .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).expect("verifies with the published key");
    }
    // A second rotation retires the first key: tokens it signed stop validating.
    sim.control(Method::POST, "/_sim/keys/rotate", None).await;
    let r = sim.graph(&old, "/v1.0/organization").await;
    assert_graph(&r, 401, "InvalidAuthenticationToken");
    assert_eq!(sim.graph(&new, "/v1.0/organization").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_ca_survive_a_restart_with_the_same_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim::SimConfig::new(dir.path());
    config.control_token = Some("fixed-token".into());
    let first = sim::start(config.clone()).await.unwrap();
    let ca = std::fs::read_to_string(&first.ready.ca_cert).unwrap();
    let kid = first.sim.keys.active().unwrap().kid.clone();
    assert_eq!(first.ready.control_token, "fixed-token");
    first.stop().await;
    let second = sim::start(config).await.unwrap();
    assert_eq!(std::fs::read_to_string(&second.ready.ca_cert).unwrap(), ca);
    assert_eq!(second.sim.keys.active().unwrap().kid, kid);
    let http = client(&ca);
    let r = http.get(format!("{}/_sim/health", second.base_url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    second.stop().await;
}
