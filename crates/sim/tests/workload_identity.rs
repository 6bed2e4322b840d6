//! Workload identity federation (issue 19): an app trusts an external identity provider through a
//! federated credential (issuer, subject, audience), and a workload presents that provider's token as its
//! client assertion instead of a secret. The simulator plays the provider at `{base}/_idp/{name}`.
//! Expected answers: protocol reference §1.4 (client assertions "cert or federated credential") and §1.6
//! (70021 `unauthorized_client` 401, recorded); the texts of 700211, 700212 and 70025 are those Entra's
//! users quote (for example GitLab's and Azure SDK's troubleshooting guides).

mod common;

use common::*;
use serde_json::{Value, json};

const SUBJECT: &str = "repo:lakeside/inspections:environment:prod";

async fn idp_token(sim: &TestSim, name: &str, body: Value) -> String {
    let r = sim.control(reqwest::Method::POST, &format!("/_sim/idp/{name}/token"), Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["token"].as_str().unwrap().to_string()
}

async fn trust_github(sim: &TestSim) {
    sim.action(json!({"action": "add_federated_credential", "app": AUTOMATION, "name": "github-prod",
        "issuer": "{sim}/_idp/github", "subject": SUBJECT}))
        .await;
}

async fn with_assertion(sim: &TestSim, assertion: &str) -> Resp {
    sim.token(
        &sim.tenant("lakeside"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", AUTOMATION),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
            ("scope", GRAPH_DEFAULT),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_matching_federated_credential_signs_the_app_in() {
    let sim = TestSim::demo().await;
    let token = idp_token(&sim, "github", json!({"subject": SUBJECT})).await;
    // Without any federated credential.
    let body = assert_aad(&with_assertion(&sim, &token).await, 401, "unauthorized_client", 70025);
    assert!(body["error_description"].as_str().unwrap().contains("has no configured federated identity credentials"));
    trust_github(&sim).await;
    let r = with_assertion(&sim, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(c["appid"], AUTOMATION);
    assert_eq!(c["tid"], sim.tenant("lakeside").as_str());
    assert_eq!(c["appidacr"], "2", "a federated credential counts as a certificate-class credential");
    assert_eq!(sim.graph(r.json()["access_token"].as_str().unwrap(), "/v1.0/organization").await.status, 200);
    // The provider's discovery document and keys, as Entra reads them.
    let config = sim.get("/_idp/github/.well-known/openid-configuration").await.json();
    assert_eq!(config["issuer"], format!("{}/_idp/github", sim.base()));
    assert!(sim.get("/_idp/github/keys").await.json()["keys"].as_array().is_some_and(|k| !k.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_subject_and_audience_must_match_exactly() {
    let sim = TestSim::demo().await;
    trust_github(&sim).await;
    let base = sim.base().to_string();
    // Another issuer: 700211 names it.
    let other = idp_token(&sim, "gitlab", json!({"subject": SUBJECT})).await;
    let body = assert_aad(&with_assertion(&sim, &other).await, 401, "invalid_client", 700211);
    assert!(body["error_description"].as_str().unwrap().starts_with(&format!(
        "AADSTS700211: No matching federated identity record found for presented assertion issuer '{base}/_idp/gitlab'."
    )));
    // Another subject (a branch instead of the environment): 70021 with the assertion's issuer, subject and
    // audience.
    let branch = idp_token(&sim, "github", json!({"subject": "repo:lakeside/inspections:ref:refs/heads/main"})).await;
    let body = assert_aad(&with_assertion(&sim, &branch).await, 401, "unauthorized_client", 70021);
    let d = body["error_description"].as_str().unwrap();
    assert!(d.starts_with(&format!("AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{base}/_idp/github'. Assertion Subject: 'repo:lakeside/inspections:ref:refs/heads/main'. Assertion Audience: 'api://AzureADTokenExchange'.")), "{d}");
    // Another audience: 700212 names it.
    let aud = idp_token(&sim, "github", json!({"subject": SUBJECT, "audience": "https://gitlab.com"})).await;
    let body = assert_aad(&with_assertion(&sim, &aud).await, 401, "invalid_client", 700212);
    assert!(body["error_description"].as_str().unwrap().starts_with(
        "AADSTS700212: No matching federated identity record found for presented assertion audience 'https://gitlab.com'."
    ));
    // GitHub's tokens live five minutes: later, 700024 with the window.
    let token = idp_token(&sim, "github", json!({"subject": SUBJECT})).await;
    sim.advance("20m").await;
    let body = assert_aad(&with_assertion(&sim, &token).await, 401, "invalid_client", 700024);
    assert!(body["error_description"].as_str().unwrap().contains("Current time: "));
}
