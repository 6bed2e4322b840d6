//! The request parsers against arbitrary input: whatever the body, query string or path, the API
//! answers with a status below 500 and, for errors, problem details.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use governor::{Quota, RateLimiter};
use proptest::prelude::*;
use tower::ServiceExt as _;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

async fn app(dir: &std::path::Path) -> (axum::Router, String) {
    let store = store::open(&format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display()), store::Key::generate())
        .await
        .expect("store");
    let now = chrono::Utc::now();
    let (token, record) =
        server::auth::new_api_token("fuzz", server::auth::Role::Admin, "test", now, now + chrono::Duration::days(1))
            .expect("token");
    store.token_put(&record).await.expect("token");
    let config = server::ServerConfig::new("127.0.0.1:0".parse().expect("address"), dir.to_path_buf());
    let state = server::AppState {
        store,
        config: Arc::new(config),
        https: true,
        login_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(std::num::NonZeroU32::MIN))),
        scheduler_held: Arc::new(AtomicBool::new(false)),
        sse_poll: Duration::from_millis(50),
        microsoft: None,
        history: None,
        oidc: None,
        targets: Arc::default(),
    };
    (server::router(state), token)
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/api/v1/jobs"),
    ("POST", "/api/v1/tokens"),
    ("POST", "/api/v1/mutes"),
    ("POST", "/api/v1/alerts/a/ack"),
    ("POST", "/api/v1/auth/local"),
    ("GET", "/api/v1/tenants"),
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/audit"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn no_input_makes_the_api_fail(
        which in 0..ENDPOINTS.len(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        json_like in "\\{(\"[a-z_]{1,8}\":(\"[^\"]{0,12}\"|[0-9-]{1,5}|true|null|\\[\\]|\\{\\}),?){0,4}\\}",
        query in "[a-z_=&%0-9+-]{0,40}",
        use_json in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("dir");
        runtime().block_on(async {
            let (app, token) = app(dir.path()).await;
            let (method, path) = ENDPOINTS[which];
            let uri = format!("{path}?{query}");
            let payload = if use_json { json_like.clone().into_bytes() } else { body.clone() };
            let request = Request::builder()
                .method(method)
                .uri(uri.as_str())
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(payload))
                .expect("request");
            let response = app.oneshot(request).await.expect("infallible");
            let status = response.status();
            prop_assert!(status < StatusCode::INTERNAL_SERVER_ERROR, "{method} {uri}: {status}");
            if status.is_client_error() {
                let ctype = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
                prop_assert_eq!(ctype, "application/problem+json");
            }
            Ok(())
        })?;
    }
}

/// A configuration file as an operator might write one: every table the server and the history
/// read.
const CONFIG: &str = r#"
[server]
public_url = "https://tenantscope.example.net"
drain_seconds = 30
agent_offline_seconds = 90
retention_days = 365

[server.schedule]
enabled = true
every_minutes = 240
jitter = 0.1
per_label = { vip = 60 }

[[metric]]
name = "break_glass_accounts"
query = "length(values(collections.users)[?starts_with(userPrincipalName, 'breakglass')])"
unit = "users"

[[alert]]
name = "too_many_global_admins"
kind = "threshold"
metric = "global_admins"
op = ">"
value = 4
severity = "high"

[[webhook]]
name = "ops"
url = "https://hooks.example.net/tenantscope"
secret_env = "TENANTSCOPE_WEBHOOK_SECRET"
min_severity = "medium"
"#;

#[test]
fn the_sample_configuration_is_valid() {
    server::config::parse_file(CONFIG).expect("server");
    history::parse_config(CONFIG).expect("history");
    notify::targets_from_config(CONFIG).expect("webhooks");
}

/// The sample with random edits: bytes deleted, text inserted, both anywhere.
fn edited_config() -> impl Strategy<Value = String> {
    prop::collection::vec((0.0f64..1.0, 0usize..12, "[ -~\n\"\\[\\]=.]{0,10}"), 0..6).prop_map(|edits| {
        let mut text = CONFIG.to_string();
        for (at, delete, insert) in edits {
            let mut i = ((text.len() as f64) * at) as usize;
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            let mut end = (i + delete).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.replace_range(i..end, &insert);
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any configuration text is read or refused with a message; applying what was read never
    /// panics either.
    #[test]
    fn configuration_files_parse_or_fail_cleanly(text in prop_oneof![edited_config(), ".{0,300}"]) {
        match server::config::parse_file(&text) {
            Ok(file) => {
                let mut config = server::ServerConfig::new("127.0.0.1:0".parse().expect("address"), std::env::temp_dir());
                config.apply(file);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
        if let Err(e) = history::parse_config(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
        if let Err(e) = notify::targets_from_config(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
