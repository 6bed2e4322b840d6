//! [`TenantStore`] on SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqlStore;
use crate::common::{non_empty, opt_json_text};
use crate::error::Result;
use crate::rows;
use crate::sql::query;
use crate::{TenantId, TenantRecord, TenantStore};

#[async_trait]
impl TenantStore for SqlStore {
    async fn upsert_tenant(&self, t: &TenantRecord) -> Result<()> {
        non_empty(t.id.as_str(), "tenant id")?;
        self.db
            .write()
            .execute(
                query(
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
                .bind(t.first_seen)
                .bind(t.last_seen)
                .bind(t.gone_since)
                .bind(opt_json_text(t.gdap.as_ref())?),
            )
            .await?;
        Ok(())
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
