//! PostgreSQL, for teams that outgrow one machine: several processes (servers, agents, the CLI)
//! share one database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};

use super::{Dialect, Exec, Query, Tx, TxKind, bind_query, impl_exec};
use crate::common::check_ts;
use crate::error::{Result, StoreError};
use crate::{Backend, migrate};

/// Connections per process. Each tenant commit holds one briefly.
const MAX_CONNECTIONS: u32 = 8;

/// How long to wait for a connection before reporting the database down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(15);

/// The advisory lock that separates blob garbage collection (exclusive) from tenant commits
/// (shared). The number is arbitrary but fixed: the bytes of "tsblobs" as an integer.
const BLOB_GC_LOCK: i64 = 0x0074_7362_6c6f_6273;

pub(crate) struct Pg {
    pool: PgPool,
}

fn bind(q: Query) -> Result<sqlx::query::Query<'static, Postgres, PgArguments>> {
    // `timestamptz`, to the microsecond.
    bind_query!(q, |t| check_ts(t))
}

struct OnPool<'a>(&'a PgPool);
impl_exec!(OnPool<'_>, Postgres, bind, |s| s.0);

struct InTx(sqlx::Transaction<'static, Postgres>);
impl_exec!(InTx, Postgres, bind, |s| &mut *s.0);

#[async_trait]
impl Tx for InTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

impl Pg {
    pub(crate) async fn open(url: &str) -> Result<Pg> {
        // The parse error is not shown: it could quote the URL, password included.
        let options = PgConnectOptions::from_str(url.trim())
            .map_err(|_| StoreError::UnsupportedUrl {
                scheme: "postgres".into(),
                reason: "the PostgreSQL URL cannot be parsed".into(),
            })?
            .application_name("tenantscope");
        // One direct connection first: when the server is down or refuses the credentials, its own
        // error comes back at once, where the pool would retry until its timeout and report only
        // that it timed out.
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))??;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        // sqlx takes an advisory lock while migrating, so processes starting together apply each
        // migration once.
        migrate::run(&migrate::POSTGRES, &pool).await?;
        Ok(Pg { pool })
    }
}

#[async_trait]
impl Dialect for Pg {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn read(&self) -> Box<dyn Exec + '_> {
        Box::new(OnPool(&self.pool))
    }

    fn write(&self) -> Box<dyn Exec + '_> {
        Box::new(OnPool(&self.pool))
    }

    async fn begin(&self, kind: TxKind) -> Result<Box<dyn Tx + '_>> {
        let mut tx = match kind {
            // One snapshot for every read, so a concurrent prune cannot remove rows between them.
            TxKind::Snapshot => self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
            _ => self.pool.begin().await?,
        };
        let lock = match kind {
            TxKind::Commit => Some("SELECT pg_advisory_xact_lock_shared($1)"),
            TxKind::Collect => Some("SELECT pg_advisory_xact_lock($1)"),
            TxKind::Write | TxKind::Snapshot => None,
        };
        if let Some(lock) = lock {
            sqlx::query(lock).bind(BLOB_GC_LOCK).execute(&mut *tx).await?;
        }
        Ok(Box::new(InTx(tx)))
    }

    async fn storage_bytes(&self) -> Result<u64> {
        // Only the store's own tables (with their indexes and TOAST), so the figure does not
        // include the catalog or other schemas.
        let bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn backup(&self, _path: &std::path::Path) -> Result<()> {
        Err(StoreError::InvalidInput(
            "a PostgreSQL database is backed up with PostgreSQL's own tools: `pg_dump --format=custom --file tenantscope.dump <database>` takes a consistent copy while the platform runs, and `pg_restore --clean --if-exists --dbname <database> tenantscope.dump` restores it (stop `tenantscope serve` first); keep the key (TENANTSCOPE_KEY) with the dump, since its secrets need it".into(),
        ))
    }

    async fn integrity_problems(&self) -> Result<Vec<String>> {
        // PostgreSQL checks its pages itself; what the store can check is its own consistency:
        // rows that refer to rows which do not exist.
        let mut problems = Vec::new();
        for (what, sql) in [
            (
                "tenant results without their run",
                "SELECT COUNT(*) FROM tenant_runs x WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.key = x.run_key)",
            ),
            (
                "tenant results without their stored result",
                "SELECT COUNT(*) FROM tenant_runs x WHERE NOT EXISTS (SELECT 1 FROM results s WHERE s.key = x.result_key)",
            ),
            (
                "tenant results pointing at a missing dataprint",
                "SELECT COUNT(*) FROM tenant_runs x WHERE x.dataprint_key IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM dataprints d WHERE d.key = x.dataprint_key)",
            ),
            (
                "collection sets referring to a missing blob",
                "SELECT COUNT(*) FROM collection_set_members m WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = m.blob_id)",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
            if n > 0 {
                problems.push(format!("{n} {what}"));
            }
        }
        Ok(problems)
    }

    async fn reclaim_space(&self) -> Result<()> {
        // Autovacuum makes deleted rows' space reusable; returning it to the file system would take
        // VACUUM FULL, which locks the tables, and is left to the operator.
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
