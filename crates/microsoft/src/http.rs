//! The one HTTP transport to Microsoft: TLS with the cloud's extra CA, no automatic redirects, timeouts,
//! gzip, a size limit on every body, a `client-request-id` on every request, and an optional HAR
//! recorder that never sees a secret in the clear.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;
use uuid::Uuid;

use crate::cloud::Cloud;
use crate::error::{Error, TransportError, TransportKind};
use crate::har::HarRecorder;

/// Counters an inspection shows live and reports at the end.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub throttle_wait_ms: AtomicU64,
    pub bytes: AtomicU64,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
pub struct TransportOptions {
    pub connect_timeout: Duration,
    /// Time for one attempt: connect, send, and read the whole body.
    pub request_timeout: Duration,
    /// The largest body accepted, after decompression.
    pub max_body: usize,
    pub user_agent: String,
    /// The local address outgoing connections are made from (an agent on a host with several
    /// addresses chooses the one whose egress customers' Conditional Access allows).
    pub local_address: Option<std::net::IpAddr>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_body: 64 * 1024 * 1024,
            user_agent: format!("tenantscope/{}", env!("CARGO_PKG_VERSION")),
            local_address: None,
        }
    }
}

pub(crate) enum Body {
    Empty,
    Form(Vec<(String, String)>),
    Json(Value),
}

pub(crate) struct Request<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Body,
    pub bearer: Option<&'a SecretString>,
    /// Kept across the retries of one logical request, so that Microsoft sees them as one request.
    pub client_request_id: Option<String>,
}

impl<'a> Request<'a> {
    pub(crate) fn get(url: Url) -> Request<'a> {
        Request {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            bearer: None,
            client_request_id: None,
        }
    }

    pub(crate) fn form(url: Url, fields: Vec<(String, String)>) -> Request<'a> {
        Request {
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Body::Form(fields),
            bearer: None,
            client_request_id: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub url: String,
    pub request_id: Option<String>,
    pub client_request_id: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` as whole seconds, when it is a non-negative number of seconds or an HTTP date.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        let v = self.header("retry-after")?.trim();
        if let Ok(n) = v.parse::<i64>() {
            return (n >= 0).then_some(n as u64);
        }
        let date = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        let secs = (date.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
        Some(secs.max(0) as u64)
    }
}

#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    options: TransportOptions,
    pub har: Option<Arc<HarRecorder>>,
    pub stats: Arc<Stats>,
}

impl Transport {
    pub fn new(cloud: &Cloud, options: TransportOptions, har: Option<Arc<HarRecorder>>) -> Result<Transport, Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .user_agent(options.user_agent.clone())
            .https_only(true)
            .gzip(true)
            .local_address(options.local_address);
        if let Some(pem) = &cloud.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("the extra CA certificate is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config("the extra CA file holds no certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build().map_err(|e| {
            // reqwest's own text is only "builder error"; the reason is in its sources. With an
            // extra CA the one thing that can fail here is a certificate rustls cannot use.
            let mut reason = String::new();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = s.to_string();
                source = s.source();
            }
            match (&cloud.ca_file, &cloud.ca_pem) {
                (Some(path), _) => Error::Config(format!(
                    "the CA file {} holds a certificate that cannot be trusted as a root ({}): give a PEM file of CA certificates",
                    path.display(),
                    if reason.is_empty() { "malformed certificate" } else { reason.as_str() }
                )),
                (None, Some(_)) => Error::Config(format!(
                    "the cloud's CA certificate cannot be trusted as a root ({})",
                    if reason.is_empty() { "malformed certificate" } else { reason.as_str() }
                )),
                (None, None) => Error::Config(format!("cannot build the HTTP client: {e}: {reason}")),
            }
        })?;
        Ok(Transport { client, options, har, stats: Arc::new(Stats::default()) })
    }

    /// Sends one request and reads the whole response (up to the size limit). HTTP errors are not
    /// errors here: the caller decides what a status means.
    pub(crate) async fn send(&self, req: Request<'_>) -> Result<Response, Error> {
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        let url_text = req.url.to_string();
        let client_request_id = req.client_request_id.clone().unwrap_or_else(|| Uuid::new_v4().to_string());
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("client-request-id"),
            HeaderValue::from_str(&client_request_id).unwrap_or(HeaderValue::from_static("0")),
        );
        headers.insert(HeaderName::from_static("return-client-request-id"), HeaderValue::from_static("true"));
        for (name, value) in &req.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name.clone(), v);
            }
        }
        if let Some(token) = req.bearer {
            if req.url.scheme() != "https" {
                return Err(Error::HostNotAllowed {
                    url: url_text,
                    reason: "a bearer token only travels over HTTPS".into(),
                });
            }
            let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| Error::Config("the access token holds characters a header cannot carry".into()))?;
            v.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, v);
        }
        let mut builder = self.client.request(req.method.clone(), req.url.clone()).headers(headers.clone());
        let body_for_har = match &req.body {
            Body::Empty => None,
            Body::Form(fields) => {
                builder = builder.form(fields);
                Some(crate::har::PostData::Form(fields.clone()))
            }
            Body::Json(v) => {
                builder = builder.json(v);
                Some(crate::har::PostData::Json(v.clone()))
            }
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let result = async {
            let resp = builder.send().await.map_err(|e| transport_error(&url_text, &e))?;
            let status = resp.status().as_u16();
            let resp_headers = resp.headers().clone();
            let body = read_limited(resp, self.options.max_body, &url_text).await?;
            Ok::<_, Error>((status, resp_headers, body))
        }
        .await;
        if let Some(har) = &self.har {
            let (status, resp_headers, body) = match &result {
                Ok((s, h, b)) => (*s, Some(h), Some(b)),
                Err(_) => (0, None, None),
            };
            har.record(crate::har::Exchange {
                started: started_at,
                elapsed: started.elapsed(),
                method: req.method.as_str().to_string(),
                url: url_text.clone(),
                request_headers: &headers,
                post: body_for_har,
                status,
                response_headers: resp_headers,
                response_body: body,
                error: result.as_ref().err().map(|e| e.to_string()),
            });
        }
        let (status, resp_headers, body) = result?;
        self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let request_id = resp_headers
            .get("request-id")
            .or_else(|| resp_headers.get("x-ms-request-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Response { status, headers: resp_headers, body, url: url_text, request_id, client_request_id })
    }
}

async fn read_limited(mut resp: reqwest::Response, max: usize, url: &str) -> Result<Bytes, Error> {
    if let Some(len) = resp.content_length()
        && len as usize > max
    {
        return Err(Error::Transport(TransportError {
            url: url.into(),
            kind: TransportKind::TooLarge,
            message: format!("the response announces {len} bytes, more than the {max} accepted"),
        }));
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > max {
                    return Err(Error::Transport(TransportError {
                        url: url.into(),
                        kind: TransportKind::TooLarge,
                        message: format!("the response is larger than the {max} bytes accepted"),
                    }));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => return Err(transport_error(url, &e)),
        }
    }
}

/// Classifies a reqwest error by walking its source chain.
fn transport_error(url: &str, e: &reqwest::Error) -> Error {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    let kind = if e.is_timeout() || lower.contains("timed out") {
        TransportKind::Timeout
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
    {
        TransportKind::Dns
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("unknownissuer")
    {
        TransportKind::Tls
    } else if lower.contains("reset")
        || lower.contains("stream error")
        || lower.contains("connection error")
        || lower.contains("connection closed")
        || lower.contains("incomplete")
        || lower.contains("broken pipe")
        || lower.contains("unexpected eof")
    {
        TransportKind::Reset
    } else if e.is_connect() {
        TransportKind::Connect
    } else if e.is_body() || e.is_decode() {
        TransportKind::Body
    } else {
        TransportKind::Other
    };
    Error::Transport(TransportError { url: url.into(), kind, message: chain })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PEM block whose content is not a certificate is named with its file and the reason,
    /// never reqwest's bare "builder error".
    #[test]
    fn a_ca_file_with_a_broken_certificate_says_which_file_and_why() {
        let cloud = Cloud {
            name: "x".into(),
            login_url: url::Url::parse("https://login.example").unwrap(),
            graph_url: url::Url::parse("https://graph.example").unwrap(),
            graph_resource: "https://graph.example".into(),
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()),
            ca_file: Some("proxy-ca.pem".into()),
        };
        let err = Transport::new(&cloud, TransportOptions::default(), None).err().expect("refused").to_string();
        assert!(err.contains("proxy-ca.pem") && err.contains("cannot be trusted as a root"), "{err}");
        assert!(!err.contains("builder error"), "{err}");
    }
}
