//! The store, written once for both SQL dialects.
//!
//! [`SqlStore`] holds a [`Dialect`] (the pools and what really differs between SQLite and
//! PostgreSQL), the key that encrypts secrets, and this process's identity as the owner of the runs
//! it starts. Each capability trait is implemented in its own module; the helpers they share (the
//! steps of a tenant commit, loading a dataprint) are here.
//!
//! Reads go through [`Dialect::read`], single-statement writes through [`Dialect::write`], and
//! anything that must commit together through a transaction from [`Dialect::begin`], whose
//! [`TxKind`] says how it locks.

mod access;
mod agents;
mod alerts;
mod audit;
mod dataprints;
mod history;
mod jobs;
mod retention;
mod runs;
mod secrets;
mod settings;
mod tenants;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::blob::{self, PreparedDataprint, SplitDataprint, StoredDataprint, StoredMember};
use crate::common::InstanceGuard;
use crate::error::{Result, StoreError};
use crate::plan::{self, Doc, Envelope, Incoming, Latest};
use crate::result::EncodedResult;
use crate::rows::{self, RowExt};
use crate::sql::{Dialect, Exec, ExecExt, Query, TxKind, query};
use crate::{AdminStore, Backend, DataprintMeta, Key, ReusedFrom, RunId, TenantId, TenantRunRecord};

pub(crate) struct SqlStore {
    db: Box<dyn Dialect>,
    key: Key,
    instance: InstanceGuard,
    /// When this process last refreshed each run's heartbeat (by the run's key), so that a commit
    /// within the minute does not even ask.
    heartbeats: std::sync::Mutex<std::collections::HashMap<i64, DateTime<Utc>>>,
    /// Each tenant's newest good dataprint as this process last loaded it: a run loads it, builds
    /// the tenant's new dataprint on it, and commits one that most often confirms it. The commit's
    /// early check takes it from here instead of reading it again; it is only a guess, which the
    /// commit's transaction checks against the database like any early decision.
    loaded: std::sync::Mutex<std::collections::HashMap<TenantId, Loaded>>,
    /// Which tenant this process first stored each content for, to notice content several tenants
    /// hold ([`ensure_set`]).
    seen: SeenBlobs,
}

/// The owner of blobs that several tenants hold (`blobs.owner`, migration 0012).
const SHARED: i64 = 0;

/// The content hashes this process stored blobs for, with the tenant key it stored each for.
///
/// Blobs are looked up by owner and hash, among the committing tenant's and the shared ones
/// ([`known_blobs`]); content that another tenant already holds (built-in role definitions, default
/// policies, empty lists) would be stored again for every tenant. So a commit that stores content
/// this process stored for another tenant before stores it as shared, and the tenants after find it
/// there. Only a hint: a hash forgotten (the map is bounded, the process restarted) costs one more
/// copy, and keys are the hash's first 64 bits, whose rare collision only makes a blob shared.
#[derive(Default)]
struct SeenBlobs(std::sync::Mutex<std::collections::HashMap<u64, i64>>);

impl SeenBlobs {
    /// Hashes remembered at most (about 4 MiB): several first inspections of a thousand tenants.
    const MAX: usize = 100_000;

    fn key(hash: &str) -> Option<u64> {
        u64::from_str_radix(hash.get(..16)?, 16).ok()
    }

    /// Whether a tenant other than `owner` stored this content through this process.
    fn elsewhere(&self, hash: &str, owner: i64) -> bool {
        let Some(key) = Self::key(hash) else { return false };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key).is_some_and(|first| *first != owner)
    }

    fn note(&self, hash: &str, owner: i64) {
        let Some(key) = Self::key(hash) else { return };
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= Self::MAX {
            seen.clear();
        }
        seen.entry(key).or_insert(owner);
    }
}

/// What a commit checks a new dataprint of a tenant against, as loaded with the tenant's latest
/// dataprint ([`SqlStore::load_which`]): the dataprint, its envelope, and the hash and length of
/// each of its collections, read or not.
pub(crate) struct Loaded {
    latest: Latest,
    envelope: Envelope,
    members: blob::Known,
}

/// Which stored dataprint a read loads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    Id(&'a str),
    /// The tenant's newest good (ok or partial) dataprint.
    LatestGood(&'a TenantId),
}

/// Which collections of a stored dataprint a read loads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pick<'a> {
    All,
    /// Only these; the others are left out of the document.
    Only(&'a [&'a str]),
    /// All but these, which stay in the document as `null`.
    Unread(&'a [&'a str]),
}

impl From<Pick<'_>> for blob::Pick {
    fn from(pick: Pick<'_>) -> blob::Pick {
        let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        match pick {
            Pick::All => blob::Pick::All,
            Pick::Only(names) => blob::Pick::Only(owned(names)),
            Pick::Unread(names) => blob::Pick::Unread(owned(names)),
        }
    }
}

impl SqlStore {
    pub(crate) fn new(db: Box<dyn Dialect>, key: Key) -> SqlStore {
        SqlStore {
            db,
            key,
            instance: InstanceGuard::register(),
            heartbeats: Default::default(),
            loaded: Default::default(),
            seen: Default::default(),
        }
    }

    /// The stored hash and length of the collections a commit says it reused unchanged from an
    /// earlier dataprint ([`crate::WithResult::reused`]): only from a dataprint of the same tenant,
    /// and only the collections it holds. What does not hold is left out, and those collections
    /// are serialised and hashed as usual.
    pub(crate) async fn reused_blobs(&self, tenant_id: &TenantId, reused: &ReusedFrom) -> Result<blob::Known> {
        let mut known = blob::Known::new();
        if reused.collections.is_empty() && reused.unread.is_empty() {
            return Ok(known);
        }
        let named = |name: &str| reused.collections.iter().chain(&reused.unread).any(|n| n == name);
        // The dataprint the run built on was loaded by this process with its members' hashes.
        if let Some(loaded) = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).get(tenant_id)
            && loaded.latest.id == reused.dataprint.as_str()
        {
            return Ok(loaded
                .members
                .iter()
                .filter(|(name, _)| named(name))
                .map(|(n, h)| (n.clone(), h.clone()))
                .collect());
        }
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT m.name, b.hash, b.raw_len FROM dataprints d \
                     JOIN tenant_keys t ON t.key = d.tenant_key \
                     JOIN collection_set_members m ON m.set_id = d.set_id \
                     JOIN blobs b ON b.id = m.blob_id WHERE d.id = $1 AND t.tenant_id = $2",
                )
                .bind(&reused.dataprint)
                .bind(tenant_id),
            )
            .await?;
        for row in &rows {
            let name = row.text("name")?;
            if (reused.collections.contains(&name) || reused.unread.contains(&name))
                && let Ok(len) = usize::try_from(row.int("raw_len")?)
            {
                known.insert(name, (row.text("hash")?, len));
            }
        }
        Ok(known)
    }

    /// Compresses a dataprint expected to be new, asking the database (outside any transaction,
    /// and in SQLite outside the write lock) which collections it already has.
    async fn prepare(&self, tenant_id: &TenantId, split: SplitDataprint) -> Result<PreparedDataprint> {
        let mut missing = Vec::new();
        if let Some(set_hash) = &split.set_hash {
            let set_known = self
                .db
                .read()
                .fetch_optional(query("SELECT 1 FROM collection_sets WHERE hash = $1").bind(set_hash))
                .await?
                .is_some();
            if !set_known {
                let hashes = distinct_hashes(&split.collections);
                // A tenant without a key yet has no blobs of its own, only shared ones.
                let owner = self
                    .db
                    .read()
                    .int(query("SELECT key FROM tenant_keys WHERE tenant_id = $1").bind(tenant_id))
                    .await?;
                let known =
                    known_blobs(&mut *self.db.read(), self.db.backend(), owner.unwrap_or(SHARED), &hashes).await?;
                missing = hashes.into_iter().filter(|h| !known.contains_key(*h)).map(str::to_owned).collect();
            }
        }
        blob::prepare(split, missing).await
    }

    /// Decides, outside the transaction, whether the dataprint confirms the tenant's latest one
    /// (then encodes the per-run part against it) or is new (then compresses it). The transaction
    /// checks the decision again (see [`crate::plan`]).
    async fn plan(&self, tr: &TenantRunRecord, incoming: &mut Incoming, split: SplitDataprint) -> Result<()> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).remove(&tr.tenant_id);
        let found = match loaded {
            Some(Loaded { latest, envelope, .. }) => Some((latest, Some(envelope))),
            None => latest_dataprint(&mut *self.db.read(), &tr.tenant_id).await?.map(|latest| (latest, None)),
        };
        if let Some((latest, envelope)) = found
            && plan::matches(&split, tr.status, &latest)
        {
            let envelope = match envelope {
                Some(envelope) => Some(envelope),
                None => load_envelope(&mut *self.db.read(), latest.key).await?,
            };
            if let Some(envelope) = envelope {
                let per_run = incoming.per_run_against(tr, &split, envelope.run()?.as_ref(), latest.taken_at)?;
                incoming.doc = Doc::Confirm { split, key: latest.key, id: latest.id, per_run };
                return Ok(());
            }
        }
        incoming.doc = Doc::Insert(self.prepare(&tr.tenant_id, split).await?);
        Ok(())
    }

    /// A dataprint as first stored, and what is known about it.
    async fn load_dataprint(&self, id: &str) -> Result<Option<(DataprintMeta, Value)>> {
        self.load_dataprint_with(id, Pick::All).await
    }

    /// A dataprint with the collections `pick` reads; the blobs of the others are neither read nor
    /// inflated.
    pub(crate) async fn load_dataprint_with(&self, id: &str, pick: Pick<'_>) -> Result<Option<(DataprintMeta, Value)>> {
        Ok(self.load_which(Which::Id(id), pick).await?.map(|(meta, doc, _)| (meta, doc)))
    }

    /// A dataprint with the collections `pick` reads, and what a commit checks a new dataprint of
    /// the tenant against ([`Loaded`]).
    async fn load_which(&self, which: Which<'_>, pick: Pick<'_>) -> Result<Option<(DataprintMeta, Value, Loaded)>> {
        // What is known of the dataprint and its envelope in one statement, with the members in a
        // second, in one snapshot, so that a concurrent prune cannot remove the collection set
        // between the two.
        macro_rules! with_envelope {
            ($filter:literal) => {
                concat!(
                    "SELECT x.*, e.envelope, e.envelope_len, e.set_id, e.content_hash FROM (",
                    dataprint_meta_select!(),
                    $filter,
                    ") x JOIN dataprints e ON e.key = x.key"
                )
            };
        }
        let mut tx = self.db.begin(TxKind::Snapshot).await?;
        let q = match which {
            Which::Id(id) => query(with_envelope!(" WHERE d.id = $1")).bind(id),
            Which::LatestGood(tenant_id) => query(with_envelope!(
                " WHERE d.key = (SELECT l.key FROM dataprints l \
                 WHERE l.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1) \
                 AND l.status IN ('ok', 'partial') ORDER BY l.taken_at DESC, l.id DESC LIMIT 1)"
            ))
            .bind(tenant_id),
        };
        let Some(row) = tx.fetch_optional(q).await? else {
            return Ok(None);
        };
        let meta = rows::dataprint_meta(&row)?;
        let latest = rows::latest(&row)?;
        let mut known = blob::Known::new();
        let members = match row.opt_int("set_id")? {
            None => None,
            Some(set_id) => {
                // One statement, whatever the pick: a statement per blob was a round trip to
                // SQLite's worker thread each, twenty-odd per tenant on every run. It gives every
                // member's hash and length, and the bytes of the picked ones only (SQLite reads a
                // blob's overflow pages only when the column is taken).
                macro_rules! members {
                    ($data:literal) => {
                        concat!(
                            "SELECT m.name, b.hash, b.raw_len, ",
                            $data,
                            " AS data FROM collection_set_members m JOIN blobs b ON b.id = m.blob_id WHERE m.set_id = $1"
                        )
                    };
                }
                let (names, sql) = match (pick, self.db.backend()) {
                    (Pick::All, _) => (None, members!("b.data")),
                    (Pick::Only(names), Backend::Sqlite) => {
                        (Some(names), members!("CASE WHEN m.name IN (SELECT value FROM json_each($2)) THEN b.data END"))
                    }
                    (Pick::Unread(names), Backend::Sqlite) => (
                        Some(names),
                        members!("CASE WHEN m.name NOT IN (SELECT value FROM json_each($2)) THEN b.data END"),
                    ),
                    (Pick::Only(names), Backend::Postgres) => (
                        Some(names),
                        members!("CASE WHEN m.name IN (SELECT json_array_elements_text($2::json)) THEN b.data END"),
                    ),
                    (Pick::Unread(names), Backend::Postgres) => (
                        Some(names),
                        members!("CASE WHEN m.name NOT IN (SELECT json_array_elements_text($2::json)) THEN b.data END"),
                    ),
                };
                let mut q = query(sql).bind(set_id);
                if let Some(names) = names {
                    q = q.bind(serde_json::to_string(names)?);
                }
                let mut members = Vec::new();
                for member in &tx.fetch_all(q).await? {
                    let (name, hash, raw_len) = (member.text("name")?, member.text("hash")?, member.int("raw_len")?);
                    if let Ok(len) = usize::try_from(raw_len) {
                        known.insert(name.clone(), (hash.clone(), len));
                    }
                    if let Some(data) = member.opt_bytes("data")? {
                        members.push(StoredMember { name, hash, raw_len, data });
                    }
                }
                Some(members)
            }
        };
        let envelope =
            Envelope { id: meta.id.to_string(), data: row.bytes("envelope")?, len: row.int("envelope_len")? };
        let stored = StoredDataprint {
            id: envelope.id.clone(),
            envelope_z: envelope.data.clone(),
            envelope_len: envelope.len,
            members,
        };
        tx.commit().await?;
        let doc = blob::load(stored, pick.into()).await?;
        Ok(Some((meta, doc, Loaded { latest, envelope, members: known })))
    }

    /// The tenant run of a tenant in a run, ready to decode.
    async fn stored_run(&self, run_id: &RunId, tenant_id: &TenantId) -> Result<Option<rows::StoredRunRow>> {
        let row = self
            .db
            .read()
            .fetch_optional(
                query(concat!(
                    stored_run_select!(),
                    " WHERE x.run_key = (SELECT key FROM runs WHERE id = $1) \
                     AND x.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $2)"
                ))
                .bind(run_id)
                .bind(tenant_id),
            )
            .await?;
        row.as_ref().map(rows::stored_run).transpose()
    }
}

#[async_trait]
impl AdminStore for SqlStore {
    fn backend(&self) -> Backend {
        self.db.backend()
    }

    async fn storage_bytes(&self) -> Result<u64> {
        self.db.storage_bytes().await
    }

    async fn close(&self) {
        self.db.close().await;
    }

    async fn backup(&self, path: &std::path::Path) -> Result<()> {
        self.db.backup(path).await
    }

    async fn integrity_problems(&self) -> Result<Vec<String>> {
        self.db.integrity_problems().await
    }
}

/// The newest good dataprint of a tenant: the one a new dataprint must match to be confirmed
/// instead of stored.
async fn latest_dataprint(exec: &mut (dyn Exec + '_), tenant_id: &TenantId) -> Result<Option<Latest>> {
    let row = exec
        .fetch_optional(
            query(concat!(
                "SELECT ",
                latest_columns!(),
                " FROM dataprints d WHERE d.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1) \
                 AND d.status IN ('ok', 'partial') ORDER BY d.taken_at DESC, d.id DESC LIMIT 1"
            ))
            .bind(tenant_id),
        )
        .await?;
    row.as_ref().map(rows::latest).transpose()
}

async fn load_envelope(exec: &mut (dyn Exec + '_), key: i64) -> Result<Option<Envelope>> {
    let row = exec
        .fetch_optional(query("SELECT id, envelope, envelope_len FROM dataprints WHERE key = $1").bind(key))
        .await?;
    row.map(|row| Ok(Envelope { id: row.text("id")?, data: row.bytes("envelope")?, len: row.int("envelope_len")? }))
        .transpose()
}

/// The key of a row identified by a unique value, inserted now if it is new; and whether this call
/// inserted it.
async fn ensure_key(exec: &mut (dyn Exec + '_), find: Query, insert: Query) -> Result<(i64, bool)> {
    match exec.int(find.clone()).await? {
        Some(key) => Ok((key, false)),
        None => insert_or_find(exec, insert, find).await,
    }
}

/// Inserts a row that was not there a moment ago. Another transaction may insert the same row
/// concurrently (PostgreSQL): `ON CONFLICT DO NOTHING` waits for it, returns nothing, and the
/// lookup that follows finds its row.
async fn insert_or_find(exec: &mut (dyn Exec + '_), insert: Query, find: Query) -> Result<(i64, bool)> {
    if let Some(key) = exec.int(insert).await? {
        return Ok((key, true));
    }
    let sql = find.sql;
    let key = exec.int(find).await?.ok_or_else(|| StoreError::Internal(format!("no row after insert: {sql}")))?;
    Ok((key, false))
}

/// The integer key of a tenant id, created on first use.
async fn tenant_key(exec: &mut (dyn Exec + '_), tenant_id: &TenantId) -> Result<i64> {
    let find = query("SELECT key FROM tenant_keys WHERE tenant_id = $1").bind(tenant_id);
    let insert =
        query("INSERT INTO tenant_keys (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING RETURNING key")
            .bind(tenant_id);
    Ok(ensure_key(exec, find, insert).await?.0)
}

/// The key of a stored result, stored now if it is new.
async fn ensure_result(exec: &mut (dyn Exec + '_), result: &EncodedResult) -> Result<i64> {
    let find = query("SELECT key FROM results WHERE hash = $1").bind(&result.hash);
    let insert = query(
        "INSERT INTO results (hash, raw_len, data) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING RETURNING key",
    )
    .bind(&result.hash)
    .bind(result.raw_len)
    .bind(&result.data);
    Ok(ensure_key(exec, find, insert).await?.0)
}

/// The blob hashes of some collections, each once (two collections may hold the same content).
fn distinct_hashes(collections: &[blob::CollectionBlob]) -> Vec<&str> {
    let mut hashes: Vec<&str> = collections.iter().map(|c| c.hash.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

/// The blobs of some hashes that the tenant of key `owner` holds or that are shared, by hash, in one
/// statement: the hashes go in as one JSON array, since a statement's text is always a literal.
///
/// Blobs are looked up by owner (migration 0012): keyed by owner, the blobs a commit adds land
/// together in the `(owner, hash)` index, where keyed by hash alone each landed at a random place
/// and every commit rewrote a leaf of the index per collection. Content several tenants hold is
/// shared ([`SeenBlobs`]); a collection set found by its hash shares whatever blobs it names.
async fn known_blobs(
    exec: &mut (dyn Exec + '_),
    backend: Backend,
    owner: i64,
    hashes: &[&str],
) -> Result<HashMap<String, i64>> {
    if hashes.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT hash, id FROM blobs WHERE owner IN ($1, 0) AND hash IN (SELECT value FROM json_each($2))"
        }
        Backend::Postgres => {
            "SELECT hash, id FROM blobs WHERE owner IN ($1, 0) AND hash IN (SELECT json_array_elements_text($2::json))"
        }
    };
    let rows = exec.fetch_all(query(sql).bind(owner).bind(serde_json::to_string(hashes)?)).await?;
    // A hash held both by the tenant and shared has two blobs of the same content; either serves.
    rows.iter().map(|row| Ok((row.text("hash")?, row.int("id")?))).collect()
}

/// Inserts the collection set (and any missing blobs) of a dataprint, or finds the existing one;
/// returns the set id. A set inserted by another commit comes with its members.
///
/// A first inspection stores about 25 collections per tenant: the blobs are looked up in one
/// statement and the members inserted in one, rather than three statements per collection, each a
/// round trip to SQLite's worker thread.
async fn ensure_set(
    exec: &mut (dyn Exec + '_),
    backend: Backend,
    seen: &SeenBlobs,
    owner: i64,
    prepared: &PreparedDataprint,
    set_hash: &str,
    doc: Option<&Value>,
) -> Result<i64> {
    let find = query("SELECT id FROM collection_sets WHERE hash = $1").bind(set_hash);
    let insert = query("INSERT INTO collection_sets (hash) VALUES ($1) ON CONFLICT (hash) DO NOTHING RETURNING id")
        .bind(set_hash);
    let (set_id, inserted) = ensure_key(exec, find, insert).await?;
    if !inserted {
        return Ok(set_id);
    }
    let collections = &prepared.split.collections;
    let mut ids = known_blobs(&mut *exec, backend, owner, &distinct_hashes(collections)).await?;
    for collection in collections {
        if ids.contains_key(&collection.hash) {
            continue;
        }
        let home = if seen.elsewhere(&collection.hash, owner) { SHARED } else { owner };
        // Compressed only now that the blob is known to be missing. Another transaction may insert
        // the same blob meanwhile (PostgreSQL): `ON CONFLICT DO NOTHING` waits for it, and the
        // lookup that follows finds its row.
        let insert = query(
            "INSERT INTO blobs (owner, hash, raw_len, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner, hash) DO NOTHING RETURNING id",
        )
        .bind(home)
        .bind(&collection.hash)
        .bind(collection.raw_len as i64)
        .bind(prepared.compressed(collection, doc)?);
        let find = query("SELECT id FROM blobs WHERE owner = $1 AND hash = $2").bind(home).bind(&collection.hash);
        let (id, _) = insert_or_find(exec, insert, find).await?;
        seen.note(&collection.hash, owner);
        ids.insert(collection.hash.clone(), id);
    }
    // The members as one JSON object from collection name to blob id (names are the keys of the
    // document's `collections`, so unique).
    let members: serde_json::Map<String, Value> =
        collections.iter().filter_map(|c| ids.get(&c.hash).map(|id| (c.name.clone(), Value::from(*id)))).collect();
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO collection_set_members (set_id, name, blob_id) SELECT $1, j.key, j.value FROM json_each($2) j"
        }
        Backend::Postgres => {
            "INSERT INTO collection_set_members (set_id, name, blob_id) \
             SELECT $1, j.key, j.value::bigint FROM json_each_text($2::json) j"
        }
    };
    let written = exec.execute(query(sql).bind(set_id).bind(serde_json::to_string(&members)?)).await?;
    if written != collections.len() as u64 {
        return Err(StoreError::Internal(format!(
            "collection set {set_hash}: {written} of {} members found their blob",
            collections.len()
        )));
    }
    Ok(set_id)
}
