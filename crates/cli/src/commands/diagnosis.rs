//! `tenantscope explain` (diagnose pasted text) and `tenantscope doctor` (the six checks).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use inspect::{CheckStatus, SystemClock};
use store::TenantId;

use super::Global;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A file with the error text; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The customer to check (id, domain or name); without it, the partner sign-in is checked.
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn print_diagnosis(d: &diagnose::Diagnosis, indent: &str) {
    println!(
        "{indent}cause: {} ({:.0}% confident, check {} {})",
        d.cause.id(),
        d.confidence * 100.0,
        d.check.number(),
        d.check.title()
    );
    println!("{indent}{}", d.summary);
    if !d.evidence.is_empty() {
        println!("{indent}evidence:");
        for e in &d.evidence {
            println!("{indent}  {}: {}", e.name, e.value);
        }
    }
    if !d.fix.is_empty() {
        println!("{indent}fix:");
        for (i, f) in d.fix.iter().enumerate() {
            println!("{indent}  {}. {f}", i + 1);
        }
    }
    println!("{indent}docs: {}", d.docs);
}

pub async fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let text = match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin().take(8 * 1024 * 1024).read_to_end(&mut bytes).context("cannot read standard input")?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    if text.trim().is_empty() {
        anyhow::bail!(
            "nothing to explain: paste an error message, a token-endpoint or Graph error body, or a log line"
        );
    }
    let e = diagnose::explain(&text);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(best) = e.candidates.first() {
        print_diagnosis(best, "");
    }
    if e.candidates.len() > 1 {
        println!("\nother possible causes, most likely first:");
        for c in e.candidates.iter().skip(1).take(4) {
            println!("  - {} ({:.0}%): {}", c.cause.id(), c.confidence * 100.0, c.summary);
        }
    }
    if !e.distinguish.is_empty() {
        println!("\nto tell them apart:");
        for d in &e.distinguish {
            println!("  - {d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(args: DoctorArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let client_id = ctx.client_id(None).await?;
    let auth = ctx.auth(&client_id, None)?;
    let graph = ctx.graph(auth.clone());
    let partner = auth.account().await?;
    let partner_tenant = partner.as_ref().map(|p| TenantId::new(&p.home_tenant));
    let resolved = match &args.tenant {
        Some(t) => ctx.resolve(&auth, t).await?,
        None => {
            let p = partner.as_ref().context("no partner account is signed in: run `tenantscope login` (or give --tenant for a directly signed-in or app-only customer)")?;
            ctx.resolve(&auth, &p.home_tenant).await?
        }
    };
    let report = inspect::doctor::Doctor {
        graph: &graph,
        clock: &SystemClock,
        access: &resolved.access,
        display_name: &resolved.display_name,
        partner_tenant: partner_tenant.as_ref(),
        partner_claims: partner.as_ref().and_then(|p| p.claims.as_ref()),
    }
    .run()
    .await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("Doctor for {} ({}, {}):\n", report.display_name, report.tenant_id, report.auth.as_str());
        for c in &report.checks {
            let mark = match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Fail => "FAIL",
                CheckStatus::Warn => "warn",
                CheckStatus::Skipped => "skip",
            };
            println!("  {}. {:<18} {mark:<5} {}", c.number, c.title, c.summary);
            for (k, v) in &c.evidence {
                println!("       {k}: {v}");
            }
        }
        match &report.diagnosis {
            Some(d) => {
                println!("\nRoot cause:");
                print_diagnosis(d, "  ");
            }
            None => println!("\nNo problem found: every check passed."),
        }
    }
    Ok(if report.failed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
