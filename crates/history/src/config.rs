//! The user configuration: custom metrics and alert rules, from TOML text.
//!
//! Reading the file is the caller's job; this module parses and validates the
//! text. Unknown top-level tables are ignored so that the same file can hold
//! other tenantscope settings; unknown keys inside `[[metric]]` and
//! `[[alert]]` are errors, because a misspelt option would otherwise be
//! silently dropped.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::alerts::{AlertCondition, AlertRule, ChangeDirection, Comparison};
use crate::builtin::builtin_metrics;
use crate::error::HistoryError;
use crate::events::{EVENT_KINDS, Severity};
use crate::metrics::{Metric, is_snake_case};

/// Custom metrics and alert rules.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The user's metrics, in file order (built-ins not included).
    pub metrics: Vec<Metric>,
    /// The alert rules, in file order.
    pub alerts: Vec<AlertRule>,
}

impl Config {
    /// The built-in metrics followed by the user's.
    pub fn all_metrics(&self) -> Vec<Metric> {
        let mut all = builtin_metrics();
        all.extend(self.metrics.iter().cloned());
        all
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    metric: Vec<RawMetric>,
    #[serde(default)]
    alert: Vec<RawAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: String,
    query: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    requires: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    name: String,
    kind: String,
    severity: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    min_delta: Option<f64>,
    #[serde(default)]
    min_percent: Option<f64>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    min_severity: Option<String>,
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    auto_resolve: Option<bool>,
}

/// Parses the TOML text of `[[metric]]` and `[[alert]]` tables.
///
/// # Errors
///
/// Fails on invalid TOML, invalid or duplicate names (a custom metric may not
/// reuse a built-in name), expressions that do not compile, and alert rules
/// that refer to unknown metrics or event kinds or miss a required option.
pub fn parse_config(text: &str) -> Result<Config, HistoryError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| HistoryError::Config(e.to_string()))?;
    let mut names: HashSet<String> = builtin_metrics().iter().map(|m| m.name().to_owned()).collect();
    let mut metrics = Vec::new();
    for m in raw.metric {
        if names.contains(&m.name) {
            return Err(HistoryError::Metric {
                name: m.name,
                message: "this name is already used by a built-in or an earlier metric".into(),
            });
        }
        let mut metric = Metric::new(&m.name, &m.query)?
            .with_description(m.description.as_deref().unwrap_or(""))
            .with_unit(m.unit.as_deref());
        if let Some(requires) = &m.requires {
            metric = metric.with_requires(requires);
        }
        names.insert(m.name);
        metrics.push(metric);
    }
    let mut rule_names = HashSet::new();
    let mut alerts = Vec::new();
    for a in raw.alert {
        if !is_snake_case(&a.name) {
            return Err(alert_error(&a.name, "names are snake_case ids"));
        }
        if !rule_names.insert(a.name.clone()) {
            return Err(alert_error(&a.name, "duplicate rule name"));
        }
        alerts.push(rule(a, &names)?);
    }
    Ok(Config { metrics, alerts })
}

fn alert_error(name: &str, message: &str) -> HistoryError {
    HistoryError::Alert { name: name.to_owned(), message: message.to_owned() }
}

fn known_metric(a: &RawAlert, names: &HashSet<String>) -> Result<String, HistoryError> {
    let metric = a.metric.clone().ok_or_else(|| alert_error(&a.name, "`metric` is required"))?;
    if !names.contains(&metric) {
        return Err(alert_error(&a.name, &format!("unknown metric `{metric}`")));
    }
    Ok(metric)
}

/// Options that belong to another kind of rule are refused rather than
/// ignored, since they show a misunderstanding worth reporting.
fn refuse(a: &RawAlert, options: &[(&str, bool)]) -> Result<(), HistoryError> {
    match options.iter().find(|(_, present)| *present) {
        Some((option, _)) => Err(alert_error(&a.name, &format!("`{option}` does not apply to a {} rule", a.kind))),
        None => Ok(()),
    }
}

fn rule(a: RawAlert, names: &HashSet<String>) -> Result<AlertRule, HistoryError> {
    let severity: Severity =
        a.severity.parse().map_err(|e: vocab::UnknownSeverity| alert_error(&a.name, &e.to_string()))?;
    let condition = match a.kind.as_str() {
        "threshold" => {
            refuse(
                &a,
                &[
                    ("min_delta", a.min_delta.is_some()),
                    ("min_percent", a.min_percent.is_some()),
                    ("direction", a.direction.is_some()),
                    ("event", a.event.is_some()),
                    ("min_severity", a.min_severity.is_some()),
                    ("collection", a.collection.is_some()),
                    ("auto_resolve", a.auto_resolve.is_some()),
                ],
            )?;
            let metric = known_metric(&a, names)?;
            let op: Comparison =
                a.op.as_deref()
                    .ok_or_else(|| alert_error(&a.name, "`op` is required"))?
                    .parse()
                    .map_err(|e: String| alert_error(&a.name, &e))?;
            let value = a.value.clone().ok_or_else(|| alert_error(&a.name, "`value` is required"))?;
            if !matches!(op, Comparison::Eq | Comparison::Ne) && !value.is_number() {
                return Err(alert_error(&a.name, &format!("`{op}` needs a number")));
            }
            AlertCondition::Threshold { metric, op, value }
        }
        "change" => {
            refuse(
                &a,
                &[
                    ("op", a.op.is_some()),
                    ("value", a.value.is_some()),
                    ("event", a.event.is_some()),
                    ("min_severity", a.min_severity.is_some()),
                    ("collection", a.collection.is_some()),
                    ("auto_resolve", a.auto_resolve.is_some()),
                ],
            )?;
            let metric = known_metric(&a, names)?;
            let direction = match a.direction.as_deref() {
                None | Some("any") => ChangeDirection::Any,
                Some("increase") => ChangeDirection::Increase,
                Some("decrease") => ChangeDirection::Decrease,
                Some(other) => {
                    return Err(alert_error(
                        &a.name,
                        &format!("unknown direction `{other}` (any, increase or decrease)"),
                    ));
                }
            };
            if a.min_delta.is_some_and(|d| d < 0.0) || a.min_percent.is_some_and(|p| p < 0.0) {
                return Err(alert_error(&a.name, "minimums cannot be negative"));
            }
            AlertCondition::Change { metric, min_delta: a.min_delta, min_percent: a.min_percent, direction }
        }
        "presence" => {
            refuse(
                &a,
                &[
                    ("metric", a.metric.is_some()),
                    ("op", a.op.is_some()),
                    ("value", a.value.is_some()),
                    ("min_delta", a.min_delta.is_some()),
                    ("min_percent", a.min_percent.is_some()),
                    ("direction", a.direction.is_some()),
                ],
            )?;
            let event = a.event.clone().ok_or_else(|| alert_error(&a.name, "`event` is required"))?;
            if !EVENT_KINDS.contains(&event.as_str()) {
                return Err(alert_error(&a.name, &format!("unknown event kind `{event}`")));
            }
            let min_severity = a
                .min_severity
                .as_deref()
                .map(str::parse::<Severity>)
                .transpose()
                .map_err(|e| alert_error(&a.name, &e.to_string()))?;
            AlertCondition::Presence {
                event,
                min_severity,
                collection: a.collection.clone(),
                auto_resolve: a.auto_resolve.unwrap_or(false),
            }
        }
        other => {
            return Err(alert_error(&a.name, &format!("unknown kind `{other}` (threshold, change or presence)")));
        }
    };
    Ok(AlertRule { name: a.name, severity, description: a.description, condition })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[metric]]
name = "break_glass_accounts"
query = "length(values(collections.users)[?starts_with(userPrincipalName, 'breakglass')])"
description = "Emergency access accounts"
unit = "users"

[[alert]]
name = "too_many_global_admins"
kind = "threshold"
metric = "global_admins"
op = ">"
value = 4
severity = "high"

[[alert]]
name = "mfa_coverage_drop"
kind = "change"
metric = "mfa_registered_pct"
direction = "decrease"
min_delta = 5
severity = "medium"

[[alert]]
name = "new_global_admin"
kind = "presence"
event = "global_admin_assigned"
severity = "critical"
"#;

    #[test]
    fn parses_sample() {
        let config = parse_config(SAMPLE).unwrap();
        assert_eq!(config.metrics.len(), 1);
        assert_eq!(config.metrics[0].requires(), ["users"]);
        assert_eq!(config.alerts.len(), 3);
        assert_eq!(
            config.alerts[1].condition,
            AlertCondition::Change {
                metric: "mfa_registered_pct".into(),
                min_delta: Some(5.0),
                min_percent: None,
                direction: ChangeDirection::Decrease,
            }
        );
        assert_eq!(config.all_metrics().len(), builtin_metrics().len() + 1);
    }

    #[test]
    fn empty_and_foreign_tables() {
        let config = parse_config("[server]\nlisten = \"x\"\n").unwrap();
        assert!(config.metrics.is_empty() && config.alerts.is_empty());
    }

    #[test]
    fn rejects_mistakes() {
        let cases = [
            ("[[metric]]\nname = \"Bad\"\nquery = \"a\"\n", "snake_case"),
            ("[[metric]]\nname = \"users\"\nquery = \"a\"\n", "already used"),
            ("[[metric]]\nname = \"x\"\nquery = \"a[\"\n", "x"),
            ("[[metric]]\nname = \"x\"\nquery = \"a\"\nqurey = \"b\"\n", "unknown field"),
            (
                "[[alert]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"nope\"\nop = \">\"\nvalue = 1\nseverity = \"high\"\n",
                "unknown metric",
            ),
            (
                "[[alert]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"users\"\nop = \"=>\"\nvalue = 1\nseverity = \"high\"\n",
                "operator",
            ),
            (
                "[[alert]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"users\"\nop = \">\"\nvalue = \"x\"\nseverity = \"high\"\n",
                "needs a number",
            ),
            (
                "[[alert]]\nname = \"a\"\nkind = \"presence\"\nevent = \"user_added\"\nseverity = \"urgent\"\n",
                "severity",
            ),
            (
                "[[alert]]\nname = \"a\"\nkind = \"presence\"\nevent = \"user_addded\"\nseverity = \"low\"\n",
                "unknown event",
            ),
            (
                "[[alert]]\nname = \"a\"\nkind = \"presence\"\nevent = \"user_added\"\nop = \">\"\nseverity = \"low\"\n",
                "does not apply",
            ),
            ("[[alert]]\nname = \"a\"\nkind = \"sometimes\"\nseverity = \"low\"\n", "unknown kind"),
            (
                "[[alert]]\nname = \"a\"\nkind = \"presence\"\nevent = \"user_added\"\nseverity = \"low\"\n[[alert]]\nname = \"a\"\nkind = \"presence\"\nevent = \"user_added\"\nseverity = \"low\"\n",
                "duplicate",
            ),
            ("not toml = = 1", "configuration"),
        ];
        for (text, needle) in cases {
            let err = parse_config(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}, wanted {needle:?}");
        }
    }
}
