//! Persistence for tenantscope.
//!
//! Everything tenantscope keeps between runs goes through the [`Store`]
//! trait: tenants, runs and their per-tenant results, dataprints (content
//! addressed and compressed), delta links, the encrypted Microsoft token
//! cache, app credentials of customer tenants, settings, and the history
//! tables (metrics, change events, alerts, baselines).
//!
//! Two backends implement it: SQLite, embedded and the default, and
//! PostgreSQL for scale-out. [`open`] picks one from the database URL and
//! brings the schema up to date. This is the only crate that contains SQL.
//!
//! Growth: an unchanged tenant costs a few dozen bytes per run. A dataprint
//! whose content (everything but its top-level `run` member, where the
//! producer puts every field that changes between runs) equals the tenant's
//! latest one is not stored again: the tenant run points at the existing
//! dataprint and keeps its own `run` member as a compact delta. Collector
//! outcome lists are stored once per distinct content with the per-run
//! figures beside the tenant run, and metric series keep only their change
//! points.
//!
//! Durability: every method commits before it returns, and a tenant's result
//! (its record, collector outcomes and dataprint) is one transaction, so a
//! process killed at any point loses at most the tenant it was working on.
//! Runs left `Running` by a dead process are marked `Interrupted` by the next
//! [`open`].
//!
//! Secrets (token cache secrets, client secrets, private keys) are encrypted
//! with XChaCha20-Poly1305 under a [`Key`] before they reach the database:
//! a random 24-byte nonce per record, and the record's identity (table, key,
//! tenant, client) as associated data, so a ciphertext moved to another row
//! does not decrypt.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// `rows` first: its column-list macros are used by the backends.
#[macro_use]
mod rows;
mod blob;
mod common;
mod crypto;
mod error;
mod key;
mod per_run;
mod plan;
mod postgres;
mod result;
mod sqlite;

pub use error::{Result, StoreError};
pub use key::{KEY_ENV, KEY_FILE_NAME, KEY_LEN, Key};
pub use secrecy::{ExposeSecret, SecretString};

/// Error returned when text is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    kind: &'static str,
    value: String,
}

/// Defines a closed set of values stored as lower-case text, with `as_str`,
/// `FromStr`, `Display` and serde in the same spelling.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> std::result::Result<Self, UnknownValue> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownValue { kind: stringify!($name), value: text.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Whether a tenant is the MSP's own partner tenant or a customer.
    TenantRole {
        /// The partner tenant the MSP signs in to.
        Partner = "partner",
        /// A customer tenant.
        Customer = "customer",
    }
}

text_enum! {
    /// How tenantscope obtains tokens for a tenant.
    TenantAuth {
        /// The partner user's refresh token redeemed at the customer (GDAP).
        Gdap = "gdap",
        /// Client credentials of an app in the customer tenant.
        App = "app",
        /// A user of that tenant signed in directly.
        Direct = "direct",
        /// The partner tenant itself.
        Partner = "partner",
    }
}

text_enum! {
    /// The state of a run.
    RunStatus {
        /// Started and not finished; see [`Store::heartbeat_run`].
        Running = "running",
        /// Every tenant succeeded.
        Ok = "ok",
        /// Some tenants or collectors failed.
        Partial = "partial",
        /// Nothing succeeded.
        Failed = "failed",
        /// The process running it died; marked by the next [`open`].
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// The result of one tenant in a run (the dataprint's `status`).
    TenantRunStatus {
        /// Every collector that ran succeeded.
        Ok = "ok",
        /// At least one collector failed but some data was read.
        Partial = "partial",
        /// No collector produced data; no dataprint is stored.
        Failed = "failed",
    }
}

text_enum! {
    /// The outcome of one collector for one tenant.
    OutcomeStatus {
        /// Collected.
        Ok = "ok",
        /// Not run, with a reason (licence, permission, role...).
        Skipped = "skipped",
        /// Ran and failed, with the error and its diagnosis.
        Failed = "failed",
    }
}

text_enum! {
    /// What an app credential's secret holds.
    CredentialKind {
        /// A client secret.
        Secret = "secret",
        /// A certificate: the secret is the PEM private key.
        Certificate = "certificate",
    }
}

text_enum! {
    /// Severity of change events and alerts, from least to most severe.
    Severity {
        /// Informational.
        Info = "info",
        /// Low.
        Low = "low",
        /// Medium.
        Medium = "medium",
        /// High.
        High = "high",
        /// Critical.
        Critical = "critical",
    }
}

impl Severity {
    /// Position in the scale, 0 for `info` to 4 for `critical`; stored next
    /// to the text so the database can filter on a minimum severity.
    pub const fn rank(self) -> i64 {
        self as i64
    }
}

impl PartialOrd for Severity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Severity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// The identifier of a stored dataprint (a UUID v7, so ids sort by time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataprintId(String);

impl DataprintId {
    /// Wraps an id read from elsewhere (a CLI argument, an API path).
    pub fn new(id: impl Into<String>) -> DataprintId {
        DataprintId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DataprintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for DataprintId {
    fn from(id: String) -> DataprintId {
        DataprintId(id)
    }
}

impl From<&str> for DataprintId {
    fn from(id: &str) -> DataprintId {
        DataprintId(id.to_owned())
    }
}

/// A tenant tenantscope knows: the partner tenant or a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The Entra tenant id (a GUID).
    pub id: String,
    /// The initial or primary domain, when known.
    pub domain: Option<String>,
    /// The organization's display name.
    pub display_name: String,
    /// Partner or customer.
    pub role: TenantRole,
    /// How tokens are obtained for it.
    pub auth: TenantAuth,
    /// When it was first seen. An upsert keeps the first value stored.
    pub first_seen: DateTime<Utc>,
    /// When it was last seen in the partner's customer list.
    pub last_seen: DateTime<Utc>,
    /// Since when it is no longer a customer, if it is gone.
    pub gone_since: Option<DateTime<Utc>>,
    /// GDAP relationship facts as read in the parent inspection.
    pub gdap: Option<Value>,
}

/// One run of tenantscope (an inspection, a doctor run...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// A UUID v7, assigned by [`Store::start_run`].
    pub id: String,
    /// What kind of run: `inspect`, `doctor`...
    pub kind: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its state.
    pub status: RunStatus,
    /// Free-form figures (tenants, requests, duration...).
    pub stats: Value,
}

/// The result of one tenant in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRunRecord {
    /// The run.
    pub run_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// Ok, partial or failed.
    pub status: TenantRunStatus,
    /// When this tenant's inspection started.
    pub started_at: DateTime<Utc>,
    /// When it finished; also the dataprint's `taken_at`.
    pub finished_at: DateTime<Utc>,
    /// The diagnosis of a tenant-level failure (no token, say).
    pub diagnosis: Option<Value>,
    /// The typed tenant-level error.
    pub error: Option<Value>,
    /// The stored dataprint. Set by the store; ignored on input.
    pub dataprint_id: Option<DataprintId>,
}

/// The outcome of one collector for one tenant in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorOutcomeRecord {
    /// The run.
    pub run_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The collector name (`users`, `conditionalAccessPolicies`...).
    pub collector: String,
    /// Ok, skipped or failed.
    pub status: OutcomeStatus,
    /// Objects collected, when ok.
    pub items: Option<i64>,
    /// Why it was skipped.
    pub reason: Option<Value>,
    /// The typed error, when failed.
    pub error: Option<Value>,
    /// The diagnosis of the error.
    pub diagnosis: Option<Value>,
    /// Graph requests made.
    pub requests: i64,
    /// Time spent.
    pub duration_ms: i64,
}

/// What is known about a stored dataprint without loading it.
///
/// A dataprint is stored once per distinct content: runs of an unchanged
/// tenant confirm it instead of adding one, so `taken_at` and `run_id` say
/// when its content was first seen and `confirmed_at` and
/// `confirmed_run_id` when it was last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataprintMeta {
    /// Its id.
    pub id: DataprintId,
    /// The run that first produced this content.
    pub run_id: String,
    /// The tenant it describes.
    pub tenant_id: String,
    /// When it was taken (the `finished_at` of the first tenant result with
    /// this content).
    pub taken_at: DateTime<Utc>,
    /// Ok or partial (failed tenant results store no dataprint).
    pub status: TenantRunStatus,
    /// The `finished_at` of the latest tenant result that produced this
    /// content (`taken_at` until another run confirms it).
    pub confirmed_at: DateTime<Utc>,
    /// The run of that latest tenant result.
    pub confirmed_run_id: String,
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Dataprints deleted.
    pub dataprints_deleted: u64,
    /// Collection sets no longer used by any dataprint.
    pub sets_deleted: u64,
    /// Collection blobs no longer used by any set.
    pub blobs_deleted: u64,
}

/// One entry of the Microsoft token cache.
#[derive(Debug, Clone)]
pub struct CacheRecord {
    /// The cache key, chosen by the token cache.
    pub key: String,
    /// The tenant the token is for.
    pub tenant_id: String,
    /// `access`, `refresh`, `id` or `account`.
    pub kind: String,
    /// The app the token was issued to.
    pub client_id: String,
    /// The signed-in account, when there is one.
    pub home_account: Option<String>,
    /// Space-separated scopes.
    pub scopes: String,
    /// The token itself; encrypted at rest.
    pub secret: SecretString,
    /// When it was issued.
    pub issued_at: Option<DateTime<Utc>>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// A non-secret summary of the token's claims (`amr`, `scp`, `tid`...).
    pub claims: Option<Value>,
    /// When this entry was written.
    pub updated_at: DateTime<Utc>,
}

/// A token cache entry without its secret, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecordMeta {
    /// The cache key.
    pub key: String,
    /// The tenant.
    pub tenant_id: String,
    /// `access`, `refresh`, `id` or `account`.
    pub kind: String,
    /// The app.
    pub client_id: String,
    /// The account.
    pub home_account: Option<String>,
    /// Space-separated scopes.
    pub scopes: String,
    /// When it was issued.
    pub issued_at: Option<DateTime<Utc>>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Non-secret claims summary.
    pub claims: Option<Value>,
    /// When this entry was written.
    pub updated_at: DateTime<Utc>,
}

/// Client credentials of an app in a customer tenant.
#[derive(Debug, Clone)]
pub struct AppCredential {
    /// The customer tenant.
    pub tenant_id: String,
    /// The app (client) id.
    pub client_id: String,
    /// Secret or certificate.
    pub kind: CredentialKind,
    /// The client secret, or the PEM private key; encrypted at rest.
    pub secret: SecretString,
    /// The PEM certificate, for certificate credentials.
    pub certificate_pem: Option<String>,
    /// When the secret or certificate expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// A note for people.
    pub label: Option<String>,
    /// When it was added.
    pub added_at: DateTime<Utc>,
}

/// An app credential without its secret, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialMeta {
    /// The customer tenant.
    pub tenant_id: String,
    /// The app (client) id.
    pub client_id: String,
    /// Secret or certificate.
    pub kind: CredentialKind,
    /// The PEM certificate, for certificate credentials (public).
    pub certificate_pem: Option<String>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// A note for people.
    pub label: Option<String>,
    /// When it was added.
    pub added_at: DateTime<Utc>,
}

/// A change point of one metric of one tenant: the metric had `value` from
/// `at` until the next point of the same tenant and name (see
/// [`Store::put_metrics`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The run that measured the value first.
    pub run_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The metric name.
    pub name: String,
    /// When the value was first measured.
    pub at: DateTime<Utc>,
    /// The value (usually a number).
    pub value: Value,
}

/// Which change events to return; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
    /// At most this many (the newest).
    pub limit: Option<u32>,
}

/// A change event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Store-assigned, increasing in insertion order.
    pub id: i64,
    /// The run that found the change.
    pub run_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The event's `severity` field (`info` when it had none).
    pub severity: Severity,
    /// The event as given to [`Store::put_events`].
    pub event: Value,
}

/// An alert: a rule that fired for a tenant, open until resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Stable key (rule and tenant, typically).
    pub key: String,
    /// The rule name.
    pub rule: String,
    /// The tenant.
    pub tenant_id: String,
    /// How severe.
    pub severity: Severity,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Details for people and notifications.
    pub payload: Value,
}

/// One attempt to deliver an alert notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The alert.
    pub alert_key: String,
    /// Where it was sent (a webhook name, an address).
    pub target: String,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// `sent`, `failed: ...`, as the notifier reports it.
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A baseline's name and age, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineMeta {
    /// The baseline name.
    pub name: String,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

/// Which database engine a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Persistence for tenantscope. Obtain one with [`open`]; share it as
/// `Arc<dyn Store>`.
///
/// Every method commits before returning. Timestamps are stored to the
/// microsecond, so a value read back equals the one written truncated to
/// microseconds.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which engine this store uses.
    fn backend(&self) -> Backend;

    // ---- tenants -------------------------------------------------------

    /// Inserts a tenant or updates it by id. `first_seen` keeps the value
    /// stored first; every other field takes the new value.
    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<()>;

    /// Finds a tenant by id, or by domain ignoring case. Among several
    /// tenants with the same domain, a present one seen last wins.
    async fn get_tenant(&self, id_or_domain: &str) -> Result<Option<TenantRecord>>;

    /// Every tenant, by display name.
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>>;

    /// Records that a tenant is no longer a customer. An earlier
    /// `gone_since` is kept. Returns false when the tenant is unknown.
    async fn mark_gone(&self, tenant_id: &str, at: DateTime<Utc>) -> Result<bool>;

    // ---- runs ----------------------------------------------------------

    /// Starts a run: assigns a UUID v7 id and records it as `Running`,
    /// owned by this process.
    async fn start_run(&self, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord>;

    /// Tells other processes that the run's owner is still alive. Every
    /// [`Store::commit_tenant_result`] does it too when the heartbeat is
    /// more than a minute old, so this is needed only when one tenant takes
    /// longer than two hours: past that, a process on another host (which
    /// cannot check whether the owner's PID is alive) takes a silent run
    /// for dead.
    async fn heartbeat_run(&self, run_id: &str) -> Result<()>;

    /// Finishes a run with its final status (not `Running`) and figures.
    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        stats: &Value,
    ) -> Result<()>;

    /// One run.
    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>>;

    /// The newest runs first.
    async fn list_runs(&self, limit: u32) -> Result<Vec<RunRecord>>;

    /// Marks as `Interrupted` every `Running` run whose process is gone;
    /// [`open`] calls it. Returns how many were marked.
    async fn recover_interrupted_runs(&self) -> Result<u64>;

    // ---- tenant results -----------------------------------------------

    /// Commits one tenant's result of a run in one transaction: the tenant
    /// run, its collector outcomes and, unless the tenant run failed, the
    /// dataprint. Committing the same tenant of the same run again replaces
    /// the earlier result. Returns the id of the tenant run's dataprint when
    /// it has one.
    ///
    /// When the dataprint's content, that is everything but its top-level
    /// `run` member, and the status equal those of the tenant's latest
    /// dataprint, no dataprint is added: the tenant run points at the latest
    /// one (whose id is returned and whose `confirmed_at` moves to this
    /// result's `finished_at`), and this run's `run` member is kept with the
    /// tenant run, for [`Store::dataprint_for_run`]. The producer must
    /// therefore put every field that changes between runs of an unchanged
    /// tenant in `run` and nowhere else; a volatile field elsewhere only
    /// costs space, never correctness.
    async fn commit_tenant_result(
        &self,
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
    ) -> Result<Option<DataprintId>>;

    /// The latest result of a tenant in any run, by `finished_at`.
    async fn last_tenant_run(&self, tenant_id: &str) -> Result<Option<TenantRunRecord>>;

    /// Every tenant result of a run, in start order.
    async fn tenant_runs(&self, run_id: &str) -> Result<Vec<TenantRunRecord>>;

    /// The collector outcomes of a tenant in a run, in the order given,
    /// complete with that run's `requests` and `duration_ms` (outcome lists
    /// are stored once per distinct content, the figures per run).
    async fn collector_outcomes(&self, run_id: &str, tenant_id: &str) -> Result<Vec<CollectorOutcomeRecord>>;

    // ---- dataprints ----------------------------------------------------

    /// A stored dataprint, byte-for-byte as first committed when serialized:
    /// its `run` member is that of the run that first produced its content
    /// ([`DataprintMeta::run_id`]). See [`Store::dataprint_for_run`] for the
    /// document as a later run committed it.
    async fn get_dataprint(&self, id: &DataprintId) -> Result<Option<Value>>;

    /// The dataprint of a tenant in a run, byte-for-byte as that run
    /// committed it: the stored content with that run's own `run` member.
    /// `None` when the tenant has no result in the run, the result failed,
    /// or its dataprint was pruned.
    async fn dataprint_for_run(&self, run_id: &str, tenant_id: &str) -> Result<Option<Value>>;

    /// What is known about a dataprint without loading it.
    async fn dataprint_meta(&self, id: &DataprintId) -> Result<Option<DataprintMeta>>;

    /// The newest dataprint of a tenant from an ok or partial result, with
    /// the `run` member of the run that last produced it (as
    /// [`Store::dataprint_for_run`] gives it for that run), so that an
    /// inspection building on it sees when each collection was last read;
    /// its meta's `confirmed_at` tells when that was. A later failed result
    /// never replaces it.
    async fn last_good_dataprint(&self, tenant_id: &str) -> Result<Option<(DataprintMeta, Value)>>;

    /// A tenant's distinct dataprints, oldest first, that were current at or
    /// after `since` (whose `confirmed_at` is at or after it). Consecutive
    /// entries always differ in content, so walking them walks real changes.
    async fn dataprints(&self, tenant_id: &str, since: Option<DateTime<Utc>>) -> Result<Vec<DataprintMeta>>;

    /// The dataprint of the tenant taken just before `before`, for diffs:
    /// the content the tenant had before that one.
    async fn previous_dataprint(&self, tenant_id: &str, before: &DataprintId)
    -> Result<Option<(DataprintMeta, Value)>>;

    /// Keeps the newest `keep_per_tenant` dataprints of each tenant (at
    /// least one, so the last good dataprint is never lost) and deletes the
    /// rest, then the collection blobs nothing references any more. Tenant
    /// results that pointed at a deleted dataprint keep their outcomes,
    /// figures included, and lose only the dataprint and its `run` member.
    async fn prune(&self, keep_per_tenant: usize) -> Result<PruneReport>;

    // ---- delta links ---------------------------------------------------

    /// The saved `@odata.deltaLink` of a tenant's collection.
    async fn get_delta_link(&self, tenant_id: &str, collection: &str) -> Result<Option<String>>;

    /// Saves a delta link, replacing the previous one.
    async fn set_delta_link(&self, tenant_id: &str, collection: &str, link: &str) -> Result<()>;

    /// Forgets a tenant's delta links (forces full reads). Returns how many.
    async fn clear_delta_links(&self, tenant_id: &str) -> Result<u64>;

    // ---- token cache ---------------------------------------------------

    /// One cache entry, decrypted. A wrong key or altered row is a
    /// [`StoreError::Crypto`] error naming the entry.
    async fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>>;

    /// Inserts or replaces an entry in one statement (refresh token
    /// rotation replaces the old token atomically).
    async fn cache_put(&self, record: &CacheRecord) -> Result<()>;

    /// Deletes one entry; false if there was none.
    async fn cache_delete(&self, key: &str) -> Result<bool>;

    /// Deletes a tenant's entries; returns how many.
    async fn cache_delete_tenant(&self, tenant_id: &str) -> Result<u64>;

    /// Deletes every entry; returns how many.
    async fn cache_clear(&self) -> Result<u64>;

    /// Every entry without its secret, by tenant and key.
    async fn cache_list(&self) -> Result<Vec<CacheRecordMeta>>;

    // ---- app credentials ----------------------------------------------

    /// Saves a tenant's app credential, replacing any previous one.
    async fn credential_put(&self, credential: &AppCredential) -> Result<()>;

    /// A tenant's app credential, decrypted.
    async fn credential_get(&self, tenant_id: &str) -> Result<Option<AppCredential>>;

    /// Every credential without its secret, by tenant.
    async fn credential_list(&self) -> Result<Vec<AppCredentialMeta>>;

    /// Deletes a tenant's credential; false if there was none.
    async fn credential_delete(&self, tenant_id: &str) -> Result<bool>;

    // ---- settings ------------------------------------------------------

    /// A setting.
    async fn setting_get(&self, key: &str) -> Result<Option<Value>>;

    /// Saves a setting.
    async fn setting_put(&self, key: &str, value: &Value) -> Result<()>;

    // ---- history: metrics, events, alerts, baselines ------------------

    /// Saves metric values of a tenant measured in a run at `at`.
    ///
    /// Series are run-length encoded: a value is stored as a new point only
    /// when it differs (as JSON text) from the value in effect at `at`, that
    /// is the latest point of the same tenant and name at or before `at`,
    /// so runs of an unchanged tenant add nothing. A value already saved for
    /// the same run, tenant and name is replaced. A point that the new value
    /// makes redundant (the next one, when it holds the same value) is
    /// removed, so the series stays a list of changes.
    async fn put_metrics(
        &self,
        run_id: &str,
        tenant_id: &str,
        at: DateTime<Utc>,
        values: &[(String, Value)],
    ) -> Result<()>;

    /// The change points of metric series, oldest first, narrowed by
    /// tenant, name and time: each point's value held from its `at` until
    /// the next point of the same tenant and name (and still holds for the
    /// last one). With `since`, only points at or after it are returned; the
    /// value in effect at `since` is the last point before it, which
    /// [`Store::latest_metrics`] or a query without `since` gives.
    async fn metric_series(
        &self,
        tenant_id: Option<&str>,
        name: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<MetricPoint>>;

    /// The current value of each metric of a tenant, by name. Each point's
    /// `at` and `run_id` say when the metric took that value, which is
    /// earlier than the latest run when the value has not changed since.
    async fn latest_metrics(&self, tenant_id: &str) -> Result<Vec<MetricPoint>>;

    /// Saves change events. Each event's `severity` field (`info`, `low`,
    /// `medium`, `high`, `critical`) is indexed; a missing one means info.
    async fn put_events(&self, run_id: &str, tenant_id: &str, at: DateTime<Utc>, events: &[Value]) -> Result<()>;

    /// Change events matching the filter, newest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>>;

    /// Inserts or replaces an alert by key (every field as given).
    async fn upsert_alert(&self, alert: &AlertRecord) -> Result<()>;

    /// Open alerts (not resolved), newest first, of one tenant or all.
    async fn open_alerts(&self, tenant_id: Option<&str>) -> Result<Vec<AlertRecord>>;

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

    /// Saves a baseline under a name.
    async fn baseline_put(&self, name: &str, value: &Value) -> Result<()>;

    /// A baseline.
    async fn baseline_get(&self, name: &str) -> Result<Option<Value>>;

    /// Every baseline's name and age, by name.
    async fn baseline_list(&self) -> Result<Vec<BaselineMeta>>;

    // ---- operations ----------------------------------------------------

    /// Bytes the database occupies (SQLite: the size of the database file
    /// once its WAL is checkpointed, free pages included; PostgreSQL:
    /// tables, indexes and TOAST of the store's schema).
    async fn storage_bytes(&self) -> Result<u64>;

    /// Closes connections gracefully (SQLite checkpoints its WAL). Dropping
    /// the store without it is safe; this only tidies up.
    async fn close(&self);
}

/// Opens the store at `url` and applies pending migrations.
///
/// - `sqlite://PATH?mode=rwc`, `sqlite:PATH`, `sqlite::memory:` or a bare
///   file path: SQLite. A new database file is created with mode 0600.
/// - `postgres://...` or `postgresql://...`: PostgreSQL.
///
/// Runs left `Running` by a process that is gone are marked `Interrupted`.
pub async fn open(url: &str, key: Key) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match classify_url(url)? {
        UrlKind::Sqlite => Arc::new(sqlite::SqliteStore::open(url, key).await?),
        UrlKind::Postgres => Arc::new(postgres::PgStore::open(url, key).await?),
    };
    store.recover_interrupted_runs().await?;
    Ok(store)
}

#[derive(Debug)]
enum UrlKind {
    Sqlite,
    Postgres,
}

fn classify_url(url: &str) -> Result<UrlKind> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(StoreError::UnsupportedUrl { scheme: String::new(), reason: "the database URL is empty".into() });
    }
    if trimmed.starts_with("sqlite:") {
        return Ok(UrlKind::Sqlite);
    }
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return Ok(UrlKind::Postgres);
    }
    match trimmed.split_once("://") {
        // Only the scheme is shown: the rest may hold a password.
        Some((scheme, _)) => Err(StoreError::UnsupportedUrl {
            scheme: scheme.to_owned(),
            reason: "expected sqlite:// or postgres://, or a file path".into(),
        }),
        None => Ok(UrlKind::Sqlite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls() {
        assert!(matches!(classify_url("sqlite://x.db?mode=rwc"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("sqlite::memory:"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("/var/lib/ts/store.db"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("store.db"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("postgres://u@h/db"), Ok(UrlKind::Postgres)));
        assert!(matches!(classify_url("postgresql://u@h/db"), Ok(UrlKind::Postgres)));
        let err = classify_url("mysql://user:hunter2@h/db").expect_err("refused");
        assert!(!err.to_string().contains("hunter2"));
        assert!(classify_url("  ").is_err());
    }

    #[test]
    fn enums_round_trip_and_severity_orders() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
        }
        assert!("RUNNING".parse::<RunStatus>().is_err());
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Info < Severity::Low);
        assert_eq!(serde_json::to_string(&TenantAuth::Gdap).expect("json"), "\"gdap\"");
    }
}
