//! Helpers shared by both backends: timestamps, JSON columns, record
//! identities for encryption, and the liveness of the process that owns a
//! running run.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Datelike, SubsecRound, TimeDelta, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::RecordId;
use crate::error::{Result, StoreError};
use crate::{
    AppCredential, AppCredentialMeta, CacheRecord, CacheRecordMeta, CollectorOutcomeRecord, Severity, TenantRunRecord,
};

/// Timestamps are kept to the microsecond, the precision of PostgreSQL's
/// `timestamptz`, so both backends return the same values.
pub(crate) fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Checks that a timestamp is one both backends store faithfully (years 1
/// to 9999, the range of RFC 3339 text and of PostgreSQL's comparisons).
pub(crate) fn check_ts(at: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if !(1..=9999).contains(&at.year()) {
        return Err(StoreError::InvalidInput(format!("timestamp {at} is outside the years 1 to 9999")));
    }
    Ok(micros(at))
}

/// The form SQLite stores: microseconds since the Unix epoch, 8 bytes where
/// text took 27, and ordered like time.
pub(crate) fn ts_micros(at: DateTime<Utc>) -> Result<i64> {
    Ok(check_ts(at)?.timestamp_micros())
}

/// Reads a timestamp stored by [`ts_micros`].
pub(crate) fn ts_from_micros(value: i64, what: &str) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(value)
        .filter(|at| (1..=9999).contains(&at.year()))
        .ok_or_else(|| StoreError::corrupt(format!("{what}: invalid timestamp {value}")))
}

/// JSON columns are text holding the serialized value, so key order is kept
/// exactly (PostgreSQL's `jsonb` would reorder keys).
pub(crate) fn json_text(value: &Value) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

pub(crate) fn opt_json_text(value: Option<&Value>) -> Result<Option<String>> {
    value.map(json_text).transpose()
}

pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|err| StoreError::corrupt(format!("{what}: invalid JSON: {err}")))
}

pub(crate) fn parse_opt_json(text: Option<String>, what: &str) -> Result<Option<Value>> {
    text.map(|t| parse_json(&t, what)).transpose()
}

/// Parses a stored enum value, reporting an unknown one as corruption.
pub(crate) fn parse_enum<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse().map_err(|_| StoreError::corrupt(format!("{what}: unknown value {text:?}")))
}

/// Converts a caller's count to the `i64` SQL wants, saturating.
pub(crate) fn sql_limit(limit: Option<u32>) -> i64 {
    limit.map_or(i64::MAX, i64::from)
}

pub(crate) fn non_empty(value: &str, what: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(())
}

/// The identity a token cache secret is bound to.
pub(crate) fn cache_record_id(key: &str, tenant_id: &str, kind: &str, client_id: &str) -> RecordId {
    RecordId::new("token_cache", &[key, tenant_id, kind, client_id], format!("token cache entry {key:?}"))
}

/// The identity an app credential secret is bound to.
pub(crate) fn credential_record_id(tenant_id: &str, client_id: &str, kind: &str) -> RecordId {
    RecordId::new("app_credentials", &[tenant_id, client_id, kind], format!("app credential of tenant {tenant_id:?}"))
}

/// A `Running` run owned by a process on another host (or in another PID
/// namespace) is taken as dead when it has shown no sign of life for this
/// long. Engines refresh the heartbeat with every committed tenant and may
/// call `heartbeat_run` during a long tenant.
pub(crate) const HEARTBEAT_STALE_AFTER: TimeDelta = TimeDelta::hours(2);

/// How old a run's heartbeat must be before a tenant commit refreshes it;
/// far below [`HEARTBEAT_STALE_AFTER`], so a live run never looks silent.
pub(crate) const HEARTBEAT_EVERY: TimeDelta = TimeDelta::minutes(1);

/// Who is executing a run: enough to tell, from another process, whether
/// that process (and the store instance in it) is still alive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RunOwner {
    /// Host name.
    pub host: String,
    /// Linux boot id: a different one on the same host means a reboot.
    #[serde(default)]
    pub boot: String,
    /// PID namespace: PIDs can be checked only within the same one.
    #[serde(default)]
    pub pidns: String,
    /// Process id.
    pub pid: i64,
    /// Process start time (clock ticks since boot), to detect a reused PID.
    #[serde(default)]
    pub start: i64,
    /// The store instance inside that process.
    pub instance: String,
}

/// This process's identity, computed once.
fn this_process() -> &'static RunOwner {
    static ME: OnceLock<RunOwner> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = i64::from(std::process::id());
        RunOwner {
            host: host_name(),
            boot: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            pidns: std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default(),
            pid,
            start: process_start(pid).unwrap_or(0),
            instance: String::new(),
        }
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The start time of a process from `/proc/<pid>/stat` (field 22), or
/// `None` when the process does not exist or this is not Linux.
fn process_start(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses, so the
    // fields are counted from the last closing parenthesis: the next field
    // is field 3, hence field 22 is the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Store instances alive in this process, so that a run whose store was
/// dropped (the in-process picture of a crash) is recognised as dead even
/// though the process itself lives on.
fn live_instances() -> &'static Mutex<HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Registers a store instance as alive for as long as it exists.
pub(crate) struct InstanceGuard {
    owner: RunOwner,
}

impl InstanceGuard {
    pub(crate) fn register() -> InstanceGuard {
        let mut owner = this_process().clone();
        owner.instance = uuid::Uuid::new_v4().to_string();
        if let Ok(mut live) = live_instances().lock() {
            live.insert(owner.instance.clone());
        }
        InstanceGuard { owner }
    }

    /// The owner to record on runs this instance starts.
    pub(crate) fn owner(&self) -> &RunOwner {
        &self.owner
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        if let Ok(mut live) = live_instances().lock() {
            live.remove(&self.owner.instance);
        }
    }
}

/// Decides whether the owner of a `Running` run is gone.
///
/// The owner text is what was recorded at `start_run`; an unreadable one
/// (written by a future version, say) falls back to the heartbeat rule.
pub(crate) fn owner_is_dead(owner_text: &str, heartbeat_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let stale = now - heartbeat_at > HEARTBEAT_STALE_AFTER;
    let Ok(owner) = serde_json::from_str::<RunOwner>(owner_text) else {
        return stale;
    };
    let me = this_process();
    if owner.host != me.host || me.boot.is_empty() {
        return stale;
    }
    if owner.boot != me.boot {
        // Same host, new boot: every process of the old boot is gone.
        return true;
    }
    if owner.pidns != me.pidns {
        return stale;
    }
    if owner.pid == me.pid && owner.start == me.start {
        return live_instances().lock().map(|live| !live.contains(&owner.instance)).unwrap_or(stale);
    }
    match process_start(owner.pid) {
        None => true,
        Some(start) => owner.start != 0 && start != owner.start,
    }
}

/// Checks a tenant result before anything is written.
pub(crate) fn validate_tenant_result(tenant_run: &TenantRunRecord, outcomes: &[CollectorOutcomeRecord]) -> Result<()> {
    non_empty(tenant_run.run_id.as_str(), "run id")?;
    non_empty(tenant_run.tenant_id.as_str(), "tenant id")?;
    let mut names = HashSet::new();
    for outcome in outcomes {
        if outcome.run_id != tenant_run.run_id || outcome.tenant_id != tenant_run.tenant_id {
            return Err(StoreError::InvalidInput(format!(
                "collector outcome {:?} is for run {:?} tenant {:?}, not the tenant result's",
                outcome.collector, outcome.run_id, outcome.tenant_id
            )));
        }
        if !names.insert(outcome.collector.as_str()) {
            return Err(StoreError::InvalidInput(format!("collector {:?} appears twice", outcome.collector)));
        }
    }
    Ok(())
}

/// Reads the severity of a change event: its `severity` field, `info` when
/// absent.
pub(crate) fn event_severity(event: &Value) -> Result<Severity> {
    match event.get("severity") {
        None | Some(Value::Null) => Ok(Severity::Info),
        Some(Value::String(text)) => text.to_ascii_lowercase().parse().map_err(|_| {
            StoreError::InvalidInput(format!("event severity {text:?} is not one of info, low, medium, high, critical"))
        }),
        Some(other) => Err(StoreError::InvalidInput(format!("event severity must be a string, got {other}"))),
    }
}

/// Builds a cache record from its metadata row and decrypted secret.
pub(crate) fn cache_record(meta: CacheRecordMeta, secret: SecretString) -> CacheRecord {
    CacheRecord {
        key: meta.key,
        tenant_id: meta.tenant_id,
        kind: meta.kind,
        client_id: meta.client_id,
        home_account: meta.home_account,
        scopes: meta.scopes,
        secret,
        issued_at: meta.issued_at,
        expires_at: meta.expires_at,
        claims: meta.claims,
        updated_at: meta.updated_at,
    }
}

/// Builds an app credential from its metadata row and decrypted secret.
pub(crate) fn app_credential(meta: AppCredentialMeta, secret: SecretString) -> AppCredential {
    AppCredential {
        tenant_id: meta.tenant_id,
        client_id: meta.client_id,
        kind: meta.kind,
        secret,
        certificate_pem: meta.certificate_pem,
        expires_at: meta.expires_at,
        label: meta.label,
        added_at: meta.added_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_microseconds() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T12:00:00.1234567Z").expect("ts").with_timezone(&Utc);
        let stored = ts_micros(at).expect("micros");
        assert_eq!(ts_from_micros(stored, "t").expect("back"), micros(at));
        let early = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z").expect("ts").with_timezone(&Utc);
        assert!(ts_micros(early).expect("micros") < stored, "numeric order is time order");
        assert!(ts_from_micros(i64::MAX, "t").is_err());
    }

    #[test]
    fn own_live_and_dropped_instances() {
        let now = Utc::now();
        let guard = InstanceGuard::register();
        let text = serde_json::to_string(guard.owner()).expect("json");
        assert!(!owner_is_dead(&text, now, now));
        drop(guard);
        assert!(owner_is_dead(&text, now, now));
    }

    #[test]
    fn foreign_hosts_use_the_heartbeat() {
        let now = Utc::now();
        let owner = RunOwner {
            host: "elsewhere.example".into(),
            boot: "b".into(),
            pidns: "p".into(),
            pid: 1,
            start: 1,
            instance: "i".into(),
        };
        let text = serde_json::to_string(&owner).expect("json");
        assert!(!owner_is_dead(&text, now - TimeDelta::minutes(5), now));
        assert!(owner_is_dead(&text, now - TimeDelta::hours(3), now));
        assert!(owner_is_dead("garbage", now - TimeDelta::hours(3), now));
        assert!(!owner_is_dead("garbage", now, now));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_own_start_time() {
        let pid = i64::from(std::process::id());
        assert!(process_start(pid).is_some());
        assert!(process_start(i64::from(i32::MAX)).is_none());
    }
}
