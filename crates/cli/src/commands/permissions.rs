//! `tenantscope permissions`: the least-privilege app manifest and GDAP roles the collectors need, and,
//! for a tenant, what its consent and the user's roles there leave out.

use std::process::ExitCode;

use clap::Args;
use inspect::AuthMode;
use inspect::facts::GdapView;
use serde_json::json;

use super::Global;
use super::output::table;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct PermissionsArgs {
    /// Compare with what this tenant grants: its consent and the roles the user holds there (its id,
    /// a verified domain or its name).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print the `requiredResourceAccess` manifest only (to paste into the app registration).
    #[arg(long)]
    pub manifest: bool,
    #[arg(long)]
    pub json: bool,
}

/// What one tenant grants, and what that leaves out.
struct TenantView {
    id: String,
    name: String,
    mode: AuthMode,
    gaps: inspect::permissions::TenantGaps,
    granted: Vec<String>,
}

async fn tenant_view(g: &Global, query: &str) -> anyhow::Result<TenantView> {
    let ctx = Ctx::open(g).await?;
    let client_id = ctx.client_id(None).await?;
    let auth = ctx.auth(&client_id, None)?;
    let resolved = ctx.resolve(&auth, query).await?;
    let access = &resolved.access;
    let token = auth
        .access_token(access.tenant_id.as_str(), &access.grant)
        .await
        .map_err(|e| anyhow::anyhow!("no token for {}: {e}", resolved.display_name))?;
    let claims = token.claims.unwrap_or_default();
    let app_only = access.mode == AuthMode::App || claims.is_app_only();
    let granted = if app_only { claims.roles.clone() } else { claims.scp.clone() };
    // The roles the user holds there: through GDAP, as the partner's last view of the customer
    // recorded them; signed in directly, as the token's `wids` claim lists them.
    let roles_held: Option<Vec<String>> = match access.mode {
        AuthMode::App => None,
        AuthMode::Gdap => resolved
            .record
            .as_ref()
            .and_then(|r| r.gdap.clone())
            .and_then(|v| serde_json::from_value::<GdapView>(v).ok())
            .map(|v| v.effective_roles()),
        AuthMode::Direct | AuthMode::Partner => Some(claims.wids.clone()),
    };
    let gaps = inspect::permissions::tenant_gaps(&granted, app_only, roles_held.as_deref());
    let name = resolved.record.as_ref().map(super::tenants::shown_name).unwrap_or(resolved.display_name.clone());
    Ok(TenantView { id: access.tenant_id.to_string(), name, mode: access.mode, gaps, granted })
}

/// When a collection is read again, in words: `every run`, `6 h`, or a condition and a window.
pub fn window(minutes: u32, every_run_while: Option<inspect::catalog::Condition>) -> String {
    let plain = match minutes {
        0 => "every run".to_string(),
        m if m % 60 == 0 => format!("{} h", m / 60),
        m => format!("{m} min"),
    };
    match every_run_while {
        Some(c) if minutes > 0 => format!("every run {}, else {plain}", c.describe()),
        _ => plain,
    }
}

pub async fn run(args: PermissionsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let p = inspect::permissions::derive();
    if args.manifest {
        println!("{}", serde_json::to_string_pretty(&p.manifest)?);
        return Ok(ExitCode::SUCCESS);
    }
    let view = match &args.tenant {
        Some(t) => Some(tenant_view(g, t).await?),
        None => None,
    };
    if args.json {
        let mut v = json!({
            "delegated": p.delegated,
            "application": p.application,
            "gdap_roles": p.gdap_roles.iter().map(|(id, name)| json!({"roleDefinitionId": id, "displayName": name})).collect::<Vec<_>>(),
            "manifest": p.manifest,
            "collectors": p.per_collector,
        });
        if let Some(t) = &view {
            v["tenant"] = json!({
                "tenant_id": t.id,
                "name": t.name,
                "access": t.mode,
                "granted": t.granted,
                "roles_held": t.gaps.roles_held,
                "missing": t.gaps.comparison.missing,
                "extra": t.gaps.comparison.extra,
                "blocked_collectors": t.gaps.collectors,
            });
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Delegated scopes for the partner app (least privilege):\n  {}\n", p.delegated.join(" "));
    println!("Application permissions for tenants read app-only:\n  {}\n", p.application.join(" "));
    let names: Vec<&str> = p.gdap_roles.iter().map(|(_, n)| n.as_str()).collect();
    println!("GDAP role to ask customers for: {}", names.join(", "));
    if names.len() == 1 {
        println!("  It alone covers every collector, and it only reads.");
    }
    println!(
        "  Never ask for Global Administrator or another role that can change the tenant to read it:\n  \
         they grant far more than inspection needs, and a relationship holding Global Administrator\n  \
         cannot auto-extend. The LEAST ROLE column shows the narrowest role each collector needs alone.\n"
    );
    let rows: Vec<Vec<String>> = p
        .per_collector
        .iter()
        .map(|r| {
            vec![
                r.collector.clone(),
                format!("{:?}", r.side).to_lowercase(),
                r.delegated.clone(),
                r.application.clone(),
                r.least_role.clone().unwrap_or_else(|| "-".into()),
                r.licence.clone().unwrap_or_default(),
                window(r.fresh_minutes, r.every_run_while),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["COLLECTOR", "TENANT", "DELEGATED", "APPLICATION", "LEAST ROLE", "LICENCE", "READ AGAIN"], &rows)
    );
    if let Some(t) = view {
        println!("\nFor {} ({}, {}):", t.name, t.id, t.mode.as_str());
        if let Some(held) = &t.gaps.roles_held {
            println!("  roles the user holds there: {}", if held.is_empty() { "none".into() } else { held.join(", ") });
        }
        let c = &t.gaps.comparison;
        println!(
            "  permissions the consent lacks: {}",
            if c.missing.is_empty() { "none".into() } else { c.missing.join(" ") }
        );
        println!("  granted beyond need: {}", if c.extra.is_empty() { "nothing".into() } else { c.extra.join(" ") });
        if t.gaps.collectors.is_empty() {
            println!("  every collector can run.");
        } else {
            println!("  collectors that cannot run, and what they lack:");
            let rows: Vec<Vec<String>> = t
                .gaps
                .collectors
                .iter()
                .map(|g| {
                    vec![
                        g.collector.clone(),
                        g.missing_permission.clone().unwrap_or_else(|| "-".into()),
                        g.needs_role.as_ref().map(|r| format!("one of {}", r.join(", "))).unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            for line in table(&["COLLECTOR", "PERMISSION", "ROLE"], &rows).lines() {
                println!("    {line}");
            }
        }
    }
    println!("\nThe manifest to paste into the app registration: `tenantscope permissions --manifest`.");
    Ok(ExitCode::SUCCESS)
}
