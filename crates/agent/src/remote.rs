//! What an agent's run works on: the server's store, reached through the agent API under the
//! job's fence, and a token cache that keeps the partner connection's tokens in memory (they
//! arrive sealed with each job, and rotated ones go back to the server) and the access tokens the
//! agent obtains in its own database, encrypted with its own key.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use inspect::storage::{Call, CredentialWire, one_by_one};
use inspect::{InspectStore, StoreTokens};
use microsoft::cache::{MemoryTokenStore, StoredToken, TokenInfo, TokenKind, TokenStore};
use serde::de::DeserializeOwned;
use serde_json::Value;
use store::{
    AlertRecord, AppCredential, AppCredentialMeta, CollectorOutcomeRecord, DataprintId, DataprintMeta, ExposeSecret,
    JobLease, MetricPoint, MuteRecord, Result, RunId, RunRecord, RunStatus, StoreError, TenantId, TenantRecord,
    TenantRunRecord, WithResult,
};

use crate::client::{AgentError, Client, Identity};
use crate::protocol::{RETURNED_KINDS, SealedCredential, StoreRequest, TokenSave, TokenWire};

/// How a job's store calls reach the server: the agent API over HTTPS ([`Client`]), or, in tests,
/// anything that answers a [`StoreRequest`] as the server's `POST /jobs/{id}/store` does.
#[async_trait]
pub trait StoreWire: Send + Sync {
    /// Sends one call of job `job_id` and returns the server's answer (`None` for no content).
    async fn store_call(&self, job_id: &str, request: &StoreRequest) -> std::result::Result<Option<Value>, AgentError>;
    /// The agent's identity, whose key opens the credentials sealed to it.
    fn identity(&self) -> Option<&Identity>;
}

#[async_trait]
impl StoreWire for Client {
    async fn store_call(&self, job_id: &str, request: &StoreRequest) -> std::result::Result<Option<Value>, AgentError> {
        // Commits carry whole dataprints; reads are small. Either way a stuck server must not
        // hold the run forever: the lease would expire first.
        self.post(&format!("/jobs/{job_id}/store"), request, Duration::from_secs(120)).await
    }
    fn identity(&self) -> Option<&Identity> {
        Client::identity(self)
    }
}

/// The server's store as one job's run sees it.
pub struct RemoteStore<W: ?Sized = Client> {
    wire: Arc<W>,
    job_id: String,
    fence: i64,
    /// Whether the server may know the calls added with the run's savings on unchanged tenants
    /// (`LastGoodDataprintUnread` and the others after it); cleared when it refuses one as
    /// unknown, after which the job makes do with the older calls.
    newer_calls: AtomicBool,
}

/// Whether the server refused a call because it does not know it. A server one minor version
/// older than the agent (the version-skew rule allows it) reads the call with its JSON extractor,
/// which answers a call added since with 422 and serde's "unknown variant".
pub fn unknown_call(e: &AgentError, name: &str) -> bool {
    matches!(e, AgentError::Refused { status: 400 | 422, detail, .. }
        if detail.contains(&format!("unknown variant `{name}`")))
}

fn store_error(job_id: &str, fence: i64, e: AgentError) -> StoreError {
    match e.code() {
        Some("fenced") => StoreError::Fenced { job_id: job_id.to_string(), fence },
        Some("already_committed") => {
            StoreError::AlreadyCommitted { job_id: job_id.to_string(), tenant_id: e.to_string() }
        }
        Some("not_found") => StoreError::NotFound(e.to_string()),
        Some("invalid") => StoreError::InvalidInput(e.to_string()),
        Some("undecryptable") => StoreError::Crypto { record: e.to_string() },
        _ => StoreError::Remote(e.to_string()),
    }
}

impl<W: StoreWire + ?Sized> RemoteStore<W> {
    pub fn new(wire: Arc<W>, job_id: String, fence: i64) -> RemoteStore<W> {
        RemoteStore { wire, job_id, fence, newer_calls: AtomicBool::new(true) }
    }

    async fn send(&self, call: Call) -> std::result::Result<Value, AgentError> {
        let name = call.name();
        let request = StoreRequest { fence: self.fence, call };
        let answer = self.wire.store_call(&self.job_id, &request).await?;
        answer.ok_or_else(|| AgentError::Decode {
            what: name.to_string(),
            reason: "the server gave no answer".to_string(),
        })
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let name = call.name();
        let value = self.send(call).await.map_err(|e| store_error(&self.job_id, self.fence, e))?;
        decode(name, value)
    }

    /// A call the server may not know: `None` when it does not (and then for the rest of the job),
    /// for the caller to make do with older calls.
    async fn newer<T: DeserializeOwned>(&self, call: Call) -> Result<Option<T>> {
        if !self.newer_calls.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let name = call.name();
        match self.send(call).await {
            Ok(value) => decode(name, value).map(Some),
            Err(e) if unknown_call(&e, name) => {
                self.newer_calls.store(false, Ordering::Relaxed);
                tracing::info!(
                    call = name,
                    "the server does not know this store call (it is older than the agent); using the older calls for this job"
                );
                Ok(None)
            }
            Err(e) => Err(store_error(&self.job_id, self.fence, e)),
        }
    }
}

fn decode<T: DeserializeOwned>(name: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Remote(format!("the answer to {name} is malformed: {e}")))
}

#[async_trait]
impl<W: StoreWire + ?Sized> InspectStore for RemoteStore<W> {
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        self.call(Call::ListTenants).await
    }
    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        self.call(Call::UpsertTenant { tenant: tenant.clone() }).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        self.call(Call::GetTenant { id: id.clone() }).await
    }
    async fn resolve_tenants(&self, query: &str) -> Result<Vec<TenantRecord>> {
        self.call(Call::ResolveTenants { query: query.to_string() }).await
    }
    async fn tenant_domains(&self, tenant_id: &TenantId) -> Result<Vec<String>> {
        self.call(Call::TenantDomains { tenant_id: tenant_id.clone() }).await
    }
    async fn set_tenant_domains(&self, tenant_id: &TenantId, source: &str, domains: &[String]) -> Result<()> {
        self.call(Call::SetTenantDomains {
            tenant_id: tenant_id.clone(),
            source: source.to_string(),
            domains: domains.to_vec(),
        })
        .await
    }
    async fn mark_gone(&self, tenant_id: &TenantId, at: DateTime<Utc>) -> Result<bool> {
        self.call(Call::MarkGone { tenant_id: tenant_id.clone(), at }).await
    }
    async fn start_run(&self, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
        self.call(Call::StartRun { kind: kind.to_string(), started_at }).await
    }
    async fn start_job_run(&self, lease: &JobLease, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
        self.call(Call::StartJobRun { lease: lease.clone(), kind: kind.to_string(), started_at }).await
    }
    async fn job_tenants(&self, job_id: &str) -> Result<Vec<TenantId>> {
        self.call(Call::JobTenants { job_id: job_id.to_string() }).await
    }
    async fn finish_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        stats: &Value,
    ) -> Result<()> {
        self.call(Call::FinishRun { run_id: run_id.clone(), status, finished_at, stats: stats.clone() }).await
    }
    async fn commit_tenant_result_with(
        &self,
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
        with: &WithResult,
    ) -> Result<Option<DataprintId>> {
        // The collections written unparsed travel in the document: the server stores what it is
        // sent whole.
        let mut dataprint = dataprint.cloned();
        if let Some(d) = dataprint.as_mut() {
            with.embed_unparsed(d)?;
        }
        self.call(Call::CommitTenantResult(Box::new(inspect::storage::Commit {
            tenant_run: tenant_run.clone(),
            outcomes: outcomes.to_vec(),
            dataprint,
            with: WithResult { unparsed: Vec::new(), ..with.clone() },
        })))
        .await
    }
    async fn last_good_dataprint(&self, tenant_id: &TenantId) -> Result<Option<(DataprintMeta, Value)>> {
        self.call(Call::LastGoodDataprint { tenant_id: tenant_id.clone() }).await
    }
    async fn last_good_dataprint_unread(
        &self,
        tenant_id: &TenantId,
        unread: &[&str],
    ) -> Result<Option<(DataprintMeta, Value)>> {
        let call = Call::LastGoodDataprintUnread {
            tenant_id: tenant_id.clone(),
            unread: unread.iter().map(|name| name.to_string()).collect(),
        };
        match self.newer(call).await? {
            Some(answer) => Ok(answer),
            None => self.last_good_dataprint(tenant_id).await,
        }
    }
    async fn latest_tenant_runs(&self) -> Result<Vec<TenantRunRecord>> {
        // Without them the run takes its tenants in the order given.
        Ok(self.newer(Call::LatestTenantRuns).await?.unwrap_or_default())
    }
    async fn domains_of(&self, ids: &[TenantId]) -> Result<HashMap<TenantId, Vec<String>>> {
        match self.newer(Call::DomainsOf { ids: ids.to_vec() }).await? {
            Some(domains) => Ok(domains),
            None => one_by_one::domains_of(self, ids).await,
        }
    }
    async fn upsert_tenants_with_domains(&self, tenants: &[(TenantRecord, Vec<String>)], source: &str) -> Result<()> {
        let call = Call::UpsertTenantsWithDomains { tenants: tenants.to_vec(), source: source.to_string() };
        match self.newer::<()>(call).await? {
            Some(()) => Ok(()),
            None => one_by_one::upsert_tenants_with_domains(self, tenants, source).await,
        }
    }
    async fn delta_links(&self, tenant_id: &TenantId, collections: &[&str]) -> Result<Vec<(String, String)>> {
        let call = Call::DeltaLinks {
            tenant_id: tenant_id.clone(),
            collections: collections.iter().map(|name| name.to_string()).collect(),
        };
        match self.newer(call).await? {
            Some(links) => Ok(links),
            None => one_by_one::delta_links(self, tenant_id, collections).await,
        }
    }
    async fn dataprint_collection(
        &self,
        id: &DataprintId,
        name: &str,
        fields: Option<&[String]>,
    ) -> Result<Option<Value>> {
        let call = Call::DataprintCollection {
            id: id.clone(),
            name: name.to_string(),
            fields: fields.map(<[String]>::to_vec),
        };
        match self.newer(call).await? {
            Some(collection) => Ok(collection),
            None => one_by_one::dataprint_collection(self, id, name, fields).await,
        }
    }
    async fn get_dataprint(&self, id: &DataprintId) -> Result<Option<Value>> {
        self.call(Call::GetDataprint { id: id.clone() }).await
    }
    async fn dataprint_meta(&self, id: &DataprintId) -> Result<Option<DataprintMeta>> {
        self.call(Call::DataprintMeta { id: id.clone() }).await
    }
    async fn get_delta_link(&self, tenant_id: &TenantId, collection: &str) -> Result<Option<String>> {
        self.call(Call::GetDeltaLink { tenant_id: tenant_id.clone(), collection: collection.to_string() }).await
    }
    async fn set_delta_link(&self, tenant_id: &TenantId, collection: &str, link: &str) -> Result<()> {
        self.call(Call::SetDeltaLink {
            tenant_id: tenant_id.clone(),
            collection: collection.to_string(),
            link: link.to_string(),
        })
        .await
    }
    async fn credential_list(&self) -> Result<Vec<AppCredentialMeta>> {
        self.call(Call::CredentialList).await
    }
    async fn credential_get(&self, tenant_id: &TenantId) -> Result<Option<AppCredential>> {
        let sealed: SealedCredential = self.call(Call::CredentialGet { tenant_id: tenant_id.clone() }).await?;
        let Some(sealed) = sealed.sealed else { return Ok(None) };
        let Some(identity) = self.wire.identity() else {
            return Err(StoreError::Remote("this agent has no keys to open a sealed credential with".into()));
        };
        let bytes = identity.keys.unseal(&sealed).map_err(|e| StoreError::Remote(e.to_string()))?;
        let wire: CredentialWire = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Remote(format!("the sealed credential is malformed: {e}")))?;
        Ok(Some(wire.into_credential()))
    }
    async fn put_events(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        events: &[Value],
    ) -> Result<()> {
        self.call(Call::PutEvents { run_id: run_id.clone(), tenant_id: tenant_id.clone(), at, events: events.to_vec() })
            .await
    }
    async fn put_metrics(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        values: &[(String, Value)],
    ) -> Result<()> {
        self.call(Call::PutMetrics {
            run_id: run_id.clone(),
            tenant_id: tenant_id.clone(),
            at,
            values: values.to_vec(),
        })
        .await
    }
    async fn open_alerts(&self, tenant_id: Option<&TenantId>) -> Result<Vec<AlertRecord>> {
        self.call(Call::OpenAlerts { tenant_id: tenant_id.cloned() }).await
    }
    async fn latest_metrics(&self, tenant_id: &TenantId) -> Result<Vec<MetricPoint>> {
        self.call(Call::LatestMetrics { tenant_id: tenant_id.clone() }).await
    }
    async fn mutes(&self) -> Result<Vec<MuteRecord>> {
        self.call(Call::Mutes).await
    }
    async fn upsert_alert(&self, alert: &AlertRecord) -> Result<()> {
        self.call(Call::UpsertAlert { alert: alert.clone() }).await
    }
    async fn record_transition(&self, alert: &AlertRecord, transition: &str, notify: &[(String, Value)]) -> Result<()> {
        self.call(Call::RecordTransition {
            alert: alert.clone(),
            transition: transition.to_string(),
            notify: notify.to_vec(),
        })
        .await
    }
}

/// A token cache entry on the wire.
pub fn to_wire(t: &StoredToken) -> TokenWire {
    TokenWire {
        key: t.key.clone(),
        tenant_id: t.tenant_id.clone(),
        kind: t.kind.as_str().to_string(),
        client_id: t.client_id.clone(),
        home_account: t.home_account.clone(),
        scopes: t.scopes.clone(),
        secret: t.secret.expose_secret().to_string(),
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        claims: t.claims.as_ref().and_then(|c| serde_json::to_value(c).ok()),
    }
}

/// A token cache entry from the wire; `None` for a kind this version does not know.
pub fn from_wire(t: TokenWire) -> Option<StoredToken> {
    Some(StoredToken {
        kind: TokenKind::parse(&t.kind)?,
        key: t.key,
        tenant_id: t.tenant_id,
        client_id: t.client_id,
        home_account: t.home_account,
        scopes: t.scopes,
        secret: store::SecretString::from(t.secret),
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        claims: t.claims.and_then(|c| serde_json::from_value(c).ok()),
    })
}

/// The token cache of one job on an agent.
pub struct AgentTokens {
    /// The partner connection's refresh token, account and ID token, for this job only.
    partner: MemoryTokenStore,
    /// Access tokens, in the agent's own encrypted database, kept across jobs.
    local: StoreTokens,
    client: Arc<Client>,
    job_id: String,
    fence: i64,
}

impl AgentTokens {
    pub async fn new(
        local: Arc<dyn store::Store>,
        client: Arc<Client>,
        job_id: &str,
        fence: i64,
        partner: Vec<TokenWire>,
    ) -> std::result::Result<AgentTokens, microsoft::Error> {
        let memory = MemoryTokenStore::default();
        for t in partner.into_iter().filter_map(from_wire) {
            memory.save(&t).await?;
        }
        Ok(AgentTokens {
            partner: memory,
            local: StoreTokens { store: local },
            client,
            job_id: job_id.to_string(),
            fence,
        })
    }

    fn returned(kind: TokenKind) -> bool {
        RETURNED_KINDS.contains(&kind.as_str())
    }
}

#[async_trait]
impl TokenStore for AgentTokens {
    async fn load(&self, key: &str) -> std::result::Result<Option<StoredToken>, microsoft::Error> {
        match self.partner.load(key).await? {
            Some(t) => Ok(Some(t)),
            None => self.local.load(key).await,
        }
    }

    async fn save(&self, token: &StoredToken) -> std::result::Result<(), microsoft::Error> {
        if !Self::returned(token.kind) {
            return self.local.save(token).await;
        }
        self.partner.save(token).await?;
        // A rotated refresh token goes back at once: the old one may already be spent, and the
        // server's next job (on any agent) must start from the new one.
        let request = TokenSave { fence: self.fence, token: to_wire(token) };
        let sent: std::result::Result<Option<Value>, AgentError> =
            self.client.post(&format!("/jobs/{}/tokens", self.job_id), &request, Duration::from_secs(30)).await;
        sent.map(|_| ())
            .map_err(|e| microsoft::Error::Cache(format!("the rotated token could not be returned to the server: {e}")))
    }

    async fn delete(&self, key: &str) -> std::result::Result<(), microsoft::Error> {
        self.partner.delete(key).await?;
        self.local.delete(key).await
    }

    async fn delete_tenant(&self, tenant_id: &str) -> std::result::Result<u64, microsoft::Error> {
        Ok(self.partner.delete_tenant(tenant_id).await? + self.local.delete_tenant(tenant_id).await?)
    }

    async fn clear(&self) -> std::result::Result<u64, microsoft::Error> {
        Ok(self.partner.clear().await? + self.local.clear().await?)
    }

    async fn list(&self) -> std::result::Result<Vec<TokenInfo>, microsoft::Error> {
        let mut all = self.partner.list().await?;
        all.extend(self.local.list().await?);
        Ok(all)
    }
}
