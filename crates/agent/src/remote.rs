//! What an agent's run works on: the server's store, reached through the agent API under the
//! job's fence, and a token cache that keeps the partner connection's tokens in memory (they
//! arrive sealed with each job, and rotated ones go back to the server) and the access tokens the
//! agent obtains in its own database, encrypted with its own key.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use inspect::storage::{Call, CredentialWire};
use inspect::{InspectStore, StoreTokens};
use microsoft::cache::{MemoryTokenStore, StoredToken, TokenInfo, TokenKind, TokenStore};
use serde::de::DeserializeOwned;
use serde_json::Value;
use store::{
    AlertRecord, AppCredential, AppCredentialMeta, CollectorOutcomeRecord, DataprintId, DataprintMeta, ExposeSecret,
    JobLease, MetricPoint, MuteRecord, Result, RunId, RunRecord, RunStatus, StoreError, TenantId, TenantRecord,
    TenantRunRecord, WithResult,
};

use crate::client::{AgentError, Client};
use crate::protocol::{RETURNED_KINDS, SealedCredential, StoreRequest, TokenSave, TokenWire};

/// The server's store as one job's run sees it.
pub struct RemoteStore {
    pub client: Arc<Client>,
    pub job_id: String,
    pub fence: i64,
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

impl RemoteStore {
    async fn raw(&self, call: Call) -> Result<Value> {
        let name = call.name();
        let request = StoreRequest { fence: self.fence, call };
        // Commits carry whole dataprints; reads are small. Either way a stuck server must not
        // hold the run forever: the lease would expire first.
        let answer: Option<Value> = self
            .client
            .post(&format!("/jobs/{}/store", self.job_id), &request, Duration::from_secs(120))
            .await
            .map_err(|e| store_error(&self.job_id, self.fence, e))?;
        answer.ok_or_else(|| StoreError::Remote(format!("the server gave no answer to {name}")))
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let name = call.name();
        let value = self.raw(call).await?;
        serde_json::from_value(value).map_err(|e| StoreError::Remote(format!("the answer to {name} is malformed: {e}")))
    }
}

#[async_trait]
impl InspectStore for RemoteStore {
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
        self.call(Call::CommitTenantResult(Box::new(inspect::storage::Commit {
            tenant_run: tenant_run.clone(),
            outcomes: outcomes.to_vec(),
            dataprint: dataprint.cloned(),
            with: with.clone(),
        })))
        .await
    }
    async fn last_good_dataprint(&self, tenant_id: &TenantId) -> Result<Option<(DataprintMeta, Value)>> {
        self.call(Call::LastGoodDataprint { tenant_id: tenant_id.clone() }).await
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
        let Some(identity) = self.client.identity() else {
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
