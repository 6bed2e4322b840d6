//! The report as CSV: one row per tenant, the figures of the HTML report.

use crate::views::{ReportView, TenantRow};

/// The columns, with the metric each shows: the figures of the tenants table, in its order.
pub(crate) const FIGURES: &[&str] = &[
    "users",
    "mfa_registered_pct",
    "global_admins",
    "admins_without_mfa",
    "ca_policies_enabled",
    "security_defaults",
    "secure_score_pct",
];

/// Quotes a cell, and defuses one a spreadsheet would run as a formula (as OWASP advises for CSV
/// exports).
pub fn field(s: &str) -> String {
    // A number (a negative one starts with '-') is a value to every spreadsheet, never a formula.
    let number = s.parse::<f64>().is_ok_and(f64::is_finite);
    let s = if !number && s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

fn row(t: &TenantRow) -> String {
    let mut fields = vec![t.id.clone(), t.name.clone(), t.domain.clone(), t.access.clone(), t.status.clone()];
    for f in FIGURES {
        fields.push(match t.figures.get(*f) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        });
    }
    fields.push(t.cause.clone().unwrap_or_default());
    fields.push(t.summary.clone().unwrap_or_default());
    fields.iter().map(|f| field(f)).collect::<Vec<_>>().join(",")
}

/// Every tenant of the report, the partner first.
pub fn report_csv(v: &ReportView) -> String {
    let mut out = format!("tenant_id,name,domain,access,status,{},cause,summary\n", FIGURES.join(","));
    for t in v.partner.iter().chain(v.tenants.iter()) {
        out.push_str(&row(t));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_defuses_formulas() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("=HYPERLINK(x)"), "'=HYPERLINK(x)");
        assert_eq!(field("-3"), "-3", "a negative number stays a number");
        assert_eq!(field("-3+cmd|' /C calc'!A0"), "'-3+cmd|' /C calc'!A0");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
