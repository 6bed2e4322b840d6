//! Persistence for tenantscope.
//!
//! Everything tenantscope keeps between runs goes through the [`Store`]
//! trait, the union of one trait per capability ([`TenantStore`],
//! [`RunStore`], [`DataprintStore`], [`SecretStore`], [`SettingsStore`],
//! [`HistoryStore`], [`AlertStore`], [`JobStore`], [`AccessStore`], [`AuditStore`],
//! [`AdminStore`]): tenants, runs and their per-tenant results, dataprints (content
//! addressed and compressed), delta links, the encrypted Microsoft token
//! cache, app credentials of customer tenants, settings, and the history
//! tables (metrics, change events, alerts, baselines), and the platform's job queue, schedules,
//! sessions, API tokens and audit log.
//!
//! One implementation serves two SQL dialects: SQLite, embedded and the
//! default, and PostgreSQL for scale-out. [`open`] picks the dialect from the
//! database URL and brings the schema up to date (see `migrate`). This is the
//! only crate that contains SQL.
//!
//! Growth: an unchanged tenant costs a few dozen bytes per run. A dataprint
//! whose content (everything but its top-level `run` member, where the
//! producer puts every field that changes between runs) equals the tenant's
//! latest one is not stored again: the tenant run points at the existing
//! dataprint and keeps its own `run` member as a compact delta. Collector
//! outcome lists are stored once per distinct content with the per-run
//! figures beside the tenant run, and metric series keep only their change
//! points.
//!
//! Durability: every method commits before it returns, and a tenant's result
//! (its record, collector outcomes and dataprint) is one transaction, so a
//! process killed at any point loses at most the tenant it was working on.
//! Runs left `Running` by a dead process are marked `Interrupted` by the next
//! [`open`].
//!
//! Secrets (token cache secrets, client secrets, private keys) are encrypted
//! with XChaCha20-Poly1305 under a [`Key`] before they reach the database:
//! a random 24-byte nonce per record, and the record's identity (table, key,
//! tenant, client) as associated data, so a ciphertext moved to another row
//! does not decrypt.

use std::sync::Arc;

// `rows` first: its column-list macros are used by the store.
#[macro_use]
mod rows;
mod blob;
mod common;
mod crypto;
mod error;
mod key;
mod migrate;
mod model;
mod per_run;
mod plan;
mod result;
mod sql;
mod sqlstore;
mod traits;

pub use blob::project_collection;
pub use error::{Result, StoreError};
pub use key::{KEY_ENV, KEY_FILE_NAME, KEY_LEN, Key, NEXT_KEY_FILE_NAME};
pub use model::*;
pub use secrecy::{ExposeSecret, SecretString};
pub use traits::{
    AccessStore, AdminStore, AgentStore, AlertStore, AuditStore, DataprintStore, HistoryStore, JobStore, RunStore,
    SecretStore, SettingsStore, Store, TenantStore,
};
pub use vocab::{Severity, TenantId};

/// The setting that records the fingerprint of the key the store's secrets are encrypted with.
const KEY_FINGERPRINT: &str = "store.key_fingerprint";

/// Refuses a key other than the one the stored secrets were encrypted with, before anything is
/// written: a lost key file must not be replaced silently while secrets need the old one. A store
/// without secrets adopts the key it is given.
async fn check_key(store: &dyn Store, fingerprint: &str) -> Result<()> {
    let recorded = store.setting_get(KEY_FINGERPRINT).await?.and_then(|v| v.as_str().map(str::to_string));
    if recorded.as_deref() == Some(fingerprint) {
        return Ok(());
    }
    let secrets = store.credential_list().await?.len() + store.cache_list().await?.len();
    match recorded {
        Some(expected) if secrets > 0 => {
            return Err(StoreError::WrongKey { expected, found: fingerprint.to_string(), secrets });
        }
        // A database from before fingerprints: its secrets must open with this key.
        None if secrets > 0 => {
            let probe = match store.cache_list().await?.first() {
                Some(first) => store.cache_get(&first.key).await.map(|_| ()),
                None => match store.credential_list().await?.first() {
                    Some(first) => store.credential_get(&first.tenant_id).await.map(|_| ()),
                    None => Ok(()),
                },
            };
            if probe.is_err() {
                return Err(StoreError::WrongKey {
                    expected: "(not recorded)".into(),
                    found: fingerprint.to_string(),
                    secrets,
                });
            }
        }
        _ => {}
    }
    store.setting_put(KEY_FINGERPRINT, &serde_json::json!(fingerprint)).await
}

/// Opens the store at `url` and applies pending migrations.
///
/// - `sqlite://PATH?mode=rwc`, `sqlite:PATH`, `sqlite::memory:` or a bare
///   file path: SQLite. A new database file is created with mode 0600.
/// - `postgres://...` or `postgresql://...`: PostgreSQL.
///
/// Runs left `Running` by a process that is gone are marked `Interrupted`.
///
/// A database written by a newer tenantscope is refused with [`StoreError::SchemaTooNew`]; one
/// written by an older tenantscope is migrated in place. A key other than the one the stored
/// secrets were encrypted with is refused with [`StoreError::WrongKey`].
pub async fn open(url: &str, key: Key) -> Result<Arc<dyn Store>> {
    let fingerprint = key.fingerprint();
    let store = open_unchecked(url, key).await?;
    check_key(store.as_ref(), &fingerprint).await?;
    store.recover_interrupted_runs().await?;
    Ok(store)
}

/// Opens the store with a key that may not be the one its secrets were encrypted with (the old
/// one is lost), deletes those secrets (every cached token and app credential: nothing can
/// decrypt them any more) and adopts the key. Tenants, dataprints and history are kept. Returns
/// the store and how many secrets were removed; with the right key, nothing is removed.
pub async fn open_discarding_secrets(url: &str, key: Key) -> Result<(Arc<dyn Store>, usize)> {
    let fingerprint = key.fingerprint();
    let store = open_unchecked(url, key).await?;
    let removed = match check_key(store.as_ref(), &fingerprint).await {
        Ok(()) => 0,
        Err(StoreError::WrongKey { .. }) => {
            let mut removed = store.cache_clear().await? as usize;
            for c in store.credential_list().await? {
                removed += usize::from(store.credential_delete(&c.tenant_id).await?);
            }
            store.setting_put(KEY_FINGERPRINT, &serde_json::json!(fingerprint)).await?;
            removed
        }
        Err(e) => return Err(e),
    };
    store.recover_interrupted_runs().await?;
    Ok((store, removed))
}

/// Re-encrypts every stored secret under `new`, in one transaction, after checking that `current`
/// is the key they are encrypted with now; the database then records `new`'s fingerprint.
/// Killed at any point, the database is either wholly under `current` or wholly under `new`.
/// The caller owns the key files: write `new` durably before, install it after (see
/// [`Key::write_next`] and [`Key::install_next`]). Returns how many secrets were re-encrypted.
pub async fn rotate_key(url: &str, current: Key, new: &Key) -> Result<usize> {
    let fingerprint = current.fingerprint();
    let store = open_sql(url, current).await?;
    let result = match check_key(&store, &fingerprint).await {
        Ok(()) => store.rekey(new, KEY_FINGERPRINT).await,
        Err(e) => Err(e),
    };
    AdminStore::close(&store).await;
    result
}

async fn open_sql(url: &str, key: Key) -> Result<sqlstore::SqlStore> {
    let dialect: Box<dyn sql::Dialect> = match classify_url(url)? {
        UrlKind::Sqlite => Box::new(sql::sqlite::Sqlite::open(url).await?),
        UrlKind::Postgres => Box::new(sql::postgres::Pg::open(url).await?),
    };
    Ok(sqlstore::SqlStore::new(dialect, key))
}

async fn open_unchecked(url: &str, key: Key) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(open_sql(url, key).await?))
}

#[derive(Debug)]
enum UrlKind {
    Sqlite,
    Postgres,
}

fn classify_url(url: &str) -> Result<UrlKind> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(StoreError::UnsupportedUrl { scheme: String::new(), reason: "the database URL is empty".into() });
    }
    if trimmed.starts_with("sqlite:") {
        return Ok(UrlKind::Sqlite);
    }
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return Ok(UrlKind::Postgres);
    }
    match trimmed.split_once("://") {
        // Only the scheme is shown: the rest may hold a password.
        Some((scheme, _)) => Err(StoreError::UnsupportedUrl {
            scheme: scheme.to_owned(),
            reason: "expected sqlite:// or postgres://, or a file path".into(),
        }),
        None => Ok(UrlKind::Sqlite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls() {
        assert!(matches!(classify_url("sqlite://x.db?mode=rwc"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("sqlite::memory:"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("/var/lib/ts/store.db"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("store.db"), Ok(UrlKind::Sqlite)));
        assert!(matches!(classify_url("postgres://u@h/db"), Ok(UrlKind::Postgres)));
        assert!(matches!(classify_url("postgresql://u@h/db"), Ok(UrlKind::Postgres)));
        let err = classify_url("mysql://user:hunter2@h/db").expect_err("refused");
        assert!(!err.to_string().contains("hunter2"));
        assert!(classify_url("  ").is_err());
    }

    #[test]
    fn enums_round_trip_and_severity_orders() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
        }
        assert!("RUNNING".parse::<RunStatus>().is_err());
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Info < Severity::Low);
        assert_eq!(serde_json::to_string(&TenantAuth::Gdap).expect("json"), "\"gdap\"");
    }
}
