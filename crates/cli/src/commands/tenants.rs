//! `tenantscope tenants`: every known tenant with its last inspection, and the app credentials of
//! customers read app-only.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use store::{AppCredential, CredentialKind, SecretString};

use super::Global;
use super::output::table;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct TenantsArgs {
    #[command(subcommand)]
    pub command: Option<TenantsCommand>,
    #[arg(long)]
    pub json: bool,
    /// Only the tenants with this tag.
    #[arg(long)]
    pub tag: Option<String>,
}

// Parsed once per process, so the size of the add-app arguments next to remove-app's costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Read a customer app-only with an app registered or consented in that tenant.
    AddApp(AddAppArgs),
    /// Stop reading a customer app-only.
    RemoveApp {
        /// The customer: its tenant id, a verified domain or its name.
        #[arg(long)]
        tenant: String,
    },
    /// Add or remove a tenant's tags (the dashboard and the API filter by them).
    Tag {
        /// The tenant: its tenant id, a verified domain or its name.
        #[arg(long)]
        tenant: String,
        /// A tag to add (letters, digits, '-', '_', '.' or ':'; stored in lower case); repeatable.
        #[arg(long)]
        add: Vec<String>,
        /// A tag to remove; repeatable.
        #[arg(long)]
        remove: Vec<String>,
        /// Remove every tag first.
        #[arg(long)]
        clear: bool,
    },
    /// Give a tenant a name of your own, shown beside the name Microsoft gives it.
    Label {
        /// The tenant: its tenant id, a verified domain or its name.
        #[arg(long)]
        tenant: String,
        /// The label (1 to 80 characters).
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        label: Option<String>,
        /// Remove the label.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddAppArgs {
    /// The customer: its tenant id, a verified domain (looked up with Microsoft when tenantscope does
    /// not know it yet) or its name as `tenantscope tenants` shows it.
    #[arg(long)]
    pub tenant: String,
    /// The application (client) id.
    #[arg(long)]
    pub client_id: String,
    /// Read the client secret from this environment variable (secrets never go on the command line).
    #[arg(long, conflicts_with_all = ["secret_stdin", "secret_file", "certificate", "federated_token_file", "federated_token_command"])]
    pub secret_env: Option<String>,
    /// Read the client secret from standard input.
    #[arg(long, conflicts_with_all = ["secret_file", "certificate", "federated_token_file", "federated_token_command"])]
    pub secret_stdin: bool,
    /// Read the client secret from a file.
    #[arg(long, conflicts_with_all = ["certificate", "federated_token_file", "federated_token_command"])]
    pub secret_file: Option<PathBuf>,
    /// Authenticate with a certificate (PEM) instead of a secret; needs --key.
    #[arg(long, requires = "key", conflicts_with_all = ["federated_token_file", "federated_token_command"])]
    pub certificate: Option<PathBuf>,
    /// Authenticate with a federated credential of the app (workload identity federation) instead of a
    /// secret: this file holds the external identity provider's token (a Kubernetes projected service
    /// account token, for example) and is read again at every token request.
    #[arg(long, conflicts_with = "federated_token_command")]
    pub federated_token_file: Option<PathBuf>,
    /// Authenticate with a federated credential: this command (run by `sh -c`) prints the external
    /// identity provider's token (GitHub Actions' OIDC token, another cloud's identity token), and is run
    /// at every token request.
    #[arg(long)]
    pub federated_token_command: Option<String>,
    /// The certificate's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// When the secret or certificate expires (RFC 3339 or YYYY-MM-DD), for expiry warnings.
    #[arg(long)]
    pub expires: Option<String>,
    /// A name of your own for the customer, shown beside its name (never instead of it).
    #[arg(long)]
    pub label: Option<String>,
}

pub async fn run(args: TenantsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    match args.command {
        None => list(&ctx, args.json, args.tag.as_deref()).await,
        Some(TenantsCommand::Tag { tenant, add, remove, clear }) => {
            let record = inspect::access::require_tenant(ctx.store.as_ref(), &tenant).await?;
            let add_remove_empty = add.is_empty() && remove.is_empty();
            let add = store::normalize_tags(&add).map_err(|e| anyhow::anyhow!(e))?;
            let remove = store::normalize_tags(&remove).map_err(|e| anyhow::anyhow!(e))?;
            let mut tags: Vec<String> = if clear { Vec::new() } else { tags_of(&ctx, &record.id).await? };
            tags.retain(|t| !remove.contains(t));
            tags.extend(add);
            let tags = store::normalize_tags(&tags).map_err(|e| anyhow::anyhow!(e))?;
            // Without a change asked for, the tags are only shown.
            let asked = clear || !add_remove_empty;
            if asked {
                if !ctx.store.set_tenant_tags(&record.id, &tags).await? {
                    anyhow::bail!("{} is no longer known", shown_name(&record));
                }
                ctx.store.audit_append(&cli_audit("tenant.tags", record.id.as_str(), json!({"tags": tags}))).await?;
            }
            if tags.is_empty() {
                eprintln!("{} has no tags.", shown_name(&record));
            } else {
                eprintln!("{} is tagged {}.", shown_name(&record), tags.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(TenantsCommand::Label { tenant, label, clear }) => {
            let record = inspect::access::require_tenant(ctx.store.as_ref(), &tenant).await?;
            let label = match label.filter(|_| !clear) {
                Some(l) => Some(store::normalize_label(&l).map_err(|e| anyhow::anyhow!(e))?),
                None => None,
            };
            if !ctx.store.set_tenant_label(&record.id, label.as_deref()).await? {
                anyhow::bail!("{} is no longer known", shown_name(&record));
            }
            ctx.store.audit_append(&cli_audit("tenant.label", record.id.as_str(), json!({"label": label}))).await?;
            match &label {
                Some(l) => eprintln!("{} is labelled {l:?}.", record.display_name),
                None => eprintln!("{} has no label.", record.display_name),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(TenantsCommand::AddApp(a)) => add_app(&ctx, a).await,
        Some(TenantsCommand::RemoveApp { tenant }) => {
            let record = inspect::access::require_tenant(ctx.store.as_ref(), &tenant).await?;
            if ctx.store.credential_delete(&record.id).await? {
                eprintln!("Removed the app credential of {}.", shown_name(&record));
            } else {
                eprintln!("No app credential is set for {}.", shown_name(&record));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A tenant's tags as stored.
async fn tags_of(ctx: &Ctx, id: &store::TenantId) -> anyhow::Result<Vec<String>> {
    Ok(ctx.store.tenant_tags().await?.into_iter().filter(|(t, _)| t == id).map(|(_, tag)| tag).collect())
}

/// An audit entry for a change made from the command line, by the local user.
fn cli_audit(action: &str, target: &str, detail: serde_json::Value) -> store::AuditEntry {
    store::AuditEntry {
        id: 0,
        at: chrono::Utc::now(),
        actor: format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())),
        action: action.to_string(),
        target: Some(target.to_string()),
        address: None,
        detail,
    }
}

async fn list(ctx: &Ctx, json_out: bool, tag: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut tenants = ctx.store.list_tenants().await?;
    let mut tags: std::collections::HashMap<store::TenantId, Vec<String>> = std::collections::HashMap::new();
    for (tenant, t) in ctx.store.tenant_tags().await? {
        tags.entry(tenant).or_default().push(t);
    }
    if let Some(wanted) = tag {
        let wanted = wanted.trim().to_lowercase();
        tenants.retain(|t| tags.get(&t.id).is_some_and(|ts| ts.contains(&wanted)));
    }
    tenants.sort_by(|a, b| {
        (a.role != store::TenantRole::Partner, a.display_name.to_ascii_lowercase())
            .cmp(&(b.role != store::TenantRole::Partner, b.display_name.to_ascii_lowercase()))
    });
    let mut items = Vec::new();
    for t in &tenants {
        let last = ctx.store.last_tenant_run(&t.id).await?;
        items.push(json!({
            "tenant_id": t.id,
            "display_name": t.display_name,
            "label": t.label,
            "tags": tags.get(&t.id).cloned().unwrap_or_default(),
            "shown_name": shown_name(t),
            "domain": t.domain,
            "role": t.role,
            "auth": t.auth,
            "gone_since": t.gone_since,
            "last_status": last.as_ref().map(|r| r.status),
            "last_inspected": last.as_ref().map(|r| r.finished_at),
            "cause": last.as_ref().and_then(|r| r.diagnosis.as_ref()).and_then(|d| d.get("cause")).cloned(),
        }));
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&json!({ "tenants": items }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        match tag {
            Some(tag) => eprintln!("No tenant is tagged {tag:?}."),
            None => eprintln!("No tenants yet: run `tenantscope inspect`."),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let s = |k: &str| i.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            vec![
                s("shown_name"),
                s("domain"),
                s("tenant_id"),
                format!("{}{}", s("auth"), if i["gone_since"].is_null() { "" } else { " (gone)" }),
                if s("last_status").is_empty() { "never".into() } else { s("last_status") },
                s("last_inspected").chars().take(19).collect(),
                s("cause"),
                i["tags"]
                    .as_array()
                    .map_or(String::new(), |ts| ts.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join(",")),
            ]
        })
        .collect();
    println!("{}", table(&["TENANT", "DOMAIN", "ID", "ACCESS", "LAST", "WHEN (UTC)", "CAUSE", "TAGS"], &rows));
    Ok(ExitCode::SUCCESS)
}

fn parse_when(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(d.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("'{text}' is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default())
}

/// A tenant's name as tenantscope shows it: the name Microsoft gives it, with the engineer's label
/// beside it, never instead of it.
pub fn shown_name(t: &store::TenantRecord) -> String {
    match t.label.as_deref() {
        Some(label) if !label.eq_ignore_ascii_case(&t.display_name) => format!("{} [{label}]", t.display_name),
        _ => t.display_name.clone(),
    }
}

/// The tenant `add-app` is for: a known tenant by id, domain or name; a new tenant by its id; or a
/// new tenant by one of its domains, whose id the identity platform's discovery document gives.
async fn add_app_tenant(ctx: &Ctx, query: &str) -> anyhow::Result<(store::TenantId, Option<store::TenantRecord>)> {
    if let Some(record) = inspect::access::find_record(ctx.store.as_ref(), query).await? {
        return Ok((record.id.clone(), Some(record)));
    }
    let as_id = store::TenantId::new(query);
    if as_id.is_guid() {
        return Ok((as_id, None));
    }
    let transport = microsoft::http::Transport::new(&ctx.cloud, Default::default(), None)?;
    match microsoft::discovery::tenant_id_of_domain(&transport, &ctx.cloud, query).await {
        Ok(Some(id)) => Ok((store::TenantId::new(id), None)),
        Ok(None) => bail!(
            "no tenant matches '{}': tenantscope does not know it, and Microsoft knows no tenant with that domain",
            query.trim()
        ),
        Err(e) => {
            bail!("no tenant matches '{}' here, and looking its domain up with Microsoft failed: {e}", query.trim())
        }
    }
}

async fn add_app(ctx: &Ctx, mut a: AddAppArgs) -> anyhow::Result<ExitCode> {
    // Checked before anything is stored.
    a.label = a.label.as_deref().map(store::normalize_label).transpose().map_err(|e| anyhow::anyhow!(e))?;
    let (tenant_id, record) = add_app_tenant(ctx, &a.tenant).await?;
    let federated = match (&a.federated_token_file, &a.federated_token_command) {
        (Some(path), _) => Some(microsoft::FederatedSource::File(
            std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?,
        )),
        (None, Some(command)) if !command.trim().is_empty() => {
            Some(microsoft::FederatedSource::Command(command.trim().to_string()))
        }
        (None, Some(_)) => bail!("the federated token command is empty"),
        (None, None) => None,
    };
    let (kind, secret, certificate_pem) = if let Some(source) = federated {
        // The token may only exist where the inspection runs (a pod, a CI job): a source that yields
        // none here is kept, with a warning.
        if let Err(e) = source.token().await {
            eprintln!("Warning: {e}; the credential is kept, and is used where the token is available.");
        }
        (CredentialKind::Federated, SecretString::from(source.spec()), None)
    } else if let Some(cert) = &a.certificate {
        let key_path = a.key.as_ref().context("--certificate needs --key")?;
        let pem = std::fs::read_to_string(cert).with_context(|| format!("cannot read {}", cert.display()))?;
        let key = std::fs::read_to_string(key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
        microsoft::oauth::client_assertion(
            "https://check.invalid/token",
            &a.client_id,
            &SecretString::from(key.clone()),
            &pem,
            false,
        )
        .map_err(|e| anyhow::anyhow!("the certificate and key cannot sign an assertion: {e}"))?;
        (CredentialKind::Certificate, SecretString::from(key), Some(pem))
    } else {
        let text = if let Some(var) = &a.secret_env {
            std::env::var(var).with_context(|| format!("the environment variable {var} is not set"))?
        } else if a.secret_stdin {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("cannot read the secret from standard input")?;
            s
        } else if let Some(f) = &a.secret_file {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        } else {
            bail!(
                "give the secret with --secret-env, --secret-stdin or --secret-file, or use --certificate and --key, or --federated-token-file or --federated-token-command"
            );
        };
        let text = text.trim().to_string();
        if text.is_empty() {
            bail!("the secret is empty");
        }
        (CredentialKind::Secret, SecretString::from(text), None)
    };
    let expires_at = a.expires.as_deref().map(parse_when).transpose()?;
    ctx.store
        .credential_put(&AppCredential {
            tenant_id: tenant_id.clone(),
            client_id: a.client_id.clone(),
            kind,
            secret,
            certificate_pem,
            expires_at,
            label: a.label.clone(),
            added_at: chrono::Utc::now(),
        })
        .await?;
    if record.is_none() {
        let now = chrono::Utc::now();
        let domain = (!store::TenantId::new(&a.tenant).is_guid()).then(|| a.tenant.trim().to_ascii_lowercase());
        ctx.store
            .upsert_tenant(&store::TenantRecord {
                id: tenant_id.clone(),
                domain: domain.clone(),
                // Its real name comes from its own organization object at its first inspection.
                display_name: domain.unwrap_or_else(|| tenant_id.to_string()),
                role: store::TenantRole::Customer,
                auth: store::TenantAuth::App,
                first_seen: now,
                last_seen: now,
                gone_since: None,
                gdap: None,
                label: None,
            })
            .await?;
    }
    if let Some(label) = &a.label {
        ctx.store.set_tenant_label(&tenant_id, Some(label)).await?;
    }
    let shown = match ctx.store.get_tenant(&tenant_id).await? {
        Some(t) => format!("{} ({tenant_id})", shown_name(&t)),
        None => tenant_id.to_string(),
    };
    eprintln!("Tenant {shown} will be read app-only with app {}.", a.client_id);
    Ok(ExitCode::SUCCESS)
}
