//! What the store can do, one trait per capability.
//!
//! A caller names the capability it needs (`&dyn TenantStore`, `Arc<dyn SecretStore>`) rather than
//! the whole store, and a new capability of the platform lands as a new trait. [`Store`] is their
//! union, implemented by every type that implements them all; obtain one with [`crate::open`] and
//! share it as `Arc<dyn Store>`, which coerces to any of the capability traits.
//!
//! Every method commits before returning. Timestamps are stored to the microsecond, so a value
//! read back equals the one written truncated to microseconds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::Result;
use crate::model::*;
use crate::{Backend, TenantId};

/// Tenants: the partner and its customers.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Inserts a tenant or updates it by id. `first_seen` keeps the value stored first; every other
    /// field takes the new value.
    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<()>;

    /// A tenant by id.
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>>;

    /// Finds a tenant by id, or by domain ignoring case. Among several tenants with the same
    /// domain, a present one seen last wins.
    async fn find_tenant(&self, id_or_domain: &str) -> Result<Option<TenantRecord>>;

    /// Every tenant, by display name.
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>>;

    /// The tenants a user may mean by `query`: the one with that id, every tenant with that
    /// verified domain (its primary domain or any domain recorded with
    /// [`TenantStore::set_tenant_domains`]), every tenant with that display name, all ignoring case
    /// and surrounding spaces. An exact id match comes first; otherwise by display name.
    async fn resolve_tenants(&self, query: &str) -> Result<Vec<TenantRecord>>;

    /// Replaces the domains a source (`dataprint`, `partner`) knows for a tenant.
    async fn set_tenant_domains(&self, tenant_id: &TenantId, source: &str, domains: &[String]) -> Result<()>;

    /// [`TenantStore::upsert_tenant`] and [`TenantStore::set_tenant_domains`] for many tenants, in
    /// one transaction: what a run learns of the partner's customers is written at once rather
    /// than as two writes per customer.
    async fn upsert_tenants_with_domains(&self, tenants: &[(TenantRecord, Vec<String>)], source: &str) -> Result<()>;

    /// Every domain known for a tenant, sorted, without repeats.
    async fn tenant_domains(&self, tenant_id: &TenantId) -> Result<Vec<String>>;

    /// [`TenantStore::tenant_domains`] of every tenant that has one, in one read.
    async fn all_tenant_domains(&self) -> Result<std::collections::HashMap<TenantId, Vec<String>>>;

    /// Sets or clears a tenant's label. Returns false when the tenant is unknown.
    async fn set_tenant_label(&self, tenant_id: &TenantId, label: Option<&str>) -> Result<bool>;

    /// Replaces a tenant's tags (trimmed, lower case, without repeats; empty ones dropped).
    /// Returns false when the tenant is unknown.
    async fn set_tenant_tags(&self, tenant_id: &TenantId, tags: &[String]) -> Result<bool>;

    /// Every tenant's tags, as (tenant, tag) sorted by tenant and tag.
    async fn tenant_tags(&self) -> Result<Vec<(TenantId, String)>>;

    /// Records that a tenant is no longer a customer. An earlier `gone_since` is kept. Returns
    /// false when the tenant is unknown.
    async fn mark_gone(&self, tenant_id: &TenantId, at: DateTime<Utc>) -> Result<bool>;

    /// Deletes everything held about a tenant, in one transaction: its record, domains,
    /// dataprints and the collection blobs only they used, tenant results, metrics, change
    /// events, alerts and their pending notifications, cached tokens, app credential, delta
    /// links, baselines taken from it, schedule, pool and mutes; warnings that named it are
    /// removed from the runs that recorded them. Runs themselves, shared by every tenant, stay.
    async fn forget_tenant(&self, tenant_id: &TenantId) -> Result<crate::ForgetReport>;
}

/// Runs and the results of each tenant in them.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Starts a run: assigns a UUID v7 id and records it as `Running`, owned by this process.
    async fn start_run(&self, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord>;

    /// Tells other processes that the run's owner is still alive. Every
    /// [`RunStore::commit_tenant_result`] does it too when the heartbeat is more than a minute old,
    /// so this is needed only when one tenant takes longer than two hours: past that, a process on
    /// another host (which cannot check whether the owner's PID is alive) takes a silent run for
    /// dead.
    async fn heartbeat_run(&self, run_id: &RunId) -> Result<()>;

    /// Finishes a run with its final status (not `Running`) and figures.
    async fn finish_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        stats: &Value,
    ) -> Result<()>;

    /// One run.
    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>>;

    /// The newest runs first.
    async fn list_runs(&self, limit: u32) -> Result<Vec<RunRecord>>;

    /// Marks as `Interrupted` every `Running` run whose process is gone; [`crate::open`] calls it.
    /// Returns how many were marked.
    async fn recover_interrupted_runs(&self) -> Result<u64>;

    /// Commits one tenant's result of a run in one transaction: the tenant run, its collector
    /// outcomes and, unless the tenant run failed, the dataprint. Committing the same tenant of the
    /// same run again replaces the earlier result. Returns the id of the tenant run's dataprint
    /// when it has one.
    ///
    /// When the dataprint's content, that is everything but its top-level `run` member, and the
    /// status equal those of the tenant's latest dataprint, no dataprint is added: the tenant run
    /// points at the latest one (whose id is returned and whose `confirmed_at` moves to this
    /// result's `finished_at`), and this run's `run` member is kept with the tenant run, for
    /// [`DataprintStore::dataprint_for_run`]. The producer must therefore put every field that
    /// changes between runs of an unchanged tenant in `run` and nowhere else; a volatile field
    /// elsewhere only costs space, never correctness.
    async fn commit_tenant_result(
        &self,
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
    ) -> Result<Option<DataprintId>> {
        self.commit_tenant_result_with(tenant_run, outcomes, dataprint, &WithResult::default()).await
    }

    /// [`RunStore::commit_tenant_result`], with what else the tenant's run changes (its record,
    /// domains, metric values and delta links) written in the same transaction: all of it or none
    /// of it is committed. A tenant run with a dataprint thus never has its metrics or delta links
    /// missing after a crash, and the store writes one transaction per tenant instead of five.
    async fn commit_tenant_result_with(
        &self,
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
        with: &WithResult,
    ) -> Result<Option<DataprintId>>;

    /// The latest result of a tenant in any run, by `finished_at`.
    async fn last_tenant_run(&self, tenant_id: &TenantId) -> Result<Option<TenantRunRecord>>;

    /// Every tenant's latest result (by `finished_at`), one per tenant, in no particular order.
    async fn latest_tenant_runs(&self) -> Result<Vec<TenantRunRecord>>;

    /// Every tenant result of a run, in start order.
    async fn tenant_runs(&self, run_id: &RunId) -> Result<Vec<TenantRunRecord>>;

    /// The collector outcomes of a tenant in a run, in the order given, complete with that run's
    /// `requests` and `duration_ms` (outcome lists are stored once per distinct content, the
    /// figures per run).
    async fn collector_outcomes(&self, run_id: &RunId, tenant_id: &TenantId) -> Result<Vec<CollectorOutcomeRecord>>;
}

/// Dataprints, and the delta links that continue their collections.
#[async_trait]
pub trait DataprintStore: Send + Sync {
    /// A stored dataprint, byte-for-byte as first committed when serialized: its `run` member is
    /// that of the run that first produced its content ([`DataprintMeta::run_id`]). See
    /// [`DataprintStore::dataprint_for_run`] for the document as a later run committed it.
    async fn get_dataprint(&self, id: &DataprintId) -> Result<Option<Value>>;

    /// The dataprint of a tenant in a run, byte-for-byte as that run committed it: the stored
    /// content with that run's own `run` member. `None` when the tenant has no result in the run,
    /// the result failed, or its dataprint was pruned.
    async fn dataprint_for_run(&self, run_id: &RunId, tenant_id: &TenantId) -> Result<Option<Value>>;

    /// What is known about a dataprint without loading it.
    async fn dataprint_meta(&self, id: &DataprintId) -> Result<Option<DataprintMeta>>;

    /// The newest dataprint of a tenant from an ok or partial result, with the `run` member of the
    /// run that last produced it (as [`DataprintStore::dataprint_for_run`] gives it for that run),
    /// so that an inspection building on it sees when each collection was last read; its meta's
    /// `confirmed_at` tells when that was. A later failed result never replaces it.
    async fn last_good_dataprint(&self, tenant_id: &TenantId) -> Result<Option<(DataprintMeta, Value)>>;

    /// [`DataprintStore::last_good_dataprint`] with only the named collections in `collections`
    /// (the others left out): a page that needs a tenant's settings does not inflate its users'
    /// sign-in logs. A store that cannot read collections apart loads the whole document.
    async fn last_good_collections(
        &self,
        tenant_id: &TenantId,
        collections: &[&str],
    ) -> Result<Option<(DataprintMeta, Value)>> {
        let Some((meta, mut doc)) = self.last_good_dataprint(tenant_id).await? else { return Ok(None) };
        if let Some(all) = doc.get_mut("collections").and_then(Value::as_object_mut) {
            all.retain(|name, _| collections.contains(&name.as_str()));
        }
        Ok(Some((meta, doc)))
    }

    /// One collection of a stored dataprint, `None` when the dataprint or the collection is not
    /// there. With `fields`, each element that is an object keeps only those members
    /// ([`crate::project_collection`]), and the others are read past rather than built: a caller
    /// that needs a few members of a large collection's elements pays for little more than reading
    /// its bytes.
    async fn dataprint_collection(
        &self,
        id: &DataprintId,
        name: &str,
        fields: Option<&[String]>,
    ) -> Result<Option<Value>>;

    /// [`DataprintStore::last_good_dataprint`] with the collections `unread` names left unread: each
    /// stays in `collections` as `null`, so that the caller knows the dataprint holds it without
    /// paying for its content, and may carry it into a later dataprint unread
    /// ([`crate::ReusedFrom::unread`]).
    async fn last_good_dataprint_unread(
        &self,
        tenant_id: &TenantId,
        unread: &[&str],
    ) -> Result<Option<(DataprintMeta, Value)>>;

    /// A tenant's distinct dataprints, oldest first, that were current at or after `since` (whose
    /// `confirmed_at` is at or after it). Consecutive entries always differ in content, so walking
    /// them walks real changes.
    async fn dataprints(&self, tenant_id: &TenantId, since: Option<DateTime<Utc>>) -> Result<Vec<DataprintMeta>>;

    /// The dataprint of the tenant taken just before `before`, for diffs: the content the tenant
    /// had before that one.
    async fn previous_dataprint(
        &self,
        tenant_id: &TenantId,
        before: &DataprintId,
    ) -> Result<Option<(DataprintMeta, Value)>>;

    /// Keeps the newest `keep_per_tenant` dataprints of each tenant (at least one, so the last good
    /// dataprint is never lost) and deletes the rest, then the collection blobs nothing references
    /// any more. Tenant results that pointed at a deleted dataprint keep their outcomes, figures
    /// included, and lose only the dataprint and its `run` member.
    async fn prune(&self, keep_per_tenant: usize) -> Result<PruneReport>;

    /// Deletes what is older than `cutoff`: tenant results finished before it (each tenant's
    /// latest result and latest result with a dataprint stay, so the last good dataprint is never
    /// lost), the dataprints no remaining result uses, metric points superseded before it (the
    /// value in effect at the cutoff stays), change events, alerts resolved before it with their
    /// deliveries, and finished runs nothing refers to any more; then unused blobs.
    async fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<PruneReport>;

    /// The saved `@odata.deltaLink` of a tenant's collection.
    async fn get_delta_link(&self, tenant_id: &TenantId, collection: &str) -> Result<Option<String>>;

    /// Every saved delta link of a tenant, by collection, in one read.
    async fn delta_links(&self, tenant_id: &TenantId) -> Result<Vec<(String, String)>>;

    /// Saves a delta link, replacing the previous one.
    async fn set_delta_link(&self, tenant_id: &TenantId, collection: &str, link: &str) -> Result<()>;

    /// Forgets a tenant's delta links (forces full reads). Returns how many.
    async fn clear_delta_links(&self, tenant_id: &TenantId) -> Result<u64>;
}

/// Secrets: the Microsoft token cache and the app credentials of customers read app-only. Every
/// secret is encrypted at rest under the store's key.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// One cache entry, decrypted. A wrong key or altered row is a [`crate::StoreError::Crypto`]
    /// error naming the entry.
    async fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>>;

    /// Inserts or replaces an entry in one statement (refresh token rotation replaces the old token
    /// atomically).
    async fn cache_put(&self, record: &CacheRecord) -> Result<()>;

    /// Deletes one entry; false if there was none.
    async fn cache_delete(&self, key: &str) -> Result<bool>;

    /// Deletes a tenant's entries; returns how many.
    async fn cache_delete_tenant(&self, tenant_id: &str) -> Result<u64>;

    /// Deletes every entry; returns how many.
    async fn cache_clear(&self) -> Result<u64>;

    /// Every entry without its secret, by tenant and key.
    async fn cache_list(&self) -> Result<Vec<CacheRecordMeta>>;

    /// Saves a tenant's app credential, replacing any previous one.
    async fn credential_put(&self, credential: &AppCredential) -> Result<()>;

    /// A tenant's app credential, decrypted.
    async fn credential_get(&self, tenant_id: &TenantId) -> Result<Option<AppCredential>>;

    /// Every credential without its secret, by tenant.
    async fn credential_list(&self) -> Result<Vec<AppCredentialMeta>>;

    /// Deletes a tenant's credential; false if there was none.
    async fn credential_delete(&self, tenant_id: &TenantId) -> Result<bool>;
}

/// Settings: small named JSON values (the remembered cloud and app, schedules...).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// A setting.
    async fn setting_get(&self, key: &str) -> Result<Option<Value>>;

    /// Saves a setting.
    async fn setting_put(&self, key: &str, value: &Value) -> Result<()>;
}

/// History: metric series, change events, baselines.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Saves metric values of a tenant measured in a run at `at`.
    ///
    /// Series are run-length encoded: a value is stored as a new point only when it differs (as
    /// JSON text) from the value in effect at `at`, that is the latest point of the same tenant and
    /// name at or before `at`, so runs of an unchanged tenant add nothing. A value already saved
    /// for the same run, tenant and name is replaced. A point that the new value makes redundant
    /// (the next one, when it holds the same value) is removed, so the series stays a list of
    /// changes.
    async fn put_metrics(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        values: &[(String, Value)],
    ) -> Result<()>;

    /// The change points of metric series, oldest first, narrowed by tenant, name and time: each
    /// point's value held from its `at` until the next point of the same tenant and name (and still
    /// holds for the last one). With `since`, only points at or after it are returned; the value in
    /// effect at `since` is the last point before it, which [`HistoryStore::latest_metrics`] or a
    /// query without `since` gives.
    async fn metric_series(
        &self,
        tenant_id: Option<&TenantId>,
        name: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<MetricPoint>>;

    /// The current value of each metric of a tenant, by name. Each point's `at` and `run_id` say
    /// when the metric took that value, which is earlier than the latest run when the value has not
    /// changed since.
    async fn latest_metrics(&self, tenant_id: &TenantId) -> Result<Vec<MetricPoint>>;

    /// The value every metric of every tenant had at `at`: per tenant and name, the latest point at
    /// or before it. A tenant list or report shows these without loading any dataprint.
    async fn metrics_at(&self, at: DateTime<Utc>) -> Result<Vec<MetricPoint>>;

    /// [`HistoryStore::metrics_at`] for one metric: every tenant's value of `name` at `at`. A page
    /// that shows three figures of a thousand tenants reads three thousand points, not all of them.
    async fn metric_at(&self, at: DateTime<Utc>, name: &str) -> Result<Vec<MetricPoint>> {
        Ok(self.metrics_at(at).await?.into_iter().filter(|p| p.name == name).collect())
    }

    /// Saves change events. Each event's `severity` field (`info`, `low`, `medium`, `high`,
    /// `critical`) is indexed; a missing one means info.
    async fn put_events(&self, run_id: &RunId, tenant_id: &TenantId, at: DateTime<Utc>, events: &[Value])
    -> Result<()>;

    /// Change events matching the filter, newest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>>;

    /// Saves a baseline under a name.
    async fn baseline_put(&self, name: &str, value: &Value) -> Result<()>;

    /// A baseline.
    async fn baseline_get(&self, name: &str) -> Result<Option<Value>>;

    /// Every baseline's name and age, by name.
    async fn baseline_list(&self) -> Result<Vec<BaselineMeta>>;
}

/// Alerts: their state, acknowledgements and mutes, and the outbox of their notifications.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Inserts or replaces an alert by key (every field as given but the acknowledgement, which only
    /// [`AlertStore::ack_alert`] sets).
    async fn upsert_alert(&self, alert: &AlertRecord) -> Result<()>;

    /// Open alerts (not resolved), newest first, of one tenant or all.
    async fn open_alerts(&self, tenant_id: Option<&TenantId>) -> Result<Vec<AlertRecord>>;

    /// Alerts, newest first; only open ones if asked.
    async fn list_alerts(&self, open_only: bool) -> Result<Vec<AlertRecord>>;

    /// Records an attempt to deliver an alert; the alert must exist.
    async fn record_delivery(
        &self,
        alert_key: &str,
        target: &str,
        attempt: i64,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Delivery attempts of an alert, oldest first.
    async fn deliveries(&self, alert_key: &str) -> Result<Vec<DeliveryRecord>>;

    /// Records an alert transition and queues its notification to each target, in one transaction:
    /// the alert is upserted as [`AlertStore::upsert_alert`] does, and one outbox item per `(target,
    /// payload)` is added, to be delivered after every earlier item of the same alert and target.
    async fn record_transition(&self, alert: &AlertRecord, transition: &str, notify: &[(String, Value)]) -> Result<()>;

    /// An alert by key.
    async fn get_alert(&self, key: &str) -> Result<Option<AlertRecord>>;

    /// Acknowledges an alert: who, when and why; with `resolve`, it is also resolved at `at` (an
    /// alert about an event stays open until someone has seen it). Returns the alert, or `None` when
    /// there is no such alert.
    async fn ack_alert(
        &self,
        key: &str,
        by: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
        resolve: bool,
    ) -> Result<Option<AlertRecord>>;

    /// Mutes a rule for a tenant until a date (replacing an earlier mute of the same pair).
    async fn set_mute(&self, mute: &MuteRecord) -> Result<()>;

    /// Lifts a mute; false if there was none.
    async fn delete_mute(&self, tenant_id: &TenantId, rule: &str) -> Result<bool>;

    /// Every mute, expired ones included, by tenant and rule.
    async fn mutes(&self) -> Result<Vec<MuteRecord>>;

    /// Claims up to `limit` notifications due at `now` for `owner`, for `lease`: pending items whose
    /// earlier items of the same alert and target are all settled, oldest first. An item claimed by
    /// a live lease is not claimed again, so two deliverers never send the same item.
    async fn claim_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxItem>>;

    /// Settles an attempt of a claimed item. Refused (false) when `owner` no longer holds its lease.
    /// `attempts` is the total number of tries so far, this pass's included.
    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &DeliveryOutcome,
        attempts: i64,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Makes every pending notification due at `now` (an operator's "retry now"); returns how many.
    async fn retry_deliveries(&self, now: DateTime<Utc>) -> Result<u64>;

    /// The outbox, newest first: of one alert, or all.
    async fn outbox(&self, alert_key: Option<&str>, limit: u32) -> Result<Vec<OutboxItem>>;
}

/// The platform's job queue: jobs claimed with leases, fenced results, per-tenant schedules, and
/// named leases that elect one scheduler among replicas.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Queues a job; it gets an id that sorts by creation time.
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> Result<JobRecord>;

    /// A job by id.
    async fn get_job(&self, id: &str) -> Result<Option<JobRecord>>;

    /// Jobs, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>>;

    /// Claims the oldest due job of `pool` for `owner` until `now + lease`: a queued job whose
    /// `not_before` has come, or a running job whose lease expired (its worker is presumed dead).
    /// Each claim is an attempt and increments the job's fence. Before claiming, running jobs whose
    /// lease expired on their last attempt become dead, and those an operator cancelled become
    /// cancelled. Two workers never claim the same job at once.
    async fn claim_job(
        &self,
        owner: &str,
        pool: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<JobRecord>>;

    /// Extends a claimed job's lease to `now + lease` and records the worker's progress (if any).
    /// Returns the job, whose `cancel_requested_at` tells the worker to stop; refused with
    /// [`crate::StoreError::Fenced`] when the lease is no longer the worker's.
    async fn heartbeat_job(
        &self,
        lease: &JobLease,
        now: DateTime<Utc>,
        lease_for: chrono::Duration,
        progress: Option<&Value>,
    ) -> Result<JobRecord>;

    /// Ends a worker's attempt; refused with [`crate::StoreError::Fenced`] when the lease is no
    /// longer the worker's. A failed attempt is queued again at its retry time, or is dead when it
    /// was the last; a job an operator cancelled ends cancelled whatever the outcome.
    async fn finish_job(&self, lease: &JobLease, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<JobRecord>;

    /// Cancels a job: a queued job at once, a running one when its worker next heartbeats. `None`
    /// when there is no such job; a final job is returned unchanged.
    async fn cancel_job(&self, id: &str, now: DateTime<Utc>) -> Result<Option<JobRecord>>;

    /// Starts a run on behalf of a claimed job. The run's tenant results are committed only while
    /// the job is still claimed with this lease's fence, and each tenant at most once per job
    /// ([`crate::StoreError::Fenced`], [`crate::StoreError::AlreadyCommitted`]).
    async fn start_job_run(&self, lease: &JobLease, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord>;

    /// The tenants whose results a job has committed, in any of its runs.
    async fn job_tenants(&self, job_id: &str) -> Result<Vec<TenantId>>;

    /// The runs a job started, oldest first.
    async fn job_runs(&self, job_id: &str) -> Result<Vec<RunRecord>>;

    /// The newest runs, as [`RunStore::list_runs`] gives them, each with the id of the job that
    /// started it (`None` for a run made outside the queue, by the command line).
    async fn runs_with_jobs(&self, limit: u32) -> Result<Vec<(RunRecord, Option<String>)>>;

    /// When each scheduled tenant is next due.
    async fn schedule_state(&self) -> Result<Vec<(TenantId, DateTime<Utc>)>>;

    /// Sets when tenants are next due (and which job last took them).
    async fn set_schedule(&self, due: &[(TenantId, DateTime<Utc>)], job_id: Option<&str>) -> Result<()>;

    /// Takes or renews the lease `name` for `owner` until `until` when it is free, expired at
    /// `now`, or already `owner`'s; returns whether `owner` holds it.
    async fn acquire_lease(&self, name: &str, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool>;

    /// Gives a lease up (when `owner` holds it).
    async fn release_lease(&self, name: &str, owner: &str) -> Result<()>;
}

/// Who may use the platform: operators' sessions and API tokens, both kept as hashes.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a new session.
    async fn session_put(&self, session: &SessionRecord) -> Result<()>;

    /// A session by the hash of its id, revoked or expired ones included (the caller decides).
    async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRecord>>;

    /// Records that a session was used.
    async fn session_touch(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()>;

    /// Revokes a session; false when there was no live one.
    async fn session_revoke(&self, id_hash: &str, at: DateTime<Utc>) -> Result<bool>;

    /// Stores a new API token.
    async fn token_put(&self, token: &ApiTokenRecord) -> Result<()>;

    /// An API token by the hash of its secret.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiTokenRecord>>;

    /// Records that a token was used.
    async fn token_touch(&self, id: &str, at: DateTime<Utc>) -> Result<()>;

    /// Every API token, newest first.
    async fn token_list(&self) -> Result<Vec<ApiTokenRecord>>;

    /// Revokes a token; false when there was no live one.
    async fn token_revoke(&self, id: &str, at: DateTime<Utc>) -> Result<bool>;
}

/// The append-only audit log of state-changing actions.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry; returns its id. Entries are never changed or deleted (the database
    /// refuses it).
    async fn audit_append(&self, entry: &AuditEntry) -> Result<i64>;

    /// Entries, newest first.
    async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
}

/// Agents, their one-time enrollment tokens, and which pool of agents inspects each tenant.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Stores a new enrollment token.
    async fn enrollment_put(&self, enrollment: &EnrollmentRecord) -> Result<()>;

    /// Every enrollment token, newest first.
    async fn enrollment_list(&self) -> Result<Vec<EnrollmentRecord>>;

    /// Spends the enrollment token whose hash is `hash` and records the agent, in one transaction:
    /// the agent gets the token's pool and (unless it asked for one) its name. `None` when no
    /// token has that hash, or it expired at `now`, or it was used already; the caller cannot tell
    /// which, and neither can whoever tries tokens.
    async fn enroll_agent(&self, hash: &str, agent: &NewAgent, now: DateTime<Utc>) -> Result<Option<AgentRecord>>;

    /// An agent by id, revoked ones included (the caller decides).
    async fn agent_get(&self, id: &str) -> Result<Option<AgentRecord>>;

    /// Every agent, by pool and name.
    async fn agent_list(&self) -> Result<Vec<AgentRecord>>;

    /// Revokes an agent: every later request of it is refused. False when there was no live one.
    async fn agent_revoke(&self, id: &str, at: DateTime<Utc>) -> Result<bool>;

    /// Records a heartbeat: when the agent was last seen, what it reported and its version.
    async fn agent_seen(&self, id: &str, at: DateTime<Utc>, version: &str, health: &Value) -> Result<()>;

    /// The tenants assigned to a pool other than the default.
    async fn tenant_pools(&self) -> Result<Vec<(TenantId, String)>>;

    /// Assigns a tenant to a pool, or back to the default pool with `None`.
    async fn set_tenant_pool(&self, tenant_id: &TenantId, pool: Option<&str>) -> Result<()>;
}

/// The database itself.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Which engine this store uses.
    fn backend(&self) -> Backend;

    /// Bytes the database occupies (SQLite: the size of the database file once its WAL is
    /// checkpointed, free pages included; PostgreSQL: tables, indexes and TOAST of the store's
    /// schema).
    async fn storage_bytes(&self) -> Result<u64>;

    /// Closes connections gracefully (SQLite checkpoints its WAL). Dropping the store without it
    /// is safe; this only tidies up.
    async fn close(&self);

    /// Writes a consistent online copy of the database to `path`, an empty file the caller
    /// created (with the mode it wants). SQLite only: a PostgreSQL store answers with how to
    /// use `pg_dump` instead.
    async fn backup(&self, path: &std::path::Path) -> Result<()>;

    /// What the database's consistency checks find wrong (SQLite's `integrity_check` and foreign
    /// keys; on PostgreSQL, rows of the store that refer to missing rows). Empty when sound.
    async fn integrity_problems(&self) -> Result<Vec<String>>;
}

/// Everything the store can do: the union of the capability traits.
pub trait Store:
    TenantStore
    + RunStore
    + DataprintStore
    + SecretStore
    + SettingsStore
    + HistoryStore
    + AlertStore
    + JobStore
    + AccessStore
    + AuditStore
    + AgentStore
    + AdminStore
{
}

impl<T> Store for T where
    T: TenantStore
        + RunStore
        + DataprintStore
        + SecretStore
        + SettingsStore
        + HistoryStore
        + AlertStore
        + JobStore
        + AccessStore
        + AuditStore
        + AgentStore
        + AdminStore
{
}
