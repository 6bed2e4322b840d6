//! Benchmark of change detection and metric evaluation.
//!
//! Run with `cargo bench -p history`. It builds realistic dataprints in
//! memory (no files, no randomness from the OS: a fixed-seed generator) and
//! prints:
//!
//! - the median time to diff a 2,000-user customer dataprint against a copy
//!   with a few dozen changes and a day's sign-in churn (target: 50 ms);
//! - the time to evaluate every built-in metric over 1,000 tenant dataprints
//!   of 50 to 2,000 users (target: 1 s), single-threaded.
//!
//! Each tenant of the second part is generated, evaluated and dropped in
//! turn, so that only the evaluation is timed and memory stays small.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use history::{builtin_metrics, diff, evaluate};
use serde_json::{Map, Value, json};

/// A small deterministic generator (xorshift64*), so every run measures the
/// same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
const ROLES: &[(&str, &str)] = &[
    (GA, "Global Administrator"),
    ("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator"),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    ("729827e3-9c14-49f7-bb1b-9608f156bbb8", "Helpdesk Administrator"),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
];
const SCOPES: &[&str] = &[
    "User.Read",
    "Mail.Read",
    "Files.ReadWrite.All",
    "Calendars.Read",
    "offline_access",
    "openid",
    "Directory.Read.All",
];
const APP_ROLES: &[&str] =
    &["User.Read.All", "Mail.Send", "Sites.Read.All", "Files.Read.All", "Directory.Read.All", "AuditLog.Read.All"];

fn uid(tenant: u64, kind: u64, n: u64) -> String {
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", tenant as u32, kind, n % 0xfff, n / 0xfff, n)
}

fn date(rng: &mut Rng, max_days_ago: u64) -> String {
    let days = rng.below(max_days_ago);
    let t = DateTime::<Utc>::from_timestamp(1_795_867_200 - (days * 86_400 + rng.below(86_400)) as i64, 0)
        .unwrap_or_default();
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn keyed(items: Vec<Value>) -> Value {
    let mut map = Map::new();
    for item in items {
        let id = item["id"].as_str().unwrap_or_default().to_owned();
        map.insert(id, item);
    }
    Value::Object(map)
}

fn ca_policy(t: u64, n: u64, name: &str, state: &str) -> Value {
    json!({
        "id": uid(t, 0x5, n),
        "displayName": name,
        "createdDateTime": "2025-03-01T10:00:00Z",
        "modifiedDateTime": "2025-06-01T10:00:00Z",
        "state": state,
        "templateId": null,
        "sessionControls": null,
        "conditions": {
            "clientAppTypes": ["all"],
            "signInRiskLevels": [],
            "userRiskLevels": [],
            "platforms": null,
            "locations": {"includeLocations": ["All"], "excludeLocations": [uid(t, 0x6, 1)]},
            "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": []},
            "users": {
                "includeUsers": ["All"],
                "excludeUsers": [uid(t, 0x1, 0)],
                "includeGroups": [],
                "excludeGroups": [uid(t, 0x2, 0)],
                "includeRoles": [],
                "excludeRoles": []
            }
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"], "customAuthenticationFactors": [], "termsOfUse": []}
    })
}

/// A customer dataprint of `users` users.
fn dataprint(t: u64, users: u64) -> Value {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let tenant_id = uid(t, 0, 0);
    let mut user_list = Vec::new();
    let mut registrations = Vec::new();
    for n in 0..users {
        let id = uid(t, 0x1, n);
        let guest = rng.chance(5);
        let enabled = !rng.chance(6);
        let licensed = !guest && rng.chance(85);
        let name = format!("User {n}");
        let upn = format!("user{n}@tenant{t}.example.com");
        user_list.push(json!({
            "id": id,
            "displayName": name,
            "userPrincipalName": upn,
            "accountEnabled": enabled,
            "userType": if guest { "Guest" } else { "Member" },
            "assignedLicenses": if licensed { json!([{"disabledPlans": [], "skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965"}]) } else { json!([]) },
            "createdDateTime": date(&mut rng, 1500),
            "onPremisesSyncEnabled": null,
            "signInActivity": {
                "lastSignInDateTime": date(&mut rng, 200),
                "lastNonInteractiveSignInDateTime": date(&mut rng, 30)
            }
        }));
        let mfa = rng.chance(75);
        registrations.push(json!({
            "id": id,
            "userPrincipalName": upn,
            "userDisplayName": name,
            "userType": if guest { "guest" } else { "member" },
            "isAdmin": n < 10,
            "isMfaRegistered": mfa,
            "isMfaCapable": mfa,
            "isPasswordlessCapable": false,
            "isSsprRegistered": mfa,
            "methodsRegistered": if mfa { json!(["microsoftAuthenticatorPush", "softwareOneTimePasscode"]) } else { json!([]) },
            "lastUpdatedDateTime": "2026-11-28T03:00:00Z"
        }));
    }
    let member = |n: u64| json!({"@odata.type": "#microsoft.graph.user", "id": uid(t, 0x1, n), "displayName": format!("User {n}"), "userPrincipalName": format!("user{n}@tenant{t}.example.com")});
    let holders: [&[u64]; 5] = [&[0, 1, 2], &[3, 4], &[5, 6], &[7, 8, 9], &[]];
    let mut directory_roles = Vec::new();
    let mut assignments = Vec::new();
    for (i, ((role, name), members)) in ROLES.iter().zip(holders).enumerate() {
        let members: Vec<u64> = members.iter().copied().filter(|m| *m < users).collect();
        directory_roles.push(json!({
            "id": uid(t, 0x3, i as u64),
            "displayName": name,
            "roleTemplateId": role,
            "members": members.iter().map(|m| member(*m)).collect::<Vec<_>>()
        }));
        for m in members {
            assignments.push(json!({
                "id": format!("ra-{t}-{i}-{m}"),
                "roleDefinitionId": role,
                "principalId": uid(t, 0x1, m),
                "directoryScopeId": "/",
                "principal": member(m)
            }));
        }
    }
    assignments.push(json!({
        "id": format!("ra-{t}-gdap"),
        "roleDefinitionId": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
        "principalId": "44444444-dddd-4ddd-8ddd-000000000001",
        "directoryScopeId": "/",
        "principal": {"@odata.type": "#microsoft.graph.group", "id": "44444444-dddd-4ddd-8ddd-000000000001", "displayName": "M365 GDAP Global Reader"}
    }));
    let definitions: Vec<Value> = ROLES
        .iter()
        .map(
            |(id, name)| json!({"id": id, "displayName": name, "isBuiltIn": true, "isEnabled": true, "templateId": id}),
        )
        .collect();
    let policies: Vec<Value> = (0..8)
        .map(|n| {
            let state = match n % 3 {
                0 => "enabled",
                1 => "enabledForReportingButNotEnforced",
                _ => "disabled",
            };
            ca_policy(t, n, &format!("Policy {n}"), state)
        })
        .collect();
    let groups: Vec<Value> = (0..users / 10 + 1)
        .map(|n| json!({"id": uid(t, 0x2, n), "displayName": format!("Group {n}"), "securityEnabled": true, "mailEnabled": false, "groupTypes": []}))
        .collect();
    let sps: Vec<Value> = (0..150)
        .map(|n| json!({"id": uid(t, 0x7, n), "appId": uid(0, 0x7, n), "displayName": format!("App {n}"), "servicePrincipalType": "Application", "accountEnabled": true}))
        .collect();
    let app_roles: Vec<Value> = (0..40)
        .map(|n| {
            json!({
                "id": format!("aras-{t}-{n}"),
                "appRoleId": uid(0, 0x9, n % 6),
                "appRoleValue": APP_ROLES[(n % 6) as usize],
                "principalId": uid(t, 0x7, 10 + n / 3),
                "principalDisplayName": format!("App {}", 10 + n / 3),
                "principalType": "ServicePrincipal",
                "resourceId": uid(t, 0x7, 0),
                "resourceDisplayName": "Microsoft Graph",
                "createdDateTime": "2025-04-01T10:00:00Z"
            })
        })
        .collect();
    let grants: Vec<Value> = (0..30)
        .map(|n| {
            let scope: Vec<&str> = (0..3).map(|k| SCOPES[((n + k) % 7) as usize]).collect();
            json!({
                "id": format!("grant-{t}-{n}"),
                "clientId": uid(t, 0x7, 60 + n),
                "consentType": if n % 4 == 0 { "AllPrincipals" } else { "Principal" },
                "principalId": if n % 4 == 0 { Value::Null } else { Value::from(uid(t, 0x1, n)) },
                "resourceId": uid(t, 0x7, 0),
                "scope": scope.join(" ")
            })
        })
        .collect();
    let applications: Vec<Value> = (0..20)
        .map(|n| json!({
            "id": uid(t, 0x8, n),
            "appId": uid(t, 0xa, n),
            "displayName": format!("Registration {n}"),
            "passwordCredentials": [{"keyId": uid(t, 0xb, n), "displayName": "secret", "endDateTime": format!("2027-0{}-01T00:00:00Z", 1 + n % 9)}],
            "keyCredentials": []
        }))
        .collect();
    let skus: Vec<Value> = [("SPE_E3", 0.9), ("EXCHANGESTANDARD", 0.1), ("FLOW_FREE", 0.0), ("POWER_BI_STANDARD", 0.0)]
        .iter()
        .enumerate()
        .map(|(i, (part, share))| {
            let enabled = if *share > 0.0 { (users as f64 * share) as u64 + 5 } else { 10_000 };
            json!({
                "id": format!("{tenant_id}_{i}"),
                "skuId": uid(0, 0xc, i as u64),
                "skuPartNumber": part,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": if *share > 0.0 { enabled - 5 } else { 3 },
                "prepaidUnits": {"enabled": enabled, "lockedOut": 0, "suspended": 0, "warning": 0},
                "servicePlans": []
            })
        })
        .collect();
    json!({
        "schema": "tenantscope.dataprint/1",
        "tenant": {"id": tenant_id, "display_name": format!("Tenant {t}"), "domain": format!("tenant{t}.onmicrosoft.com"), "role": "customer"},
        "run": {"id": format!("run-{t}"), "started_at": "2026-11-28T12:00:00Z", "finished_at": "2026-11-28T12:00:09Z", "auth": "gdap"},
        "status": "ok",
        "collectors": {},
        "summary": {},
        "collections": {
            "organization": keyed(vec![json!({"id": tenant_id, "displayName": format!("Tenant {t}")})]),
            "domains": keyed(vec![
                json!({"id": format!("tenant{t}.onmicrosoft.com"), "authenticationType": "Managed", "isDefault": false, "isInitial": true, "isVerified": true}),
                json!({"id": format!("tenant{t}.example.com"), "authenticationType": "Managed", "isDefault": true, "isInitial": false, "isVerified": true})
            ]),
            "subscribedSkus": keyed(skus),
            "users": keyed(user_list),
            "groups": keyed(groups),
            "userRegistrationDetails": keyed(registrations),
            "directoryRoles": keyed(directory_roles),
            "roleDefinitions": keyed(definitions),
            "roleAssignments": keyed(assignments),
            "conditionalAccessPolicies": keyed(policies),
            "namedLocations": keyed(vec![json!({"id": uid(t, 0x6, 1), "displayName": "Office", "isTrusted": true, "ipRanges": [{"cidrAddress": "203.0.113.0/24"}]})]),
            "securityDefaults": keyed(vec![json!({"id": "00000000-0000-0000-0000-000000000000", "displayName": "Security Defaults", "isEnabled": false})]),
            "authorizationPolicy": keyed(vec![json!({"id": "authorizationPolicy", "allowInvitesFrom": "adminsAndGuestInviters", "defaultUserRolePermissions": {"allowedToCreateApps": false}})]),
            "secureScores": keyed(vec![json!({"id": format!("{tenant_id}_2026-11-28"), "createdDateTime": "2026-11-28T00:00:00Z", "currentScore": 40 + t % 30, "maxScore": 80})]),
            "servicePrincipals": keyed(sps),
            "appRoleAssignments": keyed(app_roles),
            "oauth2PermissionGrants": keyed(grants),
            "applications": keyed(applications)
        }
    })
}

/// Rebuilds a value with sorted keys at every level, as dataprints are
/// written.
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sort_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// A dataprint as a caller holds it after loading it from the store: keys
/// sorted, written to JSON text and parsed back, so that its memory is laid
/// out as parsing lays it out.
fn as_loaded(value: Value) -> Value {
    let text = serde_json::to_string(&sort_keys(value)).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// A day later: a few dozen real changes and the daily sign-in churn.
fn modified(before: &Value) -> Value {
    let mut after = before.clone();
    let mut rng = Rng(42);
    let c = &mut after["collections"];
    // Every user's sign-in time moves: volatile, must cost little.
    if let Some(users) = c["users"].as_object_mut() {
        for user in users.values_mut() {
            user["signInActivity"]["lastNonInteractiveSignInDateTime"] = json!(date(&mut rng, 1));
        }
        for n in 0..10 {
            let id = uid(0, 0x1, 100_000 + n);
            users.insert(id.clone(), json!({"id": id, "displayName": format!("New {n}"), "userPrincipalName": format!("new{n}@tenant0.example.com"), "accountEnabled": true, "userType": "Member", "assignedLicenses": [], "createdDateTime": "2026-11-28T08:00:00Z"}));
        }
        for n in 1000..1005 {
            users.remove(&uid(0, 0x1, n));
        }
        for n in 1100..1105 {
            users[&uid(0, 0x1, n)]["accountEnabled"] = json!(false);
        }
        for n in 1200..1203 {
            users[&uid(0, 0x1, n)]["displayName"] = json!(format!("Renamed {n}"));
        }
    }
    if let Some(regs) = c["userRegistrationDetails"].as_object_mut() {
        for r in regs.values_mut() {
            r["lastUpdatedDateTime"] = json!("2026-11-29T03:00:00Z");
        }
        for n in [0u64, 1] {
            regs[&uid(0, 0x1, n)]["isMfaRegistered"] = json!(false);
        }
    }
    if let Some(members) = c["directoryRoles"][uid(0, 0x3, 0)]["members"].as_array_mut() {
        members
            .push(json!({"@odata.type": "#microsoft.graph.user", "id": uid(0, 0x1, 1500), "displayName": "User 1500"}));
    }
    c["roleAssignments"]["ra-new-ga"] =
        json!({"id": "ra-new-ga", "roleDefinitionId": GA, "principalId": uid(0, 0x1, 1500), "directoryScopeId": "/"});
    c["conditionalAccessPolicies"][uid(0, 0x5, 0)]["conditions"]["users"]["excludeUsers"] =
        json!([uid(0, 0x1, 0), uid(0, 0x1, 7)]);
    c["conditionalAccessPolicies"][uid(0, 0x5, 3)]["state"] = json!("disabled");
    c["securityDefaults"]["00000000-0000-0000-0000-000000000000"]["isEnabled"] = json!(true);
    c["subscribedSkus"]["00000000-0000-4000-8000-000000000000_0"]["consumedUnits"] = json!(1790);
    c["oauth2PermissionGrants"]["grant-new"] = json!({"id": "grant-new", "clientId": uid(0, 0x7, 140), "consentType": "AllPrincipals", "resourceId": uid(0, 0x7, 0), "scope": "Mail.ReadWrite"});
    c["appRoleAssignments"]["aras-new"] = json!({"id": "aras-new", "appRoleValue": "full_access_as_app", "principalId": uid(0, 0x7, 149), "resourceId": uid(0, 0x7, 1)});
    after["run"]["started_at"] = json!("2026-11-29T12:00:00Z");
    after
}

/// Time this thread has spent on a CPU, from Linux's scheduler statistics.
/// The machine is shared with other builds, so wall-clock figures include
/// time spent waiting for a core; this one does not. `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    // Part 1: diff of a 2,000-user tenant.
    let before = dataprint(0, 2000);
    let after = as_loaded(modified(&before));
    let before = as_loaded(before);
    let events = diff(&before, &after).unwrap_or_default();
    let runs = 21;
    let samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(diff(black_box(&before), black_box(&after)).ok());
            start.elapsed()
        })
        .collect();
    let diff_median = median(samples);
    let cpu_samples: Vec<Duration> = (0..runs)
        .filter_map(|_| {
            let start = thread_cpu()?;
            black_box(diff(black_box(&before), black_box(&after)).ok());
            Some(thread_cpu()? - start)
        })
        .collect();
    let cpu = if cpu_samples.is_empty() {
        "n/a".to_owned()
    } else {
        format!("{:.2} ms", median(cpu_samples).as_secs_f64() * 1e3)
    };
    println!(
        "diff: 2,000 users, {} events, median of {runs} runs: {:.2} ms wall, {cpu} CPU (target 50 ms)",
        events.len(),
        diff_median.as_secs_f64() * 1e3
    );

    // Part 2: every built-in metric over 1,000 tenants, built in batches of
    // 50 (about 150 MB each) and loaded as from the store. Three figures:
    // - cold, one thread: each batch evaluated after all 50 tenants are
    //   built, so most dataprints are no longer in the CPU cache;
    // - cold, two threads: the same with the batch split over both cores;
    // - warm, one thread: each tenant evaluated right after it was read
    //   once, as after loading and parsing it from the store.
    // Each is the median of three passes per batch, summed over batches.
    let metrics = builtin_metrics();
    let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap_or_default();
    let mut sizes = Rng(7);
    let mut total_users = 0u64;
    let (mut cold, mut cold_cpu, mut dual, mut warm) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut errors = 0usize;
    for batch in 0..20u64 {
        let tenants: Vec<Value> = (0..50u64)
            .map(|i| {
                let users = 50 + sizes.below(1951);
                total_users += users;
                as_loaded(dataprint(batch * 50 + i + 1, users))
            })
            .collect();
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        for _ in 0..3 {
            let cpu_start = thread_cpu();
            let start = Instant::now();
            for dp in &tenants {
                let values = black_box(evaluate(&metrics, black_box(dp), now));
                errors += values.iter().filter(|v| v.error.is_some()).count();
            }
            walls.push(start.elapsed());
            if let (Some(a), Some(b)) = (cpu_start, thread_cpu()) {
                cpus.push(b - a);
            }
        }
        cold += median(walls);
        if !cpus.is_empty() {
            cold_cpu += median(cpus);
        }
        let walls: Vec<Duration> = (0..3)
            .map(|_| {
                let start = Instant::now();
                let (left, right) = tenants.split_at(tenants.len() / 2);
                std::thread::scope(|scope| {
                    for half in [left, right] {
                        let metrics = &metrics;
                        scope.spawn(move || {
                            for dp in half {
                                black_box(evaluate(metrics, black_box(dp), now));
                            }
                        });
                    }
                });
                start.elapsed()
            })
            .collect();
        dual += median(walls);
        let walls: Vec<Duration> = (0..3)
            .map(|_| {
                let mut took = Duration::ZERO;
                for dp in &tenants {
                    // Bring the dataprint into the cache, as parsing it would.
                    black_box(serde_json::to_vec(dp).map(|v| v.len()).unwrap_or_default());
                    let start = Instant::now();
                    black_box(evaluate(&metrics, black_box(dp), now));
                    took += start.elapsed();
                }
                took
            })
            .collect();
        warm += median(walls);
    }
    println!(
        "metrics: {} built-ins over 1,000 tenants ({total_users} users), target 1 s: \
         cold one thread {:.3} s wall ({:.3} s CPU), cold two threads {:.3} s wall, warm one thread {:.3} s wall; {} errors",
        metrics.len(),
        cold.as_secs_f64(),
        cold_cpu.as_secs_f64(),
        dual.as_secs_f64(),
        warm.as_secs_f64(),
        errors / 3
    );
}
