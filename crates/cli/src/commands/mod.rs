//! The command line: one module per command group.

mod agent;
mod data;
mod dataprint;
pub mod demo;
mod diagnosis;
mod gdap;
mod history;
mod inspect;
mod key;
mod login;
mod output;
mod permissions;
mod report;
mod serve;
pub mod sim;
pub mod tenants;

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
#[derive(Debug, Args, Clone, Default)]
pub struct Global {
    /// The cloud: global, usgov, usgov-dod, china, or the path of a cloud file (default: the cloud of
    /// the last sign-in, else global).
    #[arg(long, global = true, env = "TENANTSCOPE_CLOUD")]
    pub cloud: Option<String>,
    /// An extra CA certificate (PEM) to trust for the cloud's hosts.
    #[arg(long, global = true, env = "TENANTSCOPE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Where tenantscope keeps its database, key and reports (default: the XDG data directory).
    #[arg(long, global = true, env = "TENANTSCOPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The database: a sqlite:// path or a postgres:// URL (default: SQLite in the data directory).
    #[arg(long, global = true, env = "TENANTSCOPE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the built-in simulated MSP, sign in, inspect everything and print the summary.
    Demo(demo::DemoArgs),
    /// Sign in: as the partner (GDAP) or, with --direct, as a user of one customer.
    Login(login::LoginArgs),
    /// Forget cached tokens and signed-in accounts.
    Logout(login::LogoutArgs),
    /// Show the claims of a tenant's token (never the token itself).
    Token(login::TokenArgs),
    /// Inspect the partner and its customers into dataprints.
    Inspect(inspect::InspectArgs),
    /// Every known tenant, or manage the app credentials of customers read app-only.
    Tenants(tenants::TenantsArgs),
    /// Write a report of the last inspection: a self-contained HTML file, JSON or CSV.
    Report(report::ReportArgs),
    /// The least-privilege permissions and GDAP roles the collectors need, and what is granted.
    Permissions(permissions::PermissionsArgs),
    /// Every GDAP relationship of the partner: customer, status, roles, groups, end, days left.
    Gdap(gdap::GdapArgs),
    /// Show or export a tenant's dataprint, whole or queried with JMESPath.
    #[command(subcommand)]
    Dataprint(dataprint::DataprintCommand),
    /// Run the six checks for a tenant and name the root cause of its access problem.
    Doctor(diagnosis::DoctorArgs),
    /// Diagnose an error message or HTTP response pasted from anywhere.
    Explain(diagnosis::ExplainArgs),
    /// What changed in tenants between inspections.
    Changes(history::ChangesArgs),
    /// Metric values per tenant, and questions across tenants.
    Metrics(history::MetricsArgs),
    /// Open and past alerts.
    Alerts(history::AlertsArgs),
    /// Save a tenant's settings as a baseline and report drift from it.
    #[command(subcommand)]
    Baseline(history::BaselineCommand),
    /// Run or use the simulated Microsoft cloud.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Run the platform: the JSON API, the scheduler, a worker and alert notifications.
    Serve(serve::ServeArgs),
    /// API tokens of the platform: create (shown once), list, revoke.
    #[command(subcommand)]
    ApiToken(serve::ApiTokenCommand),
    /// Read a password on stdin and print the argon2id hash for the break-glass administrator.
    HashPassword,
    /// An agent: inspections run from this machine's network for a server.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// The key that encrypts stored secrets.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Delete everything tenantscope holds about one customer, and say what was removed.
    Forget(data::ForgetArgs),
    /// Remove inspection history by age or by count (each tenant's latest state stays).
    Prune(data::PruneArgs),
    /// The database: a consistent online backup, a checked restore, a consistency check.
    #[command(subcommand)]
    Db(data::DbCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Demo(a) => demo::run(a, g).await,
        Command::Login(a) => login::login(a, g).await,
        Command::Logout(a) => login::logout(a, g).await,
        Command::Token(a) => login::token(a, g).await,
        Command::Inspect(a) => inspect::run(a, g).await,
        Command::Tenants(a) => tenants::run(a, g).await,
        Command::Report(a) => report::run(a, g).await,
        Command::Permissions(a) => permissions::run(a, g).await,
        Command::Gdap(a) => gdap::run(a, g).await,
        Command::Dataprint(cmd) => dataprint::run(cmd, g).await,
        Command::Doctor(a) => diagnosis::doctor(a, g).await,
        Command::Explain(a) => diagnosis::explain(a).await,
        Command::Changes(a) => history::changes(a, g).await,
        Command::Metrics(a) => history::metrics(a, g).await,
        Command::Alerts(a) => history::alerts(a, g).await,
        Command::Baseline(a) => history::baseline(a, g).await,
        Command::Sim(cmd) => sim::run(cmd, g).await,
        Command::Serve(a) => serve::serve(a, g).await,
        Command::ApiToken(cmd) => serve::api_token(cmd, g).await,
        Command::HashPassword => serve::hash_password().await,
        Command::Agent(cmd) => agent::run(cmd, g).await,
        Command::Key(cmd) => key::run(cmd, g).await,
        Command::Forget(a) => data::forget(a, g).await,
        Command::Prune(a) => data::prune(a, g).await,
        Command::Db(cmd) => data::db(cmd, g).await,
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
