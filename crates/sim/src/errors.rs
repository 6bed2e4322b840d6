//! Error responses shaped exactly as Microsoft sends them: the identity platform's OAuth error bodies
//! with AADSTS codes, and Microsoft Graph's `{"error": {...}}` bodies with their headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// An identity-platform error: `error`, an AADSTS code with its message, and the HTTP status.
#[derive(Debug, Clone)]
pub struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
    pub suberror: Option<&'static str>,
    pub claims: Option<String>,
}

impl AadError {
    pub(crate) fn new(status: u16, error: &'static str, code: u32, message: impl Into<String>) -> AadError {
        AadError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            error,
            code,
            message: message.into(),
            suberror: None,
            claims: None,
        }
    }

    pub(crate) fn bad(error: &'static str, code: u32, message: impl Into<String>) -> AadError {
        AadError::new(400, error, code, message)
    }

    pub(crate) fn with_suberror(mut self, suberror: &'static str) -> AadError {
        self.suberror = Some(suberror);
        self
    }

    pub(crate) fn with_claims(mut self, claims: String) -> AadError {
        self.claims = Some(claims);
        self
    }

    /// The JSON body, stamped with the trace id (which is also the response's `x-ms-request-id`), the
    /// correlation id and the time of the failure. Entra joins the parts of `error_description` with CRLF
    /// (protocol reference §1.6, from ENTRA `reference-error-codes.md`).
    pub(crate) fn body(&self, trace_id: &str, correlation_id: &str, now: DateTime<Utc>, base_url: &str) -> Value {
        let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code, self.message, trace_id, correlation_id, timestamp
        );
        let mut body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{base_url}/error?code={}", self.code),
        });
        if let Some(s) = self.suberror {
            body["suberror"] = json!(s);
        }
        if let Some(c) = &self.claims {
            body["claims"] = json!(c);
        }
        body
    }

    pub(crate) fn into_response_with(self, correlation: &Correlation, now: DateTime<Utc>, base_url: &str) -> Response {
        let trace_id = Uuid::new_v4().to_string();
        let body = self.body(&trace_id, &correlation.id, now, base_url);
        let mut resp = (self.status, json_body(&body)).into_response();
        identity_headers(resp.headers_mut(), correlation, &trace_id, self.code);
        resp
    }
}

/// The correlation id of an identity request: the client's `client-request-id` when it sent a GUID,
/// otherwise one made up here. Entra echoes the header only when the client sent it.
#[derive(Debug, Clone)]
pub(crate) struct Correlation {
    pub id: String,
    pub echo: bool,
}

impl Correlation {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Correlation {
        match headers.get("client-request-id").and_then(|v| v.to_str().ok()).filter(|v| Uuid::parse_str(v).is_ok()) {
            Some(id) => Correlation { id: id.to_string(), echo: true },
            None => Correlation::fresh(),
        }
    }

    pub(crate) fn fresh() -> Correlation {
        Correlation { id: Uuid::new_v4().to_string(), echo: false }
    }
}

/// A JSON body with the content type the identity platform sends (`application/json; charset=utf-8`,
/// as in the recorded token response `payloads/token_response_client_credentials_recorded.json`).
pub(crate) fn json_body(value: &Value) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"))],
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// An instant as Microsoft's .NET services print it in error messages: seven fractional digits and `Z`
/// (`2026-01-06T20:34:44.6150000Z`). chrono has no seven-digit specifier, so the fraction is built here.
pub(crate) fn dotnet_time(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() % 1_000_000_000 / 100)
}

/// Headers that every response of the token endpoint carries, as in the recorded token response
/// (`payloads/token_response_client_credentials_recorded.json`): no caching, HSTS, `nosniff`, the P3P
/// compact policy, the STS build, the request id (equal to the body's `trace_id` on errors) and the
/// client telemetry `x-ms-clitelem` (`1,<AADSTS code or 0>,0,,`, the layout MSAL parses).
pub(crate) fn identity_headers(headers: &mut HeaderMap, correlation: &Correlation, request_id: &str, code: u32) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("-1"));
    headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(HeaderName::from_static("p3p"), HeaderValue::from_static(r#"CP="DSP CUR OTPi IND OTRi ONL FIN""#));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers
        .insert(HeaderName::from_static("x-ms-ests-server"), HeaderValue::from_static("2.1.19999.1 - SIM ProdSlices"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-ms-request-id"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("1,{code},0,,")) {
        headers.insert(HeaderName::from_static("x-ms-clitelem"), v);
    }
    if correlation.echo
        && let Ok(v) = HeaderValue::from_str(&correlation.id)
    {
        headers.insert(HeaderName::from_static("client-request-id"), v);
    }
}

/// The ids and time of one Graph request, echoed in its headers and in any error body.
#[derive(Debug, Clone)]
pub(crate) struct GraphCtx {
    pub request_id: String,
    pub client_request_id: String,
    pub now: DateTime<Utc>,
}

impl GraphCtx {
    pub(crate) fn from_headers(headers: &HeaderMap, now: DateTime<Utc>) -> GraphCtx {
        let request_id = Uuid::new_v4().to_string();
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        GraphCtx { request_id, client_request_id, now }
    }

    pub(crate) fn date(&self) -> String {
        self.now.format("%Y-%m-%dT%H:%M:%S").to_string()
    }

    pub(crate) fn apply_headers(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.insert(HeaderName::from_static("request-id"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.client_request_id) {
            headers.insert(HeaderName::from_static("client-request-id"), v);
        }
        headers.insert(
            HeaderName::from_static("x-ms-ags-diagnostic"),
            HeaderValue::from_static(r#"{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"5","ScaleUnit":"001","RoleInstance":"SIM01","ADSiteName":"SIM"}}"#),
        );
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
}

/// A Graph error; turned into a response with the request's ids.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// The inner error code and message; boxed so that `Result<_, GraphError>` stays small on the hot path.
    pub inner: Option<Box<(String, String)>>,
    pub headers: Vec<(HeaderName, String)>,
}

impl GraphError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> GraphError {
        GraphError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_string(),
            message: message.into(),
            inner: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_inner(mut self, code: &str, message: &str) -> GraphError {
        self.inner = Some(Box::new((code.to_string(), message.to_string())));
        self
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> GraphError {
        self.headers.push((HeaderName::from_static(name), value.into()));
        self
    }

    pub(crate) fn body(&self, ctx: &GraphCtx) -> Value {
        let mut inner = json!({
            "date": ctx.date(),
            "request-id": ctx.request_id,
            "client-request-id": ctx.client_request_id,
        });
        if let Some(pair) = &self.inner {
            let (code, message) = &**pair;
            inner["code"] = json!(code);
            inner["message"] = json!(message);
            // Throttling answers repeat the status inside the inner error, as Microsoft's sample shows.
            if self.status == StatusCode::TOO_MANY_REQUESTS {
                inner["status"] = json!(self.status.as_u16().to_string());
            }
        }
        json!({ "error": { "code": self.code, "message": self.message, "innerError": inner } })
    }

    pub(crate) fn into_response_with(self, ctx: &GraphCtx) -> Response {
        let body = self.body(ctx);
        let mut resp = (self.status, axum::Json(body)).into_response();
        ctx.apply_headers(resp.headers_mut());
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }

    pub(crate) fn invalid_token(message: &str) -> GraphError {
        GraphError::new(401, "InvalidAuthenticationToken", message).with_header(
            "www-authenticate",
            r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#,
        )
    }

    pub(crate) fn denied() -> GraphError {
        GraphError::new(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    }

    pub(crate) fn not_found(what: &str) -> GraphError {
        GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "Request_BadRequest", message)
    }

    pub(crate) fn unsupported_query(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "Request_UnsupportedQuery", message)
    }

    pub(crate) fn non_premium() -> GraphError {
        GraphError::new(
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_time_has_seven_fraction_digits() {
        let t = DateTime::parse_from_rfc3339("2026-01-06T20:34:44.615123456Z").map(|d| d.with_timezone(&Utc)).unwrap();
        assert_eq!(dotnet_time(t), "2026-01-06T20:34:44.6151234Z");
        let whole = DateTime::parse_from_rfc3339("2026-01-06T20:34:44Z").map(|d| d.with_timezone(&Utc)).unwrap();
        assert_eq!(dotnet_time(whole), "2026-01-06T20:34:44.0000000Z");
    }

    #[test]
    fn graph_error_bodies_carry_the_inner_error() {
        let ctx = GraphCtx { request_id: "r".into(), client_request_id: "c".into(), now: Utc::now() };
        let body = GraphError::new(429, "TooManyRequests", "Please retry again later.")
            .with_inner("429", "Please retry after")
            .body(&ctx);
        assert_eq!(body["error"]["innerError"]["code"], "429");
        assert_eq!(body["error"]["innerError"]["message"], "Please retry after");
        assert_eq!(body["error"]["innerError"]["request-id"], "r");
    }
}
