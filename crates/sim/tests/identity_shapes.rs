//! Identity-platform documents and token responses compared with Microsoft's recorded ones (copied into
//! `tests/fixtures/payloads`): discovery, JWKS, instance discovery, token responses and access-token claims.

mod common;

use common::*;
use serde_json::Value;

fn doc_keys(v: &Value) -> Vec<String> {
    keys(v).into_iter().filter(|k| !k.starts_with('_')).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_documents_have_microsofts_keys() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let r = sim.get(&format!("/{lakeside}/v2.0/.well-known/openid-configuration")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("max-age=86400, private"));
    let ours = r.json();
    let doc = payload("openid_configuration_tenant_v2.json")["body"].clone();
    assert_eq!(keys(&ours), doc_keys(&doc));
    for k in doc.as_object().unwrap().keys() {
        assert_eq!(kind(&ours[k]), kind(&doc[k]), "{k}");
    }
    assert_eq!(ours["issuer"], format!("{}/{lakeside}/v2.0", sim.base()));
    assert_eq!(ours["token_endpoint"], format!("{}/{lakeside}/oauth2/v2.0/token", sim.base()));
    // The multi-tenant aliases carry Microsoft's templated issuer.
    let common = sim.get("/organizations/v2.0/.well-known/openid-configuration").await.json();
    assert_eq!(common["issuer"], format!("{}/{{tenantid}}/v2.0", sim.base()));
    assert_eq!(common["tenant_region_scope"], Value::Null);

    let jwks = sim.get(&format!("/{lakeside}/discovery/v2.0/keys")).await.json();
    let doc = payload("jwks_common_v2.json")["body"]["keys"][0].clone();
    let key = &jwks["keys"][0];
    assert_eq!(keys(key), doc_keys(&doc));
    assert_eq!(key["kid"], key["x5t"]);
    assert_eq!(key["e"], "AQAB");

    let authorize = format!("{}/{lakeside}/oauth2/v2.0/authorize", sim.base());
    let r = sim
        .get(&format!(
            "/common/discovery/instance?api-version=1.1&authorization_endpoint={}",
            form_urlencoded::byte_serialize(authorize.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ours = r.json();
    let doc = payload("instance_discovery_response.json")["body"].clone();
    assert_eq!(keys(&ours), doc_keys(&doc));
    assert_eq!(keys(&ours["metadata"][0]), keys(&doc["metadata"][0]));
    assert_eq!(
        ours["tenant_discovery_endpoint"],
        format!("{}/{lakeside}/v2.0/.well-known/openid-configuration", sim.base())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_responses_and_claims_have_microsofts_keys() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let r = sim.client_credentials(&lakeside, AUTOMATION, AUTOMATION_SECRET).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store, no-cache"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let ours = r.json();
    let recorded = payload("token_response_client_credentials_recorded.json")["body"].clone();
    assert_eq!(keys(&ours), keys(&recorded), "client credentials answer");
    for k in recorded.as_object().unwrap().keys() {
        assert_eq!(kind(&ours[k]), kind(&recorded[k]), "{k}");
    }
    let lifetime = ours["expires_in"].as_i64().unwrap();
    assert!((3599..=5399).contains(&lifetime), "{lifetime}");

    // A user token through the device-code flow with client_info, as MSAL asks for it.
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    let doc = payload("token_responses_docs.json")["msal_user_flow_success"].clone();
    assert_eq!(keys(&tokens), keys(&doc), "user token answer");
    let scope = tokens["scope"].as_str().unwrap();
    assert!(scope.contains("https://graph.microsoft.com/.default") && scope.contains("openid"), "{scope}");
    use base64::Engine;
    let info: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tokens["client_info"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(info["utid"], lakeside.as_str());

    // The access token's claims and header have the documented Graph v1 token's members.
    let at = tokens["access_token"].as_str().unwrap();
    let ours = claims(at);
    let doc = payload("graph_v1_access_token_decoded_obo_doc.json");
    let missing: Vec<&String> = doc["jwt_payload"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !["onprem_sid"].contains(&k.as_str()) && ours.get(k.as_str()).is_none())
        .collect();
    assert!(missing.is_empty(), "claims missing from our token: {missing:?}");
    assert_eq!(ours["ver"], "1.0");
    assert_eq!(ours["iss"], format!("https://sts.windows.net/{lakeside}/"));
    let header = jsonwebtoken::decode_header(at).unwrap();
    assert_eq!(header.kid, header.x5t);
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(at.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(keys(&raw), keys(&doc["jwt_header"]), "token header");
    // The ID token is a v2 token for the app.
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["ver"], "2.0");
    assert_eq!(id["aud"], APP);
    assert_eq!(id["preferred_username"], MEGAN);
    assert_eq!(id["iss"], format!("{}/{lakeside}/v2.0", sim.base()));

    // The device-code answer has the documented members and no verification_uri_complete.
    let dc = sim.start_device_code(&lakeside, USER_SCOPES).await;
    let doc = payload("token_responses_docs.json")["device_code_authorization_response"].clone();
    assert_eq!(keys(&dc), keys(&doc));
}
