//! The scheduler: queues an inspection of the tenants that are due.
//!
//! Exactly one scheduler fires across replicas: each tick, a replica takes or renews the named
//! lease `scheduler` in the store and only the holder schedules. A lease row (rather than a
//! PostgreSQL advisory lock) survives the pool recycling connections and works the same on SQLite.
//!
//! Each tenant's next due time lives in the store. A due tenant's next time is counted from now,
//! not from its missed slot, so after downtime a missed schedule runs once, not once per slot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use store::{JobFilter, JobStatus, Store, TenantId, TenantRecord};
use tokio::sync::watch;

use crate::config::ScheduleConfig;

/// The lease's name in the store.
pub const LEASE: &str = "scheduler";
/// The setting holding when the scheduler next tries to discover tenants while none is known.
const DISCOVERY: &str = "scheduler.discovery_next";
/// The setting holding the schedule an administrator set through the API; it overrides the
/// configuration file's `[server.schedule]` on every replica.
pub const SETTING: &str = "server.schedule";

/// The schedule in effect: the one set through the API, else the configuration file's.
pub async fn effective(
    store: &dyn Store,
    file: &ScheduleConfig,
) -> Result<(ScheduleConfig, &'static str), store::StoreError> {
    match store.setting_get(SETTING).await? {
        Some(v) if !v.is_null() => match serde_json::from_value::<ScheduleConfig>(v) {
            Ok(c) => Ok((c, "api")),
            Err(e) => {
                tracing::warn!(error = %e, "the schedule set through the API is unreadable; the file's is used");
                Ok((file.clone(), "file"))
            }
        },
        _ => Ok((file.clone(), "file")),
    }
}

pub struct Scheduler {
    pub store: Arc<dyn Store>,
    pub config: ScheduleConfig,
    pub owner: String,
    pub pool: String,
    pub max_attempts: i64,
    /// Whether this replica holds the lease, for `/health`.
    pub held: Arc<AtomicBool>,
}

/// The interval of a tenant: its own, its label's, or the global one; `None` when its schedule
/// is off.
pub fn interval_for(config: &ScheduleConfig, tenant: &TenantRecord) -> Option<chrono::Duration> {
    let minutes = config
        .per_tenant
        .iter()
        .find(|(id, _)| tenant.id == id.as_str())
        .map(|(_, m)| *m)
        .or_else(|| tenant.label.as_ref().and_then(|l| config.per_label.get(l).copied()))
        .unwrap_or(config.every_minutes);
    (minutes > 0).then(|| chrono::Duration::minutes(minutes as i64))
}

/// A time within `jitter` (a fraction) of `interval` after `now`, spread by the tenant's id so that
/// tenants fall due at different moments but each one's rhythm is stable.
pub fn next_due(now: DateTime<Utc>, interval: chrono::Duration, jitter: f64, tenant: &TenantId) -> DateTime<Utc> {
    let jitter = jitter.clamp(0.0, 0.5);
    let hash =
        tenant.as_str().bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    // A number in [-1, 1] from the hash.
    let unit = (hash % 2001) as f64 / 1000.0 - 1.0;
    let offset_ms = (interval.num_milliseconds() as f64 * jitter * unit) as i64;
    now + interval + chrono::Duration::milliseconds(offset_ms)
}

impl Scheduler {
    /// Ticks until `stop`; gives the lease up when it stops.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let tick = Duration::from_secs(self.config.tick_seconds.max(1));
        loop {
            if let Err(e) = self.tick(Utc::now()).await {
                tracing::warn!(error = %e, "the scheduler could not run this tick");
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => break,
            }
        }
        self.held.store(false, Ordering::Relaxed);
        let _ = self.store.release_lease(LEASE, &self.owner).await;
    }

    /// One tick: when this replica holds the lease, queues one inspection of every due tenant.
    /// Returns the queued jobs' ids (one per pool of agents with due tenants).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<String>, store::StoreError> {
        // The lease outlives three ticks, so that a slow tick does not hand it to another replica.
        let hold = chrono::Duration::seconds(self.config.tick_seconds.max(1) as i64 * 3);
        let holds = self.store.acquire_lease(LEASE, &self.owner, now, now + hold).await?;
        let (config, _) = effective(self.store.as_ref(), &self.config).await?;
        let config = &config;
        if !config.enabled {
            return Ok(Vec::new());
        }
        self.held.store(holds, Ordering::Relaxed);
        if !holds {
            return Ok(Vec::new());
        }
        let tenants = self.store.list_tenants().await?;
        let state: HashMap<TenantId, DateTime<Utc>> = self.store.schedule_state().await?.into_iter().collect();
        let unscheduled = tenants.iter().any(|t| !state.contains_key(&t.id));
        let inspected: HashMap<TenantId, DateTime<Utc>> = if unscheduled {
            self.store.latest_tenant_runs().await?.into_iter().map(|r| (r.tenant_id, r.finished_at)).collect()
        } else {
            HashMap::new()
        };
        // Tenants an inspection still queued or running will read are not queued again: the
        // first run of a new platform finds the customers and inspects them in the same job.
        let mut covered: HashSet<TenantId> = HashSet::new();
        let mut everything_covered = false;
        for status in [JobStatus::Queued, JobStatus::Running] {
            let filter = JobFilter { status: Some(status), kind: Some("inspect".into()), before: None, limit: 1000 };
            for job in self.store.list_jobs(&filter).await? {
                match job.params["tenants"].as_array() {
                    Some(list) if !list.is_empty() => {
                        covered.extend(list.iter().filter_map(|v| v.as_str()).map(TenantId::new));
                    }
                    _ => everything_covered = true,
                }
            }
        }
        let mut due = Vec::new();
        let mut first_seen = Vec::new();
        for t in tenants.iter().filter(|t| t.gone_since.is_none()) {
            let Some(interval) = interval_for(config, t) else { continue };
            let next = match state.get(&t.id) {
                Some(at) => *at,
                // A tenant never scheduled that some run inspected (the run that found it, or the
                // command line) is next due one interval after that; one never inspected is due now.
                None => match inspected.get(&t.id) {
                    Some(at) => {
                        let next = next_due(*at, interval, config.jitter, &t.id);
                        first_seen.push((t.id.clone(), next));
                        next
                    }
                    None => now,
                },
            };
            if next <= now && !everything_covered && !covered.contains(&t.id) {
                due.push((t, interval));
            }
        }
        let first_seen: Vec<(TenantId, DateTime<Utc>)> =
            first_seen.into_iter().filter(|(id, _)| !due.iter().any(|(t, _)| t.id == *id)).collect();
        if !first_seen.is_empty() {
            self.store.set_schedule(&first_seen, None).await?;
        }
        if tenants.is_empty() {
            // No tenant is known yet: one inspection of everything finds the partner's customers,
            // tried once per interval (not every tick while nobody has signed in).
            let next = self.store.setting_get(DISCOVERY).await?.and_then(|v| v.as_str().map(str::to_string));
            if next.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).is_some_and(|t| t > now) {
                return Ok(Vec::new());
            }
            let interval = chrono::Duration::minutes(config.every_minutes.max(1) as i64);
            self.store.setting_put(DISCOVERY, &json!((now + interval).to_rfc3339())).await?;
        } else if due.is_empty() {
            return Ok(Vec::new());
        }
        // One job per pool of agents: each pool's agents inspect only their tenants. The default
        // pool's job reads "every tenant" when every tenant is due and none is in another pool, so
        // that the partner's new customers are inspected in the same run that finds them.
        let pools: HashMap<TenantId, String> = self.store.tenant_pools().await?.into_iter().collect();
        let mut by_pool: std::collections::BTreeMap<&str, Vec<&(&store::TenantRecord, chrono::Duration)>> =
            std::collections::BTreeMap::new();
        for entry in &due {
            by_pool.entry(pools.get(&entry.0.id).map_or(self.pool.as_str(), String::as_str)).or_default().push(entry);
        }
        if by_pool.is_empty() {
            by_pool.insert(self.pool.as_str(), Vec::new());
        }
        let live = tenants.iter().filter(|t| t.gone_since.is_none()).count();
        let mut queued = Vec::new();
        let chunk = if config.tenants_per_job == 0 { usize::MAX } else { config.tenants_per_job };
        for (pool, entries) in by_pool {
            let everything = pool == self.pool && pools.is_empty() && entries.len() == live && entries.len() <= chunk;
            // An empty list (no tenant known yet) is one job of everything, whatever the chunk.
            let parts: Vec<&[&(&store::TenantRecord, chrono::Duration)]> =
                if entries.is_empty() { vec![&entries[..]] } else { entries.chunks(chunk).collect() };
            for part in parts {
                let names: Vec<String> =
                    if everything { Vec::new() } else { part.iter().map(|(t, _)| t.id.to_string()).collect() };
                let params = json!({ "tenants": names });
                let job = self
                    .store
                    .enqueue_job(&crate::jobs::new_job("inspect", params, pool, self.max_attempts, "scheduler"), now)
                    .await?;
                let next: Vec<(TenantId, DateTime<Utc>)> = part
                    .iter()
                    .map(|(t, interval)| (t.id.clone(), next_due(now, *interval, config.jitter, &t.id)))
                    .collect();
                self.store.set_schedule(&next, Some(&job.id)).await?;
                tracing::info!(job = %job.id, pool, tenants = part.len(), "scheduled an inspection of the due tenants");
                queued.push(job.id);
            }
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, label: Option<&str>) -> TenantRecord {
        let now = Utc::now();
        TenantRecord {
            id: TenantId::new(id),
            domain: None,
            display_name: id.into(),
            role: store::TenantRole::Customer,
            auth: store::TenantAuth::Gdap,
            first_seen: now,
            last_seen: now,
            gone_since: None,
            gdap: None,
            label: label.map(str::to_string),
        }
    }

    #[test]
    fn intervals_come_from_the_tenant_then_its_label_then_the_default() {
        let mut c = ScheduleConfig::default();
        c.per_label.insert("vip".into(), 60);
        c.per_tenant.insert("AAAA".into(), 15);
        c.per_tenant.insert("off".into(), 0);
        assert_eq!(interval_for(&c, &tenant("aaaa", Some("vip"))), Some(chrono::Duration::minutes(15)));
        assert_eq!(interval_for(&c, &tenant("bbbb", Some("vip"))), Some(chrono::Duration::minutes(60)));
        assert_eq!(interval_for(&c, &tenant("cccc", None)), Some(chrono::Duration::minutes(240)));
        assert_eq!(interval_for(&c, &tenant("off", None)), None);
    }

    #[test]
    fn jitter_spreads_tenants_within_bounds_and_is_stable() {
        let now = Utc::now();
        let interval = chrono::Duration::hours(4);
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let id = TenantId::new(format!("tenant-{i}"));
            let at = next_due(now, interval, 0.1, &id);
            assert!(
                at >= now + interval - chrono::Duration::minutes(24)
                    && at <= now + interval + chrono::Duration::minutes(24)
            );
            assert_eq!(at, next_due(now, interval, 0.1, &id));
            seen.insert(at);
        }
        assert!(seen.len() > 150, "tenants should fall due at different moments");
    }
}
