//! Test databases for the contract suite: a SQLite file in a temporary
//! directory, or a fresh PostgreSQL database with a random name that is
//! dropped afterwards, so parallel test runs never see each other's data.
//!
//! PostgreSQL tests fail when the server cannot be reached: CI has one, and
//! a silently skipped backend would hide regressions. Set
//! `TENANTSCOPE_SKIP_PG=1` to skip them on purpose.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, Executor};
use store::{Key, RunId, Store, TenantId};

/// The PostgreSQL server used when `TENANTSCOPE_TEST_DATABASE_URL` is unset.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One test's database.
pub struct TestDb {
    pub kind: Kind,
    /// The URL the store opens.
    pub url: String,
    /// The key the store was opened with.
    pub key: Key,
    /// The SQLite file.
    pub path: Option<PathBuf>,
    admin_url: Option<String>,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn pg_admin_url() -> String {
    std::env::var("TENANTSCOPE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_owned())
}

fn skip_pg() -> bool {
    std::env::var("TENANTSCOPE_SKIP_PG").is_ok_and(|v| v.trim() == "1")
}

/// Replaces the database name in a PostgreSQL URL, keeping its query.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    }
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("store.db");
        TestDb {
            kind: Kind::Sqlite,
            url: format!("sqlite://{}?mode=rwc", path.display()),
            key: Key::generate(),
            path: Some(path),
            admin_url: None,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// A fresh database on the test server; `None` only when skipping was
    /// asked for explicitly.
    pub async fn postgres() -> Option<TestDb> {
        if skip_pg() {
            eprintln!("TENANTSCOPE_SKIP_PG=1: skipping a PostgreSQL contract test");
            return None;
        }
        let admin_url = pg_admin_url();
        let name = format!("tenantscope_test_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&admin_url).expect("valid TENANTSCOPE_TEST_DATABASE_URL");
        let mut conn = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect_with(&options))
            .await
            .unwrap_or_else(|_| panic!("PostgreSQL at {admin_url} did not answer within 10 s; start it, or set TENANTSCOPE_SKIP_PG=1 to skip the PostgreSQL tests"))
            .unwrap_or_else(|err| panic!("cannot connect to PostgreSQL at {admin_url}: {err}; start it, or set TENANTSCOPE_SKIP_PG=1 to skip the PostgreSQL tests"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await.expect("create test database");
        let _ = conn.close().await;
        Some(TestDb {
            kind: Kind::Postgres,
            url: with_database(&admin_url, &name),
            key: Key::generate(),
            path: None,
            admin_url: Some(admin_url),
            pg_name: Some(name),
            _dir: None,
        })
    }

    /// Opens the store with the test's key.
    pub async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.url, self.key.clone()).await.expect("open store")
    }

    /// Opens the store with another key.
    pub async fn open_with(&self, key: Key) -> store::Result<Arc<dyn Store>> {
        store::open(&self.url, key).await
    }

    /// Runs raw SQL (the same text works on both backends) with text
    /// parameters, bypassing the store, to tamper with rows.
    pub async fn exec(&self, sql: &'static str, params: &[&str]) -> u64 {
        match self.kind {
            Kind::Sqlite => {
                let pool = self.sqlite_pool().await;
                let mut query = sqlx::query(sql);
                for p in params {
                    query = query.bind(*p);
                }
                let n = query.execute(&pool).await.expect("raw sql").rows_affected();
                pool.close().await;
                n
            }
            Kind::Postgres => {
                let pool = self.pg_pool().await;
                let mut query = sqlx::query(sql);
                for p in params {
                    query = query.bind(*p);
                }
                let n = query.execute(&pool).await.expect("raw sql").rows_affected();
                pool.close().await;
                n
            }
        }
    }

    /// Runs raw SQL without parameters, bypassing the store; the database's answer as it is.
    pub async fn execute_raw(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        match self.kind {
            Kind::Sqlite => {
                let pool = self.sqlite_pool().await;
                let n = sqlx::query(sql).execute(&pool).await.map(|r| r.rows_affected());
                pool.close().await;
                n
            }
            Kind::Postgres => {
                let pool = self.pg_pool().await;
                let n = sqlx::query(sql).execute(&pool).await.map(|r| r.rows_affected());
                pool.close().await;
                n
            }
        }
    }

    /// Reads one bytes column of one row.
    pub async fn fetch_bytes(&self, sql: &'static str, param: &str) -> Vec<u8> {
        match self.kind {
            Kind::Sqlite => {
                let pool = self.sqlite_pool().await;
                let v: Vec<u8> = sqlx::query_scalar(sql).bind(param).fetch_one(&pool).await.expect("raw fetch");
                pool.close().await;
                v
            }
            Kind::Postgres => {
                let pool = self.pg_pool().await;
                let v: Vec<u8> = sqlx::query_scalar(sql).bind(param).fetch_one(&pool).await.expect("raw fetch");
                pool.close().await;
                v
            }
        }
    }

    /// Writes one bytes column: `sql` takes the bytes as $1 and a key as $2.
    pub async fn set_bytes(&self, sql: &'static str, bytes: &[u8], param: &str) -> u64 {
        match self.kind {
            Kind::Sqlite => {
                let pool = self.sqlite_pool().await;
                let n = sqlx::query(sql).bind(bytes).bind(param).execute(&pool).await.expect("raw set").rows_affected();
                pool.close().await;
                n
            }
            Kind::Postgres => {
                let pool = self.pg_pool().await;
                let n = sqlx::query(sql).bind(bytes).bind(param).execute(&pool).await.expect("raw set").rows_affected();
                pool.close().await;
                n
            }
        }
    }

    /// Counts rows with a raw query returning one integer.
    pub async fn count(&self, sql: &'static str) -> i64 {
        match self.kind {
            Kind::Sqlite => {
                let pool = self.sqlite_pool().await;
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect("raw count");
                pool.close().await;
                n
            }
            Kind::Postgres => {
                let pool = self.pg_pool().await;
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect("raw count");
                pool.close().await;
                n
            }
        }
    }

    /// Everything the database holds on disk or in its tables, as bytes:
    /// the SQLite file with its WAL, or a text dump of every PostgreSQL
    /// table (rows as text, bytea as hex) plus `pg_dump` output when the
    /// tool is installed.
    pub async fn dump(&self) -> Vec<u8> {
        match self.kind {
            Kind::Sqlite => {
                let path = self.path.as_ref().expect("sqlite path");
                let mut bytes = std::fs::read(path).expect("read database file");
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.clone().into_os_string();
                    side.push(suffix);
                    if let Ok(more) = std::fs::read(PathBuf::from(side)) {
                        bytes.extend_from_slice(&more);
                    }
                }
                bytes
            }
            Kind::Postgres => {
                let pool = self.pg_pool().await;
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT tablename::TEXT FROM pg_tables WHERE schemaname = current_schema()")
                        .fetch_all(&pool)
                        .await
                        .expect("list tables");
                let mut out = Vec::new();
                for table in tables {
                    let rows: Vec<String> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT t::TEXT FROM \"{table}\" t")))
                            .fetch_all(&pool)
                            .await
                            .expect("dump table");
                    for row in rows {
                        out.extend_from_slice(row.as_bytes());
                        out.push(b'\n');
                    }
                }
                pool.close().await;
                if let Ok(output) =
                    std::process::Command::new("pg_dump").args(["--data-only", "--dbname", &self.url]).output()
                {
                    out.extend_from_slice(&output.stdout);
                }
                out
            }
        }
    }

    async fn sqlite_pool(&self) -> sqlx::SqlitePool {
        let path = self.path.as_ref().expect("sqlite path");
        let options = SqliteConnectOptions::new().filename(path).busy_timeout(Duration::from_secs(15));
        SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("raw sqlite connection")
    }

    async fn pg_pool(&self) -> sqlx::PgPool {
        PgPoolOptions::new().max_connections(1).connect(&self.url).await.expect("raw postgres connection")
    }

    /// Drops a PostgreSQL database made by [`TestDb::postgres`] outside [`run`].
    pub async fn drop_database(&self) {
        self.cleanup().await;
    }

    async fn cleanup(&self) {
        if let (Some(admin), Some(name)) = (&self.admin_url, &self.pg_name) {
            let options = PgConnectOptions::from_str(admin).expect("admin url");
            if let Ok(mut conn) = sqlx::PgConnection::connect_with(&options).await {
                let _ =
                    conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).await;
                let _ = conn.close().await;
            }
        }
    }
}

/// Runs one contract case against a backend: creates the database, opens
/// the store, runs the case (catching a panic so the database is dropped
/// either way), then re-raises the panic.
pub async fn run<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Arc<dyn Store>, Arc<TestDb>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = match kind {
        Kind::Sqlite => TestDb::sqlite().await,
        Kind::Postgres => match TestDb::postgres().await {
            Some(db) => db,
            None => return,
        },
    };
    let db = Arc::new(db);
    let store = db.open().await;
    let outcome = tokio::spawn(case(store, db.clone())).await;
    db.cleanup().await;
    if let Err(err) = outcome {
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
        panic!("test task failed: {err}");
    }
}

#[test]
fn database_name_is_replaced() {
    assert_eq!(with_database("postgres://postgres@127.0.0.1:5432/test", "x"), "postgres://postgres@127.0.0.1:5432/x");
    assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

/// A tenant id from anything that reads as one.
pub fn tid(id: &(impl AsRef<str> + ?Sized)) -> TenantId {
    TenantId::new(id.as_ref())
}

/// An optional tenant id, for filters.
pub fn opt_tid(id: Option<&(impl AsRef<str> + ?Sized)>) -> Option<TenantId> {
    id.map(tid)
}

/// A run id from anything that reads as one.
pub fn rid(id: &(impl AsRef<str> + ?Sized)) -> RunId {
    RunId::new(id.as_ref())
}
