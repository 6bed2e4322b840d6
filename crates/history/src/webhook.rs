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
use crate::events::Severity;

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

/// What an alert notification waiting in the outbox carries: the alert as it was at the
/// transition, and its tenant's name. Delivery builds each target's message from it.
pub fn outbox_payload(alert: &Alert, tenant_name: Option<&str>) -> Value {
    json!({ "alert": alert, "tenant_name": tenant_name })
}

/// How a webhook wants its messages: tenantscope's own signed JSON, a Microsoft Teams Workflows
/// webhook (an Adaptive Card), or a Slack incoming webhook (Block Kit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The signed JSON of [`build_webhook`].
    #[default]
    Generic,
    /// A Teams Workflows ("When a Teams webhook request is received") post with an Adaptive Card.
    Teams,
    /// A Slack incoming webhook with blocks and a text fallback.
    Slack,
}

/// A one-line title of an alert transition.
fn title(alert: &Alert, tenant_name: Option<&str>) -> String {
    let state = match alert.status {
        AlertStatus::Open => "Alert",
        AlertStatus::Resolved => "Resolved",
    };
    format!(
        "{state} [{}] {}: {}",
        alert.severity.as_str().to_ascii_uppercase(),
        tenant_name.unwrap_or(&alert.tenant_id),
        alert.rule
    )
}

/// Builds the request for a transition in a webhook's format. Only the generic format is signed:
/// Teams and Slack authenticate the poster by the secret URL itself.
pub fn build_for(
    format: WebhookFormat,
    alert: &Alert,
    tenant_name: Option<&str>,
    secret: &[u8],
    now: DateTime<Utc>,
) -> WebhookRequest {
    let json = |body: Value| WebhookRequest {
        body: body.to_string(),
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
    };
    let at = alert.resolved_at.unwrap_or(alert.opened_at).to_rfc3339_opts(SecondsFormat::Secs, true);
    let tenant = tenant_name.unwrap_or(&alert.tenant_id);
    match format {
        WebhookFormat::Generic => build_webhook(alert, tenant_name, secret, now),
        WebhookFormat::Teams => {
            let facts = vec![
                json!({"title": "Tenant", "value": tenant}),
                json!({"title": "Rule", "value": alert.rule}),
                json!({"title": "Severity", "value": alert.severity.as_str()}),
                json!({"title": "Status", "value": match alert.status { AlertStatus::Open => "open", AlertStatus::Resolved => "resolved" }}),
                json!({"title": "When", "value": at}),
                json!({"title": "Alert id", "value": alert.id}),
            ];
            json(json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": title(alert, tenant_name),
                             "color": match (alert.status, alert.severity) {
                                 (AlertStatus::Resolved, _) => "Good",
                                 (_, Severity::Critical | Severity::High) => "Attention",
                                 _ => "Warning",
                             }},
                            {"type": "TextBlock", "wrap": true, "text": alert.summary},
                            {"type": "FactSet", "facts": facts},
                        ],
                    },
                }],
            }))
        }
        WebhookFormat::Slack => {
            let text = title(alert, tenant_name);
            json(json!({
                "text": format!("{text}: {}", alert.summary),
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": text.chars().take(150).collect::<String>()}},
                    {"type": "section", "text": {"type": "plain_text", "text": alert.summary}},
                    {"type": "context", "elements": [
                        {"type": "mrkdwn", "text": format!("*Tenant* {} · *Rule* `{}` · *Severity* {} · {at}", slack_escape(tenant), slack_escape(&alert.rule), alert.severity.as_str())},
                    ]},
                ],
            }))
        }
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup; tenant data is escaped so that a name cannot
/// mention a channel or forge a link.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
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

    #[test]
    fn teams_and_slack_messages_carry_the_alert_and_escape_tenant_data() {
        let alert = Alert {
            id: "abc".into(),
            rule: "new_global_admin".into(),
            tenant_id: "t".into(),
            subject: "s".into(),
            severity: Severity::Critical,
            status: AlertStatus::Open,
            summary: "Global Administrator assigned to <!channel>".into(),
            opened_at: at("2026-11-01T00:00:00Z"),
            resolved_at: None,
            metric: None,
            value: None,
            previous_value: None,
            event: None,
        };
        let teams = build_for(WebhookFormat::Teams, &alert, Some("Contoso <x>"), b"", at("2026-11-01T00:00:00Z"));
        let card: Value = serde_json::from_str(&teams.body).expect("json");
        assert_eq!(card["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["attachments"][0]["content"]["type"], "AdaptiveCard");
        assert!(teams.body.contains("Contoso <x>"), "Adaptive Card text blocks are plain text");
        assert!(!teams.headers.iter().any(|(k, _)| k == SIGNATURE_HEADER));
        let slack = build_for(WebhookFormat::Slack, &alert, Some("Contoso <x>"), b"", at("2026-11-01T00:00:00Z"));
        let msg: Value = serde_json::from_str(&slack.body).expect("json");
        assert!(msg["text"].as_str().is_some_and(|t| t.contains("new_global_admin")));
        assert_eq!(msg["blocks"][0]["type"], "header");
        assert!(msg["blocks"][2]["elements"][0]["text"].as_str().is_some_and(|t| t.contains("Contoso &lt;x&gt;")));
        let generic = build_for(WebhookFormat::Generic, &alert, None, b"k", at("2026-11-01T00:00:00Z"));
        assert!(generic.headers.iter().any(|(k, _)| k == SIGNATURE_HEADER));
    }
}
