//! `tenantscope permissions`: the least-privilege app manifest and GDAP roles the collectors need, and,
//! for a tenant, what its token grants beyond or short of that.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Global;
use super::output::table;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct PermissionsArgs {
    /// Compare with what the token for this tenant grants (id, domain or name).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print the `requiredResourceAccess` manifest only (to paste into the app registration).
    #[arg(long)]
    pub manifest: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: PermissionsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let p = inspect::permissions::derive();
    let comparison = match &args.tenant {
        None => None,
        Some(t) => {
            let ctx = Ctx::open(g).await?;
            let client_id = ctx.client_id(None).await?;
            let auth = ctx.auth(&client_id, None)?;
            let resolved = ctx.resolve(&auth, t).await?;
            let (tenant, grant) = (resolved.access.tenant_id.to_string(), resolved.access.grant);
            let token =
                auth.access_token(&tenant, &grant).await.map_err(|e| anyhow::anyhow!("no token for {t}: {e}"))?;
            let claims = token.claims.unwrap_or_default();
            let app_only = claims.is_app_only();
            let granted = if app_only { claims.roles.clone() } else { claims.scp.clone() };
            Some((tenant, app_only, inspect::permissions::compare(&granted, app_only), claims.wids))
        }
    };
    if args.manifest {
        println!("{}", serde_json::to_string_pretty(&p.manifest)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        let mut v = json!({
            "delegated": p.delegated,
            "application": p.application,
            "gdap_roles": p.gdap_roles.iter().map(|(id, name)| json!({"roleDefinitionId": id, "displayName": name})).collect::<Vec<_>>(),
            "manifest": p.manifest,
            "collectors": p.per_collector,
        });
        if let Some((tenant, app_only, c, wids)) = &comparison {
            v["tenant"] = json!({ "tenant_id": tenant, "app_only": app_only, "missing": c.missing, "extra": c.extra, "blocked_collectors": c.blocked, "roles_in_token": wids });
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Delegated scopes for the partner app (least privilege):\n  {}\n", p.delegated.join(" "));
    println!("Application permissions for tenants read app-only:\n  {}\n", p.application.join(" "));
    println!("GDAP roles to ask customers for:");
    for (id, name) in &p.gdap_roles {
        println!("  {name} ({id})");
    }
    println!();
    let rows: Vec<Vec<String>> = p
        .per_collector
        .iter()
        .map(|r| {
            vec![
                r.collector.clone(),
                format!("{:?}", r.side).to_lowercase(),
                r.delegated.clone(),
                r.application.clone(),
                r.licence.clone().unwrap_or_default(),
            ]
        })
        .collect();
    println!("{}", table(&["COLLECTOR", "TENANT", "DELEGATED", "APPLICATION", "LICENCE"], &rows));
    if let Some((tenant, app_only, c, _)) = comparison {
        println!("\nFor {tenant} ({}):", if app_only { "app-only" } else { "delegated" });
        println!("  missing: {}", if c.missing.is_empty() { "nothing".into() } else { c.missing.join(" ") });
        println!("  granted beyond need: {}", if c.extra.is_empty() { "nothing".into() } else { c.extra.join(" ") });
        if !c.blocked.is_empty() {
            println!("  collectors that cannot run: {}", c.blocked.join(", "));
        }
    }
    println!("\nThe manifest to paste into the app registration: `tenantscope permissions --manifest`.");
    Ok(ExitCode::SUCCESS)
}
