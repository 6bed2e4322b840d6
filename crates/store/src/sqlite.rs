//! The SQLite backend: the embedded default.
//!
//! SQLite allows one writer at a time, so the store keeps two pools: a
//! single-connection writer, through which every write goes (serialised
//! in-process, `BEGIN IMMEDIATE` against other processes), and a few
//! `query_only` readers that WAL lets run alongside the writer. Commits use
//! `synchronous=NORMAL`: in WAL mode a commit survives the process being
//! killed, and only a power loss can roll back the last few.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::blob::{self, PreparedDataprint, SplitDataprint, StoredDataprint, StoredMember};
use crate::common::{
    HEARTBEAT_EVERY, InstanceGuard, app_credential, cache_record, cache_record_id, check_ts, credential_record_id,
    event_severity, json_text, non_empty, opt_json_text, opt_ts_micros, owner_is_dead, sql_limit, ts_micros,
    validate_tenant_result,
};
use crate::crypto;
use crate::error::{Result, StoreError};
use crate::plan::{self, Decision, Doc, Envelope, Incoming, Latest};
use crate::result::EncodedResult;
use crate::rows::{self, RowExt};
use crate::{
    AlertRecord, AppCredential, AppCredentialMeta, Backend, BaselineMeta, CacheRecord, CacheRecordMeta,
    CollectorOutcomeRecord, DataprintId, DataprintMeta, DeliveryRecord, EventFilter, Key, MetricPoint, PruneReport,
    RunRecord, RunStatus, Severity, Store, StoredEvent, TenantRecord, TenantRunRecord,
};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// Reader connections; WAL lets them read while the writer writes.
const READERS: u32 = 4;

pub(crate) struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    key: Key,
    instance: InstanceGuard,
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, key: Key) -> Result<SqliteStore> {
        let (options, in_memory) = connect_options(url)?;
        let base = options.busy_timeout(BUSY_TIMEOUT).foreign_keys(true).synchronous(SqliteSynchronous::Normal);
        if in_memory {
            // An in-memory database exists only inside its one connection,
            // so readers and writer must share it.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            return Ok(SqliteStore { read: pool.clone(), write: pool, key, instance: InstanceGuard::register() });
        }
        prepare_file(base.get_filename())?;
        // Incremental auto-vacuum lets `prune` hand freed pages back to the
        // file system; it only takes effect on a new database, and must be
        // set before WAL mode, which sqlx's pragma order takes care of.
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal);
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(writer_options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        // Readers must not write: `query_only` turns a mistake into an error
        // instead of a second writer fighting for the lock.
        let read =
            SqlitePoolOptions::new().max_connections(READERS).connect_with(base.pragma("query_only", "ON")).await?;
        Ok(SqliteStore { read, write, key, instance: InstanceGuard::register() })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        // IMMEDIATE takes the write lock up front, so another process's
        // writer makes us wait (busy timeout) rather than fail half-way.
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Compresses a dataprint expected to be new, asking the database
    /// (through a reader, outside the write lock) which collections it
    /// already has.
    async fn prepare(&self, split: SplitDataprint) -> Result<PreparedDataprint> {
        let mut missing = Vec::new();
        if let Some(set_hash) = &split.set_hash {
            let set_known = sqlx::query("SELECT 1 FROM collection_sets WHERE hash = $1")
                .bind(set_hash)
                .fetch_optional(&self.read)
                .await?
                .is_some();
            if !set_known {
                let mut seen = HashSet::new();
                for collection in &split.collections {
                    if !seen.insert(collection.hash.as_str()) {
                        continue;
                    }
                    let known = sqlx::query("SELECT 1 FROM blobs WHERE hash = $1")
                        .bind(&collection.hash)
                        .fetch_optional(&self.read)
                        .await?
                        .is_some();
                    if !known {
                        missing.push(collection.hash.clone());
                    }
                }
            }
        }
        blob::prepare(split, missing).await
    }

    /// Decides, through a reader and outside the write lock, whether the
    /// dataprint confirms the tenant's latest one (then encodes the per-run
    /// part against it) or is new (then compresses it).
    async fn plan(&self, tr: &TenantRunRecord, incoming: &mut Incoming, split: SplitDataprint) -> Result<()> {
        if let Some(latest) = latest_dataprint(&self.read, &tr.tenant_id).await?
            && plan::matches(&split, tr.status, &latest)
            && let Some(envelope) = load_envelope(&self.read, latest.key).await?
        {
            let per_run = incoming.per_run_against(tr, &split, envelope.run()?.as_ref(), latest.taken_at)?;
            incoming.doc = Doc::Confirm { split, key: latest.key, id: latest.id, per_run };
            return Ok(());
        }
        incoming.doc = Doc::Insert(self.prepare(split).await?);
        Ok(())
    }

    async fn load_dataprint(&self, id: &str) -> Result<Option<(DataprintMeta, Value)>> {
        // One read transaction, so a concurrent prune cannot remove the
        // collection set between reading the manifest and its members.
        let mut tx = self.read.begin().await?;
        let Some(row) = sqlx::query(concat!(dataprint_meta_select!(), " WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let meta = rows::dataprint_meta(&row)?;
        let row = sqlx::query("SELECT envelope, envelope_len, set_id FROM dataprints WHERE key = $1")
            .bind(row.int("key")?)
            .fetch_one(&mut *tx)
            .await?;
        let set_id = row.opt_int("set_id")?;
        let members = match set_id {
            None => None,
            Some(set_id) => {
                let member_rows = sqlx::query(
                    "SELECT m.name, b.hash, b.raw_len, b.data FROM collection_set_members m \
                     JOIN blobs b ON b.id = m.blob_id WHERE m.set_id = $1",
                )
                .bind(set_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut members = Vec::with_capacity(member_rows.len());
                for member in &member_rows {
                    members.push(StoredMember {
                        name: member.text("name")?,
                        hash: member.text("hash")?,
                        raw_len: member.int("raw_len")?,
                        data: member.bytes("data")?,
                    });
                }
                Some(members)
            }
        };
        let stored = StoredDataprint {
            id: meta.id.to_string(),
            envelope_z: row.bytes("envelope")?,
            envelope_len: row.int("envelope_len")?,
            members,
        };
        tx.commit().await?;
        let doc = blob::load(stored).await?;
        Ok(Some((meta, doc)))
    }

    /// The tenant run of a tenant in a run, ready to decode.
    async fn stored_run(&self, run_id: &str, tenant_id: &str) -> Result<Option<rows::StoredRunRow>> {
        let row = sqlx::query(concat!(
            stored_run_select!(),
            " WHERE x.run_key = (SELECT key FROM runs WHERE id = $1) \
             AND x.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $2)"
        ))
        .bind(run_id)
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(rows::stored_run).transpose()
    }
}

/// The newest good dataprint of a tenant: the one a new dataprint must
/// match to be confirmed instead of stored.
async fn latest_dataprint<'e>(
    executor: impl sqlx::Executor<'e, Database = Sqlite>,
    tenant_id: &str,
) -> Result<Option<Latest>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        latest_columns!(),
        " FROM dataprints d WHERE d.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1) \
         AND d.status IN ('ok', 'partial') ORDER BY d.taken_at DESC, d.id DESC LIMIT 1"
    ))
    .bind(tenant_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(rows::latest).transpose()
}

async fn load_envelope<'e>(executor: impl sqlx::Executor<'e, Database = Sqlite>, key: i64) -> Result<Option<Envelope>> {
    let row = sqlx::query("SELECT id, envelope, envelope_len FROM dataprints WHERE key = $1")
        .bind(key)
        .fetch_optional(executor)
        .await?;
    row.map(|row| Ok(Envelope { id: row.text("id")?, data: row.bytes("envelope")?, len: row.int("envelope_len")? }))
        .transpose()
}

/// The integer key of a tenant id, created on first use.
async fn tenant_key(tx: &mut Transaction<'static, Sqlite>, tenant_id: &str) -> Result<i64> {
    let known: Option<i64> = sqlx::query_scalar("SELECT key FROM tenant_keys WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    match known {
        Some(key) => Ok(key),
        None => Ok(sqlx::query_scalar("INSERT INTO tenant_keys (tenant_id) VALUES ($1) RETURNING key")
            .bind(tenant_id)
            .fetch_one(&mut **tx)
            .await?),
    }
}

/// The key of a stored result, stored now if it is new.
async fn ensure_result(tx: &mut Transaction<'static, Sqlite>, result: &EncodedResult) -> Result<i64> {
    let known: Option<i64> = sqlx::query_scalar("SELECT key FROM results WHERE hash = $1")
        .bind(&result.hash)
        .fetch_optional(&mut **tx)
        .await?;
    match known {
        Some(key) => Ok(key),
        None => Ok(sqlx::query_scalar("INSERT INTO results (hash, raw_len, data) VALUES ($1, $2, $3) RETURNING key")
            .bind(&result.hash)
            .bind(result.raw_len)
            .bind(&result.data)
            .fetch_one(&mut **tx)
            .await?),
    }
}

/// Reads the URL into connect options; returns whether it is in memory.
fn connect_options(url: &str) -> Result<(SqliteConnectOptions, bool)> {
    let url = url.trim();
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::UnsupportedUrl { scheme: "sqlite".into(), reason: err.to_string() })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Ok((options, in_memory))
    } else {
        Ok((SqliteConnectOptions::new().filename(url).create_if_missing(true), false))
    }
}

/// Creates the database's directory, and the file itself with mode 0600,
/// when they do not exist: the database holds every tenant's users and
/// settings, which are nobody else's business. SQLite gives its WAL and
/// shared-memory files the same mode as the database file.
fn prepare_file(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() || path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| StoreError::io(dir, err))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(StoreError::io(PathBuf::from(path), err)),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn upsert_tenant(&self, t: &TenantRecord) -> Result<()> {
        non_empty(&t.id, "tenant id")?;
        sqlx::query(
            "INSERT INTO tenants (id, domain, display_name, role, auth, first_seen, last_seen, gone_since, gdap) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET domain = excluded.domain, display_name = excluded.display_name, \
             role = excluded.role, auth = excluded.auth, last_seen = excluded.last_seen, \
             gone_since = excluded.gone_since, gdap = excluded.gdap",
        )
        .bind(&t.id)
        .bind(&t.domain)
        .bind(&t.display_name)
        .bind(t.role.as_str())
        .bind(t.auth.as_str())
        .bind(ts_micros(t.first_seen)?)
        .bind(ts_micros(t.last_seen)?)
        .bind(opt_ts_micros(t.gone_since)?)
        .bind(opt_json_text(t.gdap.as_ref())?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn get_tenant(&self, id_or_domain: &str) -> Result<Option<TenantRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE lower(id) = lower($1) OR lower(domain) = lower($1) \
             ORDER BY (lower(id) = lower($1)) DESC, (gone_since IS NULL) DESC, last_seen DESC LIMIT 1"
        ))
        .bind(id_or_domain.trim())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(rows::tenant).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        let rows = sqlx::query(concat!("SELECT ", tenant_columns!(), " FROM tenants ORDER BY lower(display_name), id"))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::tenant).collect()
    }

    async fn mark_gone(&self, tenant_id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tenants SET gone_since = CASE WHEN gone_since IS NULL OR gone_since > $2 \
             THEN $2 ELSE gone_since END WHERE id = $1",
        )
        .bind(tenant_id)
        .bind(ts_micros(at)?)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn start_run(&self, kind: &str, started_at: DateTime<Utc>) -> Result<RunRecord> {
        non_empty(kind, "run kind")?;
        let run = RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.to_owned(),
            started_at: check_ts(started_at)?,
            finished_at: None,
            status: RunStatus::Running,
            stats: Value::Null,
        };
        sqlx::query(
            "INSERT INTO runs (id, kind, started_at, finished_at, status, stats, owner, heartbeat_at) \
             VALUES ($1, $2, $3, NULL, $4, $5, $6, $7)",
        )
        .bind(&run.id)
        .bind(&run.kind)
        .bind(ts_micros(run.started_at)?)
        .bind(run.status.as_str())
        .bind(json_text(&run.stats)?)
        .bind(serde_json::to_string(self.instance.owner())?)
        .bind(ts_micros(Utc::now())?)
        .execute(&self.write)
        .await?;
        Ok(run)
    }

    async fn heartbeat_run(&self, run_id: &str) -> Result<()> {
        let done = sqlx::query("UPDATE runs SET heartbeat_at = $2 WHERE id = $1")
            .bind(run_id)
            .bind(ts_micros(Utc::now())?)
            .execute(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("run {run_id}")));
        }
        Ok(())
    }

    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        stats: &Value,
    ) -> Result<()> {
        if status == RunStatus::Running {
            return Err(StoreError::InvalidInput("a run cannot finish with status running".into()));
        }
        let done =
            sqlx::query("UPDATE runs SET status = $2, finished_at = $3, stats = $4, heartbeat_at = $3 WHERE id = $1")
                .bind(run_id)
                .bind(status.as_str())
                .bind(ts_micros(finished_at)?)
                .bind(json_text(stats)?)
                .execute(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("run {run_id}")));
        }
        Ok(())
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1"))
            .bind(run_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::run).transpose()
    }

    async fn list_runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows =
            sqlx::query(concat!("SELECT ", run_columns!(), " FROM runs ORDER BY started_at DESC, id DESC LIMIT $1"))
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(rows::run).collect()
    }

    async fn recover_interrupted_runs(&self) -> Result<u64> {
        let running = sqlx::query("SELECT id, owner, heartbeat_at FROM runs WHERE status = 'running'")
            .fetch_all(&self.write)
            .await?;
        let now = Utc::now();
        let mut marked = 0;
        for row in &running {
            let id = row.text("id")?;
            let heartbeat = row.ts("heartbeat_at")?;
            if !owner_is_dead(&row.text("owner")?, heartbeat, now) {
                continue;
            }
            // The last sign of life is the best guess of when it stopped.
            let done = sqlx::query(
                "UPDATE runs SET status = 'interrupted', finished_at = heartbeat_at \
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(&id)
            .execute(&self.write)
            .await?;
            marked += done.rows_affected();
        }
        Ok(marked)
    }

    async fn commit_tenant_result(
        &self,
        tr: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
    ) -> Result<Option<DataprintId>> {
        validate_tenant_result(tr, outcomes)?;
        // The start is checked like any timestamp, although it is stored as
        // time before the end, in the per-run part.
        check_ts(tr.started_at)?;
        let finished_at = ts_micros(tr.finished_at)?;
        let (mut incoming, split) = Incoming::new(tr, outcomes, dataprint)?;
        if let Some(split) = split {
            self.plan(tr, &mut incoming, split).await?;
        }

        let mut tx = self.begin_write().await?;
        let run_key: i64 = sqlx::query_scalar("SELECT key FROM runs WHERE id = $1")
            .bind(&tr.run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {}", tr.run_id)))?;
        let tenant_key = tenant_key(&mut tx, &tr.tenant_id).await?;

        // Committing a tenant again in the same run replaces its result, and
        // the dataprint that result introduced unless a later run confirmed
        // it since.
        let replaced: Option<Option<i64>> = sqlx::query_scalar(
            "DELETE FROM tenant_runs WHERE run_key = $1 AND tenant_key = $2 RETURNING dataprint_key",
        )
        .bind(run_key)
        .bind(tenant_key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(Some(old)) = replaced {
            sqlx::query(
                "DELETE FROM dataprints WHERE key = $1 AND run_key = $2 AND NOT EXISTS \
                 (SELECT 1 FROM tenant_runs c WHERE c.tenant_key = $3 AND c.dataprint_key = $1)",
            )
            .bind(old)
            .bind(run_key)
            .bind(tenant_key)
            .execute(&mut *tx)
            .await?;
        }

        let result_key = ensure_result(&mut tx, &incoming.result).await?;
        let latest = latest_dataprint(&mut *tx, &tr.tenant_id).await?;
        let conn: &mut SqliteConnection = &mut tx;
        let decision = incoming
            .decide(tr, latest, move |key| async move {
                load_envelope(conn, key)
                    .await?
                    .ok_or_else(|| StoreError::Internal(format!("dataprint {key} vanished inside a transaction")))
            })
            .await?;
        let (dataprint_key, dataprint_id, per_run) = match decision {
            Decision::None(per_run) => (None, None, per_run),
            Decision::Confirm { key, id, per_run } => (Some(key), Some(id), per_run),
            Decision::Insert(prepared) => {
                let set_id = match &prepared.split.set_hash {
                    Some(hash) => Some(ensure_set(&mut tx, &prepared, hash).await?),
                    None => None,
                };
                let id = uuid::Uuid::now_v7().to_string();
                let key: i64 = sqlx::query_scalar(
                    "INSERT INTO dataprints (id, tenant_key, run_key, taken_at, status, content_hash, envelope, \
                     envelope_len, set_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING key",
                )
                .bind(&id)
                .bind(tenant_key)
                .bind(run_key)
                .bind(finished_at)
                .bind(tr.status.as_str())
                .bind(&prepared.split.content_hash)
                .bind(&prepared.envelope_z)
                .bind(prepared.split.envelope.len() as i64)
                .bind(set_id)
                .fetch_one(&mut *tx)
                .await?;
                let split = &prepared.split;
                let per_run = incoming.per_run_against(tr, split, split.run.as_ref(), check_ts(tr.finished_at)?)?;
                (Some(key), Some(id), per_run)
            }
        };

        sqlx::query(
            "INSERT INTO tenant_runs (run_key, tenant_key, finished_at, result_key, dataprint_key, per_run) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_key)
        .bind(tenant_key)
        .bind(finished_at)
        .bind(result_key)
        .bind(dataprint_key)
        .bind(&per_run)
        .execute(&mut *tx)
        .await?;

        // The heartbeat is refreshed at most once a minute: writing it with
        // every commit would rewrite the run's row a thousand times per run
        // of a large fleet (in PostgreSQL, a dead row version each time),
        // and a run counts as silent only after two hours.
        let now = Utc::now();
        sqlx::query("UPDATE runs SET heartbeat_at = $2 WHERE key = $1 AND heartbeat_at < $3")
            .bind(run_key)
            .bind(ts_micros(now)?)
            .bind(ts_micros(now - HEARTBEAT_EVERY)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(dataprint_id.map(DataprintId::from))
    }

    async fn last_tenant_run(&self, tenant_id: &str) -> Result<Option<TenantRunRecord>> {
        let row = sqlx::query(concat!(
            tenant_run_select!(),
            " WHERE x.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1) \
             ORDER BY x.finished_at DESC, r.id DESC LIMIT 1"
        ))
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(rows::tenant_run).transpose()
    }

    async fn tenant_runs(&self, run_id: &str) -> Result<Vec<TenantRunRecord>> {
        let rows =
            sqlx::query(concat!(tenant_run_select!(), " WHERE x.run_key = (SELECT key FROM runs WHERE id = $1)"))
                .bind(run_id)
                .fetch_all(&self.read)
                .await?;
        // In start order; the start is decoded from the per-run part, so
        // the order is applied here rather than in SQL.
        let mut records = rows.iter().map(rows::tenant_run).collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| (a.started_at, &a.tenant_id).cmp(&(b.started_at, &b.tenant_id)));
        Ok(records)
    }

    async fn collector_outcomes(&self, run_id: &str, tenant_id: &str) -> Result<Vec<CollectorOutcomeRecord>> {
        let Some(stored) = self.stored_run(run_id, tenant_id).await? else {
            return Ok(Vec::new());
        };
        let decoded = stored.decode()?;
        stored.run.outcomes(&decoded)
    }

    async fn get_dataprint(&self, id: &DataprintId) -> Result<Option<Value>> {
        Ok(self.load_dataprint(id.as_str()).await?.map(|(_, doc)| doc))
    }

    async fn dataprint_for_run(&self, run_id: &str, tenant_id: &str) -> Result<Option<Value>> {
        let Some(stored) = self.stored_run(run_id, tenant_id).await? else {
            return Ok(None);
        };
        let Some((envelope, taken_at)) = &stored.dataprint else {
            return Ok(None);
        };
        let Some((_, doc)) = self.load_dataprint(&envelope.id).await? else {
            return Ok(None);
        };
        let decoded = stored.run.decode(Some((doc.get(blob::RUN), *taken_at)))?;
        Ok(Some(plan::with_run(doc, decoded.run)))
    }

    async fn dataprint_meta(&self, id: &DataprintId) -> Result<Option<DataprintMeta>> {
        let row = sqlx::query(concat!(dataprint_meta_select!(), " WHERE d.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::dataprint_meta).transpose()
    }

    async fn last_good_dataprint(&self, tenant_id: &str) -> Result<Option<(DataprintMeta, Value)>> {
        let Some(latest) = latest_dataprint(&self.read, tenant_id).await? else {
            return Ok(None);
        };
        let Some((meta, doc)) = self.load_dataprint(&latest.id).await? else {
            return Ok(None);
        };
        if meta.confirmed_run_id == meta.run_id {
            return Ok(Some((meta, doc)));
        }
        // A later run confirmed the content: its `run` member tells when each collection was last read.
        let doc = match self.stored_run(&meta.confirmed_run_id, tenant_id).await? {
            Some(stored) => stored.with_run_member(meta.id.as_str(), doc)?,
            None => doc,
        };
        Ok(Some((meta, doc)))
    }

    async fn dataprints(&self, tenant_id: &str, since: Option<DateTime<Utc>>) -> Result<Vec<DataprintMeta>> {
        let rows = sqlx::query(concat!(
            "SELECT * FROM (",
            dataprint_meta_select!(),
            " WHERE d.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1)) m \
             WHERE ($2 IS NULL OR m.confirmed_at >= $2) ORDER BY m.taken_at, m.id"
        ))
        .bind(tenant_id)
        .bind(opt_ts_micros(since)?)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::dataprint_meta).collect()
    }

    async fn previous_dataprint(
        &self,
        tenant_id: &str,
        before: &DataprintId,
    ) -> Result<Option<(DataprintMeta, Value)>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT d.id FROM dataprints d WHERE d.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1) \
             AND (d.taken_at, d.id) < (SELECT b.taken_at, b.id FROM dataprints b WHERE b.id = $2) \
             ORDER BY d.taken_at DESC, d.id DESC LIMIT 1",
        )
        .bind(tenant_id)
        .bind(before.as_str())
        .fetch_optional(&self.read)
        .await?;
        match id {
            Some(id) => self.load_dataprint(&id).await,
            None => Ok(None),
        }
    }

    async fn prune(&self, keep_per_tenant: usize) -> Result<PruneReport> {
        let keep = i64::try_from(keep_per_tenant.max(1)).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let doomed: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT key, tenant_key FROM (SELECT key, tenant_key, ROW_NUMBER() OVER \
             (PARTITION BY tenant_key ORDER BY taken_at DESC, id DESC) AS rn FROM dataprints) ranked \
             WHERE rn > $1",
        )
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        for &(key, tenant_key) in &doomed {
            // The tenant runs that pointed at the dataprint keep their
            // outcome figures, re-encoded so they no longer need it.
            let runs = sqlx::query(concat!(stored_run_select!(), " WHERE x.tenant_key = $1 AND x.dataprint_key = $2"))
                .bind(tenant_key)
                .bind(key)
                .fetch_all(&mut *tx)
                .await?;
            for row in &runs {
                let stored = rows::stored_run(row)?;
                let detached = stored.run.detached(&stored.decode()?)?;
                sqlx::query(
                    "UPDATE tenant_runs SET dataprint_key = NULL, per_run = $3 WHERE run_key = $1 AND tenant_key = $2",
                )
                .bind(stored.run_key)
                .bind(stored.tenant_key)
                .bind(detached)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM dataprints WHERE key = $1").bind(key).execute(&mut *tx).await?;
        }
        let sets = sqlx::query(
            "DELETE FROM collection_sets WHERE NOT EXISTS \
             (SELECT 1 FROM dataprints d WHERE d.set_id = collection_sets.id)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let blobs = sqlx::query(
            "DELETE FROM blobs WHERE NOT EXISTS \
             (SELECT 1 FROM collection_set_members m WHERE m.blob_id = blobs.id)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Results only replaced tenant results used.
        sqlx::query("DELETE FROM results WHERE key NOT IN (SELECT result_key FROM tenant_runs)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Hand the freed pages back to the file system. Only effective on
        // databases created with incremental auto-vacuum; harmless otherwise.
        sqlx::query("PRAGMA incremental_vacuum").execute(&self.write).await?;
        Ok(PruneReport { dataprints_deleted: doomed.len() as u64, sets_deleted: sets, blobs_deleted: blobs })
    }

    async fn get_delta_link(&self, tenant_id: &str, collection: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT link FROM delta_links WHERE tenant_id = $1 AND collection = $2")
            .bind(tenant_id)
            .bind(collection)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn set_delta_link(&self, tenant_id: &str, collection: &str, link: &str) -> Result<()> {
        non_empty(tenant_id, "tenant id")?;
        sqlx::query(
            "INSERT INTO delta_links (tenant_id, collection, link, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, collection) DO UPDATE SET link = excluded.link, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(collection)
        .bind(link)
        .bind(ts_micros(Utc::now())?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn clear_delta_links(&self, tenant_id: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM delta_links WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    async fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>> {
        let Some(row) =
            sqlx::query(concat!("SELECT ", cache_meta_columns!(), ", secret FROM token_cache WHERE key = $1"))
                .bind(key)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let meta = rows::cache_meta(&row)?;
        let record_id = cache_record_id(&meta.key, &meta.tenant_id, &meta.kind, &meta.client_id);
        let secret = crypto::open(&self.key, &record_id, &row.bytes("secret")?)?;
        Ok(Some(cache_record(meta, secret)))
    }

    async fn cache_put(&self, r: &CacheRecord) -> Result<()> {
        non_empty(&r.key, "cache key")?;
        let record_id = cache_record_id(&r.key, &r.tenant_id, &r.kind, &r.client_id);
        let sealed = crypto::seal(&self.key, &record_id, &r.secret)?;
        sqlx::query(
            "INSERT INTO token_cache (key, tenant_id, kind, client_id, home_account, scopes, secret, issued_at, expires_at, claims, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (key) DO UPDATE SET tenant_id = excluded.tenant_id, kind = excluded.kind, \
             client_id = excluded.client_id, home_account = excluded.home_account, scopes = excluded.scopes, \
             secret = excluded.secret, issued_at = excluded.issued_at, expires_at = excluded.expires_at, \
             claims = excluded.claims, updated_at = excluded.updated_at",
        )
        .bind(&r.key)
        .bind(&r.tenant_id)
        .bind(&r.kind)
        .bind(&r.client_id)
        .bind(&r.home_account)
        .bind(&r.scopes)
        .bind(sealed)
        .bind(opt_ts_micros(r.issued_at)?)
        .bind(opt_ts_micros(r.expires_at)?)
        .bind(opt_json_text(r.claims.as_ref())?)
        .bind(ts_micros(r.updated_at)?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn cache_delete(&self, key: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM token_cache WHERE key = $1").bind(key).execute(&self.write).await?.rows_affected()
            > 0)
    }

    async fn cache_delete_tenant(&self, tenant_id: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM token_cache WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    async fn cache_clear(&self) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM token_cache").execute(&self.write).await?.rows_affected())
    }

    async fn cache_list(&self) -> Result<Vec<CacheRecordMeta>> {
        let rows = sqlx::query(concat!("SELECT ", cache_meta_columns!(), " FROM token_cache ORDER BY tenant_id, key"))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::cache_meta).collect()
    }

    async fn credential_put(&self, c: &AppCredential) -> Result<()> {
        non_empty(&c.tenant_id, "tenant id")?;
        non_empty(&c.client_id, "client id")?;
        let record_id = credential_record_id(&c.tenant_id, &c.client_id, c.kind.as_str());
        let sealed = crypto::seal(&self.key, &record_id, &c.secret)?;
        sqlx::query(
            "INSERT INTO app_credentials (tenant_id, client_id, kind, secret, certificate_pem, expires_at, label, added_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id) DO UPDATE SET client_id = excluded.client_id, kind = excluded.kind, \
             secret = excluded.secret, certificate_pem = excluded.certificate_pem, \
             expires_at = excluded.expires_at, label = excluded.label, added_at = excluded.added_at",
        )
        .bind(&c.tenant_id)
        .bind(&c.client_id)
        .bind(c.kind.as_str())
        .bind(sealed)
        .bind(&c.certificate_pem)
        .bind(opt_ts_micros(c.expires_at)?)
        .bind(&c.label)
        .bind(ts_micros(c.added_at)?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn credential_get(&self, tenant_id: &str) -> Result<Option<AppCredential>> {
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            credential_meta_columns!(),
            ", secret FROM app_credentials WHERE tenant_id = $1"
        ))
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let meta = rows::credential_meta(&row)?;
        let record_id = credential_record_id(&meta.tenant_id, &meta.client_id, meta.kind.as_str());
        let secret = crypto::open(&self.key, &record_id, &row.bytes("secret")?)?;
        Ok(Some(app_credential(meta, secret)))
    }

    async fn credential_list(&self) -> Result<Vec<AppCredentialMeta>> {
        let rows =
            sqlx::query(concat!("SELECT ", credential_meta_columns!(), " FROM app_credentials ORDER BY tenant_id"))
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(rows::credential_meta).collect()
    }

    async fn credential_delete(&self, tenant_id: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM app_credentials WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&self.write)
            .await?
            .rows_affected()
            > 0)
    }

    async fn setting_get(&self, key: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.read).await?;
        row.map(|r| r.json("value")).transpose()
    }

    async fn setting_put(&self, key: &str, value: &Value) -> Result<()> {
        non_empty(key, "setting key")?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(json_text(value)?)
        .bind(ts_micros(Utc::now())?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn put_metrics(
        &self,
        run_id: &str,
        tenant_id: &str,
        at: DateTime<Utc>,
        values: &[(String, Value)],
    ) -> Result<()> {
        let at = ts_micros(at)?;
        let mut tx = self.begin_write().await?;
        for (name, value) in values {
            let value = json_text(value)?;
            // A value already saved for this run is replaced: remove it, and
            // the point after it if that one now repeats the point before.
            let replaced: Option<i64> = sqlx::query_scalar(
                "DELETE FROM metrics WHERE tenant_id = $1 AND name = $2 AND run_id = $3 RETURNING at",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(old_at) = replaced {
                let before = metric_neighbour(&mut tx, tenant_id, name, old_at, run_id, false).await?;
                drop_if_repeats(&mut tx, tenant_id, name, old_at, run_id, before.map(|(_, _, v)| v)).await?;
            }
            // A new point only when the value differs from the one in
            // effect at `at`, then the next point goes if it repeats it.
            let before = metric_neighbour(&mut tx, tenant_id, name, at, run_id, false).await?.map(|(_, _, v)| v);
            let in_effect = if before.as_deref() == Some(value.as_str()) {
                before
            } else {
                sqlx::query("INSERT INTO metrics (tenant_id, name, at, run_id, value) VALUES ($1, $2, $3, $4, $5)")
                    .bind(tenant_id)
                    .bind(name)
                    .bind(at)
                    .bind(run_id)
                    .bind(&value)
                    .execute(&mut *tx)
                    .await?;
                Some(value)
            };
            drop_if_repeats(&mut tx, tenant_id, name, at, run_id, in_effect).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn metric_series(
        &self,
        tenant_id: Option<&str>,
        name: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<MetricPoint>> {
        let rows = sqlx::query(
            "SELECT run_id, tenant_id, name, at, value FROM metrics \
             WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR name = $2) AND ($3 IS NULL OR at >= $3) \
             ORDER BY at, tenant_id, name, run_id",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(opt_ts_micros(since)?)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::metric).collect()
    }

    async fn latest_metrics(&self, tenant_id: &str) -> Result<Vec<MetricPoint>> {
        let rows = sqlx::query(
            "SELECT m.run_id, m.tenant_id, m.name, m.at, m.value FROM metrics m WHERE m.tenant_id = $1 \
             AND m.at = (SELECT MAX(l.at) FROM metrics l WHERE l.tenant_id = m.tenant_id AND l.name = m.name) \
             ORDER BY m.name, m.run_id DESC",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        let points = rows.iter().map(rows::metric).collect::<Result<Vec<_>>>()?;
        Ok(rows::first_per_name(points))
    }

    async fn put_events(&self, run_id: &str, tenant_id: &str, at: DateTime<Utc>, events: &[Value]) -> Result<()> {
        let at = ts_micros(at)?;
        let severities = events.iter().map(event_severity).collect::<Result<Vec<_>>>()?;
        let mut tx = self.begin_write().await?;
        for (event, severity) in events.iter().zip(severities) {
            sqlx::query(
                "INSERT INTO events (run_id, tenant_id, at, severity, severity_rank, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run_id)
            .bind(tenant_id)
            .bind(at)
            .bind(severity.as_str())
            .bind(severity.rank())
            .bind(json_text(event)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT id, run_id, tenant_id, at, severity, payload FROM events \
             WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR at >= $2) AND severity_rank >= $3 \
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(filter.tenant.as_deref())
        .bind(opt_ts_micros(filter.since)?)
        .bind(filter.min_severity.unwrap_or(Severity::Info).rank())
        .bind(sql_limit(filter.limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::event).collect()
    }

    async fn upsert_alert(&self, a: &AlertRecord) -> Result<()> {
        non_empty(&a.key, "alert key")?;
        sqlx::query(
            "INSERT INTO alerts (key, rule, tenant_id, severity, opened_at, resolved_at, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (key) DO UPDATE SET rule = excluded.rule, tenant_id = excluded.tenant_id, \
             severity = excluded.severity, opened_at = excluded.opened_at, \
             resolved_at = excluded.resolved_at, payload = excluded.payload",
        )
        .bind(&a.key)
        .bind(&a.rule)
        .bind(&a.tenant_id)
        .bind(a.severity.as_str())
        .bind(ts_micros(a.opened_at)?)
        .bind(opt_ts_micros(a.resolved_at)?)
        .bind(json_text(&a.payload)?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn open_alerts(&self, tenant_id: Option<&str>) -> Result<Vec<AlertRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE resolved_at IS NULL AND ($1 IS NULL OR tenant_id = $1) \
             ORDER BY opened_at DESC, key"
        ))
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::alert).collect()
    }

    async fn list_alerts(&self, open_only: bool) -> Result<Vec<AlertRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE ($1 = 0 OR resolved_at IS NULL) ORDER BY opened_at DESC, key"
        ))
        .bind(i64::from(open_only))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::alert).collect()
    }

    async fn record_delivery(
        &self,
        alert_key: &str,
        target: &str,
        attempt: i64,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO alert_deliveries (alert_key, target, attempt, status, at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM alerts WHERE key = $1)",
        )
        .bind(alert_key)
        .bind(target)
        .bind(attempt)
        .bind(status)
        .bind(ts_micros(at)?)
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("alert {alert_key:?}")));
        }
        Ok(())
    }

    async fn deliveries(&self, alert_key: &str) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query(
            "SELECT alert_key, target, attempt, status, at FROM alert_deliveries \
             WHERE alert_key = $1 ORDER BY at, id",
        )
        .bind(alert_key)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::delivery).collect()
    }

    async fn baseline_put(&self, name: &str, value: &Value) -> Result<()> {
        non_empty(name, "baseline name")?;
        sqlx::query(
            "INSERT INTO baselines (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(json_text(value)?)
        .bind(ts_micros(Utc::now())?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn baseline_get(&self, name: &str) -> Result<Option<Value>> {
        let row =
            sqlx::query("SELECT value FROM baselines WHERE name = $1").bind(name).fetch_optional(&self.read).await?;
        row.map(|r| r.json("value")).transpose()
    }

    async fn baseline_list(&self) -> Result<Vec<BaselineMeta>> {
        let rows = sqlx::query("SELECT name, updated_at FROM baselines ORDER BY name").fetch_all(&self.read).await?;
        rows.iter().map(rows::baseline_meta).collect()
    }

    async fn storage_bytes(&self) -> Result<u64> {
        // Checkpointing first makes the figure the size of the database
        // file itself; the page count is the same either way, since it
        // already includes pages committed to the WAL. A busy checkpoint is
        // not an error: it only leaves pages in the WAL for later.
        let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.write).await;
        let bytes: i64 =
            sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
                .fetch_one(&self.read)
                .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn close(&self) {
        self.read.close().await;
        // Folding the WAL back into the database leaves a single tidy file;
        // if it fails (another process is reading), SQLite does it later.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.write).await;
        self.write.close().await;
    }
}

/// Inserts the collection set (and any missing blobs) of a dataprint, or
/// finds the existing one; returns the set id.
async fn ensure_set(
    tx: &mut Transaction<'static, Sqlite>,
    prepared: &PreparedDataprint,
    set_hash: &str,
) -> Result<i64> {
    let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM collection_sets WHERE hash = $1")
        .bind(set_hash)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let set_id: i64 = sqlx::query_scalar("INSERT INTO collection_sets (hash) VALUES ($1) RETURNING id")
        .bind(set_hash)
        .fetch_one(&mut **tx)
        .await?;
    for collection in &prepared.split.collections {
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM blobs WHERE hash = $1")
            .bind(&collection.hash)
            .fetch_optional(&mut **tx)
            .await?;
        let blob_id = match known {
            Some(id) => id,
            None => {
                sqlx::query_scalar("INSERT INTO blobs (hash, raw_len, data) VALUES ($1, $2, $3) RETURNING id")
                    .bind(&collection.hash)
                    .bind(collection.raw.len() as i64)
                    .bind(prepared.compressed(collection))
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        sqlx::query("INSERT INTO collection_set_members (set_id, name, blob_id) VALUES ($1, $2, $3)")
            .bind(set_id)
            .bind(&collection.name)
            .bind(blob_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(set_id)
}

/// The point of a metric series just before (or after) `(at, run_id)` in
/// series order, as `(at, run_id, value)`.
async fn metric_neighbour(
    tx: &mut Transaction<'static, Sqlite>,
    tenant_id: &str,
    name: &str,
    at: i64,
    run_id: &str,
    after: bool,
) -> Result<Option<(i64, String, String)>> {
    let sql = if after {
        "SELECT at, run_id, value FROM metrics WHERE tenant_id = $1 AND name = $2 \
         AND (at, run_id) > ($3, $4) ORDER BY at, run_id LIMIT 1"
    } else {
        "SELECT at, run_id, value FROM metrics WHERE tenant_id = $1 AND name = $2 \
         AND (at, run_id) < ($3, $4) ORDER BY at DESC, run_id DESC LIMIT 1"
    };
    Ok(sqlx::query_as(sql).bind(tenant_id).bind(name).bind(at).bind(run_id).fetch_optional(&mut **tx).await?)
}

/// Removes the point after `(at, run_id)` when it holds `in_effect`, the
/// value already in effect before it, so the series keeps only changes.
async fn drop_if_repeats(
    tx: &mut Transaction<'static, Sqlite>,
    tenant_id: &str,
    name: &str,
    at: i64,
    run_id: &str,
    in_effect: Option<String>,
) -> Result<()> {
    let Some(in_effect) = in_effect else {
        return Ok(());
    };
    if let Some((next_at, next_run, next_value)) = metric_neighbour(tx, tenant_id, name, at, run_id, true).await?
        && next_value == in_effect
    {
        sqlx::query("DELETE FROM metrics WHERE tenant_id = $1 AND name = $2 AND at = $3 AND run_id = $4")
            .bind(tenant_id)
            .bind(name)
            .bind(next_at)
            .bind(next_run)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
