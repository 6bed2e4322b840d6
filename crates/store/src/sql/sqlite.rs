//! SQLite, the embedded default.
//!
//! SQLite allows one writer at a time, so the dialect keeps two pools: a single-connection writer,
//! through which every write goes (serialised in-process, `BEGIN IMMEDIATE` against other
//! processes), and a few `query_only` readers that WAL lets run beside the writer. Writers queued
//! behind each other share one transaction, each in a savepoint, and each hears of success only once
//! that transaction has committed (group commit, `group.rs`). Commits use `synchronous=NORMAL`: in
//! WAL mode a commit survives the process being killed, and only a power loss can roll back the last
//! few.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::sqlite::{
    SqliteArguments, SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::group::{Single, Writer};
use super::{Dialect, Exec, Query, Tx, TxKind, bind_query, impl_exec};
use crate::common::ts_micros;
use crate::error::{Result, StoreError};
use crate::{Backend, migrate};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// Pages the WAL may hold before a commit copies them into the database (SQLite's default: 1,000).
///
/// Every committed page is written twice, to the WAL and then by a checkpoint into the database; a
/// page that several commits change between two checkpoints (an index's leaf, a table's last page) is
/// appended to the WAL by each, but copied into the database once. An inspection commits a few
/// hundred kilobytes per tenant, so with SQLite's 4 MiB a checkpoint ran every dozen tenants and
/// copied the same hot pages again each time (docs/performance.md, "Inspection").
const WAL_CHECKPOINT_PAGES: u32 = 10_000;

/// Bytes the WAL file is cut back to once a checkpoint has emptied it.
const WAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// Reader connections; WAL lets them read while the writer writes.
const READERS: u32 = 4;

pub(crate) struct Sqlite {
    read: SqlitePool,
    /// The one writer connection, whose writers share transactions (`group.rs`).
    write: Writer,
}

pub(super) fn bind(q: Query) -> Result<sqlx::query::Query<'static, sqlx::Sqlite, SqliteArguments>> {
    // Integer microseconds since the epoch: 8 bytes where text took 27, ordered like time.
    bind_query!(q, |t| ts_micros(t))
}

struct OnPool<'a>(&'a SqlitePool);
impl_exec!(OnPool<'_>, Sqlite, bind, |s| s.0);

struct InTx(sqlx::Transaction<'static, sqlx::Sqlite>);
impl_exec!(InTx, Sqlite, bind, |s| &mut *s.0);

#[async_trait]
impl Tx for InTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

impl Sqlite {
    pub(crate) async fn open(url: &str) -> Result<Sqlite> {
        let (options, in_memory) = connect_options(url)?;
        let base = options.busy_timeout(BUSY_TIMEOUT).foreign_keys(true).synchronous(SqliteSynchronous::Normal);
        if in_memory {
            // An in-memory database exists only inside its one connection, so readers and writer
            // must share it.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            migrate::run(&migrate::SQLITE, &pool).await?;
            return Ok(Sqlite { read: pool.clone(), write: Writer::new(pool, false) });
        }
        let path = base.get_filename().to_path_buf();
        prepare_file(&path)?;
        // Incremental auto-vacuum lets `prune` hand freed pages back to the file system; it only
        // takes effect on a new database, and must be set before WAL mode, which sqlx's pragma
        // order takes care of.
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string())
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
            // Each writer runs in a savepoint of its group's transaction (`group.rs`), whose undo
            // journal SQLite keeps in a temporary file by default: every page a writer changed was
            // written there as well (760 MiB written instead of 563 MiB by the benchmark's first run).
            .pragma("temp_store", "MEMORY");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_options)
            .await
            .map_err(|err| open_error(&path, err))?;
        // The first statement that writes is where a directory SQLite cannot create its WAL and
        // shared-memory files in shows itself ("attempt to write a readonly database").
        migrate::run(&migrate::SQLITE, &write).await.map_err(|err| match err {
            StoreError::Database(err) => open_error(&path, err),
            other => other,
        })?;
        // Readers must not write: `query_only` turns a mistake into an error instead of a second
        // writer fighting for the lock.
        let read =
            SqlitePoolOptions::new().max_connections(READERS).connect_with(base.pragma("query_only", "ON")).await?;
        Ok(Sqlite { read, write: Writer::new(write, true) })
    }
}

#[async_trait]
impl Dialect for Sqlite {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn read(&self) -> Box<dyn Exec + '_> {
        Box::new(OnPool(&self.read))
    }

    fn write(&self) -> Box<dyn Exec + '_> {
        Box::new(Single(&self.write))
    }

    async fn begin(&self, kind: TxKind) -> Result<Box<dyn Tx + '_>> {
        match kind {
            // A deferred transaction on a reader sees one snapshot of the WAL.
            TxKind::Snapshot => Ok(Box::new(InTx(self.read.begin().await?))),
            // With one writer, commits and garbage collection exclude each other without further
            // locks; writers queued behind each other share a transaction (`group.rs`).
            TxKind::Write | TxKind::Commit | TxKind::Collect => Ok(Box::new(self.write.begin().await?)),
        }
    }

    async fn storage_bytes(&self) -> Result<u64> {
        // Checkpointing first makes the figure the size of the database file itself; the page
        // count is the same either way, since it already includes pages committed to the WAL. A
        // busy checkpoint is not an error: it only leaves pages in the WAL for later.
        self.write
            .idle(async |pool| {
                let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(pool).await;
            })
            .await;
        let bytes: i64 =
            sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
                .fetch_one(&self.read)
                .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn backup(&self, path: &Path) -> Result<()> {
        // VACUUM INTO reads one snapshot of the database inside a read transaction, so writers
        // go on and the copy is exactly one committed state, compacted; the target must be an
        // empty file.
        let target = path.to_str().ok_or_else(|| StoreError::InvalidInput("the backup path is not UTF-8".into()))?;
        // Readers are `query_only`, which refuses VACUUM even into another file, and the writer
        // must stay free for commits: the copy gets a connection of its own.
        let options = (*self.read.connect_options()).clone().pragma("query_only", "OFF");
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        let copied = sqlx::query("VACUUM INTO ?").bind(target).execute(&mut conn).await;
        let _ = conn.close().await;
        copied?;
        Ok(())
    }

    async fn integrity_problems(&self) -> Result<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&self.read).await?;
        let mut problems: Vec<String> = rows.into_iter().filter(|r| r != "ok").collect();
        let fk: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check").fetch_all(&self.read).await?;
        problems.extend(fk.into_iter().map(|(t,)| format!("a row of {t} refers to a row that does not exist")));
        Ok(problems)
    }

    async fn reclaim_space(&self) -> Result<()> {
        // Only effective on databases created with incremental auto-vacuum; harmless otherwise.
        self.write.idle(async |pool| sqlx::query("PRAGMA incremental_vacuum").execute(pool).await).await?;
        Ok(())
    }

    async fn close(&self) {
        self.read.close().await;
        // Folding the WAL back into the database leaves a single tidy file; if it fails (another
        // process is reading), SQLite does it later.
        self.write
            .idle(async |pool| {
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await;
                pool.close().await;
            })
            .await;
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

/// SQLite's "unable to open database file" names no file and no reason; say which file, and check
/// the usual reasons (a directory that cannot be written or entered) so the message can say why.
fn open_error(path: &Path, err: sqlx::Error) -> StoreError {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let reason = match std::fs::metadata(dir) {
        Err(e) => format!("its directory {} cannot be read: {e}", dir.display()),
        Ok(meta) if meta.permissions().readonly() => format!("its directory {} is read-only", dir.display()),
        Ok(_) => match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Err(e) => format!("the file cannot be opened for writing: {e}"),
            Ok(_) => match dir_writable(dir) {
                Err(e) => format!(
                    "its directory {} cannot be written ({e}); SQLite creates its write-ahead log and shared-memory files next to the database",
                    dir.display()
                ),
                Ok(()) => return StoreError::Database(err),
            },
        },
    };
    StoreError::Open { path: path.to_path_buf(), reason }
}

/// Whether this process can create a file in `dir`: the mode bits alone do not say (another
/// owner, a read-only mount, an ACL), so a probe file is created and removed.
fn dir_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".tenantscope-write-probe-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
}

/// Creates the database's directory, and the file itself with mode 0600, when they do not exist:
/// the database holds every tenant's users and settings, which are nobody else's business. SQLite
/// gives its WAL and shared-memory files the same mode as the database file.
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
