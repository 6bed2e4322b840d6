//! `tenantscope login`, `logout` and `token`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args;
use microsoft::har::HarRecorder;
use microsoft::{AccountRole, Claims};
use serde_json::json;

use super::Global;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Sign in with a code shown here and entered on another device, instead of a browser here.
    #[arg(long)]
    pub device_code: bool,
    /// The tenant to sign in to: `organizations` (the account's home tenant), a tenant id or a domain.
    #[arg(long, default_value = "organizations")]
    pub tenant: String,
    /// Sign in as a user of one customer, to inspect that customer directly (not through GDAP).
    #[arg(long)]
    pub direct: bool,
    /// The application (client) id of your tenantscope app registration.
    #[arg(long, env = "TENANTSCOPE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Print the sign-in URL instead of opening a browser.
    #[arg(long, env = "TENANTSCOPE_NO_BROWSER", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_browser: bool,
    /// Seconds to wait for the browser sign-in to come back.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Record every HTTP exchange, redacted, as a HAR file (default: in the data directory).
    #[arg(long, num_args = 0..=1, require_equals = true, value_name = "HAR_FILE")]
    pub debug: Option<Option<std::path::PathBuf>>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Sign out only the direct account of this customer (tenant id or domain).
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The tenant (id, domain or name); by default the partner tenant of the signed-in account.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print the decoded claims (the only output this command has: the token itself is never printed).
    #[arg(long, default_value_t = true)]
    pub claims: bool,
    /// Get a new token instead of showing the cached one.
    #[arg(long)]
    pub fresh: bool,
    #[arg(long)]
    pub json: bool,
}

fn can_open_browser() -> bool {
    cfg!(target_os = "macos") || std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

fn open_browser(url: &str) -> bool {
    let program = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    std::process::Command::new(program)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

pub fn describe_claims(c: &Claims) -> Vec<(String, String)> {
    let mut rows = vec![
        ("tenant (tid)".to_string(), c.tid.clone().unwrap_or_default()),
        ("user (upn)".to_string(), c.upn.clone().unwrap_or_else(|| "-".into())),
        (
            "app (appid)".to_string(),
            format!(
                "{}{}",
                c.appid.clone().unwrap_or_default(),
                c.app_displayname.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        ),
        ("MFA (amr)".to_string(), format!("{} [{}]", if c.has_mfa() { "yes" } else { "NO" }, c.amr.join(", "))),
    ];
    if !c.scp.is_empty() {
        rows.push(("scopes (scp)".into(), c.scp.join(" ")));
    }
    if !c.roles.is_empty() {
        rows.push(("app roles (roles)".into(), c.roles.join(" ")));
    }
    if !c.wids.is_empty() {
        rows.push((
            "directory roles (wids)".into(),
            c.wids.iter().map(|w| format!("{} ({w})", inspect::catalog::roles::name(w))).collect::<Vec<_>>().join(", "),
        ));
    }
    if let Some(ip) = &c.ipaddr {
        rows.push(("source address (ipaddr)".into(), ip.clone()));
    }
    if let Some(idp) = &c.idp {
        rows.push(("identity provider (idp)".into(), idp.clone()));
    }
    let ts = |t: Option<i64>| {
        t.and_then(|s| chrono::DateTime::from_timestamp(s, 0)).map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".into())
    };
    rows.push(("issued (iat)".into(), ts(c.iat)));
    rows.push(("expires (exp)".into(), ts(c.exp)));
    rows
}

pub async fn login(args: LoginArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let client_id = ctx.client_id(args.client_id.as_deref()).await?;
    let har_path = ctx.har_path(&args.debug, "login")?;
    let har = har_path.as_ref().map(|_| Arc::new(HarRecorder::new()));
    let auth = ctx.auth(&client_id, har.clone())?;
    let role = if args.direct { AccountRole::Direct } else { AccountRole::Partner };
    let browser = !args.no_browser && can_open_browser();
    let result = if args.device_code {
        auth.login_device_code(&args.tenant, role, |dc| {
            eprintln!("{}", dc.message);
            eprintln!("(waiting for the sign-in to complete; the code expires in {} minutes)", dc.expires_in / 60);
        })
        .await
    } else {
        auth.login_browser(&args.tenant, role, Duration::from_secs(args.timeout), |url| {
            if !(browser && open_browser(url)) {
                eprintln!("Open this URL in a browser to sign in:\n{url}");
            } else {
                eprintln!("A browser window opened for the sign-in. If it did not, open:\n{url}");
            }
        })
        .await
    };
    if let (Some(path), Some(h)) = (&har_path, &har) {
        h.write(path).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("debug trace: {}", path.display());
    }
    let account = result.map_err(|e| {
        let d =
            diagnose::diagnose(&diagnose::Facts { failure: Some(inspect::facts::failure(&e)), ..Default::default() });
        anyhow!("sign-in failed: {e}\n  cause: {} — {}\n  fix: {}", d.cause.id(), d.summary, d.fix.join("\n       "))
    })?;
    ctx.remember(&client_id).await?;
    let mfa = account.claims.as_ref().is_some_and(|c| c.has_mfa());
    eprintln!(
        "Signed in as {} in tenant {} ({}){}",
        account.upn.as_deref().unwrap_or(&account.oid),
        account.home_tenant,
        if args.direct { "direct" } else { "partner" },
        if mfa { ", with MFA" } else { "" }
    );
    if !mfa && !args.direct {
        eprintln!(
            "warning: the token carries no MFA claim. GDAP access to customers and the partner APIs require Microsoft Entra MFA for this account: enforce it (Conditional Access or security defaults in the partner tenant) and sign in again. See `tenantscope explain` for mfa_claim_missing."
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(args: LogoutArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let Ok(client_id) = ctx.client_id(None).await else {
        let n = ctx.store.cache_clear().await?;
        eprintln!("Removed {n} cached tokens.");
        return Ok(ExitCode::SUCCESS);
    };
    let auth = ctx.auth(&client_id, None)?;
    match args.tenant {
        Some(t) => {
            let account = auth.accounts().await?.into_iter().find(|a| {
                a.role == AccountRole::Direct
                    && (a.home_tenant.eq_ignore_ascii_case(&t)
                        || a.upn
                            .as_deref()
                            .is_some_and(|u| u.to_ascii_lowercase().ends_with(&format!("@{}", t.to_ascii_lowercase()))))
            });
            match account {
                Some(a) => {
                    let n = auth.forget(&a.home_account_id).await?;
                    eprintln!("Signed out {} ({n} cached tokens removed).", a.upn.unwrap_or(a.home_account_id));
                }
                None => eprintln!("No direct account is signed in for {t}."),
            }
        }
        None => {
            let n = auth.clear_all().await?;
            eprintln!("Signed out; {n} cached tokens and accounts removed.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token(args: TokenArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let client_id = ctx.client_id(None).await?;
    let auth = ctx.auth(&client_id, None)?;
    let wanted = match args.tenant {
        Some(t) => t,
        None => auth
            .account()
            .await?
            .map(|a| a.home_tenant)
            .ok_or_else(|| anyhow!("nobody is signed in; run `tenantscope login` first"))?,
    };
    let resolved = ctx.resolve(&auth, &wanted).await?;
    let (tenant, grant, mode) = (resolved.access.tenant_id.to_string(), resolved.access.grant, resolved.access.mode);
    let token = if args.fresh {
        auth.fresh_token(&tenant, &grant).await
    } else {
        match auth.cached(&tenant, &grant).await? {
            Some(t) => Ok(t),
            None => auth.access_token(&tenant, &grant).await,
        }
    };
    let token = token.map_err(|e| anyhow!("no token for {tenant}: {e}"))?;
    let claims = token
        .claims
        .clone()
        .ok_or_else(|| anyhow!("the token for {tenant} is not a JWT; there are no claims to show"))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "tenant": tenant,
                "auth": mode,
                "from_cache": token.from_cache,
                "issued_at": token.issued_at,
                "expires_at": token.expires_at,
                "claims": claims,
            }))?
        );
    } else {
        println!("Token for {tenant} ({}; {})", mode.as_str(), if token.from_cache { "cached" } else { "new" });
        for (k, v) in describe_claims(&claims) {
            println!("  {k:<26} {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
