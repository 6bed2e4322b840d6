//! The world file format (TOML), documented in docs/simulator.md, and its compilation into a [`World`].

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::actions::CaPolicySpec;
use super::generate::{filler_devices, filler_users};
use super::{
    AccessAssignment, App, AppCertificate, AppRole, AppSecret, Contract, GdapRelationship, GdapStatus, Group, Licence,
    NamedLocation, PerUserMfa, Scenario, ServicePrincipal, Settings, Tenant, TenantKind, User, World,
};
use crate::catalog;

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("world file is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("world file: {0}")]
    Invalid(String),
    #[error("cannot read world file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("generator spec: {0}")]
    Spec(String),
}

fn invalid(msg: impl Into<String>) -> WorldError {
    WorldError::Invalid(msg.into())
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorldFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub settings: Option<Settings>,
    #[serde(default)]
    pub tenants: Vec<TenantFile>,
    #[serde(default)]
    pub apps: Vec<AppFile>,
    #[serde(default)]
    pub gdap: Vec<GdapFile>,
    #[serde(default)]
    pub contracts: Vec<ContractFile>,
    #[serde(default)]
    pub scenarios: Vec<Scenario>,
    #[serde(default)]
    pub faults: Option<crate::faults::FaultConfig>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    pub key: String,
    #[serde(default)]
    pub id: Option<Uuid>,
    pub name: String,
    pub domain: String,
    #[serde(default)]
    pub custom_domains: Vec<String>,
    pub kind: TenantKind,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub licences: Vec<LicenceFile>,
    #[serde(default)]
    pub security_defaults: bool,
    #[serde(default)]
    pub user_consent: bool,
    #[serde(default)]
    pub secure_score: Option<(f64, f64)>,
    #[serde(default)]
    pub extra_users: usize,
    #[serde(default)]
    pub devices: usize,
    #[serde(default)]
    pub users: Vec<UserFile>,
    #[serde(default)]
    pub groups: Vec<GroupFile>,
    #[serde(default)]
    pub named_locations: Vec<NamedLocationFile>,
    #[serde(default)]
    pub ca_policies: Vec<CaPolicySpec>,
    #[serde(default)]
    pub consents: Vec<ConsentFile>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceFile {
    pub sku: String,
    pub seats: u32,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserFile {
    pub upn: String,
    pub name: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub mfa: bool,
    #[serde(default)]
    pub totp_secret: Option<String>,
    #[serde(default)]
    pub per_user_mfa: PerUserMfa,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub guest: bool,
    #[serde(default)]
    pub risky: bool,
    #[serde(default)]
    pub password_changed: Option<String>,
    #[serde(default)]
    pub password_expired: bool,
    #[serde(default)]
    pub licences: Vec<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub last_sign_in: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default = "yes")]
    pub security_enabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedLocationFile {
    pub name: String,
    pub ranges: Vec<String>,
    #[serde(default = "yes")]
    pub trusted: bool,
}

/// `delegated`/`application` are either the string `all` (everything the app asks for) or a list.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentFile {
    pub app: String,
    #[serde(default)]
    pub delegated: Option<Grants>,
    #[serde(default)]
    pub application: Option<Grants>,
    #[serde(default)]
    pub changed: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(untagged)]
pub enum Grants {
    Keyword(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppFile {
    pub key: String,
    #[serde(default)]
    pub client_id: Option<Uuid>,
    pub name: String,
    pub home: String,
    #[serde(default)]
    pub multi_tenant: bool,
    #[serde(default)]
    pub public_client: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub delegated: Vec<String>,
    #[serde(default)]
    pub application: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<SecretFile>,
    #[serde(default)]
    pub certificates: Vec<CertificateFile>,
    /// Federated identity credentials (workload identity federation).
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredentialFile>,
    /// App roles and their assignments (users by UPN, groups as `group:Display Name`).
    #[serde(default)]
    pub app_roles: Vec<AppRoleFile>,
    /// ID tokens carry the user's security groups (`groupMembershipClaims: SecurityGroup`).
    #[serde(default)]
    pub group_claims: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleFile {
    pub value: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub assigned: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub start: Option<String>,
    pub expires: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredentialFile {
    pub name: String,
    /// The external issuer; `{sim}` stands for the simulator's base URL (`{sim}/_idp/github` is an issuer
    /// the simulator hosts).
    pub issuer: String,
    pub subject: String,
    /// Entra's default for workload identity federation.
    #[serde(default = "default_audiences")]
    pub audiences: Vec<String>,
}

pub(crate) fn default_audiences() -> Vec<String> {
    vec!["api://AzureADTokenExchange".to_string()]
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    pub name: String,
    /// The certificate in PEM; its public key verifies the app's client assertions.
    pub pem: String,
    #[serde(default)]
    pub start: Option<String>,
    pub expires: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GdapFile {
    pub name: String,
    pub partner: String,
    pub customer: String,
    #[serde(default = "active")]
    pub status: GdapStatus,
    pub roles: Vec<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub duration_days: Option<u32>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub auto_extend: Option<String>,
    #[serde(default)]
    pub assignments: Vec<AssignmentFile>,
}

fn active() -> GdapStatus {
    GdapStatus::Active
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentFile {
    pub group: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContractFile {
    pub partner: String,
    pub customer: String,
}

/// The largest time offset accepted anywhere (world files, the control API's clock): a century.
pub const MAX_OFFSET_DAYS: i64 = 36_525;

fn out_of_range(text: &str) -> WorldError {
    invalid(format!("time offset '{text}' is out of range (at most {MAX_OFFSET_DAYS} days either way)"))
}

/// Parses a time: `now`, a signed offset such as `-30d`, `+2h`, `-90d12h`, `+15m`, or an RFC 3339 instant.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, WorldError> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(rest) = t.strip_prefix('+').map(|r| (1, r)).or_else(|| t.strip_prefix('-').map(|r| (-1, r))) {
        let (sign, body) = rest;
        let mut total = Duration::zero();
        let mut digits = String::new();
        for c in body.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: i64 = digits.parse().map_err(|_| invalid(format!("bad time offset '{text}'")))?;
            digits.clear();
            // Offsets come from files and the control API, so arithmetic is checked: an absurd offset is an
            // error, not a panic.
            let part = match c {
                'd' => Duration::try_days(n),
                'h' => Duration::try_hours(n),
                'm' => Duration::try_minutes(n),
                's' => Duration::try_seconds(n),
                _ => return Err(invalid(format!("bad unit '{c}' in time offset '{text}' (use d, h, m, s)"))),
            };
            total = part.and_then(|p| total.checked_add(&p)).ok_or_else(|| out_of_range(text))?;
        }
        if !digits.is_empty() {
            return Err(invalid(format!("time offset '{text}' lacks a unit (d, h, m, s)")));
        }
        if body.is_empty() {
            return Err(invalid(format!("time offset '{text}' is empty")));
        }
        let signed = if sign < 0 { -total } else { total };
        if signed.abs() > Duration::days(MAX_OFFSET_DAYS) {
            return Err(out_of_range(text));
        }
        return now.checked_add_signed(signed).ok_or_else(|| out_of_range(text));
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| invalid(format!("bad time '{text}': use now, an offset like -30d, or RFC 3339")))
}

/// Prefixes an error with where in the file it happened.
fn at(context: String) -> impl FnOnce(WorldError) -> WorldError {
    move |e| match e {
        WorldError::Invalid(m) => WorldError::Invalid(format!("{context}: {m}")),
        other => other,
    }
}

fn opt_time(text: &Option<String>, now: DateTime<Utc>, default: DateTime<Utc>) -> Result<DateTime<Utc>, WorldError> {
    text.as_deref().map_or(Ok(default), |t| parse_time(t, now))
}

/// A stable id derived from the world seed and a name, so that a world file gives the same ids every run.
pub fn stable_id(seed: u64, parts: &[&str]) -> Uuid {
    let name = format!("{seed}/{}", parts.join("/"));
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
}

/// A TOTP seed (base32, 160 bits) derived from the world seed and the user, so that demo users keep their
/// authenticator across restarts.
pub(crate) fn derived_totp(seed: u64, upn: &str) -> String {
    let digest = Sha256::digest(format!("totp/{seed}/{}", upn.to_ascii_lowercase()).as_bytes());
    base32(&digest[..20])
}

pub(crate) fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A password derived from the world seed, for users whose file entry gives none.
pub(crate) fn derived_password(seed: u64, upn: &str) -> String {
    let digest = Sha256::digest(format!("password/{seed}/{}", upn.to_ascii_lowercase()).as_bytes());
    format!("Sim-{}!", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9]))
}

fn role_ids(names: &[String], context: &str) -> Result<Vec<String>, WorldError> {
    names
        .iter()
        .map(|r| {
            catalog::role_template(r)
                .map(|t| t.id.to_string())
                .ok_or_else(|| invalid(format!("{context}: unknown directory role '{r}'")))
        })
        .collect()
}

fn full_upn(upn: &str, domain: &str) -> String {
    if upn.contains('@') { upn.to_string() } else { format!("{upn}@{domain}") }
}

impl WorldFile {
    pub fn parse(text: &str) -> Result<WorldFile, WorldError> {
        Ok(toml::from_str(text)?)
    }

    /// Compiles the file into a world, resolving relative times against `now`.
    pub fn compile(&self, now: DateTime<Utc>) -> Result<World, WorldError> {
        let seed = self.seed;
        let mut world = World {
            name: self.name.clone().unwrap_or_else(|| "world".into()),
            settings: match &self.settings {
                Some(s) => {
                    s.validate().map_err(invalid)?;
                    s.clone()
                }
                None => Settings::defaults(),
            },
            faults: self.faults.clone().unwrap_or_default(),
            scenarios: self.scenarios.clone(),
            ..World::default()
        };
        let mut tenant_keys: HashMap<String, Uuid> = HashMap::new();
        for tf in &self.tenants {
            if tenant_keys.contains_key(&tf.key) {
                return Err(invalid(format!("tenant key '{}' appears twice", tf.key)));
            }
            if !tf.domain.to_ascii_lowercase().ends_with(".onmicrosoft.com") {
                return Err(invalid(format!(
                    "tenant '{}': domain must be the initial *.onmicrosoft.com domain",
                    tf.key
                )));
            }
            let id = tf.id.unwrap_or_else(|| stable_id(seed, &["tenant", &tf.key]));
            tenant_keys.insert(tf.key.clone(), id);
            world.tenants.push(self.compile_tenant(tf, id, now)?);
        }
        for af in &self.apps {
            let home = *tenant_keys
                .get(&af.home)
                .ok_or_else(|| invalid(format!("app '{}': no tenant '{}'", af.key, af.home)))?;
            let client_id = af.client_id.unwrap_or_else(|| stable_id(seed, &["app", &af.key]));
            let mut secrets = Vec::new();
            for s in &af.secrets {
                secrets.push(AppSecret {
                    key_id: stable_id(seed, &["secret", &af.key, &s.name]),
                    display_name: s.name.clone(),
                    value: s.value.clone(),
                    start: opt_time(&s.start, now, now - Duration::days(30))
                        .map_err(at(format!("app '{}' secret '{}' start", af.key, s.name)))?,
                    end: parse_time(&s.expires, now)
                        .map_err(at(format!("app '{}' secret '{}' expires", af.key, s.name)))?,
                });
            }
            let mut certificates = Vec::new();
            for c in &af.certificates {
                certificates.push(certificate_from_pem(
                    stable_id(seed, &["cert", &af.key, &c.name]),
                    &c.name,
                    &c.pem,
                    opt_time(&c.start, now, now - Duration::days(30))
                        .map_err(at(format!("app '{}' certificate '{}' start", af.key, c.name)))?,
                    parse_time(&c.expires, now)
                        .map_err(at(format!("app '{}' certificate '{}' expires", af.key, c.name)))?,
                )?);
            }
            let home_tenant = world
                .tenants
                .iter()
                .find(|t| t.id == home)
                .ok_or_else(|| invalid(format!("app '{}': no tenant '{}'", af.key, af.home)))?;
            let mut app_roles = Vec::new();
            for r in &af.app_roles {
                let mut assigned = Vec::new();
                for who in &r.assigned {
                    let id = match who.strip_prefix("group:") {
                        Some(name) => home_tenant.groups.iter().find(|g| g.display_name == name).map(|g| g.id),
                        None => home_tenant.users.iter().find(|u| u.upn.eq_ignore_ascii_case(who)).map(|u| u.id),
                    };
                    assigned.push(id.ok_or_else(|| {
                        invalid(format!(
                            "app '{}' role '{}': no user or group '{who}' in its home tenant",
                            af.key, r.value
                        ))
                    })?);
                }
                app_roles.push(AppRole {
                    id: stable_id(seed, &["app-role", &af.key, &r.value]),
                    value: r.value.clone(),
                    display_name: r.name.clone().unwrap_or_else(|| r.value.clone()),
                    assigned,
                });
            }
            world.apps.push(App {
                app_roles,
                group_claims: af.group_claims,
                client_id,
                object_id: stable_id(seed, &["app-object", &af.key]),
                home_tenant: home,
                display_name: af.name.clone(),
                multi_tenant: af.multi_tenant,
                public_client: af.public_client,
                enabled: true,
                secrets,
                certificates,
                federated_credentials: af
                    .federated_credentials
                    .iter()
                    .map(|f| super::FederatedCredential {
                        name: f.name.clone(),
                        issuer: f.issuer.clone(),
                        subject: f.subject.clone(),
                        audiences: f.audiences.clone(),
                    })
                    .collect(),
                redirect_uris: af.redirect_uris.clone(),
                delegated: af.delegated.clone(),
                application: af.application.clone(),
                created: now - Duration::days(400),
            });
        }
        // Consents refer to apps, so they are resolved once every app exists.
        for (tf, tenant) in self.tenants.iter().zip(world.tenants.iter_mut()) {
            for c in &tf.consents {
                let app = self
                    .apps
                    .iter()
                    .position(|a| a.key == c.app)
                    .and_then(|i| world.apps.get(i))
                    .ok_or_else(|| invalid(format!("tenant '{}': consent for unknown app '{}'", tf.key, c.app)))?;
                let pick = |g: &Option<Grants>, all: &[String]| -> Vec<String> {
                    match g {
                        None => Vec::new(),
                        Some(Grants::Keyword(k)) if k == "all" => all.to_vec(),
                        Some(Grants::Keyword(k)) => k.split_whitespace().map(str::to_string).collect(),
                        Some(Grants::List(l)) => l.clone(),
                    }
                };
                let changed = opt_time(&c.changed, now, now - Duration::days(60))
                    .map_err(at(format!("tenant '{}' consent for '{}' changed", tf.key, c.app)))?;
                tenant.service_principals.push(ServicePrincipal {
                    id: stable_id(seed, &["sp", &tf.key, &c.app]),
                    app_id: app.client_id,
                    display_name: app.display_name.clone(),
                    delegated: pick(&c.delegated, &app.delegated),
                    application: pick(&c.application, &app.application),
                    created: changed,
                    consent_changed: changed,
                });
            }
        }
        world.reindex();
        for g in &self.gdap {
            let partner = *tenant_keys
                .get(&g.partner)
                .ok_or_else(|| invalid(format!("gdap '{}': no tenant '{}'", g.name, g.partner)))?;
            let customer = *tenant_keys
                .get(&g.customer)
                .ok_or_else(|| invalid(format!("gdap '{}': no tenant '{}'", g.name, g.customer)))?;
            let roles = role_ids(&g.roles, &format!("gdap '{}'", g.name))?;
            let created = opt_time(&g.created, now, now - Duration::days(200))
                .map_err(at(format!("gdap '{}' created", g.name)))?;
            let duration_days = g.duration_days.unwrap_or(730);
            if !(1..=730).contains(&duration_days) {
                return Err(invalid(format!("gdap '{}': duration_days must be 1 to 730 (P1D to P2Y)", g.name)));
            }
            let activated = (g.status != GdapStatus::Created && g.status != GdapStatus::ApprovalPending)
                .then_some(created + Duration::hours(1));
            let end = match (&g.end, activated) {
                (Some(e), _) => Some(parse_time(e, now).map_err(at(format!("gdap '{}' end", g.name)))?),
                (None, Some(a)) => Some(a + Duration::days(i64::from(duration_days))),
                (None, None) => None,
            };
            let partner_tenant = world.tenant(partner).ok_or_else(|| invalid("gdap partner vanished"))?;
            let mut assignments = Vec::new();
            for a in &g.assignments {
                let group = partner_tenant
                    .groups
                    .iter()
                    .find(|x| x.display_name.eq_ignore_ascii_case(&a.group))
                    .ok_or_else(|| invalid(format!("gdap '{}': partner has no group '{}'", g.name, a.group)))?;
                let a_roles = if a.roles.is_empty() { roles.clone() } else { role_ids(&a.roles, &g.name)? };
                assignments.push(AccessAssignment {
                    id: stable_id(seed, &["assignment", &g.name, &a.group]),
                    group: group.id,
                    roles: a_roles,
                    created: created + Duration::hours(2),
                });
            }
            let rel_id = format!("{}-{}", stable_id(seed, &["gdap", &g.name]), customer);
            world.gdap.push(GdapRelationship {
                id: rel_id,
                display_name: g.name.clone(),
                partner,
                customer,
                status: g.status,
                roles,
                created,
                activated,
                duration_days,
                end,
                auto_extend: g.auto_extend.clone().unwrap_or_else(|| "PT0S".into()),
                assignments,
                modified: activated.unwrap_or(created),
            });
        }
        for c in &self.contracts {
            let partner =
                *tenant_keys.get(&c.partner).ok_or_else(|| invalid(format!("contract: no tenant '{}'", c.partner)))?;
            let customer = *tenant_keys
                .get(&c.customer)
                .ok_or_else(|| invalid(format!("contract: no tenant '{}'", c.customer)))?;
            world.contracts.push(Contract { id: stable_id(seed, &["contract", &c.customer]), partner, customer });
        }
        world.reindex();
        Ok(world)
    }

    fn compile_tenant(&self, tf: &TenantFile, id: Uuid, now: DateTime<Utc>) -> Result<Tenant, WorldError> {
        let seed = self.seed;
        let created = opt_time(&tf.created, now, now - Duration::days(1200))
            .map_err(at(format!("tenant '{}' created", tf.key)))?;
        let mut licences = Vec::new();
        for l in &tf.licences {
            let sku =
                catalog::sku(&l.sku).ok_or_else(|| invalid(format!("tenant '{}': unknown SKU '{}'", tf.key, l.sku)))?;
            licences.push(Licence { sku, seats: l.seats });
        }
        let mut users = Vec::new();
        for uf in &tf.users {
            let upn = full_upn(&uf.upn, &tf.domain);
            let roles = role_ids(&uf.roles, &format!("user '{upn}'"))?;
            let (given, surname) = uf.name.split_once(' ').unwrap_or((uf.name.as_str(), ""));
            let totp_secret = match (&uf.totp_secret, uf.mfa) {
                (Some(s), _) => Some(s.clone()),
                (None, true) => Some(derived_totp(seed, &upn)),
                (None, false) => None,
            };
            let user_licences = uf
                .licences
                .iter()
                .map(|s| {
                    catalog::sku(s)
                        .map(|s| s.id.to_string())
                        .ok_or_else(|| invalid(format!("user '{upn}': unknown SKU '{s}'")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            users.push(User {
                id: stable_id(seed, &["user", &upn.to_ascii_lowercase()]),
                display_name: uf.name.clone(),
                given_name: given.to_string(),
                surname: surname.to_string(),
                job_title: uf.job_title.clone(),
                department: uf.department.clone(),
                password: uf.password.clone().unwrap_or_else(|| derived_password(seed, &upn)),
                enabled: uf.enabled,
                locked: uf.locked,
                guest: uf.guest,
                password_changed: opt_time(&uf.password_changed, now, now - Duration::days(45))
                    .map_err(at(format!("user '{upn}' password_changed")))?,
                password_expired: uf.password_expired,
                totp_secret,
                per_user_mfa: uf.per_user_mfa,
                roles,
                licences: user_licences,
                created: created + Duration::days(3),
                last_sign_in: match &uf.last_sign_in {
                    Some(t) => Some(parse_time(t, now).map_err(at(format!("user '{upn}' last_sign_in")))?),
                    None => Some(now - Duration::hours(20)),
                },
                sessions_valid_after: created,
                risky: uf.risky,
                upn,
            });
        }
        let default_sku = licences.first().map(|l| l.sku.id.to_string());
        users.extend(filler_users(seed, &tf.key, &tf.domain, tf.extra_users, created, now, default_sku.as_deref()));
        let mut tenant = Tenant {
            id,
            display_name: tf.name.clone(),
            domain: tf.domain.to_ascii_lowercase(),
            custom_domains: tf.custom_domains.clone(),
            kind: tf.kind,
            created,
            country: tf.country.clone().unwrap_or_else(|| "US".into()),
            licences,
            groups: Vec::new(),
            service_principals: Vec::new(),
            ca_policies: Vec::new(),
            named_locations: Vec::new(),
            security_defaults: tf.security_defaults,
            devices: Vec::new(),
            secure_score: tf.secure_score.unwrap_or((42.0, 80.0)),
            user_consent_allowed: tf.user_consent,
            user_index: HashMap::new(),
            upn_index: HashMap::new(),
            users,
        };
        tenant.reindex();
        for gf in &tf.groups {
            let mut members = Vec::new();
            for m in &gf.members {
                let upn = full_upn(m, &tenant.domain);
                let u =
                    tenant.user_by_upn(&upn).ok_or_else(|| invalid(format!("group '{}': no user '{upn}'", gf.name)))?;
                members.push(u.id);
            }
            tenant.groups.push(Group {
                id: stable_id(seed, &["group", &tf.key, &gf.name]),
                display_name: gf.name.clone(),
                description: gf.description.clone(),
                security_enabled: gf.security_enabled,
                mail_enabled: false,
                members,
                created: created + Duration::days(10),
            });
        }
        for uf in &tf.users {
            let upn = full_upn(&uf.upn, &tenant.domain);
            let uid = tenant.user_by_upn(&upn).map(|u| u.id).ok_or_else(|| invalid("user vanished"))?;
            for gname in &uf.groups {
                let g = tenant
                    .groups
                    .iter_mut()
                    .find(|g| g.display_name.eq_ignore_ascii_case(gname))
                    .ok_or_else(|| invalid(format!("user '{upn}': no group '{gname}' in tenant '{}'", tf.key)))?;
                if !g.members.contains(&uid) {
                    g.members.push(uid);
                }
            }
        }
        for nl in &tf.named_locations {
            let ranges = nl
                .ranges
                .iter()
                .map(|r| {
                    super::IpRange::parse(r)
                        .ok_or_else(|| invalid(format!("named location '{}': bad range '{r}'", nl.name)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            tenant.named_locations.push(NamedLocation {
                id: stable_id(seed, &["location", &tf.key, &nl.name]),
                display_name: nl.name.clone(),
                ranges,
                trusted: nl.trusted,
                created: created + Duration::days(20),
            });
        }
        tenant.devices = filler_devices(seed, &tf.key, tf.devices, &tenant.users, now);
        // Policies refer to users and locations, so they are compiled against a world holding this tenant.
        let mut scratch = World { tenants: vec![tenant], ..World::default() };
        scratch.reindex();
        let mut policies = Vec::new();
        for p in &tf.ca_policies {
            let mut compiled = scratch
                .compile_ca_policy(0, p, created + Duration::days(30))
                .map_err(|e| invalid(format!("tenant '{}': policy '{}': {e}", tf.key, p.name)))?;
            compiled.id = stable_id(seed, &["policy", &tf.key, &p.name]);
            policies.push(compiled);
        }
        let mut tenant = scratch.tenants.remove(0);
        tenant.ca_policies = policies;
        Ok(tenant)
    }
}

pub(crate) fn certificate_from_pem(
    key_id: Uuid,
    name: &str,
    pem: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<AppCertificate, WorldError> {
    let der =
        crate::tls::pem_to_der(pem).ok_or_else(|| invalid(format!("certificate '{name}': not a PEM certificate")))?;
    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| invalid(format!("certificate '{name}': not an RSA certificate")))?;
    Ok(AppCertificate {
        key_id,
        display_name: name.to_string(),
        pem: pem.to_string(),
        thumbprint_sha1: crate::tls::sha1(&der),
        thumbprint_sha256: Sha256::digest(&der).to_vec(),
        start,
        end,
    })
}

/// Loads a world from a TOML file.
pub fn load(path: &std::path::Path, now: DateTime<Utc>) -> Result<World, WorldError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| WorldError::Read { path: path.display().to_string(), source })?;
    WorldFile::parse(&text)?.compile(now)
}

/// The built-in demo world: a partner and a dozen customers that show every failure the design names.
pub(crate) const DEMO_WORLD: &str = include_str!("demo.toml");

pub fn demo(now: DateTime<Utc>) -> Result<World, WorldError> {
    WorldFile::parse(DEMO_WORLD)?.compile(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_offsets_and_instants() {
        let now = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z").map(|d| d.with_timezone(&Utc)).unwrap();
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-2d", now).unwrap(), now - Duration::days(2));
        assert_eq!(parse_time("+1d12h", now).unwrap(), now + Duration::hours(36));
        assert!(parse_time("-2", now).is_err());
        assert!(parse_time("-2w", now).is_err());
        assert!(parse_time("yesterday", now).is_err());
        assert_eq!(parse_time("2026-01-01T00:00:00Z", now).unwrap(), now - Duration::days(9));
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn demo_world_compiles_with_every_reference_resolved() {
        let world = demo(Utc::now()).unwrap();
        assert!(world.tenants.iter().any(|t| t.kind == TenantKind::Partner));
        assert!(world.tenants.len() >= 12);
        assert!(!world.gdap.is_empty());
    }
}
