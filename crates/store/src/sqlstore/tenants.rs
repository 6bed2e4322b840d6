//! [`TenantStore`] on SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqlStore;
use crate::common::{non_empty, opt_json_text};
use crate::error::Result;
use crate::rows;
use crate::rows::RowExt;
use crate::sql::{Exec, TxKind, query};
use crate::{TenantId, TenantRecord, TenantStore};

#[async_trait]
impl TenantStore for SqlStore {
    async fn upsert_tenant(&self, t: &TenantRecord) -> Result<()> {
        upsert_tenant_in(&mut *self.db.write(), t).await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(query(concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1")).bind(id))
            .await?;
        row.as_ref().map(rows::tenant).transpose()
    }

    async fn find_tenant(&self, id_or_domain: &str) -> Result<Option<TenantRecord>> {
        let row = self
            .db
            .read()
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    tenant_columns!(),
                    " FROM tenants WHERE lower(id) = lower($1) OR lower(domain) = lower($1) \
                     ORDER BY (lower(id) = lower($1)) DESC, (gone_since IS NULL) DESC, last_seen DESC LIMIT 1"
                ))
                .bind(id_or_domain.trim()),
            )
            .await?;
        row.as_ref().map(rows::tenant).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(concat!("SELECT ", tenant_columns!(), " FROM tenants ORDER BY lower(display_name), id")))
            .await?;
        rows.iter().map(rows::tenant).collect()
    }

    async fn resolve_tenants(&self, text: &str) -> Result<Vec<TenantRecord>> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .read()
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    tenant_columns!(),
                    " FROM tenants WHERE lower(id) = lower($1) OR lower(domain) = lower($1) \
                     OR lower(display_name) = lower($1) \
                     OR id IN (SELECT tenant_id FROM tenant_domains WHERE lower(domain) = lower($1)) \
                     ORDER BY (lower(id) = lower($1)) DESC, lower(display_name), id"
                ))
                .bind(text),
            )
            .await?;
        rows.iter().map(rows::tenant).collect()
    }

    async fn set_tenant_domains(&self, tenant_id: &TenantId, source: &str, domains: &[String]) -> Result<()> {
        let mut tx = self.db.begin(TxKind::Write).await?;
        set_tenant_domains_in(&mut *tx, tenant_id, source, domains).await?;
        // Committed even when nothing changed: a dropped transaction is rolled back, which in
        // SQLite's group commit costs a statement more.
        tx.commit().await
    }

    async fn upsert_tenants_with_domains(&self, tenants: &[(TenantRecord, Vec<String>)], source: &str) -> Result<()> {
        let mut tx = self.db.begin(TxKind::Write).await?;
        for (tenant, domains) in tenants {
            upsert_tenant_in(&mut *tx, tenant).await?;
            set_tenant_domains_in(&mut *tx, &tenant.id, source, domains).await?;
        }
        tx.commit().await
    }

    async fn tenant_domains(&self, tenant_id: &TenantId) -> Result<Vec<String>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT DISTINCT lower(domain) AS domain FROM tenant_domains WHERE tenant_id = $1 \
                     UNION SELECT lower(domain) AS domain FROM tenants WHERE id = $1 AND domain IS NOT NULL \
                     ORDER BY domain",
                )
                .bind(tenant_id),
            )
            .await?;
        rows.iter().map(|r| r.text("domain")).collect()
    }

    async fn all_tenant_domains(&self) -> Result<std::collections::HashMap<TenantId, Vec<String>>> {
        let rows = self
            .db
            .read()
            .fetch_all(query(
                "SELECT tenant_id, lower(domain) AS domain FROM tenant_domains \
                 UNION SELECT id AS tenant_id, lower(domain) AS domain FROM tenants WHERE domain IS NOT NULL \
                 ORDER BY tenant_id, domain",
            ))
            .await?;
        let mut all: std::collections::HashMap<TenantId, Vec<String>> = std::collections::HashMap::new();
        for row in &rows {
            all.entry(TenantId::new(row.text("tenant_id")?)).or_default().push(row.text("domain")?);
        }
        Ok(all)
    }

    async fn set_tenant_label(&self, tenant_id: &TenantId, label: Option<&str>) -> Result<bool> {
        let label = label.map(str::trim).filter(|l| !l.is_empty());
        let done = self
            .db
            .write()
            .execute(query("UPDATE tenants SET label = $2 WHERE id = $1").bind(tenant_id).bind(label))
            .await?;
        Ok(done > 0)
    }

    async fn set_tenant_tags(&self, tenant_id: &TenantId, tags: &[String]) -> Result<bool> {
        let mut wanted: Vec<String> = tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
        wanted.sort();
        wanted.dedup();
        let mut tx = self.db.begin(TxKind::Write).await?;
        if tx.fetch_optional(query("SELECT id FROM tenants WHERE id = $1").bind(tenant_id)).await?.is_none() {
            return Ok(false);
        }
        tx.execute(query("DELETE FROM tenant_tags WHERE tenant_id = $1").bind(tenant_id)).await?;
        for tag in &wanted {
            // Two replacements at once on PostgreSQL may interleave: the later one's rows win and
            // a tag both add is kept once instead of failing the request.
            tx.execute(
                query("INSERT INTO tenant_tags (tenant_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(tenant_id)
                    .bind(tag),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn tenant_tags(&self) -> Result<Vec<(TenantId, String)>> {
        let rows =
            self.db.read().fetch_all(query("SELECT tenant_id, tag FROM tenant_tags ORDER BY tenant_id, tag")).await?;
        rows.iter().map(|r| Ok((TenantId::new(r.text("tenant_id")?), r.text("tag")?))).collect()
    }

    async fn forget_tenant(&self, tenant_id: &TenantId) -> Result<crate::ForgetReport> {
        self.forget(tenant_id).await
    }

    async fn mark_gone(&self, tenant_id: &TenantId, at: DateTime<Utc>) -> Result<bool> {
        let done = self
            .db
            .write()
            .execute(
                query(
                    "UPDATE tenants SET gone_since = CASE WHEN gone_since IS NULL OR gone_since > $2 \
                     THEN $2 ELSE gone_since END WHERE id = $1",
                )
                .bind(tenant_id)
                .bind(at),
            )
            .await?;
        Ok(done > 0)
    }
}

/// Inserts a tenant or updates what is known of it, inside the caller's transaction (see
/// [`TenantStore::upsert_tenant`]).
pub(super) async fn upsert_tenant_in(exec: &mut (dyn Exec + '_), t: &TenantRecord) -> Result<()> {
    non_empty(t.id.as_str(), "tenant id")?;
    // Every run upserts each tenant, which is nearly always unchanged but for when it was last seen.
    // An update that sets a column rewrites every index on it, changed or not (in SQLite the
    // entries of the name and domain indexes, a third of the second run's WAL; in PostgreSQL a
    // non-HOT row version with new entries in every index). So the record is written only when
    // something in it changed, and `last_seen`, which no index holds, on its own.
    exec.execute(
        query(
            "INSERT INTO tenants (id, domain, display_name, role, auth, first_seen, last_seen, gone_since, gdap) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET domain = excluded.domain, display_name = excluded.display_name, \
             role = excluded.role, auth = excluded.auth, last_seen = excluded.last_seen, \
             gone_since = excluded.gone_since, gdap = excluded.gdap \
             WHERE tenants.domain IS DISTINCT FROM excluded.domain \
             OR tenants.display_name IS DISTINCT FROM excluded.display_name \
             OR tenants.role IS DISTINCT FROM excluded.role OR tenants.auth IS DISTINCT FROM excluded.auth \
             OR tenants.gone_since IS DISTINCT FROM excluded.gone_since \
             OR tenants.gdap IS DISTINCT FROM excluded.gdap",
        )
        .bind(&t.id)
        .bind(&t.domain)
        .bind(&t.display_name)
        .bind(t.role.as_str())
        .bind(t.auth.as_str())
        .bind(t.first_seen)
        .bind(t.last_seen)
        .bind(t.gone_since)
        .bind(opt_json_text(t.gdap.as_ref())?),
    )
    .await?;
    exec.execute(
        query("UPDATE tenants SET last_seen = $2 WHERE id = $1 AND last_seen IS DISTINCT FROM $2")
            .bind(&t.id)
            .bind(t.last_seen),
    )
    .await?;
    Ok(())
}

/// Replaces a tenant's domains of one source inside the caller's transaction (see
/// [`TenantStore::set_tenant_domains`]).
pub(super) async fn set_tenant_domains_in(
    exec: &mut (dyn Exec + '_),
    tenant_id: &TenantId,
    source: &str,
    domains: &[String],
) -> Result<()> {
    non_empty(tenant_id.as_str(), "tenant id")?;
    non_empty(source, "domain source")?;
    let mut wanted: Vec<String> =
        domains.iter().map(|d| d.trim().to_ascii_lowercase()).filter(|d| !d.is_empty()).collect();
    wanted.sort();
    wanted.dedup();
    let known: Vec<String> = exec
        .fetch_all(
            query("SELECT domain FROM tenant_domains WHERE tenant_id = $1 AND source = $2 ORDER BY domain")
                .bind(tenant_id)
                .bind(source),
        )
        .await?
        .iter()
        .map(|r| r.text("domain"))
        .collect::<Result<_>>()?;
    // Most runs find the same domains: then nothing is written.
    if known == wanted {
        return Ok(());
    }
    exec.execute(query("DELETE FROM tenant_domains WHERE tenant_id = $1 AND source = $2").bind(tenant_id).bind(source))
        .await?;
    for domain in &wanted {
        exec.execute(
            query("INSERT INTO tenant_domains (tenant_id, domain, source) VALUES ($1, $2, $3)")
                .bind(tenant_id)
                .bind(domain)
                .bind(source),
        )
        .await?;
    }
    Ok(())
}
