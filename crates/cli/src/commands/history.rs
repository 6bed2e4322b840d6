//! `changes`, `metrics`, `alerts` and `baseline`, and what every inspection does after it commits:
//! change events, metric values and alert rules, with alerts delivered to the console and webhooks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use history::{Alert, AlertStatus, Baseline, Config, WhereFilter};
use inspect::RunReport;
use serde::Deserialize;
use serde_json::{Value, json};
use store::{EventFilter, TenantId};

use super::Global;
use super::output::table;
use crate::context::Ctx;

/// A webhook alerts are posted to (`[[webhook]]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// The environment variable that holds the signing secret (secrets stay out of files).
    pub secret_env: Option<String>,
    #[serde(default)]
    pub min_severity: Option<String>,
}

/// The user's configuration: `config.toml` in the data directory, or `TENANTSCOPE_CONFIG`.
pub fn load_config(ctx: &Ctx) -> anyhow::Result<(Config, Vec<Webhook>)> {
    let path =
        std::env::var_os("TENANTSCOPE_CONFIG").map(PathBuf::from).unwrap_or_else(|| ctx.data_dir.join("config.toml"));
    if !path.exists() {
        return Ok((Config::default(), Vec::new()));
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = history::parse_config(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    #[derive(Deserialize)]
    struct Hooks {
        #[serde(default)]
        webhook: Vec<Webhook>,
    }
    let hooks: Hooks =
        toml::from_str::<toml::Table>(&text).ok().and_then(|t| toml::Value::Table(t).try_into().ok()).ok_or_else(
            || anyhow!("{}: [[webhook]] entries need url and may have secret_env and min_severity", path.display()),
        )?;
    Ok((config, hooks.webhook))
}

fn severity_of(text: &str) -> store::Severity {
    text.parse().unwrap_or(store::Severity::Info)
}

/// The history options of a run: the built-in metrics, the user's metrics and alert rules.
pub fn run_history(ctx: &Ctx) -> anyhow::Result<inspect::run::HistoryOptions> {
    let (config, _) = load_config(ctx)?;
    Ok(inspect::run::HistoryOptions { metrics: config.all_metrics(), rules: config.alerts })
}

/// After a run: alerts that opened or resolved go to the console and to every webhook. The run itself
/// already recorded events, metric values and alert states as it committed each tenant.
pub async fn after_run(ctx: &Ctx, report: &RunReport) -> anyhow::Result<()> {
    let (_, hooks) = load_config(ctx)?;
    for t in report.tenants.iter().chain(report.partner.iter()) {
        for a in t.history.opened.iter().chain(t.history.resolved.iter()) {
            eprintln!("{}", a.to_console_line());
            deliver(ctx, &hooks, a, Some(&t.display_name)).await?;
        }
    }
    Ok(())
}

/// Posts an alert to every webhook, retrying with backoff, recording every attempt.
pub async fn deliver(ctx: &Ctx, hooks: &[Webhook], alert: &Alert, tenant_name: Option<&str>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let alert_severity = severity_of(
        &serde_json::to_value(alert.severity).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
    );
    for hook in hooks {
        if hook.min_severity.as_deref().is_some_and(|m| alert_severity < severity_of(m)) {
            continue;
        }
        let secret = match &hook.secret_env {
            Some(var) => std::env::var(var).with_context(|| {
                format!("webhook {}: the environment variable {var} with its secret is not set", hook.url)
            })?,
            None => String::new(),
        };
        let mut attempt = 0i64;
        loop {
            attempt += 1;
            let req = history::build_webhook(alert, tenant_name, secret.as_bytes(), chrono::Utc::now());
            let mut r = client.post(&hook.url).body(req.body.clone());
            for (k, v) in &req.headers {
                r = r.header(k, v);
            }
            let status = match r.send().await {
                Ok(resp) if resp.status().is_success() => "delivered".to_string(),
                Ok(resp) => format!("http {}", resp.status().as_u16()),
                Err(e) => format!(
                    "error: {}",
                    if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect"
                    } else {
                        "request"
                    }
                ),
            };
            ctx.store.record_delivery(&alert.key(), &hook.url, attempt, &status, chrono::Utc::now()).await?;
            if status == "delivered" || attempt >= 4 {
                if status != "delivered" {
                    eprintln!("warning: webhook {} failed after {attempt} attempts ({status})", hook.url);
                }
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250 * (1 << attempt))).await;
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ChangesArgs {
    #[arg(long)]
    pub tenant: Vec<String>,
    /// Only changes at or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only changes of this severity or higher: info, low, medium, high, critical.
    #[arg(long)]
    pub severity: Option<String>,
    #[arg(long, default_value_t = 500)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

fn parse_since(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(d.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("'{text}' is neither YYYY-MM-DD nor RFC 3339"))?;
    Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default())
}

async fn tenant_ids(ctx: &Ctx, given: &[String]) -> anyhow::Result<Vec<Option<TenantId>>> {
    if given.is_empty() {
        return Ok(vec![None]);
    }
    let mut out = Vec::new();
    for t in given {
        out.push(Some(inspect::access::require_tenant(ctx.store.as_ref(), t).await?.id));
    }
    Ok(out)
}

pub async fn changes(args: ChangesArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let min_severity = args
        .severity
        .as_deref()
        .map(|s| {
            s.parse::<store::Severity>().map_err(|_| anyhow!("severity is one of info, low, medium, high, critical"))
        })
        .transpose()?;
    let names: BTreeMap<TenantId, String> =
        ctx.store.list_tenants().await?.into_iter().map(|t| (t.id, t.display_name)).collect();
    let mut events = Vec::new();
    for tenant in tenant_ids(&ctx, &args.tenant).await? {
        events.extend(ctx.store.events(&EventFilter { tenant, since, min_severity, limit: Some(args.limit) }).await?);
    }
    events.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    if args.json {
        let items: Vec<Value> = events.iter().map(|e| json!({ "at": e.at, "tenant_id": e.tenant_id, "tenant": names.get(&e.tenant_id), "run_id": e.run_id, "severity": e.severity, "event": e.event })).collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "changes": items }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        eprintln!(
            "No changes recorded{}.",
            if since.is_some() {
                " in that period"
            } else {
                " yet (changes appear from the second inspection of a tenant)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.at.format("%Y-%m-%d %H:%M").to_string(),
                names.get(&e.tenant_id).cloned().unwrap_or_else(|| e.tenant_id.to_string()),
                e.severity.to_string(),
                e.event.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
                e.event.get("summary").and_then(Value::as_str).unwrap_or("").to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["WHEN (UTC)", "TENANT", "SEVERITY", "EVENT", "WHAT"], &rows));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[arg(long)]
    pub tenant: Vec<String>,
    /// Only these metrics.
    #[arg(long)]
    pub name: Vec<String>,
    /// A JMESPath expression over each tenant's metric values; tenants where it is truthy are shown,
    /// e.g. "security_defaults == `false` && ca_policies_enabled == `0`".
    #[arg(long = "where")]
    pub where_: Option<String>,
    /// Show the time series of each metric instead of the latest values.
    #[arg(long)]
    pub history: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn metrics(args: MetricsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let filter = args.where_.as_deref().map(WhereFilter::new).transpose().map_err(|e| anyhow!("--where: {e}"))?;
    let tenants = ctx.store.list_tenants().await?;
    let selected = tenant_ids(&ctx, &args.tenant).await?;
    let mut out = Vec::new();
    for t in &tenants {
        if !selected.contains(&None) && !selected.contains(&Some(t.id.clone())) {
            continue;
        }
        let points = if args.history {
            ctx.store.metric_series(Some(&t.id), None, None).await?
        } else {
            ctx.store.latest_metrics(&t.id).await?
        };
        if points.is_empty() {
            continue;
        }
        let latest: serde_json::Map<String, Value> =
            ctx.store.latest_metrics(&t.id).await?.into_iter().map(|p| (p.name, p.value)).collect();
        if let Some(f) = &filter
            && !f.matches(&Value::Object(latest.clone())).map_err(|e| anyhow!("--where: {e}"))?
        {
            continue;
        }
        let points: Vec<&store::MetricPoint> =
            points.iter().filter(|p| args.name.is_empty() || args.name.contains(&p.name)).collect();
        out.push(json!({
            "tenant_id": t.id,
            "display_name": t.display_name,
            "metrics": if args.history {
                json!(points.iter().map(|p| json!({"name": p.name, "at": p.at, "value": p.value})).collect::<Vec<_>>())
            } else {
                Value::Object(points.iter().map(|p| (p.name.clone(), p.value.clone())).collect())
            },
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "tenants": out }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        eprintln!("No metric values{}.", if filter.is_some() { " match" } else { " yet: run `tenantscope inspect`" });
        return Ok(ExitCode::SUCCESS);
    }
    for t in &out {
        println!("{} ({})", t["display_name"].as_str().unwrap_or(""), t["tenant_id"].as_str().unwrap_or(""));
        match &t["metrics"] {
            Value::Object(m) => {
                for (k, v) in m {
                    println!("  {k:<34} {}", if v.is_null() { "–".to_string() } else { v.to_string() });
                }
            }
            Value::Array(series) => {
                for p in series {
                    println!(
                        "  {} {:<34} {}",
                        p["at"].as_str().unwrap_or("").chars().take(16).collect::<String>(),
                        p["name"].as_str().unwrap_or(""),
                        p["value"]
                    );
                }
            }
            _ => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Only alerts that are still open.
    #[arg(long)]
    pub open: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn alerts(args: AlertsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let list = ctx.store.list_alerts(args.open).await?;
    if args.json {
        let items: Vec<Value> = list.iter().map(|a| a.payload.clone()).collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "alerts": items }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        eprintln!(
            "No {}alerts. Alert rules live in config.toml in the data directory (see docs/history.md).",
            if args.open { "open " } else { "" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    for a in &list {
        match serde_json::from_value::<Alert>(a.payload.clone()) {
            Ok(alert) => println!("{}", alert.to_console_line()),
            Err(_) => println!(
                "{} {} {} {}",
                a.severity,
                if a.resolved_at.is_some() { "resolved" } else { "open" },
                a.tenant_id,
                a.rule
            ),
        }
    }
    let _ = AlertStatus::Open;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Save the settings of a tenant's last good dataprint as a baseline (a "gold" tenant).
    Save {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tenant: String,
    },
    /// Report every tenant's drift from a baseline.
    Diff {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tenant: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// The saved baselines.
    List,
}

pub async fn baseline(cmd: BaselineCommand, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    match cmd {
        BaselineCommand::Save { name, tenant } => {
            let id =
                tenant_ids(&ctx, std::slice::from_ref(&tenant)).await?.pop().flatten().context("a tenant is needed")?;
            let (_, dp) = ctx
                .store
                .last_good_dataprint(&id)
                .await?
                .with_context(|| format!("{tenant} has no good dataprint yet: inspect it first"))?;
            let b = Baseline::from_dataprint(&name, &dp).map_err(|e| anyhow!("{e}"))?;
            ctx.store.baseline_put(&name, &serde_json::to_value(&b)?).await?;
            eprintln!("Baseline {name} saved from {tenant} ({} settings).", b.settings.len());
            Ok(ExitCode::SUCCESS)
        }
        BaselineCommand::List => {
            for b in ctx.store.baseline_list().await? {
                println!("{}  (updated {})", b.name, b.updated_at.format("%Y-%m-%d %H:%M"));
            }
            Ok(ExitCode::SUCCESS)
        }
        BaselineCommand::Diff { name, tenant, json: json_out } => {
            let value = ctx
                .store
                .baseline_get(&name)
                .await?
                .with_context(|| format!("no baseline {name}: save one with `tenantscope baseline save`"))?;
            let b: Baseline = serde_json::from_value(value).context("the stored baseline is unreadable")?;
            let selected = tenant_ids(&ctx, &tenant).await?;
            let mut report = Vec::new();
            let mut drifted = 0;
            for t in ctx.store.list_tenants().await?.into_iter().filter(|t| t.role == store::TenantRole::Customer) {
                if !selected.contains(&None) && !selected.contains(&Some(t.id.clone())) {
                    continue;
                }
                let Some((_, dp)) = ctx.store.last_good_dataprint(&t.id).await? else { continue };
                let drift = history::drift(&b, &dp).map_err(|e| anyhow!("{e}"))?;
                if !drift.is_empty() {
                    drifted += 1;
                }
                report.push((t, drift));
            }
            if json_out {
                let items: Vec<Value> = report
                    .iter()
                    .map(|(t, d)| json!({"tenant_id": t.id, "display_name": t.display_name, "drift": d}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&json!({ "baseline": name, "tenants": items }))?);
            } else {
                for (t, d) in &report {
                    println!(
                        "{} — {}",
                        t.display_name,
                        if d.is_empty() {
                            "matches the baseline".to_string()
                        } else {
                            format!("{} differences", d.len())
                        }
                    );
                    for x in d.iter().take(20) {
                        println!(
                            "  {:?} {}: expected {} got {}",
                            x.kind,
                            x.path,
                            x.expected.as_ref().map(Value::to_string).unwrap_or_else(|| "–".into()),
                            x.actual.as_ref().map(Value::to_string).unwrap_or_else(|| "–".into())
                        );
                    }
                }
            }
            Ok(if drifted > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}
