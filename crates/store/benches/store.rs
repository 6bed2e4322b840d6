//! Store benchmark: `cargo bench -p store`.
//!
//! Measures, on SQLite and (when reachable) PostgreSQL:
//! - committing one 2,000-user dataprint (new, then unchanged) and reading
//!   it back;
//! - a fleet of small and mid-size tenants inspected 30 times without
//!   changes, eight tenants in flight at a time like the inspection engine,
//!   and how much the database grows.
//!
//! Unchanged runs carry what the real producer writes: the same content,
//! and a fresh `run` member each time (new run id, times, jittered
//! per-collector durations and `collected_at`, delta reads after the first
//! run), with the outcomes' figures taken from it.
//!
//! Sizes are measured honestly: SQLite as the database file once its WAL is
//! checkpointed (`page_count * page_size`, checked against the file's
//! length; nothing is vacuumed), PostgreSQL as `pg_database_size` (the whole
//! database directory, catalog included) and as the store's own tables,
//! indexes and TOAST.
//!
//! Sizes: `TENANTSCOPE_BENCH_TENANTS` (default 1000) and
//! `TENANTSCOPE_BENCH_RUNS` (default 30). PostgreSQL comes from
//! `TENANTSCOPE_TEST_DATABASE_URL` (default the local test server); set
//! `TENANTSCOPE_SKIP_PG=1` to bench SQLite only.

#[path = "../tests/contract/fixtures.rs"]
mod fixtures;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sqlx::Connection;
use store::{Key, RunStatus, Store, TenantRunRecord, TenantRunStatus};

const IN_FLIGHT: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

async fn commit(store: &Arc<dyn Store>, run_id: &str, tenant_id: &str, doc: &Value) {
    let now = Utc::now();
    let result = TenantRunRecord {
        run_id: run_id.into(),
        tenant_id: tenant_id.into(),
        status: TenantRunStatus::Ok,
        started_at: now - TimeDelta::seconds(2),
        finished_at: now,
        diagnosis: None,
        error: None,
        dataprint_id: None,
    };
    let outcomes = fixtures::outcomes(run_id, tenant_id, doc);
    store.commit_tenant_result(&result, &outcomes, Some(doc)).await.expect("commit");
}

/// The `run` of a tenant in the `index`-th run of the bench: run 0 reads
/// everything in full with base figures, later runs jitter.
fn run_info(run_id: &str, index: usize, started_at: DateTime<Utc>) -> fixtures::RunInfo {
    fixtures::RunInfo { id: run_id.to_owned(), started_at, seed: (index as u64) * 7919 }
}

async fn big_tenant(store: &Arc<dyn Store>) {
    let run = store.start_run("bench", chrono::Utc::now()).await.expect("run");
    let sample = fixtures::dataprint("big-0", run.id.as_str(), 2000);
    let json_bytes = serde_json::to_vec(&sample).expect("json").len();
    let before = store.storage_bytes().await.expect("size");

    let mut first = Vec::new();
    for i in 0..3 {
        let name = format!("big-{i}");
        let doc = fixtures::dataprint(&name, run.id.as_str(), 2000);
        let started = Instant::now();
        commit(store, run.id.as_str(), &name, &doc).await;
        first.push(started.elapsed());
    }
    let after_three = store.storage_bytes().await.expect("size");

    let mut unchanged = Vec::new();
    let big = fixtures::collections("big-0", 2000);
    for i in 0..5 {
        let run = store.start_run("bench", chrono::Utc::now()).await.expect("run");
        let doc = fixtures::dataprint_in_run("big-0", &run_info(run.id.as_str(), i + 1, Utc::now()), big.clone());
        let started = Instant::now();
        commit(store, run.id.as_str(), "big-0", &doc).await;
        unchanged.push(started.elapsed());
    }

    let mut reads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (_, doc) = store.last_good_dataprint(&store::TenantId::new("big-0")).await.expect("read").expect("found");
        reads.push(started.elapsed());
        assert!(doc["collections"]["users"].as_object().is_some_and(|u| u.len() == 2000));
    }

    println!("| 2,000-user dataprint: JSON size | {} |", mib(json_bytes as u64));
    println!("| stored size of one new 2,000-user tenant | {} |", mib((after_three - before) / 3));
    println!("| commit, new tenant (median of 3) | {} |", ms(median(first)));
    println!("| commit, unchanged tenant (median of 5) | {} |", ms(median(unchanged)));
    println!("| read back (`last_good_dataprint`, median of 5) | {} |", ms(median(reads)));
}

/// Where the database lives, for measuring it underneath the store.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The database's size measured from outside the store: SQLite's file once
/// its WAL is checkpointed (asserted equal to `page_count * page_size`),
/// PostgreSQL's `pg_database_size`.
async fn outside_size(db: &Db) -> u64 {
    match db {
        Db::Sqlite(path) => {
            let options =
                sqlx::sqlite::SqliteConnectOptions::new().filename(path).busy_timeout(Duration::from_secs(30));
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("raw sqlite");
            let (busy, _, _): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut conn).await.expect("checkpoint");
            assert_eq!(busy, 0, "the checkpoint completed");
            let pages: i64 =
                sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
                    .fetch_one(&mut conn)
                    .await
                    .expect("page count");
            let _ = conn.close().await;
            let file = std::fs::metadata(path).expect("database file").len();
            assert_eq!(file, pages as u64, "the checkpointed file is exactly its pages");
            file
        }
        Db::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("raw postgres");
            let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&mut conn)
                .await
                .expect("database size");
            let _ = conn.close().await;
            bytes as u64
        }
    }
}

/// The average size of the per-run parts of tenant runs that confirmed an
/// existing dataprint (all but each tenant's first).
async fn per_run_average(db: &Db) -> f64 {
    let sql = "SELECT CAST(AVG(LENGTH(x.per_run)) AS DOUBLE PRECISION) FROM tenant_runs x \
               JOIN dataprints d ON d.key = x.dataprint_key WHERE d.run_key <> x.run_key";
    let average: Option<f64> = match db {
        Db::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("raw sqlite");
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("average")
        }
        Db::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("raw postgres");
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("average")
        }
    };
    average.unwrap_or(0.0)
}

/// The parts of the `tenant_runs` table (rows, each index) in bytes.
async fn tenant_runs_parts(db: &Db) -> Vec<(String, i64)> {
    match db {
        Db::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
            let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&options).await else {
                return Vec::new();
            };
            let rows = sqlx::query_as(
                "SELECT d.name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
                 WHERE m.tbl_name = 'tenant_runs' GROUP BY d.name ORDER BY 2 DESC",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            let _ = conn.close().await;
            rows
        }
        Db::Postgres(url) => {
            let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
                return Vec::new();
            };
            let rows = sqlx::query_as(
                "SELECT 'rows (heap, free space and visibility maps)', pg_table_size('tenant_runs'::regclass) \
                 UNION ALL SELECT i.indexrelid::regclass::TEXT, pg_relation_size(i.indexrelid) \
                 FROM pg_index i WHERE i.indrelid = 'tenant_runs'::regclass ORDER BY 2 DESC",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            let _ = conn.close().await;
            rows
        }
    }
}

/// Bytes per table, indexes (and TOAST) included: SQLite from `dbstat`,
/// PostgreSQL from `pg_total_relation_size`.
async fn breakdown(db: &Db) -> Vec<(String, i64)> {
    let sql_sqlite = "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
                      GROUP BY m.tbl_name ORDER BY 2 DESC";
    let sql_pg = "SELECT c.relname::TEXT, pg_total_relation_size(c.oid) FROM pg_class c \
                  JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 2 DESC";
    match db {
        Db::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
            let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&options).await else {
                return Vec::new();
            };
            let rows = sqlx::query_as(sql_sqlite).fetch_all(&mut conn).await.unwrap_or_default();
            let _ = conn.close().await;
            rows
        }
        Db::Postgres(url) => {
            let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
                return Vec::new();
            };
            let rows = sqlx::query_as(sql_pg).fetch_all(&mut conn).await.unwrap_or_default();
            let _ = conn.close().await;
            rows
        }
    }
}

/// Users per tenant across a fleet: mostly small customers, a few large.
fn fleet_size(i: usize) -> usize {
    match i % 20 {
        0 => 400 + (i * 37) % 400,
        1..=4 => 60 + (i * 13) % 120,
        _ => 5 + (i * 7) % 45,
    }
}

async fn fleet(store: &Arc<dyn Store>, tenants: usize, runs: usize, db: &Db) {
    let collections: Arc<Vec<(String, Value)>> = Arc::new(
        (0..tenants)
            .map(|i| {
                let name = format!("fleet-{i:04}");
                let c = fixtures::collections(&name, fleet_size(i));
                (name, c)
            })
            .collect(),
    );
    let users: usize = (0..tenants).map(fleet_size).sum();
    let empty = outside_size(db).await;
    let empty_store = store.storage_bytes().await.expect("size");
    let mut after_first = 0;
    let mut after_first_store = 0;
    let mut first_tables = Vec::new();
    let mut durations = Vec::new();
    for r in 0..runs {
        let run = store.start_run("bench", Utc::now()).await.expect("run");
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..tenants {
            if set.len() >= IN_FLIGHT {
                set.join_next().await.expect("task").expect("commit task");
            }
            let store = store.clone();
            let run_id = run.id.clone();
            let collections = collections.clone();
            set.spawn(async move {
                let (name, c) = &collections[i];
                let doc = fixtures::dataprint_in_run(name, &run_info(run_id.as_str(), r, Utc::now()), c.clone());
                commit(&store, run_id.as_str(), name, &doc).await;
            });
        }
        while let Some(done) = set.join_next().await {
            done.expect("commit task");
        }
        durations.push(started.elapsed());
        store.finish_run(&run.id, RunStatus::Ok, Utc::now(), &json!({"tenants": tenants})).await.expect("finish");
        if r == 0 {
            after_first = outside_size(db).await;
            after_first_store = store.storage_bytes().await.expect("size");
            first_tables = breakdown(db).await;
        }
    }
    let last = outside_size(db).await;
    let last_store = store.storage_bytes().await.expect("size");
    let later: Vec<Duration> = durations[1..].to_vec();
    let growth = (last - after_first) / (runs as u64 - 1).max(1);
    let (outside, own) = match db {
        Db::Sqlite(_) => ("database file (WAL checkpointed)", "`storage_bytes`"),
        Db::Postgres(_) => ("`pg_database_size`", "store tables (`storage_bytes`)"),
    };
    println!("| fleet: {tenants} tenants, {users} users in all | |");
    println!(
        "| run 1 (everything new) | {:.1} s, {:.0} tenants/s |",
        durations[0].as_secs_f64(),
        tenants as f64 / durations[0].as_secs_f64()
    );
    println!(
        "| unchanged run (median of {}) | {:.1} s, {:.0} tenants/s |",
        later.len(),
        median(later.clone()).as_secs_f64(),
        tenants as f64 / median(later).as_secs_f64()
    );
    println!("| {outside}, empty | {} |", mib(empty));
    println!("| {outside} after run 1 | {} |", mib(after_first));
    println!("| {outside} after run {runs} | {} |", mib(last));
    println!("| growth per unchanged run | {} ({:.0} B per tenant) |", mib(growth), growth as f64 / tenants as f64);
    println!("| space ratio, run {runs} / run 1, {outside} | {:.3} |", last as f64 / after_first as f64);
    println!(
        "| space ratio, run {runs} / run 1, {own} | {:.3} ({} -> {}, empty {}) |",
        last_store as f64 / after_first_store as f64,
        mib(after_first_store),
        mib(last_store),
        mib(empty_store)
    );
    println!(
        "| against storing every run like run 1 | {:.1}x less |",
        ((after_first - empty) as f64 * runs as f64) / (last - empty) as f64
    );
    println!("| average per-run part of an unchanged tenant run | {:.1} B |", per_run_average(db).await);
    let rows = (runs * tenants) as f64;
    for (part, bytes) in tenant_runs_parts(db).await {
        println!("| `tenant_runs`: {part} | {} ({:.0} B per tenant-run) |", mib(bytes as u64), bytes as f64 / rows);
    }
    let last_tables = breakdown(db).await;
    if !last_tables.is_empty() {
        println!("\nWhere the bytes go (tables with their indexes):\n");
        println!("| table | after run 1 | after run {runs} | per unchanged tenant-run |");
        println!("| --- | --- | --- | --- |");
        for (table, bytes) in &last_tables {
            let first = first_tables.iter().find(|(t, _)| t == table).map_or(0, |(_, b)| *b);
            let per = (bytes - first) as f64 / ((runs - 1) * tenants) as f64;
            println!("| {table} | {} | {} | {per:.0} B |", mib(first as u64), mib(*bytes as u64));
        }
    }
}

/// Runs both measures, each on a fresh database from `fresh_url`.
async fn bench(label: &str, fresh_url: &mut dyn FnMut() -> (String, Db), tenants: usize, runs: usize) {
    println!("\n### {label}\n");
    println!("| measure | result |");
    println!("| --- | --- |");
    let (url, _) = fresh_url();
    let store = store::open(&url, Key::generate()).await.expect("open");
    big_tenant(&store).await;
    store.close().await;
    let (url, db) = fresh_url();
    let store = store::open(&url, Key::generate()).await.expect("open");
    fleet(&store, tenants, runs, &db).await;
    store.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let tenants = env_usize("TENANTSCOPE_BENCH_TENANTS", 1000);
    let runs = env_usize("TENANTSCOPE_BENCH_RUNS", 30).max(2);
    let only_pg = std::env::var("TENANTSCOPE_BENCH_ONLY_PG").is_ok_and(|v| v.trim() == "1");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = 0;
        let mut sqlite_url = || {
            n += 1;
            let path = dir.path().join(format!("bench-{n}.db"));
            (format!("sqlite://{}?mode=rwc", path.display()), Db::Sqlite(path))
        };
        if !only_pg {
            bench("SQLite", &mut sqlite_url, tenants, runs).await;
        }

        if std::env::var("TENANTSCOPE_SKIP_PG").is_ok_and(|v| v.trim() == "1") {
            return;
        }
        let admin = std::env::var("TENANTSCOPE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let options = sqlx::postgres::PgConnectOptions::from_str(&admin).expect("url");
        let Ok(mut conn) = sqlx::PgConnection::connect_with(&options).await else {
            println!("\n(PostgreSQL not reachable at {admin}: skipped)");
            return;
        };
        let names: Vec<String> =
            (0..2).map(|_| format!("tenantscope_bench_{}", uuid::Uuid::new_v4().simple())).collect();
        for name in &names {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .expect("create database");
        }
        let root = admin.split('?').next().unwrap_or(&admin);
        let root = root.rsplit_once('/').map_or(root, |(r, _)| r).to_owned();
        let mut next = names.iter();
        let mut pg_url = || {
            let url = format!("{root}/{}", next.next().expect("a prepared database"));
            (url.clone(), Db::Postgres(url))
        };
        bench("PostgreSQL", &mut pg_url, tenants, runs).await;
        for name in &names {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                .execute(&mut conn)
                .await
                .expect("drop database");
        }
    });
}
