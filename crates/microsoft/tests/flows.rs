//! Every flow of the Microsoft client against the simulator over HTTPS, and every failure class of the
//! simulated identity platform surfacing as a typed error.

mod common;

use std::sync::Arc;

use common::{CLIENT, Env, MEGAN};
use futures::StreamExt;
use microsoft::graph::{BatchItem, GraphClient, GraphOptions, Target};
use microsoft::retry::RetryPolicy;
use microsoft::{AccountRole, AppCredential, Error, ExposeSecret, Grant, MemoryTokenStore, SecretString};
use serde_json::json;

fn graph(auth: Arc<microsoft::Authenticator>) -> GraphClient {
    GraphClient::new(auth, GraphOptions { retry: RetryPolicy::quick(), ..GraphOptions::default() })
}

fn token_code(e: &Error) -> Option<u32> {
    match e.root() {
        Error::Token(t) => t.code(),
        _ => None,
    }
}

#[tokio::test]
async fn device_code_sign_in_then_gdap_tokens_and_paged_reads() {
    let env = Env::start().await;
    let auth = env.auth();
    let partner = env.tenant("lakesideit");
    let account = env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("megan signs in");
    assert_eq!(account.home_tenant, partner);
    assert!(account.claims.as_ref().is_some_and(|c| c.has_mfa()), "megan's partner token carries the MFA claim");

    let northwind = env.tenant("northwindtraders");
    let first = auth.access_token(&northwind, &Grant::Partner).await.expect("GDAP token at Northwind");
    assert!(!first.from_cache);
    let claims = first.claims.clone().expect("claims");
    assert_eq!(claims.tid.as_deref(), Some(northwind.as_str()));
    assert!(claims.scp.iter().any(|s| s == "Directory.Read.All"));
    assert!(claims.wids.contains(&"f2ef992c-3afb-46b9-b7cf-a126ee74c451".to_string()), "GDAP roles appear in wids");
    let second = auth.access_token(&northwind, &Grant::Partner).await.expect("cached");
    assert!(second.from_cache);
    assert_eq!(first.secret.expose_secret(), second.secret.expose_secret());

    let client = graph(auth.clone());
    let target = Target { tenant: northwind.clone(), grant: Grant::Partner };
    let mut pages = std::pin::pin!(client.pages(&target, "users?$top=7&$select=id,displayName", Vec::new()));
    let mut ids = std::collections::HashSet::new();
    let mut n_pages = 0;
    while let Some(p) = pages.next().await {
        let p = p.expect("page");
        n_pages += 1;
        for u in p.items {
            assert!(ids.insert(u["id"].as_str().unwrap_or_default().to_string()), "no duplicates across pages");
        }
    }
    let world = env.control("GET", "/_sim/world", json!({})).await;
    let expected =
        world["tenants"].as_array().unwrap().iter().find(|t| t["id"] == northwind.as_str()).unwrap()["users"]
            .as_u64()
            .unwrap();
    assert_eq!(ids.len() as u64, expected);
    assert!(n_pages > 1);
}

#[tokio::test]
async fn every_gdap_failure_is_a_typed_token_error() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    for (domain, code) in [
        ("alpineskihouse", 50020),
        ("bellowscollege", 50020),
        ("fourthcoffee", 50020),
        ("litwareinc", 90099),
        ("prosewareinc", 53003),
    ] {
        let err = auth.access_token(&env.tenant(domain), &Grant::Partner).await.expect_err(domain);
        assert_eq!(token_code(&err), Some(code), "{domain}: {err}");
        let Error::Token(t) = err.root() else { panic!("{domain}: not a token error") };
        assert_eq!(t.status, 400);
        assert!(t.trace_id.is_some() && t.correlation_id.is_some() && t.timestamp.is_some());
        assert!(t.url.ends_with("/oauth2/v2.0/token"));
    }
    let err = auth.access_token(&env.tenant("prosewareinc"), &Grant::Partner).await.expect_err("blocked");
    let Error::Token(t) = err.root() else { panic!() };
    assert!(t.claims.as_deref().is_some_and(|c| c.contains("capolids")), "53003 carries the policy ids");
    // Trey asks for MFA again every hour: two hours later the partner's session no longer satisfies it.
    let trey = env.tenant("treyresearch");
    auth.access_token(&trey, &Grant::Partner).await.expect("trey within the hour");
    env.control("POST", "/_sim/clock", json!({"by": "2h"})).await;
    auth.cache.clear_tenant(&trey).await.expect("clear");
    let err = auth.access_token(&trey, &Grant::Partner).await.expect_err("sign-in frequency");
    assert_eq!(token_code(&err), Some(50078));
}

#[tokio::test]
async fn refresh_token_lifecycle_failures() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    let northwind = env.tenant("northwindtraders");
    auth.access_token(&northwind, &Grant::Partner).await.expect("ok");
    // Revoking sessions invalidates the refresh token.
    env.control("POST", "/_sim/actions", json!([{"action": "revoke_sessions", "user": MEGAN}])).await;
    let err = auth.fresh_token(&northwind, &Grant::Partner).await.expect_err("revoked");
    assert_eq!(token_code(&err), Some(50173));
    // A fresh sign-in works again; ninety-one idle days later the refresh token has expired.
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in again");
    env.control("POST", "/_sim/clock", json!({"by": "91d"})).await;
    let err = auth.fresh_token(&northwind, &Grant::Partner).await.expect_err("inactive");
    assert_eq!(token_code(&err), Some(700082));
}

#[tokio::test]
async fn mfa_enforced_after_sign_in_and_partner_without_mfa() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, "ops@lakesideit.onmicrosoft.com", "organizations", AccountRole::Partner)
        .await
        .expect("ops signs in without MFA");
    let northwind = env.tenant("northwindtraders");
    // GDAP access requires MFA from partner admins; the ops account never performed it.
    let err = auth.access_token(&northwind, &Grant::Partner).await.expect_err("no MFA");
    assert_eq!(token_code(&err), Some(50076));
    let Error::Token(t) = err.root() else { panic!() };
    assert_eq!(t.error, "interaction_required");
    assert_eq!(t.suberror.as_deref(), Some("basic_action"));
    // Graph's partner APIs refuse a token without the MFA claim.
    let client = graph(auth.clone());
    let partner = Target { tenant: env.tenant("lakesideit"), grant: Grant::Partner };
    let err =
        client.get(&partner, "tenantRelationships/delegatedAdminCustomers", &[]).await.expect_err("missing MFA claim");
    let Error::Graph(g) = err.root() else { panic!("{err}") };
    assert_eq!(
        (g.status, g.code.as_str(), g.inner_code.as_deref()),
        (401, "unauthorized", Some("unauthorizedMissingMfaTokenClaim"))
    );
    // Then the tenant enforces per-user MFA for ops: its refresh token predates that.
    env.control("POST", "/_sim/scenarios/after-sign-in", json!({})).await;
    let err = auth.fresh_token(&partner.tenant, &Grant::Partner).await.expect_err("mfa now required at home");
    assert_eq!(token_code(&err), Some(50076));
}

#[tokio::test]
async fn risky_partner_user_is_blocked_from_customers() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, "jordan@lakesideit.onmicrosoft.com", "organizations", AccountRole::Partner)
        .await
        .expect("jordan signs in");
    let err = auth.access_token(&env.tenant("northwindtraders"), &Grant::Partner).await.expect_err("risky");
    assert_eq!(token_code(&err), Some(530034));
}

#[tokio::test]
async fn direct_sign_ins_and_their_lifecycle() {
    let env = Env::start().await;
    let auth = env.auth();
    let adatum = env
        .login(&auth, "it-admin@adatumcorp.onmicrosoft.com", "adatumcorp.onmicrosoft.com", AccountRole::Direct)
        .await
        .expect("adatum admin");
    let fabrikam = env
        .login(
            &auth,
            "it-admin@fabrikamresidences.onmicrosoft.com",
            "fabrikamresidences.onmicrosoft.com",
            AccountRole::Direct,
        )
        .await
        .expect("fabrikam admin");
    assert_eq!(auth.accounts().await.unwrap().len(), 2);
    let ga = Grant::Direct { home_account: adatum.home_account_id.clone() };
    let gf = Grant::Direct { home_account: fabrikam.home_account_id.clone() };
    assert!(auth.access_token(&adatum.home_tenant, &ga).await.expect("adatum token").from_cache);
    env.control("POST", "/_sim/scenarios/after-sign-in", json!({})).await;
    let err = auth.fresh_token(&adatum.home_tenant, &ga).await.expect_err("password changed");
    assert_eq!(token_code(&err), Some(50173));
    let err = auth.fresh_token(&fabrikam.home_tenant, &gf).await.expect_err("disabled");
    assert_eq!(token_code(&err), Some(50057));
}

#[tokio::test]
async fn client_credentials_with_secrets() {
    let env = Env::start().await;
    let auth = env.auth();
    let app = |name: &str| env.ready().apps.iter().find(|a| a.display_name == name).cloned().expect("app");
    let automation = app("Lakeside automation");
    let grant = Grant::App {
        client_id: automation.client_id.clone(),
        credential: AppCredential::Secret(SecretString::from(automation.client_secret.clone().expect("secret"))),
    };
    let partner = env.tenant("lakesideit");
    let t = auth.access_token(&partner, &grant).await.expect("client credentials");
    let claims = t.claims.expect("claims");
    assert_eq!(claims.idtyp.as_deref(), Some("app"));
    assert!(claims.roles.iter().any(|r| r == "Directory.Read.All"));
    let users = graph(auth.clone())
        .list(&Target { tenant: partner.clone(), grant: grant.clone() }, "users", Vec::new())
        .await
        .expect("app-only read");
    assert!(!users.is_empty());

    let wrong = Grant::App {
        client_id: automation.client_id.clone(),
        credential: AppCredential::Secret(SecretString::from("not-the-secret".to_string())),
    };
    auth.cache.clear().await.unwrap();
    let err = auth.access_token(&partner, &wrong).await.expect_err("wrong secret");
    assert_eq!(token_code(&err), Some(7000215));
    let Error::Token(t) = err.root() else { panic!() };
    assert_eq!((t.status, t.error.as_str()), (401, "invalid_client"));

    let woodgrove = app("Woodgrove tenantscope reader");
    let expired = Grant::App {
        client_id: woodgrove.client_id.clone(),
        credential: AppCredential::Secret(SecretString::from(woodgrove.client_secret.expect("secret"))),
    };
    let err = auth.access_token(&env.tenant("woodgrovebank"), &expired).await.expect_err("expired secret");
    assert_eq!(token_code(&err), Some(7000222));

    let unknown = Grant::App {
        client_id: "00000000-1111-2222-3333-444444444444".into(),
        credential: AppCredential::Secret(SecretString::from("x".to_string())),
    };
    let err = auth.access_token(&partner, &unknown).await.expect_err("unknown app");
    assert_eq!(token_code(&err), Some(700016));
}

#[tokio::test]
async fn client_credentials_with_a_certificate_rs256_and_ps256() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let cert = rcgen::CertificateParams::new(vec!["app.example".to_string()]).unwrap().self_signed(&key).unwrap();
    let pem = cert.pem();
    let world = format!(
        r#"
name = "cert"
seed = 5
[[tenants]]
key = "home"
name = "Cert Home"
domain = "certhome.onmicrosoft.com"
kind = "customer"
licences = [{{ sku = "SPB", seats = 5 }}]
extra_users = 3
[[tenants.consents]]
app = "certapp"
application = "all"
[[apps]]
key = "certapp"
client_id = "6c7d8e9f-0a1b-4c2d-8e3f-405162738495"
name = "Cert app"
home = "home"
application = ["User.Read.All"]
[[apps.certificates]]
name = "c1"
pem = """{pem}"""
expires = "+30d"
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.toml");
    std::fs::write(&path, world).unwrap();
    let env = Env::with_world(sim::WorldSource::File(path)).await;
    let auth = env.auth();
    let tenant = env.tenant("certhome");
    for pss in [false, true] {
        let grant = Grant::App {
            client_id: "6c7d8e9f-0a1b-4c2d-8e3f-405162738495".into(),
            credential: AppCredential::Certificate {
                private_key_pem: SecretString::from(key.serialize_pem()),
                certificate_pem: pem.clone(),
                pss,
            },
        };
        auth.cache.clear().await.unwrap();
        let t = auth.access_token(&tenant, &grant).await.unwrap_or_else(|e| panic!("pss={pss}: {e}"));
        assert_eq!(t.claims.unwrap().roles, vec!["User.Read.All".to_string()]);
    }
    // A different key with the same certificate fails signature validation.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let bad = Grant::App {
        client_id: "6c7d8e9f-0a1b-4c2d-8e3f-405162738495".into(),
        credential: AppCredential::Certificate {
            private_key_pem: SecretString::from(other.serialize_pem()),
            certificate_pem: pem,
            pss: false,
        },
    };
    auth.cache.clear().await.unwrap();
    let err = auth.access_token(&tenant, &bad).await.expect_err("wrong key");
    assert_eq!(token_code(&err), Some(700027));
}

#[tokio::test]
async fn authorization_code_with_pkce_through_a_loopback_redirect() {
    let env = Env::start().await;
    let auth = env.auth();
    let browser = env.browser();
    let person = env.person(MEGAN);
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let driver = tokio::spawn(async move {
        let url = rx.await.expect("authorize URL");
        browser.complete_authorize(&url, &person).await
    });
    let mut tx = Some(tx);
    let account = auth
        .login_browser("organizations", AccountRole::Partner, std::time::Duration::from_secs(60), |url| {
            if let Some(tx) = tx.take() {
                let _ = tx.send(url.to_string());
            }
        })
        .await
        .expect("browser sign-in");
    driver.await.expect("driver").expect("scripted user completes the sign-in");
    assert!(account.claims.unwrap().has_mfa());
    assert!(auth.access_token(&env.tenant("northwindtraders"), &Grant::Partner).await.is_ok());
}

#[tokio::test]
async fn concurrent_requests_for_one_token_make_one_token_request() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    let tenant = env.tenant("tailspintoys");
    let before = env.control("GET", "/_sim/counters", json!({})).await["token_requests"].as_u64().unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let auth = auth.clone();
            let tenant = tenant.clone();
            tokio::spawn(async move {
                auth.access_token(&tenant, &Grant::Partner).await.map(|t| t.secret.expose_secret().to_string())
            })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap().expect("token"));
    }
    let after = env.control("GET", "/_sim/counters", json!({})).await["token_requests"].as_u64().unwrap();
    assert_eq!(after - before, 1, "single flight");
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn the_cache_persists_rotation_and_clears_per_tenant() {
    let env = Env::start().await;
    let store = Arc::new(MemoryTokenStore::default());
    let auth = env.auth_with(store.clone(), None);
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    let rt_before = store.list().await.unwrap().into_iter().find(|t| t.kind == microsoft::TokenKind::Refresh).unwrap();
    let northwind = env.tenant("northwindtraders");
    auth.access_token(&northwind, &Grant::Partner).await.unwrap();
    let rt_after = store.list().await.unwrap().into_iter().find(|t| t.kind == microsoft::TokenKind::Refresh).unwrap();
    assert!(rt_after.issued_at >= rt_before.issued_at, "the rotated refresh token was persisted");
    // A second authenticator over the same store is served from it.
    let again = env.auth_with(store.clone(), None);
    assert!(again.access_token(&northwind, &Grant::Partner).await.unwrap().from_cache);
    assert_eq!(again.clear_tenant_tokens(&northwind).await.unwrap(), 1);
    assert!(!again.access_token(&northwind, &Grant::Partner).await.unwrap().from_cache);
    use microsoft::TokenStore;
}

#[tokio::test]
async fn graph_errors_batch_and_delta() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    let client = graph(auth.clone());
    let margie = Target { tenant: env.tenant("margiestravel"), grant: Grant::Partner };
    let err = client.get(&margie, "identity/conditionalAccess/policies", &[]).await.expect_err("no Policy.Read.All");
    let Error::Graph(g) = err.root() else { panic!("{err}") };
    assert_eq!((g.status, g.code.as_str()), (403, "Authorization_RequestDenied"));
    assert!(g.request_id.is_some());
    let wide = Target { tenant: env.tenant("wideworldimporters"), grant: Grant::Partner };
    let err = client.list(&wide, "auditLogs/signIns", Vec::new()).await.expect_err("no P1");
    let Error::Graph(g) = err.root() else { panic!("{err}") };
    assert_eq!(g.code, "Authentication_RequestFromNonPremiumTenantOrB2CTenant");

    let north = Target { tenant: env.tenant("northwindtraders"), grant: Grant::Partner };
    let results = client
        .batch(
            &north,
            vec![
                BatchItem { id: "org".into(), path: "organization".into(), headers: vec![] },
                BatchItem {
                    id: "sd".into(),
                    path: "policies/identitySecurityDefaultsEnforcementPolicy".into(),
                    headers: vec![],
                },
                BatchItem {
                    id: "nope".into(),
                    path: "users/00000000-0000-0000-0000-000000000000".into(),
                    headers: vec![],
                },
            ],
        )
        .await;
    assert_eq!(results.len(), 3);
    assert!(results[0].1.as_ref().unwrap()["value"].is_array());
    assert!(results[1].1.as_ref().unwrap()["isEnabled"].is_boolean());
    let Err(Error::Graph(g)) = &results[2].1 else { panic!("missing user") };
    assert_eq!(g.status, 404);

    let first = client.delta(&north, "users/delta?$select=id,displayName,accountEnabled").await.expect("initial delta");
    assert!(!first.changed.is_empty());
    let again = client.delta(&north, &first.delta_link).await.expect("empty delta");
    assert!(again.changed.is_empty() && again.removed.is_empty());
    env.control("POST", "/_sim/actions", json!([
        {"action": "create_user", "tenant": "northwindtraders.onmicrosoft.com", "upn": "new.hire@northwindtraders.onmicrosoft.com", "display_name": "New Hire"},
        {"action": "delete_user", "user": "andrew@northwindtraders.onmicrosoft.com"},
    ])).await;
    let changes = client.delta(&north, &again.delta_link).await.expect("delta after changes");
    assert_eq!(changes.changed.len(), 1);
    assert_eq!(changes.removed.len(), 1);
    env.control("POST", "/_sim/delta/expire", json!({})).await;
    let err = client.delta(&north, &changes.delta_link).await.expect_err("expired delta token");
    let Error::Graph(g) = err.root() else { panic!("{err}") };
    assert_eq!(g.status, 410);
}

#[tokio::test]
async fn throttling_is_honoured_without_early_retries() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    env.control("PUT", "/_sim/throttle", json!({"small": 6.0, "medium": 6.0, "large": 6.0, "app_global": 100000.0, "reports_per_10s": 5.0, "conditional_access_per_second": 1.0, "enabled": true})).await;
    env.control("POST", "/_sim/counters/reset", json!({})).await;
    let client = graph(auth.clone());
    let target = Target { tenant: env.tenant("northwindtraders"), grant: Grant::Partner };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let target = target.clone();
            tokio::spawn(async move { client.get(&target, "organization", &[]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("every request completes through Retry-After");
    }
    let counters = env.control("GET", "/_sim/counters", json!({})).await;
    assert!(counters["throttled"].as_u64().unwrap() >= 1, "the limit was reached");
    assert_eq!(counters["early_retries"].as_u64().unwrap(), 0, "no request before Retry-After elapsed");
    let _ = CLIENT;
}

#[tokio::test]
async fn transient_faults_are_retried() {
    let env = Env::start().await;
    let auth = env.auth();
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    env.control(
        "PUT",
        "/_sim/faults",
        json!({"seed": 3, "error_rate": 0.1, "reset_rate": 0.05, "truncate_rate": 0.05}),
    )
    .await;
    let client = graph(auth.clone());
    let target = Target { tenant: env.tenant("tailspintoys"), grant: Grant::Partner };
    let users = client.list(&target, "users?$top=10", Vec::new()).await.expect("paging survives faults");
    assert!(users.len() > 100);
    assert!(microsoft::http::Stats::get(&client.transport.stats.retries) > 0);
}

#[tokio::test]
async fn a_cloud_that_points_graph_elsewhere_never_receives_the_cached_tokens() {
    let env = Env::start().await;
    let store = Arc::new(MemoryTokenStore::default());
    let auth = env.auth_with(store.clone(), None);
    env.login(&auth, MEGAN, "organizations", AccountRole::Partner).await.expect("sign in");
    let northwind = env.tenant("northwindtraders");
    auth.access_token(&northwind, &Grant::Partner).await.expect("a cached GDAP token");

    // Another host that counts every connection: a token can only reach it over one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let connections = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    // The same name and sign-in URL as the cloud the partner signed in to; only Graph differs.
    let cloud = microsoft::Cloud { graph_url: url::Url::parse(&elsewhere).unwrap(), ..env.cloud.clone() };
    let transport =
        microsoft::http::Transport::new(&cloud, microsoft::http::TransportOptions::default(), None).expect("transport");
    let other = Arc::new(microsoft::Authenticator::new(cloud, transport, store.clone(), CLIENT));

    let err = other.account().await.expect_err("a sign-in for another configuration of the cloud is not used");
    assert!(err.to_string().contains("run `tenantscope login` again"), "{err}");
    assert!(err.to_string().contains(&elsewhere), "the message names the cloud in use: {err}");
    let err = graph(other.clone())
        .get(&Target { tenant: northwind.clone(), grant: Grant::Partner }, "users", &[])
        .await
        .expect_err("no token for a Graph the sign-in was not made for");
    assert!(err.to_string().contains("tenantscope login"), "{err}");
    assert!(other.accounts().await.unwrap().is_empty(), "the other configuration's accounts are not listed");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "the other Graph host was never contacted");

    // The original configuration still works from the same store.
    assert!(auth.access_token(&northwind, &Grant::Partner).await.unwrap().from_cache);
}
