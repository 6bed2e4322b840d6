//! The on-behalf-of grant (issue 19): a middle tier (the partner's confidential automation app, exposing
//! itself as a web API) redeems the token a user got for it for a Graph token as that user. Expected
//! answers cite ENTRA `v2-oauth2-on-behalf-of-flow.md` (protocol reference §1.4, on-behalf-of row) and the
//! AADSTS table of the reference (`payloads/aadsts_codes.tsv`).

mod common;

use common::*;
use serde_json::{Value, json};

const API_SCOPES: &str = "api://8b1f7e0a-2d4c-4b1e-9a57-6c0e3d2f1a22/access_as_user offline_access openid profile";

/// Signs `upn` in by device code for the automation app's API and returns the token response.
async fn api_token(sim: &TestSim, upn: &str) -> Value {
    let lakeside = sim.tenant("lakeside");
    let dc = sim.start_device_code(&lakeside, API_SCOPES).await;
    sim.browser().approve_device_code(dc["user_code"].as_str().unwrap(), &sim.person(upn)).await.unwrap();
    let r = sim.poll_device_code(&lakeside, dc["device_code"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

async fn obo(sim: &TestSim, client_id: &str, secret: Option<&str>, assertion: &str, scope: &str) -> Resp {
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("client_id", client_id),
        ("assertion", assertion),
        ("scope", scope),
        ("requested_token_use", "on_behalf_of"),
    ];
    if let Some(s) = secret {
        form.push(("client_secret", s));
    }
    sim.token(&sim.tenant("lakeside"), &form).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_middle_tier_gets_graph_tokens_on_behalf_of_the_user() {
    let sim = TestSim::demo().await;
    let tokens = api_token(&sim, MEGAN).await;
    let at = tokens["access_token"].as_str().unwrap();
    // A v2 token for the API: `aud` is its client id (ENTRA `access-token-claims-reference.md`).
    let c = claims(at);
    assert_eq!(c["aud"], AUTOMATION);
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["azp"], APP);
    assert_eq!(c["scp"], "access_as_user");
    assert_eq!(tokens["scope"], format!("api://{AUTOMATION}/access_as_user openid profile"));

    // The middle tier has no delegated consent for Graph yet: 65001, `invalid_grant` with `consent_required`
    // (protocol reference §2.1, 65001 row).
    let r = obo(&sim, AUTOMATION, Some(AUTOMATION_SECRET), at, "https://graph.microsoft.com/User.Read").await;
    let body = assert_aad(&r, 400, "invalid_grant", 65001);
    assert_eq!(body["suberror"], "consent_required");

    sim.action(json!({"action": "grant_consent", "tenant": "lakesideit.onmicrosoft.com", "app": AUTOMATION,
        "delegated": ["User.Read"], "application": ["Directory.Read.All", "Organization.Read.All", "User.Read.All", "Policy.Read.All"]}))
        .await;
    let r = obo(&sim, AUTOMATION, Some(AUTOMATION_SECRET), at, "https://graph.microsoft.com/User.Read offline_access")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The success response of the OBO doc (payloads/token_responses_docs.json `obo_success`): a Graph v1
    // token of the user for the middle tier, and a refresh token.
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "https://graph.microsoft.com/User.Read");
    assert!(body["refresh_token"].is_string());
    let g = claims(body["access_token"].as_str().unwrap());
    assert_eq!(g["aud"], "https://graph.microsoft.com");
    assert_eq!(g["appid"], AUTOMATION);
    assert_eq!(g["appidacr"], "1");
    assert_eq!(g["upn"], MEGAN);
    assert_eq!(g["scp"], "User.Read");
    assert_eq!(g["amr"], json!(["pwd", "mfa"]), "the user's MFA carries over");
    assert_eq!(sim.graph(body["access_token"].as_str().unwrap(), "/v1.0/me").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_behalf_of_failures() {
    let sim = TestSim::demo().await;
    let tokens = api_token(&sim, MEGAN).await;
    let at = tokens["access_token"].as_str().unwrap();
    // A token for Graph is not a token for the middle tier.
    let graph_token = sim.device_code(&sim.tenant("lakeside"), MEGAN).await;
    let r = obo(&sim, AUTOMATION, Some(AUTOMATION_SECRET), graph_token["access_token"].as_str().unwrap(), "User.Read")
        .await;
    let body = assert_aad(&r, 400, "invalid_grant", 500131);
    assert!(body["error_description"].as_str().unwrap().contains("'https://graph.microsoft.com'"));
    // A public client cannot act on behalf of anyone.
    let r = obo(&sim, APP, None, at, "User.Read").await;
    assert_aad(&r, 401, "invalid_client", 7000218);
    // `requested_token_use` is required.
    let r = sim
        .token(
            &sim.tenant("lakeside"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("client_id", AUTOMATION),
                ("client_secret", AUTOMATION_SECRET),
                ("assertion", at),
                ("scope", "User.Read"),
            ],
        )
        .await;
    assert_aad(&r, 400, "invalid_request", 900144);
    // An expired user token.
    sim.advance("3h").await;
    let r = obo(&sim, AUTOMATION, Some(AUTOMATION_SECRET), at, "User.Read").await;
    let body = assert_aad(&r, 400, "invalid_grant", 500133);
    assert!(body["error_description"].as_str().unwrap().contains("Current time: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_access_on_the_downstream_token_is_a_claims_challenge() {
    let sim = TestSim::demo().await;
    sim.action(json!({"action": "grant_consent", "tenant": "lakesideit.onmicrosoft.com", "app": AUTOMATION,
        "delegated": ["User.Read"], "application": ["Directory.Read.All"]}))
        .await;
    // Ops signs in without MFA; then the tenant requires MFA of everyone.
    let tokens = api_token(&sim, OPS).await;
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(obo(&sim, AUTOMATION, Some(AUTOMATION_SECRET), at, "User.Read").await.status, 200);
    sim.action(json!({"action": "set_ca_policy", "tenant": "lakesideit.onmicrosoft.com", "policy": {
        "name": "Everyone uses MFA", "users": "all", "grant": "mfa"}}))
        .await;
    let policy = {
        let w = sim.running.sim.world();
        let t = w.resolve_tenant("lakesideit.onmicrosoft.com").unwrap();
        t.ca_policies.iter().find(|p| p.display_name == "Everyone uses MFA").unwrap().id.to_string()
    };
    // ENTRA `v2-oauth2-on-behalf-of-flow.md`, "Error response example": `interaction_required` with the
    // `claims` the middle tier passes back to its client.
    let r = obo(&sim, AUTOMATION, Some(AUTOMATION_SECRET), at, "User.Read").await;
    let body = assert_aad(&r, 400, "interaction_required", 50076);
    assert_eq!(body["suberror"], "basic_action");
    let claims: Value = serde_json::from_str(body["claims"].as_str().expect("claims")).unwrap();
    assert_eq!(claims["access_token"]["capolids"]["essential"], true);
    assert!(claims["access_token"]["capolids"]["values"].as_array().unwrap().contains(&json!(policy)), "{claims}");
}
