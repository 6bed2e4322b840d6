//! [`DataprintStore`] on SQL: reading dataprints, pruning them, and delta links.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Pick, SqlStore, Which};
use crate::common::non_empty;
use crate::error::Result;
use crate::rows::{self, RowExt};
use crate::sql::{Exec, ExecExt, TxKind, query};
use crate::{Backend, DataprintId, DataprintMeta, DataprintStore, PruneReport, RunId, TenantId, blob, plan};

#[async_trait]
impl DataprintStore for SqlStore {
    async fn get_dataprint(&self, id: &DataprintId) -> Result<Option<Value>> {
        Ok(self.load_dataprint(id.as_str()).await?.map(|(_, doc)| doc))
    }

    async fn dataprint_for_run(&self, run_id: &RunId, tenant_id: &TenantId) -> Result<Option<Value>> {
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
        let row = self
            .db
            .read()
            .fetch_optional(query(concat!(dataprint_meta_select!(), " WHERE d.id = $1")).bind(id))
            .await?;
        row.as_ref().map(rows::dataprint_meta).transpose()
    }

    async fn last_good_dataprint(&self, tenant_id: &TenantId) -> Result<Option<(DataprintMeta, Value)>> {
        self.last_good_dataprint_with(tenant_id, Pick::All).await
    }

    async fn last_good_collections(
        &self,
        tenant_id: &TenantId,
        collections: &[&str],
    ) -> Result<Option<(DataprintMeta, Value)>> {
        self.last_good_dataprint_with(tenant_id, Pick::Only(collections)).await
    }

    async fn last_good_dataprint_unread(
        &self,
        tenant_id: &TenantId,
        unread: &[&str],
    ) -> Result<Option<(DataprintMeta, Value)>> {
        self.last_good_dataprint_with(tenant_id, Pick::Unread(unread)).await
    }

    async fn dataprints(&self, tenant_id: &TenantId, since: Option<DateTime<Utc>>) -> Result<Vec<DataprintMeta>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!(
                    "SELECT * FROM (",
                    dataprint_meta_select!(),
                    " WHERE d.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1)) m \
                     WHERE ($2 IS NULL OR m.confirmed_at >= $2) ORDER BY m.taken_at, m.id"
                ))
                .bind(tenant_id)
                .bind(since),
            )
            .await?;
        rows.iter().map(rows::dataprint_meta).collect()
    }
    async fn previous_dataprint(
        &self,
        tenant_id: &TenantId,
        before: &DataprintId,
    ) -> Result<Option<(DataprintMeta, Value)>> {
        let id = self
            .db
            .read()
            .text(
                query(
                    "SELECT d.id FROM dataprints d WHERE d.tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $1) \
                     AND (d.taken_at, d.id) < (SELECT b.taken_at, b.id FROM dataprints b WHERE b.id = $2) \
                     ORDER BY d.taken_at DESC, d.id DESC LIMIT 1",
                )
                .bind(tenant_id)
                .bind(before),
            )
            .await?;
        match id {
            Some(id) => self.load_dataprint(&id).await,
            None => Ok(None),
        }
    }

    async fn prune(&self, keep_per_tenant: usize) -> Result<PruneReport> {
        let keep = i64::try_from(keep_per_tenant.max(1)).unwrap_or(i64::MAX);
        let mut tx = self.db.begin(TxKind::Collect).await?;
        let doomed = tx
            .fetch_all(
                query(
                    "SELECT key, tenant_key FROM (SELECT key, tenant_key, ROW_NUMBER() OVER \
                     (PARTITION BY tenant_key ORDER BY taken_at DESC, id DESC) AS rn FROM dataprints) ranked \
                     WHERE rn > $1",
                )
                .bind(keep),
            )
            .await?;
        for row in &doomed {
            let (key, tenant_key) = (row.int("key")?, row.int("tenant_key")?);
            // The tenant runs that pointed at the dataprint keep their outcome figures, re-encoded
            // so they no longer need it.
            let runs = tx
                .fetch_all(
                    query(concat!(stored_run_select!(), " WHERE x.tenant_key = $1 AND x.dataprint_key = $2"))
                        .bind(tenant_key)
                        .bind(key),
                )
                .await?;
            for row in &runs {
                let stored = rows::stored_run(row)?;
                let detached = stored.run.detached(&stored.decode()?)?;
                tx.execute(
                    query(
                        "UPDATE tenant_runs SET dataprint_key = NULL, per_run = $3 \
                         WHERE run_key = $1 AND tenant_key = $2",
                    )
                    .bind(stored.run_key)
                    .bind(stored.tenant_key)
                    .bind(detached),
                )
                .await?;
            }
            tx.execute(query("DELETE FROM dataprints WHERE key = $1").bind(key)).await?;
        }
        let (sets, blobs) = super::retention::collect_garbage(tx.as_mut()).await?;
        tx.commit().await?;
        self.db.reclaim_space().await?;
        Ok(PruneReport {
            dataprints_deleted: doomed.len() as u64,
            sets_deleted: sets,
            blobs_deleted: blobs,
            ..PruneReport::default()
        })
    }

    async fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<PruneReport> {
        self.prune_by_age(cutoff).await
    }

    async fn get_delta_link(&self, tenant_id: &TenantId, collection: &str) -> Result<Option<String>> {
        self.db
            .read()
            .text(
                query("SELECT link FROM delta_links WHERE tenant_id = $1 AND collection = $2")
                    .bind(tenant_id)
                    .bind(collection),
            )
            .await
    }

    async fn dataprint_collection(
        &self,
        id: &DataprintId,
        name: &str,
        fields: Option<&[String]>,
    ) -> Result<Option<Value>> {
        // One snapshot, so that a concurrent prune cannot remove the blob between the two reads.
        let mut tx = self.db.begin(TxKind::Snapshot).await?;
        let Some(row) = tx
            .fetch_optional(query("SELECT envelope, envelope_len, set_id FROM dataprints WHERE id = $1").bind(id))
            .await?
        else {
            return Ok(None);
        };
        let member = match row.opt_int("set_id")? {
            Some(set_id) => tx
                .fetch_optional(
                    query(
                        "SELECT b.hash, b.raw_len, b.data FROM collection_set_members m \
                         JOIN blobs b ON b.id = m.blob_id WHERE m.set_id = $1 AND m.name = $2",
                    )
                    .bind(set_id)
                    .bind(name),
                )
                .await?
                .map(|m| Ok::<_, crate::StoreError>((m.text("hash")?, m.int("raw_len")?, m.bytes("data")?)))
                .transpose()?,
            None => None,
        };
        let envelope = (row.bytes("envelope")?, row.int("envelope_len")?);
        tx.commit().await?;
        let (id, name, fields) = (id.to_string(), name.to_string(), fields.map(<[String]>::to_vec));
        tokio::task::spawn_blocking(move || match member {
            Some((hash, raw_len, data)) => {
                let raw = blob::decompress(&data, raw_len, &format!("blob {hash}"))?;
                let collection = match &fields {
                    Some(fields) => blob::parse_projected(&raw, &hash, fields)?,
                    None => blob::parse_blob(&raw, &hash)?,
                };
                // A collection stored as `null` is not there, as in a dataprint stored whole.
                Ok(Some(collection).filter(|c| !c.is_null()))
            }
            // A dataprint stored whole holds its collections in its envelope.
            None => {
                let (envelope_z, envelope_len) = envelope;
                let raw = blob::decompress(&envelope_z, envelope_len, &format!("dataprint {id} envelope"))?;
                let mut doc = blob::reassemble(&id, &raw, None)?;
                let collection = doc.get_mut(blob::COLLECTIONS).and_then(|c| c.get_mut(&name)).map(Value::take);
                Ok(collection.filter(|c| !c.is_null()).map(|c| match &fields {
                    Some(fields) => blob::project_collection(c, fields),
                    None => c,
                }))
            }
        })
        .await
        .map_err(|err| crate::StoreError::Internal(format!("decompression task failed: {err}")))?
    }

    async fn delta_links(&self, tenant_id: &TenantId) -> Result<Vec<(String, String)>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query("SELECT collection, link FROM delta_links WHERE tenant_id = $1 ORDER BY collection")
                    .bind(tenant_id),
            )
            .await?;
        rows.iter().map(|row| Ok((row.text("collection")?, row.text("link")?))).collect()
    }

    async fn set_delta_link(&self, tenant_id: &TenantId, collection: &str, link: &str) -> Result<()> {
        let backend = self.db.backend();
        set_delta_links_in(&mut *self.db.write(), backend, tenant_id, &[(collection.to_string(), link.to_string())])
            .await
    }

    async fn clear_delta_links(&self, tenant_id: &TenantId) -> Result<u64> {
        self.db.write().execute(query("DELETE FROM delta_links WHERE tenant_id = $1").bind(tenant_id)).await
    }
}

impl SqlStore {
    /// The tenant's latest good dataprint, whole or with only some collections.
    async fn last_good_dataprint_with(
        &self,
        tenant_id: &TenantId,
        pick: Pick<'_>,
    ) -> Result<Option<(DataprintMeta, Value)>> {
        let Some((meta, doc, loaded)) = self.load_which(Which::LatestGood(tenant_id), pick).await? else {
            return Ok(None);
        };
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).insert(tenant_id.clone(), loaded);
        if meta.confirmed_run_id == meta.run_id {
            return Ok(Some((meta, doc)));
        }
        // A later run confirmed the content: its `run` member tells when each collection was last
        // read.
        let doc = match self.stored_run(&meta.confirmed_run_id, tenant_id).await? {
            Some(stored) => stored.with_run_member(meta.id.as_str(), doc)?,
            None => doc,
        };
        Ok(Some((meta, doc)))
    }
}

/// Saves the links that continue a tenant's delta reads, each replacing the collection's previous
/// one, in one statement inside the caller's transaction (see [`DataprintStore::set_delta_link`]).
pub(super) async fn set_delta_links_in(
    exec: &mut (dyn Exec + '_),
    backend: Backend,
    tenant_id: &TenantId,
    links: &[(String, String)],
) -> Result<()> {
    non_empty(tenant_id.as_str(), "tenant id")?;
    if links.is_empty() {
        return Ok(());
    }
    for (collection, _) in links {
        non_empty(collection, "delta link's collection")?;
    }
    // A JSON object of collection to link; a collection named twice keeps its last link, as two
    // statements did.
    let links: serde_json::Map<String, Value> =
        links.iter().map(|(c, l)| (c.clone(), Value::String(l.clone()))).collect();
    // `WHERE true` tells SQLite's parser that `ON CONFLICT` is the upsert's, not the join's.
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO delta_links (tenant_id, collection, link, updated_at) \
             SELECT $1, j.key, j.value, $2 FROM json_each($3) j WHERE true \
             ON CONFLICT (tenant_id, collection) DO UPDATE SET link = excluded.link, \
             updated_at = excluded.updated_at"
        }
        Backend::Postgres => {
            "INSERT INTO delta_links (tenant_id, collection, link, updated_at) \
             SELECT $1, j.key, j.value, $2 FROM json_each_text($3::json) j \
             ON CONFLICT (tenant_id, collection) DO UPDATE SET link = excluded.link, \
             updated_at = excluded.updated_at"
        }
    };
    exec.execute(query(sql).bind(tenant_id).bind(Utc::now()).bind(serde_json::to_string(&links)?)).await?;
    Ok(())
}
