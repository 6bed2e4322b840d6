//! Every AADSTS code of the mapping table, delivered the ways users meet it, gives its cause.

use diagnose::aadsts::{MAPPING, reference, reference_table, rule_for};
use diagnose::{Cause, Check, Facts, Failure, TokenEndpointFailure, candidates, explain};

fn oauth_error(cause: Cause) -> (&'static str, u16) {
    match cause {
        Cause::ClientCredentialInvalid | Cause::ClientCredentialExpired => ("invalid_client", 401),
        Cause::AppNotFound => ("unauthorized_client", 400),
        Cause::MfaRequired | Cause::ConditionalAccessBlocked => ("interaction_required", 400),
        Cause::TenantNotFound => ("invalid_tenant", 400),
        Cause::WrongCloud => ("invalid_instance", 400),
        Cause::Throttled => ("temporarily_unavailable", 429),
        Cause::ServiceUnavailable => ("temporarily_unavailable", 503),
        _ => ("invalid_grant", 400),
    }
}

fn description(code: u32) -> String {
    let words = reference(code)
        .map(|e| e.description)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .or_else(|| rule_for(code).map(|r| r.summary.split_once(": ").map_or(r.summary, |(_, s)| s).to_string()))
        .unwrap_or_default();
    format!(
        "AADSTS{code}: {words}\r\nTrace ID: 0000aaaa-11bb-22cc-33dd-444444eeeeee\r\nCorrelation ID: aaaa0000-bb11-cc22-dd33-ee4444444444\r\nTimestamp: 2026-11-28 12:00:00Z"
    )
}

#[test]
fn every_mapped_code_gives_its_cause_from_a_structured_failure() {
    for rule in MAPPING {
        let (error, status) = oauth_error(rule.cause);
        let facts = Facts {
            failure: Some(Failure::TokenEndpoint(TokenEndpointFailure {
                http_status: status,
                error: error.into(),
                error_codes: vec![rule.code],
                description: description(rule.code),
                ..Default::default()
            })),
            ..Default::default()
        };
        let ranked = candidates(&facts);
        let best = &ranked[0];
        assert_eq!(
            best.cause,
            rule.cause,
            "AADSTS{}: ranked {:?}",
            rule.code,
            ranked.iter().map(|d| d.cause).collect::<Vec<_>>()
        );
        assert_eq!(best.summary, rule.summary, "AADSTS{} must use its specific summary", rule.code);
        let expected_check = if rule.cause == Cause::Unknown { Check::TokenRetrieval } else { rule.cause.check() };
        assert_eq!(best.check, expected_check, "AADSTS{}", rule.code);
        assert!(best.evidence.iter().any(|e| e.value.contains(&format!("AADSTS{}", rule.code))), "AADSTS{}", rule.code);
        for step in rule.fix {
            // Without facts the placeholders read as generic words.
            let step = step.replace("{tenant_id}", "<tenant>").replace("{tenant}", "the customer tenant");
            assert!(best.fix.contains(&step), "AADSTS{} lost its specific fix step", rule.code);
        }
    }
}

#[test]
fn every_mapped_code_gives_its_cause_from_pasted_text() {
    for rule in MAPPING {
        let (error, status) = oauth_error(rule.cause);
        let body = serde_json::json!({
            "error": error,
            "error_description": description(rule.code),
            "error_codes": [rule.code],
            "timestamp": "2026-11-28 12:00:00Z",
            "trace_id": "0000aaaa-11bb-22cc-33dd-444444eeeeee",
            "correlation_id": "aaaa0000-bb11-cc22-dd33-ee4444444444",
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", rule.code),
        });
        let pasted = [
            body.to_string(),
            format!("Get Token request returned http error: {status} and server response: {body}"),
            format!("Microsoft.Identity.Client.MsalServiceException: {}", description(rule.code)),
            format!(
                "{{'error': '{error}', 'error_description': \"{}\", 'error_codes': [{}]}}",
                description(rule.code).replace("\r\n", " "),
                rule.code
            ),
        ];
        for text in pasted {
            let e = explain(&text);
            assert_eq!(e.cause, rule.cause, "AADSTS{} pasted as: {}", rule.code, &text[..text.len().min(120)]);
        }
    }
}

#[test]
fn unmapped_codes_fall_back_to_unknown_with_microsofts_words() {
    let mut checked = 0;
    for entry in reference_table().iter().filter(|e| rule_for(e.code).is_none()) {
        let facts = Facts {
            failure: Some(Failure::TokenEndpoint(TokenEndpointFailure {
                http_status: 400,
                error: "invalid_request".into(),
                error_codes: vec![entry.code],
                description: format!("AADSTS{}", entry.code),
                ..Default::default()
            })),
            ..Default::default()
        };
        let best = &candidates(&facts)[0];
        assert_eq!(best.cause, Cause::Unknown, "AADSTS{}", entry.code);
        assert!(best.summary.contains(&format!("AADSTS{}", entry.code)));
        if !entry.description.is_empty() {
            assert!(best.summary.contains(entry.description), "AADSTS{} must quote the table", entry.code);
        } else if !entry.name.is_empty() {
            assert!(best.summary.contains(entry.name), "AADSTS{} must name the code", entry.code);
        }
        assert!(!best.fix.is_empty());
        checked += 1;
    }
    assert!(checked > 100, "expected most of the table to be unmapped, checked {checked}");
}

#[test]
fn the_mapping_covers_the_msp_codes_of_the_reference_document() {
    // The codes the protocol reference singles out for MSP inspection must all be mapped.
    for code in [
        50076, 50079, 50074, 50072, 50078, 53003, 53000, 53001, 53002, 530032, 530035, 530034, 53004, 53011, 50131,
        65001, 65004, 90094, 90095, 90008, 650056, 650057, 650052, 90099, 500011, 700016, 700011, 70001, 7000112,
        7000215, 7000222, 7000218, 700027, 700024, 700021, 50012, 70002, 700082, 70008, 700084, 50173, 50132, 50133,
        70043, 70000, 50089, 50057, 50053, 50055, 50144, 50126, 50034, 50020, 16000, 16003, 51004, 50014, 500212,
        500213, 90002, 900023, 90038, 50194, 90124, 90130, 9001023, 70011, 700022, 28002, 50058, 50196, 90055, 90024,
        700020, 50049, 70016, 70018, 70019, 90119, 90120, 54005, 501481, 1002012, 90014, 5000224, 9002313,
    ] {
        assert!(rule_for(code).is_some(), "AADSTS{code} is not mapped");
    }
}
