//! `changes`, `metrics`, `alerts` and `baseline`, and what every inspection does after it commits:
//! change events, metric values and alert rules, with alerts delivered to the console and webhooks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use history::{Alert, Baseline, Config, WhereFilter};
use inspect::RunReport;
use serde_json::{Value, json};
use store::{EventFilter, TenantId};

use super::Global;
use super::output::table;
use crate::context::Ctx;

/// The user's configuration: `config.toml` in the data directory, or `TENANTSCOPE_CONFIG`: metrics
/// and alert rules, and the webhooks alerts are sent to.
pub fn load_config(ctx: &Ctx) -> anyhow::Result<(Config, Vec<notify::Target>)> {
    let path =
        std::env::var_os("TENANTSCOPE_CONFIG").map(PathBuf::from).unwrap_or_else(|| ctx.data_dir.join("config.toml"));
    if !path.exists() {
        return Ok((Config::default(), Vec::new()));
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = history::parse_config(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let hooks = notify::targets_from_config(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok((config, hooks))
}

/// The history options of a run: the built-in metrics, the user's metrics and alert rules.
pub fn run_history(ctx: &Ctx) -> anyhow::Result<inspect::run::HistoryOptions> {
    let (config, hooks) = load_config(ctx)?;
    let notify =
        hooks.iter().map(|h| inspect::run::NotifyTarget { name: h.key(), min_severity: h.min_severity }).collect();
    Ok(inspect::run::HistoryOptions { metrics: config.all_metrics(), rules: config.alerts, notify })
}

/// After a run: alerts that opened or resolved go to the console, and every notification due in the
/// store's outbox (this run's, and any an earlier run could not deliver) goes to its webhook. The
/// run itself already recorded events, metric values, alert states and the queued notifications as
/// it committed each tenant.
pub async fn after_run(ctx: &Ctx, report: &RunReport) -> anyhow::Result<()> {
    for t in report.tenants.iter().chain(report.partner.iter()) {
        for a in t.history.opened.iter().chain(t.history.resolved.iter()) {
            eprintln!("{}", a.to_console_line());
        }
    }
    deliver_outbox(ctx).await
}

/// Delivers what is due in the outbox, and says what could not be.
pub async fn deliver_outbox(ctx: &Ctx) -> anyhow::Result<()> {
    let (_, hooks) = load_config(ctx)?;
    let deliverer = notify::Deliverer::new(ctx.store.clone(), hooks, "cli", notify::Policy::default())
        .map_err(|e| anyhow!("{e}"))?;
    let pass = deliverer.deliver_due().await?;
    for (what, why) in &pass.postponed {
        eprintln!("warning: webhook delivery of {what} failed ({why}); it stays queued for the next run");
    }
    for (what, why) in &pass.expired {
        eprintln!("warning: webhook delivery of {what} was given up: {why}");
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
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
    /// Only alerts that are still open.
    #[arg(long)]
    pub open: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Acknowledge an alert (its id, or a prefix of at least 6 characters, or its key). An alert about
    /// an event (a new Global Administrator) is closed by its acknowledgement; one about a condition
    /// stays open, acknowledged, until the condition clears.
    Ack {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Silence a rule for a tenant until a date: its alerts are still recorded, not sent.
    Mute {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        rule: String,
        /// YYYY-MM-DD or RFC 3339.
        #[arg(long)]
        until: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a mute.
    Unmute {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        rule: String,
    },
    /// Send every queued notification now, without waiting for its retry time.
    Retry,
    /// The notifications queued for webhooks, newest first, with their state.
    Outbox {
        #[arg(long)]
        json: bool,
    },
}

/// Who is acting, for acknowledgements and mutes: the signed-in partner account, else the local user.
async fn actor(ctx: &Ctx) -> String {
    if let Ok(client_id) = ctx.client_id(None).await
        && let Ok(auth) = ctx.auth(&client_id, None)
        && let Ok(Some(account)) = auth.account().await
        && let Some(upn) = account.upn
    {
        return upn;
    }
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into())
}

/// The alert an id, id prefix or key names.
async fn find_alert(ctx: &Ctx, id: &str) -> anyhow::Result<store::AlertRecord> {
    if let Some(a) = ctx.store.get_alert(id).await? {
        return Ok(a);
    }
    let id = id.trim().to_ascii_lowercase();
    if id.len() < 6 {
        anyhow::bail!("no alert with key {id}; give an alert's id (at least 6 characters) or its key");
    }
    let matches: Vec<store::AlertRecord> = ctx
        .store
        .list_alerts(false)
        .await?
        .into_iter()
        .filter(|a| a.payload.get("id").and_then(Value::as_str).is_some_and(|x| x.starts_with(&id)))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one match")),
        0 => anyhow::bail!("no alert matches {id}: `tenantscope alerts` lists them with their ids"),
        n => anyhow::bail!("{n} alerts start with {id}: give more of the id"),
    }
}

pub async fn alerts(args: AlertsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    match args.command {
        Some(AlertsCommand::Ack { id, reason }) => {
            let alert = find_alert(&ctx, &id).await?;
            let about_event = alert.payload.get("event").is_some_and(|e| !e.is_null());
            let by = actor(&ctx).await;
            let done = ctx
                .store
                .ack_alert(&alert.key, &by, reason.as_deref(), chrono::Utc::now(), about_event)
                .await?
                .context("the alert vanished")?;
            eprintln!(
                "Acknowledged by {by}{}{}.",
                if about_event && done.resolved_at.is_some() { "; the alert is closed" } else { "" },
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some(AlertsCommand::Mute { tenant, rule, until, reason }) => {
            let record = inspect::access::require_tenant(ctx.store.as_ref(), &tenant).await?;
            let until = parse_since(&until)?;
            if until <= chrono::Utc::now() {
                anyhow::bail!("--until must be in the future");
            }
            let by = actor(&ctx).await;
            ctx.store
                .set_mute(&store::MuteRecord {
                    tenant_id: record.id.clone(),
                    rule: rule.clone(),
                    until,
                    created_at: chrono::Utc::now(),
                    created_by: by.clone(),
                    reason,
                })
                .await?;
            eprintln!("Rule {rule} is muted for {} until {} (by {by}).", record.display_name, until.to_rfc3339());
            return Ok(ExitCode::SUCCESS);
        }
        Some(AlertsCommand::Unmute { tenant, rule }) => {
            let record = inspect::access::require_tenant(ctx.store.as_ref(), &tenant).await?;
            if ctx.store.delete_mute(&record.id, &rule).await? {
                eprintln!("Rule {rule} is no longer muted for {}.", record.display_name);
            } else {
                eprintln!("Rule {rule} was not muted for {}.", record.display_name);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(AlertsCommand::Retry) => {
            let n = ctx.store.retry_deliveries(chrono::Utc::now()).await?;
            eprintln!("{n} queued notification{} due now.", if n == 1 { " is" } else { "s are" });
            deliver_outbox(&ctx).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(AlertsCommand::Outbox { json }) => {
            let items = ctx.store.outbox(None, 200).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({ "outbox": items }))?);
            } else {
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|i| {
                        vec![
                            i.created_at.format("%Y-%m-%d %H:%M").to_string(),
                            i.alert_key.clone(),
                            i.transition.clone(),
                            i.target.clone(),
                            i.status.to_string(),
                            i.attempts.to_string(),
                            i.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["QUEUED", "ALERT", "TRANSITION", "TARGET", "STATE", "ATTEMPTS", "LAST ERROR"], &rows)
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let list = ctx.store.list_alerts(args.open).await?;
    let mutes = ctx.store.mutes().await?;
    let now = chrono::Utc::now();
    let muted =
        |a: &store::AlertRecord| mutes.iter().find(|m| m.tenant_id == a.tenant_id && m.rule == a.rule && m.until > now);
    if args.json {
        let items: Vec<Value> = list
            .iter()
            .map(|a| {
                let mut v = a.payload.clone();
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "acknowledged".into(),
                        json!(a.acked_at.map(|at| json!({"at": at, "by": a.acked_by, "reason": a.ack_reason}))),
                    );
                    o.insert("muted_until".into(), json!(muted(a).map(|m| m.until)));
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "alerts": items, "mutes": mutes }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        eprintln!(
            "No {}alerts. Alert rules live in config.toml in the data directory (see docs/history.md).",
            if args.open { "open " } else { "" }
        );
    }
    for a in &list {
        let line = match serde_json::from_value::<Alert>(a.payload.clone()) {
            Ok(alert) => format!("{} id={}", alert.to_console_line(), &alert.id[..alert.id.len().min(12)]),
            Err(_) => format!(
                "{} {} {} {}",
                a.severity,
                if a.resolved_at.is_some() { "resolved" } else { "open" },
                a.tenant_id,
                a.rule
            ),
        };
        println!("{line}");
        if let (Some(at), Some(by)) = (a.acked_at, &a.acked_by) {
            println!(
                "    acknowledged by {by} at {}{}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                a.ack_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            );
        }
        if let Some(m) = muted(a) {
            println!(
                "    muted until {} by {}",
                m.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                m.created_by
            );
        }
    }
    let active: Vec<&store::MuteRecord> = mutes.iter().filter(|m| m.until > now).collect();
    if !active.is_empty() {
        println!("\nMuted rules:");
        for m in active {
            println!(
                "  {} for {} until {} (by {}{})",
                m.rule,
                m.tenant_id,
                m.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                m.created_by,
                m.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            );
        }
    }
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
