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
    /// Summarise a sign-in log export instead (the JSON or CSV that Microsoft Entra's
    /// Sign-in logs page downloads, or Graph's `auditLogs/signIns` answer): failures by cause,
    /// user, application, IP address and time, with each cause's fix.
    #[arg(long = "sign-in-logs", value_name = "FILE", conflicts_with = "file")]
    pub sign_in_logs: Option<PathBuf>,
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

/// The text of a file or of standard input: UTF-8 (its BOM dropped), or UTF-16 when it starts
/// with a UTF-16 BOM, which is what Windows PowerShell 5's `>` and `Out-File` write.
fn decode(bytes: &[u8]) -> String {
    let utf16 = |rest: &[u8], little: bool| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|p| if little { u16::from_le_bytes([p[0], p[1]]) } else { u16::from_be_bytes([p[0], p[1]]) })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Whether decoded input is binary rather than text: a NUL, or more than a quarter of
/// characters that are undecodable or control characters. Explaining it would only ever answer
/// `unknown`.
fn is_binary(text: &str) -> bool {
    if text.contains('\0') {
        return true;
    }
    let total = text.chars().count().max(1);
    let bad =
        text.chars().filter(|c| *c == char::REPLACEMENT_CHARACTER || (c.is_control() && !c.is_whitespace())).count();
    bad * 4 > total
}

pub async fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.sign_in_logs {
        return explain_sign_in_logs(path, args.json);
    }
    let bytes = match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            let size = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?.len();
            if size > MAX_EXPLAIN_BYTES {
                anyhow::bail!(
                    "{} is {size} bytes; explain reads at most {MAX_EXPLAIN_BYTES} bytes: paste the error itself, or use --sign-in-logs for a sign-in log export",
                    p.display()
                );
            }
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin().take(MAX_EXPLAIN_BYTES).read_to_end(&mut bytes).context("cannot read standard input")?;
            bytes
        }
    };
    let text = decode(&bytes);
    if is_binary(&text) {
        anyhow::bail!(
            "the input is binary, not text: explain reads error messages, token-endpoint or Graph error bodies and log lines"
        );
    }
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

/// Explain reads at most this much: an error message is small, and the parser caps its scan.
const MAX_EXPLAIN_BYTES: u64 = 8 * 1024 * 1024;

fn explain_sign_in_logs(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if size > diagnose::MAX_SIGN_IN_LOG_BYTES as u64 {
        anyhow::bail!(
            "{} is {size} bytes; sign-in log exports above {} bytes are not read: export a shorter period",
            path.display(),
            diagnose::MAX_SIGN_IN_LOG_BYTES
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let summary =
        diagnose::summarize_sign_in_logs(&bytes).with_context(|| format!("cannot summarise {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    let span = match (&summary.first, &summary.last) {
        (Some(f), Some(l)) => format!(", from {f} to {l}"),
        _ => String::new(),
    };
    println!(
        "{} sign-ins ({}){span}: {} failed, {} interrupted, {} without a result",
        summary.entries, summary.format, summary.failures, summary.interrupted, summary.unreadable
    );
    if summary.causes.is_empty() {
        println!("no failed sign-in in this export");
        return Ok(ExitCode::SUCCESS);
    }
    let list = |counts: &[diagnose::Count]| {
        counts.iter().map(|c| format!("{} ({})", c.value, c.count)).collect::<Vec<_>>().join(", ")
    };
    for g in &summary.causes {
        println!("\n{} — {} failure(s): {}", g.cause.id(), g.count, g.title);
        println!("  {}", g.summary);
        println!("  codes: {}", list(&g.codes));
        if !g.top_users.is_empty() {
            println!("  users: {}", list(&g.top_users));
        }
        if !g.top_applications.is_empty() {
            println!("  applications: {}", list(&g.top_applications));
        }
        if !g.top_ips.is_empty() {
            println!("  ip addresses: {}", list(&g.top_ips));
        }
        if let (Some(f), Some(l)) = (&g.first, &g.last) {
            println!("  first: {f}, last: {l}");
        }
        if !g.fix.is_empty() {
            println!("  fix:");
            for (i, f) in g.fix.iter().enumerate() {
                println!("    {}. {f}", i + 1);
            }
        }
        println!("  docs: {}", g.docs);
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
        agent: None,
        on_check: None,
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
