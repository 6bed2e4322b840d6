//! Debug traces as HAR 1.2 files, which browser developer tools open.
//!
//! Everything that could carry a secret is redacted before it is recorded: authorization and cookie
//! headers, secret form fields and query parameters, token fields of JSON bodies, anything shaped like
//! a JWT, and every secret value the process registered as known.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::{Value, json};

pub(crate) const REDACTED: &str = "[REDACTED]";

/// Form fields and query parameters whose values are secrets.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "refresh_token",
    "access_token",
    "id_token",
    "code",
    "device_code",
    "user_code",
    "code_verifier",
    "password",
    "passwd",
    "otc",
    "assertion",
];

/// JSON fields whose values are secrets, wherever they appear.
const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "device_code",
    "user_code",
    "code",
    "client_secret",
    "secretText",
    "password",
    "totp_secret",
];

const SECRET_HEADERS: &[&str] = &["authorization", "cookie", "set-cookie", "proxy-authorization", "x-ms-client-secret"];

pub(crate) enum PostData {
    Form(Vec<(String, String)>),
    Json(Value),
}

pub(crate) struct Exchange<'a> {
    pub started: DateTime<Utc>,
    pub elapsed: Duration,
    pub method: String,
    pub url: String,
    pub request_headers: &'a HeaderMap,
    pub post: Option<PostData>,
    pub status: u16,
    pub response_headers: Option<&'a HeaderMap>,
    pub response_body: Option<&'a Bytes>,
    pub error: Option<String>,
}

/// Collects exchanges in memory; written once at the end of the command.
#[derive(Default)]
pub struct HarRecorder {
    entries: Mutex<Vec<Value>>,
    known: Mutex<HashSet<String>>,
}

impl HarRecorder {
    pub fn new() -> HarRecorder {
        HarRecorder::default()
    }

    /// Registers a secret value to scrub wherever it appears (a client secret, a refresh token).
    pub(crate) fn add_secret(&self, secret: &str) {
        if secret.len() >= 6 {
            self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(secret.to_string());
        }
    }

    /// Redacts a free text: known secrets, then anything shaped like a JWT.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.known.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        scrub_jwts(&out)
    }

    fn headers(&self, h: &HeaderMap) -> Vec<Value> {
        h.iter()
            .map(|(k, v)| {
                let name = k.as_str();
                let value = if SECRET_HEADERS.contains(&name) {
                    let raw = v.to_str().unwrap_or("");
                    match raw.split_once(' ') {
                        Some((scheme, _)) => format!("{scheme} {REDACTED}"),
                        None => REDACTED.to_string(),
                    }
                } else {
                    self.scrub(v.to_str().unwrap_or("<binary>"))
                };
                json!({ "name": name, "value": value })
            })
            .collect()
    }

    fn url(&self, url: &str) -> (String, Vec<Value>) {
        let Ok(mut parsed) = url::Url::parse(url) else { return (self.scrub(url), Vec::new()) };
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if SECRET_PARAMS.contains(&k.as_ref()) { REDACTED.to_string() } else { self.scrub(&v) };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(pairs.iter());
        }
        let query = pairs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
        (self.scrub(parsed.as_str()), query)
    }

    fn body_text(&self, body: &[u8], content_type: &str) -> String {
        let text = String::from_utf8_lossy(body);
        // Redacted by content, not by the label: the client parses a token response as JSON
        // whatever its Content-Type says, so a mislabelled one must not reach the trace in clear.
        if let Ok(mut v) = serde_json::from_slice::<Value>(body)
            && (v.is_object() || v.is_array())
        {
            redact_json(&mut v);
            return self.scrub(&v.to_string());
        }
        if content_type.contains("x-www-form-urlencoded") {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
                .map(|(k, v)| {
                    let v = if SECRET_PARAMS.contains(&k.as_ref()) { REDACTED.to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            return self.scrub(&form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish());
        }
        self.scrub(&text)
    }

    pub(crate) fn record(&self, x: Exchange<'_>) {
        let (url, query) = self.url(&x.url);
        let post = x.post.map(|p| match p {
            PostData::Form(fields) => {
                let params: Vec<Value> = fields
                    .iter()
                    .map(|(k, v)| {
                        let v = if SECRET_PARAMS.contains(&k.as_str()) { REDACTED.to_string() } else { self.scrub(v) };
                        json!({"name": k, "value": v})
                    })
                    .collect();
                let text = params
                    .iter()
                    .map(|p| format!("{}={}", p["name"].as_str().unwrap_or(""), p["value"].as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("&");
                json!({ "mimeType": "application/x-www-form-urlencoded", "params": params, "text": text })
            }
            PostData::Json(mut v) => {
                redact_json(&mut v);
                json!({ "mimeType": "application/json", "text": self.scrub(&v.to_string()) })
            }
        });
        let content_type = x
            .response_headers
            .and_then(|h| h.get(http::header::CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = x.response_body.map(|b| self.body_text(b, &content_type)).unwrap_or_default();
        let mut request = json!({
            "method": x.method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": self.headers(x.request_headers),
            "queryString": query,
            "headersSize": -1,
            "bodySize": -1,
        });
        if let Some(p) = post {
            request["postData"] = p;
        }
        let mut entry = json!({
            "startedDateTime": x.started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "time": x.elapsed.as_secs_f64() * 1000.0,
            "request": request,
            "response": {
                "status": x.status,
                "statusText": http::StatusCode::from_u16(x.status).ok().and_then(|s| s.canonical_reason()).unwrap_or(""),
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": x.response_headers.map(|h| self.headers(h)).unwrap_or_default(),
                "content": { "size": x.response_body.map_or(0, |b| b.len()), "mimeType": content_type, "text": body },
                "redirectURL": x.response_headers.and_then(|h| h.get(http::header::LOCATION)).and_then(|v| v.to_str().ok()).map(|l| self.url(l).0).unwrap_or_default(),
                "headersSize": -1,
                "bodySize": x.response_body.map_or(-1, |b| b.len() as i64),
            },
            "cache": {},
            "timings": { "send": 0, "wait": x.elapsed.as_secs_f64() * 1000.0, "receive": 0 },
        });
        if let Some(e) = x.error {
            entry["comment"] = json!(self.scrub(&e));
        }
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }

    pub fn to_json(&self) -> Value {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner()).clone();
        json!({
            "log": {
                "version": "1.2",
                "creator": { "name": "tenantscope", "version": env!("CARGO_PKG_VERSION") },
                "pages": [],
                "entries": entries,
            }
        })
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the HAR file atomically, readable only by the owner: a temporary file created
    /// exclusively (never an existing file or a planted symlink) with mode 0600 in the target's
    /// directory, then renamed into place.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(std::io::Error::other)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let mut tmp = tempfile::Builder::new().prefix(".tenantscope-har-").suffix(".tmp").tempfile_in(dir)?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            // A device-code answer repeats its user code inside the human `message`.
            if let Some(code) =
                map.get("user_code").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_string)
                && let Some(Value::String(message)) = map.get_mut("message")
            {
                *message = message.replace(&code, REDACTED);
            }
            for (k, val) in map.iter_mut() {
                if SECRET_FIELDS.contains(&k.as_str()) && !val.is_null() {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_json(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Replaces every `eyJ…​.…​.…` sequence (a JWT) with a marker.
pub(crate) fn scrub_jwts(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let is_b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    while i < bytes.len() {
        if bytes[i..].starts_with(b"eyJ") && (i == 0 || !is_b64(bytes[i - 1])) {
            let mut j = i;
            let mut dots = 0;
            while j < bytes.len() && (is_b64(bytes[j]) || (bytes[j] == b'.' && dots < 2)) {
                if bytes[j] == b'.' {
                    dots += 1;
                }
                j += 1;
            }
            if dots == 2 && j - i > 20 {
                out.push_str("[REDACTED-JWT]");
                i = j;
                continue;
            }
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlink planted where a careless writer would put its temporary file is not followed,
    /// and the trace is readable by its owner only whatever the umask.
    #[cfg(unix)]
    #[test]
    fn traces_are_written_exclusively_and_privately() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").expect("victim");
        let path = dir.path().join("job.har");
        std::os::unix::fs::symlink(&victim, dir.path().join("job.har.tmp")).expect("symlink");
        HarRecorder::new().write(&path).expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "untouched");
        assert_eq!(std::fs::metadata(&path).expect("trace").permissions().mode() & 0o777, 0o600);
        let har: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("trace")).expect("JSON");
        assert!(har["log"]["entries"].is_array());
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").filter_map(Result::ok).count();
        assert_eq!(leftovers, 3, "the trace, the victim and the planted link; no temporary file");
    }

    #[test]
    fn jwts_and_known_secrets_are_scrubbed() {
        let rec = HarRecorder::new();
        rec.add_secret("sup3r-s3cret-value");
        let text = "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl and sup3r-s3cret-value end";
        let out = rec.scrub(text);
        assert!(!out.contains("eyJhbGci"));
        assert!(!out.contains("sup3r-s3cret-value"));
        assert!(out.contains("token [REDACTED-JWT] and [REDACTED] end"));
        assert_eq!(scrub_jwts("é eyJ short"), "é eyJ short");
    }

    #[test]
    fn secret_fields_are_redacted_in_every_part_of_an_entry() {
        let rec = HarRecorder::new();
        let mut req_headers = HeaderMap::new();
        req_headers.insert(http::header::AUTHORIZATION, "Bearer abc.def.ghi".parse().unwrap());
        let mut resp_headers = HeaderMap::new();
        resp_headers.insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
        let body = Bytes::from(
            r#"{"access_token":"AT-VALUE","refresh_token":"RT-VALUE","nested":{"id_token":"ID"},"scope":"User.Read"}"#,
        );
        rec.record(Exchange {
            started: Utc::now(),
            elapsed: Duration::from_millis(5),
            method: "POST".into(),
            url: "https://login.example/t/oauth2/v2.0/token?code=CODE-VALUE&x=1".into(),
            request_headers: &req_headers,
            post: Some(PostData::Form(vec![
                ("client_secret".into(), "CS-VALUE".into()),
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), "RT-VALUE".into()),
            ])),
            status: 200,
            response_headers: Some(&resp_headers),
            response_body: Some(&body),
            error: None,
        });
        let text = rec.to_json().to_string();
        for secret in ["AT-VALUE", "RT-VALUE", "CS-VALUE", "CODE-VALUE", "abc.def.ghi", "\"ID\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("User.Read"));
        assert!(text.contains("Bearer [REDACTED]"));
        assert_eq!(rec.len(), 1);
    }

    #[test]
    fn token_and_device_code_answers_are_redacted_whatever_their_label() {
        let rec = HarRecorder::new();
        let req_headers = HeaderMap::new();
        for (ctype, body) in [
            ("text/plain", r#"{"token_type":"Bearer","refresh_token":"0.AQ-OPAQUE-RT","expires_in":3599}"#),
            ("application/octet-stream", r#"{"access_token":"OPAQUE-AT","scope":"User.Read"}"#),
            (
                "application/json",
                r#"{"user_code":"QWER7TYU","device_code":"DC-VALUE","message":"To sign in, enter the code QWER7TYU at the page."}"#,
            ),
        ] {
            let mut resp_headers = HeaderMap::new();
            resp_headers.insert(http::header::CONTENT_TYPE, ctype.parse().unwrap());
            let body = Bytes::from(body);
            rec.record(Exchange {
                started: Utc::now(),
                elapsed: Duration::from_millis(5),
                method: "POST".into(),
                url: "https://login.example/t/oauth2/v2.0/token".into(),
                request_headers: &req_headers,
                post: None,
                status: 200,
                response_headers: Some(&resp_headers),
                response_body: Some(&body),
                error: None,
            });
        }
        let text = rec.to_json().to_string();
        for secret in ["0.AQ-OPAQUE-RT", "OPAQUE-AT", "QWER7TYU", "DC-VALUE"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("To sign in, enter the code [REDACTED] at the page."), "{text}");
    }
}
