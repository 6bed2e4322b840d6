//! `tenantscope dataprint show|export`: a tenant's dataprint, whole or queried with JMESPath.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::Global;
use super::output::table;
use crate::context::Ctx;

#[derive(Debug, Subcommand)]
pub enum DataprintCommand {
    /// What a dataprint holds: each collector's status, items, window and last read, and the
    /// tenant's figures; or, with --query, the query's result.
    Show(DataprintArgs),
    /// The whole dataprint (or the query's result) as JSON, to a file or standard output.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct DataprintArgs {
    /// The tenant: its id, a verified domain or its name.
    #[arg(long)]
    pub tenant: String,
    /// A run's dataprint instead of the newest good one.
    #[arg(long)]
    pub run: Option<String>,
    /// A JMESPath expression evaluated against the dataprint, e.g. `collections.users.*.userPrincipalName`.
    #[arg(long)]
    pub query: Option<String>,
    /// Print the dataprint (or the result) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub what: DataprintArgs,
    /// The file to write (mode 0600); standard output when absent.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

async fn load(ctx: &Ctx, a: &DataprintArgs) -> anyhow::Result<(store::TenantRecord, Value)> {
    let record = inspect::access::require_tenant(ctx.store.as_ref(), &a.tenant).await?;
    let doc = match &a.run {
        Some(run) => ctx
            .store
            .dataprint_for_run(&store::RunId::new(run), &record.id)
            .await?
            .with_context(|| format!("{} has no dataprint in run {run}", super::tenants::shown_name(&record)))?,
        None => {
            ctx.store
                .last_good_dataprint(&record.id)
                .await?
                .with_context(|| {
                    format!("{} has no dataprint yet: inspect it first", super::tenants::shown_name(&record))
                })?
                .1
        }
    };
    let doc = match &a.query {
        Some(q) => {
            let query = history::Query::new(q).map_err(|e| anyhow!("--query: {e}"))?;
            query.search(&doc, Some(chrono::Utc::now())).map_err(|e| anyhow!("--query: {e}"))?
        }
        None => doc,
    };
    Ok((record, doc))
}

pub async fn run(cmd: DataprintCommand, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    match cmd {
        DataprintCommand::Export(e) => {
            let (_, doc) = load(&ctx, &e.what).await?;
            let text = serde_json::to_string_pretty(&doc)?;
            match &e.output {
                Some(path) => {
                    super::report::write_atomically(path, &text)?;
                    eprintln!("dataprint written to {}", path.display());
                }
                None => println!("{text}"),
            }
        }
        DataprintCommand::Show(a) => {
            let (record, doc) = load(&ctx, &a).await?;
            if a.json || a.query.is_some() {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            let s = |v: &Value| match v {
                Value::Null => "-".to_string(),
                Value::String(x) => x.clone(),
                other => other.to_string(),
            };
            println!(
                "{} ({}) · {} access · taken {} · {}",
                super::tenants::shown_name(&record),
                record.id,
                s(&doc["auth"]),
                s(&doc["run"]["finished_at"]),
                s(&doc["status"])
            );
            let mut rows = Vec::new();
            if let Some(collectors) = doc["collectors"].as_object() {
                for (name, c) in collectors {
                    let condition = serde_json::from_value(c["every_run_while"].clone()).ok();
                    let fresh = c["fresh_minutes"]
                        .as_u64()
                        .map(|m| super::permissions::window(u32::try_from(m).unwrap_or(u32::MAX), condition));
                    rows.push(vec![
                        name.clone(),
                        s(&c["status"]),
                        s(&c["items"]),
                        fresh.unwrap_or_else(|| "-".into()),
                        s(&doc["run"]["collectors"][name]["collected_at"]),
                        c["reason"]["detail"].as_str().unwrap_or_default().to_string(),
                    ]);
                }
            }
            println!("{}", table(&["COLLECTOR", "STATUS", "ITEMS", "READ AGAIN", "LAST READ", "REASON"], &rows));
            if let Some(summary) = doc["summary"].as_object() {
                let figures: Vec<Vec<String>> =
                    summary.iter().filter(|(_, v)| !v.is_object()).map(|(k, v)| vec![k.clone(), s(v)]).collect();
                println!("\n{}", table(&["FIGURE", "VALUE"], &figures));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
