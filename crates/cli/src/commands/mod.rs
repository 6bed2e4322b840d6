//! The command line: one module per command group.

mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tenantscope",
    version,
    about = "Inspect the Microsoft 365 tenants an MSP manages, and explain every access failure"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts; each also reads a `TENANTSCOPE_*` environment variable.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The cloud: global, usgov, usgov-dod, china, or the path of a cloud file.
    #[arg(long, global = true, env = "TENANTSCOPE_CLOUD", default_value = "global")]
    pub cloud: String,
    /// An extra CA certificate (PEM) to trust for the cloud's hosts.
    #[arg(long, global = true, env = "TENANTSCOPE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Where tenantscope keeps its database, key and reports (default: the XDG data directory).
    #[arg(long, global = true, env = "TENANTSCOPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The database: a sqlite:// path or a postgres:// URL (default: SQLite in the data directory).
    #[arg(long, global = true, env = "TENANTSCOPE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run or use the simulated Microsoft cloud.
    #[command(subcommand)]
    Sim(sim::SimCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sim(cmd) => sim::run(cmd, &cli.global).await,
    }
}

/// The XDG data directory for tenantscope (`$XDG_DATA_HOME/tenantscope` or `~/.local/share/tenantscope`).
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("tenantscope");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/tenantscope"),
        None => PathBuf::from(".tenantscope"),
    }
}
