//! The client against arbitrary answers: whatever status, headers and body the token endpoint or
//! Graph sends (random bytes, random JSON, or real shapes with fields of the wrong type), a token
//! request and a Graph read end within a bounded time in a value or a typed error, never a panic;
//! the HAR trace of every such exchange is valid JSON and holds none of the secrets; a cloud file
//! of any content is read or refused with a configuration error.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::{get, post};
use common::serve_tls;
use microsoft::graph::{GraphClient, GraphOptions, Target};
use microsoft::har::HarRecorder;
use microsoft::http::{Transport, TransportOptions};
use microsoft::retry::RetryPolicy;
use microsoft::{AppCredential, Authenticator, Cloud, Error, Grant, MemoryTokenStore, SecretString};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const SECRET: &str = "fuzz-client-secret-Zq8";
/// A well-formed unsigned JWT, so that Graph reads can start.
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJ0aWQiOiJ0In0.sig";

/// One answer the server gives.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: Option<&'static str>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Real shapes with each field replaced, at random, by any JSON value.
fn shaped() -> impl Strategy<Value = Value> {
    let fields = [
        "access_token",
        "refresh_token",
        "expires_in",
        "token_type",
        "client_info",
        "id_token",
        "error",
        "error_description",
        "error_codes",
        "suberror",
        "claims",
        "trace_id",
        "correlation_id",
        "value",
        "@odata.nextLink",
        "@odata.deltaLink",
        "responses",
    ];
    let base = json!({
        "token_type": "Bearer", "expires_in": 3600, "access_token": TOKEN, "refresh_token": "1.AXfuzz-refresh",
        "error": "invalid_grant", "error_description": "AADSTS50076: MFA required.\r\nTrace ID: x", "error_codes": [50076],
        "value": [{"id": "1"}], "@odata.nextLink": "https://127.0.0.1:1/v1.0/users?$skiptoken=x",
    });
    prop::collection::vec((prop::sample::select(fields.to_vec()), any_json()), 0..5).prop_map(move |changes| {
        let mut v = base.clone();
        for (k, x) in changes {
            v[k] = x;
        }
        v
    })
}

fn answers() -> impl Strategy<Value = Answer> {
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        shaped().prop_map(|v| v.to_string().into_bytes()),
        shaped().prop_map(|v| format!("{{\"error\": {v}}}").into_bytes()),
    ];
    (
        prop::sample::select(vec![200u16, 200, 200, 204, 302, 400, 401, 403, 404, 410, 429, 500, 503]),
        prop::sample::select(vec![
            None,
            Some("application/json"),
            Some("text/html"),
            Some("application/json; charset=utf-8"),
        ]),
        // Retry-After values the client either honours at once or refuses to wait for; a
        // plausible wait (say 30 s) would only make the test slow.
        prop::option::of(
            prop::sample::select(vec!["0", "-3", "1", "soon", "", " 99999999999", "1e9"]).prop_map(str::to_string),
        ),
        body,
    )
        .prop_map(|(status, content_type, retry_after, body)| Answer { status, content_type, retry_after, body })
}

fn respond(a: &Answer) -> Response {
    let mut r = Response::builder().status(a.status);
    if let Some(t) = a.content_type {
        r = r.header("content-type", t);
    }
    if let Some(s) = &a.retry_after {
        r = r.header("retry-after", s.as_str());
    }
    r.body(Body::from(a.body.clone())).unwrap_or_default()
}

struct Fuzz {
    token: Arc<Mutex<Answer>>,
    graph: Arc<Mutex<Answer>>,
    client: GraphClient,
    har: Arc<HarRecorder>,
}

async fn fuzz() -> Fuzz {
    let ok = Answer {
        status: 200,
        content_type: Some("application/json"),
        retry_after: None,
        body: json!({"token_type": "Bearer", "expires_in": 3600, "access_token": TOKEN}).to_string().into_bytes(),
    };
    let token = Arc::new(Mutex::new(ok.clone()));
    let graph = Arc::new(Mutex::new(ok));
    let (t, g) = (token.clone(), graph.clone());
    let router = Router::new()
        .route(
            "/t/oauth2/v2.0/token",
            post(move || {
                let t = t.clone();
                async move { respond(&t.lock().unwrap().clone()) }
            }),
        )
        .route(
            "/v1.0/{*rest}",
            get(move || {
                let g = g.clone();
                async move { respond(&g.lock().unwrap().clone()) }
            }),
        );
    let (addr, pem) = serve_tls(router).await;
    let base = url::Url::parse(&format!("https://127.0.0.1:{}", addr.port())).unwrap();
    let cloud = Cloud {
        name: "fuzz".into(),
        login_url: base.clone(),
        graph_url: base,
        graph_resource: "https://graph.microsoft.com".into(),
        ca_pem: Some(pem.into_bytes()),
        ca_file: None,
    };
    let har = Arc::new(HarRecorder::new());
    let options = TransportOptions {
        max_body: 64 * 1024,
        request_timeout: Duration::from_secs(5),
        ..TransportOptions::default()
    };
    let transport = Transport::new(&cloud, options, Some(har.clone())).unwrap();
    let mut auth = Authenticator::new(cloud, transport, Arc::new(MemoryTokenStore::default()), "client");
    auth.oauth.retry = RetryPolicy::quick();
    let auth = Arc::new(auth);
    let client = GraphClient::new(auth, GraphOptions { retry: RetryPolicy::quick(), ..GraphOptions::default() });
    Fuzz { token, graph, client, har }
}

fn target() -> Target {
    Target {
        tenant: "t".into(),
        grant: Grant::App {
            client_id: "client".into(),
            credential: AppCredential::Secret(SecretString::from(SECRET.to_string())),
        },
    }
}

/// An error must be one of the kinds callers handle, with its fields kept.
fn typed(e: &Error) -> bool {
    matches!(
        e.root(),
        Error::Token(_)
            | Error::Graph(_)
            | Error::Protocol { .. }
            | Error::Transport(_)
            | Error::HostNotAllowed { .. }
            | Error::Claims(_)
    )
}

fn check_har(har: &HarRecorder) {
    let v = har.to_json();
    let text = v.to_string();
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "the HAR is JSON");
    assert!(!text.contains(SECRET), "the client secret reached the HAR");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.har");
    har.write(&path).expect("the HAR is written");
    assert!(serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()).is_ok());
}

#[test]
fn token_and_graph_responses_of_any_shape_end_in_a_value_or_a_typed_error() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let f = rt.block_on(fuzz());
    let mut runner =
        TestRunner::new(Config { cases: 128, max_shrink_iters: 32, failure_persistence: None, ..Config::default() });
    runner
        .run(&(answers(), answers()), |(token, graph)| {
            *f.token.lock().unwrap() = token;
            *f.graph.lock().unwrap() = graph;
            rt.block_on(async {
                let auth = &f.client.auth;
                auth.clear_tenant_tokens("t").await.unwrap();
                let t = target();
                let got = tokio::time::timeout(Duration::from_secs(30), auth.access_token("t", &t.grant)).await;
                let got = got.map_err(|_| TestCaseError::fail("the token request hung"))?;
                if let Err(e) = &got {
                    prop_assert!(typed(e), "untyped token error: {e:?}");
                }
                // Graph is read with whatever token was obtained, or with a valid one.
                if got.is_err() {
                    *f.token.lock().unwrap() = Answer {
                        status: 200,
                        content_type: Some("application/json"),
                        retry_after: None,
                        body: json!({"token_type": "Bearer", "expires_in": 3600, "access_token": TOKEN})
                            .to_string()
                            .into_bytes(),
                    };
                }
                let read = tokio::time::timeout(Duration::from_secs(30), f.client.list(&t, "users", Vec::new())).await;
                let read = read.map_err(|_| TestCaseError::fail("the Graph read hung"))?;
                if let Err(e) = &read {
                    prop_assert!(typed(e), "untyped Graph error: {e:?}");
                }
                Ok(())
            })?;
            check_har(&f.har);
            Ok(())
        })
        .unwrap();
}

#[test]
fn cloud_files_of_any_content_are_read_or_refused_as_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"name": "x", "login_url": "https://login.example", "graph_url": "https://graph.example", "graph_resource": "https://graph.example"});
    let mut runner = TestRunner::new(Config { cases: 300, failure_persistence: None, ..Config::default() });
    let texts = prop_oneof![
        ".{0,200}",
        any_json().prop_map(|v| v.to_string()),
        prop::collection::vec(
            (
                prop::sample::select(vec!["name", "login_url", "graph_url", "graph_resource", "ca_file", "extra"]),
                any_json()
            ),
            0..4
        )
        .prop_map(move |changes| {
            let mut v = good.clone();
            for (k, x) in changes {
                v[k] = x;
            }
            v.to_string()
        }),
    ];
    runner
        .run(&texts, |text| {
            let path = dir.path().join("cloud.json");
            std::fs::write(&path, &text).unwrap();
            match Cloud::from_file(&path) {
                Ok(c) => {
                    prop_assert_eq!(c.login_url.scheme(), "https");
                    prop_assert_eq!(c.graph_url.scheme(), "https");
                }
                Err(e) => prop_assert!(matches!(e, Error::Config(_)), "{e:?}"),
            }
            Ok(())
        })
        .unwrap();
}
