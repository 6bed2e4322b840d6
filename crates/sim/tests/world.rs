//! Worlds from files (and the example in docs/simulator.md), clear errors for bad files, deterministic
//! generation, and the world settings the simulator honours.

mod common;

use chrono::Utc;
use common::*;
use serde_json::json;
use sim::WorldSource;
use sim::world::file::{WorldError, WorldFile};
use sim::world::generate::{Breakage, Spec, breakage_of, generate};

const SMALL_WORLD: &str = r#"
name = "small"
seed = 42

[settings]
device_code_interval = 2
key_rotation_minutes = 30

[[apps]]
key = "reader"
name = "Contoso reader"
home = "contoso"
application = ["User.Read.All", "Organization.Read.All"]
secrets = [{ name = "s1", value = "contoso-secret-1", expires = "+90d" }]

[[tenants]]
key = "contoso"
name = "Contoso"
domain = "contoso.onmicrosoft.com"
kind = "customer"
licences = [{ sku = "SPE_E3", seats = 10 }]
extra_users = 4

[[tenants.users]]
upn = "ada"
name = "Ada Lovelace"
password = "Contoso-Ada-1!"
roles = ["Global Reader"]
groups = ["Readers"]
last_sign_in = "-2h"

[[tenants.groups]]
name = "Readers"

[[tenants.consents]]
app = "reader"
application = "all"
"#;

fn compile(text: &str) -> Result<sim::world::World, WorldError> {
    WorldFile::parse(text)?.compile(Utc::now())
}

fn error_of(text: &str) -> String {
    match compile(text) {
        Ok(_) => panic!("the world compiled but should not:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_file_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.toml");
    std::fs::write(&path, SMALL_WORLD).unwrap();
    let sim = TestSim::start(WorldSource::File(path)).await;
    assert_eq!(sim.running.ready.tenants.len(), 1);
    let contoso = &sim.running.ready.tenants[0];
    assert_eq!(contoso.domain, "contoso.onmicrosoft.com");
    assert_eq!(contoso.role, "customer");
    // Ids are derived from the seed, so they are the same on every run.
    assert_eq!(contoso.id, sim::world::file::stable_id(42, &["tenant", "contoso"]).to_string());
    let app = sim.running.ready.apps[0].client_id.clone();
    assert_eq!(sim.running.ready.apps[0].client_secret.as_deref(), Some("contoso-secret-1"));
    let r = sim.client_credentials(&contoso.id, &app, "contoso-secret-1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&token)["roles"], json!(["User.Read.All", "Organization.Read.All"]));
    let users = sim.graph(&token, "/v1.0/users").await.json();
    assert_eq!(users["value"].as_array().unwrap().len(), 5);
    assert!(users["value"].as_array().unwrap().iter().any(|u| u["userPrincipalName"] == "ada@contoso.onmicrosoft.com"));
    let world = sim.running.sim.world();
    assert_eq!(world.settings.device_code_interval, 2);
    assert_eq!(world.settings.token_lifetime_min, 60, "unnamed settings keep their defaults");
    assert_eq!(world.settings.refresh_inactivity_days, 90);
    let t = world.resolve_tenant("contoso.onmicrosoft.com").unwrap();
    let readers = t.groups.iter().find(|g| g.display_name == "Readers").unwrap();
    assert_eq!(readers.members.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_minutes_rotates_the_signing_key_on_the_simulated_clock() {
    let sim = TestSim::start(WorldSource::Given(Box::new(compile(SMALL_WORLD).unwrap()))).await;
    let tenant = sim.running.ready.tenants[0].id.clone();
    let app = sim.running.ready.apps[0].client_id.clone();
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let token = |sim: &TestSim| {
        let (tenant, app) = (tenant.clone(), app.clone());
        let http = sim.http.clone();
        let url = sim.url(&format!("/{tenant}/oauth2/v2.0/token"));
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", app.as_str()),
                ("client_secret", "contoso-secret-1"),
                ("scope", GRAPH_DEFAULT),
            ];
            let r = Resp::read(http.post(url).form(&form).send().await.unwrap()).await;
            r.json()["access_token"].as_str().unwrap().to_string()
        }
    };
    let first = token(&sim).await;
    sim.advance("10m").await;
    let second = token(&sim).await;
    assert_eq!(kid(&first), kid(&second), "not yet 30 minutes");
    sim.advance("21m").await;
    let third = token(&sim).await;
    assert_ne!(kid(&first), kid(&third), "rotated after 30 minutes");
    let jwks = sim.get(&format!("/{tenant}/discovery/v2.0/keys")).await.json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(sim.graph(&second, "/v1.0/organization").await.status, 200);
}

#[test]
fn bad_files_fail_with_errors_that_say_where() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("an unknown top-level key", "colour = \"blue\"\n", &["unknown field `colour`", "line 1"]),
        (
            "an unknown tenant key",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\nsize = 3\n",
            &["unknown field `size`", "line 6"],
        ),
        (
            "an unknown user key",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n[[tenants.users]]\nupn = \"x\"\nname = \"X\"\nmfa_method = \"sms\"\n",
            &["unknown field `mfa_method`"],
        ),
        (
            "a bad tenant kind",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"reseller\"\n",
            &["unknown variant `reseller`", "partner", "customer"],
        ),
        ("not TOML at all", "[[tenants]\nkey =", &["not valid TOML"]),
        (
            "a domain that is not the initial one",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.example\"\nkind = \"customer\"\n",
            &["tenant 'a'", "*.onmicrosoft.com"],
        ),
        (
            "a duplicate tenant key",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n[[tenants]]\nkey = \"a\"\nname = \"B\"\ndomain = \"b.onmicrosoft.com\"\nkind = \"customer\"\n",
            &["tenant key 'a' appears twice"],
        ),
        (
            "an app whose home does not exist",
            "[[apps]]\nkey = \"x\"\nname = \"X\"\nhome = \"nowhere\"\n",
            &["app 'x'", "no tenant 'nowhere'"],
        ),
        (
            "a GDAP relationship with an unknown customer",
            "[[tenants]]\nkey = \"p\"\nname = \"P\"\ndomain = \"p.onmicrosoft.com\"\nkind = \"partner\"\n[[gdap]]\nname = \"r\"\npartner = \"p\"\ncustomer = \"c\"\nroles = [\"Global Reader\"]\n",
            &["gdap 'r'", "no tenant 'c'"],
        ),
        (
            "a GDAP assignment to a group the partner lacks",
            "[[tenants]]\nkey = \"p\"\nname = \"P\"\ndomain = \"p.onmicrosoft.com\"\nkind = \"partner\"\n[[tenants]]\nkey = \"c\"\nname = \"C\"\ndomain = \"c.onmicrosoft.com\"\nkind = \"customer\"\n[[gdap]]\nname = \"r\"\npartner = \"p\"\ncustomer = \"c\"\nroles = [\"Global Reader\"]\nassignments = [{ group = \"Ghosts\" }]\n",
            &["gdap 'r'", "partner has no group 'Ghosts'"],
        ),
        (
            "an unknown directory role",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n[[tenants.users]]\nupn = \"x\"\nname = \"X\"\nroles = [\"Supreme Leader\"]\n",
            &["user 'x@a.onmicrosoft.com'", "unknown directory role 'Supreme Leader'"],
        ),
        (
            "an unknown licence SKU",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\nlicences = [{ sku = \"E99\", seats = 1 }]\n",
            &["tenant 'a'", "unknown SKU 'E99'"],
        ),
        (
            "a group member who does not exist",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n[[tenants.groups]]\nname = \"G\"\nmembers = [\"nobody\"]\n",
            &["group 'G'", "no user 'nobody@a.onmicrosoft.com'"],
        ),
        (
            "a consent for an unknown app",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n[[tenants.consents]]\napp = \"ghost\"\n",
            &["tenant 'a'", "consent for unknown app 'ghost'"],
        ),
        (
            "a policy naming an unknown location",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n[[tenants.ca_policies]]\nname = \"P\"\nusers = \"all\"\ngrant = \"block\"\noutside_locations = [\"Moon base\"]\n",
            &["tenant 'a'", "policy 'P'", "no named location Moon base"],
        ),
        (
            "a bad time unit",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n[[tenants.users]]\nupn = \"x\"\nname = \"X\"\npassword_changed = \"-3w\"\n",
            &["user 'x@a.onmicrosoft.com' password_changed", "bad unit 'w'", "use d, h, m, s"],
        ),
        (
            "a time that is not a time",
            "[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\ncreated = \"last tuesday\"\n",
            &["tenant 'a' created", "bad time 'last tuesday'", "RFC 3339"],
        ),
        (
            "an offset beyond a century",
            "[[apps]]\nkey = \"x\"\nname = \"X\"\nhome = \"a\"\nsecrets = [{ name = \"s\", value = \"v\", expires = \"+99999999999d\" }]\n[[tenants]]\nkey = \"a\"\nname = \"A\"\ndomain = \"a.onmicrosoft.com\"\nkind = \"customer\"\n",
            &["app 'x' secret 's' expires", "out of range"],
        ),
        (
            "a setting out of range",
            "[settings]\nrefresh_inactivity_days = 0\n",
            &["settings.refresh_inactivity_days", "1 to 3650"],
        ),
        ("an unknown setting", "[settings]\ntoken_lifetime = 5\n", &["unknown field `token_lifetime`"]),
        (
            "a GDAP duration beyond two years",
            "[[tenants]]\nkey = \"p\"\nname = \"P\"\ndomain = \"p.onmicrosoft.com\"\nkind = \"partner\"\n[[tenants]]\nkey = \"c\"\nname = \"C\"\ndomain = \"c.onmicrosoft.com\"\nkind = \"customer\"\n[[gdap]]\nname = \"r\"\npartner = \"p\"\ncustomer = \"c\"\nroles = [\"Global Reader\"]\nduration_days = 1000\n",
            &["gdap 'r'", "duration_days must be 1 to 730"],
        ),
        (
            "an unknown action in a scenario",
            "[[scenarios]]\nname = \"s\"\nactions = [{ action = \"explode\" }]\n",
            &["unknown variant `explode`"],
        ),
        ("an unknown fault", "[faults]\nchaos = true\n", &["unknown field `chaos`"]),
    ];
    for (what, text, needles) in cases {
        let message = error_of(text);
        for n in *needles {
            assert!(message.contains(n), "{what}: {message:?} lacks {n:?}");
        }
    }
    // Reading a file that does not exist names the file.
    let err = sim::world::file::load(std::path::Path::new("/nonexistent/world.toml"), Utc::now()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/world.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_world_stops_the_simulator_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "colour = 1\n").unwrap();
    let mut config = sim::SimConfig::new(dir.path().join("state"));
    config.world = WorldSource::File(path);
    let err = sim::start(config).await.err().expect("start fails");
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    let mut config = sim::SimConfig::new(dir.path().join("state"));
    config.world = WorldSource::Generate("customers=lots".into());
    let err = sim::start(config).await.err().expect("start fails");
    assert!(err.to_string().contains("'lots' is not a number"), "{err}");
}

#[test]
fn generation_is_deterministic_and_breaks_a_share_of_customers() {
    let spec = Spec::parse("customers=40,users=5..30,seed=7,broken=0.25").unwrap();
    let now = Utc::now();
    let a = generate(&spec, now);
    let b = generate(&spec, now);
    let summary = |w: &sim::world::World| {
        w.tenants
            .iter()
            .map(|t| {
                let users: Vec<(String, String, Option<String>)> =
                    t.users.iter().map(|u| (u.id.to_string(), u.upn.clone(), u.totp_secret.clone())).collect();
                let sps: Vec<String> = t.service_principals.iter().map(|s| s.delegated.join(" ")).collect();
                (t.id, t.display_name.clone(), t.domain.clone(), users, sps, t.ca_policies.len(), t.devices.len())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&a), summary(&b));
    let rels =
        |w: &sim::world::World| w.gdap.iter().map(|r| (r.id.clone(), r.roles.clone(), r.end)).collect::<Vec<_>>();
    assert_eq!(rels(&a), rels(&b));
    // Another seed gives another world.
    let c = generate(&Spec::parse("customers=40,users=5..30,seed=8,broken=0.25").unwrap(), now);
    assert_ne!(summary(&a), summary(&c));
    assert_eq!(a.tenants.len(), 41);
    for t in a.tenants.iter().skip(1) {
        assert!((5..=30).contains(&t.users.len()), "{} has {} users", t.display_name, t.users.len());
    }
    // Each kind of breakage shows where breakage_of says it does.
    let partner = &a.tenants[0];
    let reader = partner.users[0].id;
    for (i, customer) in a.tenants.iter().skip(1).enumerate() {
        let roles = a.gdap_roles(partner, reader, customer.id, now);
        let consented =
            customer.service_principal(uuid::Uuid::parse_str(sim::world::generate::GENERATED_APP_ID).unwrap());
        match breakage_of(&spec, i) {
            Breakage::None | Breakage::ConditionalAccessBlock => {
                assert_eq!(roles.len(), 3, "customer {i}");
                assert!(consented.is_some());
            }
            Breakage::NoGdap | Breakage::ExpiredGdap => assert!(roles.is_empty(), "customer {i}"),
            Breakage::MissingRole => assert_eq!(roles, vec![sim::catalog::DIRECTORY_READERS.to_string()]),
            Breakage::NoConsent => assert!(consented.is_none(), "customer {i}"),
            Breakage::MissingPermission => {
                assert!(!consented.unwrap().delegated.iter().any(|s| s == "Policy.Read.All"))
            }
            Breakage::NoPremium => assert!(!customer.has_p1(), "customer {i}"),
        }
    }
    assert_eq!((0..40).filter(|i| breakage_of(&spec, *i) != Breakage::None).count(), 10);
}

#[test]
fn generator_specs_are_validated() {
    for (spec, needle) in [
        ("customers=ten", "'ten' is not a number"),
        ("users=9..3", "users range"),
        ("users=0", "users range"),
        ("colour=blue", "unknown key 'colour'"),
        ("broken=1.5", "broken must be between 0 and 1"),
        ("seed", "'seed' is not key=value"),
        ("customers=200000", "at most 100000 customers"),
        ("customers=100000,users=5000..5000", "at most"),
    ] {
        let err = Spec::parse(spec).err().unwrap_or_else(|| panic!("{spec} parsed"));
        assert!(err.to_string().contains(needle), "{spec}: {err}");
    }
    let s = Spec::parse("customers=1000,users=50..2000,seed=7").unwrap();
    assert_eq!((s.customers, s.users_min, s.users_max, s.seed), (1000, 50, 2000, 7));
}

/// The complete example world of docs/simulator.md (the ```toml block after `<!-- example-world -->`)
/// compiles and is served, so that the documentation cannot drift from the format.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_example_world_is_valid() {
    let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/simulator.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/simulator.md");
    let start = doc.find("<!-- example-world -->").expect("the example marker");
    let rest = &doc[start..];
    let open = rest.find("```toml\n").expect("a toml block after the marker") + "```toml\n".len();
    let close = rest[open..].find("\n```").expect("the end of the block") + open;
    let example = &rest[open..close];
    let world = compile(example).unwrap_or_else(|e| panic!("the documented example does not compile: {e}"));
    assert!(world.tenants.iter().any(|t| t.kind == sim::world::TenantKind::Partner));
    assert!(!world.gdap.is_empty() && !world.scenarios.is_empty());
    let sim = TestSim::start(WorldSource::Given(Box::new(world))).await;
    // The example's partner user signs in by device code and reaches the example customer through GDAP.
    let partner = sim.running.ready.tenants.iter().find(|t| t.role == "partner").unwrap().id.clone();
    let customer = sim.running.ready.tenants.iter().find(|t| t.role == "customer").unwrap().id.clone();
    let user =
        sim.running.ready.users.iter().find(|u| u.tenant_id == partner && u.totp_secret.is_some()).unwrap().upn.clone();
    let dc = sim
        .post_form(
            &format!("/{partner}/oauth2/v2.0/devicecode"),
            &[("client_id", "5f0d4d52-9c3b-4e57-a1a8-3b6b2f6a7c11"), ("scope", USER_SCOPES)],
        )
        .await;
    assert_eq!(dc.status, 200, "{}", dc.text);
    let dc = dc.json();
    sim.browser().approve_device_code(dc["user_code"].as_str().unwrap(), &sim.person(&user)).await.unwrap();
    let tokens = sim.poll_device_code(&partner, dc["device_code"].as_str().unwrap()).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let r = sim.refresh(&customer, tokens.json()["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn the_demo_world_compiles_and_has_what_the_docs_promise() {
    let w = sim::world::file::demo(Utc::now()).unwrap();
    assert_eq!(w.tenants.len(), 15);
    assert_eq!(w.settings.device_code_interval, 1);
    for (domain, p1) in [
        ("wideworldimporters.onmicrosoft.com", false),
        ("northwindtraders.onmicrosoft.com", true),
        ("alpineskihouse.onmicrosoft.com", false),
    ] {
        assert_eq!(w.resolve_tenant(domain).unwrap().has_p1(), p1, "{domain}");
    }
    assert!(w.resolve_tenant("litwareinc.onmicrosoft.com").unwrap().service_principals.is_empty());
    assert_eq!(
        w.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["after-sign-in", "fix-margie-consent"]
    );
}

/// A world whose portal app has app roles assigned to a user and to a group, asks for group
/// claims, and has a user in more groups than a token carries.
fn roles_world() -> String {
    let mut text = String::from(
        r#"
name = "roles"
seed = 7

[[apps]]
key = "portal"
name = "Operator portal"
home = "contoso"
public_client = true
delegated = ["User.Read"]
group_claims = true
app_roles = [
  { value = "Portal.Admin", assigned = ["ada@contoso.onmicrosoft.com"] },
  { value = "Portal.Engineer", name = "Engineers", assigned = ["group:Readers"] },
]

[[tenants]]
key = "contoso"
name = "Contoso"
domain = "contoso.onmicrosoft.com"
kind = "customer"

[[tenants.users]]
upn = "ada"
name = "Ada Lovelace"
password = "Contoso-Ada-1!"
groups = ["Readers"]

[[tenants.users]]
upn = "bulk"
name = "Member of Everything"
password = "Contoso-Bulk-1!"
groups = ["#,
    );
    let names: Vec<String> = (0..201).map(|i| format!("\"Team {i:03}\"")).collect();
    text.push_str(&names.join(", "));
    text.push_str("]\n\n[[tenants.groups]]\nname = \"Readers\"\n");
    for i in 0..201 {
        text.push_str(&format!("\n[[tenants.groups]]\nname = \"Team {i:03}\"\n"));
    }
    text.push_str("\n[[tenants.consents]]\napp = \"portal\"\ndelegated = \"all\"\n");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn id_tokens_carry_app_roles_and_groups_with_the_overage_past_200() {
    let world = compile(&roles_world()).expect("the roles world compiles");
    let readers = world.tenants[0].groups.iter().find(|g| g.display_name == "Readers").expect("Readers").id;
    let sim = TestSim::start(WorldSource::Given(Box::new(world))).await;
    let tenant = sim.running.ready.tenants[0].id.clone();
    let app = sim.running.ready.apps[0].client_id.clone();
    let id_token = |upn: &'static str, password: &'static str| {
        let (tenant, app, http) = (tenant.clone(), app.clone(), sim.http.clone());
        let url = sim.url(&format!("/{tenant}/oauth2/v2.0/token"));
        async move {
            let form = [
                ("grant_type", "password"),
                ("client_id", app.as_str()),
                ("username", upn),
                ("password", password),
                ("scope", "openid profile User.Read"),
            ];
            let r = Resp::read(http.post(url).form(&form).send().await.unwrap()).await;
            assert_eq!(r.status, 200, "{}", r.text);
            let token = r.json()["id_token"].as_str().expect("an ID token").to_string();
            let payload = token.split('.').nth(1).expect("payload");
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).expect("base64url");
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("claims")
        }
    };
    // Ada holds one role directly and one through the Readers group, and her one group is listed.
    let ada = id_token("ada@contoso.onmicrosoft.com", "Contoso-Ada-1!").await;
    let mut roles: Vec<&str> = ada["roles"].as_array().expect("roles").iter().filter_map(|r| r.as_str()).collect();
    roles.sort();
    assert_eq!(roles, ["Portal.Admin", "Portal.Engineer"]);
    assert_eq!(ada["groups"], json!([readers.to_string()]));
    assert!(ada.get("_claim_names").is_none());
    // In 201 groups, the token names none and points at Graph instead; no role is assigned.
    let bulk = id_token("bulk@contoso.onmicrosoft.com", "Contoso-Bulk-1!").await;
    assert!(bulk.get("groups").is_none() && bulk.get("roles").is_none(), "{bulk}");
    assert_eq!(bulk["_claim_names"]["groups"], "src1");
    let endpoint = bulk["_claim_sources"]["src1"]["endpoint"].as_str().expect("endpoint");
    assert!(
        endpoint.ends_with(&format!("/v1.0/users/{}/getMemberObjects", bulk["oid"].as_str().expect("oid"))),
        "{endpoint}"
    );
}

#[test]
fn app_role_assignments_must_name_someone_of_the_home_tenant() {
    let text = roles_world().replace("group:Readers", "group:Nobody");
    let err = error_of(&text);
    assert!(err.contains("Portal.Engineer") && err.contains("group:Nobody"), "{err}");
}
