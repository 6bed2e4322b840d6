//! The records the store keeps, and their identifiers.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vocab::{Severity, TenantId};

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
        /// Started and not finished; see [`crate::RunStore::heartbeat_run`].
        Running = "running",
        /// Every tenant succeeded.
        Ok = "ok",
        /// Some tenants or collectors failed.
        Partial = "partial",
        /// Nothing succeeded.
        Failed = "failed",
        /// The process running it died; marked by the next [`crate::open`].
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
        /// A federated credential (workload identity federation): the secret is where the external
        /// identity provider's token comes from, `file:PATH` or `command:COMMAND`.
        Federated = "federated",
    }
}

/// The identifier of a run (a UUID v7 assigned by [`crate::RunStore::start_run`], so ids sort by
/// time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// Wraps an id read from elsewhere (a CLI argument, an API path, a job).
    pub fn new(id: impl Into<String>) -> RunId {
        RunId(id.into().trim().to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for RunId {
    fn from(id: String) -> RunId {
        RunId::new(id)
    }
}

impl From<&str> for RunId {
    fn from(id: &str) -> RunId {
        RunId::new(id)
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for RunId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
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

impl AsRef<str> for DataprintId {
    fn as_ref(&self) -> &str {
        &self.0
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
    pub id: TenantId,
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
    /// A note an engineer gave the tenant, shown beside its name (never instead of it). Set with
    /// [`crate::TenantStore::set_tenant_label`]; an upsert leaves it as it is.
    #[serde(default)]
    pub label: Option<String>,
}

/// One run of tenantscope (an inspection, a doctor run...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// A UUID v7, assigned by [`crate::RunStore::start_run`].
    pub id: RunId,
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
    pub run_id: RunId,
    /// The tenant.
    pub tenant_id: TenantId,
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

/// What a tenant's commit writes besides its result, in the same transaction
/// ([`crate::RunStore::commit_tenant_result_with`]), so that a tenant costs one write. Each part
/// has the meaning of the store method it names; the tenant is the tenant run's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithResult {
    /// The tenant's record, upserted before the result (`upsert_tenant`); its id must be the
    /// tenant run's.
    #[serde(default)]
    pub tenant: Option<TenantRecord>,
    /// The tenant's domains of one source, replacing those known (`set_tenant_domains`).
    #[serde(default)]
    pub domains: Option<DomainsOf>,
    /// The run's metric values at an instant (`put_metrics`), put only when the commit has a
    /// dataprint.
    #[serde(default)]
    pub metrics: Option<MetricsAt>,
    /// Links that continue the tenant's delta reads, by collection (`set_delta_link`), saved only
    /// when the commit has a dataprint: they lead on from the data it holds.
    #[serde(default)]
    pub delta_links: Vec<(String, String)>,
    /// Collections of the dataprint that are exactly those of an earlier dataprint of the same
    /// tenant, moved from it unchanged. The store then takes their content hash from that
    /// dataprint instead of serialising and hashing them again; a hint it checks (the dataprint
    /// must be the tenant's and hold a collection of that name) and ignores when it does not hold.
    #[serde(default)]
    pub reused: Option<ReusedFrom>,
    /// Collections of the dataprint given as their JSON bytes rather than in the document, where
    /// they are `null`: written from Graph's answers without being read as trees. The store keeps
    /// the bytes as given, exactly as it would keep the bytes of a collection in the document. Not
    /// sent over the network: a store reached that way gets them in the document
    /// ([`WithResult::embed_unparsed`]).
    #[serde(skip)]
    pub unparsed: Vec<UnparsedCollection>,
}

/// A collection given as its JSON bytes (see [`WithResult::unparsed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnparsedCollection {
    pub name: String,
    /// Shared, so that the commit and the change history use one copy.
    pub json: std::sync::Arc<Vec<u8>>,
}

impl WithResult {
    /// The bytes of an unparsed collection.
    pub fn unparsed(&self, name: &str) -> Option<&[u8]> {
        self.unparsed.iter().find(|u| u.name == name).map(|u| u.json.as_slice())
    }

    /// Puts the unparsed collections, parsed, into their places in `dataprint`, for whoever needs
    /// the document whole.
    pub fn embed_unparsed(&self, dataprint: &mut Value) -> Result<(), serde_json::Error> {
        embed_unparsed(&self.unparsed, dataprint)
    }
}

/// [`WithResult::embed_unparsed`] for collections held apart from a [`WithResult`].
pub fn embed_unparsed(unparsed: &[UnparsedCollection], dataprint: &mut Value) -> Result<(), serde_json::Error> {
    for u in unparsed {
        if let Some(collections) = dataprint.get_mut("collections").and_then(Value::as_object_mut) {
            collections.insert(u.name.clone(), serde_json::from_slice(&u.json)?);
        }
    }
    Ok(())
}

/// Collections moved unchanged from one earlier dataprint (see [`WithResult::reused`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReusedFrom {
    /// The earlier dataprint, the tenant's.
    pub dataprint: DataprintId,
    /// The names of the collections taken from it as they were.
    pub collections: Vec<String>,
    /// Of `collections`, those the producer never read (loaded with
    /// [`crate::DataprintStore::last_good_dataprint_unread`]): `null` in the document, their content
    /// is the earlier dataprint's. Unlike the others these are not a hint: a commit that cannot
    /// carry one of them from that dataprint is refused rather than stored without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
}

/// A tenant's domains as one source knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainsOf {
    /// Where the list comes from (`dataprint`, `graph`...).
    pub source: String,
    /// The domains.
    pub domains: Vec<String>,
}

/// A run's metric values, measured at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsAt {
    /// When the values were measured.
    pub at: DateTime<Utc>,
    /// The values by metric name.
    pub values: Vec<(String, Value)>,
}

/// The outcome of one collector for one tenant in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorOutcomeRecord {
    /// The run.
    pub run_id: RunId,
    /// The tenant.
    pub tenant_id: TenantId,
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
    pub run_id: RunId,
    /// The tenant it describes.
    pub tenant_id: TenantId,
    /// When it was taken (the `finished_at` of the first tenant result with
    /// this content).
    pub taken_at: DateTime<Utc>,
    /// Ok or partial (failed tenant results store no dataprint).
    pub status: TenantRunStatus,
    /// The `finished_at` of the latest tenant result that produced this
    /// content (`taken_at` until another run confirms it).
    pub confirmed_at: DateTime<Utc>,
    /// The run of that latest tenant result.
    pub confirmed_run_id: RunId,
}

/// What [`crate::DataprintStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Dataprints deleted.
    pub dataprints_deleted: u64,
    /// Collection sets no longer used by any dataprint.
    pub sets_deleted: u64,
    /// Collection blobs no longer used by any set.
    pub blobs_deleted: u64,
    /// Tenant results deleted (pruning by age only).
    #[serde(default)]
    pub tenant_runs: u64,
    /// Runs deleted once nothing referred to them (pruning by age only).
    #[serde(default)]
    pub runs_deleted: u64,
    /// Metric points deleted; the point in effect at the cutoff is kept (pruning by age only).
    #[serde(default)]
    pub metrics_deleted: u64,
    /// Change events deleted (pruning by age only).
    #[serde(default)]
    pub events_deleted: u64,
    /// Resolved alerts deleted, with their deliveries (pruning by age only).
    #[serde(default)]
    pub alerts_deleted: u64,
}

/// What [`crate::TenantStore::forget_tenant`] removed: everything held about one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetReport {
    /// The tenant's record (name, domain, GDAP view) existed and was deleted.
    pub tenant: bool,
    pub dataprints: u64,
    /// Collection blobs that only this tenant's dataprints used.
    pub blobs: u64,
    pub tenant_runs: u64,
    pub metrics: u64,
    pub events: u64,
    pub alerts: u64,
    /// Notifications about its alerts that were still waiting to be sent.
    pub notifications: u64,
    pub tokens: u64,
    pub credentials: u64,
    pub delta_links: u64,
    pub domains: u64,
    /// Baselines taken from this tenant, by name.
    pub baselines: Vec<String>,
    /// Runs whose recorded warnings named the tenant, rewritten without them.
    pub runs_scrubbed: u64,
    /// Job entries, schedule, pool, mutes.
    pub other: u64,
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
    pub tenant_id: TenantId,
    /// The app (client) id.
    pub client_id: String,
    /// Secret or certificate.
    pub kind: CredentialKind,
    /// The client secret, the PEM private key, or a federated credential's token source; encrypted at rest.
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
    pub tenant_id: TenantId,
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
/// [`crate::HistoryStore::put_metrics`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The run that measured the value first.
    pub run_id: RunId,
    /// The tenant.
    pub tenant_id: TenantId,
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
    pub tenant: Option<TenantId>,
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
    pub run_id: RunId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// When.
    pub at: DateTime<Utc>,
    /// The event's `severity` field (`info` when it had none).
    pub severity: Severity,
    /// The event as given to [`crate::HistoryStore::put_events`].
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
    pub tenant_id: TenantId,
    /// How severe.
    pub severity: Severity,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Details for people and notifications.
    pub payload: Value,
    /// When someone acknowledged it. Set by [`crate::AlertStore::ack_alert`] only; an upsert leaves
    /// it as it is.
    #[serde(default)]
    pub acked_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    #[serde(default)]
    pub acked_by: Option<String>,
    /// Why, in their words.
    #[serde(default)]
    pub ack_reason: Option<String>,
}

/// A rule silenced for a tenant until a date: its alerts are recorded but not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MuteRecord {
    pub tenant_id: TenantId,
    pub rule: String,
    pub until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub reason: Option<String>,
}

text_enum! {
    /// Where a notification stands.
    OutboxStatus {
        /// Waiting to be sent (again).
        Pending = "pending",
        /// The target accepted it.
        Delivered = "delivered",
        /// Given up: too many attempts, too old, or its target is gone.
        Expired = "expired",
    }
}

/// One notification of one alert transition to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Increasing in the order transitions were queued.
    pub id: i64,
    pub alert_key: String,
    /// `opened`, `resolved` or `acknowledged`.
    pub transition: String,
    /// The notification target (a webhook's name).
    pub target: String,
    /// The alert as it was at the transition, with what the message needs.
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub attempts: i64,
    pub status: OutboxStatus,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What became of a delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The target accepted it.
    Delivered,
    /// It failed; try again at `at`.
    Retry { error: String, at: DateTime<Utc> },
    /// It failed for good.
    Expired { error: String },
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

text_enum! {
    /// Where a job is in its life.
    JobStatus {
        /// Waiting for a worker (or for its retry time, `not_before`).
        Queued = "queued",
        /// Claimed by a worker that holds its lease.
        Running = "running",
        /// Finished; its result is in `result`.
        Succeeded = "succeeded",
        /// Failed `max_attempts` times (or its lease expired as often); `last_error` says why.
        Dead = "dead",
        /// Cancelled by an operator before it finished.
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub const fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Dead | JobStatus::Cancelled)
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// What to do, for example `inspect` or `doctor`; the worker interprets it with `params`.
    pub kind: String,
    pub params: Value,
    /// The agent pool that runs it (`local`: the server's own worker).
    pub pool: String,
    /// Tries before the job is dead.
    pub max_attempts: i64,
    /// Not claimed before this time.
    pub not_before: DateTime<Utc>,
    /// Who asked for it: `scheduler`, a user, an API token.
    pub created_by: String,
}

/// A job as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub params: Value,
    pub pool: String,
    pub status: JobStatus,
    /// Claims so far (each claim is an attempt).
    pub attempts: i64,
    pub max_attempts: i64,
    /// The fence of the latest claim; see [`JobLease`].
    pub fence: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub not_before: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub result: Option<Value>,
    /// The worker's latest progress report.
    pub progress: Option<Value>,
}

impl JobRecord {
    /// The lease this record's current claim holds.
    pub fn lease(&self) -> Option<JobLease> {
        Some(JobLease { job_id: self.id.clone(), fence: self.fence, owner: self.lease_owner.clone()? })
    }
}

/// What a worker holds while it runs a job. Every write it makes for the job carries the fence;
/// once the job is claimed again (its lease expired) the old fence is refused with
/// [`crate::StoreError::Fenced`], so a late worker cannot commit anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLease {
    pub job_id: String,
    pub fence: i64,
    pub owner: String,
}

/// How a worker's attempt of a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Done: the job is final with this result.
    Succeeded(Value),
    /// Failed: retried at `retry_at` unless it has used all its attempts (then dead).
    Failed { error: String, retry_at: DateTime<Utc> },
    /// Stopped because an operator cancelled it.
    Cancelled,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    /// Only jobs created before this id (ids sort by creation), for pagination.
    pub before: Option<String>,
    pub limit: u32,
}

/// An operator's session: the cookie holds a random id, the store only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id_hash: String,
    /// The operator's stable identity (the ID token's `oid`, or `break-glass:NAME`).
    pub subject: String,
    pub name: String,
    pub role: String,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub address: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An API token: shown once when created, kept as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One line of the audit log: who did what, when, from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store; 0 in an entry to append.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub address: Option<String>,
    pub detail: Value,
}

/// Which audit entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only entries with an id below this one, for pagination.
    pub before: Option<i64>,
    pub limit: u32,
}

/// An agent: a process that runs inspections from its own network, enrolled with a one-time
/// token and authenticated afterwards by its own key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    pub pool: String,
    /// The Ed25519 public key that verifies the agent's tokens (base64).
    pub signing_key: String,
    /// The X25519 public key secrets are sealed to (base64).
    pub sealing_key: String,
    /// The version the agent last reported.
    pub version: String,
    pub enrolled_at: DateTime<Utc>,
    /// Who created the enrollment token the agent used.
    pub enrolled_by: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The agent's last heartbeat, as it reported it.
    pub health: Option<Value>,
}

/// A one-time enrollment token, kept as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    pub id: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// The name and pool the agent that uses the token gets.
    pub name: String,
    pub pool: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// The agent that used it.
    pub agent_id: Option<String>,
}

/// What an agent presents when it enrolls.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAgent {
    pub id: String,
    /// A name the agent asked for; the token's name when absent.
    pub name: Option<String>,
    pub signing_key: String,
    pub sealing_key: String,
    pub version: String,
}

/// Tags as people type them, checked and made canonical: trimmed, lower case, sorted, without
/// repeats or empty ones; each 1 to 40 letters, digits, `-`, `_`, `.` or `:`, at most 20 a tenant.
/// `Err` says what is wrong, for the person who typed it.
pub fn normalize_tags(tags: &[String]) -> std::result::Result<Vec<String>, String> {
    let mut out: Vec<String> = tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
    out.sort();
    out.dedup();
    if out.len() > 20 {
        return Err("at most 20 tags a tenant".into());
    }
    if let Some(bad) =
        out.iter().find(|t| t.chars().count() > 40 || !t.chars().all(|c| c.is_alphanumeric() || "-_.:".contains(c)))
    {
        return Err(format!("tag {bad:?}: 1 to 40 letters, digits, '-', '_', '.' or ':'"));
    }
    Ok(out)
}

/// An engineer's label for a tenant, checked: trimmed, 1 to 80 characters, none of them control
/// characters (it is shown in terminals and pages beside the tenant's name).
pub fn normalize_label(label: &str) -> std::result::Result<String, String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 80 {
        return Err("a label is 1 to 80 characters".into());
    }
    if label.chars().any(char::is_control) {
        return Err("a label cannot hold control characters".into());
    }
    Ok(label.to_string())
}

#[cfg(test)]
mod tag_tests {
    use super::{normalize_label, normalize_tags};

    #[test]
    fn tags_and_labels_are_checked_as_typed() {
        let typed = [" Prod ", "prod", "", "site:LON", "a.b_c-d"].map(String::from);
        assert_eq!(normalize_tags(&typed), Ok(vec!["a.b_c-d".into(), "prod".into(), "site:lon".into()]));
        assert!(normalize_tags(&["two words".into()]).is_err());
        assert!(normalize_tags(&["x".repeat(41)]).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(normalize_tags(&many).is_err());
        assert_eq!(normalize_label("  Contoso (EU)  "), Ok("Contoso (EU)".into()));
        assert!(normalize_label("   ").is_err());
        assert!(normalize_label("bad\u{1b}[31m").is_err());
        assert!(normalize_label(&"x".repeat(81)).is_err());
    }
}
