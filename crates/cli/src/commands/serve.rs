//! `tenantscope serve`: the platform (API, scheduler, worker, notifications) on the same store as
//! the command line; `tenantscope api-token` and `hash-password` to set up who may use it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use server::auth::Role;
use server::{ServerConfig, Services};

use super::Global;
use super::output::table;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", env = "TENANTSCOPE_LISTEN")]
    pub listen: SocketAddr,
    /// The URL people use to reach the server (behind a reverse proxy, the proxy's).
    #[arg(long, env = "TENANTSCOPE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain to serve HTTPS with (with --tls-key).
    #[arg(long, requires = "tls_key", env = "TENANTSCOPE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "TENANTSCOPE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The application (client) id of your tenantscope app registration, for the partner connection
    /// (default: the one of the last sign-in).
    #[arg(long, env = "TENANTSCOPE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Serve the API only: no scheduler and no worker on this replica.
    #[arg(long)]
    pub api_only: bool,
    /// Write the address the server listens on to this file once it accepts connections.
    #[arg(long, hide = true)]
    pub ready_file: Option<PathBuf>,
}

/// The server's in-process worker on this data directory or database.
pub(crate) fn executor(
    ctx: &Ctx,
    client_id: Option<String>,
    concurrency: usize,
) -> anyhow::Result<server::jobs::Executor<dyn store::Store>> {
    Ok(server::jobs::Executor {
        name: "the server's worker".into(),
        store: ctx.store.clone(),
        tokens: server::jobs::local_tokens(&ctx.store),
        microsoft: server::jobs::Microsoft {
            cloud: ctx.cloud.clone(),
            client_id: client_id.unwrap_or_else(|| server::jobs::NO_APP.into()),
            local_address: None,
        },
        history: Some(super::history::run_history(ctx)?),
        concurrency,
        trees: false,
    })
}

fn config_path(ctx: &Ctx) -> PathBuf {
    std::env::var_os("TENANTSCOPE_CONFIG").map(PathBuf::from).unwrap_or_else(|| ctx.data_dir.join("config.toml"))
}

pub async fn serve(args: ServeArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let mut config = ServerConfig::new(args.listen, ctx.data_dir.clone());
    let path = config_path(&ctx);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        config.apply(server::config::parse_file(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?);
    }
    if let Some(url) = args.public_url {
        config.public_url = url;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.public_url = if config.public_url.starts_with("http://") && !config.public_url.contains("://localhost") {
            config.public_url.replacen("http://", "https://", 1)
        } else {
            config.public_url
        };
        config.tls = Some((cert, key));
    }
    if args.api_only {
        config.schedule.enabled = false;
        config.worker.enabled = false;
    }
    let (_, targets) = super::history::load_config(&ctx)?;
    if let Some(id) = &args.client_id {
        ctx.remember(id).await?;
    }
    let client_id = ctx.client_id(args.client_id.as_deref()).await.ok();
    if client_id.is_none() {
        eprintln!(
            "warning: no app is configured: pass --client-id (or sign in with `tenantscope login`) so that the partner connection can be made"
        );
    }
    let executor = executor(&ctx, client_id, config.worker.concurrency)?;
    let ready_file = args.ready_file.clone();
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    server::serve(
        ctx.store.clone(),
        config,
        Services { executor: Some(executor), targets },
        super::sim::wait_for_shutdown(),
        move |addr| {
            eprintln!(
                "tenantscope serve: listening on {scheme}://{addr} (API at /api/v1, OpenAPI at /api/v1/openapi.json)"
            );
            if let Some(file) = ready_file {
                let _ = std::fs::write(file, format!("{scheme}://{addr}\n"));
            }
        },
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create an API token for automation (or the first administrator); it is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// viewer, engineer or admin.
        #[arg(long)]
        role: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Every API token (never the token itself).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke { id: String },
}

pub async fn api_token(cmd: ApiTokenCommand, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let now = chrono::Utc::now();
    let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let audit = |action: &str, target: &str, detail: serde_json::Value| store::AuditEntry {
        id: 0,
        at: now,
        actor: actor.clone(),
        action: action.to_string(),
        target: Some(target.to_string()),
        address: None,
        detail,
    };
    match cmd {
        ApiTokenCommand::Create { name, role, days } => {
            let role =
                Role::parse(&role).ok_or_else(|| anyhow!("unknown role {role:?}: use viewer, engineer or admin"))?;
            if !(1..=366).contains(&days) {
                bail!("--days must be between 1 and 366");
            }
            let (secret, record) =
                server::auth::new_api_token(name.trim(), role, &actor, now, now + chrono::Duration::days(days))
                    .map_err(|p| anyhow!("{}", p.detail.unwrap_or_default()))?;
            ctx.store.token_put(&record).await?;
            ctx.store
                .audit_append(&audit(
                    "token.create",
                    &record.id,
                    serde_json::json!({"name": record.name, "role": role, "days": days}),
                ))
                .await?;
            eprintln!(
                "API token {} ({}, {}), expires {}; shown once:",
                record.name,
                record.id,
                role.as_str(),
                record.expires_at.format("%Y-%m-%d")
            );
            println!("{secret}");
        }
        ApiTokenCommand::List { json } => {
            let tokens = ctx.store.token_list().await?;
            if json {
                let items: Vec<_> = tokens
                    .iter()
                    .map(|t| serde_json::json!({"id": t.id, "name": t.name, "role": t.role, "created_at": t.created_at,
                        "created_by": t.created_by, "expires_at": t.expires_at, "revoked_at": t.revoked_at, "last_used_at": t.last_used_at}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        let state = if t.revoked_at.is_some() {
                            "revoked"
                        } else if t.expires_at <= now {
                            "expired"
                        } else {
                            "live"
                        };
                        vec![
                            t.id.clone(),
                            t.name.clone(),
                            t.role.clone(),
                            state.to_string(),
                            t.expires_at.format("%Y-%m-%d").to_string(),
                            t.last_used_at
                                .map(|u| u.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                print!("{}", table(&["ID", "NAME", "ROLE", "STATE", "EXPIRES", "LAST USED"], &rows));
            }
        }
        ApiTokenCommand::Revoke { id } => {
            if !ctx.store.token_revoke(&id, now).await? {
                bail!("no live API token {id}");
            }
            ctx.store.audit_append(&audit("token.revoke", &id, serde_json::json!({}))).await?;
            eprintln!("revoked API token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a password on stdin and prints its argon2id hash, for `[server.access.break_glass]`.
pub async fn hash_password() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read the password on stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 12 {
        bail!("the break-glass password must have at least 12 characters");
    }
    println!("{}", server::password::hash(password).map_err(|e| anyhow!(e))?);
    Ok(ExitCode::SUCCESS)
}
