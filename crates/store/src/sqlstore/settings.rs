//! [`SettingsStore`] on SQL.

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use super::SqlStore;
use crate::SettingsStore;
use crate::common::{json_text, non_empty};
use crate::error::Result;
use crate::rows::RowExt;
use crate::sql::query;

#[async_trait]
impl SettingsStore for SqlStore {
    async fn setting_get(&self, key: &str) -> Result<Option<Value>> {
        let row = self.db.read().fetch_optional(query("SELECT value FROM settings WHERE key = $1").bind(key)).await?;
        row.map(|r| r.json("value")).transpose()
    }

    async fn setting_put(&self, key: &str, value: &Value) -> Result<()> {
        non_empty(key, "setting key")?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(json_text(value)?)
                .bind(Utc::now()),
            )
            .await?;
        Ok(())
    }
}
