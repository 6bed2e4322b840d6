//! Hostile servers: links and redirects to other hosts, absurd `Retry-After` values, paging loops,
//! endless and truncated bodies, garbage tokens. Each must end in a bounded, clean failure (or a
//! success where the protocol allows it), and a token must never reach a host outside the cloud.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use common::serve_tls;
use microsoft::graph::{GraphClient, GraphOptions, Target};
use microsoft::http::{Transport, TransportOptions};
use microsoft::retry::RetryPolicy;
use microsoft::{AppCredential, Authenticator, Cloud, Error, Grant, MemoryTokenStore, SecretString, TransportKind};
use serde_json::json;

#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, Option<String>)>>,
}

async fn record(State(seen): State<Arc<Seen>>, headers: HeaderMap, req: Request) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    seen.requests.lock().unwrap().push((req.uri().to_string(), auth));
    axum::Json(json!({"value": []})).into_response()
}

struct Hostile {
    graph: GraphClient,
    target: Target,
    other: Arc<Seen>,
    other_base: String,
}

async fn hostile() -> Hostile {
    let other = Arc::new(Seen::default());
    let (other_addr, other_pem) = serve_tls(Router::new().fallback(any(record)).with_state(other.clone())).await;
    let other_base = format!("https://127.0.0.1:{}", other_addr.port());
    let counter = Arc::new(AtomicU32::new(0));
    let ob = other_base.clone();
    let router = Router::new()
        .route(
            "/t/oauth2/v2.0/token",
            post(|| async {
                axum::Json(json!({"token_type": "Bearer", "expires_in": 3600, "access_token": "garbage-not-a-jwt"}))
            }),
        )
        .route(
            "/v1.0/foreign",
            get(move || {
                let ob = ob.clone();
                async move {
                    axum::Json(
                        json!({"value": [{"id": "1"}], "@odata.nextLink": format!("{ob}/v1.0/users?$skiptoken=steal")}),
                    )
                }
            }),
        )
        .route(
            "/v1.0/redirect",
            get({
                let ob = other_base.clone();
                move || {
                    let ob = ob.clone();
                    async move { (StatusCode::FOUND, [("location", format!("{ob}/v1.0/users"))]).into_response() }
                }
            }),
        )
        .route(
            "/v1.0/loop",
            get(|req: Request| async move {
                let me = format!(
                    "https://{}{}",
                    req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or(""),
                    req.uri()
                );
                axum::Json(json!({"value": [{"id": "x"}], "@odata.nextLink": me}))
            }),
        )
        .route(
            "/v1.0/retry/{kind}",
            get({
                let counter = counter.clone();
                move |axum::extract::Path(kind): axum::extract::Path<String>| {
                    let counter = counter.clone();
                    async move {
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        let value = match kind.as_str() {
                            "zero" => Some("0"),
                            "negative" => Some("-1"),
                            "huge" => Some("1000000000"),
                            _ => None,
                        };
                        if n.is_multiple_of(2) || kind == "huge" {
                            let mut resp = (
                                StatusCode::TOO_MANY_REQUESTS,
                                axum::Json(json!({"error": {"code": "TooManyRequests", "message": "slow down"}})),
                            )
                                .into_response();
                            if let Some(v) = value {
                                resp.headers_mut().insert("retry-after", v.parse().unwrap());
                            }
                            resp
                        } else {
                            axum::Json(json!({"ok": true})).into_response()
                        }
                    }
                }
            }),
        )
        .route(
            "/v1.0/endless",
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
                let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
                Response::builder().header("content-type", "application/json").body(Body::from_stream(stream)).unwrap()
            }),
        )
        .route(
            "/v1.0/cut",
            get(|| async {
                let stream = futures::stream::iter(vec![
                    Ok(bytes::Bytes::from_static(b"{\"value\": [")),
                    Err(std::io::Error::other("cut")),
                ]);
                Response::builder()
                    .header("content-type", "application/json")
                    .header("content-length", "5000")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }),
        )
        .route("/v1.0/garbage", get(|| async { "<html>this is not JSON</html>" }));
    let (addr, pem) = serve_tls(router).await;
    let base = format!("https://127.0.0.1:{}", addr.port());
    let cloud = Cloud {
        name: "hostile".into(),
        login_url: url::Url::parse(&base).unwrap(),
        graph_url: url::Url::parse(&base).unwrap(),
        graph_resource: "https://graph.microsoft.com".into(),
        ca_pem: Some(pem.into_bytes()),
        ca_file: None,
    };
    // Trust the other host too, so that only the allow-list (not TLS) can stop a request to it.
    let mut pems = cloud.ca_pem.clone().unwrap_or_default();
    pems.extend_from_slice(b"\n");
    pems.extend_from_slice(other_pem.as_bytes());
    let transport = Transport::new(
        &Cloud { ca_pem: Some(pems), ..cloud.clone() },
        TransportOptions {
            max_body: 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            ..TransportOptions::default()
        },
        None,
    )
    .unwrap();
    let auth = Arc::new(Authenticator::new(cloud, transport, Arc::new(MemoryTokenStore::default()), "client"));
    let graph = GraphClient::new(auth, GraphOptions { retry: RetryPolicy::quick(), ..GraphOptions::default() });
    let target = Target {
        tenant: "t".into(),
        grant: Grant::App {
            client_id: "client".into(),
            credential: AppCredential::Secret(SecretString::from("s3cret-value".to_string())),
        },
    };
    Hostile { graph, target, other, other_base }
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused_and_gets_nothing() {
    let h = hostile().await;
    let err = h.graph.list(&h.target, "foreign", Vec::new()).await.expect_err("foreign nextLink");
    assert!(matches!(err, Error::HostNotAllowed { .. }), "{err}");
    assert!(
        h.other.requests.lock().unwrap().is_empty(),
        "the other host received {:?}",
        h.other.requests.lock().unwrap()
    );
    let _ = &h.other_base;
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused_and_gets_nothing() {
    let h = hostile().await;
    let err = h.graph.get(&h.target, "redirect", &[]).await.expect_err("redirect");
    assert!(matches!(err.root(), Error::HostNotAllowed { .. }), "{err}");
    assert!(h.other.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn retry_after_values_zero_negative_missing_and_huge() {
    let h = hostile().await;
    for kind in ["zero", "negative", "missing"] {
        let v = h.graph.get(&h.target, &format!("retry/{kind}"), &[]).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(v["ok"], true);
    }
    let started = Instant::now();
    let err = h.graph.get(&h.target, "retry/huge", &[]).await.expect_err("huge Retry-After");
    assert!(started.elapsed() < Duration::from_secs(5), "did not wait for an absurd Retry-After");
    let Error::Graph(g) = err.root() else { panic!("{err}") };
    assert_eq!(g.status, 429);
    assert_eq!(g.retry_after, Some(1_000_000_000));
    // The absurd wait it refused does not hold the tenant's later requests either.
    let started = Instant::now();
    let later = tokio::time::timeout(Duration::from_secs(10), h.graph.get(&h.target, "retry/missing", &[])).await;
    assert!(later.is_ok(), "a later request of the tenant waited for the refused Retry-After");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn paging_loops_endless_and_truncated_bodies_end_cleanly() {
    let h = hostile().await;
    let err = h.graph.list(&h.target, "loop", Vec::new()).await.expect_err("loop");
    assert!(matches!(&err, Error::Protocol { message, .. } if message.contains("loop")), "{err}");

    let started = Instant::now();
    let err = h.graph.get(&h.target, "endless", &[]).await.expect_err("endless");
    assert!(matches!(err.root(), Error::Transport(t) if t.kind == TransportKind::TooLarge), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));

    let err = h.graph.get(&h.target, "cut", &[]).await.expect_err("cut");
    assert!(matches!(err.root(), Error::Transport(_)), "{err}");

    let err = h.graph.get(&h.target, "garbage", &[]).await.expect_err("not JSON");
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn garbage_tokens_are_used_but_never_decoded_into_nonsense() {
    let h = hostile().await;
    let t = h.graph.auth.access_token(&h.target.tenant, &h.target.grant).await.expect("a token, even an opaque one");
    assert!(t.claims.is_none(), "an opaque token has no claims to report");
    assert!(!format!("{t:?}").contains("garbage-not-a-jwt"), "Debug must not print the token");
}
