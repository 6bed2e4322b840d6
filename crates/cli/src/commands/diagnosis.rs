//! `tenantscope explain` (diagnose pasted text) and `tenantscope doctor` (the six checks).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use diagnose::{CacheFacts, Check, Facts, NetworkFacts};
use inspect::AuthMode;
use inspect::facts::{GdapView, Situation};
use microsoft::graph::Target;
use microsoft::{AccessToken, Error, Grant};
use serde::Serialize;
use serde_json::{Value, json};

use super::Global;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A file with the error text; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
    /// Summarise a sign-in log export instead (the JSON or CSV that Microsoft Entra's
    /// Sign-in logs page downloads, or Graph's `auditLogs/signIns` answer): failures by cause,
    /// user, application, IP address and time, with each cause's fix.
    #[arg(long = "sign-in-logs", value_name = "FILE", conflicts_with = "file")]
    pub sign_in_logs: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The customer to check (id, domain or name); without it, the partner sign-in is checked.
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn print_diagnosis(d: &diagnose::Diagnosis, indent: &str) {
    println!(
        "{indent}cause: {} ({:.0}% confident, check {} {})",
        d.cause.id(),
        d.confidence * 100.0,
        d.check.number(),
        d.check.title()
    );
    println!("{indent}{}", d.summary);
    if !d.evidence.is_empty() {
        println!("{indent}evidence:");
        for e in &d.evidence {
            println!("{indent}  {}: {}", e.name, e.value);
        }
    }
    if !d.fix.is_empty() {
        println!("{indent}fix:");
        for (i, f) in d.fix.iter().enumerate() {
            println!("{indent}  {}. {f}", i + 1);
        }
    }
    println!("{indent}docs: {}", d.docs);
}

/// The text of a file or of standard input: UTF-8 (its BOM dropped), or UTF-16 when it starts
/// with a UTF-16 BOM, which is what Windows PowerShell 5's `>` and `Out-File` write.
fn decode(bytes: &[u8]) -> String {
    let utf16 = |rest: &[u8], little: bool| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|p| if little { u16::from_le_bytes([p[0], p[1]]) } else { u16::from_be_bytes([p[0], p[1]]) })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Whether decoded input is binary rather than text: a NUL, or more than a quarter of
/// characters that are undecodable or control characters. Explaining it would only ever answer
/// `unknown`.
fn is_binary(text: &str) -> bool {
    if text.contains('\0') {
        return true;
    }
    let total = text.chars().count().max(1);
    let bad =
        text.chars().filter(|c| *c == char::REPLACEMENT_CHARACTER || (c.is_control() && !c.is_whitespace())).count();
    bad * 4 > total
}

pub async fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.sign_in_logs {
        return explain_sign_in_logs(path, args.json);
    }
    let bytes = match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            let size = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?.len();
            if size > MAX_EXPLAIN_BYTES {
                anyhow::bail!(
                    "{} is {size} bytes; explain reads at most {MAX_EXPLAIN_BYTES} bytes: paste the error itself, or use --sign-in-logs for a sign-in log export",
                    p.display()
                );
            }
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin().take(MAX_EXPLAIN_BYTES).read_to_end(&mut bytes).context("cannot read standard input")?;
            bytes
        }
    };
    let text = decode(&bytes);
    if is_binary(&text) {
        anyhow::bail!(
            "the input is binary, not text: explain reads error messages, token-endpoint or Graph error bodies and log lines"
        );
    }
    if text.trim().is_empty() {
        anyhow::bail!(
            "nothing to explain: paste an error message, a token-endpoint or Graph error body, or a log line"
        );
    }
    let e = diagnose::explain(&text);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(best) = e.candidates.first() {
        print_diagnosis(best, "");
    }
    if e.candidates.len() > 1 {
        println!("\nother possible causes, most likely first:");
        for c in e.candidates.iter().skip(1).take(4) {
            println!("  - {} ({:.0}%): {}", c.cause.id(), c.confidence * 100.0, c.summary);
        }
    }
    if !e.distinguish.is_empty() {
        println!("\nto tell them apart:");
        for d in &e.distinguish {
            println!("  - {d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Explain reads at most this much: an error message is small, and the parser caps its scan.
const MAX_EXPLAIN_BYTES: u64 = 8 * 1024 * 1024;

fn explain_sign_in_logs(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if size > diagnose::MAX_SIGN_IN_LOG_BYTES as u64 {
        anyhow::bail!(
            "{} is {size} bytes; sign-in log exports above {} bytes are not read: export a shorter period",
            path.display(),
            diagnose::MAX_SIGN_IN_LOG_BYTES
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let summary =
        diagnose::summarize_sign_in_logs(&bytes).with_context(|| format!("cannot summarise {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    let span = match (&summary.first, &summary.last) {
        (Some(f), Some(l)) => format!(", from {f} to {l}"),
        _ => String::new(),
    };
    println!(
        "{} sign-ins ({}){span}: {} failed, {} interrupted, {} without a result",
        summary.entries, summary.format, summary.failures, summary.interrupted, summary.unreadable
    );
    if summary.causes.is_empty() {
        println!("no failed sign-in in this export");
        return Ok(ExitCode::SUCCESS);
    }
    let list = |counts: &[diagnose::Count]| {
        counts.iter().map(|c| format!("{} ({})", c.value, c.count)).collect::<Vec<_>>().join(", ")
    };
    for g in &summary.causes {
        println!("\n{} — {} failure(s): {}", g.cause.id(), g.count, g.title);
        println!("  {}", g.summary);
        println!("  codes: {}", list(&g.codes));
        if !g.top_users.is_empty() {
            println!("  users: {}", list(&g.top_users));
        }
        if !g.top_applications.is_empty() {
            println!("  applications: {}", list(&g.top_applications));
        }
        if !g.top_ips.is_empty() {
            println!("  ip addresses: {}", list(&g.top_ips));
        }
        if let (Some(f), Some(l)) = (&g.first, &g.last) {
            println!("  first: {f}, last: {l}");
        }
        if !g.fix.is_empty() {
            println!("  fix:");
            for (i, f) in g.fix.iter().enumerate() {
                println!("    {}. {f}", i + 1);
            }
        }
        println!("  docs: {}", g.docs);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Warn,
    Skipped,
}

#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub number: u8,
    pub check: Check,
    pub title: &'static str,
    pub status: CheckStatus,
    pub summary: String,
    pub evidence: Vec<(String, String)>,
}

fn check(c: Check, status: CheckStatus, summary: impl Into<String>, evidence: Vec<(String, String)>) -> CheckResult {
    CheckResult { number: c.number(), check: c, title: c.title(), status, summary: summary.into(), evidence }
}

/// Reads the partner's relationships and group memberships afresh for the GDAP check.
async fn gdap_view(graph: &microsoft::graph::GraphClient, partner: &str, customer: &str) -> Result<GdapView, Error> {
    let target = Target { tenant: partner.to_string(), grant: Grant::Partner };
    let rels = graph.list(&target, "tenantRelationships/delegatedAdminRelationships?$top=300", Vec::new()).await?;
    let groups = graph.list(&target, "me/transitiveMemberOf?$select=id,displayName", Vec::new()).await?;
    let mut collections = serde_json::Map::new();
    let mut mine = Vec::new();
    for mut r in rels.into_iter().filter(|r| {
        r.pointer("/customer/tenantId").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(customer))
    }) {
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let a = graph
            .list(
                &target,
                &format!("tenantRelationships/delegatedAdminRelationships/{id}/accessAssignments"),
                Vec::new(),
            )
            .await?;
        r["accessAssignments"] = json!(a);
        mine.push(r);
    }
    collections.insert("delegatedAdminRelationships".into(), inspect::dataprint::keyed(mine));
    collections.insert("memberOf".into(), inspect::dataprint::keyed(groups));
    Ok(inspect::partner::derive_customers(&collections)
        .into_iter()
        .find(|c| c.tenant_id.eq_ignore_ascii_case(customer))
        .map(|c| c.gdap)
        .unwrap_or(GdapView { user_groups: None, ..GdapView::default() }))
}

/// Probes a few reads with a token; returns the first failure and the path that failed.
async fn probe(graph: &microsoft::graph::GraphClient, target: &Target, paths: &[&str]) -> Option<(Error, String)> {
    for p in paths {
        if let Err(e) = graph.get(target, p, &[]).await {
            return Some((e, p.to_string()));
        }
    }
    None
}

/// The catalog collector a probe path belongs to, so that diagnosis knows what the read needed.
fn collector_of(path: &str) -> Option<&'static inspect::catalog::Collector> {
    let base = path.split('?').next().unwrap_or(path);
    inspect::catalog::CATALOG
        .iter()
        .find(|c| c.path.split('?').next().unwrap_or(c.path).trim_end_matches("/delta") == base)
}

async fn reachable(url: &url::Url, ca: Option<&[u8]>) -> bool {
    let mut b = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca
        && let Ok(certs) = reqwest::Certificate::from_pem_bundle(pem)
    {
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    match b.build() {
        Ok(c) => c.get(url.clone()).send().await.is_ok(),
        Err(_) => false,
    }
}

pub async fn doctor(args: DoctorArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let client_id = ctx.client_id(None).await?;
    let auth = ctx.auth(&client_id, None)?;
    let graph = ctx.graph(auth.clone());
    let partner = auth.account().await?;
    let mut checks: Vec<CheckResult> = Vec::new();
    let mut facts = Facts { now: Some(chrono::Utc::now()), ..Facts::default() };

    let (tenant, grant, mode) = match &args.tenant {
        Some(t) => ctx.grant_for(&auth, t).await?,
        None => {
            let p = partner.as_ref().context("no partner account is signed in: run `tenantscope login` (or give --tenant for a directly signed-in or app-only customer)")?;
            (p.home_tenant.clone(), Grant::Partner, AuthMode::Partner)
        }
    };
    let record = ctx.store.get_tenant(&tenant).await?;
    let name = record.as_ref().map(|r| r.display_name.clone()).unwrap_or_else(|| tenant.clone());
    let collector_paths: Vec<&str> = match mode {
        AuthMode::Partner => vec!["tenantRelationships/delegatedAdminCustomers"],
        _ => vec!["organization", "users?$top=1&$select=id", "policies/authorizationPolicy"],
    };

    // 1. MFA.
    let partner_claims = match (&partner, mode) {
        (_, AuthMode::App) => None,
        (Some(p), AuthMode::Gdap | AuthMode::Partner) => {
            auth.cached(&p.home_tenant, &Grant::Partner).await?.and_then(|t| t.claims).or_else(|| p.claims.clone())
        }
        (_, AuthMode::Direct) => auth.cached(&tenant, &grant).await?.and_then(|t| t.claims),
        (None, _) => None,
    };
    checks.push(match (&partner_claims, mode) {
        (_, AuthMode::App) => check(Check::Mfa, CheckStatus::Skipped, "app-only access has no user and no MFA", vec![]),
        (Some(c), _) if c.has_mfa() => check(Check::Mfa, CheckStatus::Pass, "the signed-in account's token carries the MFA claim", vec![("amr".into(), c.amr.join(", "))]),
        (Some(c), _) => check(Check::Mfa, CheckStatus::Fail, "the signed-in account's token has no MFA claim: Microsoft Entra MFA was not performed or is not enforced for it", vec![("amr".into(), c.amr.join(", ")), ("user".into(), c.upn.clone().unwrap_or_default())]),
        (None, _) => check(Check::Mfa, CheckStatus::Skipped, "no cached token of the account to read", vec![]),
    });

    // 2. GDAP.
    let gdap = if mode == AuthMode::Gdap {
        match &partner {
            Some(p) => match gdap_view(&graph, &p.home_tenant, &tenant).await {
                Ok(v) => Some(v),
                Err(e) => {
                    checks.push(check(
                        Check::Gdap,
                        CheckStatus::Fail,
                        format!("the partner's relationships cannot be read: {e}"),
                        vec![],
                    ));
                    facts.failure.get_or_insert(inspect::facts::failure(&e));
                    None
                }
            },
            None => None,
        }
    } else {
        None
    };
    if mode == AuthMode::Gdap && checks.len() == 1 {
        let v = gdap.clone().unwrap_or_default();
        let active: Vec<_> = v.relationships.iter().filter(|r| r.status == "active").collect();
        let roles = v.effective_roles();
        let needed: Vec<String> = inspect::permissions::derive().gdap_roles.iter().map(|(id, _)| id.clone()).collect();
        let evidence: Vec<(String, String)> = v
            .relationships
            .iter()
            .map(|r| {
                (
                    format!("relationship {}", r.display_name),
                    format!(
                        "{} until {}; roles {}; groups {}",
                        r.status,
                        r.end.map(|e| e.to_rfc3339()).unwrap_or_else(|| "-".into()),
                        r.roles.iter().map(|x| inspect::catalog::roles::name(x)).collect::<Vec<_>>().join(", "),
                        r.assignments
                            .iter()
                            .map(|a| format!(
                                "{}{}",
                                a.group_name.clone().unwrap_or_else(|| a.group_id.clone()),
                                match a.user_is_member {
                                    Some(true) => " (you are a member)",
                                    Some(false) => " (you are not a member)",
                                    None => "",
                                }
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
            .collect();
        checks.push(if v.relationships.is_empty() {
            check(Check::Gdap, CheckStatus::Fail, format!("there is no GDAP relationship with {name}"), evidence)
        } else if active.is_empty() {
            check(Check::Gdap, CheckStatus::Fail, "no GDAP relationship with this customer is active", evidence)
        } else if roles.is_empty() {
            check(
                Check::Gdap,
                CheckStatus::Fail,
                "the active relationship assigns its roles to groups the signed-in user is not a member of",
                evidence,
            )
        } else if !needed.iter().all(|n| roles.contains(n))
            && !roles.iter().any(|r| {
                r == inspect::catalog::roles::GLOBAL_READER || r == inspect::catalog::roles::GLOBAL_ADMINISTRATOR
            })
        {
            check(
                Check::Gdap,
                CheckStatus::Warn,
                "the user's GDAP roles do not cover every collector; some reads will be denied",
                evidence,
            )
        } else {
            check(
                Check::Gdap,
                CheckStatus::Pass,
                "an active relationship gives the signed-in user the roles the collectors need",
                evidence,
            )
        });
    } else if mode != AuthMode::Gdap {
        checks.push(check(Check::Gdap, CheckStatus::Skipped, format!("{name} is not reached through GDAP"), vec![]));
    }
    facts.gdap = gdap.as_ref().map(GdapView::facts);

    // 3. Token retrieval, with a fresh token.
    let cached = auth.cached(&tenant, &grant).await?;
    let fresh = auth.fresh_token(&tenant, &grant).await;
    let target = Target { tenant: tenant.clone(), grant: grant.clone() };
    let mut failed_path: Option<String> = None;
    let (fresh_token, fresh_probe) = match &fresh {
        Ok(t) => (Some(t.clone()), probe(&graph, &target, &collector_paths).await),
        Err(_) => (None, None),
    };
    match (&fresh, &fresh_probe) {
        (Err(e), _) => {
            checks.push(check(
                Check::TokenRetrieval,
                CheckStatus::Fail,
                format!("no token could be obtained for {name}"),
                vec![("error".into(), e.to_string())],
            ));
            facts.failure = Some(inspect::facts::failure(e));
        }
        (Ok(_), Some((e, path))) => {
            checks.push(check(
                Check::TokenRetrieval,
                CheckStatus::Fail,
                format!("a fresh token was issued but Graph refused it for {path}"),
                vec![("error".into(), e.to_string())],
            ));
            facts.failure = Some(inspect::facts::failure(e));
            failed_path = Some(path.clone());
        }
        (Ok(t), None) => checks.push(check(
            Check::TokenRetrieval,
            CheckStatus::Pass,
            format!("a fresh token works against {}", collector_paths.join(", ")),
            vec![("issued".into(), t.issued_at.map(|d| d.to_rfc3339()).unwrap_or_default())],
        )),
    }

    // 4. Cache: did the cached token fail where a fresh one succeeds?
    match cached {
        Some(old) => {
            // The evicted token is put back only for this probe, to compare it with the fresh one.
            let old_result = probe_with(&graph, &target, &old, &collector_paths).await;
            if let Some((_, p)) = &old_result {
                failed_path.get_or_insert_with(|| p.clone());
            }
            let fresh_ok = fresh.is_ok() && fresh_probe.is_none();
            facts.cache = Some(CacheFacts {
                token_from_cache: true,
                issued_at: old.issued_at,
                fresh_token_succeeded: Some(fresh_ok),
                fresh_succeeded_at: fresh_ok.then(chrono::Utc::now),
                ..CacheFacts::default()
            });
            checks.push(match (&old_result, fresh_ok) {
                (Some((e, _)), true) => {
                    facts.failure = Some(inspect::facts::failure(e));
                    check(Check::Cache, CheckStatus::Fail, "the cached token failed where a fresh one succeeds: the cache was stale and has been refreshed", vec![("cached token issued".into(), old.issued_at.map(|d| d.to_rfc3339()).unwrap_or_default()), ("cached token error".into(), e.to_string())])
                }
                (None, _) => check(Check::Cache, CheckStatus::Pass, "the cached token works; the cache is not the problem", vec![]),
                (Some(_), false) => check(Check::Cache, CheckStatus::Pass, "the cached and the fresh token fail alike: the cache is not the problem", vec![]),
            });
        }
        None => checks.push(check(
            Check::Cache,
            CheckStatus::Skipped,
            "no cached token to compare with a fresh one",
            vec![],
        )),
    }

    // 5. Permissions.
    match &fresh_token {
        Some(t) => {
            let claims = t.claims.clone().unwrap_or_default();
            facts.claims = Some(inspect::facts::claims(&claims));
            let app_only = claims.is_app_only();
            let c = inspect::permissions::compare(if app_only { &claims.roles } else { &claims.scp }, app_only);
            checks.push(if mode == AuthMode::Partner {
                check(
                    Check::Permissions,
                    if claims.scp.iter().any(|s| s == "DelegatedAdminRelationship.Read.All") {
                        CheckStatus::Pass
                    } else {
                        CheckStatus::Fail
                    },
                    "the partner token needs DelegatedAdminRelationship.Read.All to list customers",
                    vec![("scp".into(), claims.scp.join(" "))],
                )
            } else if c.blocked.is_empty() {
                check(
                    Check::Permissions,
                    CheckStatus::Pass,
                    "the token grants every permission the collectors need",
                    vec![("granted".into(), if app_only { claims.roles.join(" ") } else { claims.scp.join(" ") })],
                )
            } else {
                check(
                    Check::Permissions,
                    CheckStatus::Fail,
                    format!("the app's consent in {name} lacks {}", c.missing.join(", ")),
                    vec![
                        ("blocked collectors".into(), c.blocked.join(", ")),
                        ("granted".into(), if app_only { claims.roles.join(" ") } else { claims.scp.join(" ") }),
                    ],
                )
            });
        }
        None => checks.push(check(
            Check::Permissions,
            CheckStatus::Skipped,
            "no token to read the granted permissions from",
            vec![],
        )),
    }

    // 6. Agent: this machine is the agent; can it reach the login and Graph hosts?
    let ca = ctx.cloud.ca_pem.as_deref();
    let login_ok = reachable(&ctx.cloud.login_url, ca).await;
    let graph_ok = reachable(&ctx.cloud.graph_url, ca).await;
    let egress = fresh_token.as_ref().and_then(|t| t.claims.as_ref()).and_then(|c| c.ipaddr.clone());
    facts.network = Some(NetworkFacts {
        agent: Some("local".into()),
        agent_alive: Some(true),
        login_reachable: Some(login_ok),
        graph_reachable: Some(graph_ok),
        egress_ip: egress.clone(),
    });
    checks.push(check(
        Check::Agent,
        if login_ok && graph_ok { CheckStatus::Pass } else { CheckStatus::Fail },
        if login_ok && graph_ok {
            "this machine reaches the login and Graph hosts".to_string()
        } else {
            "this machine cannot reach the cloud's hosts".to_string()
        },
        vec![
            ("login".into(), format!("{} {}", ctx.cloud.login_url, if login_ok { "reachable" } else { "unreachable" })),
            ("graph".into(), format!("{} {}", ctx.cloud.graph_url, if graph_ok { "reachable" } else { "unreachable" })),
            ("egress address seen by Microsoft".into(), egress.unwrap_or_else(|| "unknown".into())),
        ],
    ));

    // The root cause from everything the checks learned.
    let any_fail = checks.iter().any(|c| c.status == CheckStatus::Fail);
    let root = if any_fail {
        let mut f = facts.clone();
        let situation = Situation {
            tenant_id: &tenant,
            tenant_name: Some(&name),
            partner_tenant_id: partner.as_ref().map(|p| p.home_tenant.as_str()),
            auth: mode.diagnose(),
            collector: failed_path.as_deref().and_then(collector_of),
            token: fresh_token.as_ref(),
            sign_in: partner_claims.as_ref(),
            gdap: gdap.as_ref(),
            service_plans: None,
            cloud: Some(&ctx.cloud.name),
        };
        let base = inspect::facts::facts(None, &situation);
        f.context = base.context;
        if f.claims.is_none() {
            f.claims = partner_claims.as_ref().map(inspect::facts::claims);
        }
        if f.failure.is_none()
            && let Some(c) = checks.iter().find(|c| c.status == CheckStatus::Fail)
        {
            f.failure = Some(diagnose::Failure::Text(c.summary.clone()));
        }
        Some(diagnose::diagnose(&f))
    } else {
        None
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "tenant_id": tenant, "display_name": name, "auth": mode, "checks": checks, "cause": root.as_ref().map(|d| d.cause.id()), "diagnosis": root })
            )?
        );
    } else {
        println!("Doctor for {name} ({tenant}, {}):\n", mode.as_str());
        for c in &checks {
            let mark = match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Fail => "FAIL",
                CheckStatus::Warn => "warn",
                CheckStatus::Skipped => "skip",
            };
            println!("  {}. {:<18} {mark:<5} {}", c.number, c.title, c.summary);
            for (k, v) in &c.evidence {
                println!("       {k}: {v}");
            }
        }
        match &root {
            Some(d) => {
                println!("\nRoot cause:");
                print_diagnosis(d, "  ");
            }
            None => println!("\nNo problem found: every check passed."),
        }
    }
    Ok(if any_fail { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Sends probe reads with a given token rather than the cache's current one.
async fn probe_with(
    graph: &microsoft::graph::GraphClient,
    target: &Target,
    token: &AccessToken,
    paths: &[&str],
) -> Option<(Error, String)> {
    let transport = &graph.transport;
    for p in paths {
        let url = match graph.url(p) {
            Ok(u) => u,
            Err(e) => return Some((e, p.to_string())),
        };
        if !graph.auth.cloud.is_graph_url(&url) {
            return Some((
                Error::HostNotAllowed { url: url.to_string(), reason: "not the cloud's Graph host".into() },
                p.to_string(),
            ));
        }
        let req = microsoft::http::Request { bearer: Some(&token.secret), ..microsoft::http::Request::get(url) };
        match transport.send(req).await {
            Ok(resp) if (200..300).contains(&resp.status) => {}
            Ok(resp) => {
                return Some((Error::Graph(Box::new(microsoft::graph::graph_error("GET", &resp))), p.to_string()));
            }
            Err(e) => return Some((e, p.to_string())),
        }
    }
    let _ = target;
    None
}
