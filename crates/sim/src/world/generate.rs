//! Deterministic world generation from a spec such as `customers=1000,users=50..2000,seed=7`.
//!
//! A generated world has one partner tenant and many customers with realistic users, licences,
//! policies and GDAP relationships; a configurable share of customers is broken in one of the ways MSPs
//! meet in the field, so that inspections at scale exercise diagnosis too.

use chrono::{DateTime, Duration, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::file::{derived_password, derived_totp, stable_id};
use super::{
    AccessAssignment, App, AppSecret, CaPolicy, Contract, Device, GdapRelationship, GdapStatus, GrantControl, Group,
    IpRange, Licence, NamedLocation, PerUserMfa, PolicyState, PolicyUsers, ServicePrincipal, Settings, Tenant,
    TenantKind, User, World,
};
use crate::catalog::{self, GLOBAL_ADMINISTRATOR, GLOBAL_READER, REPORTS_READER, SECURITY_READER};
use crate::world::file::WorldError;

const GIVEN: &[&str] = &[
    "Adele", "Alex", "Allan", "Ana", "Ben", "Bianca", "Carlos", "Chen", "Chloe", "Dana", "Diego", "Elena", "Emil",
    "Fatima", "Finn", "Grace", "Hana", "Henrik", "Ines", "Isaac", "Jamal", "Joni", "Kai", "Keiko", "Lars", "Lea",
    "Lidia", "Lynne", "Malik", "Maria", "Megan", "Miriam", "Nestor", "Nora", "Omar", "Patti", "Pradeep", "Quinn",
    "Raj", "Rosa", "Sami", "Sofia", "Tariq", "Tess", "Uma", "Viktor", "Wen", "Yara", "Zoe", "Zygmunt",
];
const SURNAMES: &[&str] = &[
    "Vance",
    "Wilber",
    "Deyoung",
    "Garcia",
    "Morales",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Rahman",
    "Sato",
    "Tanaka",
    "Ulrich",
    "Varga",
    "Wagner",
    "Xu",
    "Yilmaz",
    "Zhou",
    "Andersen",
    "Brennan",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Gupta",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Olsen",
    "Patel",
    "Rossi",
    "Schmidt",
    "Silva",
    "Torres",
    "Weber",
    "Young",
];
const TITLES: &[&str] = &[
    "Accountant",
    "Sales Manager",
    "Engineer",
    "Office Manager",
    "Designer",
    "Analyst",
    "Director",
    "Consultant",
    "Technician",
    "Marketing Lead",
    "HR Specialist",
    "Support Agent",
    "Developer",
    "Buyer",
    "Controller",
];
const DEPARTMENTS: &[&str] =
    &["Finance", "Sales", "Engineering", "Operations", "Marketing", "HR", "Support", "IT", "Legal", "Purchasing"];
const COMPANY_A: &[&str] = &[
    "Alder",
    "Bright",
    "Cedar",
    "Delta",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Maple",
    "Nimbus",
    "Onyx",
    "Pioneer",
    "Quartz",
    "Riverside",
    "Summit",
    "Timber",
    "Umber",
    "Vertex",
    "Willow",
    "Zenith",
];
const COMPANY_B: &[&str] = &[
    "Dental",
    "Logistics",
    "Builders",
    "Legal",
    "Bakery",
    "Clinic",
    "Partners",
    "Motors",
    "Design",
    "Foods",
    "Insurance",
    "Realty",
    "Labs",
    "Outfitters",
    "Accounting",
    "Studios",
    "Marine",
    "Energy",
    "Farms",
    "Travel",
];
const DEVICE_OS: &[(&str, &str)] = &[
    ("Windows", "10.0.22631.4460"),
    ("Windows", "10.0.26100.2314"),
    ("MacMDM", "15.1"),
    ("iOS", "18.1"),
    ("Android", "15"),
];

/// Users that pad out a tenant: a deterministic mix of names, titles and MFA registration.
pub(crate) fn filler_users(
    seed: u64,
    tenant_key: &str,
    domain: &str,
    count: usize,
    tenant_created: DateTime<Utc>,
    now: DateTime<Utc>,
    licence: Option<&str>,
) -> Vec<User> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fxhash(tenant_key));
    let mut users = Vec::with_capacity(count);
    let age_days = (now - tenant_created).num_days().max(2);
    for i in 0..count {
        let given = GIVEN[rng.random_range(0..GIVEN.len())];
        let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let upn = format!("{}.{}{}@{}", given.to_ascii_lowercase(), surname.to_ascii_lowercase(), i, domain);
        let mfa = rng.random_bool(0.7);
        let enabled = rng.random_bool(0.95);
        let created = tenant_created + Duration::days(rng.random_range(1..age_days));
        let last_sign_in = if rng.random_bool(0.9) {
            Some(now - Duration::hours(rng.random_range(1..24 * 60)))
        } else {
            Some(now - Duration::days(rng.random_range(91..400)))
        };
        let id = Uuid::from_u128(rng.random::<u128>() & !(0xF000u128 << 64) | (0x4000u128 << 64));
        users.push(User {
            id,
            display_name: format!("{given} {surname}"),
            given_name: given.to_string(),
            surname: surname.to_string(),
            job_title: Some(TITLES[rng.random_range(0..TITLES.len())].to_string()),
            department: Some(DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_string()),
            password: derived_password(seed, &upn),
            enabled,
            locked: false,
            guest: rng.random_bool(0.03),
            password_changed: now - Duration::days(rng.random_range(1..300)),
            password_expired: false,
            totp_secret: mfa.then(|| derived_totp(seed, &upn)),
            per_user_mfa: PerUserMfa::Disabled,
            roles: Vec::new(),
            licences: match licence {
                Some(l) if rng.random_bool(0.85) => vec![l.to_string()],
                _ => Vec::new(),
            },
            created,
            last_sign_in,
            sessions_valid_after: tenant_created,
            risky: false,
            upn,
        });
    }
    users
}

pub(crate) fn filler_devices(
    seed: u64,
    tenant_key: &str,
    count: usize,
    users: &[User],
    now: DateTime<Utc>,
) -> Vec<Device> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fxhash(tenant_key) ^ 0xD3_71CE);
    (0..count)
        .map(|i| {
            let (os, ver) = DEVICE_OS[rng.random_range(0..DEVICE_OS.len())];
            let owner = (!users.is_empty()).then(|| users[rng.random_range(0..users.len())].id);
            Device {
                id: Uuid::from_u128(rng.random::<u128>() & !(0xF000u128 << 64) | (0x4000u128 << 64)),
                device_id: Uuid::from_u128(rng.random::<u128>() & !(0xF000u128 << 64) | (0x4000u128 << 64)),
                display_name: format!("{}-{:04}", if os == "Windows" { "DESKTOP" } else { os }, i),
                os: os.to_string(),
                os_version: ver.to_string(),
                trust_type: if os == "Windows" { "AzureAd".into() } else { "Workplace".into() },
                compliant: rng.random_bool(0.8),
                managed: rng.random_bool(0.7),
                owner,
                last_sign_in: now - Duration::hours(rng.random_range(1..24 * 30)),
                registered: now - Duration::days(rng.random_range(30..700)),
            }
        })
        .collect()
}

/// A small, stable string hash (FNV-1a), so that generation does not depend on the std hasher's seed.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A generator spec: `customers=N,users=MIN..MAX,seed=S[,broken=FRACTION][,devices=N]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub customers: usize,
    pub users_min: usize,
    pub users_max: usize,
    pub seed: u64,
    pub broken: f64,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, WorldError> {
        let mut spec = Spec { customers: 10, users_min: 20, users_max: 200, seed: 1, broken: 0.1 };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| WorldError::Spec(format!("'{part}' is not key=value")))?;
            let num = |v: &str| {
                v.trim().parse::<usize>().map_err(|_| WorldError::Spec(format!("'{v}' is not a number in '{part}'")))
            };
            match k.trim() {
                "customers" => spec.customers = num(v)?,
                "users" => match v.split_once("..") {
                    Some((a, b)) => {
                        spec.users_min = num(a)?;
                        spec.users_max = num(b)?;
                    }
                    None => {
                        spec.users_min = num(v)?;
                        spec.users_max = spec.users_min;
                    }
                },
                "seed" => spec.seed = v.trim().parse().map_err(|_| WorldError::Spec(format!("bad seed '{v}'")))?,
                "broken" => {
                    spec.broken = v.trim().parse().map_err(|_| WorldError::Spec(format!("bad fraction '{v}'")))?;
                    if !(0.0..=1.0).contains(&spec.broken) {
                        return Err(WorldError::Spec("broken must be between 0 and 1".into()));
                    }
                }
                other => {
                    return Err(WorldError::Spec(format!("unknown key '{other}' (customers, users, seed, broken)")));
                }
            }
        }
        if spec.users_min > spec.users_max || spec.users_max == 0 {
            return Err(WorldError::Spec("users range must be MIN..MAX with 0 < MAX and MIN <= MAX".into()));
        }
        if spec.customers > 100_000 {
            return Err(WorldError::Spec("at most 100000 customers".into()));
        }
        // A world is held in memory; this bound keeps the largest one within a few GiB.
        if spec.customers.saturating_mul(spec.users_max) > MAX_GENERATED_USERS {
            return Err(WorldError::Spec(format!(
                "at most {MAX_GENERATED_USERS} users in total (customers times the largest user count)"
            )));
        }
        Ok(spec)
    }
}

/// The most users a generated world may hold.
pub(crate) const MAX_GENERATED_USERS: usize = 20_000_000;

/// The ways a generated customer can be broken, in the order they are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    None,
    NoGdap,
    ExpiredGdap,
    MissingRole,
    NoConsent,
    MissingPermission,
    ConditionalAccessBlock,
    NoPremium,
}

const BREAKAGES: &[Breakage] = &[
    Breakage::NoConsent,
    Breakage::MissingRole,
    Breakage::NoPremium,
    Breakage::ExpiredGdap,
    Breakage::MissingPermission,
    Breakage::ConditionalAccessBlock,
    Breakage::NoGdap,
];

/// The delegated scopes of the generated MSP app: what tenantscope's catalog needs.
pub(crate) const APP_SCOPES: &[&str] = &[
    "User.Read",
    "User.Read.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "Organization.Read.All",
    "Domain.Read.All",
    "LicenseAssignment.Read.All",
    "RoleManagement.Read.Directory",
    "Policy.Read.All",
    "AuditLog.Read.All",
    "SecurityEvents.Read.All",
    "Application.Read.All",
    "Device.Read.All",
    "DeviceManagementManagedDevices.Read.All",
    "DelegatedAdminRelationship.Read.All",
    "offline_access",
];

pub const GENERATED_APP_ID: &str = "0b6f2c4d-7a1e-4c59-9f3e-5d1a2b3c4d5e";

pub fn generate(spec: &Spec, now: DateTime<Utc>) -> World {
    let seed = spec.seed;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let partner_id = stable_id(seed, &["tenant", "partner"]);
    let app_id = Uuid::parse_str(GENERATED_APP_ID).unwrap_or_else(|_| stable_id(seed, &["app"]));
    let partner_created = now - Duration::days(2000);
    let mut partner = Tenant {
        id: partner_id,
        display_name: "Generated MSP".into(),
        domain: "generatedmsp.onmicrosoft.com".into(),
        custom_domains: vec![],
        kind: TenantKind::Partner,
        created: partner_created,
        country: "US".into(),
        licences: catalog::sku("SPB").map(|s| vec![Licence { sku: s, seats: 50 }]).unwrap_or_default(),
        users: Vec::new(),
        groups: Vec::new(),
        service_principals: Vec::new(),
        ca_policies: Vec::new(),
        named_locations: Vec::new(),
        security_defaults: true,
        devices: Vec::new(),
        secure_score: (61.0, 80.0),
        user_consent_allowed: false,
        user_index: Default::default(),
        upn_index: Default::default(),
    };
    let admin_upn = "admin@generatedmsp.onmicrosoft.com".to_string();
    let admin_id = stable_id(seed, &["user", &admin_upn]);
    partner.users.push(User {
        id: admin_id,
        upn: admin_upn.clone(),
        display_name: "MSP Admin".into(),
        given_name: "MSP".into(),
        surname: "Admin".into(),
        job_title: Some("Engineer".into()),
        department: Some("Operations".into()),
        password: derived_password(seed, &admin_upn),
        enabled: true,
        locked: false,
        guest: false,
        password_changed: now - Duration::days(20),
        password_expired: false,
        totp_secret: Some(derived_totp(seed, &admin_upn)),
        per_user_mfa: PerUserMfa::Enforced,
        roles: vec![GLOBAL_READER.to_string()],
        licences: vec![],
        created: partner_created,
        last_sign_in: Some(now - Duration::hours(1)),
        sessions_valid_after: partner_created,
        risky: false,
    });
    partner.users.extend(filler_users(seed, "partner", &partner.domain, 10, partner_created, now, None));
    let gdap_group = stable_id(seed, &["group", "partner", "GDAP Readers"]);
    partner.groups.push(Group {
        id: stable_id(seed, &["group", "partner", "AdminAgents"]),
        display_name: "AdminAgents".into(),
        description: Some("Partner Center admin agents".into()),
        security_enabled: true,
        mail_enabled: false,
        members: vec![admin_id],
        created: partner_created,
    });
    partner.groups.push(Group {
        id: gdap_group,
        display_name: "GDAP Readers".into(),
        description: Some("Read-only access to customers through GDAP".into()),
        security_enabled: true,
        mail_enabled: false,
        members: vec![admin_id],
        created: partner_created,
    });
    let scopes: Vec<String> = APP_SCOPES.iter().map(|s| s.to_string()).collect();
    partner.service_principals.push(ServicePrincipal {
        id: stable_id(seed, &["sp", "partner"]),
        app_id,
        display_name: "tenantscope".into(),
        delegated: scopes.clone(),
        application: vec![],
        created: partner_created,
        consent_changed: partner_created,
    });
    let app = App {
        app_roles: Vec::new(),
        group_claims: false,
        client_id: app_id,
        object_id: stable_id(seed, &["app-object"]),
        home_tenant: partner_id,
        display_name: "tenantscope".into(),
        multi_tenant: true,
        public_client: true,
        enabled: true,
        secrets: vec![AppSecret {
            key_id: stable_id(seed, &["secret"]),
            display_name: "generated".into(),
            value: format!("gen-secret-{seed}"),
            start: now - Duration::days(10),
            end: now + Duration::days(365),
        }],
        certificates: vec![],
        federated_credentials: vec![],
        redirect_uris: vec!["http://localhost".into()],
        delegated: scopes.clone(),
        application: vec![],
        created: partner_created,
    };

    let mut tenants = vec![partner];
    let mut gdap = Vec::new();
    let mut contracts = Vec::new();
    let broken_every = if spec.broken > 0.0 { (1.0 / spec.broken).round().max(1.0) as usize } else { usize::MAX };
    let mut breakage_cursor = 0usize;
    for i in 0..spec.customers {
        let breakage = if broken_every != usize::MAX && i % broken_every == broken_every - 1 {
            breakage_cursor += 1;
            BREAKAGES[(breakage_cursor - 1) % BREAKAGES.len()]
        } else {
            Breakage::None
        };
        let key = format!("c{i:05}");
        let name = format!(
            "{} {}",
            COMPANY_A[rng.random_range(0..COMPANY_A.len())],
            COMPANY_B[rng.random_range(0..COMPANY_B.len())]
        );
        let domain = format!("{}{}.onmicrosoft.com", name.to_ascii_lowercase().replace(' ', ""), i);
        let id = stable_id(seed, &["tenant", &key]);
        let created = now - Duration::days(rng.random_range(200..3000));
        // MSP customer bases are mostly small businesses with a few large ones: sizes follow a power law
        // over the range (for 50..2000 the mean is about 300), not a uniform spread.
        let skew: f64 = rng.random::<f64>().powf(6.8);
        let user_count = spec.users_min + ((spec.users_max - spec.users_min) as f64 * skew).round() as usize;
        let premium = breakage != Breakage::NoPremium && rng.random_bool(0.6);
        let sku = catalog::sku(if premium { "SPB" } else { "O365_BUSINESS_PREMIUM" }).unwrap_or(&catalog::SKUS[0]);
        let mut users = filler_users(seed, &key, &domain, user_count, created, now, Some(sku.id));
        // A handful of admins, so that role and MFA figures are meaningful.
        for (n, u) in users.iter_mut().take(3).enumerate() {
            u.roles.push(if n == 0 {
                GLOBAL_ADMINISTRATOR.to_string()
            } else {
                catalog::USER_ADMINISTRATOR.to_string()
            });
        }
        let mut groups = Vec::new();
        for g in ["All Staff", "Finance", "Sales"] {
            let members: Vec<Uuid> = users.iter().step_by(if g == "All Staff" { 1 } else { 7 }).map(|u| u.id).collect();
            groups.push(Group {
                id: stable_id(seed, &["group", &key, g]),
                display_name: g.into(),
                description: None,
                security_enabled: true,
                mail_enabled: g == "All Staff",
                members,
                created,
            });
        }
        let mut named_locations = Vec::new();
        let mut ca_policies = Vec::new();
        if premium {
            let office = stable_id(seed, &["location", &key]);
            named_locations.push(NamedLocation {
                id: office,
                display_name: "Head office".into(),
                ranges: IpRange::parse("198.51.100.0/24").into_iter().collect(),
                trusted: true,
                created,
            });
            ca_policies.push(CaPolicy {
                id: stable_id(seed, &["policy", &key, "mfa"]),
                display_name: "Require MFA for administrators".into(),
                state: PolicyState::Enabled,
                users: PolicyUsers::Roles(vec![GLOBAL_ADMINISTRATOR.to_string()]),
                exclude_users: vec![],
                exclude_service_providers: true,
                grant: GrantControl::Mfa,
                outside_locations: None,
                sign_in_frequency_hours: None,
                created,
                modified: created,
            });
            if breakage == Breakage::ConditionalAccessBlock {
                ca_policies.push(CaPolicy {
                    id: stable_id(seed, &["policy", &key, "block"]),
                    display_name: "Block access outside head office".into(),
                    state: PolicyState::Enabled,
                    users: PolicyUsers::All,
                    exclude_users: vec![],
                    exclude_service_providers: false,
                    grant: GrantControl::Block,
                    outside_locations: Some(vec![office]),
                    sign_in_frequency_hours: None,
                    created,
                    modified: created,
                });
            }
        }
        let devices = filler_devices(seed, &key, user_count / 2, &users, now);
        let mut service_principals = Vec::new();
        if breakage != Breakage::NoConsent {
            let delegated = if breakage == Breakage::MissingPermission {
                scopes.iter().filter(|s| *s != "Policy.Read.All").cloned().collect()
            } else {
                scopes.clone()
            };
            service_principals.push(ServicePrincipal {
                id: stable_id(seed, &["sp", &key]),
                app_id,
                display_name: "tenantscope".into(),
                delegated,
                application: vec![],
                created,
                consent_changed: created,
            });
        }
        let mut tenant = Tenant {
            id,
            display_name: name,
            domain,
            custom_domains: vec![],
            kind: TenantKind::Customer,
            created,
            country: "US".into(),
            licences: vec![Licence { sku, seats: (user_count as u32) + 5 }],
            users,
            groups,
            service_principals,
            ca_policies,
            named_locations,
            security_defaults: !premium,
            devices,
            secure_score: (rng.random_range(20..70) as f64, 80.0),
            user_consent_allowed: false,
            user_index: Default::default(),
            upn_index: Default::default(),
        };
        tenant.users.shrink_to_fit();
        tenants.push(tenant);
        if breakage == Breakage::NoGdap {
            contracts.push(Contract { id: stable_id(seed, &["contract", &key]), partner: partner_id, customer: id });
            continue;
        }
        let roles: Vec<String> = if breakage == Breakage::MissingRole {
            vec![catalog::DIRECTORY_READERS.to_string()]
        } else {
            vec![GLOBAL_READER.to_string(), SECURITY_READER.to_string(), REPORTS_READER.to_string()]
        };
        let rel_created = now - Duration::days(rng.random_range(30..600));
        let end = if breakage == Breakage::ExpiredGdap {
            now - Duration::days(3)
        } else {
            now + Duration::days(rng.random_range(20..700))
        };
        gdap.push(GdapRelationship {
            id: format!("{}-{}", stable_id(seed, &["gdap", &key]), id),
            display_name: format!("tenantscope read {key}"),
            partner: partner_id,
            customer: id,
            status: GdapStatus::Active,
            roles: roles.clone(),
            created: rel_created,
            activated: Some(rel_created + Duration::hours(2)),
            duration_days: 730,
            end: Some(end),
            auto_extend: if rng.random_bool(0.7) { "P180D".into() } else { "PT0S".into() },
            assignments: vec![AccessAssignment {
                id: stable_id(seed, &["assignment", &key]),
                group: gdap_group,
                roles,
                created: rel_created,
            }],
            modified: rel_created,
        });
    }
    let mut world = World {
        name: format!("generated customers={} seed={}", spec.customers, seed),
        tenants,
        apps: vec![app],
        gdap,
        contracts,
        scenarios: vec![],
        settings: Settings::defaults(),
        faults: Default::default(),
        tenant_index: Default::default(),
        domain_index: Default::default(),
    };
    world.reindex();
    world
}

/// What each generated customer was made to show, for tests that check diagnosis at scale.
pub fn breakage_of(spec: &Spec, index: usize) -> Breakage {
    let broken_every =
        if spec.broken > 0.0 { (1.0 / spec.broken).round().max(1.0) as usize } else { return Breakage::None };
    if index % broken_every != broken_every - 1 {
        return Breakage::None;
    }
    BREAKAGES[(index / broken_every) % BREAKAGES.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_rejects_nonsense() {
        let s = Spec::parse("customers=1000,users=50..2000,seed=7").unwrap();
        assert_eq!((s.customers, s.users_min, s.users_max, s.seed), (1000, 50, 2000, 7));
        assert!(Spec::parse("customers=ten").is_err());
        assert!(Spec::parse("users=5..1").is_err());
        assert!(Spec::parse("colour=blue").is_err());
        assert!(Spec::parse("broken=2").is_err());
    }

    #[test]
    fn generation_is_deterministic() {
        let now = Utc::now();
        let spec = Spec::parse("customers=5,users=3..9,seed=11").unwrap();
        let a = generate(&spec, now);
        let b = generate(&spec, now);
        let ids = |w: &World| w.tenants.iter().flat_map(|t| t.users.iter().map(|u| u.upn.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.tenants.len(), 6);
        for (i, t) in a.tenants.iter().skip(1).enumerate() {
            assert!((3..=9).contains(&t.users.len()), "customer {i} has {} users", t.users.len());
        }
    }

    #[test]
    fn a_share_of_customers_is_broken_in_each_way() {
        let spec = Spec::parse("customers=70,users=1..2,seed=3,broken=0.2").unwrap();
        let kinds: Vec<Breakage> = (0..70).map(|i| breakage_of(&spec, i)).collect();
        for b in BREAKAGES {
            assert!(kinds.contains(b), "{b:?} never generated");
        }
        let broken = kinds.iter().filter(|k| **k != Breakage::None).count();
        assert_eq!(broken, 14);
        let world = generate(&spec, Utc::now());
        // Customers without GDAP are still discoverable through a contract.
        assert!(!world.contracts.is_empty());
    }
}
