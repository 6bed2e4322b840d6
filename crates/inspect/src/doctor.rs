//! `doctor`: the six checks of the design, run live against one tenant, and the root cause they
//! point to.
//!
//! The checks are, in order: (1) MFA: does the sign-in behind the tenant's tokens carry the MFA
//! claim; (2) GDAP: is there an active relationship with the roles the collectors need, assigned to a
//! group the user is in; (3) token retrieval: does a fresh token work against Graph; (4) cache: does
//! the cached token fail where a fresh one works; (5) permissions: does the token grant what the
//! collectors need; (6) agent: can this machine reach the cloud's login and Graph hosts.
//!
//! Everything is read live (no freshness window, no reuse), and nothing is printed here: the CLI and
//! the server show the [`DoctorReport`] each in their own way.

use chrono::{DateTime, Utc};
pub use diagnose::Check;
use diagnose::{CacheFacts, Facts, NetworkFacts};
use microsoft::graph::{GraphClient, Target};
use microsoft::{AccessToken, Error, Grant};
use serde::Serialize;
use serde_json::{Value, json};
use store::TenantId;

use crate::access::Access;
use crate::catalog;
use crate::child::AuthMode;
use crate::clock::Clock;
use crate::facts::{self, GdapView, Situation};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Warn,
    Skipped,
}

/// One of the six checks, with what it found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub number: u8,
    pub check: Check,
    pub title: &'static str,
    pub status: CheckStatus,
    pub summary: String,
    /// What the check saw, as (what, value) pairs.
    pub evidence: Vec<(String, String)>,
}

fn check(c: Check, status: CheckStatus, summary: impl Into<String>, evidence: Vec<(String, String)>) -> CheckResult {
    CheckResult { number: c.number(), check: c, title: c.title(), status, summary: summary.into(), evidence }
}

/// What `doctor` found for one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub tenant_id: TenantId,
    pub display_name: String,
    pub auth: AuthMode,
    pub checks: Vec<CheckResult>,
    /// The root cause's id, when a check failed.
    pub cause: Option<&'static str>,
    /// The root cause, from everything the checks learned.
    pub diagnosis: Option<diagnose::Diagnosis>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl DoctorReport {
    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == CheckStatus::Fail)
    }
}

/// What the checks run against.
pub struct Doctor<'a> {
    pub graph: &'a GraphClient,
    pub clock: &'a dyn Clock,
    /// The tenant and how it is reached ([`crate::access`]).
    pub access: &'a Access,
    pub display_name: &'a str,
    /// The partner's tenant, when a partner is signed in.
    pub partner_tenant: Option<&'a TenantId>,
    /// The claims of the partner's sign-in, from the account record.
    pub partner_claims: Option<&'a microsoft::Claims>,
    /// What runs the checks, for check 6: an agent's name, or `None` for this machine.
    pub agent: Option<&'a str>,
    /// Told of each check as it ends, so that a dashboard shows them one by one.
    pub on_check: Option<&'a (dyn Fn(&CheckResult) + Send + Sync)>,
}

impl Doctor<'_> {
    /// Keeps a check's result, and tells whoever follows the checks.
    fn record(&self, checks: &mut Vec<CheckResult>, result: CheckResult) {
        if let Some(tell) = self.on_check {
            tell(&result);
        }
        checks.push(result);
    }

    /// Runs the six checks in order and names the root cause when one fails.
    pub async fn run(&self) -> DoctorReport {
        let started_at = self.clock.now();
        let auth = &self.graph.auth;
        let tenant = self.access.tenant_id.as_str();
        let grant = &self.access.grant;
        let mode = self.access.mode;
        let name = self.display_name;
        let mut checks: Vec<CheckResult> = Vec::new();
        let mut facts = Facts { now: Some(started_at), ..Facts::default() };
        let collector_paths: Vec<&str> = match mode {
            AuthMode::Partner => vec!["tenantRelationships/delegatedAdminCustomers"],
            _ => vec!["organization", "users?$top=1&$select=id", "policies/authorizationPolicy"],
        };

        // 1. MFA, for access that has a user behind it.
        let sign_in_claims = match mode {
            AuthMode::App => None,
            AuthMode::Gdap | AuthMode::Partner => match self.partner_tenant {
                Some(p) => {
                    cached_claims(auth, p.as_str(), &Grant::Partner).await.or_else(|| self.partner_claims.cloned())
                }
                None => None,
            },
            AuthMode::Direct => cached_claims(auth, tenant, grant)
                .await
                .or_else(|| self.access.account.as_ref().and_then(|a| a.claims.clone())),
        };
        self.record(&mut checks, match (&sign_in_claims, mode) {
            (_, AuthMode::App) => {
                check(Check::Mfa, CheckStatus::Skipped, "app-only access has no user and no MFA", vec![])
            }
            (Some(c), _) if c.has_mfa() => check(
                Check::Mfa,
                CheckStatus::Pass,
                "the signed-in account's token carries the MFA claim",
                vec![("amr".into(), c.amr.join(", "))],
            ),
            // Microsoft requires the MFA claim of partner users reaching customers (GDAP) and partner
            // APIs; a user signed in directly in its own tenant needs MFA only when that tenant's own
            // policies ask for it, and then token retrieval fails with the policy's code.
            (Some(c), AuthMode::Direct) => check(
                Check::Mfa,
                CheckStatus::Warn,
                "the account signed in without MFA; Microsoft does not require it for direct access, but the tenant's Conditional Access may",
                vec![("amr".into(), c.amr.join(", ")), ("user".into(), c.upn.clone().unwrap_or_default())],
            ),
            (Some(c), _) => check(
                Check::Mfa,
                CheckStatus::Fail,
                "the partner account's token has no MFA claim: Microsoft Entra MFA was not performed or is not enforced for it, and Microsoft refuses partner access without it",
                vec![("amr".into(), c.amr.join(", ")), ("user".into(), c.upn.clone().unwrap_or_default())],
            ),
            (None, _) => check(Check::Mfa, CheckStatus::Skipped, "no cached token of the account to read", vec![]),
        });

        // 2. GDAP, for customers reached through the partner.
        let mut gdap = None;
        if mode == AuthMode::Gdap {
            match self.partner_tenant {
                Some(p) => match gdap_view(self.graph, p.as_str(), tenant).await {
                    Ok(v) => gdap = Some(v),
                    Err(e) => {
                        self.record(
                            &mut checks,
                            check(
                                Check::Gdap,
                                CheckStatus::Fail,
                                format!("the partner's relationships cannot be read: {e}"),
                                vec![],
                            ),
                        );
                        facts.failure.get_or_insert(facts::failure(&e));
                    }
                },
                None => {
                    self.record(&mut checks, check(Check::Gdap, CheckStatus::Fail, "no partner is signed in", vec![]))
                }
            }
            if let Some(v) = &gdap {
                self.record(&mut checks, gdap_check(v, name));
            }
        } else {
            self.record(
                &mut checks,
                check(Check::Gdap, CheckStatus::Skipped, format!("{name} is not reached through GDAP"), vec![]),
            );
        }
        facts.gdap = gdap.as_ref().map(GdapView::facts);

        // 3. Token retrieval, with a fresh token.
        let cached = auth.cached(tenant, grant).await.ok().flatten();
        let fresh = auth.fresh_token(tenant, grant).await;
        let target = Target { tenant: tenant.to_string(), grant: grant.clone() };
        let mut failed_path: Option<String> = None;
        let (fresh_token, fresh_probe) = match &fresh {
            Ok(t) => (Some(t.clone()), probe(self.graph, &target, None, &collector_paths).await),
            Err(_) => (None, None),
        };
        match (&fresh, &fresh_probe) {
            (Err(e), _) => {
                self.record(
                    &mut checks,
                    check(
                        Check::TokenRetrieval,
                        CheckStatus::Fail,
                        format!("no token could be obtained for {name}"),
                        vec![("error".into(), e.to_string())],
                    ),
                );
                facts.failure = Some(facts::failure(e));
            }
            (Ok(_), Some((e, path))) => {
                self.record(
                    &mut checks,
                    check(
                        Check::TokenRetrieval,
                        CheckStatus::Fail,
                        format!("a fresh token was issued but Graph refused it for {path}"),
                        vec![("error".into(), e.to_string())],
                    ),
                );
                facts.failure = Some(facts::failure(e));
                failed_path = Some(path.clone());
            }
            (Ok(t), None) => self.record(
                &mut checks,
                check(
                    Check::TokenRetrieval,
                    CheckStatus::Pass,
                    format!("a fresh token works against {}", collector_paths.join(", ")),
                    vec![("issued".into(), t.issued_at.map(|d| d.to_rfc3339()).unwrap_or_default())],
                ),
            ),
        }

        // 4. Cache: did the cached token fail where a fresh one succeeds?
        match cached {
            Some(old) => {
                // The evicted token is used again only for this probe, to compare it with the fresh one.
                let old_result = probe(self.graph, &target, Some(&old), &collector_paths).await;
                if let Some((_, p)) = &old_result {
                    failed_path.get_or_insert_with(|| p.clone());
                }
                let fresh_ok = fresh.is_ok() && fresh_probe.is_none();
                facts.cache = Some(CacheFacts {
                    token_from_cache: true,
                    issued_at: old.issued_at,
                    fresh_token_succeeded: Some(fresh_ok),
                    fresh_succeeded_at: fresh_ok.then(|| self.clock.now()),
                    ..CacheFacts::default()
                });
                self.record(&mut checks, match (&old_result, fresh_ok) {
                    (Some((e, _)), true) => {
                        facts.failure = Some(facts::failure(e));
                        check(
                            Check::Cache,
                            CheckStatus::Fail,
                            "the cached token failed where a fresh one succeeds: the cache was stale and has been refreshed",
                            vec![
                                ("cached token issued".into(), old.issued_at.map(|d| d.to_rfc3339()).unwrap_or_default()),
                                ("cached token error".into(), e.to_string()),
                            ],
                        )
                    }
                    (None, _) => {
                        check(Check::Cache, CheckStatus::Pass, "the cached token works; the cache is not the problem", vec![])
                    }
                    (Some(_), false) => check(
                        Check::Cache,
                        CheckStatus::Pass,
                        "the cached and the fresh token fail alike: the cache is not the problem",
                        vec![],
                    ),
                });
            }
            None => self.record(
                &mut checks,
                check(Check::Cache, CheckStatus::Skipped, "no cached token to compare with a fresh one", vec![]),
            ),
        }

        // 5. Permissions.
        let mut blocked_collector: Option<&'static catalog::Collector> = None;
        self.record(
            &mut checks,
            match &fresh_token {
                Some(t) => {
                    let claims = t.claims.clone().unwrap_or_default();
                    facts.claims = Some(facts::claims(&claims));
                    let app_only = mode == AuthMode::App || claims.is_app_only();
                    if mode != AuthMode::Partner {
                        let granted = if app_only { &claims.roles } else { &claims.scp };
                        blocked_collector = catalog::customer_collectors()
                            .find(|c| !catalog::allowed(granted, if app_only { c.application } else { c.delegated }));
                    }
                    permissions_check(&claims, mode, name)
                }
                None => check(
                    Check::Permissions,
                    CheckStatus::Skipped,
                    "no token to read the granted permissions from",
                    vec![],
                ),
            },
        );

        // 6. Agent: this machine runs the inspection; can it reach the login and Graph hosts?
        let hosts = microsoft::reach::check_hosts(&self.graph.transport, &auth.cloud).await;
        let reachable = |role: &str| hosts.iter().any(|h| h.role == role && h.reachable);
        let (login_ok, graph_ok) = (reachable("login"), reachable("graph"));
        let egress = fresh_token.as_ref().and_then(|t| t.claims.as_ref()).and_then(|c| c.ipaddr.clone());
        facts.network = Some(NetworkFacts {
            agent: Some(self.agent.unwrap_or("this machine").to_string()),
            agent_alive: Some(true),
            login_reachable: Some(login_ok),
            graph_reachable: Some(graph_ok),
            egress_ip: egress.clone(),
        });
        let mut evidence: Vec<(String, String)> = hosts
            .iter()
            .map(|h| {
                let state = match (&h.status, &h.error) {
                    (Some(status), _) => format!("reachable (HTTP {status}, {} ms)", h.elapsed_ms),
                    (None, Some(e)) => format!("unreachable: {e}"),
                    (None, None) => "unreachable".into(),
                };
                (h.role.to_string(), format!("{} {state}", h.url))
            })
            .collect();
        evidence.push(("egress address seen by Microsoft".into(), egress.unwrap_or_else(|| "unknown".into())));
        self.record(
            &mut checks,
            if login_ok && graph_ok {
                check(Check::Agent, CheckStatus::Pass, "this machine reaches the login and Graph hosts", evidence)
            } else {
                check(Check::Agent, CheckStatus::Fail, "this machine cannot reach the cloud's hosts", evidence)
            },
        );

        // The root cause from everything the checks learned.
        let diagnosis = checks.iter().any(|c| c.status == CheckStatus::Fail).then(|| {
            let situation = Situation {
                tenant_id: tenant,
                tenant_name: Some(name),
                partner_tenant_id: self.partner_tenant.map(TenantId::as_str),
                auth: mode.diagnose(),
                // A read that failed names what it needed; without one, a collector the consent blocks
                // does, so that the diagnosis is about that permission.
                collector: failed_path.as_deref().and_then(collector_of).or(blocked_collector),
                token: fresh_token.as_ref(),
                sign_in: sign_in_claims.as_ref(),
                gdap: gdap.as_ref(),
                service_plans: None,
                cloud: Some(&auth.cloud.name),
                now: started_at,
            };
            let base = facts::facts(None, &situation);
            facts.context = base.context;
            if facts.claims.is_none() {
                facts.claims = sign_in_claims.as_ref().map(facts::claims);
            }
            // Without a failure the facts speak for themselves (claims, GDAP, consent, network); the
            // failed check's words are used only when they do not.
            if facts.failure.is_none()
                && let Some(c) = checks.iter().find(|c| c.status == CheckStatus::Fail)
                && !matches!(c.check, Check::Permissions | Check::Agent | Check::Mfa | Check::Gdap)
            {
                facts.failure = Some(diagnose::Failure::Text(c.summary.clone()));
            }
            diagnose::diagnose(&facts)
        });
        DoctorReport {
            tenant_id: self.access.tenant_id.clone(),
            display_name: name.to_string(),
            auth: mode,
            checks,
            cause: diagnosis.as_ref().map(|d| d.cause.id()),
            diagnosis,
            started_at,
            finished_at: self.clock.now(),
        }
    }
}

async fn cached_claims(auth: &microsoft::Authenticator, tenant: &str, grant: &Grant) -> Option<microsoft::Claims> {
    auth.cached(tenant, grant).await.ok().flatten().and_then(|t| t.claims)
}

/// The GDAP check from the partner's live view of one customer.
fn gdap_check(v: &GdapView, name: &str) -> CheckResult {
    let active = v.relationships.iter().filter(|r| r.status == "active").count();
    let roles = v.effective_roles();
    let uncovered: Vec<String> = catalog::customer_collectors()
        .filter(|c| !catalog::role_suffices(&roles, c.roles))
        .map(|c| {
            format!("{} (needs {})", c.name, c.roles.first().map_or("a directory role", |r| catalog::roles::name(r)))
        })
        .collect();
    let evidence: Vec<(String, String)> = v
        .relationships
        .iter()
        .map(|r| {
            let groups = r
                .assignments
                .iter()
                .map(|a| {
                    let member = match a.user_is_member {
                        Some(true) => " (you are a member)",
                        Some(false) => " (you are not a member)",
                        None => "",
                    };
                    format!("{}{member}", a.group_name.clone().unwrap_or_else(|| a.group_id.clone()))
                })
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!("relationship {}", r.display_name),
                format!(
                    "{} until {}; roles {}; groups {groups}",
                    r.status,
                    r.end.map(|e| e.to_rfc3339()).unwrap_or_else(|| "-".into()),
                    r.roles.iter().map(|x| catalog::roles::name(x)).collect::<Vec<_>>().join(", "),
                ),
            )
        })
        .collect();
    if v.relationships.is_empty() {
        check(Check::Gdap, CheckStatus::Fail, format!("there is no GDAP relationship with {name}"), evidence)
    } else if active == 0 {
        check(Check::Gdap, CheckStatus::Fail, "no GDAP relationship with this customer is active", evidence)
    } else if roles.is_empty() {
        check(
            Check::Gdap,
            CheckStatus::Fail,
            "the active relationship assigns its roles to groups the signed-in user is not a member of",
            evidence,
        )
    } else if !uncovered.is_empty() {
        check(
            Check::Gdap,
            CheckStatus::Warn,
            format!(
                "the user's GDAP roles do not cover every collector; these reads will be denied: {}",
                uncovered.join(", ")
            ),
            evidence,
        )
    } else {
        check(
            Check::Gdap,
            CheckStatus::Pass,
            "an active relationship gives the signed-in user the roles the collectors need",
            evidence,
        )
    }
}

/// The permissions check from a fresh token's claims.
fn permissions_check(claims: &microsoft::Claims, mode: AuthMode, name: &str) -> CheckResult {
    let app_only = claims.is_app_only();
    let granted = if app_only { &claims.roles } else { &claims.scp };
    if mode == AuthMode::Partner {
        return check(
            Check::Permissions,
            if claims.scp.iter().any(|s| s == "DelegatedAdminRelationship.Read.All") {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            "the partner token needs DelegatedAdminRelationship.Read.All to list customers",
            vec![("scp".into(), claims.scp.join(" "))],
        );
    }
    let c = crate::permissions::compare(granted, app_only);
    if c.blocked.is_empty() {
        check(
            Check::Permissions,
            CheckStatus::Pass,
            "the token grants every permission the collectors need",
            vec![("granted".into(), granted.join(" "))],
        )
    } else {
        check(
            Check::Permissions,
            CheckStatus::Fail,
            format!("the app's consent in {name} lacks {}", c.missing.join(", ")),
            vec![("blocked collectors".into(), c.blocked.join(", ")), ("granted".into(), granted.join(" "))],
        )
    }
}

/// Reads the partner's relationships and group memberships afresh for the GDAP check.
async fn gdap_view(graph: &GraphClient, partner: &str, customer: &str) -> Result<GdapView, Error> {
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
    collections.insert("delegatedAdminRelationships".into(), crate::dataprint::keyed(mine));
    collections.insert("memberOf".into(), crate::dataprint::keyed(groups));
    Ok(crate::partner::derive_customers(&collections)
        .into_iter()
        .find(|c| c.tenant_id.eq_ignore_ascii_case(customer))
        .map(|c| c.gdap)
        .unwrap_or(GdapView { user_groups: None, ..GdapView::default() }))
}

/// Probes a few reads, with the cache's current token or with `token`; returns the first failure and
/// the path that failed.
async fn probe(
    graph: &GraphClient,
    target: &Target,
    token: Option<&AccessToken>,
    paths: &[&str],
) -> Option<(Error, String)> {
    for p in paths {
        let result = match token {
            None => graph.get(target, p, &[]).await.map(|_| ()),
            Some(token) => graph.get_with_token(token, p).await.map(|_| ()),
        };
        if let Err(e) = result {
            return Some((e, p.to_string()));
        }
    }
    None
}

/// The catalog collector a probe path belongs to, so that diagnosis knows what the read needed.
fn collector_of(path: &str) -> Option<&'static catalog::Collector> {
    let base = path.split('?').next().unwrap_or(path);
    catalog::CATALOG.iter().find(|c| c.path.split('?').next().unwrap_or(c.path).trim_end_matches("/delta") == base)
}
