//! Schema migrations: one history per dialect, applied in place when a database is opened.
//!
//! Each dialect has its own numbered SQL files (`migrations/sqlite`, `migrations/postgres`) with the
//! same numbers for the same change. Opening a database applies the ones it lacks, in one
//! transaction each; PostgreSQL processes starting together apply each one once (sqlx holds an
//! advisory lock while migrating). A SQLite migration that must turn foreign keys off, which
//! cannot happen inside a transaction, is marked `-- no-transaction` and opens its own, and is
//! written so that running it again after a crash before its version was recorded gives the same
//! result (0012). A database that has a migration this binary does not know was
//! written by a newer tenantscope and is refused with [`StoreError::SchemaTooNew`], before anything
//! is read or written, rather than misread.

use std::ops::Deref;

use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::error::{Result, StoreError};

/// The SQLite history.
pub(crate) static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL history.
pub(crate) static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// The newest schema version a migrator knows.
pub(crate) fn latest(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Brings the database up to this binary's schema.
pub(crate) async fn run<'a, A>(migrator: &Migrator, conn: A) -> Result<()>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as Deref>::Target: Migrate,
{
    migrator.run(conn).await.map_err(|err| explain(migrator, err))
}

/// Turns sqlx's migration errors into messages that say what happened and what to do.
fn explain(migrator: &Migrator, err: MigrateError) -> StoreError {
    let known = latest(migrator);
    match err {
        MigrateError::VersionMissing(found) if found > known => StoreError::SchemaTooNew { found, known },
        MigrateError::VersionMissing(version) | MigrateError::VersionMismatch(version) => {
            StoreError::SchemaMismatch { version }
        }
        MigrateError::Dirty(version) => StoreError::SchemaDirty { version },
        other => StoreError::Migration(other),
    }
}
