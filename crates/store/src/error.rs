//! The one error type of the store.
//!
//! Messages name records by their identity (a tenant id, a cache key, a blob
//! hash) and never include a secret, a ciphertext or a database password, so
//! callers may log them or show them to a user as they are.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or failed an operation (including a full disk:
    /// the transaction is rolled back and nothing committed before is lost).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),

    /// A schema migration could not be applied.
    #[error("database migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),

    /// A secret could not be decrypted: the key is not the one it was
    /// encrypted with, or the ciphertext was altered or moved to another row.
    #[error(
        "cannot decrypt {record}: the encryption key is not the one this database was written with, or the record was altered"
    )]
    Crypto {
        /// Which record failed, for example `token cache entry "k1"`.
        record: String,
    },

    /// A row holds data the store cannot have written: an unknown enum value,
    /// invalid JSON, a blob whose hash does not match its content.
    #[error("corrupt data in the store: {what}")]
    Corrupt {
        /// Which row or value, and what is wrong with it.
        what: String,
    },

    /// A value could not be turned into JSON.
    #[error("JSON serialization failed: {0}")]
    Serialization(#[from] serde_json::Error),

    /// A file operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The key file cannot be used (unsafe permissions, wrong content).
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A key given as text (for example in `TENANTSCOPE_KEY`) is not 32
    /// bytes in base64 or hex. The value itself is never repeated.
    #[error("invalid encryption key in {source_name}: {reason}")]
    InvalidKey {
        /// Where the key came from, for example `TENANTSCOPE_KEY`.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The database holds secrets encrypted with another key than the one given (most often: the
    /// key file was lost and a new one was created). Nothing is changed.
    #[error(
        "the database holds {secrets} secret(s) encrypted with the key {expected}, but the key given is {found}: restore the key file (`key` in the data directory) from a backup or set TENANTSCOPE_KEY to it; if the old key is lost, the stored sign-ins and app credentials cannot be recovered: `tenantscope key reset --yes` removes them (tenants, dataprints and history stay), then sign in and add the app credentials again"
    )]
    WrongKey {
        /// The fingerprint of the key the secrets were encrypted with.
        expected: String,
        /// The fingerprint of the key given.
        found: String,
        /// How many secrets are stored.
        secrets: usize,
    },

    /// The database URL names no supported backend, or cannot be parsed.
    /// Only the scheme is reported, since a URL may carry a password.
    #[error("unsupported database URL (scheme {scheme:?}): {reason}")]
    UnsupportedUrl {
        /// The URL scheme, or an empty string when there is none.
        scheme: String,
        /// What is wrong.
        reason: String,
    },

    /// The database was written by a newer tenantscope: it has schema migrations this binary does
    /// not know, and reading it could misread or damage it.
    #[error(
        "the database was written by a newer tenantscope (schema version {found}; this tenantscope knows versions up to {known}): upgrade tenantscope, or restore a backup taken before the upgrade"
    )]
    SchemaTooNew {
        /// The newest version recorded in the database.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },

    /// A migration recorded in the database differs from this binary's migration of the same
    /// number: the database was written by a different build of tenantscope.
    #[error(
        "schema migration {version} recorded in the database differs from this tenantscope's: the database was written by a different build; use that build, or restore a backup"
    )]
    SchemaMismatch {
        /// The migration number.
        version: i64,
    },

    /// A migration failed half-way in an earlier run and left the schema in between versions.
    #[error(
        "schema migration {version} failed part-way in an earlier run; restore the database from a backup taken before the upgrade"
    )]
    SchemaDirty {
        /// The migration number.
        version: i64,
    },

    /// The database file cannot be opened, with the reason.
    #[error("cannot open the database {}: {reason}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why, as far as the file system tells.
        reason: String,
    },

    /// The caller passed something the store cannot accept.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A background task of the store failed (a bug, not bad data).
    #[error("internal error: {0}")]
    Internal(String),

    /// The store is reached through the server (an agent's run) and the call failed there or on
    /// the way.
    #[error("the server's store: {0}")]
    Remote(String),

    /// A record the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// A worker wrote for a job it no longer holds: another worker claimed the job since (its lease
    /// expired), or the job was cancelled or finished. Nothing was written.
    #[error("job {job_id}: this worker's lease (fence {fence}) is no longer valid; the write was refused")]
    Fenced {
        /// The job.
        job_id: String,
        /// The fence the refused write carried.
        fence: i64,
    },

    /// The job already committed this tenant's result in another run (each tenant's result is
    /// committed once per job).
    #[error("job {job_id} has already committed the result of tenant {tenant_id}")]
    AlreadyCommitted {
        /// The job.
        job_id: String,
        /// The tenant.
        tenant_id: String,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Database(err)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(err)
    }
}

impl StoreError {
    /// Shorthand for a [`StoreError::Corrupt`] error.
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt { what: what.into() }
    }

    /// Shorthand for an [`StoreError::Io`] error on a path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io { path: path.into(), source }
    }
}

/// The result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
