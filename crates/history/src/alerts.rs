//! Alert rules on metrics and change events, and their deduplicated state.
//!
//! [`evaluate_alerts`] is a pure state transition: given the rules, this
//! run's metric values and events, the previous run's metric values and the
//! alerts currently open for the tenant, it says which alerts to open, which
//! to resolve and which stay open. The caller stores the result; nothing here
//! remembers anything between calls.
//!
//! An alert is identified by its key, rule + tenant + subject. The subject is
//! the metric name for `threshold` and `change` rules and the event identity
//! (kind, collection, object, field) for `presence` rules. While an alert
//! with a key is open, the same condition does not open another one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::events::{ChangeEvent, Severity};
use crate::metrics::MetricValue;

/// A comparison operator of a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Comparison {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Comparison {
    /// The operator as written in configuration.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }

    /// Applies the operator. Ordering needs two numbers; equality compares
    /// numbers with a small tolerance and anything else exactly. `None` means
    /// the comparison makes no sense for these values.
    pub(crate) fn apply(self, left: &Value, right: &Value) -> Option<bool> {
        if let (Some(l), Some(r)) = (left.as_f64(), right.as_f64()) {
            let equal = (l - r).abs() <= 1e-9 * l.abs().max(r.abs()).max(1.0);
            return Some(match self {
                Comparison::Gt => l > r && !equal,
                Comparison::Ge => l > r || equal,
                Comparison::Lt => l < r && !equal,
                Comparison::Le => l < r || equal,
                Comparison::Eq => equal,
                Comparison::Ne => !equal,
            });
        }
        match self {
            Comparison::Eq => Some(left == right),
            Comparison::Ne => Some(left != right),
            _ => None,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Comparison {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            ">" => Ok(Comparison::Gt),
            ">=" => Ok(Comparison::Ge),
            "<" => Ok(Comparison::Lt),
            "<=" => Ok(Comparison::Le),
            "==" => Ok(Comparison::Eq),
            "!=" => Ok(Comparison::Ne),
            other => Err(format!("unknown operator `{other}` (expected >, >=, <, <=, == or !=)")),
        }
    }
}

impl TryFrom<String> for Comparison {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Comparison> for String {
    fn from(value: Comparison) -> Self {
        value.as_str().to_owned()
    }
}

/// Which way a metric must move for a `change` rule to fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChangeDirection {
    /// Up or down.
    #[default]
    Any,
    /// Up only.
    Increase,
    /// Down only.
    Decrease,
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertCondition {
    /// The metric's current value compared with a fixed value.
    Threshold {
        /// Metric name.
        metric: String,
        /// Operator.
        op: Comparison,
        /// The value compared with (a number, or any JSON for `==`/`!=`).
        value: Value,
    },
    /// The metric changed since the previous run.
    Change {
        /// Metric name.
        metric: String,
        /// The absolute change must be at least this much.
        min_delta: Option<f64>,
        /// The relative change must be at least this many percent of the
        /// previous value.
        min_percent: Option<f64>,
        /// Which way the change must go.
        direction: ChangeDirection,
    },
    /// An event of a kind occurred in this run.
    Presence {
        /// Event kind, for example `global_admin_assigned`.
        event: String,
        /// Only events at least this severe.
        min_severity: Option<Severity>,
        /// Only events of this collection.
        collection: Option<String>,
        /// Resolve the alert at the next run that does not repeat the event,
        /// instead of leaving it open until someone acknowledges it.
        auto_resolve: bool,
    },
}

/// A named rule with the severity of the alerts it opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// snake_case id of the rule.
    pub name: String,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The condition.
    pub condition: AlertCondition,
}

/// Whether an alert is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds (or, for presence rules, awaits acknowledgment).
    Open,
    /// The condition cleared.
    Resolved,
}

/// One alert: a rule that fired for a tenant and a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id of this occurrence: the same in the "opened" and the
    /// "resolved" webhook, and across retried deliveries.
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// The tenant.
    pub tenant_id: String,
    /// What the alert is about: a metric name or an event identity.
    pub subject: String,
    /// The rule's severity.
    pub severity: Severity,
    /// Open or resolved.
    pub status: AlertStatus,
    /// One line for people.
    pub summary: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved.
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// The metric of a threshold or change rule.
    #[serde(default)]
    pub metric: Option<String>,
    /// The metric's value when the alert opened.
    #[serde(default)]
    pub value: Option<Value>,
    /// The metric's previous value, for change rules.
    #[serde(default)]
    pub previous_value: Option<Value>,
    /// The event of a presence rule.
    #[serde(default)]
    pub event: Option<ChangeEvent>,
}

impl Alert {
    /// The deduplication key: rule, tenant and subject.
    pub fn key(&self) -> String {
        alert_key(&self.rule, &self.tenant_id, &self.subject)
    }

    /// One console line: severity, state, tenant, rule and summary.
    pub fn to_console_line(&self) -> String {
        let state = match self.status {
            AlertStatus::Open => "OPEN",
            AlertStatus::Resolved => "RESOLVED",
        };
        let at = self.resolved_at.unwrap_or(self.opened_at).to_rfc3339_opts(SecondsFormat::Secs, true);
        format!(
            "{at} [{:<8}] {state:<8} tenant={} rule={} {}",
            self.severity.as_str().to_ascii_uppercase(),
            self.tenant_id,
            self.rule,
            self.summary
        )
    }
}

fn alert_key(rule: &str, tenant: &str, subject: &str) -> String {
    format!("{rule}/{tenant}/{subject}")
}

/// The stable id of an alert occurrence, derived from its key and opening
/// time so that it can be recomputed and never needs a random source.
fn alert_id(rule: &str, tenant: &str, subject: &str, opened_at: DateTime<Utc>) -> String {
    let mut hasher = Sha256::new();
    for part in [rule, tenant, subject, &opened_at.to_rfc3339_opts(SecondsFormat::Secs, true)] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The identity of an event for presence rules.
fn event_subject(e: &ChangeEvent) -> String {
    match &e.field {
        Some(field) => format!("{}:{}:{}:{}", e.kind, e.collection, e.object_id, field),
        None => format!("{}:{}:{}", e.kind, e.collection, e.object_id),
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertOutcome {
    /// Alerts that fired for the first time: store them and deliver them.
    pub opened: Vec<Alert>,
    /// Open alerts whose condition cleared, with `resolved_at` set: update
    /// them and deliver them.
    pub resolved: Vec<Alert>,
    /// Open alerts that stay open, unchanged: nothing to deliver.
    pub still_open: Vec<Alert>,
}

/// What a rule says about one subject in this run.
struct Firing {
    summary: String,
    metric: Option<String>,
    value: Option<Value>,
    previous: Option<Value>,
    event: Option<ChangeEvent>,
}

/// Whether a rule could be evaluated in this run. An unknown metric value
/// (absent collection, error, first run) neither opens nor resolves.
enum Verdict {
    Unknown,
    Fires(Vec<(String, Firing)>),
}

fn value_of<'v>(values: &'v [MetricValue], name: &str) -> Option<&'v Value> {
    values.iter().find(|v| v.name == name).map(|v| &v.value).filter(|v| !v.is_null())
}

fn threshold(metric: &str, op: Comparison, limit: &Value, current: &[MetricValue]) -> Verdict {
    let Some(value) = value_of(current, metric) else {
        return Verdict::Unknown;
    };
    match op.apply(value, limit) {
        None => Verdict::Unknown,
        Some(false) => Verdict::Fires(Vec::new()),
        Some(true) => Verdict::Fires(vec![(
            metric.to_owned(),
            Firing {
                summary: format!("{metric} is {value} ({op} {limit})"),
                metric: Some(metric.to_owned()),
                value: Some(value.clone()),
                previous: None,
                event: None,
            },
        )]),
    }
}

fn change(
    metric: &str,
    min_delta: Option<f64>,
    min_percent: Option<f64>,
    direction: ChangeDirection,
    current: &[MetricValue],
    previous: &[MetricValue],
) -> Verdict {
    let (Some(now), Some(then)) = (value_of(current, metric), value_of(previous, metric)) else {
        return Verdict::Unknown;
    };
    let fires = match (now.as_f64(), then.as_f64()) {
        (Some(n), Some(t)) => {
            let delta = n - t;
            let percent =
                if t == 0.0 { if delta == 0.0 { 0.0 } else { f64::INFINITY } } else { (delta / t).abs() * 100.0 };
            delta != 0.0
                && match direction {
                    ChangeDirection::Any => true,
                    ChangeDirection::Increase => delta > 0.0,
                    ChangeDirection::Decrease => delta < 0.0,
                }
                && min_delta.is_none_or(|m| delta.abs() >= m)
                && min_percent.is_none_or(|m| percent >= m)
        }
        // Values that are not numbers (a flag, a text) change or not; the
        // size and direction options do not apply to them.
        _ => now != then,
    };
    if !fires {
        return Verdict::Fires(Vec::new());
    }
    Verdict::Fires(vec![(
        metric.to_owned(),
        Firing {
            summary: format!("{metric} changed from {then} to {now}"),
            metric: Some(metric.to_owned()),
            value: Some(now.clone()),
            previous: Some(then.clone()),
            event: None,
        },
    )])
}

fn presence(kind: &str, min_severity: Option<Severity>, collection: Option<&str>, events: &[ChangeEvent]) -> Verdict {
    let fired = events
        .iter()
        .filter(|e| e.kind == kind)
        .filter(|e| min_severity.is_none_or(|m| e.severity >= m))
        .filter(|e| collection.is_none_or(|c| e.collection == c))
        .map(|e| {
            (
                event_subject(e),
                Firing {
                    summary: e.summary.clone(),
                    metric: None,
                    value: None,
                    previous: None,
                    event: Some(e.clone()),
                },
            )
        })
        .collect();
    Verdict::Fires(fired)
}

fn verdict(rule: &AlertRule, current: &[MetricValue], previous: &[MetricValue], events: &[ChangeEvent]) -> Verdict {
    match &rule.condition {
        AlertCondition::Threshold { metric, op, value } => threshold(metric, *op, value, current),
        AlertCondition::Change { metric, min_delta, min_percent, direction } => {
            change(metric, *min_delta, *min_percent, *direction, current, previous)
        }
        AlertCondition::Presence { event, min_severity, collection, .. } => {
            presence(event, *min_severity, collection.as_deref(), events)
        }
    }
}

/// Evaluates the rules after an inspection of one tenant.
///
/// `previous` holds the metric values of the tenant's previous run (empty on
/// the first run); `open` holds the alerts currently open (alerts of other
/// tenants and resolved ones are ignored, so the caller may pass a wider
/// list). The three lists of the outcome are sorted by key.
///
/// - A threshold or change alert opens when its condition holds and no alert
///   with its key is open; it resolves when the condition no longer holds.
///   When the metric is unknown in this run (null), it neither opens nor
///   resolves.
/// - A presence alert opens once per event identity. With `auto_resolve` it
///   resolves at the next run that does not repeat the event; without it, it
///   stays open until the caller acknowledges it (removes it from `open`).
/// - An open alert whose rule no longer exists resolves.
pub fn evaluate_alerts(
    rules: &[AlertRule],
    tenant_id: &str,
    current: &[MetricValue],
    previous: &[MetricValue],
    events: &[ChangeEvent],
    open: &[Alert],
    now: DateTime<Utc>,
) -> AlertOutcome {
    let mut open_by_key: BTreeMap<String, &Alert> = BTreeMap::new();
    for alert in open.iter().filter(|a| a.tenant_id == tenant_id && a.status == AlertStatus::Open) {
        open_by_key.entry(alert.key()).or_insert(alert);
    }

    let mut outcome = AlertOutcome::default();
    let mut kept: BTreeMap<String, Alert> = BTreeMap::new();
    let mut opened: BTreeMap<String, Alert> = BTreeMap::new();
    // Keys whose rule could not be evaluated this run: their open alerts stay
    // open whatever happens.
    let mut unknown_rules: Vec<&str> = Vec::new();

    for rule in rules {
        let fired = match verdict(rule, current, previous, events) {
            Verdict::Unknown => {
                unknown_rules.push(&rule.name);
                continue;
            }
            Verdict::Fires(list) => list,
        };
        for (subject, firing) in fired {
            let key = alert_key(&rule.name, tenant_id, &subject);
            if let Some(existing) = open_by_key.get(&key) {
                kept.insert(key, (*existing).clone());
                continue;
            }
            opened.entry(key).or_insert_with(|| Alert {
                id: alert_id(&rule.name, tenant_id, &subject, now),
                rule: rule.name.clone(),
                tenant_id: tenant_id.to_owned(),
                subject,
                severity: rule.severity,
                status: AlertStatus::Open,
                summary: firing.summary,
                opened_at: now,
                resolved_at: None,
                metric: firing.metric,
                value: firing.value,
                previous_value: firing.previous,
                event: firing.event,
            });
        }
    }

    for (key, alert) in &open_by_key {
        if kept.contains_key(key) {
            continue;
        }
        let rule = rules.iter().find(|r| r.name == alert.rule);
        let stays = match rule {
            None => false,
            Some(r) if unknown_rules.contains(&r.name.as_str()) => true,
            Some(AlertRule { condition: AlertCondition::Presence { auto_resolve, .. }, .. }) => !auto_resolve,
            Some(_) => false,
        };
        if stays {
            kept.insert(key.clone(), (*alert).clone());
        } else {
            let mut resolved = (*alert).clone();
            resolved.status = AlertStatus::Resolved;
            resolved.resolved_at = Some(now);
            outcome.resolved.push(resolved);
        }
    }
    outcome.opened = opened.into_values().collect();
    outcome.still_open = kept.into_values().collect();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparisons() {
        assert_eq!(Comparison::Gt.apply(&json!(3), &json!(2)), Some(true));
        assert_eq!(Comparison::Gt.apply(&json!(2), &json!(2)), Some(false));
        assert_eq!(Comparison::Ge.apply(&json!(2.0), &json!(2)), Some(true));
        assert_eq!(Comparison::Eq.apply(&json!(false), &json!(false)), Some(true));
        assert_eq!(Comparison::Ne.apply(&json!("a"), &json!("b")), Some(true));
        assert_eq!(Comparison::Lt.apply(&json!("a"), &json!(1)), None);
        assert_eq!(">=".parse::<Comparison>(), Ok(Comparison::Ge));
        assert!("=>".parse::<Comparison>().is_err());
    }

    #[test]
    fn ids_are_stable() {
        let t = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(alert_id("r", "t", "s", t), alert_id("r", "t", "s", t));
        assert_ne!(alert_id("r", "t", "s", t), alert_id("r", "t", "s2", t));
        assert_eq!(alert_id("r", "t", "s", t).len(), 32);
    }
}
