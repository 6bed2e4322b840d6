//! Realistic dataprints for tests and the benchmark.
//!
//! The documents follow docs/dataprint.md: an envelope (schema, tenant, run,
//! status, collectors, summary) and collections keyed by object id with
//! sorted keys. Content is deterministic for a given tenant and size, so two
//! calls describe an unchanged tenant and their collections are
//! byte-identical, as the inspection engine's would be.
//!
//! As the inspection engine does, every field that changes between runs of
//! an unchanged tenant is in the top-level `run` member only: the run id,
//! times, and per collector its fetch mode, requests, duration and
//! `collected_at`. [`RunInfo`] describes one run; its `seed` jitters the
//! durations and times the way real runs differ, so that the benchmark's
//! unchanged runs each carry a fresh `run` member.

#![allow(dead_code)]

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};

/// A stable GUID-looking id derived from a name.
pub fn guid(name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// Builds an object with its keys sorted, as the dataprint format requires.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A collection: objects keyed by their `id`.
fn collection(objects: impl Iterator<Item = Value>) -> Value {
    let mut map = Map::new();
    for object in objects {
        let id = object.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        map.insert(id, sorted(object));
    }
    sorted(Value::Object(map))
}

/// The collections of a customer tenant with `users` users.
pub fn collections(tenant: &str, users: usize) -> Value {
    let domain = format!("{tenant}.onmicrosoft.com");
    let sku_e3 = guid("sku-e3");
    let user_ids: Vec<String> = (0..users).map(|i| guid(&format!("{tenant}/user/{i}"))).collect();
    let users_c = collection(user_ids.iter().enumerate().map(|(i, id)| {
        json!({
            "id": id,
            "displayName": format!("User {i} of {tenant}"),
            "userPrincipalName": format!("user{i}@{domain}"),
            "accountEnabled": i % 17 != 0,
            "userType": if i % 23 == 0 { "Guest" } else { "Member" },
            "assignedLicenses": if i % 5 == 0 { json!([]) } else { json!([{"disabledPlans": [], "skuId": sku_e3}]) },
            "createdDateTime": format!("2024-{:02}-{:02}T08:{:02}:00Z", 1 + i % 12, 1 + i % 28, i % 60),
            "onPremisesSyncEnabled": if i % 3 == 0 { Value::Bool(true) } else { Value::Null },
            "signInActivity": {"lastSignInDateTime": format!("2026-11-{:02}T10:00:00Z", 1 + i % 27)},
        })
    }));
    let registration = collection(user_ids.iter().enumerate().map(|(i, id)| {
        json!({
            "id": id,
            "userPrincipalName": format!("user{i}@{domain}"),
            "isMfaRegistered": i % 4 != 0,
            "isMfaCapable": i % 4 != 0,
            "isAdmin": i < 5,
            "methodsRegistered": if i % 4 == 0 { json!([]) } else { json!(["microsoftAuthenticatorPush", "softwareOneTimePasscode"]) },
        })
    }));
    let groups = collection((0..users.div_ceil(10)).map(|i| {
        json!({
            "id": guid(&format!("{tenant}/group/{i}")),
            "displayName": format!("Group {i}"),
            "securityEnabled": i % 2 == 0,
            "mailEnabled": i % 2 == 1,
            "groupTypes": if i % 3 == 0 { json!(["Unified"]) } else { json!([]) },
        })
    }));
    let devices = collection((0..users / 2).map(|i| {
        json!({
            "id": guid(&format!("{tenant}/device/{i}")),
            "displayName": format!("LAPTOP-{i:05}"),
            "operatingSystem": if i % 3 == 0 { "Windows" } else { "iOS" },
            "operatingSystemVersion": "10.0.22631.4460",
            "isCompliant": i % 7 != 0,
            "isManaged": true,
            "approximateLastSignInDateTime": "2026-11-20T09:00:00Z",
        })
    }));
    let sign_ins = collection((0..users.min(1000)).map(|i| {
        json!({
            "id": guid(&format!("{tenant}/signin/{i}")),
            "createdDateTime": format!("2026-11-2{}T{:02}:{:02}:00Z", i % 7, i % 24, i % 60),
            "userPrincipalName": format!("user{}@{domain}", i % users.max(1)),
            "appDisplayName": "Office 365 Exchange Online",
            "ipAddress": format!("203.0.113.{}", i % 250),
            "status": {"errorCode": if i % 11 == 0 { 50126 } else { 0 }},
            "conditionalAccessStatus": "success",
        })
    }));
    let roles = collection((0..6).map(|r| {
        json!({
            "id": guid(&format!("{tenant}/role/{r}")),
            "displayName": format!("Role {r}"),
            "roleTemplateId": if r == 0 { "62e90394-69f5-4237-9190-012177145e10".to_owned() } else { guid(&format!("template/{r}")) },
            "members": user_ids.iter().take(2 + r).map(|id| json!({"@odata.type": "#microsoft.graph.user", "id": id})).collect::<Vec<_>>(),
        })
    }));
    let policies = collection((0..8).map(|p| {
        let state = ["enabled", "disabled", "enabledForReportingButNotEnforced"][p % 3];
        json!({
            "id": guid(&format!("{tenant}/ca/{p}")),
            "displayName": format!("CA{p:02} - Require MFA"),
            "state": state,
            "conditions": {"users": {"includeUsers": ["All"], "excludeUsers": []}, "applications": {"includeApplications": ["All"]}},
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        })
    }));
    let service_principals = collection((0..(20 + users / 20)).map(|s| {
        json!({
            "id": guid(&format!("{tenant}/sp/{s}")),
            "appId": guid(&format!("app/{s}")),
            "displayName": format!("Enterprise app {s}"),
            "servicePrincipalType": "Application",
            "accountEnabled": true,
        })
    }));
    let skus = collection(
        [("ENTERPRISEPACK", sku_e3.clone()), ("EMS", guid("sku-ems")), ("POWER_BI_STANDARD", guid("sku-pbi"))]
            .into_iter()
            .map(|(part, id)| {
                json!({
                    "id": id,
                    "skuPartNumber": part,
                    "consumedUnits": users * 4 / 5,
                    "prepaidUnits": {"enabled": users, "suspended": 0, "warning": 0},
                    "servicePlans": [{"servicePlanName": "EXCHANGE_S_ENTERPRISE", "provisioningStatus": "Success"}],
                })
            }),
    );
    let domains = collection([domain.clone(), format!("{tenant}.example")].into_iter().map(
        |d| json!({"id": d, "isDefault": d.ends_with(".example"), "isVerified": true, "authenticationType": "Managed"}),
    ));
    let organization = collection(std::iter::once(json!({
        "id": guid(tenant),
        "displayName": format!("{tenant} Ltd"),
        "countryLetterCode": "GB",
        "verifiedDomains": [{"name": domain, "isInitial": true}],
    })));
    let security_defaults = collection(std::iter::once(json!({
        "id": "00000000-0000-0000-0000-000000000005",
        "isEnabled": false,
        "displayName": "Security Defaults",
    })));
    let secure_scores = collection(std::iter::once(json!({
        "id": format!("{}_2026-11-27", guid(tenant)),
        "currentScore": 41.5,
        "maxScore": 80.0,
        "createdDateTime": "2026-11-27T00:00:00Z",
    })));
    json!({
        "conditionalAccessPolicies": policies,
        "devices": devices,
        "directoryRoles": roles,
        "domains": domains,
        "groups": groups,
        "organization": organization,
        "secureScores": secure_scores,
        "securityDefaults": security_defaults,
        "servicePrincipals": service_principals,
        "signIns": sign_ins,
        "subscribedSkus": skus,
        "userRegistrationDetails": registration,
        "users": users_c,
    })
}

/// A complete dataprint of a customer tenant for a run.
pub fn dataprint(tenant: &str, run_id: &str, users: usize) -> Value {
    dataprint_with(tenant, run_id, collections(tenant, users))
}

/// A dataprint around given collections, with a fixed `run` member for the
/// run id: two calls with the same arguments give the same document.
pub fn dataprint_with(tenant: &str, run_id: &str, collections: Value) -> Value {
    dataprint_in_run(tenant, &RunInfo::fixed(run_id), collections)
}

/// One run of the inspection engine, for the `run` member.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run id.
    pub id: String,
    /// When the tenant's inspection started.
    pub started_at: DateTime<Utc>,
    /// 0 for the base figures; any other value jitters durations and times,
    /// and marks a later run that reads delta-capable collections by delta.
    pub seed: u64,
}

impl RunInfo {
    /// The deterministic run the contract tests use.
    pub fn fixed(run_id: &str) -> RunInfo {
        let started_at = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").expect("timestamp").with_timezone(&Utc);
        RunInfo { id: run_id.to_owned(), started_at, seed: 0 }
    }
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser), for reproducible
/// jitter without a random number generator.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Collections the engine reads by delta query after the first run.
const DELTA_CAPABLE: &[&str] = &["users", "groups", "devices"];

/// The `run` member: the run's id and times, and per collector of the
/// collections its fetch mode, requests, duration and `collected_at`, with
/// collectors running one after the other.
pub fn run_member(tenant: &str, run: &RunInfo, collections: &Value) -> Value {
    let ms = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut clock = run.started_at + TimeDelta::milliseconds(120);
    let mut collectors = Map::new();
    if let Some(map) = collections.as_object() {
        for (name, value) in map {
            let items = value.as_object().map_or(0, |m| m.len()) as i64;
            let delta = run.seed != 0 && DELTA_CAPABLE.contains(&name.as_str());
            let base = if delta { 35 + items / 40 } else { 40 + items / 10 };
            // Graph latency varies by about ±20 % from run to run.
            let noise = mix(run.seed ^ name_hash(tenant) ^ name_hash(name).rotate_left(17));
            let duration = if run.seed == 0 { base } else { base * (80 + (noise % 41) as i64) / 100 };
            let requests = if delta { 1 } else { 1 + items / 999 };
            clock += TimeDelta::milliseconds(duration);
            collectors.insert(
                name.clone(),
                json!({"collected_at": ms(clock), "duration_ms": duration, "mode": if delta { "delta" } else { "full" }, "requests": requests}),
            );
            // A few milliseconds pass between one collector and the next.
            clock += TimeDelta::milliseconds(if run.seed == 0 { 3 } else { (noise >> 20) as i64 % 9 });
        }
    }
    json!({
        "id": run.id,
        "started_at": ms(run.started_at),
        "finished_at": ms(clock + TimeDelta::milliseconds(15)),
        "auth": "gdap",
        "collectors": collectors,
    })
}

/// A dataprint of a tenant in a given run: the stable envelope and
/// collections, and the run's own `run` member.
pub fn dataprint_in_run(tenant: &str, run: &RunInfo, collections: Value) -> Value {
    let mut collectors = Map::new();
    if let Some(map) = collections.as_object() {
        for (name, value) in map {
            let items = value.as_object().map_or(0, |m| m.len());
            collectors.insert(name.clone(), json!({"status": "ok", "items": items}));
        }
    }
    collectors.insert(
        "managedDevices".into(),
        json!({"status": "skipped", "reason": {"kind": "license", "detail": "Intune is required"}}),
    );
    json!({
        "schema": "tenantscope.dataprint/1",
        "tenant": {"id": guid(tenant), "display_name": format!("{tenant} Ltd"), "domain": format!("{tenant}.onmicrosoft.com"), "role": "customer"},
        "run": run_member(tenant, run, &collections),
        "status": "ok",
        "collectors": collectors,
        "summary": {"users": 0, "mfa_registered_pct": 75.0, "security_defaults": false, "secure_score": {"current": 41.5, "max": 80, "pct": 51.9}},
        "collections": collections,
    })
}

/// The collector outcomes the engine commits with a dataprint: status and
/// items from `collectors`, requests and duration from `run.collectors`.
pub fn outcomes(run_id: &str, tenant_id: &str, doc: &Value) -> Vec<store::CollectorOutcomeRecord> {
    let Some(collectors) = doc["collectors"].as_object() else {
        return Vec::new();
    };
    collectors
        .iter()
        .map(|(name, c)| {
            let figures = &doc["run"]["collectors"][name];
            store::CollectorOutcomeRecord {
                run_id: run_id.into(),
                tenant_id: tenant_id.into(),
                collector: name.clone(),
                status: if c["status"] == "ok" { store::OutcomeStatus::Ok } else { store::OutcomeStatus::Skipped },
                items: c["items"].as_i64(),
                reason: c.get("reason").cloned(),
                error: None,
                diagnosis: None,
                requests: figures["requests"].as_i64().unwrap_or(0),
                duration_ms: figures["duration_ms"].as_i64().unwrap_or(0),
            }
        })
        .collect()
}
