//! Best-effort parsing of anything a user pastes into a structured `Failure`.
//!
//! Pasted errors come as JSON bodies, JSON escaped inside exception messages, Python dicts,
//! PowerShell error records, log lines, HTML pages and truncated fragments. Instead of one
//! grammar per source, the parser first tries strict JSON (the best evidence), then reads the
//! same fields with tolerant patterns that accept any quoting, and classifies the result by what
//! was found: AADSTS codes or an OAuth error mean the token endpoint, Graph codes or messages
//! mean Graph, socket-level messages mean transport.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::facts::{Failure, GraphFailure, TokenEndpointFailure, TransportFailure, TransportKind};
use crate::graph;
use crate::hosts::{self, HostKind};

/// Only the start of a huge paste is scanned; errors are at the top of any sane log excerpt.
pub const MAX_SCAN_BYTES: usize = 256 * 1024;

/// At most this many `{` positions are tried as the start of a JSON document.
const MAX_JSON_ATTEMPTS: usize = 64;

/// OAuth `error` values of the identity platform (RFC 6749 and Microsoft's additions).
pub(crate) const OAUTH_ERRORS: &[&str] = &[
    "invalid_grant",
    "interaction_required",
    "invalid_client",
    "unauthorized_client",
    "consent_required",
    "login_required",
    "invalid_scope",
    "invalid_request",
    "invalid_resource",
    "invalid_tenant",
    "invalid_instance",
    "temporarily_unavailable",
    "server_error",
    "unsupported_grant_type",
    "authorization_pending",
    "authorization_declined",
    "expired_token",
    "bad_verification_code",
    "slow_down",
    "access_denied",
];

macro_rules! re {
    ($name:ident, $pat:expr) => {
        fn $name() -> &'static Regex {
            static RE: OnceLock<Regex> = OnceLock::new();
            // The patterns are literals checked by the unit tests, so compiling cannot fail.
            RE.get_or_init(|| Regex::new($pat).expect("valid built-in pattern"))
        }
    };
}

// An AADSTS code as Microsoft prints it (`AADSTS50076`), and as people paste it: with a space,
// colon or dash before the number (`AADSTS 50076`, `AADSTS: 50076`), or with the leading `A` lost
// when the start of the line was not selected (`ADSTS50076`). The bare `ADSTS` form must start a
// word, so that it is never read inside another identifier.
re!(re_aadsts, r"(?i)(?:AADSTS|\bADSTS)[ \t:#-]{0,2}(\d{4,8})");
re!(re_error_codes, r#"(?i)error_codes\\?["']?\s*[:=]\s*\[\s*([\d,\s]+)\]"#);
re!(re_error_lookup, r"(?i)login\.[a-z.]+/error\?code=(\d{4,8})");
re!(
    re_error_code_word,
    r#"(?i-u)(?:sign-in\s+)?(?:error|failure)[\s_]*(?:codes?|number)\\?["']?\s*[:=]?\s*\\?["']?\s*(\d{5,7})\b"#
);
re!(re_oauth_field, r#"(?i)(?:^|[\s{,'"\\])error\\?["']?\s*[:=]\s*\\?["']?([a-z_]+)"#);
re!(re_suberror, r#"(?i)suberror\\?["']?\s*[:=]\s*\\?["']?([a-z_]+)"#);
re!(re_capolids, r#"(?i)(?:ca)?polids[\s\S]{0,80}?values[\s\S]{0,8}?\[([^\]]*)\]"#);
re!(re_guid, r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
re!(re_trace, r#"(?i)trace[ _-]?id\\?["']?\s*[:=]?\s*\\?["']?([0-9a-f]{8}-[0-9a-f-]{27})"#);
re!(re_correlation, r#"(?i)correlation[ _-]?id\\?["']?\s*[:=]?\s*\\?["']?([0-9a-f]{8}-[0-9a-f-]{27})"#);
re!(re_timestamp, r#"(?i)timestamp\\?["']?\s*[:=]\s*\\?["']?(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?)"#);
re!(re_request_id, r#"(?i)(client-)?request[-_ ]?id\\?["']?\s*[:=]\s*\\?["']?([0-9a-f]{8}-[0-9a-f-]{27})"#);
re!(re_date, r#"(?i)\bdate\\?["']?\s*[:=]\s*\\?["']?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z?)"#);
re!(re_code_field, r#"(?i)(?:^|[\s{,'"\\])(?:error)?code\\?["']?\s*[:=]\s*\\?["']?([A-Za-z][A-Za-z0-9_]{2,80})"#);
re!(re_message_field, r#"(?i)(?:^|[\s{,'"\\])message\\?["']?\s*[:=]\s*\\?["']?([^"'\r\n\\]{3,400})"#);
re!(re_www_auth, r#"(?i)www-authenticate\\?["']?\s*[:=]\s*([^\r\n]{1,2000})"#);
re!(re_status, r#"(?i)(?:status(?:[ _]?code)?|statuscode|http[ _]?status)\\?["']?\s*[:=]?\s*\\?["']?\(?(\d{3})\b"#);
re!(re_error_status, r"(?i)\b(?:error|code|http)\s*:?\s*(401|403|404|429|500|502|503|504)\b");
re!(re_http_line, r"(?i)\bHTTP/\d(?:\.\d)?\s+(\d{3})\b");
re!(
    re_status_phrase,
    r"(?i)\(?\b(\d{3})\)?\s*[-:(]?\s*(?:Unauthorized|Forbidden|Bad\s?Request|Too\s?Many\s?Requests|Service\s?Unavailable|Internal\s?Server\s?Error|Bad\s?Gateway|Gateway\s?Time-?out|Not\s?Found|Not\s?Authorized)\b"
);
re!(
    re_status_verb,
    r"(?i)\b(?:returns?|returned|returning|got|gets|getting|receiv(?:e|es|ed|ing)|throws?|fails? with)\s+(?:an?\s+|the\s+)?(?:http\s+|error\s+|status\s+)?\(?(401|403|404|429|500|502|503|504)\b"
);
re!(
    re_status_word,
    r"(?i)\b(Unauthorized|Forbidden|Too\s?Many\s?Requests|Service\s?Unavailable|Internal\s?Server\s?Error|Bad\s?Gateway|Gateway\s?Time-?out)\b"
);
re!(re_url, r#"(?i)\bhttps?://[^\s"'<>)\]}\\|`]+"#);
re!(re_method_url, r"\b(GET|POST|PUT|PATCH|DELETE)\s+https?://");
re!(re_tag, r"(?s)<[^>]{0,2000}>");
re!(re_script, r"(?is)<(script|style)\b.*?</(script|style)>");

/// Cuts `text` to at most `MAX_SCAN_BYTES` on a character boundary.
pub(crate) fn cap(text: &str) -> &str {
    if text.len() <= MAX_SCAN_BYTES {
        return text;
    }
    let mut end = MAX_SCAN_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Turns an HTML page into its text, keeping the title.
fn strip_html(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let looks_html = lower.contains("<html")
        || lower.contains("<!doctype html")
        || lower.contains("<body")
        || lower.contains("<title");
    if !looks_html {
        return text.to_string();
    }
    let no_script = re_script().replace_all(text, " ");
    let no_tags = re_tag().replace_all(&no_script, " ");
    no_tags
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Removes one level of string escaping so JSON pasted inside a quoted string can be read.
fn unescape(text: &str) -> String {
    text.replace("\\r\\n", "\n")
        .replace("\\n", "\n")
        .replace("\\r", "\n")
        .replace("\\t", " ")
        .replace("\\\"", "\"")
        .replace("\\\\", "\\")
        .replace("\\u0027", "'")
}

/// Everything the parser could read from the text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Signals {
    pub aadsts: Vec<u32>,
    pub oauth_error: Option<String>,
    pub description: Option<String>,
    pub suberror: Option<String>,
    pub claims: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
    pub graph_code: Option<String>,
    pub graph_inner_code: Option<String>,
    pub graph_message: Option<String>,
    pub graph_inner_message: Option<String>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub date: Option<String>,
    pub www_authenticate: Option<String>,
    pub status: Option<u16>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub transport: Option<TransportKind>,
    /// A JSON object shaped like a Graph error (`error.code` and `error.message`) was read.
    pub graph_shape: bool,
    /// The text, cleaned (HTML stripped, escapes removed) and capped.
    pub text: String,
    /// `text` lower-cased with whitespace squashed, computed once for every phrase lookup.
    pub lower: String,
}

impl Signals {
    fn host_kind(&self) -> Option<HostKind> {
        let url = self.url.as_deref()?;
        hosts::host_of(url).map(|h| hosts::kind_of_host(&h))
    }
}

fn set_if_none(slot: &mut Option<String>, value: Option<&str>) {
    if slot.is_none()
        && let Some(v) = value.map(str::trim).filter(|v| !v.is_empty())
    {
        *slot = Some(v.to_string());
    }
}

fn str_field<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).and_then(|(_, v)| v.as_str())
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// Reads the fields of a token-endpoint or Graph error out of a JSON value, searching nested
/// objects (log records often wrap the response) up to a small depth.
fn absorb_json(value: &Value, s: &mut Signals, depth: usize) {
    if depth > 8 {
        return;
    }
    match value {
        Value::Object(obj) => {
            // A token-endpoint body.
            if let Some(desc) = str_field(obj, "error_description") {
                set_if_none(&mut s.description, Some(desc));
                set_if_none(&mut s.oauth_error, str_field(obj, "error"));
                set_if_none(&mut s.suberror, str_field(obj, "suberror"));
                set_if_none(&mut s.trace_id, str_field(obj, "trace_id"));
                set_if_none(&mut s.correlation_id, str_field(obj, "correlation_id"));
                set_if_none(&mut s.timestamp, str_field(obj, "timestamp"));
                set_if_none(&mut s.claims, str_field(obj, "claims"));
                if let Some(Value::Array(codes)) = field(obj, "error_codes") {
                    for c in codes.iter().filter_map(Value::as_u64) {
                        if let Ok(c) = u32::try_from(c)
                            && !s.aadsts.contains(&c)
                        {
                            s.aadsts.push(c);
                        }
                    }
                }
            }
            // A sign-in log entry (Entra's export or Graph's signIn resource): the failure is
            // `status.errorCode` (an AADSTS number, 0 for success) with `status.failureReason`.
            if let Some(reason) = str_field(obj, "failureReason")
                && let Some(code) =
                    field(obj, "errorCode").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                && code != 0
                && let Ok(code) = u32::try_from(code)
            {
                if !s.aadsts.contains(&code) {
                    s.aadsts.push(code);
                }
                set_if_none(&mut s.description, Some(reason));
            }
            // A Graph body: {"error": {"code", "message", "innerError": {...}}}, or the inner
            // object itself when the outer wrapper was not pasted.
            let graph_obj = match field(obj, "error") {
                Some(Value::Object(inner)) => Some(inner),
                _ if str_field(obj, "code").is_some() && str_field(obj, "message").is_some() => Some(obj),
                _ => None,
            };
            if let Some(g) = graph_obj {
                if str_field(g, "code").is_some() || field(g, "code").is_some_and(Value::is_u64) {
                    s.graph_shape = true;
                }
                if s.graph_code.is_none() {
                    set_if_none(&mut s.graph_code, str_field(g, "code"));
                    if s.graph_code.is_none()
                        && let Some(n) = field(g, "code").and_then(Value::as_u64)
                    {
                        s.graph_code = Some(n.to_string());
                    }
                    set_if_none(&mut s.graph_message, str_field(g, "message"));
                    if let Some(Value::Object(inner)) = field(g, "innerError") {
                        set_if_none(&mut s.graph_inner_code, str_field(inner, "code"));
                        set_if_none(&mut s.graph_inner_message, str_field(inner, "message"));
                        set_if_none(&mut s.request_id, str_field(inner, "request-id"));
                        set_if_none(&mut s.client_request_id, str_field(inner, "client-request-id"));
                        set_if_none(&mut s.date, str_field(inner, "date"));
                        if s.status.is_none() {
                            s.status = str_field(inner, "status").and_then(|v| v.parse().ok());
                        }
                    }
                }
            }
            if s.status.is_none() {
                for key in ["status", "statusCode", "status_code", "httpStatus"] {
                    if let Some(n) =
                        field(obj, key).and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|x| x.parse().ok())))
                        && (100..600).contains(&n)
                    {
                        s.status = u16::try_from(n).ok();
                        break;
                    }
                }
            }
            for key in ["url", "uri", "requestUri", "request_url"] {
                set_if_none(&mut s.url, str_field(obj, key).filter(|u| u.starts_with("http")));
            }
            for v in obj.values() {
                if matches!(v, Value::Object(_) | Value::Array(_)) {
                    absorb_json(v, s, depth + 1);
                } else if let Value::String(inner) = v {
                    // JSON carried as a string inside JSON (a logged response body).
                    let t = inner.trim_start();
                    if t.starts_with('{')
                        && depth < 4
                        && let Ok(nested) = serde_json::from_str::<Value>(t)
                    {
                        absorb_json(&nested, s, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            for v in items.iter().take(32) {
                absorb_json(v, s, depth + 1);
            }
        }
        _ => {}
    }
}

/// Tries to read JSON documents starting at the first `{` positions of the text.
fn absorb_strict_json(text: &str, s: &mut Signals) {
    let mut attempts = 0;
    let mut pos = 0;
    while let Some(off) = text[pos..].find('{') {
        let start = pos + off;
        attempts += 1;
        if attempts > MAX_JSON_ATTEMPTS {
            break;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        if let Some(Ok(value)) = stream.next() {
            let end = start + stream.byte_offset();
            absorb_json(&value, s, 0);
            pos = end.max(start + 1);
        } else {
            pos = start + 1;
        }
        if pos >= text.len() {
            break;
        }
    }
}

fn first_capture(re: &Regex, text: &str) -> Option<String> {
    re.captures(text).and_then(|c| c.get(1)).map(|m| m.as_str().trim().to_string())
}

fn valid_status(n: u16) -> bool {
    (100..600).contains(&n)
}

/// The HTTP status printed in a text, without the rest of the parsing.
pub(crate) fn status_of(text: &str) -> Option<u16> {
    find_status(cap(text))
}

/// Reads the HTTP status from the many ways tools print it.
fn find_status(text: &str) -> Option<u16> {
    for re in [re_status(), re_http_line(), re_status_phrase(), re_error_status(), re_status_verb()] {
        for c in re.captures_iter(text).take(16) {
            if let Some(n) = c.get(1).and_then(|m| m.as_str().parse::<u16>().ok())
                && valid_status(n)
            {
                return Some(n);
            }
        }
    }
    let Some(word) = first_capture(re_status_word(), text) else {
        // Windows and .NET print the status's name in the user's language.
        return crate::field::localized_status(&squash(text));
    };
    let w: String = word.to_ascii_lowercase().split_whitespace().collect();
    match w.as_str() {
        "unauthorized" => Some(401),
        "forbidden" => Some(403),
        "toomanyrequests" => Some(429),
        "internalservererror" => Some(500),
        "badgateway" => Some(502),
        "serviceunavailable" => Some(503),
        _ if w.starts_with("gateway") => Some(504),
        _ => None,
    }
}

/// Picks the URL that says most about the failure: a login or Graph host first.
fn find_url(text: &str) -> Option<String> {
    let mut best: Option<(u8, String)> = None;
    for m in re_url().find_iter(text).take(64) {
        let url = m.as_str().trim_end_matches(['.', ',', ';', ':']).to_string();
        let Some(host) = hosts::host_of(&url) else { continue };
        let rank = match hosts::kind_of_host(&host) {
            HostKind::Login if url.contains("/error?") => 4,
            HostKind::Login | HostKind::Graph => 1,
            HostKind::OtherApi => 2,
            HostKind::Other => continue,
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, url));
        }
    }
    best.map(|(_, u)| u)
}

/// Socket-level failure messages of the common HTTP stacks (.NET, Node, Python, curl, Rust),
/// in English and as Windows and .NET print them in other languages: `data/network_signatures.tsv`
/// and `data/localized_status.tsv`.
fn find_transport(lower: &str) -> Option<TransportKind> {
    crate::field::find_transport(lower)
}

/// Reads every signal out of the text.
pub(crate) fn signals(raw: &str) -> Signals {
    let capped = cap(raw);
    let html_free = strip_html(capped);
    let text =
        if html_free.contains("\\\"") || html_free.contains("\\r\\n") { unescape(&html_free) } else { html_free };
    let mut s = Signals::default();

    absorb_strict_json(&text, &mut s);

    for c in re_aadsts().captures_iter(&text).take(32) {
        if let Some(n) = c.get(1).and_then(|m| m.as_str().parse::<u32>().ok())
            && !s.aadsts.contains(&n)
        {
            s.aadsts.push(n);
        }
    }
    if let Some(c) = re_error_codes().captures(&text) {
        for n in c[1].split(',').filter_map(|x| x.trim().parse::<u32>().ok()) {
            if !s.aadsts.contains(&n) {
                s.aadsts.push(n);
            }
        }
    }
    if s.aadsts.is_empty() {
        // Microsoft's error lookup page names the code in its URL.
        for c in re_error_lookup().captures_iter(&text).take(4) {
            if let Some(n) = c.get(1).and_then(|m| m.as_str().parse::<u32>().ok())
                && !s.aadsts.contains(&n)
            {
                s.aadsts.push(n);
            }
        }
    }
    if s.aadsts.is_empty() {
        // "Sign-in error code: 53003" as the sign-in logs print it; only codes that are known,
        // so that arbitrary numbers are not mistaken for AADSTS codes.
        for c in re_error_code_word().captures_iter(&text).take(8) {
            if let Some(n) = c.get(1).and_then(|m| m.as_str().parse::<u32>().ok())
                && (crate::aadsts::rule_for(n).is_some() || crate::aadsts::reference(n).is_some())
            {
                s.aadsts.push(n);
            }
        }
    }

    if s.oauth_error.is_none() {
        s.oauth_error = re_oauth_field()
            .captures_iter(&text)
            .filter_map(|c| c.get(1).map(|m| m.as_str().to_ascii_lowercase()))
            .find(|e| OAUTH_ERRORS.contains(&e.as_str()));
    }
    if s.oauth_error.is_none() {
        let lower = text.to_ascii_lowercase();
        s.oauth_error = OAUTH_ERRORS
            .iter()
            .filter_map(|e| find_word(&lower, e).map(|i| (i, *e)))
            .min_by_key(|(i, _)| *i)
            .map(|(_, e)| e.to_string());
    }
    set_if_none(&mut s.suberror, first_capture(re_suberror(), &text).as_deref());
    // The cheap `contains` spares the pattern's scan of texts that cannot match it.
    if s.claims.is_none()
        && text.contains("olids")
        && let Some(c) = re_capolids().captures(&text)
    {
        let ids: Vec<String> = re_guid().find_iter(&c[1]).map(|m| format!("\"{}\"", m.as_str())).collect();
        if !ids.is_empty() {
            s.claims = Some(format!(
                "{{\"access_token\":{{\"capolids\":{{\"essential\":true,\"values\":[{}]}}}}}}",
                ids.join(",")
            ));
        }
    }
    set_if_none(&mut s.trace_id, first_capture(re_trace(), &text).as_deref());
    set_if_none(&mut s.correlation_id, first_capture(re_correlation(), &text).as_deref());
    set_if_none(&mut s.timestamp, first_capture(re_timestamp(), &text).as_deref());
    for c in re_request_id().captures_iter(&text).take(8) {
        let id = c.get(2).map(|m| m.as_str());
        if c.get(1).is_some() {
            set_if_none(&mut s.client_request_id, id);
        } else {
            set_if_none(&mut s.request_id, id);
        }
    }
    set_if_none(&mut s.date, first_capture(re_date(), &text).as_deref());
    if text.contains("uthenticate") || text.contains("UTHENTICATE") {
        set_if_none(&mut s.www_authenticate, first_capture(re_www_auth(), &text).as_deref());
    }

    // Graph code: the JSON read wins; then a known code anywhere; then a `code:` field that is
    // not an OAuth error or a number.
    if s.graph_code.is_none() {
        s.graph_code = graph::KNOWN_CODES
            .iter()
            .filter_map(|c| text.find(c).map(|i| (i, *c)))
            .min_by_key(|(i, _)| *i)
            .map(|(_, c)| c.to_string());
        if s.graph_code.as_deref() == Some("unauthorizedMissingMfaTokenClaim") {
            s.graph_inner_code = s.graph_code.take();
            s.graph_code = Some("unauthorized".into());
        }
    }
    if s.graph_code.is_none() {
        s.graph_code =
            re_code_field().captures_iter(&text).filter_map(|c| c.get(1).map(|m| m.as_str().to_string())).find(|c| {
                let l = c.to_ascii_lowercase();
                !OAUTH_ERRORS.contains(&l.as_str())
                    && !l.starts_with("aadsts")
                    && l != "null"
                    && l != "none"
                    && l != "undefined"
            });
    }
    if s.graph_message.is_none() {
        s.graph_message = first_capture(re_message_field(), &text);
    }
    let lower = squash(&text);
    if (s.graph_code.is_none() || s.graph_code.as_deref().is_some_and(|c| c.is_empty()))
        && let Some((sig, code, _)) = graph::MESSAGE_SIGNATURES.iter().find(|(sig, _, _)| lower.contains(sig))
    {
        if !code.is_empty() {
            s.graph_code = Some((*code).to_string());
        }
        if *code == "unauthorized" {
            s.graph_inner_code = Some("unauthorizedMissingMfaTokenClaim".into());
        }
        set_if_none(&mut s.graph_message, Some(sig));
    }

    if s.aadsts.is_empty()
        && let Some(code) = crate::field::aadsts_by_name(&lower)
    {
        // Audit logs and some libraries print the code's name ("UserStrongAuthExpired") alone.
        s.aadsts.push(code);
    }
    s.status = s.status.or_else(|| find_status(&text));
    s.url = s.url.take().or_else(|| find_url(&text));
    s.method = first_capture(re_method_url(), &text);
    s.transport = find_transport(&lower);
    s.text = text;
    s.lower = lower;
    s
}

/// Lower case with every run of whitespace collapsed to one space, so that phrases broken
/// across lines by a terminal or a log formatter still match.
pub(crate) fn squash(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
        } else {
            if ch.is_ascii() {
                out.push(ch.to_ascii_lowercase());
            } else {
                out.extend(ch.to_lowercase());
            }
            space = false;
        }
    }
    out
}

/// The byte index of `word` in `hay` where it stands as a whole identifier.
fn find_word(hay: &str, word: &str) -> Option<usize> {
    let bytes = hay.as_bytes();
    let mut from = 0;
    while let Some(off) = hay[from..].find(word) {
        let i = from + off;
        let before_ok = i == 0 || !is_ident(bytes[i - 1]);
        let j = i + word.len();
        let after_ok = j >= bytes.len() || !is_ident(bytes[j]);
        if before_ok && after_ok {
            return Some(i);
        }
        from = i + 1;
        if from >= hay.len() {
            break;
        }
    }
    None
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A short, single-line excerpt of the text starting at `start`.
fn excerpt(text: &str, start: usize, max: usize) -> String {
    let tail = &text[start..];
    let mut out = String::new();
    for ch in tail.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        out.push(if ch.is_control() { ' ' } else { ch });
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The description of a token error found in free text: from the first AADSTS code on.
fn description_from_text(text: &str) -> String {
    match text.find("AADSTS").or_else(|| text.to_ascii_lowercase().find("aadsts")) {
        Some(i) => excerpt(text, i, 600),
        None => excerpt(text, 0, 600),
    }
}

fn is_graph_code(code: &str) -> bool {
    let l = code.to_ascii_lowercase();
    graph::KNOWN_CODES.iter().any(|k| k.eq_ignore_ascii_case(&l))
        || l == "unauthorized"
        || l == "forbidden"
        || l == "accessdenied"
        || l == "unknownerror"
        || l == "badrequest"
        || l == "itemnotfound"
        || l == "invalidrequest"
        || l.starts_with("request_")
        || l.starts_with("authorization_")
        || l.starts_with("authentication_")
}

/// Parses any text into the most specific `Failure` it supports.
pub fn parse_failure(text: &str) -> Failure {
    let s = signals(text);
    build_failure(&s)
}

pub(crate) fn build_failure(s: &Signals) -> Failure {
    let host_kind = s.host_kind();
    let graph_code_known = s.graph_code.as_deref().is_some_and(is_graph_code) || s.graph_inner_code.is_some();
    if s.aadsts.is_empty() {
        // Partner Center codes and MSAL's own error codes are read by the text rules, on the
        // whole text; their JSON ("description") must not pass for a token-endpoint body.
        let lower = &s.lower;
        if crate::field::partner_center(lower).is_some() || !crate::field::msal_errors_in(lower).is_empty() {
            return Failure::Text(excerpt(&s.text, 0, 2000));
        }
    }
    let token_like = !s.aadsts.is_empty() || (s.oauth_error.is_some() && !graph_code_known) || s.description.is_some();

    if token_like {
        let url =
            s.url.clone().filter(|u| hosts::host_of(u).is_some_and(|h| hosts::kind_of_host(&h) == HostKind::Login));
        let tenant = url.as_deref().and_then(hosts::tenant_of_login_url);
        return Failure::TokenEndpoint(TokenEndpointFailure {
            http_status: s.status.unwrap_or(0),
            error: s.oauth_error.clone().unwrap_or_default(),
            error_codes: s.aadsts.clone(),
            description: s.description.clone().unwrap_or_else(|| description_from_text(&s.text)),
            suberror: s.suberror.clone(),
            claims: s.claims.clone(),
            trace_id: s.trace_id.clone(),
            correlation_id: s.correlation_id.clone(),
            timestamp: s.timestamp.clone(),
            url,
            tenant,
        });
    }

    let graph_message_sig = graph::MESSAGE_SIGNATURES.iter().any(|(sig, _, _)| s.lower.contains(sig));
    // A bare status printed by a connect cmdlet (Connect-PnPOnline against a SharePoint URL) is
    // about the sign-in, not about the API behind the URL: the text rules read it in context. A
    // network failure without any status (New-PSSession or Connect-ExchangeOnline could not
    // resolve or reach the host) never got that far, so it stays a transport failure below.
    let network_only = s.transport.is_some() && s.status.is_none();
    if !graph_code_known
        && !graph_message_sig
        && !s.graph_shape
        && !network_only
        && crate::text::is_sign_in_context(&s.lower)
    {
        return Failure::Text(excerpt(&s.text, 0, 2000));
    }
    let graph_like = graph_code_known
        || graph_message_sig
        || s.graph_shape
        || matches!(host_kind, Some(HostKind::Graph) | Some(HostKind::OtherApi));
    if graph_like && (s.status.is_some() || graph_code_known || graph_message_sig || s.graph_shape) {
        let implied_status = s
            .graph_code
            .as_deref()
            .and_then(|c| {
                graph::MESSAGE_SIGNATURES
                    .iter()
                    .find(|(_, code, _)| !code.is_empty() && code.eq_ignore_ascii_case(c))
                    .map(|(_, _, st)| *st)
            })
            .unwrap_or(0);
        return Failure::Graph(GraphFailure {
            http_status: s.status.unwrap_or(implied_status),
            code: s
                .graph_code
                .clone()
                .filter(|_| graph_code_known || graph_message_sig || s.graph_shape)
                .unwrap_or_default(),
            inner_code: s.graph_inner_code.clone(),
            message: s.graph_message.clone().unwrap_or_else(|| excerpt(&s.text, 0, 300)),
            inner_message: s.graph_inner_message.clone(),
            request_id: s.request_id.clone(),
            client_request_id: s.client_request_id.clone(),
            date: s.date.clone(),
            www_authenticate: s.www_authenticate.clone(),
            method: s.method.clone(),
            url: s.url.clone(),
        });
    }

    if let Some(kind) = s.transport
        && (s.status.is_none() || kind == TransportKind::HostNotAllowed)
    {
        return Failure::Transport(TransportFailure { kind, url: s.url.clone(), message: excerpt(&s.text, 0, 400) });
    }

    match (host_kind, s.status) {
        (Some(HostKind::Login), status) => Failure::TokenEndpoint(TokenEndpointFailure {
            http_status: status.unwrap_or(0),
            error: String::new(),
            error_codes: Vec::new(),
            description: excerpt(&s.text, 0, 600),
            url: s.url.clone(),
            tenant: s.url.as_deref().and_then(hosts::tenant_of_login_url),
            trace_id: s.trace_id.clone(),
            correlation_id: s.correlation_id.clone(),
            timestamp: s.timestamp.clone(),
            ..Default::default()
        }),
        (Some(HostKind::Graph) | Some(HostKind::OtherApi), Some(status)) => Failure::Graph(GraphFailure {
            http_status: status,
            message: excerpt(&s.text, 0, 300),
            request_id: s.request_id.clone(),
            client_request_id: s.client_request_id.clone(),
            date: s.date.clone(),
            www_authenticate: s.www_authenticate.clone(),
            method: s.method.clone(),
            url: s.url.clone(),
            ..Default::default()
        }),
        _ => Failure::Text(excerpt(&s.text, 0, 2000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(f: Failure) -> TokenEndpointFailure {
        match f {
            Failure::TokenEndpoint(t) => t,
            other => panic!("expected a token failure, got {other:?}"),
        }
    }

    fn graph(f: Failure) -> GraphFailure {
        match f {
            Failure::Graph(g) => g,
            other => panic!("expected a Graph failure, got {other:?}"),
        }
    }

    #[test]
    fn patterns_compile() {
        let _ = signals("AADSTS50076 error_codes:[1] status: 401 https://graph.microsoft.com/v1.0/me <html>");
    }

    #[test]
    fn token_endpoint_json_body() {
        let body = r#"{"error":"interaction_required","error_description":"AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'. Trace ID: 0000aaaa-0000-0000-0000-000000000000 Correlation ID: aaaa0000-0000-0000-0000-000000000000 Timestamp: 2024-01-01 10:00:00Z","error_codes":[50076],"timestamp":"2024-01-01 10:00:00Z","trace_id":"0000aaaa-0000-0000-0000-000000000000","correlation_id":"aaaa0000-0000-0000-0000-000000000000","suberror":"basic_action"}"#;
        let t = token(parse_failure(body));
        assert_eq!(t.error, "interaction_required");
        assert_eq!(t.error_codes, vec![50076]);
        assert_eq!(t.suberror.as_deref(), Some("basic_action"));
        assert_eq!(t.trace_id.as_deref(), Some("0000aaaa-0000-0000-0000-000000000000"));
        assert!(t.description.starts_with("AADSTS50076"));
    }

    #[test]
    fn escaped_json_inside_an_exception() {
        let text = r#"System.Exception: {\"error\":\"interaction_required\",\"error_description\":\"AADSTS50079: The user is required to use multi-factor authentication.\\r\\nTrace ID: 5c8ce2fc-1720-45c1-899a-0a6d0e965600\",\"error_codes\":[50079],\"claims\":\"{\\\"access_token\\\":{\\\"capolids\\\":{\\\"essential\\\":true,\\\"values\\\":[\\\"59866338-815e-41e6-9613-0ec6218e5c3d\\\"]}}}\",\"suberror\":\"basic_action\"}"#;
        let t = token(parse_failure(text));
        assert_eq!(t.error_codes, vec![50079]);
        assert_eq!(t.error, "interaction_required");
        assert!(t.claims.unwrap_or_default().contains("59866338-815e-41e6-9613-0ec6218e5c3d"));
    }

    #[test]
    fn python_dict_with_single_quotes() {
        let text = "{'error': 'invalid_grant', 'error_description': \"AADSTS700082: The refresh token has expired due to inactivity.\", 'error_codes': [700082], 'timestamp': '2023-01-01 00:00:00Z'}";
        let t = token(parse_failure(text));
        assert_eq!(t.error, "invalid_grant");
        assert_eq!(t.error_codes, vec![700082]);
    }

    #[test]
    fn msal_exceptions() {
        let net = "MsalUiRequiredException: AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.";
        assert_eq!(token(parse_failure(net)).error_codes, vec![50076]);
        let node = "InteractionRequiredAuthError: interaction_required: AADSTS50079: Due to a configuration change made by your administrator...";
        let t = token(parse_failure(node));
        assert_eq!(t.error, "interaction_required");
        assert_eq!(t.error_codes, vec![50079]);
    }

    #[test]
    fn graph_body_with_and_without_wrapper() {
        let body = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2021-12-09T17:41:54","request-id":"b1909fc0-aa5c-4b43-8a1f-000000000000","client-request-id":"836e08bb-a12d-4ade-c761-000000000000"}}}"#;
        let g = graph(parse_failure(body));
        assert_eq!(g.code, "Authorization_RequestDenied");
        assert_eq!(g.request_id.as_deref(), Some("b1909fc0-aa5c-4b43-8a1f-000000000000"));
        assert_eq!(g.client_request_id.as_deref(), Some("836e08bb-a12d-4ade-c761-000000000000"));
        assert_eq!(g.http_status, 403);
        let bare = r#"{"code":"unauthorized","message":"You are not authorized to access the resource.","innerError":{"code":"unauthorizedMissingMfaTokenClaim","message":"The MFA claim was missing in the token."}}"#;
        let g = graph(parse_failure(bare));
        assert_eq!(g.code, "unauthorized");
        assert_eq!(g.inner_code.as_deref(), Some("unauthorizedMissingMfaTokenClaim"));
    }

    #[test]
    fn powershell_error_record() {
        let text = "Get-MgUser : Insufficient privileges to complete the operation.\nStatus: 403 (Forbidden)\nErrorCode: Authorization_RequestDenied\nDate: 2023-05-01T10:00:00\n";
        let g = graph(parse_failure(text));
        assert_eq!(g.http_status, 403);
        assert_eq!(g.code, "Authorization_RequestDenied");
    }

    #[test]
    fn seed_log_lines() {
        let login = "Unable to get Microsoft access_token (SSO auth). Request failed with status code 401 calling https://login.microsoftonline.com/0f3c2a55-1111-2222-3333-444455556666/oauth2/v2.0/token";
        let t = token(parse_failure(login));
        assert_eq!(t.http_status, 401);
        assert_eq!(t.tenant.as_deref(), Some("0f3c2a55-1111-2222-3333-444455556666"));
        let graph_line = "Inspection failed at https://graph.microsoft.com/v1.0/users with status code 401: Request failed with status code 401.";
        let g = graph(parse_failure(graph_line));
        assert_eq!(g.http_status, 401);
        assert_eq!(g.url.as_deref(), Some("https://graph.microsoft.com/v1.0/users"));
    }

    #[test]
    fn truncated_json_and_line_breaks() {
        let text = "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50173: The provided grant has expired due to it being revoked,\n a fresh auth token is needed. Trace ID: 1";
        let t = token(parse_failure(text));
        assert_eq!(t.error_codes, vec![50173]);
        assert_eq!(t.error, "invalid_grant");
    }

    #[test]
    fn html_page() {
        let html = "<html><head><title>Sign in to your account</title></head><body><div>AADSTS53003: Access has been blocked by Conditional Access policies.</div></body></html>";
        assert_eq!(token(parse_failure(html)).error_codes, vec![53003]);
    }

    #[test]
    fn transport_messages() {
        let f = parse_failure("getaddrinfo ENOTFOUND login.microsoftonline.com");
        assert!(matches!(f, Failure::Transport(TransportFailure { kind: TransportKind::Dns, .. })));
        let f = parse_failure(
            "Post \"https://graph.microsoft.com/v1.0/$batch\": dial tcp 20.190.1.1:443: connect: connection refused",
        );
        assert!(matches!(f, Failure::Transport(TransportFailure { kind: TransportKind::Connect, .. })));
    }

    #[test]
    fn a_network_failure_in_a_sign_in_cmdlet_stays_a_network_failure() {
        let f = parse_failure(
            "New-PSSession : [outlook.office365.com] Connecting to remote server outlook.office365.com failed with the following error message : The WinRM client cannot process the request because the server name cannot be resolved.",
        );
        assert!(matches!(f, Failure::Transport(TransportFailure { kind: TransportKind::Dns, .. })));
        // A bare status from the same cmdlet is still read in its sign-in context.
        let f = parse_failure("Connect-PnPOnline : The remote server returned an error: (403) Forbidden.");
        assert!(matches!(f, Failure::Text(_)));
    }

    #[test]
    fn status_variants() {
        assert_eq!(find_status("The remote server returned an error: (401) Unauthorized."), Some(401));
        assert_eq!(find_status("HTTP/1.1 403 Forbidden"), Some(403));
        assert_eq!(find_status("Response status code does not indicate success: 429 (Too Many Requests)."), Some(429));
        assert_eq!(find_status("\"statusCode\":503"), Some(503));
        assert_eq!(find_status("Unauthorized"), Some(401));
        assert_eq!(find_status("unauthorized_client"), None);
    }

    #[test]
    fn codes_are_found_in_odd_places() {
        assert_eq!(
            token(parse_failure("AADSTS 90094 Microsoft graph command line tools is requesting permissions"))
                .error_codes,
            vec![90094]
        );
        assert_eq!(
            token(parse_failure("see https://login.microsoftonline.com/error?code=50053 for details")).error_codes,
            vec![50053]
        );
        assert_eq!(token(parse_failure("Sign-in error code: 53003\nFailure reason: blocked")).error_codes, vec![53003]);
        // A number that is not an AADSTS code is not taken for one.
        assert!(matches!(parse_failure("error code 12345 in module"), Failure::Text(_)));
        // Pasted with a separator, or without the leading `A` of a clipped line; never inside
        // another identifier.
        assert_eq!(token(parse_failure("AADSTS: 50076 Due to a configuration change")).error_codes, vec![50076]);
        assert_eq!(token(parse_failure("AADSTS-700082 The refresh token has expired")).error_codes, vec![700082]);
        assert_eq!(token(parse_failure("ADSTS50126: Error validating credentials")).error_codes, vec![50126]);
        assert!(signals("LOADSTS50126 and XADSTS50076").aadsts.is_empty());
    }

    #[test]
    fn url_encoded_and_multiply_escaped_text() {
        let t = token(parse_failure(
            "MSALErrorDescriptionKey=AADSTS500011:+The+resource+principal+named+https://x+was+not+found",
        ));
        assert_eq!(t.error_codes, vec![500011]);
        let nested =
            r#"{"message": ""{\n  \"message\": \"\\\"AADSTS500571: The guest user account is disabled.\\\"\"\n}""}"#;
        assert_eq!(token(parse_failure(nested)).error_codes, vec![500571]);
    }

    #[test]
    fn squash_collapses_whitespace() {
        assert_eq!(squash("  The identity\n of  the\tapp "), "the identity of the app ");
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(find_word("x invalid_grant y", "invalid_grant"), Some(2));
        assert_eq!(find_word("my_invalid_grant_thing", "invalid_grant"), None);
    }

    #[test]
    fn plain_text_stays_text() {
        assert!(matches!(parse_failure("something odd happened"), Failure::Text(_)));
        assert!(matches!(parse_failure(""), Failure::Text(_)));
    }

    #[test]
    fn huge_input_is_capped() {
        let big = "x".repeat(MAX_SCAN_BYTES * 3) + "AADSTS50076";
        assert!(matches!(parse_failure(&big), Failure::Text(_)));
        let multibyte = "é".repeat(MAX_SCAN_BYTES);
        assert!(cap(&multibyte).len() <= MAX_SCAN_BYTES);
    }
}
