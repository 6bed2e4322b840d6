//! The world: every tenant, user, app, relationship and policy the simulated cloud knows.
//!
//! The world is plain data. It is loaded from a file (`file.rs`), generated from a spec (`generate.rs`)
//! or taken from the built-in demo, and changed at run time through actions (`actions.rs`).

pub(crate) mod actions;
pub mod file;
pub mod generate;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantKind {
    Partner,
    Customer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PerUserMfa {
    #[default]
    Disabled,
    Enabled,
    Enforced,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub upn: String,
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub password: String,
    pub enabled: bool,
    pub locked: bool,
    pub guest: bool,
    pub password_changed: DateTime<Utc>,
    pub password_expired: bool,
    /// The base32 TOTP seed when the user has registered an authenticator app.
    pub totp_secret: Option<String>,
    pub per_user_mfa: PerUserMfa,
    /// Directory role template ids held in the home tenant.
    pub roles: Vec<String>,
    pub licences: Vec<String>,
    pub created: DateTime<Utc>,
    pub last_sign_in: Option<DateTime<Utc>>,
    /// Refresh tokens and sessions that began before this instant are revoked.
    pub sessions_valid_after: DateTime<Utc>,
    /// The partner user's home tenant flags its account as risky, which blocks delegated admin access.
    pub risky: bool,
}

impl User {
    pub(crate) fn mfa_registered(&self) -> bool {
        self.totp_secret.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: Uuid,
    pub display_name: String,
    pub description: Option<String>,
    pub security_enabled: bool,
    pub mail_enabled: bool,
    /// Direct members: user ids and nested group ids.
    pub members: Vec<Uuid>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AppSecret {
    pub key_id: Uuid,
    pub display_name: String,
    pub value: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AppCertificate {
    pub key_id: Uuid,
    pub display_name: String,
    /// The certificate in PEM, whose public key verifies client assertions.
    pub pem: String,
    pub thumbprint_sha1: Vec<u8>,
    pub thumbprint_sha256: Vec<u8>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A federated identity credential of an app: tokens of an external identity provider (GitHub Actions,
/// Kubernetes, another cloud) whose issuer, subject and audience match it are accepted as the app's client
/// assertion. `{sim}` in the issuer stands for the simulator's base URL, whose port is only known at run
/// time (the simulator hosts test issuers under `{sim}/_idp/{name}`).
#[derive(Debug, Clone)]
pub struct FederatedCredential {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub client_id: Uuid,
    pub object_id: Uuid,
    pub home_tenant: Uuid,
    pub display_name: String,
    pub multi_tenant: bool,
    pub public_client: bool,
    pub enabled: bool,
    pub secrets: Vec<AppSecret>,
    pub certificates: Vec<AppCertificate>,
    pub federated_credentials: Vec<FederatedCredential>,
    pub redirect_uris: Vec<String>,
    pub delegated: Vec<String>,
    pub application: Vec<String>,
    pub created: DateTime<Utc>,
    /// App roles of the registration, with the users and groups of its home tenant assigned to each
    /// (Entra puts the values of a signed-in user's roles in the `roles` claim of its tokens).
    pub app_roles: Vec<AppRole>,
    /// `groupMembershipClaims: SecurityGroup`: ID tokens carry the ids of the user's security groups.
    pub group_claims: bool,
}

/// An app role and who is assigned it.
#[derive(Debug, Clone)]
pub struct AppRole {
    pub id: Uuid,
    pub value: String,
    pub display_name: String,
    /// Users and groups of the app's home tenant; a group's direct members hold the role (Entra does
    /// not pass app role assignments on to nested groups).
    pub assigned: Vec<Uuid>,
}

/// An enterprise app in a tenant, with what the tenant consented to.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub id: Uuid,
    pub app_id: Uuid,
    pub display_name: String,
    /// Delegated scopes consented for all principals (admin consent).
    pub delegated: Vec<String>,
    /// Application permissions granted (app-role assignments on Microsoft Graph).
    pub application: Vec<String>,
    pub created: DateTime<Utc>,
    /// When consent last changed: tokens minted before it carry the old grants.
    pub consent_changed: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyState {
    Enabled,
    Disabled,
    EnabledForReportingButNotEnforced,
}

impl PolicyState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PolicyState::Enabled => "enabled",
            PolicyState::Disabled => "disabled",
            PolicyState::EnabledForReportingButNotEnforced => "enabledForReportingButNotEnforced",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyUsers {
    All,
    Roles(Vec<String>),
    Users(Vec<Uuid>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantControl {
    Mfa,
    Block,
    /// No grant control: a policy of session controls only, such as a sign-in frequency.
    None,
}

#[derive(Debug, Clone)]
pub struct CaPolicy {
    pub id: Uuid,
    pub display_name: String,
    pub state: PolicyState,
    pub users: PolicyUsers,
    pub exclude_users: Vec<Uuid>,
    /// Excludes "service provider users", the foreign principals of partners (GDAP).
    pub exclude_service_providers: bool,
    pub grant: GrantControl,
    /// When set, the policy applies only to sign-ins from outside these named locations.
    pub outside_locations: Option<Vec<Uuid>>,
    pub sign_in_frequency_hours: Option<u32>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NamedLocation {
    pub id: Uuid,
    pub display_name: String,
    pub ranges: Vec<IpRange>,
    pub trusted: bool,
    pub created: DateTime<Utc>,
}

/// An IPv4 or IPv6 range in CIDR notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRange {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpRange {
    pub(crate) fn parse(text: &str) -> Option<IpRange> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = text.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpRange { addr, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: Uuid,
    pub device_id: Uuid,
    pub display_name: String,
    pub os: String,
    pub os_version: String,
    pub trust_type: String,
    pub compliant: bool,
    pub managed: bool,
    pub owner: Option<Uuid>,
    pub last_sign_in: DateTime<Utc>,
    pub registered: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Licence {
    pub sku: &'static catalog::Sku,
    pub seats: u32,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: Uuid,
    pub display_name: String,
    /// The initial `*.onmicrosoft.com` domain.
    pub domain: String,
    pub custom_domains: Vec<String>,
    pub kind: TenantKind,
    pub created: DateTime<Utc>,
    pub country: String,
    pub licences: Vec<Licence>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub service_principals: Vec<ServicePrincipal>,
    pub ca_policies: Vec<CaPolicy>,
    pub named_locations: Vec<NamedLocation>,
    pub security_defaults: bool,
    pub devices: Vec<Device>,
    pub secure_score: (f64, f64),
    /// Whether users may consent to apps themselves (the authorization policy).
    pub user_consent_allowed: bool,
    pub(crate) user_index: HashMap<Uuid, usize>,
    pub(crate) upn_index: HashMap<String, usize>,
}

impl Tenant {
    pub(crate) fn reindex(&mut self) {
        self.user_index = self.users.iter().enumerate().map(|(i, u)| (u.id, i)).collect();
        self.upn_index = self.users.iter().enumerate().map(|(i, u)| (u.upn.to_ascii_lowercase(), i)).collect();
    }

    pub(crate) fn user(&self, id: Uuid) -> Option<&User> {
        self.user_index.get(&id).and_then(|i| self.users.get(*i))
    }

    pub(crate) fn user_mut(&mut self, id: Uuid) -> Option<&mut User> {
        let i = *self.user_index.get(&id)?;
        self.users.get_mut(i)
    }

    pub(crate) fn user_by_upn(&self, upn: &str) -> Option<&User> {
        self.upn_index.get(&upn.to_ascii_lowercase()).and_then(|i| self.users.get(*i))
    }

    pub(crate) fn has_plan(&self, plan: &catalog::ServicePlan) -> bool {
        self.licences.iter().any(|l| l.sku.plans.iter().any(|p| p.id == plan.id))
    }

    pub fn has_p1(&self) -> bool {
        self.has_plan(&catalog::PLAN_AAD_PREMIUM)
    }

    pub(crate) fn has_intune(&self) -> bool {
        self.has_plan(&catalog::PLAN_INTUNE_A)
    }

    pub(crate) fn domains(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.domain.as_str()).chain(self.custom_domains.iter().map(String::as_str))
    }

    pub(crate) fn group(&self, id: Uuid) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// Every group that contains `member`, directly or through nested groups.
    pub(crate) fn transitive_groups(&self, member: Uuid) -> Vec<Uuid> {
        let mut found: Vec<Uuid> = Vec::new();
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut frontier = vec![member];
        while let Some(m) = frontier.pop() {
            for g in &self.groups {
                if g.members.contains(&m) && seen.insert(g.id) {
                    found.push(g.id);
                    frontier.push(g.id);
                }
            }
        }
        found
    }

    /// Every user in a group, directly or through nested groups.
    pub(crate) fn transitive_members(&self, group: Uuid) -> Vec<Uuid> {
        let mut users = Vec::new();
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut frontier = vec![group];
        while let Some(g) = frontier.pop() {
            let Some(g) = self.group(g) else { continue };
            for m in &g.members {
                if !seen.insert(*m) {
                    continue;
                }
                if self.user_index.contains_key(m) {
                    users.push(*m);
                } else {
                    frontier.push(*m);
                }
            }
        }
        users
    }

    pub fn service_principal(&self, app_id: Uuid) -> Option<&ServicePrincipal> {
        self.service_principals.iter().find(|sp| sp.app_id == app_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GdapStatus {
    Created,
    ApprovalPending,
    Active,
    Expired,
    Terminated,
}

impl GdapStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GdapStatus::Created => "created",
            GdapStatus::ApprovalPending => "approvalPending",
            GdapStatus::Active => "active",
            GdapStatus::Expired => "expired",
            GdapStatus::Terminated => "terminated",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessAssignment {
    pub id: Uuid,
    /// A security group of the partner tenant.
    pub group: Uuid,
    pub roles: Vec<String>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct GdapRelationship {
    pub id: String,
    pub display_name: String,
    pub partner: Uuid,
    pub customer: Uuid,
    pub status: GdapStatus,
    pub roles: Vec<String>,
    pub created: DateTime<Utc>,
    pub activated: Option<DateTime<Utc>>,
    pub duration_days: u32,
    pub end: Option<DateTime<Utc>>,
    pub auto_extend: String,
    pub assignments: Vec<AccessAssignment>,
    pub modified: DateTime<Utc>,
}

impl GdapRelationship {
    /// The status as Graph reports it at `now`: an active relationship past its end has expired.
    pub(crate) fn status_at(&self, now: DateTime<Utc>) -> GdapStatus {
        match (self.status, self.end) {
            (GdapStatus::Active, Some(end)) if end <= now => GdapStatus::Expired,
            (s, _) => s,
        }
    }
}

/// A customer the partner has a legacy reseller or DAP contract with (Graph `contracts`).
#[derive(Debug, Clone)]
pub struct Contract {
    pub id: Uuid,
    pub partner: Uuid,
    pub customer: Uuid,
}

/// Settings of the simulated platform. A world file may give any subset; the others keep Microsoft's
/// defaults (not zero, which would make every refresh token expire at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Seconds between device-code polls that the simulator asks for.
    pub device_code_interval: u64,
    pub device_code_lifetime: u64,
    /// Access-token lifetime range in minutes (Microsoft issues 60 to 90).
    pub token_lifetime_min: u32,
    pub token_lifetime_max: u32,
    /// Refresh tokens expire after this many days without use.
    pub refresh_inactivity_days: i64,
    /// Minutes after which the active signing key is rotated; 0 disables rotation.
    pub key_rotation_minutes: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::defaults()
    }
}

impl Settings {
    /// Checks that every setting is within the range the simulator can honour, with a message naming the key.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let check =
            |ok: bool, key: &str, range: &str| if ok { Ok(()) } else { Err(format!("settings.{key} must be {range}")) };
        check((1..=600).contains(&self.device_code_interval), "device_code_interval", "1 to 600 seconds")?;
        check((60..=86_400).contains(&self.device_code_lifetime), "device_code_lifetime", "60 to 86400 seconds")?;
        check((1..=1440).contains(&self.token_lifetime_min), "token_lifetime_min", "1 to 1440 minutes")?;
        check(
            (self.token_lifetime_min..=1440).contains(&self.token_lifetime_max),
            "token_lifetime_max",
            "token_lifetime_min to 1440 minutes",
        )?;
        check((1..=3650).contains(&self.refresh_inactivity_days), "refresh_inactivity_days", "1 to 3650 days")?;
        check(self.key_rotation_minutes <= 525_600, "key_rotation_minutes", "0 to 525600 minutes")
    }

    pub(crate) fn defaults() -> Settings {
        Settings {
            device_code_interval: 5,
            device_code_lifetime: 900,
            token_lifetime_min: 60,
            token_lifetime_max: 90,
            refresh_inactivity_days: 90,
            key_rotation_minutes: 0,
        }
    }
}

/// A named list of actions the control API can apply in one call (for example "after-sign-in").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub actions: Vec<actions::Action>,
}

#[derive(Debug, Clone, Default)]
pub struct World {
    pub name: String,
    pub tenants: Vec<Tenant>,
    pub apps: Vec<App>,
    pub gdap: Vec<GdapRelationship>,
    pub contracts: Vec<Contract>,
    pub scenarios: Vec<Scenario>,
    pub settings: Settings,
    pub faults: crate::faults::FaultConfig,
    pub(crate) tenant_index: HashMap<Uuid, usize>,
    pub(crate) domain_index: HashMap<String, usize>,
}

impl World {
    pub(crate) fn reindex(&mut self) {
        for t in &mut self.tenants {
            t.reindex();
        }
        self.tenant_index = self.tenants.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        self.domain_index = self
            .tenants
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.domains().map(move |d| (d.to_ascii_lowercase(), i)).collect::<Vec<_>>())
            .collect();
    }

    pub fn tenant(&self, id: Uuid) -> Option<&Tenant> {
        self.tenant_index.get(&id).and_then(|i| self.tenants.get(*i))
    }

    pub(crate) fn tenant_mut(&mut self, id: Uuid) -> Option<&mut Tenant> {
        let i = *self.tenant_index.get(&id)?;
        self.tenants.get_mut(i)
    }

    /// Resolves a tenant segment of a URL: a GUID or a verified domain.
    pub fn resolve_tenant(&self, key: &str) -> Option<&Tenant> {
        if let Ok(id) = Uuid::parse_str(key) {
            return self.tenant(id);
        }
        self.domain_index.get(&key.to_ascii_lowercase()).and_then(|i| self.tenants.get(*i))
    }

    /// Finds a user anywhere by UPN, with the tenant that is its home.
    pub fn user_by_upn(&self, upn: &str) -> Option<(&Tenant, &User)> {
        let domain = upn.rsplit_once('@')?.1;
        let tenant = self.resolve_tenant(domain)?;
        tenant.user_by_upn(upn).map(|u| (tenant, u))
    }

    pub(crate) fn home_of_user(&self, user: Uuid) -> Option<(&Tenant, &User)> {
        self.tenants.iter().find_map(|t| t.user(user).map(|u| (t, u)))
    }

    pub(crate) fn app(&self, client_id: Uuid) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// The GDAP roles that `user` of `partner` holds in `customer` at `now`: the union of the roles of
    /// every access assignment of an active relationship whose group contains the user.
    pub fn gdap_roles(&self, partner: &Tenant, user: Uuid, customer: Uuid, now: DateTime<Utc>) -> Vec<String> {
        let groups = partner.transitive_groups(user);
        let mut roles: Vec<String> = Vec::new();
        for rel in self.gdap.iter().filter(|r| r.partner == partner.id && r.customer == customer) {
            if rel.status_at(now) != GdapStatus::Active {
                continue;
            }
            for a in &rel.assignments {
                if groups.contains(&a.group) {
                    for role in &a.roles {
                        if rel.roles.contains(role) && !roles.contains(role) {
                            roles.push(role.clone());
                        }
                    }
                }
            }
        }
        roles
    }
}
