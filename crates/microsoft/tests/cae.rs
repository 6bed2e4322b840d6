//! Continuous access evaluation (issue 19): the client declares `cp1`, so Graph answers a revoked session
//! or a disallowed location with a claims challenge; the client meets the challenge once with a token that
//! satisfies it, and when the token endpoint refuses one, that refusal (with its AADSTS code) is the error.

mod common;

use std::sync::Arc;

use common::{Env, MEGAN};
use microsoft::graph::{GraphClient, GraphOptions, Target};
use microsoft::retry::RetryPolicy;
use microsoft::{AccountRole, Error, ExposeSecret, Grant, MemoryTokenStore, TokenStore};
use serde_json::json;

fn graph(auth: Arc<microsoft::Authenticator>) -> GraphClient {
    GraphClient::new(auth, GraphOptions { retry: RetryPolicy::quick(), ..GraphOptions::default() })
}

fn xms_cc(token: &microsoft::AccessToken) -> serde_json::Value {
    use base64::Engine;
    let secret = token.secret.expose_secret().to_string();
    let payload = secret.split('.').nth(1).unwrap_or_default().to_string();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["xms_cc"].clone()
}

#[tokio::test]
async fn a_challenge_is_met_with_a_new_token_and_a_refusal_is_the_error() {
    let env = Env::start().await;
    let store = Arc::new(MemoryTokenStore::default());
    let auth = env.auth_with(store.clone(), None);
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("megan signs in");
    // A GDAP customer: its token comes from the partner's refresh token, not from the sign-in.
    let customer = env.tenant("northwindtraders");
    let client = graph(auth.clone());
    let target = Target { tenant: customer.clone(), grant: Grant::Partner };
    let first = auth.access_token(&customer, &Grant::Partner).await.expect("token");
    assert_eq!(xms_cc(&first), json!(["cp1"]), "tenantscope declares the cp1 capability");
    client.get(&target, "organization", &[]).await.expect("organization");

    // Sessions revoked, then Megan signs in again (the sign-in drops cached access tokens; the one from
    // before is put back, as another process sharing the cache would still hold it): the cached customer
    // token is challenged and a new one, from the new sign-in's refresh token, satisfies the challenge.
    let before = store.load(&first.key).await.unwrap().expect("the customer token is cached");
    env.control("POST", "/_sim/clock", json!({"by": "1m"})).await;
    env.control("POST", "/_sim/actions", json!([{"action": "revoke_sessions", "user": MEGAN}])).await;
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("megan signs in again");
    store.save(&before).await.unwrap();
    let cached = auth.access_token(&customer, &Grant::Partner).await.expect("cached");
    assert!(cached.from_cache, "the challenged token is still the cached one");
    assert_eq!(cached.secret.expose_secret(), first.secret.expose_secret());
    client.get(&target, "organization", &[]).await.expect("the challenge is met");
    let renewed = auth.access_token(&customer, &Grant::Partner).await.expect("renewed");
    assert_ne!(renewed.secret.expose_secret(), cached.secret.expose_secret());

    // Sessions revoked without a new sign-in: the challenge cannot be met; the refresh token's refusal
    // (50173) is the error, which diagnosis reads as refresh_token_revoked.
    env.control("POST", "/_sim/clock", json!({"by": "1m"})).await;
    env.control("POST", "/_sim/actions", json!([{"action": "revoke_sessions", "user": MEGAN}])).await;
    let err = client.get(&target, "organization", &[]).await.expect_err("revoked");
    let Error::Token(t) = err.root() else { panic!("not a token error: {err}") };
    assert_eq!(t.code(), Some(50173));
}

#[tokio::test]
async fn a_location_no_longer_allowed_ends_in_the_blocking_policy() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("megan signs in");
    let partner = env.tenant("lakesideit");
    let client = graph(auth.clone());
    let target = Target { tenant: partner.clone(), grant: Grant::Partner };
    client.get(&target, "organization", &[]).await.expect("organization");
    env.control(
        "POST",
        "/_sim/actions",
        json!([{"action": "set_ca_policy", "tenant": "lakesideit.onmicrosoft.com", "policy": {
            "name": "Office only", "users": "all", "grant": "block", "outside_locations": ["Lakeside office"]}}]),
    )
    .await;
    let err = client.get(&target, "organization", &[]).await.expect_err("blocked");
    let Error::Token(t) = err.root() else { panic!("not a token error: {err}") };
    assert_eq!(t.code(), Some(53003));
    assert!(t.claims.as_deref().is_some_and(|c| c.contains("capolids")));
}
