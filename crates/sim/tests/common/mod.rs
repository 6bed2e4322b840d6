//! Shared helpers of the simulator's integration tests: start a simulator in-process with a temporary
//! state directory, talk to it over HTTPS with its CA, and check error bodies against Microsoft's shapes.
//!
//! Every test binary includes this module with `mod common;`, and not every binary uses every helper.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sim::signin::{Browser, Person};
use sim::{RunningSim, SimConfig, WorldSource};

/// The demo world's multi-tenant public client (tenantscope of Lakeside IT).
pub const APP: &str = "5f0d4d52-9c3b-4e57-a1a8-3b6b2f6a7c11";
/// The demo partner's confidential app for unattended jobs.
pub const AUTOMATION: &str = "8b1f7e0a-2d4c-4b1e-9a57-6c0e3d2f1a22";
pub const AUTOMATION_SECRET: &str = "sim-automation-secret-Xq8~vD2kP9";
/// Woodgrove's own reader app, whose only secret has expired.
pub const WOODGROVE_READER: &str = "c3a9e1f4-6b2d-4f8a-8e1c-7d5b4a3f2e33";
pub const WOODGROVE_SECRET: &str = "sim-woodgrove-secret-Lm4~tZ7qW1";
pub const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";
pub const USER_SCOPES: &str = "https://graph.microsoft.com/.default offline_access openid profile";

pub const MEGAN: &str = "megan@lakesideit.onmicrosoft.com";
pub const LEGACY: &str = "legacy-sync@lakesideit.onmicrosoft.com";
pub const OPS: &str = "ops@lakesideit.onmicrosoft.com";
pub const JORDAN: &str = "jordan@lakesideit.onmicrosoft.com";

/// One HTTP answer, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Resp { status, headers, text }
    }
}

/// A running simulator with everything a test needs to talk to it.
pub struct TestSim {
    pub running: RunningSim,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub ready_path: PathBuf,
    pub ca_pem: String,
}

/// An HTTPS client that trusts the simulator's CA and follows no redirects.
pub fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

impl TestSim {
    pub async fn demo() -> TestSim {
        TestSim::start(WorldSource::Demo).await
    }

    pub async fn start(world: WorldSource) -> TestSim {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = SimConfig::new(dir.path().join("state"));
        config.world = world;
        let running = sim::start(config).await.expect("simulator starts");
        let ready_path = dir.path().join("ready.json");
        running.write_ready_file(&ready_path).expect("ready file");
        let ca_pem = std::fs::read_to_string(&running.ready.ca_cert).expect("CA file");
        let http = client(&ca_pem);
        TestSim { running, dir, http, ready_path, ca_pem }
    }

    pub fn base(&self) -> &str {
        self.running.base_url()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    /// The id of the tenant whose initial domain starts with `prefix` (for example `northwind`).
    pub fn tenant(&self, prefix: &str) -> String {
        self.running
            .ready
            .tenants
            .iter()
            .find(|t| t.domain.starts_with(prefix))
            .unwrap_or_else(|| panic!("no tenant {prefix}"))
            .id
            .clone()
    }

    /// The password of any user of the world, read from the running world.
    pub fn password(&self, upn: &str) -> String {
        let w = self.running.sim.world();
        w.user_by_upn(upn).map(|(_, u)| u.password.clone()).unwrap_or_else(|| panic!("no user {upn}"))
    }

    pub fn person(&self, upn: &str) -> Person {
        let w = self.running.sim.world();
        let (_, u) = w.user_by_upn(upn).unwrap_or_else(|| panic!("no user {upn}"));
        Person {
            upn: u.upn.clone(),
            password: u.password.clone(),
            totp_secret: u.totp_secret.clone(),
            accept_consent: true,
        }
    }

    pub fn browser(&self) -> Browser {
        Browser::new(self.base(), &self.ca_pem).expect("browser")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        Resp::read(self.http.post(self.url(path)).form(form).send().await.expect("POST")).await
    }

    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> Resp {
        self.post_form(&format!("/{tenant}/oauth2/v2.0/token"), form).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::read(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn graph(&self, token: &str, path: &str) -> Resp {
        self.graph_with(token, path, &[]).await
    }

    pub async fn graph_with(&self, token: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let url = if path.starts_with("https://") { path.to_string() } else { self.url(path) };
        let mut req = self.http.get(url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::read(req.send().await.expect("Graph GET")).await
    }

    pub async fn batch(&self, token: &str, body: &Value) -> Resp {
        let req = self.http.post(self.url("/v1.0/$batch")).bearer_auth(token).json(body);
        Resp::read(req.send().await.expect("Graph batch")).await
    }

    /// Calls the control API with its token.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.running.ready.control_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::read(req.send().await.expect("control call")).await
    }

    pub async fn action(&self, action: Value) -> Resp {
        let r = self.control(reqwest::Method::POST, "/_sim/actions", Some(action)).await;
        assert_eq!(r.status, 200, "action failed: {}", r.text);
        r
    }

    pub async fn scenario(&self, name: &str) {
        let r = self.control(reqwest::Method::POST, &format!("/_sim/scenarios/{name}"), None).await;
        assert_eq!(r.status, 200, "scenario {name}: {}", r.text);
    }

    pub async fn advance(&self, by: &str) {
        let r = self.control(reqwest::Method::POST, "/_sim/clock", Some(json!({ "by": by }))).await;
        assert_eq!(r.status, 200, "clock: {}", r.text);
    }

    pub async fn counters(&self) -> Value {
        self.control(reqwest::Method::GET, "/_sim/counters", None).await.json()
    }

    pub async fn set_faults(&self, faults: Value) {
        let r = self.control(reqwest::Method::PUT, "/_sim/faults", Some(faults)).await;
        assert_eq!(r.status, 200, "faults: {}", r.text);
    }

    pub async fn set_throttle(&self, limits: Value) {
        let r = self.control(reqwest::Method::PUT, "/_sim/throttle", Some(limits)).await;
        assert_eq!(r.status, 200, "throttle: {}", r.text);
    }

    pub async fn client_credentials(&self, tenant: &str, client_id: &str, secret: &str) -> Resp {
        self.token(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", GRAPH_DEFAULT),
            ],
        )
        .await
    }

    /// An app-only Graph token of the partner's automation app.
    pub async fn automation_token(&self) -> String {
        let r = self.client_credentials(&self.tenant("lakeside"), AUTOMATION, AUTOMATION_SECRET).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["access_token"].as_str().expect("access_token").to_string()
    }

    pub async fn ropc(&self, tenant: &str, upn: &str, password: &str, scope: &str) -> Resp {
        self.token(
            tenant,
            &[
                ("grant_type", "password"),
                ("client_id", APP),
                ("username", upn),
                ("password", password),
                ("scope", scope),
            ],
        )
        .await
    }

    pub async fn refresh(&self, tenant: &str, refresh_token: &str, scope: Option<&str>) -> Resp {
        let mut form = vec![("grant_type", "refresh_token"), ("client_id", APP), ("refresh_token", refresh_token)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token(tenant, &form).await
    }

    /// Starts a device-code flow at `tenant`; returns the device-code response.
    pub async fn start_device_code(&self, tenant: &str, scope: &str) -> Value {
        let r =
            self.post_form(&format!("/{tenant}/oauth2/v2.0/devicecode"), &[("client_id", APP), ("scope", scope)]).await;
        assert_eq!(r.status, 200, "devicecode: {}", r.text);
        r.json()
    }

    pub async fn poll_device_code(&self, tenant: &str, device_code: &str) -> Resp {
        self.token(
            tenant,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", APP),
                ("device_code", device_code),
                ("client_info", "1"),
            ],
        )
        .await
    }

    /// Signs `upn` in by device code through the scripted user and returns the token response.
    pub async fn device_code(&self, tenant: &str, upn: &str) -> Value {
        let dc = self.start_device_code(tenant, USER_SCOPES).await;
        let user_code = dc["user_code"].as_str().expect("user_code");
        self.browser().approve_device_code(user_code, &self.person(upn)).await.expect("sign-in approved");
        let r = self.poll_device_code(tenant, dc["device_code"].as_str().expect("device_code")).await;
        assert_eq!(r.status, 200, "device code redemption: {}", r.text);
        r.json()
    }
}

/// Decodes the claims of a JWT without verifying it.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
}

/// Checks an identity-platform error against Microsoft's shape and returns its body.
pub fn assert_aad(resp: &Resp, status: u16, error: &str, code: u32) -> Value {
    assert_eq!(resp.status, status, "status of {}", resp.text);
    let body = resp.json();
    assert_eq!(body["error"], error, "error of {}", resp.text);
    assert_eq!(body["error_codes"], json!([code]), "error_codes of {}", resp.text);
    let description = body["error_description"].as_str().expect("error_description");
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "description: {description}");
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert!(
        chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%d %H:%M:%SZ").is_ok(),
        "timestamp format: {timestamp}"
    );
    assert!(is_uuid(&body["trace_id"]), "trace_id: {}", body["trace_id"]);
    assert!(is_uuid(&body["correlation_id"]), "correlation_id: {}", body["correlation_id"]);
    for part in [
        format!("Trace ID: {}", body["trace_id"].as_str().unwrap_or_default()),
        format!("Correlation ID: {}", body["correlation_id"].as_str().unwrap_or_default()),
        format!("Timestamp: {timestamp}"),
    ] {
        assert!(description.contains(&part), "description lacks '{part}': {description}");
    }
    let uri = body["error_uri"].as_str().expect("error_uri");
    assert!(uri.ends_with(&format!("/error?code={code}")), "error_uri: {uri}");
    let allowed = [
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
        "suberror",
        "claims",
    ];
    for k in body.as_object().expect("object").keys() {
        assert!(allowed.contains(&k.as_str()), "unexpected key {k} in {}", resp.text);
    }
    assert_eq!(resp.header("cache-control"), Some("no-store, no-cache"));
    body
}

/// Checks a Graph error against Microsoft's shape and returns its body.
pub fn assert_graph(resp: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(resp.status, status, "status of {}", resp.text);
    let body = resp.json();
    let error = &body["error"];
    assert_eq!(error["code"], code, "code of {}", resp.text);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "message of {}", resp.text);
    let inner = &error["innerError"];
    assert!(
        inner["date"].as_str().is_some_and(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%dT%H:%M:%S").is_ok())
    );
    assert!(is_uuid(&inner["request-id"]), "request-id of {}", resp.text);
    assert!(inner["client-request-id"].is_string(), "client-request-id of {}", resp.text);
    assert!(resp.header("request-id").is_some(), "request-id header");
    body
}

/// The key set of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

/// The JSON type of a value, for shape comparisons where `null` matches anything.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads a payload of the protocol reference, copied into `tests/fixtures/payloads` so that CI needs nothing
/// outside the repository.
pub fn payload(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/payloads").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("payload {}: {e}", path.display()));
    serde_json::from_str(&text).expect("payload JSON")
}
