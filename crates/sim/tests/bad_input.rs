//! Malformed requests get Microsoft-shaped errors, never a 500, a dropped connection or a panic.

mod common;

use common::*;
use serde_json::json;

async fn raw_token(sim: &TestSim, tenant: &str, content_type: &str, body: Vec<u8>) -> Resp {
    let req =
        sim.http.post(sim.url(&format!("/{tenant}/oauth2/v2.0/token"))).header("content-type", content_type).body(body);
    Resp::read(req.send().await.expect("token request")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_incomplete_forms() {
    let sim = TestSim::demo().await;
    let t = sim.tenant("lakeside");
    let form = "application/x-www-form-urlencoded";
    // Garbage that is not a form at all reads as a form without a grant type.
    let r = raw_token(&sim, &t, form, b"%%%&&&==\xff\xfe%zz".to_vec()).await;
    let body = assert_aad(&r, 400, "invalid_request", 900144);
    assert!(body["error_description"].as_str().unwrap().contains("'grant_type'"));
    let r = raw_token(&sim, &t, form, Vec::new()).await;
    assert_aad(&r, 400, "invalid_request", 900144);
    // Each missing parameter is named.
    for (form_pairs, missing) in [
        (vec![("grant_type", "client_credentials")], "client_id"),
        (
            vec![("grant_type", "client_credentials"), ("client_id", AUTOMATION), ("client_secret", AUTOMATION_SECRET)],
            "scope",
        ),
        (vec![("grant_type", "refresh_token"), ("client_id", APP)], "refresh_token"),
        (vec![("grant_type", "authorization_code"), ("client_id", APP), ("redirect_uri", "http://localhost")], "code"),
        (vec![("grant_type", "password"), ("client_id", APP), ("scope", "openid")], "username"),
    ] {
        let r = sim.token(&t, &form_pairs).await;
        let body = assert_aad(&r, 400, "invalid_request", 900144);
        assert!(body["error_description"].as_str().unwrap().contains(&format!("'{missing}'")), "{}", r.text);
    }
    // Empty values count as missing, as at Microsoft.
    let r = sim.token(&t, &[("grant_type", ""), ("client_id", APP)]).await;
    assert_aad(&r, 400, "invalid_request", 900144);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_parameters_are_rejected() {
    let sim = TestSim::demo().await;
    let t = sim.tenant("lakeside");
    let body =
        format!("grant_type=client_credentials&client_id={AUTOMATION}&client_id={AUTOMATION}&client_secret=x&scope=a");
    let r = raw_token(&sim, &t, "application/x-www-form-urlencoded", body.into_bytes()).await;
    let b = assert_aad(&r, 400, "invalid_request", 9000411);
    assert!(b["error_description"].as_str().unwrap().contains("'client_id'"));
    // Unknown parameters (telemetry fields official clients add) may repeat without harm.
    let r = sim
        .token(
            &t,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", AUTOMATION),
                ("client_secret", AUTOMATION_SECRET),
                ("scope", GRAPH_DEFAULT),
                ("x-client-SKU", "a"),
                ("x-client-SKU", "b"),
                ("client_info", "1"),
                ("claims", r#"{"access_token":{"xms_cc":{"values":["CP1"]}}}"#),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_content_type_and_method() {
    let sim = TestSim::demo().await;
    let t = sim.tenant("lakeside");
    let json_body = json!({"grant_type": "client_credentials", "client_id": AUTOMATION}).to_string();
    let r = raw_token(&sim, &t, "application/json", json_body.into_bytes()).await;
    assert_aad(&r, 400, "invalid_request", 900144);
    let r = raw_token(&sim, &t, "text/plain", b"grant_type=client_credentials".to_vec()).await;
    assert_aad(&r, 400, "invalid_request", 900144);
    let r = sim.get(&format!("/{t}/oauth2/v2.0/token")).await;
    let b = assert_aad(&r, 400, "invalid_request", 900561);
    assert!(b["error_description"].as_str().unwrap().contains("GET"));
    let r = sim.get(&format!("/{t}/oauth2/v2.0/devicecode")).await;
    assert_aad(&r, 400, "invalid_request", 900561);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_are_refused() {
    let sim = TestSim::demo().await;
    let t = sim.tenant("lakeside");
    let big = format!("grant_type=client_credentials&padding={}", "a".repeat(sim::identity::token::MAX_FORM_BYTES));
    let r = raw_token(&sim, &t, "application/x-www-form-urlencoded", big.clone().into_bytes()).await;
    assert_aad(&r, 400, "invalid_request", 90015);
    let req = sim
        .http
        .post(sim.url(&format!("/{t}/oauth2/v2.0/devicecode")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big);
    let r = Resp::read(req.send().await.unwrap()).await;
    assert_aad(&r, 400, "invalid_request", 90015);
    // The same connection pool keeps working afterwards.
    assert_eq!(sim.client_credentials(&t, AUTOMATION, AUTOMATION_SECRET).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_clients_and_grant_types() {
    let sim = TestSim::demo().await;
    let t = sim.tenant("lakeside");
    let r = sim
        .token(&t, &[("grant_type", "client_credentials"), ("client_id", "not-a-guid"), ("scope", GRAPH_DEFAULT)])
        .await;
    assert_aad(&r, 400, "unauthorized_client", 700016);
    let r = sim.token(&t, &[("grant_type", "urn:made:up"), ("client_id", APP)]).await;
    assert_aad(&r, 400, "unsupported_grant_type", 70003);
    let r = sim.post_form(&format!("/{t}/oauth2/v2.0/devicecode"), &[("client_id", "nope"), ("scope", "openid")]).await;
    assert_aad(&r, 400, "unauthorized_client", 700016);
    let r = sim
        .post_form(
            &format!("/{t}/oauth2/v2.0/devicecode"),
            &[("client_id", "11111111-2222-4333-8444-555555555555"), ("scope", "openid")],
        )
        .await;
    assert_aad(&r, 400, "unauthorized_client", 700016);
    // A confidential client without any credential.
    let r = sim
        .token(&t, &[("grant_type", "client_credentials"), ("client_id", AUTOMATION), ("scope", GRAPH_DEFAULT)])
        .await;
    assert_aad(&r, 401, "invalid_client", 7000218);
    // Refresh tokens, codes and device codes that were never issued.
    let r = sim.refresh(&t, "1.AXsim-not-a-token", None).await;
    assert_aad(&r, 400, "invalid_grant", 9002313);
    let r = sim
        .token(
            &t,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", APP),
                ("code", "nope"),
                ("redirect_uri", "http://localhost"),
            ],
        )
        .await;
    assert_aad(&r, 400, "invalid_grant", 9002313);
    let r = sim.poll_device_code(&t, "DAQAB-not-issued").await;
    assert_aad(&r, 400, "invalid_grant", 70000);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tenants_on_every_identity_endpoint() {
    let sim = TestSim::demo().await;
    for path in ["/contoso.example/v2.0/.well-known/openid-configuration", "/contoso.example/discovery/v2.0/keys"] {
        let r = sim.get(path).await;
        assert_aad(&r, 400, "invalid_tenant", 90002);
    }
    let r = sim.post_form("/contoso.example/oauth2/v2.0/devicecode", &[("client_id", APP), ("scope", "openid")]).await;
    assert_aad(&r, 400, "invalid_tenant", 90002);
    let r = sim.get("/bad%20tenant/v2.0/.well-known/openid-configuration").await;
    assert_aad(&r, 400, "invalid_tenant", 900023);
    // The authorize endpoint shows the error on its page, with the code in a machine-readable attribute.
    let r = sim.get(&format!("/contoso.example/oauth2/v2.0/authorize?client_id={APP}")).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("data-code=\"90002\""), "{}", r.text);
    // Instance discovery for another host is an invalid instance.
    let r = sim.get("/common/discovery/instance?api-version=1.1&authorization_endpoint=https://evil.example/common/oauth2/v2.0/authorize").await;
    assert_aad(&r, 400, "invalid_instance", 50049);
}

#[tokio::test(flavor = "multi_thread")]
async fn authorize_rejects_bad_requests_before_any_sign_in() {
    let sim = TestSim::demo().await;
    let t = sim.tenant("lakeside");
    let r = sim.get(&format!("/{t}/oauth2/v2.0/authorize?client_id={APP}&redirect_uri=https://evil.example/cb&response_type=code&scope=openid")).await;
    assert!(r.text.contains("data-code=\"50011\""), "{}", r.text);
    // A bad response_type goes back to the (registered) redirect URI as an OAuth error.
    let r = sim.get(&format!("/{t}/oauth2/v2.0/authorize?client_id={APP}&redirect_uri=http://localhost:5000&response_type=token&scope=openid&state=xyz")).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let location = r.header("location").unwrap();
    assert!(location.starts_with("http://localhost:5000?error=unsupported_response_type"), "{location}");
    assert!(location.contains("state=xyz"), "{location}");
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_rejects_bad_queries_with_its_own_errors() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    for (path, status, code) in [
        ("/v1.0/users?$top=abc", 400, "Request_BadRequest"),
        ("/v1.0/users?$top=0", 400, "Request_BadRequest"),
        ("/v1.0/users?$top=-3", 400, "Request_BadRequest"),
        ("/v1.0/users?$skip=10", 400, "Request_UnsupportedQuery"),
        ("/v1.0/users?$filter=(a%20eq%201)", 400, "Request_UnsupportedQuery"),
        ("/v1.0/users?$filter=favouriteColour%20eq%20'blue'", 400, "Request_UnsupportedQuery"),
        ("/v1.0/users?$select=nonsense", 400, "Request_BadRequest"),
        ("/v1.0/users?$skiptoken=garbage", 400, "Request_BadRequest"),
        ("/v1.0/nonsense", 400, "BadRequest"),
        ("/v1.0/groups?$expand=owners", 400, "Request_BadRequest"),
    ] {
        let r = sim.graph(&token, path).await;
        assert_graph(&r, status, code);
    }
    // Methods other than GET on resources.
    let req = sim.http.delete(sim.url("/v1.0/users")).bearer_auth(&token);
    let r = Resp::read(req.send().await.unwrap()).await;
    assert_graph(&r, 405, "Request_BadRequest");
    // Batches that cannot be parsed.
    let req = sim.http.post(sim.url("/v1.0/$batch")).bearer_auth(&token).body("{not json");
    let r = Resp::read(req.send().await.unwrap()).await;
    assert_graph(&r, 400, "BadRequest");
    let r = sim.batch(&token, &json!({"requests": []})).await;
    assert_graph(&r, 400, "BadRequest");
    let r = sim.batch(&token, &json!({"requests": [{"id": "", "method": "GET", "url": "/users"}]})).await;
    assert_graph(&r, 400, "BadRequest");
    let r = sim.batch(&token, &json!({"requests": [{"id": "1", "method": "POST", "url": "/users", "body": {}}]})).await;
    assert_graph(&r, 400, "BadRequest");
    let r = sim
        .batch(&token, &json!({"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]}))
        .await;
    assert_graph(&r, 400, "BadRequest");
    // The server is still healthy.
    assert_eq!(sim.graph(&token, "/v1.0/organization").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn control_api_rejects_bad_bodies_with_400() {
    let sim = TestSim::demo().await;
    for (method, path, body) in [
        (reqwest::Method::POST, "/_sim/actions", json!({"action": "no_such_action"})),
        (
            reqwest::Method::POST,
            "/_sim/actions",
            json!([{"action": "revoke_sessions", "user": "nobody@nowhere.example"}]),
        ),
        (reqwest::Method::POST, "/_sim/clock", json!({"by": "soon"})),
        (reqwest::Method::POST, "/_sim/clock", json!({"by": "+99999999999999999d"})),
        (reqwest::Method::POST, "/_sim/clock", json!({"seconds": i64::MAX})),
        (reqwest::Method::POST, "/_sim/clock", json!({})),
        (reqwest::Method::PUT, "/_sim/faults", json!({"error_rate": "high"})),
        (reqwest::Method::PUT, "/_sim/faults", json!({"no_such_fault": true})),
        (reqwest::Method::PUT, "/_sim/throttle", json!({"small": "many"})),
    ] {
        let r = sim.control(method.clone(), path, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{method} {path} {body}: {}", r.text);
        assert!(r.json()["error"].is_string(), "{}", r.text);
    }
    let r = sim.control(reqwest::Method::POST, "/_sim/scenarios/no-such-scenario", None).await;
    assert_eq!(r.status, 404);
    // A failing action in a list leaves the world unchanged.
    let r = sim
        .control(
            reqwest::Method::POST,
            "/_sim/actions",
            Some(json!([{"action": "set_user_enabled", "user": MEGAN, "enabled": false},
                {"action": "revoke_sessions", "user": "nobody@nowhere.example"}])),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("action 2"));
    assert!(sim.running.sim.world().user_by_upn(MEGAN).unwrap().1.enabled);
    // The clock did not move for the rejected requests.
    let clock = sim.control(reqwest::Method::GET, "/_sim/clock", None).await.json();
    assert_eq!(clock["offset_seconds"], 0);
}
