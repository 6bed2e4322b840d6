//! `tenantscope sim serve` and `tenantscope sim sign-in`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sim::signin::{Browser, Person};
use sim::{ReadyInfo, SimConfig, WorldSource};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve the simulated identity platform and Graph over HTTPS until interrupted.
    Serve(ServeArgs),
    /// Complete a sign-in on the simulator's pages as the given user would.
    SignIn(SignInArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A world file (TOML, see docs/simulator.md); the built-in demo world when absent.
    #[arg(long, conflicts_with = "generate")]
    pub world: Option<PathBuf>,
    /// Generate a world from a spec such as `customers=1000,users=50..2000,seed=7`.
    #[arg(long)]
    pub generate: Option<String>,
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where the CA, server certificate and signing keys are kept across restarts.
    #[arg(long, env = "TENANTSCOPE_SIM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Written once the simulator accepts connections: JSON describing it.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// The control API token (random when absent).
    #[arg(long, env = "TENANTSCOPE_SIM_CONTROL_TOKEN")]
    pub control_token: Option<String>,
    /// Extra DNS names for the server certificate.
    #[arg(long)]
    pub hostname: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SignInArgs {
    /// The user to sign in as; the password and authenticator come from the ready file.
    #[arg(long)]
    pub user: String,
    /// Approve this device code.
    #[arg(long, conflicts_with = "authorize_url", required_unless_present = "authorize_url")]
    pub device_code: Option<String>,
    /// Complete this authorization URL and follow the redirect back to the client.
    #[arg(long)]
    pub authorize_url: Option<String>,
    /// The simulator's ready file.
    #[arg(long, env = "TENANTSCOPE_SIM_READY")]
    pub ready_file: PathBuf,
    /// Decline consent instead of accepting it.
    #[arg(long)]
    pub decline_consent: bool,
}

pub async fn run(cmd: SimCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        SimCommand::Serve(args) => serve(args, global).await,
        SimCommand::SignIn(args) => sign_in(args).await,
    }
}

pub fn default_state_dir(global: &Global) -> PathBuf {
    global.data_dir.clone().unwrap_or_else(crate::commands::default_data_dir).join("simulator")
}

async fn serve(args: ServeArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let world = match (args.world, args.generate) {
        (Some(path), _) => WorldSource::File(path),
        (None, Some(spec)) => WorldSource::Generate(spec),
        (None, None) => WorldSource::Demo,
    };
    let state_dir = args.state_dir.unwrap_or_else(|| default_state_dir(global));
    let config = SimConfig {
        listen: args.listen,
        state_dir,
        world,
        hostnames: args.hostname,
        control_token: args.control_token,
    };
    let running = sim::start(config).await.context("cannot start the simulator")?;
    if let Some(path) = &args.ready_file {
        running.write_ready_file(path).with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    eprintln!("simulator listening on {}", running.base_url());
    eprintln!("  CA certificate: {}", running.ready.ca_cert);
    eprintln!("  cloud file:     {}  (use --cloud with it)", running.ready.cloud_file);
    eprintln!("  control token:  {}", running.ready.control_token);
    eprintln!("  tenants:        {}", running.ready.tenants.len());
    wait_for_shutdown().await;
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub fn read_ready(path: &std::path::Path) -> anyhow::Result<ReadyInfo> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the ready file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a simulator ready file", path.display()))
}

async fn sign_in(args: SignInArgs) -> anyhow::Result<ExitCode> {
    let ready = read_ready(&args.ready_file)?;
    let Some(user) = ready.users.iter().find(|u| u.upn.eq_ignore_ascii_case(&args.user)) else {
        bail!("the ready file has no user {}", args.user);
    };
    let ca = std::fs::read_to_string(&ready.ca_cert).with_context(|| format!("cannot read {}", ready.ca_cert))?;
    let browser = Browser::new(&ready.base_url, &ca)?;
    let person = Person {
        upn: user.upn.clone(),
        password: user.password.clone(),
        totp_secret: user.totp_secret.clone(),
        accept_consent: !args.decline_consent,
    };
    let outcome = match (&args.device_code, &args.authorize_url) {
        (Some(code), _) => browser.approve_device_code(code, &person).await,
        (None, Some(url)) => browser.complete_authorize(url, &person).await,
        (None, None) => bail!("give --device-code or --authorize-url"),
    };
    match outcome {
        Ok(o) => {
            eprintln!("signed in as {}: {o:?}", person.upn);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sign-in failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
