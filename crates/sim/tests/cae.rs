//! Continuous access evaluation (issue 19): a client that declares the `cp1` capability gets day-long
//! Graph tokens carrying `xms_cc`, which Graph refuses at once with a claims challenge after a session
//! revocation or when the location policy no longer allows the caller's address. Expected answers cite
//! `payloads/graph_claims_challenge_cae.json` (ENTRA `claims-challenge.md` and
//! `app-resilience-continuous-access-evaluation.md`) and `payloads/token_response_client_credentials_recorded.json`.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

const CP1: &str = r#"{"access_token":{"xms_cc":{"values":["CP1"]}}}"#;

/// Megan's Graph token by device code, with or without the `cp1` capability.
async fn megan_token(sim: &TestSim, cp1: bool) -> Value {
    let lakeside = sim.tenant("lakeside");
    let dc = sim.start_device_code(&lakeside, USER_SCOPES).await;
    sim.browser().approve_device_code(dc["user_code"].as_str().unwrap(), &sim.person(MEGAN)).await.unwrap();
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", APP),
        ("device_code", dc["device_code"].as_str().unwrap()),
    ];
    if cp1 {
        form.push(("claims", CP1));
    }
    let r = sim.token(&lakeside, &form).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// Checks a CAE challenge: 401 `InvalidAuthenticationToken` with the CAE code in the message and a
/// `WWW-Authenticate` of the documented shape whose `claims` ask for a token issued after `nbf`.
fn assert_challenge(r: &Resp, code: &str) -> i64 {
    let body = assert_graph(r, 401, "InvalidAuthenticationToken");
    let message =
        format!("Continuous access evaluation resulted in challenge with result: InteractionRequired and code: {code}");
    assert_eq!(body["error"]["message"], message.as_str());
    let www = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(www.starts_with(r#"Bearer realm="", authorization_uri=""#), "{www}");
    assert!(www.contains(r#"error="insufficient_claims""#), "{www}");
    assert!(www.contains(&format!(r#"error_description="{message}""#)), "{www}");
    let encoded = www.split(r#"claims=""#).nth(1).and_then(|s| s.split('"').next()).expect("claims");
    let decoded: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap();
    // The shape of `cae_revocation_example.decoded_claims`.
    assert_eq!(decoded["access_token"]["nbf"]["essential"], true);
    decoded["access_token"]["nbf"]["value"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn capable_clients_get_day_long_tokens_with_xms_cc() {
    let sim = TestSim::demo().await;
    let tokens = megan_token(&sim, true).await;
    // The recorded CP1 answer has `expires_in` 86399.
    assert_eq!(tokens["expires_in"], 86399);
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["xms_cc"], json!(["cp1"]));
    let plain = megan_token(&sim, false).await;
    assert!(plain["expires_in"].as_i64().unwrap() < 2 * 3600);
    assert_eq!(claims(plain["access_token"].as_str().unwrap()).get("xms_cc"), None);
    // App-only tokens too (the recorded answer is a client-credentials one).
    let r = sim
        .token(
            &sim.tenant("lakeside"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", AUTOMATION),
                ("client_secret", AUTOMATION_SECRET),
                ("scope", GRAPH_DEFAULT),
                ("claims", CP1),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["expires_in"], 86399);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_session_is_a_claims_challenge_for_capable_tokens_only() {
    let sim = TestSim::demo().await;
    let cae = megan_token(&sim, true).await["access_token"].as_str().unwrap().to_string();
    let plain = megan_token(&sim, false).await["access_token"].as_str().unwrap().to_string();
    assert_eq!(sim.graph(&cae, "/v1.0/me").await.status, 200);
    sim.advance("1m").await;
    sim.action(json!({"action": "revoke_sessions", "user": MEGAN})).await;
    let r = sim.graph(&cae, "/v1.0/me").await;
    let nbf = assert_challenge(&r, "TokenIssuedBeforeRevocationTimestamp");
    assert!(nbf > claims(&cae)["iat"].as_i64().unwrap());
    // A client without the capability keeps its token until it expires, as Graph does.
    assert_eq!(sim.graph(&plain, "/v1.0/me").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_account_is_a_claims_challenge() {
    let sim = TestSim::demo().await;
    let cae = megan_token(&sim, true).await["access_token"].as_str().unwrap().to_string();
    sim.action(json!({"action": "set_user_enabled", "user": MEGAN, "enabled": false})).await;
    let r = sim.graph(&cae, "/v1.0/me").await;
    assert_challenge(&r, "TokenIssuedBeforeRevocationTimestamp");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_location_no_longer_allowed_is_a_claims_challenge() {
    let sim = TestSim::demo().await;
    let cae = megan_token(&sim, true).await["access_token"].as_str().unwrap().to_string();
    let plain = megan_token(&sim, false).await["access_token"].as_str().unwrap().to_string();
    assert_eq!(sim.graph(&cae, "/v1.0/organization").await.status, 200);
    // Lakeside now blocks sign-ins from outside its office network; the tests call from 127.0.0.1.
    sim.action(json!({"action": "set_ca_policy", "tenant": "lakesideit.onmicrosoft.com", "policy": {
        "name": "Office only", "users": "all", "grant": "block", "outside_locations": ["Lakeside office"]}}))
        .await;
    let r = sim.graph(&cae, "/v1.0/organization").await;
    assert_challenge(&r, "LocationConditionEvaluationSatisfied");
    assert_eq!(sim.graph(&plain, "/v1.0/organization").await.status, 200);
    // A new token is what the challenge asks for, and the policy refuses it: 53003.
    let dc = sim.start_device_code(&sim.tenant("lakeside"), USER_SCOPES).await;
    let err = sim.browser().approve_device_code(dc["user_code"].as_str().unwrap(), &sim.person(MEGAN)).await;
    assert!(err.is_err(), "the sign-in itself is blocked");
}
