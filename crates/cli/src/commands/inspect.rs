//! `tenantscope inspect`: the partner and its customers into dataprints, with a live display, a
//! readable table and the causes of every failure grouped at the end.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use inspect::dataprint::Status;
use inspect::{RunOptions, RunReport, Runner};
use microsoft::har::HarRecorder;

use super::Global;
use super::output::{Progress, table};
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Inspect every known tenant (the default when no --tenant is given).
    #[arg(long)]
    pub all: bool,
    /// A tenant to inspect (id, domain or name); repeat for more.
    #[arg(long)]
    pub tenant: Vec<String>,
    /// Forget the cached access tokens of the tenants first (tokens minted before a consent or role
    /// change keep the old permissions until they expire).
    #[arg(long)]
    pub clear_cache: bool,
    /// Read everything again, ignoring freshness windows and delta links.
    #[arg(long)]
    pub full: bool,
    /// Record every HTTP exchange, redacted, as a HAR file (default: in the data directory).
    #[arg(long, num_args = 0..=1, require_equals = true, value_name = "HAR_FILE")]
    pub debug: Option<Option<std::path::PathBuf>>,
    /// Tenants worked on at the same time (1 to 256); up to eight times as many are in flight
    /// while some wait on Graph's pacing of Conditional Access.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: InspectArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    // Held until the run ends (the process exits, however it exits).
    let _lock = if args.tenant.is_empty() { Some(RunLock::take(&ctx.data_dir)?) } else { None };
    let client_id = ctx.client_id(None).await.unwrap_or_else(|_| "00000000-0000-0000-0000-000000000000".into());
    let har_path = ctx.har_path(&args.debug, "inspect")?;
    let har = har_path.as_ref().map(|_| Arc::new(HarRecorder::new()));
    let auth = ctx.auth(&client_id, har.clone())?;
    let graph = ctx.graph(auth);
    let progress = Progress::new(!args.json);
    progress.watch(graph.transport.stats.clone());
    let runner = Runner::new(
        graph,
        ctx.store.clone(),
        RunOptions {
            tenants: args.tenant.clone(),
            full: args.full,
            clear_cache: args.clear_cache,
            concurrency: usize::from(args.concurrency),
            cloud: Some(ctx.cloud.name.clone()),
            history: Some(crate::commands::history::run_history(&ctx)?),
            job: None,
            trees: false,
        },
    )
    .with_observer(progress.clone());
    let result = runner.run().await;
    progress.finish();
    if let (Some(path), Some(h)) = (&har_path, &har) {
        h.write(path).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("debug trace ({} exchanges, secrets redacted): {}", h.len(), path.display());
    }
    let report = result?;
    crate::commands::history::after_run(&ctx, &report).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_report(&report))?);
    } else {
        print!("{}", text_report(&report));
    }
    let clean = report.tenants.iter().all(|t| t.status == Status::Ok)
        && report.partner.as_ref().is_none_or(|p| p.status == Status::Ok);
    // Copies the run's pages from SQLite's WAL into the database before the process exits, so the
    // next command does not find the copying left to it (or, when a process exited in the middle of
    // it, half done).
    ctx.store.close().await;
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// One inspection of every tenant at a time per data directory: a second one would repeat all of
/// the first one's work and race it for the same tenants. The lock is the operating system's
/// (`flock`), so a killed run releases it; the file says who holds it.
struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    fn take(data_dir: &std::path::Path) -> anyhow::Result<RunLock> {
        use std::io::{Read as _, Seek as _, Write as _};
        let path = data_dir.join("inspect.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the run lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.split_whitespace().collect::<Vec<_>>().join(", ");
                anyhow::bail!(
                    "another `tenantscope inspect` of every tenant is running on this data directory ({}): wait for it to finish (each tenant's result is committed as it is read), or stop that process",
                    if holder.is_empty() { "its details are unknown".to_string() } else { holder }
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "pid={} started={}", std::process::id(), chrono::Utc::now().to_rfc3339())?;
        file.flush()?;
        Ok(RunLock { _file: file })
    }
}

pub fn json_report(r: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "run_id": r.run_id,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "partner": r.partner,
        "tenants": r.tenants,
        "new_customers": r.new_customers,
        "lost_customers": r.lost_customers,
        "causes": grouped_causes(r).into_iter().map(|(cause, fix, tenants)| serde_json::json!({
            "cause": cause,
            "tenants": tenants.iter().map(|t| t.shown_name()).collect::<Vec<_>>(),
            "details": tenants.iter().map(|t| serde_json::json!({
                "tenant_id": t.tenant_id,
                "tenant": t.shown_name(),
                "summary": t.diagnosis.as_ref().map(|d| d.summary.clone()),
            })).collect::<Vec<_>>(),
            "fix": match tenants.as_slice() {
                [only] => only.diagnosis.as_ref().map_or(fix.clone(), |d| d.fix.clone()),
                _ => fix,
            },
        })).collect::<Vec<_>>(),
        "warnings": r.warnings,
        "stats": r.stats,
    })
}

fn generic_fix(t: &inspect::TenantSummary, fix: &[String]) -> Vec<String> {
    diagnose::generalize_fix(fix, &t.display_name, t.tenant_id.as_str())
}

/// Failed and partial tenants grouped by the cause of their problem and the fix they share (tenants
/// whose fixes differ beyond their names are grouped apart).
pub fn grouped_causes(r: &RunReport) -> Vec<(String, Vec<String>, Vec<&inspect::TenantSummary>)> {
    let mut out: Vec<(String, Vec<String>, Vec<&inspect::TenantSummary>)> = Vec::new();
    for t in r.tenants.iter().chain(r.partner.iter()) {
        if let Some(d) = &t.diagnosis {
            let fix = generic_fix(t, &d.fix);
            match out.iter_mut().find(|(c, f, _)| *c == d.cause && *f == fix) {
                Some((_, _, tenants)) => tenants.push(t),
                None => out.push((d.cause.clone(), fix, vec![t])),
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn text_report(r: &RunReport) -> String {
    let mut out = String::new();
    let mut rows = Vec::new();
    for t in r.partner.iter().chain(r.tenants.iter()) {
        let collected = t.collectors.iter().filter(|c| c.status == inspect::child::OutcomeStatus::Ok).count();
        let skipped = t.collectors.iter().filter(|c| c.status == inspect::child::OutcomeStatus::Skipped).count();
        let failed = t.collectors.iter().filter(|c| c.status == inspect::child::OutcomeStatus::Failed).count();
        let users = t
            .summary
            .as_ref()
            .and_then(|s| s.get("users"))
            .and_then(|v| v.as_u64())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            t.shown_name(),
            t.auth.as_str().to_string(),
            t.status.as_str().to_string(),
            format!("{collected}/{skipped}/{failed}"),
            users,
            t.diagnosis.as_ref().map(|d| d.cause.clone()).unwrap_or_default(),
        ]);
    }
    out.push_str(&table(&["TENANT", "ACCESS", "STATUS", "OK/SKIP/FAIL", "USERS", "CAUSE"], &rows));
    out.push('\n');
    let causes = grouped_causes(r);
    if !causes.is_empty() {
        out.push_str("\nWhy tenants failed, and the fix:\n");
        for (cause, fix, tenants) in &causes {
            out.push_str(&format!(
                "\n  {cause}: {} tenant{}\n",
                tenants.len(),
                if tenants.len() == 1 { "" } else { "s" },
            ));
            // What is specific to each tenant (the permissions it lacks, its relationship...), one
            // line each; the fix they share once below.
            for t in tenants {
                if let Some(d) = &t.diagnosis {
                    out.push_str(&format!("    - {}: {}\n", t.shown_name(), d.summary));
                }
            }
            // A tenant alone keeps its own steps, which name it.
            let own = match tenants.as_slice() {
                [only] => only.diagnosis.as_ref().map(|d| d.fix.clone()),
                _ => None,
            };
            for (i, step) in own.as_ref().unwrap_or(fix).iter().enumerate() {
                out.push_str(&format!("    {}. {step}\n", i + 1));
            }
            out.push_str(&format!("    more: docs/causes.md#{cause}\n"));
        }
    }
    if !r.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &r.warnings {
            out.push_str(&format!("  - {}\n", w.summary));
        }
    }
    if !r.new_customers.is_empty() && r.first_run {
        out.push_str(&format!("\nCustomers found: {}\n", r.new_customers.len()));
    } else if !r.new_customers.is_empty() {
        out.push_str(&format!("\nNew customers since the last run: {}\n", r.new_customers.len()));
    }
    if !r.lost_customers.is_empty() {
        out.push_str(&format!("Customers no longer reachable through GDAP: {}\n", r.lost_customers.join(", ")));
    }
    let s = &r.stats;
    out.push_str(&format!(
        "\n{} tenants: {} ok, {} partial, {} failed · {} Graph requests, {} retries, {} throttled · {:.1}s\n",
        s["tenants"],
        s["ok"],
        s["partial"],
        s["failed"],
        s["graph_requests"],
        s["retries"],
        s["throttled"],
        (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0
    ));
    out
}
