//! `explain`, `parse_failure` and `candidates` never panic, whatever they are given, and stay
//! bounded on huge input.

use diagnose::{
    Facts, Failure, GraphFailure, TokenEndpointFailure, TransportFailure, TransportKind, candidates, explain,
    parse_failure, summarize_sign_in_logs,
};
use proptest::prelude::*;

/// Pieces of real error texts, so that random inputs reach the deep parsing paths.
const FRAGMENTS: &[&str] = &[
    "AADSTS",
    "50076",
    "7000215",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "\\\"",
    "\\r\\n",
    ":",
    ",",
    "\"error\"",
    "\"error_codes\"",
    "\"error_description\"",
    "\"code\"",
    "\"message\"",
    "\"innerError\"",
    "invalid_grant",
    "interaction_required",
    "Authorization_RequestDenied",
    "InvalidAuthenticationToken",
    "status code 401",
    "Status: 403 (Forbidden)",
    "HTTP/1.1 429",
    "https://login.microsoftonline.com/",
    "https://graph.microsoft.com/v1.0/",
    "/oauth2/v2.0/token",
    "<html>",
    "<title>",
    "</",
    "capolids",
    "values",
    "claims=\"",
    "www-authenticate:",
    "getaddrinfo ENOTFOUND",
    "é",
    "\u{0}",
    "\n",
    " ",
    "error?code=",
    "Trace ID: ",
    "12345678-1234-1234-1234-123456789012",
    "MFA required",
    "premium license",
    "<prtg><error>1</error><text>",
    "CRITICAL - ",
    "Partial Export file was saved at",
    "{\"code\":1002,\"description\":\"Authorization Failed\",\"source\":\"PartnerFD\"}",
    "Get-PartnerCustomer : ",
    "endpoints_resolution_error",
    "untrusted_authority",
    "(401) Non autorisé",
    "(403) Verboden",
    "未能解析此远程名称",
    "curl: (6)",
    "\"errorCode\": 50053",
    "\"failureReason\": \"",
    "UserStrongAuthExpired",
    "Sign-in error code",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..60).prop_map(|v| v.concat())
}

fn transport_kind() -> impl Strategy<Value = TransportKind> {
    prop::sample::select(vec![
        TransportKind::Dns,
        TransportKind::Connect,
        TransportKind::Tls,
        TransportKind::Timeout,
        TransportKind::Reset,
        TransportKind::Body,
        TransportKind::HostNotAllowed,
        TransportKind::Other,
    ])
}

fn failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        (
            any::<u16>(),
            ".{0,20}",
            prop::collection::vec(any::<u32>(), 0..4),
            fragments(),
            proptest::option::of(".{0,40}")
        )
            .prop_map(|(http_status, error, error_codes, description, claims)| {
                Failure::TokenEndpoint(TokenEndpointFailure {
                    http_status,
                    error,
                    error_codes,
                    description,
                    claims,
                    ..Default::default()
                })
            }),
        (any::<u16>(), ".{0,30}", fragments(), proptest::option::of(".{0,30}"), proptest::option::of(fragments()))
            .prop_map(|(http_status, code, message, inner_code, www_authenticate)| {
                Failure::Graph(GraphFailure {
                    http_status,
                    code,
                    message,
                    inner_code,
                    www_authenticate,
                    ..Default::default()
                })
            }),
        (transport_kind(), proptest::option::of(".{0,40}"), ".{0,40}")
            .prop_map(|(kind, url, message)| Failure::Transport(TransportFailure { kind, url, message })),
        fragments().prop_map(Failure::Text),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn explain_never_panics_on_any_string(s in any::<String>()) {
        let e = explain(&s);
        prop_assert!(!e.candidates.is_empty());
        prop_assert_eq!(e.cause, e.candidates[0].cause);
        let _ = parse_failure(&s);
    }

    #[test]
    fn explain_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let e = explain(&text);
        prop_assert!(!e.candidates.is_empty());
    }

    #[test]
    fn explain_never_panics_on_error_like_fragments(s in fragments()) {
        let e = explain(&s);
        prop_assert!(!e.candidates.is_empty());
        prop_assert!(e.candidates.iter().all(|d| (0.0..=1.0).contains(&d.confidence) && !d.fix.is_empty()));
    }

    #[test]
    fn sign_in_log_summaries_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), s in fragments()) {
        let _ = summarize_sign_in_logs(&bytes);
        let _ = summarize_sign_in_logs(s.as_bytes());
        let as_array = format!("[{{\"status\":{{\"errorCode\":{}, \"failureReason\":{:?}}}}}]", bytes.len(), s);
        let _ = summarize_sign_in_logs(as_array.as_bytes());
        let as_csv = format!("Date (UTC),Status,Sign-in error code,Failure reason\n{s}\n");
        let _ = summarize_sign_in_logs(as_csv.as_bytes());
    }

    #[test]
    fn candidates_never_panic_on_any_failure(f in failure(), amr in prop::collection::vec("[a-z]{0,6}", 0..3)) {
        let facts = Facts {
            failure: Some(f),
            claims: Some(diagnose::TokenClaims { amr, ..Default::default() }),
            ..Default::default()
        };
        let ranked = candidates(&facts);
        prop_assert!(!ranked.is_empty());
        prop_assert!(!ranked[0].evidence.is_empty());
    }
}

#[test]
fn huge_and_pathological_inputs_are_bounded() {
    let huge = "{\"error\":".repeat(400_000);
    let _ = explain(&huge);
    let nested = "[".repeat(200_000) + &"]".repeat(200_000);
    let _ = explain(&nested);
    let many_braces = "{".repeat(1_000_000);
    let _ = explain(&many_braces);
    let long_line = "AADSTS".repeat(500_000);
    let _ = explain(&long_line);
    let tail = "x".repeat(3 * 1024 * 1024) + "AADSTS53003";
    let e = explain(&tail);
    // Only the first 256 KiB are read, so a code past it is not seen.
    assert_eq!(e.cause, diagnose::Cause::Unknown);
}
