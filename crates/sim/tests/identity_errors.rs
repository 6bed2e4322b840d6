//! Every token-endpoint failure of the list, each checked for its HTTP status, its OAuth `error`,
//! its AADSTS code and the full shape of Microsoft's error body (`assert_aad`).

mod common;

use common::*;
use serde_json::{Value, json};

fn rt(tokens: &Value) -> String {
    tokens["refresh_token"].as_str().expect("refresh_token").to_string()
}

/// The `claims` member is a JSON string naming the Conditional Access policies involved.
fn capolids(body: &Value) -> Vec<String> {
    let text = body["claims"].as_str().expect("claims is a string");
    let claims: Value = serde_json::from_str(text).expect("claims is JSON");
    assert_eq!(claims["access_token"]["capolids"]["essential"], true);
    claims["access_token"]["capolids"]["values"]
        .as_array()
        .expect("capolids values")
        .iter()
        .map(|v| v.as_str().expect("policy id").to_string())
        .collect()
}

async fn policy_ids(sim: &TestSim, tenant: &str) -> Vec<String> {
    let w = sim.running.sim.world();
    let id = uuid::Uuid::parse_str(tenant).unwrap();
    w.tenant(id).unwrap().ca_policies.iter().map(|p| p.id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn password_grant_without_mfa_asks_for_mfa_50076_without_claims() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let r = sim.ropc(&lakeside, MEGAN, &sim.password(MEGAN), USER_SCOPES).await;
    // The password grant cannot prompt: `invalid_grant` and no claims (protocol reference §2.1, 50076 row).
    let body = assert_aad(&r, 400, "invalid_grant", 50076);
    assert_eq!(body["suberror"], "basic_action");
    assert_eq!(body.get("claims"), None);
    assert!(body["error_description"].as_str().unwrap().contains("multi-factor authentication"));
}

#[tokio::test(flavor = "multi_thread")]
async fn password_grant_of_an_unregistered_admin_asks_for_enrollment_50079() {
    let sim = TestSim::demo().await;
    // Northwind's "Require MFA for administrators" covers Andrew (User Administrator), who has no authenticator.
    let upn = "andrew@northwindtraders.onmicrosoft.com";
    let r = sim.ropc(&sim.tenant("northwind"), upn, &sim.password(upn), USER_SCOPES).await;
    let body = assert_aad(&r, 400, "invalid_grant", 50079);
    assert_eq!(body["suberror"], "basic_action");
    assert!(body["error_description"].as_str().unwrap().contains("enroll in multi-factor authentication"));
}

#[tokio::test(flavor = "multi_thread")]
async fn security_defaults_require_mfa_of_admins_without_a_policy() {
    let sim = TestSim::demo().await;
    // Alpine Ski House has security defaults and no Conditional Access: a new admin there must register MFA.
    sim.action(json!({"action": "create_user", "tenant": "alpineskihouse.onmicrosoft.com",
        "upn": "ada@alpineskihouse.onmicrosoft.com", "display_name": "Ada Admin", "password": "Alpine-Ada-1!",
        "roles": ["Global Administrator"]}))
        .await;
    let alpine = sim.tenant("alpine");
    let r = sim.ropc(&alpine, "ada@alpineskihouse.onmicrosoft.com", "Alpine-Ada-1!", USER_SCOPES).await;
    let body = assert_aad(&r, 400, "invalid_grant", 50079);
    // No Conditional Access policy is involved, so there is no claims challenge naming one.
    assert!(body.get("claims").is_none(), "{body}");
    // Without security defaults the same sign-in needs no MFA (the app is consented in Alpine).
    sim.action(
        json!({"action": "set_security_defaults", "tenant": "alpineskihouse.onmicrosoft.com", "enabled": false}),
    )
    .await;
    let r = sim.ropc(&alpine, "ada@alpineskihouse.onmicrosoft.com", "Alpine-Ada-1!", USER_SCOPES).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn per_user_mfa_enforced_after_sign_in_fails_the_refresh_with_50076() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let tokens = sim.device_code(&lakeside, OPS).await;
    let ok = sim.refresh(&lakeside, &rt(&tokens), None).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    sim.scenario("after-sign-in").await;
    let r = sim.refresh(&lakeside, &rt(&tokens), None).await;
    let body = assert_aad(&r, 400, "interaction_required", 50076);
    assert_eq!(body["suberror"], "basic_action");
    // Per-user MFA is not Conditional Access: no policy ids are claimed.
    assert!(body.get("claims").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_frequency_expires_mfa_50078_and_refresh_tokens_70043() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let trey = sim.tenant("trey");
    let northwind = sim.tenant("northwind");
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    // A session-only policy (sign-in frequency without a grant control) in Northwind.
    sim.action(json!({"action": "set_ca_policy", "tenant": "northwindtraders.onmicrosoft.com", "policy": {
        "name": "Partner sessions last an hour", "users": "all", "grant": "none", "sign_in_frequency_hours": 1}}))
        .await;
    assert_eq!(sim.refresh(&trey, &rt(&tokens), None).await.status, 200);
    assert_eq!(sim.refresh(&northwind, &rt(&tokens), None).await.status, 200);
    sim.advance("61m").await;
    let r = sim.refresh(&trey, &rt(&tokens), None).await;
    let body = assert_aad(&r, 400, "interaction_required", 50078);
    assert_eq!(body["suberror"], "basic_action");
    let r = sim.refresh(&northwind, &rt(&tokens), None).await;
    let body = assert_aad(&r, 400, "invalid_grant", 70043);
    assert_eq!(body["suberror"], "bad_token");
    // Customers without a sign-in frequency keep accepting the refresh token.
    assert_eq!(sim.refresh(&sim.tenant("tailspin"), &rt(&tokens), None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_access_block_53003_names_the_blocking_policy() {
    let sim = TestSim::demo().await;
    let tokens = sim.device_code(&sim.tenant("lakeside"), MEGAN).await;
    let proseware = sim.tenant("proseware");
    let r = sim.refresh(&proseware, &rt(&tokens), None).await;
    let body = assert_aad(&r, 400, "invalid_grant", 53003);
    assert_eq!(body["suberror"], "message_only");
    assert_eq!(capolids(&body), policy_ids(&sim, &proseware).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn risky_partner_user_is_blocked_as_delegated_admin_530034() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let tokens = sim.device_code(&lakeside, JORDAN).await;
    // At home the risky user still gets tokens; only delegated admin access is blocked.
    assert_eq!(sim.refresh(&lakeside, &rt(&tokens), None).await.status, 200);
    for customer in ["northwind", "tailspin"] {
        let r = sim.refresh(&sim.tenant(customer), &rt(&tokens), None).await;
        assert_aad(&r, 400, "invalid_grant", 530034);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_gaps_give_65001_and_90099() {
    let sim = TestSim::demo().await;
    let tokens = sim.device_code(&sim.tenant("lakeside"), MEGAN).await;
    // Margie's consent lacks Policy.Read.All: asking for it explicitly is a consent error.
    let r = sim.refresh(&sim.tenant("margie"), &rt(&tokens), Some("Policy.Read.All offline_access")).await;
    let body = assert_aad(&r, 400, "invalid_grant", 65001);
    assert_eq!(body["suberror"], "consent_required");
    // Litware never consented to the app at all: partner admins are not authorized there.
    let r = sim.refresh(&sim.tenant("litware"), &rt(&tokens), None).await;
    let body = assert_aad(&r, 400, "invalid_grant", 90099);
    assert!(body["error_description"].as_str().unwrap().contains("Partner Center"));
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_user_without_gdap_presence_gets_50020() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    for customer in ["alpine", "bellows", "fourth"] {
        let r = sim.refresh(&sim.tenant(customer), &rt(&tokens), None).await;
        let body = assert_aad(&r, 400, "invalid_grant", 50020);
        let d = body["error_description"].as_str().unwrap();
        assert!(d.contains(&format!("https://sts.windows.net/{lakeside}/")), "{d}");
        assert!(d.contains(MEGAN), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_failures_700016_7000215_7000222() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let unknown = "11111111-2222-4333-8444-555555555555";
    let r = sim.client_credentials(&lakeside, unknown, "x").await;
    let body = assert_aad(&r, 400, "unauthorized_client", 700016);
    assert!(body["error_description"].as_str().unwrap().contains(unknown));
    // A single-tenant app used in another tenant is not found there either.
    let r = sim.client_credentials(&sim.tenant("northwind"), AUTOMATION, AUTOMATION_SECRET).await;
    assert_aad(&r, 400, "unauthorized_client", 700016);
    let r = sim.client_credentials(&lakeside, AUTOMATION, "sim-automation-secret-wrong").await;
    assert_aad(&r, 401, "invalid_client", 7000215);
    let r = sim.client_credentials(&sim.tenant("woodgrove"), WOODGROVE_READER, WOODGROVE_SECRET).await;
    assert_aad(&r, 401, "invalid_client", 7000222);
    // The secret may also come in HTTP Basic; the same errors apply.
    let req = sim
        .http
        .post(sim.url(&format!("/{lakeside}/oauth2/v2.0/token")))
        .basic_auth(AUTOMATION, Some("wrong"))
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_DEFAULT)]);
    let r = Resp::read(req.send().await.unwrap()).await;
    assert_aad(&r, 401, "invalid_client", 7000215);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_token_lifecycle_700082_50173() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    sim.advance("91d").await;
    let r = sim.refresh(&lakeside, &rt(&tokens), None).await;
    let body = assert_aad(&r, 400, "invalid_grant", 700082);
    assert_eq!(body["suberror"], "bad_token");
    // A fresh sign-in, then "Revoke sessions" in the admin centre.
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    assert_eq!(sim.refresh(&lakeside, &rt(&tokens), None).await.status, 200);
    sim.action(json!({"action": "revoke_sessions", "user": MEGAN})).await;
    let r = sim.refresh(&lakeside, &rt(&tokens), None).await;
    let body = assert_aad(&r, 400, "invalid_grant", 50173);
    assert_eq!(body["suberror"], "bad_token");
}

#[tokio::test(flavor = "multi_thread")]
async fn account_state_50057_50053_50126_50055() {
    let sim = TestSim::demo().await;
    let upn = "andrew@northwindtraders.onmicrosoft.com";
    let northwind = sim.tenant("northwind");
    let pass = sim.password(upn);
    let r = sim.ropc(&northwind, upn, "not-the-password", USER_SCOPES).await;
    assert_aad(&r, 400, "invalid_grant", 50126);
    sim.action(json!({"action": "set_password_expired", "user": upn, "expired": true})).await;
    let r = sim.ropc(&northwind, upn, &pass, USER_SCOPES).await;
    let body = assert_aad(&r, 400, "invalid_grant", 50055);
    assert_eq!(body["suberror"], "user_password_expired");
    sim.action(json!({"action": "set_user_locked", "user": upn, "locked": true})).await;
    let r = sim.ropc(&northwind, upn, &pass, USER_SCOPES).await;
    assert_aad(&r, 400, "invalid_grant", 50053);
    sim.action(json!({"action": "set_user_enabled", "user": upn, "enabled": false})).await;
    let r = sim.ropc(&northwind, upn, &pass, USER_SCOPES).await;
    assert_aad(&r, 400, "invalid_grant", 50057);
    // A user that does not exist at all.
    let r = sim.ropc(&northwind, "nobody@northwindtraders.onmicrosoft.com", "x", USER_SCOPES).await;
    assert_aad(&r, 400, "invalid_grant", 50034);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_that_do_not_exist_or_are_malformed_90002_900023() {
    let sim = TestSim::demo().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", AUTOMATION),
        ("client_secret", AUTOMATION_SECRET),
        ("scope", GRAPH_DEFAULT),
    ];
    for tenant in ["nosuchtenant.onmicrosoft.com", "0b2c6a4e-0000-4000-8000-000000000000"] {
        let r = sim.token(tenant, &form).await;
        let body = assert_aad(&r, 400, "invalid_request", 90002);
        assert!(body["error_description"].as_str().unwrap().contains(tenant));
        let r = sim.get(&format!("/{tenant}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"], "invalid_tenant");
        assert_eq!(r.json()["error_codes"], json!([90002]));
    }
    let r = sim.token("not_a_domain!", &form).await;
    assert_aad(&r, 400, "invalid_request", 900023);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_scopes_70011_and_1002012() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let r = sim.ropc(&lakeside, LEGACY, &sim.password(LEGACY), "https://graph.microsoft.com/.default User.Read").await;
    assert_aad(&r, 400, "invalid_scope", 70011);
    let r = sim.ropc(&lakeside, LEGACY, &sim.password(LEGACY), "https://graph.microsoft.com/").await;
    assert_aad(&r, 400, "invalid_scope", 70011);
    let r = sim
        .token(
            &lakeside,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", AUTOMATION),
                ("client_secret", AUTOMATION_SECRET),
                ("scope", "User.Read"),
            ],
        )
        .await;
    assert_aad(&r, 400, "invalid_scope", 1002012);
    let r = sim.ropc(&lakeside, LEGACY, &sim.password(LEGACY), "https://outlook.office.com/.default").await;
    assert_aad(&r, 400, "invalid_resource", 500011);
}

#[tokio::test(flavor = "multi_thread")]
async fn device_flow_pending_70016_then_expired_token() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let dc = sim.start_device_code(&lakeside, USER_SCOPES).await;
    assert_eq!(dc["interval"], 1);
    assert_eq!(dc["expires_in"], 900);
    assert!(dc["verification_uri"].as_str().unwrap().ends_with("/devicelogin"));
    assert!(dc.get("verification_uri_complete").is_none());
    let device_code = dc["device_code"].as_str().unwrap();
    // Both spellings of the grant type that official clients send are accepted.
    let r = sim.poll_device_code(&lakeside, device_code).await;
    assert_aad(&r, 400, "authorization_pending", 70016);
    let r =
        sim.token(&lakeside, &[("grant_type", "device_code"), ("client_id", APP), ("device_code", device_code)]).await;
    assert_aad(&r, 400, "authorization_pending", 70016);
    sim.advance("16m").await;
    let r = sim.poll_device_code(&lakeside, device_code).await;
    assert_aad(&r, 400, "expired_token", 70019);
}

#[tokio::test(flavor = "multi_thread")]
async fn device_code_is_redeemed_once() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let dc = sim.start_device_code(&lakeside, USER_SCOPES).await;
    sim.browser().approve_device_code(dc["user_code"].as_str().unwrap(), &sim.person(MEGAN)).await.unwrap();
    let device_code = dc["device_code"].as_str().unwrap();
    assert_eq!(sim.poll_device_code(&lakeside, device_code).await.status, 200);
    let r = sim.poll_device_code(&lakeside, device_code).await;
    assert_aad(&r, 400, "invalid_grant", 54005);
}

/// Runs the authorization-code flow through the scripted user and returns the code and the redirect URI.
async fn authorization_code(sim: &TestSim, challenge: &str, method: &str) -> (String, String) {
    let lakeside = sim.tenant("lakeside");
    let redirect = "http://localhost:1/";
    let url = format!(
        "{}/{lakeside}/oauth2/v2.0/authorize?{}",
        sim.base(),
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", APP),
                ("response_type", "code"),
                ("redirect_uri", redirect),
                ("scope", USER_SCOPES),
                ("state", "s-123"),
                ("code_challenge", challenge),
                ("code_challenge_method", method),
            ])
            .finish()
    );
    let outcome = sim.browser().complete_authorize(&url, &sim.person(MEGAN)).await.expect("authorize");
    let sim::signin::Outcome::CodeDelivered { redirect: location } = outcome else { panic!("{outcome:?}") };
    let parsed = url::Url::parse(&location).unwrap();
    let get = |k: &str| parsed.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    assert_eq!(get("state").as_deref(), Some("s-123"));
    (get("code").expect("code"), redirect.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_codes_check_pkce_501481_and_replay_54005() {
    use base64::Engine;
    use sha2::Digest;
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let verifier = "a-verifier-of-sufficient-length-0123456789-abcdefghijkl";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let (code, redirect) = authorization_code(&sim, &challenge, "S256").await;
    let redeem = |v: &'static str| {
        let (code, redirect, lakeside) = (code.clone(), redirect.clone(), lakeside.clone());
        let sim = &sim;
        async move {
            sim.token(
                &lakeside,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", APP),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", v),
                    ("scope", USER_SCOPES),
                ],
            )
            .await
        }
    };
    let r = redeem("the-wrong-verifier-0123456789-0123456789-0123456789").await;
    assert_aad(&r, 400, "invalid_grant", 501481);
    let r = redeem(verifier).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let tokens = r.json();
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["amr"], json!(["pwd", "mfa"]));
    let r = redeem(verifier).await;
    assert_aad(&r, 400, "invalid_grant", 54005);
}

#[tokio::test(flavor = "multi_thread")]
async fn correlation_id_echoes_the_client_request_id() {
    let sim = TestSim::demo().await;
    let id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
    let req = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/token", sim.tenant("lakeside"))))
        .header("client-request-id", id)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", AUTOMATION),
            ("client_secret", "bad"),
            ("scope", GRAPH_DEFAULT),
        ]);
    let r = Resp::read(req.send().await.unwrap()).await;
    let body = assert_aad(&r, 401, "invalid_client", 7000215);
    assert_eq!(body["correlation_id"], id);
    assert_eq!(r.header("client-request-id"), Some(id));
    assert!(r.header("x-ms-request-id").is_some());
}
