//! Webhook requests for alerts: the JSON payload and its signature.
//!
//! Sending is the caller's job (this crate does no IO). The signature follows
//! the scheme receivers know from payment providers: the header
//! `X-Tenantscope-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` signs
//! `"<t>.<body>"` with the shared secret, so a receiver can check both who
//! sent the body and that it is recent (replays are refused).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::alerts::{Alert, AlertStatus};
use crate::error::SignatureError;

/// The name of the signature header.
pub(crate) const SIGNATURE_HEADER: &str = "X-Tenantscope-Signature";

type HmacSha256 = Hmac<Sha256>;

/// A request ready to be POSTed to the receiver's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// The JSON body, exactly as signed.
    pub body: String,
    /// Headers to send: content type, event type and signature.
    pub headers: Vec<(String, String)>,
}

/// The JSON payload describing an alert transition. An open alert is sent as
/// `alert.opened`, a resolved one as `alert.resolved`; both carry the same
/// stable `id`.
pub(crate) fn webhook_payload(alert: &Alert, tenant_name: Option<&str>) -> Value {
    let kind = match alert.status {
        AlertStatus::Open => "alert.opened",
        AlertStatus::Resolved => "alert.resolved",
    };
    let metric = alert.metric.as_ref().map(|name| {
        json!({
            "name": name,
            "value": alert.value,
            "previous_value": alert.previous_value,
        })
    });
    json!({
        "id": alert.id,
        "type": kind,
        "alert": {
            "rule": alert.rule,
            "subject": alert.subject,
            "summary": alert.summary,
            "status": alert.status,
        },
        "tenant": {
            "id": alert.tenant_id,
            "display_name": tenant_name,
        },
        "severity": alert.severity,
        "metric": metric,
        "event": alert.event,
        "opened_at": alert.opened_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "resolved_at": alert.resolved_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
    })
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long keys are hashed, short ones
    // padded), so this constructor has no failing case.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else { unreachable!("HMAC takes keys of any length") };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for a body sent at `timestamp` (unix seconds).
pub(crate) fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Builds the signed request for an alert transition at `now`.
pub fn build_webhook(alert: &Alert, tenant_name: Option<&str>, secret: &[u8], now: DateTime<Utc>) -> WebhookRequest {
    let payload = webhook_payload(alert, tenant_name);
    let body = payload.to_string();
    let kind = payload.get("type").and_then(Value::as_str).unwrap_or("alert").to_owned();
    let signature = sign(secret, now.timestamp(), body.as_bytes());
    WebhookRequest {
        body,
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("X-Tenantscope-Event".to_owned(), kind),
            (SIGNATURE_HEADER.to_owned(), signature),
        ],
    }
}

/// Checks a signature header against the body and the shared secret.
///
/// The header may carry several `v1` values (sent while a secret is being
/// rotated); one matching is enough. The timestamp must be within
/// `tolerance` of `now`, in either direction, to refuse replays. The
/// comparison is constant-time.
///
/// # Errors
///
/// [`SignatureError::Malformed`] when the header cannot be parsed,
/// [`SignatureError::Expired`] when the timestamp is outside the tolerance,
/// [`SignatureError::Mismatch`] when no signature matches.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(value.trim().parse().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => signatures.push(hex::decode(value.trim()).map_err(|_| SignatureError::Malformed)?),
            // Later schemes (v2, ...) are ignored so that senders can add
            // them without breaking receivers built on this function.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age = now.timestamp().abs_diff(timestamp);
    if age > tolerance.as_secs() {
        return Err(SignatureError::Expired);
    }
    let expected = mac(secret, timestamp, body);
    if signatures.iter().any(|s| expected.clone().verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertStatus;
    use crate::events::Severity;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn alert() -> Alert {
        Alert {
            id: "0123456789abcdef0123456789abcdef".into(),
            rule: "too_many_global_admins".into(),
            tenant_id: "0f3c2a55-1111-4d5e-9a7b-2c3d4e5f6a7b".into(),
            subject: "global_admins".into(),
            severity: Severity::High,
            status: AlertStatus::Open,
            summary: "global_admins is 5 (> 4)".into(),
            opened_at: at("2026-11-28T12:00:07Z"),
            resolved_at: None,
            metric: Some("global_admins".into()),
            value: Some(json!(5)),
            previous_value: None,
            event: None,
        }
    }

    const SECRET: &[u8] = b"whsec_test_secret";
    const TOLERANCE: Duration = Duration::from_secs(300);

    #[test]
    fn round_trip() {
        let now = at("2026-11-28T12:00:10Z");
        let request = build_webhook(&alert(), Some("Northwind"), SECRET, now);
        let header = request.headers.iter().find(|(k, _)| k == SIGNATURE_HEADER).map(|(_, v)| v.clone()).unwrap();
        assert!(header.starts_with(&format!("t={},v1=", now.timestamp())));
        assert_eq!(verify_signature(&header, request.body.as_bytes(), SECRET, now, TOLERANCE), Ok(()));
        let payload: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(payload["type"], "alert.opened");
        assert_eq!(payload["id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(payload["severity"], "high");
        assert_eq!(payload["tenant"]["display_name"], "Northwind");
        assert_eq!(payload["metric"]["value"], 5);
        assert_eq!(payload["resolved_at"], Value::Null);
    }

    #[test]
    fn known_vector() {
        // Computed independently with Python's hmac module:
        // hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            sign(b"secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn tampering_is_detected() {
        let now = at("2026-11-28T12:00:10Z");
        let body = br#"{"id":"a"}"#;
        let header = sign(SECRET, now.timestamp(), body);
        assert_eq!(verify_signature(&header, br#"{"id":"b"}"#, SECRET, now, TOLERANCE), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(&header, body, b"other secret", now, TOLERANCE), Err(SignatureError::Mismatch));
        // A changed timestamp invalidates the signature, since it is signed.
        let shifted = header.replacen(&format!("t={}", now.timestamp()), &format!("t={}", now.timestamp() - 1), 1);
        assert_eq!(verify_signature(&shifted, body, SECRET, now, TOLERANCE), Err(SignatureError::Mismatch));
        let mut flipped = header.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(verify_signature(&flipped, body, SECRET, now, TOLERANCE), Err(SignatureError::Mismatch));
    }

    #[test]
    fn replay_and_malformed() {
        let sent = at("2026-11-28T12:00:00Z");
        let body = b"{}";
        let header = sign(SECRET, sent.timestamp(), body);
        let late = at("2026-11-28T12:05:01Z");
        assert_eq!(verify_signature(&header, body, SECRET, late, TOLERANCE), Err(SignatureError::Expired));
        let early = at("2026-11-28T11:54:59Z");
        assert_eq!(verify_signature(&header, body, SECRET, early, TOLERANCE), Err(SignatureError::Expired));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage", "t=1,t=2,v1=00"] {
            assert_eq!(verify_signature(bad, body, SECRET, sent, TOLERANCE), Err(SignatureError::Malformed), "{bad}");
        }
    }

    #[test]
    fn rotation_accepts_any_matching_signature() {
        let now = at("2026-11-28T12:00:00Z");
        let body = b"{}";
        let new = sign(b"new", now.timestamp(), body);
        let old = sign(b"old", now.timestamp(), body);
        let old_v1 = old.split(",v1=").nth(1).unwrap();
        let header = format!("{new},v1={old_v1}");
        assert_eq!(verify_signature(&header, body, b"old", now, TOLERANCE), Ok(()));
        assert_eq!(verify_signature(&header, body, b"new", now, TOLERANCE), Ok(()));
    }
}
