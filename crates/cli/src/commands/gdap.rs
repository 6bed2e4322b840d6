//! `tenantscope gdap`: every GDAP relationship of the partner, soonest to end first.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::Global;
use super::output::table;
use crate::context::Ctx;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Sort {
    /// Soonest to end first.
    Expiry,
    /// By customer name.
    Customer,
    /// By status, then expiry.
    Status,
}

#[derive(Debug, Args)]
pub struct GdapArgs {
    #[arg(long, value_enum, default_value = "expiry")]
    pub sort: Sort,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: GdapArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let mut rows = inspect::gdap::relationships(ctx.store.as_ref(), chrono::Utc::now()).await?;
    match args.sort {
        Sort::Expiry => {}
        Sort::Customer => rows.sort_by_key(|r| (r.customer.to_ascii_lowercase(), r.name.to_ascii_lowercase())),
        Sort::Status => rows.sort_by_key(|r| (r.status != "active", r.status.clone())),
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "relationships": rows }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("No GDAP relationship is known: sign in as the partner and run `tenantscope inspect`.");
        return Ok(ExitCode::SUCCESS);
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let groups = r
                .groups
                .iter()
                .map(|g| {
                    let member = match g.user_is_member {
                        Some(true) => " (you)",
                        _ => "",
                    };
                    format!("{}{member}", g.name)
                })
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                r.customer.clone(),
                format!("{}{}", r.name, if r.mlt { " (MLT)" } else { "" }),
                r.status.clone(),
                r.roles.join(", "),
                if groups.is_empty() { "none".into() } else { groups },
                r.end.map(|e| e.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "-".into()),
                r.auto_extend.clone().unwrap_or_else(|| "no".into()),
                match r.days_left {
                    // Thirty days is the notice Partner Center gives, and what an MSP needs to renew.
                    Some(d) if r.status == "active" && d <= 30 => format!("{d} (ends soon)"),
                    Some(d) => d.to_string(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["CUSTOMER", "RELATIONSHIP", "STATUS", "ROLES", "GROUPS", "ENDS", "AUTO-EXTEND", "DAYS LEFT"],
            &table_rows
        )
    );
    let with_ga = rows.iter().filter(|r| r.has_global_admin && r.status == "active").count();
    if with_ga > 0 {
        println!(
            "\n{with_ga} active relationship{} hold Global Administrator: they cannot auto-extend, and reading needs only Global Reader.",
            if with_ga == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
