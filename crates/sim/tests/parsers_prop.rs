//! Property tests of the parsers that read client input: the token endpoint's form parser and grant
//! handling (driven in-process through the identity router), the scope parser, the Graph bearer-token
//! check, the OData query parser, and the time and generator-spec parsers of world files.
//!
//! Each property asserts what the answer must be, not only that nothing panicked: an AAD- or Graph-shaped
//! error with a 4xx status, or a documented success.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use tower::ServiceExt;

const KNOWN: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "code",
    "device_code",
    "refresh_token",
    "redirect_uri",
    "code_verifier",
    "username",
    "password",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 ._~:/%+=&-]{0,40}",
        any::<String>(),
        Just("\u{202E}\u{0000}\u{1F4A5}".to_string()),
        Just("x".repeat(5000)),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "client_credentials", "refresh_token", "password", "authorization_code", "device_code",
            "urn:ietf:params:oauth:grant-type:device_code", APP, AUTOMATION, AUTOMATION_SECRET, GRAPH_DEFAULT,
            USER_SCOPES, MEGAN, "openid", ".default", "https://graph.microsoft.com/", "https://x.example/.default",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.sig",
        ])
        .prop_map(str::to_string),
        2 => text(),
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![4 => prop::sample::select(KNOWN.to_vec()).prop_map(str::to_string), 1 => text()];
    prop::collection::vec((key, value()), 0..10)
}

fn tenant_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "common", "organizations", "lakesideit.onmicrosoft.com", "northwindtraders.onmicrosoft.com",
            "litwareinc.onmicrosoft.com", "nosuch.onmicrosoft.com",
        ])
        .prop_map(str::to_string),
        1 => "[a-zA-Z0-9._-]{1,30}",
        1 => any::<String>().prop_map(|s| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()),
    ]
    .prop_filter("a path segment", |s| !s.is_empty() && s != "." && s != "..")
}

/// Forms that start valid for each grant (so that generated requests reach deep into the grant logic),
/// then get mutated: a key dropped, a value replaced, a key repeated or a random pair added.
fn forms(megan_password: String) -> impl Strategy<Value = Vec<(String, String)>> {
    let own = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let templates = vec![
        own(&[
            ("grant_type", "client_credentials"),
            ("client_id", AUTOMATION),
            ("client_secret", AUTOMATION_SECRET),
            ("scope", GRAPH_DEFAULT),
        ]),
        own(&[
            ("grant_type", "password"),
            ("client_id", APP),
            ("username", LEGACY),
            ("password", "Lakeside-Legacy-2019!"),
            ("scope", USER_SCOPES),
            ("client_info", "1"),
        ]),
        own(&[
            ("grant_type", "password"),
            ("client_id", APP),
            ("username", MEGAN),
            ("password", &megan_password),
            ("scope", USER_SCOPES),
        ]),
        own(&[
            ("grant_type", "refresh_token"),
            ("client_id", APP),
            ("refresh_token", "1.AXsim-unknown"),
            ("scope", USER_SCOPES),
        ]),
        own(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", APP),
            ("device_code", "DAQAB-x"),
        ]),
        own(&[
            ("grant_type", "authorization_code"),
            ("client_id", APP),
            ("code", "1.AXsimcode-x"),
            ("redirect_uri", "http://localhost"),
            ("code_verifier", "v"),
        ]),
        own(&[("client_id", APP), ("scope", USER_SCOPES)]),
    ];
    let mutation = (0u8..5, any::<prop::sample::Index>(), prop::sample::select(KNOWN.to_vec()), value());
    (prop::sample::select(templates), prop::collection::vec(mutation, 0..3)).prop_map(|(mut form, mutations)| {
        for (kind, index, key, value) in mutations {
            match kind {
                0 if !form.is_empty() => {
                    form.remove(index.index(form.len()));
                }
                1 if !form.is_empty() => {
                    let i = index.index(form.len());
                    form[i].1 = value;
                }
                2 if !form.is_empty() => {
                    let i = index.index(form.len());
                    form.push((form[i].0.clone(), value));
                }
                _ => form.push((key.to_string(), value)),
            }
        }
        form
    })
}

/// Asserts an identity-platform error body's essentials and returns its AADSTS code.
fn aad_code(status: u16, body: &Value) -> u64 {
    assert!(matches!(status, 400 | 401), "status {status}: {body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    let codes = body["error_codes"].as_array().expect("error_codes");
    assert_eq!(codes.len(), 1, "{body}");
    let code = codes[0].as_u64().expect("numeric code");
    assert!(body["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{code}: ")), "{body}");
    code
}

#[test]
fn token_and_device_code_endpoints_answer_any_form_with_a_shaped_error_or_tokens() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let sim = rt.block_on(TestSim::demo());
    let router = sim::identity::router().with_state(sim.running.sim.clone());
    // A fixed seed: the assertions after the run say which outcomes the cases must reach, and with
    // a fresh seed each time a rare one (a wrong client secret) was occasionally missed.
    let mut runner = TestRunner::new_with_rng(
        Config { cases: 400, failure_persistence: None, ..Config::default() },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let body = prop_oneof![
        8 => forms(sim.password(MEGAN)).prop_map(Some),
        1 => pairs().prop_map(Some),
        1 => Just(None),
    ];
    let strategy = (tenant_segment(), body, prop::bool::weighted(0.15), prop::bool::weighted(0.9), any::<Vec<u8>>());
    let sent = std::cell::Cell::new(0u32);
    let codes = std::cell::RefCell::new(std::collections::BTreeSet::new());
    runner
        .run(&strategy, |(tenant, pairs, device_endpoint, form_type, raw)| {
            let body: Vec<u8> = match pairs {
                None => raw,
                Some(pairs) => form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .finish()
                    .into_bytes(),
            };
            let endpoint = if device_endpoint { "devicecode" } else { "token" };
            let Ok(req) = Request::post(format!("/{tenant}/oauth2/v2.0/{endpoint}"))
                .header(
                    "content-type",
                    if form_type { "application/x-www-form-urlencoded" } else { "application/json" },
                )
                .body(Body::from(body))
            else {
                // The generated segment is not a valid URI; no client could send it.
                return Ok(());
            };
            let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
            sent.set(sent.get() + 1);
            let status = resp.status().as_u16();
            let bytes = rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
            let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
            if status == 200 {
                let ok = body.get("access_token").is_some() || body.get("device_code").is_some();
                prop_assert!(ok, "200 without tokens: {}", body);
                codes.borrow_mut().insert(0);
            } else {
                codes.borrow_mut().insert(aad_code(status, &body));
            }
            Ok(())
        })
        .unwrap();
    // The generated requests reach deep into the grants, not only the first checks.
    assert!(sent.get() >= 300, "only {} requests were sent", sent.get());
    let codes = codes.into_inner();
    eprintln!("AADSTS codes seen: {codes:?}");
    assert!(codes.len() >= 12, "too few distinct outcomes: {codes:?}");
    for expected in [0, 50076, 7000215, 900144, 9000411, 70003] {
        assert!(codes.contains(&expected), "AADSTS{expected} never reached: {codes:?}");
    }
}

#[test]
fn form_parser_round_trips_and_rejects_repeated_known_parameters() {
    use sim::identity::token::Form;
    let mut runner = TestRunner::new(Config { cases: 2000, failure_persistence: None, ..Config::default() });
    runner
        .run(&(prop::collection::btree_map("[a-z_]{1,12}", text(), 0..8), any::<Vec<u8>>()), |(map, raw)| {
            // Arbitrary bytes parse to a form or to a duplicate-parameter error; nothing else.
            if let Err(e) = Form::parse(&raw) {
                prop_assert_eq!(e.code, 9000411);
            }
            let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(map.iter()).finish();
            let form = Form::parse(encoded.as_bytes()).expect("distinct keys parse");
            for (k, v) in &map {
                prop_assert_eq!(form.get(k), if v.is_empty() { None } else { Some(v.as_str()) });
            }
            for known in KNOWN {
                let twice = format!("{known}=a&{known}=b");
                prop_assert_eq!(Form::parse(twice.as_bytes()).err().map(|e| e.code), Some(9000411));
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn scope_parser_never_mixes_default_with_named_scopes() {
    use sim::identity::issue::parse_scopes;
    let base = "https://127.0.0.1:1";
    let word = prop_oneof![
        prop::sample::select(vec![
            "openid",
            "profile",
            "offline_access",
            "email",
            "User.Read",
            "https://graph.microsoft.com/.default",
            "https://graph.microsoft.com/User.Read.All",
            "00000003-0000-0000-c000-000000000000/.default",
            "https://outlook.office.com/.default",
            "/",
            "a/"
        ])
        .prop_map(str::to_string),
        "[ -~]{0,20}",
    ];
    let mut runner = TestRunner::new(Config { cases: 3000, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(word, 0..6), |words| {
            let scope = words.join(" ");
            match parse_scopes(&scope, base) {
                Ok(req) => {
                    prop_assert!(!req.default || req.graph.is_empty(), "{scope:?} gave {req:?}");
                    for g in &req.graph {
                        prop_assert!(!g.is_empty());
                    }
                }
                Err(e) => prop_assert!([70011, 700022, 500011].contains(&e.code), "{scope:?}: {}", e.code),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn graph_rejects_any_forged_bearer_token_with_invalid_authentication_token() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let sim = rt.block_on(TestSim::demo());
    let real = rt.block_on(sim.automation_token());
    let parts: Vec<String> = real.split('.').map(str::to_string).collect();
    let segment = prop_oneof![
        Just(parts[0].clone()),
        Just(parts[1].clone()),
        Just(parts[2].clone()),
        "[A-Za-z0-9_-]{0,60}",
        any::<String>(),
    ];
    let token = prop_oneof![
        prop::collection::vec(segment, 0..5).prop_map(|s| s.join(".")),
        any::<String>(),
        // The real token with one character changed somewhere.
        (0..real.len(), any::<char>()).prop_map({
            let real = real.clone();
            move |(i, c)| {
                let mut s: Vec<char> = real.chars().collect();
                s[i] = c;
                s.into_iter().collect::<String>()
            }
        }),
    ];
    let mut runner = TestRunner::new(Config { cases: 1500, failure_persistence: None, ..Config::default() });
    runner
        .run(&token, |token| {
            let mut headers = HeaderMap::new();
            let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else { return Ok(()) };
            headers.insert("authorization", value);
            match sim::graph::authenticate(&sim.running.sim, &headers) {
                Ok(claims) => prop_assert_eq!(token.trim(), real.as_str(), "accepted a forged token: {:?}", claims),
                Err(e) => {
                    prop_assert_eq!(e.status.as_u16(), 401);
                    prop_assert_eq!(e.code.as_str(), "InvalidAuthenticationToken");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn graph_answers_any_query_string_with_data_or_a_shaped_error() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let sim = rt.block_on(TestSim::demo());
    let token = rt.block_on(sim.automation_token());
    let router = sim::graph::router().with_state(sim.running.sim.clone());
    let option = prop_oneof![
        Just("$select"),
        Just("$filter"),
        Just("$top"),
        Just("$skiptoken"),
        Just("$count"),
        Just("$search"),
        Just("$expand"),
        Just("$orderby"),
        Just("$deltatoken"),
        Just("$skip"),
        Just("other"),
    ];
    let value = prop_oneof![
        Just("displayName".to_string()),
        Just("accountEnabled eq true".to_string()),
        Just("startswith(displayName,'a')".to_string()),
        Just("endswith(mail,'@x')".to_string()),
        Just("true".to_string()),
        Just("999".to_string()),
        Just("1000".to_string()),
        Just("\"displayName:a\"".to_string()),
        Just("latest".to_string()),
        any::<String>(),
    ];
    let path = prop::sample::select(vec![
        "users",
        "users/delta",
        "groups",
        "groups/delta",
        "users/$count",
        "organization",
        "subscribedSkus",
        "devices",
        "servicePrincipals",
        "roleManagement/directory/roleAssignments",
        "auditLogs/signIns",
    ]);
    let strategy = (path, prop::collection::vec((option, value), 0..4), any::<bool>());
    let mut runner = TestRunner::new(Config { cases: 300, failure_persistence: None, ..Config::default() });
    runner
        .run(&strategy, |(path, options, eventual)| {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(options.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            let mut req =
                Request::get(format!("/v1.0/{path}?{query}")).header("authorization", format!("Bearer {token}"));
            if eventual {
                req = req.header("ConsistencyLevel", "eventual");
            }
            let resp = rt.block_on(router.clone().oneshot(req.body(Body::empty()).unwrap())).unwrap();
            let status = resp.status().as_u16();
            let bytes = rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
            prop_assert!(status < 500, "{path}?{query}: {status}");
            if status == 200 {
                if path != "users/$count" {
                    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
                    prop_assert!(body.get("value").is_some(), "{}", body);
                }
            } else if status != 429 {
                let body: Value = serde_json::from_slice(&bytes).expect("JSON error");
                prop_assert!(body["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", body);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn world_time_and_generator_specs_parse_or_fail_cleanly() {
    use chrono::Utc;
    use sim::world::file::parse_time;
    use sim::world::generate::Spec;
    let now = Utc::now();
    let offset =
        prop_oneof!["[+-][0-9]{1,25}[dhms]([0-9]{1,25}[dhms]){0,3}", "[+-]?[0-9dhmsnow:TZ.-]{0,30}", any::<String>(),];
    let mut runner = TestRunner::new(Config { cases: 4000, failure_persistence: None, ..Config::default() });
    runner
        .run(&offset, |text| {
            if let Ok(t) = parse_time(&text, now) {
                // Offsets are bounded to a century, so that every parsed time is usable in arithmetic.
                let bound = chrono::Duration::days(sim::world::file::MAX_OFFSET_DAYS);
                let rfc = chrono::DateTime::parse_from_rfc3339(text.trim()).is_ok();
                prop_assert!(rfc || (t - now).abs() <= bound, "{text:?} -> {t}");
            }
            Ok(())
        })
        .unwrap();
    let spec = "[a-z=,.0-9]{0,40}";
    runner
        .run(&spec, |text| {
            if let Ok(s) = Spec::parse(&text) {
                prop_assert!(s.users_min <= s.users_max && s.users_max > 0 && s.customers <= 100_000);
                prop_assert!((0.0..=1.0).contains(&s.broken));
            }
            Ok(())
        })
        .unwrap();
}
