//! `tenantscope agent`: enroll this machine as an agent of a server, and run it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Enroll this machine with a one-time token an admin created on the server
    /// (`POST /api/v1/agents/enrollments`). The agent's keys are generated here and never leave it.
    Enroll {
        /// The server, e.g. https://tenantscope.example.com.
        #[arg(long, env = "TENANTSCOPE_SERVER")]
        server: String,
        /// The one-time enrollment token (`tse_...`).
        #[arg(long, env = "TENANTSCOPE_AGENT_TOKEN", hide_env_values = true)]
        token: String,
        /// A name for the agent (default: the token's).
        #[arg(long)]
        name: Option<String>,
        /// The local address to connect from, on a host with several (the one whose egress address
        /// customers' Conditional Access allows).
        #[arg(long)]
        bind_address: Option<IpAddr>,
        /// Where the agent keeps its configuration, keys and token cache (default: `agent` in the
        /// data directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the enrolled agent until stopped: heartbeats, and the jobs of its pool.
    Run {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Tenants inspected at the same time.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        /// Seconds between heartbeats.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=300))]
        heartbeat_seconds: u64,
    },
    /// Show the enrolled agent: its server, id, name and pool.
    Status {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn agent_dir(dir: Option<PathBuf>, g: &Global) -> PathBuf {
    dir.unwrap_or_else(|| g.data_dir.clone().unwrap_or_else(super::default_data_dir).join("agent"))
}

pub async fn run(cmd: AgentCommand, g: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCommand::Enroll { server, token, name, bind_address, dir } => {
            let dir = agent_dir(dir, g);
            let connection =
                agent::client::Connection { server, ca_files: g.ca_file.iter().cloned().collect(), bind_address };
            let config = agent::run::enroll(&dir, &connection, &token, name.as_deref())
                .await
                .context("the agent could not enroll")?;
            eprintln!(
                "enrolled as agent {} ({}) of pool {} with {}; start it with `tenantscope agent run --dir {}`",
                config.name,
                config.agent_id,
                config.pool,
                config.server,
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Run { dir, concurrency, heartbeat_seconds } => {
            let dir = agent_dir(dir, g);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                super::sim::wait_for_shutdown().await;
                let _ = stop_tx.send(true);
            });
            let options = agent::run::RunOptions {
                concurrency: usize::from(concurrency),
                heartbeat: std::time::Duration::from_secs(heartbeat_seconds),
                ..agent::run::RunOptions::default()
            };
            agent::run::run(&dir, options, stop_rx).await.context("the agent stopped")?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Status { dir } => {
            let dir = agent_dir(dir, g);
            let described = agent::run::describe(&dir)?;
            println!("{}", serde_json::to_string_pretty(&described)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
