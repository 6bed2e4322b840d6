//! Operator sign-in: an ID token is believed only when its signature, issuer, audience, nonce and
//! dates check out. Tokens come from the simulator (a password grant of a user without MFA).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use microsoft::Cloud;
use microsoft::http::{Transport, TransportOptions};
use microsoft::oidc::OidcClient;
use sim::WorldSource;
use test_support::SimEnv;

const APP: &str = "6a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b";

const WORLD: &str = r#"
name = "oidc"
seed = 3

[[apps]]
key = "portal"
client_id = "6a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
name = "Portal"
home = "msp"
public_client = true
delegated = ["User.Read"]
app_roles = [{ value = "Portal.Admin", assigned = ["ada@msp.onmicrosoft.com"] }]

[[tenants]]
key = "msp"
name = "MSP"
domain = "msp.onmicrosoft.com"
kind = "customer"

[[tenants.users]]
upn = "ada"
name = "Ada"
password = "Msp-Ada-Passw0rd!"

[[tenants.consents]]
app = "portal"
delegated = "all"
"#;

async fn id_token(env: &SimEnv) -> String {
    let url = format!("{}/msp.onmicrosoft.com/oauth2/v2.0/token", env.ready().base_url);
    let form = [
        ("grant_type", "password"),
        ("client_id", APP),
        ("username", "ada@msp.onmicrosoft.com"),
        ("password", "Msp-Ada-Passw0rd!"),
        ("scope", "openid profile User.Read"),
    ];
    let body: serde_json::Value =
        env.http().post(url).form(&form).send().await.expect("token").json().await.expect("json");
    body["id_token"].as_str().unwrap_or_else(|| panic!("no ID token: {body}")).to_string()
}

fn client(env: &SimEnv, tenant: &str, client_id: &str) -> OidcClient {
    let cloud: Cloud = env.cloud.clone();
    let transport = Transport::new(&cloud, TransportOptions::default(), None).expect("transport");
    OidcClient::new(cloud, transport, tenant, client_id, None).expect("client")
}

/// The token with its payload changed (and the signature left as it was).
fn tampered(token: &str, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    change(&mut claims);
    format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_are_believed_only_when_everything_checks_out() {
    let world =
        sim::world::file::WorldFile::parse(WORLD).expect("world").compile(chrono::Utc::now()).expect("compiles");
    let env = SimEnv::start(WorldSource::Given(Box::new(world))).await;
    let token = id_token(&env).await;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).expect("payload")).expect("b64"))
            .expect("json");
    // The password grant sends no nonce, so its ID token has none: a token without this sign-in's
    // nonce is never believed, even for an empty expected nonce. (A genuine sign-in with a nonce is
    // validated end to end in crates/cli/tests/serve.rs.)
    assert!(claims["nonce"].is_null(), "{claims}");
    let nonce = String::new();
    let oidc = client(&env, "msp.onmicrosoft.com", APP);
    let e = oidc.validate(&token, &nonce).await.expect_err("a token without the nonce");
    assert!(e.to_string().contains("nonce"), "{e}");
    // Whatever else holds, the wrong nonce is refused.
    let e = oidc.validate(&token, "another-sign-in").await.expect_err("wrong nonce");
    assert!(e.to_string().contains("nonce"), "{e}");
    // A changed payload breaks the signature.
    let forged = tampered(&token, |c| c["roles"] = serde_json::json!(["Portal.Admin", "Global.God"]));
    let e = oidc.validate(&forged, &nonce).await.expect_err("tampered");
    assert!(e.to_string().contains("did not validate"), "{e}");
    // Another app's client id: wrong audience.
    let other = client(&env, "msp.onmicrosoft.com", "00000000-0000-0000-0000-0000000000aa");
    let e = other.validate(&token, &nonce).await.expect_err("audience");
    assert!(e.to_string().contains("did not validate"), "{e}");
    // No signature at all.
    let parts: Vec<&str> = token.split('.').collect();
    let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    assert!(oidc.validate(&unsigned, &nonce).await.is_err());
    // Garbage.
    assert!(oidc.validate("not a token", &nonce).await.is_err());
    // Operators must sign in to a named tenant.
    let transport = Transport::new(&env.cloud, TransportOptions::default(), None).expect("transport");
    assert!(OidcClient::new(env.cloud.clone(), transport, "organizations", APP, None).is_err());
}
