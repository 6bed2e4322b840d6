//! `tenantscope report --format html|json|csv`: the last inspection, per tenant: status, summary
//! figures, and every failure with its cause and fix. The HTML report is one self-contained file
//! (inline styles, no scripts, no external resources) that opens offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::Global;
use crate::context::Ctx;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Html,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// Where to write the report (default: stdout for JSON and CSV, a file in the data directory for HTML).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The run to report (default: the last inspection).
    #[arg(long)]
    pub run: Option<String>,
}

/// Everything a report shows, gathered from the store.
pub async fn gather(ctx: &Ctx, run_id: Option<&store::RunId>) -> anyhow::Result<Value> {
    let run = match run_id {
        Some(id) => ctx.store.get_run(id).await?.with_context(|| format!("no run {id}"))?,
        None => match ctx.store.list_runs(50).await?.into_iter().find(|r| r.kind == "inspect") {
            Some(r) => r,
            None => bail!("nothing to report yet: run `tenantscope inspect` first"),
        },
    };
    let tenants: BTreeMap<store::TenantId, store::TenantRecord> =
        ctx.store.list_tenants().await?.into_iter().map(|t| (t.id.clone(), t)).collect();
    let mut items = Vec::new();
    for tr in ctx.store.tenant_runs(&run.id).await? {
        let t = tenants.get(&tr.tenant_id);
        let outcomes = ctx.store.collector_outcomes(&run.id, &tr.tenant_id).await?;
        let summary = match &tr.dataprint_id {
            Some(id) => ctx.store.get_dataprint(id).await?.and_then(|d| d.get("summary").cloned()),
            None => None,
        };
        let last_good = if tr.dataprint_id.is_none() {
            ctx.store.last_good_dataprint(&tr.tenant_id).await?.map(|(m, _)| m.taken_at)
        } else {
            None
        };
        items.push(json!({
            "tenant_id": tr.tenant_id,
            "display_name": t.map(super::tenants::shown_name).unwrap_or_default(),
            "domain": t.and_then(|t| t.domain.clone()),
            "role": t.map(|t| t.role),
            "auth": t.map(|t| t.auth),
            "status": tr.status,
            "finished_at": tr.finished_at,
            "summary": summary,
            "last_good_dataprint_at": last_good,
            "diagnosis": tr.diagnosis,
            "collectors": outcomes.iter().map(|o| json!({
                "name": o.collector,
                "status": o.status,
                "items": o.items,
                "reason": o.reason,
                "diagnosis": o.diagnosis.as_ref().map(|d| json!({"cause": d.get("cause"), "summary": d.get("summary"), "fix": d.get("fix")})),
            })).collect::<Vec<_>>(),
        }));
    }
    items.sort_by(|a, b| {
        let key = |v: &Value| (v["role"] != "partner", v["display_name"].as_str().unwrap_or("").to_ascii_lowercase());
        key(a).cmp(&key(b))
    });
    Ok(json!({
        "generated_at": chrono::Utc::now(),
        "run": { "id": run.id, "started_at": run.started_at, "finished_at": run.finished_at, "status": run.status, "stats": run.stats },
        "tenants": items,
    }))
}

pub async fn run(args: ReportArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let run_id = args.run.as_deref().map(store::RunId::new);
    let data = gather(&ctx, run_id.as_ref()).await?;
    let (text, default_name) = match args.format {
        Format::Json => (serde_json::to_string_pretty(&data)?, "report.json"),
        Format::Csv => (csv(&data), "report.csv"),
        Format::Html => (html(&data), "report.html"),
    };
    let target: Option<PathBuf> = match (&args.output, args.format) {
        (Some(p), _) => Some(p.clone()),
        (None, Format::Html) => Some(ctx.data_dir.join(default_name)),
        (None, _) => None,
    };
    match target {
        Some(p) => {
            write_atomically(&p, &text)?;
            eprintln!("report written to {}", p.display());
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn csv_field(s: &str) -> String {
    // Cells that a spreadsheet would run as a formula are prefixed, as OWASP advises for CSV exports.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

pub fn csv(data: &Value) -> String {
    let mut out = String::from(
        "tenant_id,display_name,domain,auth,status,users,mfa_registered_pct,global_admins,admins_without_mfa,ca_policies_enabled,security_defaults,secure_score_pct,cause,summary\n",
    );
    for t in data["tenants"].as_array().cloned().unwrap_or_default() {
        let s = &t["summary"];
        let n = |v: &Value| match v {
            Value::Null => String::new(),
            Value::String(x) => x.clone(),
            other => other.to_string(),
        };
        let fields = [
            n(&t["tenant_id"]),
            n(&t["display_name"]),
            n(&t["domain"]),
            n(&t["auth"]),
            n(&t["status"]),
            n(&s["users"]),
            n(&s["mfa_registered_pct"]),
            n(&s["global_admins"]),
            n(&s["admins_without_mfa"]),
            n(&s["ca_policies_enabled"]),
            n(&s["security_defaults"]),
            n(&s["secure_score_pct"]),
            n(&t["diagnosis"]["cause"]),
            n(&t["diagnosis"]["summary"]),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn v(x: &Value) -> String {
    match x {
        Value::Null => "–".into(),
        Value::String(s) => esc(s),
        Value::Bool(b) => {
            if *b {
                "on".into()
            } else {
                "off".into()
            }
        }
        other => esc(&other.to_string()),
    }
}

pub fn html(data: &Value) -> String {
    let tenants = data["tenants"].as_array().cloned().unwrap_or_default();
    let count = |s: &str| tenants.iter().filter(|t| t["status"] == s).count();
    let mut causes: BTreeMap<String, (Value, Vec<String>)> = BTreeMap::new();
    for t in &tenants {
        if let Some(c) = t["diagnosis"]["cause"].as_str() {
            let e = causes.entry(c.to_string()).or_insert_with(|| (t["diagnosis"].clone(), Vec::new()));
            e.1.push(t["display_name"].as_str().unwrap_or("").to_string());
        }
    }
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>tenantscope report</h1><p class=muted>Run {} · finished {} · generated {}</p>",
        v(&data["run"]["id"]),
        v(&data["run"]["finished_at"]),
        v(&data["generated_at"])
    ));
    body.push_str(&format!(
        "<div class=cards><div class='card ok'><b>{}</b> ok</div><div class='card partial'><b>{}</b> partial</div><div class='card failed'><b>{}</b> failed</div><div class=card><b>{}</b> tenants</div></div>",
        count("ok"),
        count("partial"),
        count("failed"),
        tenants.len()
    ));
    if !causes.is_empty() {
        body.push_str("<h2>Why tenants failed, and the fix</h2>");
        for (cause, (d, names)) in &causes {
            let fix: String =
                d["fix"].as_array().cloned().unwrap_or_default().iter().map(|s| format!("<li>{}</li>", v(s))).collect();
            body.push_str(&format!(
                "<div class=cause id='cause-{c}'><h3>{n} tenant{p}: <code>{c}</code></h3><p>{s}</p><p class=muted>{names}</p><ol>{fix}</ol></div>",
                c = esc(cause),
                n = names.len(),
                p = if names.len() == 1 { "" } else { "s" },
                s = v(&d["summary"]),
                names = esc(&names.join(", ")),
            ));
        }
    }
    body.push_str("<h2>Tenants</h2><table><tr><th>Tenant</th><th>Access</th><th>Status</th><th>Users</th><th>MFA registered</th><th>Global admins</th><th>Admins without MFA</th><th>CA enabled</th><th>Security defaults</th><th>Secure score</th><th>Cause</th></tr>");
    for t in &tenants {
        let s = &t["summary"];
        body.push_str(&format!(
            "<tr><td><a href='#t-{id}'>{name}</a><br><span class=muted>{domain}</span></td><td>{auth}</td><td><span class='badge {st}'>{st}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{cause}</td></tr>",
            v(&s["users"]),
            if s["mfa_registered_pct"].is_null() { "–".into() } else { format!("{}%", v(&s["mfa_registered_pct"])) },
            v(&s["global_admins"]),
            v(&s["admins_without_mfa"]),
            v(&s["ca_policies_enabled"]),
            v(&s["security_defaults"]),
            if s["secure_score_pct"].is_null() { "–".into() } else { format!("{}%", v(&s["secure_score_pct"])) },
            id = esc(t["tenant_id"].as_str().unwrap_or("")),
            name = v(&t["display_name"]),
            domain = v(&t["domain"]),
            auth = v(&t["auth"]),
            st = esc(t["status"].as_str().unwrap_or("")),
            cause = t["diagnosis"]["cause"].as_str().map(|c| format!("<a href='#cause-{0}'><code>{0}</code></a>", esc(c))).unwrap_or_default(),
        ));
    }
    body.push_str("</table><h2>Details</h2>");
    for t in &tenants {
        body.push_str(&format!(
            "<details id='t-{}'><summary><b>{}</b> <span class='badge {}'>{}</span></summary>",
            esc(t["tenant_id"].as_str().unwrap_or("")),
            v(&t["display_name"]),
            esc(t["status"].as_str().unwrap_or("")),
            v(&t["status"])
        ));
        if let Some(d) = t["diagnosis"].as_object() {
            body.push_str(&format!(
                "<p><b>{}</b>: {}</p>",
                v(&d.get("cause").cloned().unwrap_or(Value::Null)),
                v(&d.get("summary").cloned().unwrap_or(Value::Null))
            ));
        }
        if !t["last_good_dataprint_at"].is_null() {
            body.push_str(&format!(
                "<p class=muted>The last good data for this tenant is from {}.</p>",
                v(&t["last_good_dataprint_at"])
            ));
        }
        body.push_str("<table><tr><th>Collector</th><th>Status</th><th>Items</th><th>Reason or cause</th></tr>");
        for c in t["collectors"].as_array().cloned().unwrap_or_default() {
            let why = if !c["diagnosis"].is_null() {
                format!("<code>{}</code> {}", v(&c["diagnosis"]["cause"]), v(&c["diagnosis"]["summary"]))
            } else if !c["reason"].is_null() {
                v(&c["reason"]["detail"])
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td><span class='badge {}'>{}</span></td><td>{}</td><td>{why}</td></tr>",
                v(&c["name"]),
                esc(c["status"].as_str().unwrap_or("")),
                v(&c["status"]),
                v(&c["items"])
            ));
        }
        body.push_str("</table></details>");
    }
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'><title>tenantscope report</title><style>{CSS}</style></head><body>{body}</body></html>"
    )
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#1b1b1b;padding:0 1em}\
h1{margin-bottom:0}.muted{color:#666;font-size:90%}table{border-collapse:collapse;width:100%;margin:1em 0;font-size:92%}\
th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}th{background:#f4f4f4}\
.badge{padding:.1em .5em;border-radius:.8em;font-size:85%;background:#eee}.badge.ok{background:#dff6dd}.badge.partial,.badge.skipped{background:#fff4ce}\
.badge.failed{background:#fde7e9}.cards{display:flex;gap:1em;margin:1em 0}.card{padding:.8em 1.2em;border-radius:.5em;background:#f4f4f4}\
.card.ok{background:#dff6dd}.card.partial{background:#fff4ce}.card.failed{background:#fde7e9}.cause{border-left:4px solid #c50f1f;padding:.2em 1em;margin:1em 0;background:#fafafa}\
details{margin:.6em 0;border:1px solid #eee;padding:.4em .8em;border-radius:.4em}code{background:#f4f4f4;padding:0 .3em}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=HYPERLINK(x)"), "'=HYPERLINK(x)");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn html_escapes_tenant_data() {
        let data = json!({"run": {}, "tenants": [{"tenant_id": "t", "display_name": "<script>alert(1)</script>", "status": "ok", "summary": {}, "collectors": []}]});
        let h = html(&data);
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
    }
}
