//! What an inspection needs of its store, and the same as messages.
//!
//! A run on the command line or in the server's own worker uses the store directly (every
//! [`Store`] is an [`InspectStore`]). An agent runs the same inspection in another process, on
//! another machine: it has no database, and each of these calls travels to the server as a
//! [`Call`], which the server checks against the agent's job lease and answers with
//! [`dispatch`]. Keeping the list here, next to the code that makes the calls, is what keeps the
//! two in step: a new store call in a run does not compile until it has a message.
//!
//! The token cache is not here: it is the `microsoft` crate's [`microsoft::cache::TokenStore`],
//! which an agent keeps itself. App credentials travel sealed to the agent's key, so
//! [`Call::CredentialGet`] is answered by the server, not by [`dispatch`].

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{
    AlertRecord, AlertStore, AppCredential, AppCredentialMeta, CollectorOutcomeRecord, DataprintId, DataprintMeta,
    DataprintStore, HistoryStore, JobLease, JobStore, MetricPoint, MuteRecord, Result, RunId, RunRecord, RunStatus,
    RunStore, SecretStore, Store, StoreError, TenantId, TenantRecord, TenantRunRecord, TenantStore, WithResult,
};

/// The store calls of an inspection run (and of resolving a tenant for `doctor`). Each has the
/// meaning of the [`Store`] method of the same name.
#[async_trait]
pub trait InspectStore: Send + Sync {
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>>;
    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<()>;
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>>;
    async fn resolve_tenants(&self, query: &str) -> Result<Vec<TenantRecord>>;
    async fn tenant_domains(&self, tenant_id: &TenantId) -> Result<Vec<String>>;
    /// The domains of each of these tenants ([`TenantStore::all_tenant_domains`]); a store reached
    /// over the network is asked for each.
    async fn domains_of(&self, ids: &[TenantId]) -> Result<HashMap<TenantId, Vec<String>>> {
        one_by_one::domains_of(self, ids).await
    }
    async fn set_tenant_domains(&self, tenant_id: &TenantId, source: &str, domains: &[String]) -> Result<()>;
    /// [`TenantStore::upsert_tenants_with_domains`]; a store reached over the network is called
    /// twice per tenant.
    async fn upsert_tenants_with_domains(&self, tenants: &[(TenantRecord, Vec<String>)], source: &str) -> Result<()> {
        one_by_one::upsert_tenants_with_domains(self, tenants, source).await
    }
    async fn mark_gone(&self, tenant_id: &TenantId, at: DateTime<Utc>) -> Result<bool>;
    async fn start_run(&self, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord>;
    async fn start_job_run(&self, lease: &JobLease, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord>;
    async fn job_tenants(&self, job_id: &str) -> Result<Vec<TenantId>>;
    async fn finish_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        stats: &Value,
    ) -> Result<()>;
    async fn commit_tenant_result_with(
        &self,
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
        with: &WithResult,
    ) -> Result<Option<DataprintId>>;
    async fn last_good_dataprint(&self, tenant_id: &TenantId) -> Result<Option<(DataprintMeta, Value)>>;
    /// [`DataprintStore::last_good_dataprint_unread`]; a store reached over the network reads
    /// every collection.
    async fn last_good_dataprint_unread(
        &self,
        tenant_id: &TenantId,
        unread: &[&str],
    ) -> Result<Option<(DataprintMeta, Value)>> {
        let _ = unread;
        self.last_good_dataprint(tenant_id).await
    }
    /// Every tenant's latest result ([`RunStore::latest_tenant_runs`]); a store reached over the
    /// network gives none, and its runs take tenants in the order they are given.
    async fn latest_tenant_runs(&self) -> Result<Vec<TenantRunRecord>> {
        Ok(Vec::new())
    }
    async fn get_dataprint(&self, id: &DataprintId) -> Result<Option<Value>>;
    /// [`DataprintStore::dataprint_collection`]; a store reached over the network reads the whole
    /// dataprint and projects here.
    async fn dataprint_collection(
        &self,
        id: &DataprintId,
        name: &str,
        fields: Option<&[String]>,
    ) -> Result<Option<Value>> {
        one_by_one::dataprint_collection(self, id, name, fields).await
    }
    async fn dataprint_meta(&self, id: &DataprintId) -> Result<Option<DataprintMeta>>;
    async fn get_delta_link(&self, tenant_id: &TenantId, collection: &str) -> Result<Option<String>>;
    /// The saved delta links of some of a tenant's collections ([`DataprintStore::delta_links`]); a
    /// store reached over the network asks for each.
    async fn delta_links(&self, tenant_id: &TenantId, collections: &[&str]) -> Result<Vec<(String, String)>> {
        one_by_one::delta_links(self, tenant_id, collections).await
    }
    async fn set_delta_link(&self, tenant_id: &TenantId, collection: &str, link: &str) -> Result<()>;
    async fn credential_list(&self) -> Result<Vec<AppCredentialMeta>>;
    async fn credential_get(&self, tenant_id: &TenantId) -> Result<Option<AppCredential>>;
    async fn put_events(&self, run_id: &RunId, tenant_id: &TenantId, at: DateTime<Utc>, events: &[Value])
    -> Result<()>;
    async fn put_metrics(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        values: &[(String, Value)],
    ) -> Result<()>;
    async fn open_alerts(&self, tenant_id: Option<&TenantId>) -> Result<Vec<AlertRecord>>;
    async fn latest_metrics(&self, tenant_id: &TenantId) -> Result<Vec<MetricPoint>>;
    async fn mutes(&self) -> Result<Vec<MuteRecord>>;
    async fn upsert_alert(&self, alert: &AlertRecord) -> Result<()>;
    async fn record_transition(&self, alert: &AlertRecord, transition: &str, notify: &[(String, Value)]) -> Result<()>;
}

/// The defaults of [`InspectStore`]'s calls that a store reached over the network may lack, made
/// of the older calls: also what an agent falls back on with a server that does not know the newer
/// ones.
pub mod one_by_one {
    use super::*;

    /// [`InspectStore::domains_of`], asking for each tenant's domains.
    pub async fn domains_of<S: InspectStore + ?Sized>(
        source: &S,
        ids: &[TenantId],
    ) -> Result<HashMap<TenantId, Vec<String>>> {
        let mut out = HashMap::new();
        for id in ids {
            out.insert(id.clone(), source.tenant_domains(id).await?);
        }
        Ok(out)
    }

    /// [`InspectStore::upsert_tenants_with_domains`], a write per tenant and another for its domains.
    pub async fn upsert_tenants_with_domains<S: InspectStore + ?Sized>(
        source: &S,
        tenants: &[(TenantRecord, Vec<String>)],
        domain_source: &str,
    ) -> Result<()> {
        for (tenant, domains) in tenants {
            source.upsert_tenant(tenant).await?;
            source.set_tenant_domains(&tenant.id, domain_source, domains).await?;
        }
        Ok(())
    }

    /// [`InspectStore::delta_links`], asking for each collection's link.
    pub async fn delta_links<S: InspectStore + ?Sized>(
        source: &S,
        tenant_id: &TenantId,
        collections: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for name in collections {
            if let Some(link) = source.get_delta_link(tenant_id, name).await? {
                out.push((name.to_string(), link));
            }
        }
        Ok(out)
    }

    /// [`InspectStore::dataprint_collection`], reading the whole dataprint and projecting here.
    pub async fn dataprint_collection<S: InspectStore + ?Sized>(
        source: &S,
        id: &DataprintId,
        name: &str,
        fields: Option<&[String]>,
    ) -> Result<Option<Value>> {
        let collection = source
            .get_dataprint(id)
            .await?
            .and_then(|mut dp| dp.get_mut("collections").and_then(|c| c.get_mut(name)).map(Value::take))
            .filter(|c| !c.is_null());
        Ok(match fields {
            Some(fields) => collection.map(|c| store::project_collection(c, fields)),
            None => collection,
        })
    }
}

#[async_trait]
impl<S: Store + ?Sized> InspectStore for S {
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        TenantStore::list_tenants(self).await
    }
    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        TenantStore::upsert_tenant(self, tenant).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        TenantStore::get_tenant(self, id).await
    }
    async fn resolve_tenants(&self, query: &str) -> Result<Vec<TenantRecord>> {
        TenantStore::resolve_tenants(self, query).await
    }
    async fn tenant_domains(&self, tenant_id: &TenantId) -> Result<Vec<String>> {
        TenantStore::tenant_domains(self, tenant_id).await
    }
    async fn domains_of(&self, ids: &[TenantId]) -> Result<HashMap<TenantId, Vec<String>>> {
        let mut all = TenantStore::all_tenant_domains(self).await?;
        Ok(ids.iter().filter_map(|id| all.remove_entry(id)).collect())
    }
    async fn set_tenant_domains(&self, tenant_id: &TenantId, source: &str, domains: &[String]) -> Result<()> {
        TenantStore::set_tenant_domains(self, tenant_id, source, domains).await
    }
    async fn upsert_tenants_with_domains(&self, tenants: &[(TenantRecord, Vec<String>)], source: &str) -> Result<()> {
        TenantStore::upsert_tenants_with_domains(self, tenants, source).await
    }
    async fn mark_gone(&self, tenant_id: &TenantId, at: DateTime<Utc>) -> Result<bool> {
        TenantStore::mark_gone(self, tenant_id, at).await
    }
    async fn start_run(&self, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
        RunStore::start_run(self, kind, started_at).await
    }
    async fn start_job_run(&self, lease: &JobLease, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
        JobStore::start_job_run(self, lease, kind, started_at).await
    }
    async fn job_tenants(&self, job_id: &str) -> Result<Vec<TenantId>> {
        JobStore::job_tenants(self, job_id).await
    }
    async fn finish_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        stats: &Value,
    ) -> Result<()> {
        RunStore::finish_run(self, run_id, status, finished_at, stats).await
    }
    async fn commit_tenant_result_with(
        &self,
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
        with: &WithResult,
    ) -> Result<Option<DataprintId>> {
        RunStore::commit_tenant_result_with(self, tenant_run, outcomes, dataprint, with).await
    }
    async fn last_good_dataprint(&self, tenant_id: &TenantId) -> Result<Option<(DataprintMeta, Value)>> {
        DataprintStore::last_good_dataprint(self, tenant_id).await
    }
    async fn last_good_dataprint_unread(
        &self,
        tenant_id: &TenantId,
        unread: &[&str],
    ) -> Result<Option<(DataprintMeta, Value)>> {
        DataprintStore::last_good_dataprint_unread(self, tenant_id, unread).await
    }
    async fn latest_tenant_runs(&self) -> Result<Vec<TenantRunRecord>> {
        RunStore::latest_tenant_runs(self).await
    }
    async fn get_dataprint(&self, id: &DataprintId) -> Result<Option<Value>> {
        DataprintStore::get_dataprint(self, id).await
    }
    async fn dataprint_meta(&self, id: &DataprintId) -> Result<Option<DataprintMeta>> {
        DataprintStore::dataprint_meta(self, id).await
    }
    async fn get_delta_link(&self, tenant_id: &TenantId, collection: &str) -> Result<Option<String>> {
        DataprintStore::get_delta_link(self, tenant_id, collection).await
    }
    async fn dataprint_collection(
        &self,
        id: &DataprintId,
        name: &str,
        fields: Option<&[String]>,
    ) -> Result<Option<Value>> {
        DataprintStore::dataprint_collection(self, id, name, fields).await
    }
    async fn delta_links(&self, tenant_id: &TenantId, collections: &[&str]) -> Result<Vec<(String, String)>> {
        let mut links = DataprintStore::delta_links(self, tenant_id).await?;
        links.retain(|(name, _)| collections.contains(&name.as_str()));
        Ok(links)
    }
    async fn set_delta_link(&self, tenant_id: &TenantId, collection: &str, link: &str) -> Result<()> {
        DataprintStore::set_delta_link(self, tenant_id, collection, link).await
    }
    async fn credential_list(&self) -> Result<Vec<AppCredentialMeta>> {
        SecretStore::credential_list(self).await
    }
    async fn credential_get(&self, tenant_id: &TenantId) -> Result<Option<AppCredential>> {
        SecretStore::credential_get(self, tenant_id).await
    }
    async fn put_events(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        events: &[Value],
    ) -> Result<()> {
        HistoryStore::put_events(self, run_id, tenant_id, at, events).await
    }
    async fn put_metrics(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        values: &[(String, Value)],
    ) -> Result<()> {
        HistoryStore::put_metrics(self, run_id, tenant_id, at, values).await
    }
    async fn open_alerts(&self, tenant_id: Option<&TenantId>) -> Result<Vec<AlertRecord>> {
        AlertStore::open_alerts(self, tenant_id).await
    }
    async fn latest_metrics(&self, tenant_id: &TenantId) -> Result<Vec<MetricPoint>> {
        HistoryStore::latest_metrics(self, tenant_id).await
    }
    async fn mutes(&self) -> Result<Vec<MuteRecord>> {
        AlertStore::mutes(self).await
    }
    async fn upsert_alert(&self, alert: &AlertRecord) -> Result<()> {
        AlertStore::upsert_alert(self, alert).await
    }
    async fn record_transition(&self, alert: &AlertRecord, transition: &str, notify: &[(String, Value)]) -> Result<()> {
        AlertStore::record_transition(self, alert, transition, notify).await
    }
}

/// One [`InspectStore`] call as a message, with its arguments owned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    ListTenants,
    UpsertTenant { tenant: TenantRecord },
    GetTenant { id: TenantId },
    ResolveTenants { query: String },
    TenantDomains { tenant_id: TenantId },
    SetTenantDomains { tenant_id: TenantId, source: String, domains: Vec<String> },
    MarkGone { tenant_id: TenantId, at: DateTime<Utc> },
    StartRun { kind: String, started_at: DateTime<Utc> },
    StartJobRun { lease: JobLease, kind: String, started_at: DateTime<Utc> },
    JobTenants { job_id: String },
    FinishRun { run_id: RunId, status: RunStatus, finished_at: DateTime<Utc>, stats: Value },
    CommitTenantResult(Box<Commit>),
    LastGoodDataprint { tenant_id: TenantId },
    GetDataprint { id: DataprintId },
    DataprintMeta { id: DataprintId },
    GetDeltaLink { tenant_id: TenantId, collection: String },
    // The calls below came with the run's savings on an unchanged tenant (docs/performance.md,
    // items 15 to 23); a server one minor version older does not know them, and an agent then
    // falls back to the calls above ([`one_by_one`]).
    LastGoodDataprintUnread { tenant_id: TenantId, unread: Vec<String> },
    LatestTenantRuns,
    DomainsOf { ids: Vec<TenantId> },
    DeltaLinks { tenant_id: TenantId, collections: Vec<String> },
    DataprintCollection { id: DataprintId, name: String, fields: Option<Vec<String>> },
    UpsertTenantsWithDomains { tenants: Vec<(TenantRecord, Vec<String>)>, source: String },
    SetDeltaLink { tenant_id: TenantId, collection: String, link: String },
    CredentialList,
    CredentialGet { tenant_id: TenantId },
    PutEvents { run_id: RunId, tenant_id: TenantId, at: DateTime<Utc>, events: Vec<Value> },
    PutMetrics { run_id: RunId, tenant_id: TenantId, at: DateTime<Utc>, values: Vec<(String, Value)> },
    OpenAlerts { tenant_id: Option<TenantId> },
    LatestMetrics { tenant_id: TenantId },
    Mutes,
    UpsertAlert { alert: AlertRecord },
    RecordTransition { alert: AlertRecord, transition: String, notify: Vec<(String, Value)> },
}

/// Reads a [`Call`] without first copying a commit's dataprint into an intermediate tree.
///
/// serde reads an internally tagged enum by buffering the whole object until it has seen the tag,
/// which for a commit is the tenant's whole dataprint (hundreds of megabytes for a large tenant's
/// first run), parsed once into serde's own tree and then again into the dataprint. Every sender
/// writes `op` first (serde does), so when the object starts with `op` a commit is read straight
/// into [`Commit`], and any other call, being small, is gathered into a `Value` and read as usual.
/// An object in another order is read the usual way too, only slower.
pub fn deserialize_call<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Call, D::Error> {
    use serde::de::{Error as _, MapAccess, Visitor};

    struct CallVisitor;

    impl<'de> Visitor<'de> for CallVisitor {
        type Value = Call;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a store call, an object with its `op`")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Call, A::Error> {
            let mut gathered = serde_json::Map::new();
            if let Some(key) = map.next_key::<String>()? {
                if key == "op" {
                    let op: String = map.next_value()?;
                    if op == "commit_tenant_result" {
                        let commit = Commit::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                        return Ok(Call::CommitTenantResult(Box::new(commit)));
                    }
                    gathered.insert(key, Value::String(op));
                } else {
                    gathered.insert(key, map.next_value()?);
                }
            }
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                gathered.insert(key, value);
            }
            Call::deserialize(Value::Object(gathered)).map_err(A::Error::custom)
        }
    }

    deserializer.deserialize_map(CallVisitor)
}

/// The arguments of [`Call::CommitTenantResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    pub tenant_run: TenantRunRecord,
    pub outcomes: Vec<CollectorOutcomeRecord>,
    pub dataprint: Option<Value>,
    /// Absent from an agent that predates it, which writes each part with a call of its own.
    #[serde(default)]
    pub with: WithResult,
}

impl Call {
    /// Whether the call changes the store. A write must come from whoever holds the job's lease;
    /// the store fences commits itself, and the server refuses every write of an agent whose lease
    /// is gone.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Call::UpsertTenant { .. }
                | Call::UpsertTenantsWithDomains { .. }
                | Call::SetTenantDomains { .. }
                | Call::MarkGone { .. }
                | Call::StartRun { .. }
                | Call::StartJobRun { .. }
                | Call::FinishRun { .. }
                | Call::CommitTenantResult(_)
                | Call::SetDeltaLink { .. }
                | Call::PutEvents { .. }
                | Call::PutMetrics { .. }
                | Call::UpsertAlert { .. }
                | Call::RecordTransition { .. }
        )
    }

    /// The call's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Call::ListTenants => "list_tenants",
            Call::UpsertTenant { .. } => "upsert_tenant",
            Call::GetTenant { .. } => "get_tenant",
            Call::ResolveTenants { .. } => "resolve_tenants",
            Call::TenantDomains { .. } => "tenant_domains",
            Call::SetTenantDomains { .. } => "set_tenant_domains",
            Call::MarkGone { .. } => "mark_gone",
            Call::StartRun { .. } => "start_run",
            Call::StartJobRun { .. } => "start_job_run",
            Call::JobTenants { .. } => "job_tenants",
            Call::FinishRun { .. } => "finish_run",
            Call::CommitTenantResult(_) => "commit_tenant_result",
            Call::LastGoodDataprint { .. } => "last_good_dataprint",
            Call::GetDataprint { .. } => "get_dataprint",
            Call::DataprintMeta { .. } => "dataprint_meta",
            Call::GetDeltaLink { .. } => "get_delta_link",
            Call::LastGoodDataprintUnread { .. } => "last_good_dataprint_unread",
            Call::LatestTenantRuns => "latest_tenant_runs",
            Call::DomainsOf { .. } => "domains_of",
            Call::DeltaLinks { .. } => "delta_links",
            Call::DataprintCollection { .. } => "dataprint_collection",
            Call::UpsertTenantsWithDomains { .. } => "upsert_tenants_with_domains",
            Call::SetDeltaLink { .. } => "set_delta_link",
            Call::CredentialList => "credential_list",
            Call::CredentialGet { .. } => "credential_get",
            Call::PutEvents { .. } => "put_events",
            Call::PutMetrics { .. } => "put_metrics",
            Call::OpenAlerts { .. } => "open_alerts",
            Call::LatestMetrics { .. } => "latest_metrics",
            Call::Mutes => "mutes",
            Call::UpsertAlert { .. } => "upsert_alert",
            Call::RecordTransition { .. } => "record_transition",
        }
    }
}

fn reply<T: Serialize>(value: T) -> Result<Value> {
    Ok(serde_json::to_value(value)?)
}

/// Answers a call from `store`; the answer is the method's result as JSON. [`Call::CredentialGet`]
/// is refused: a secret leaves the server only sealed, which is the caller's business.
pub async fn dispatch<S: InspectStore + ?Sized>(store: &S, call: Call) -> Result<Value> {
    match call {
        Call::ListTenants => reply(store.list_tenants().await?),
        Call::UpsertTenant { tenant } => reply(store.upsert_tenant(&tenant).await?),
        Call::GetTenant { id } => reply(store.get_tenant(&id).await?),
        Call::ResolveTenants { query } => reply(store.resolve_tenants(&query).await?),
        Call::TenantDomains { tenant_id } => reply(store.tenant_domains(&tenant_id).await?),
        Call::SetTenantDomains { tenant_id, source, domains } => {
            reply(store.set_tenant_domains(&tenant_id, &source, &domains).await?)
        }
        Call::MarkGone { tenant_id, at } => reply(store.mark_gone(&tenant_id, at).await?),
        Call::StartRun { kind, started_at } => reply(store.start_run(&kind, started_at).await?),
        Call::StartJobRun { lease, kind, started_at } => reply(store.start_job_run(&lease, &kind, started_at).await?),
        Call::JobTenants { job_id } => reply(store.job_tenants(&job_id).await?),
        Call::FinishRun { run_id, status, finished_at, stats } => {
            reply(store.finish_run(&run_id, status, finished_at, &stats).await?)
        }
        Call::CommitTenantResult(c) => {
            reply(store.commit_tenant_result_with(&c.tenant_run, &c.outcomes, c.dataprint.as_ref(), &c.with).await?)
        }
        Call::LastGoodDataprint { tenant_id } => reply(store.last_good_dataprint(&tenant_id).await?),
        Call::GetDataprint { id } => reply(store.get_dataprint(&id).await?),
        Call::DataprintMeta { id } => reply(store.dataprint_meta(&id).await?),
        Call::GetDeltaLink { tenant_id, collection } => reply(store.get_delta_link(&tenant_id, &collection).await?),
        Call::LastGoodDataprintUnread { tenant_id, unread } => {
            let unread: Vec<&str> = unread.iter().map(String::as_str).collect();
            reply(store.last_good_dataprint_unread(&tenant_id, &unread).await?)
        }
        Call::LatestTenantRuns => reply(store.latest_tenant_runs().await?),
        Call::DomainsOf { ids } => reply(store.domains_of(&ids).await?),
        Call::DeltaLinks { tenant_id, collections } => {
            let collections: Vec<&str> = collections.iter().map(String::as_str).collect();
            reply(store.delta_links(&tenant_id, &collections).await?)
        }
        Call::DataprintCollection { id, name, fields } => {
            reply(store.dataprint_collection(&id, &name, fields.as_deref()).await?)
        }
        Call::UpsertTenantsWithDomains { tenants, source } => {
            reply(store.upsert_tenants_with_domains(&tenants, &source).await?)
        }
        Call::SetDeltaLink { tenant_id, collection, link } => {
            reply(store.set_delta_link(&tenant_id, &collection, &link).await?)
        }
        Call::CredentialList => reply(store.credential_list().await?),
        Call::CredentialGet { .. } => {
            Err(StoreError::InvalidInput("an app credential is only handed out sealed to an agent's key".into()))
        }
        Call::PutEvents { run_id, tenant_id, at, events } => {
            reply(store.put_events(&run_id, &tenant_id, at, &events).await?)
        }
        Call::PutMetrics { run_id, tenant_id, at, values } => {
            reply(store.put_metrics(&run_id, &tenant_id, at, &values).await?)
        }
        Call::OpenAlerts { tenant_id } => reply(store.open_alerts(tenant_id.as_ref()).await?),
        Call::LatestMetrics { tenant_id } => reply(store.latest_metrics(&tenant_id).await?),
        Call::Mutes => reply(store.mutes().await?),
        Call::UpsertAlert { alert } => reply(store.upsert_alert(&alert).await?),
        Call::RecordTransition { alert, transition, notify } => {
            reply(store.record_transition(&alert, &transition, &notify).await?)
        }
    }
}

/// An app credential as it travels to an agent (inside a sealed box).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialWire {
    pub tenant_id: TenantId,
    pub client_id: String,
    pub kind: store::CredentialKind,
    pub secret: String,
    pub certificate_pem: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub label: Option<String>,
    pub added_at: DateTime<Utc>,
}

impl CredentialWire {
    pub fn from_credential(c: &AppCredential) -> CredentialWire {
        use store::ExposeSecret;
        CredentialWire {
            tenant_id: c.tenant_id.clone(),
            client_id: c.client_id.clone(),
            kind: c.kind,
            secret: c.secret.expose_secret().to_string(),
            certificate_pem: c.certificate_pem.clone(),
            expires_at: c.expires_at,
            label: c.label.clone(),
            added_at: c.added_at,
        }
    }

    pub fn into_credential(self) -> AppCredential {
        AppCredential {
            tenant_id: self.tenant_id,
            client_id: self.client_id,
            kind: self.kind,
            secret: store::SecretString::from(self.secret),
            certificate_pem: self.certificate_pem,
            expires_at: self.expires_at,
            label: self.label,
            added_at: self.added_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_round_trip_and_unknown_fields_are_refused() {
        let call = Call::SetDeltaLink { tenant_id: TenantId::new("t1"), collection: "users".into(), link: "x".into() };
        let text = serde_json::to_value(&call).expect("encode");
        assert_eq!(text["op"], "set_delta_link");
        assert_eq!(serde_json::from_value::<Call>(text).expect("decode"), call);
        assert!(call.writes());
        assert!(!Call::ListTenants.writes());
        let bad = json!({"op": "get_tenant", "id": "t1", "extra": 1});
        assert!(serde_json::from_value::<Call>(bad).is_err());
        assert!(serde_json::from_value::<Call>(json!({"op": "drop_everything"})).is_err());
    }

    #[test]
    fn a_commit_from_an_agent_that_sends_its_parts_separately_still_decodes() {
        let tenant_run = json!({
            "run_id": "r1", "tenant_id": "t1", "status": "failed",
            "started_at": "2026-12-06T10:00:00Z", "finished_at": "2026-12-06T10:00:05Z",
            "diagnosis": null, "error": null, "dataprint_id": null
        });
        let old = json!({"op": "commit_tenant_result", "tenant_run": tenant_run, "outcomes": [], "dataprint": null});
        match serde_json::from_value::<Call>(old.clone()).expect("decode") {
            Call::CommitTenantResult(c) => assert_eq!(c.with, WithResult::default()),
            other => panic!("decoded as {other:?}"),
        }
        let mut extra = old;
        extra["surprise"] = json!(1);
        assert!(serde_json::from_value::<Call>(extra).is_err(), "unknown fields are refused");
        let call = Call::CommitTenantResult(Box::new(Commit {
            tenant_run: serde_json::from_value(tenant_run).expect("record"),
            outcomes: Vec::new(),
            dataprint: None,
            with: WithResult {
                delta_links: vec![("users".into(), "https://graph.example/delta".into())],
                ..WithResult::default()
            },
        }));
        let text = serde_json::to_value(&call).expect("encode");
        assert_eq!(text["op"], "commit_tenant_result");
        assert_eq!(serde_json::from_value::<Call>(text).expect("decode"), call);
        assert!(call.writes());
    }

    /// What `deserialize_call` reads from JSON text, as the server reads an agent's call.
    fn read_call(text: &str) -> std::result::Result<Call, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        deserialize_call(&mut de)
    }

    #[test]
    fn calls_read_tag_first_are_the_calls_read_the_usual_way() {
        let tenant_run = json!({
            "run_id": "r1", "tenant_id": "t1", "status": "ok",
            "started_at": "2026-12-06T10:00:00Z", "finished_at": "2026-12-06T10:00:05Z",
            "diagnosis": null, "error": null, "dataprint_id": null
        });
        let dataprint = json!({"schema": "tenantscope.dataprint/1", "collections": {"users": {"u1": {"id": "u1"}}}});
        let commit = Call::CommitTenantResult(Box::new(Commit {
            tenant_run: serde_json::from_value(tenant_run.clone()).expect("record"),
            outcomes: Vec::new(),
            dataprint: Some(dataprint.clone()),
            with: WithResult::default(),
        }));
        let small = Call::DeltaLinks { tenant_id: TenantId::new("t1"), collections: vec!["users".into()] };
        for call in [commit, small, Call::ListTenants] {
            let text = serde_json::to_string(&call).expect("encode");
            assert!(text.starts_with(r#"{"op":"#), "serde writes the tag first: {text}");
            assert_eq!(read_call(&text).expect("decode"), call);
        }
        // The tag elsewhere, as another sender may put it: read all the same.
        let late =
            json!({"tenant_run": tenant_run, "outcomes": [], "dataprint": dataprint, "op": "commit_tenant_result"});
        assert!(matches!(read_call(&late.to_string()), Ok(Call::CommitTenantResult(_))));
        // Refusals keep what they said: unknown fields, and an unknown call named as such (which is
        // how an agent newer than the server tells it apart).
        let extra = json!({"op": "commit_tenant_result", "tenant_run": tenant_run, "outcomes": [], "dataprint": null, "surprise": 1});
        assert!(read_call(&extra.to_string()).is_err());
        let e = read_call(r#"{"op": "get_tenant", "id": "t1", "extra": 1}"#).expect_err("unknown field");
        assert!(e.to_string().contains("extra"), "{e}");
        let e = read_call(r#"{"op": "drop_everything"}"#).expect_err("unknown call");
        assert!(e.to_string().contains("unknown variant `drop_everything`"), "{e}");
        assert!(read_call(r#"{"op": 7}"#).is_err());
        assert!(read_call("[]").is_err());
    }
}
