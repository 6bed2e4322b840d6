//! The seam between the one store and its two SQL dialects.
//!
//! The store ([`crate::sqlstore`]) is written once, against the small interface here: a [`Query`]
//! is SQL text with dialect-neutral [`Arg`]s; an [`Exec`] runs queries on a pool or inside a
//! transaction and returns dialect-tagged [`Row`]s that [`crate::rows::RowExt`] decodes; a
//! [`Dialect`] opens the database and owns what really differs between SQLite and PostgreSQL:
//! pools and how write transactions lock, how a timestamp is bound, storage size, and the space
//! handed back after a prune.
//!
//! The SQL text itself is shared: both engines accept `$1` placeholders, `ON CONFLICT ... DO
//! NOTHING/UPDATE`, `RETURNING`, row-value comparisons and window functions. Timestamps are
//! stored as integer microseconds in SQLite and as `timestamptz` in PostgreSQL; both order and
//! compare alike, so a query never needs to know which.
//!
//! sqlx's own `Any` driver is not used because it cannot carry `timestamptz` values and opens
//! SQLite without the per-connection pragmas the store relies on.

mod group;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Result, StoreError};
use crate::{Backend, DataprintId, RunId, TenantId};

/// A value bound to a placeholder. `None` binds a typed `NULL`, which PostgreSQL needs to infer
/// the parameter's type in expressions such as `$1 IS NULL OR tenant_id = $1`.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    /// Checked to lie in the years 1 to 9999 and truncated to microseconds when bound.
    Ts(Option<DateTime<Utc>>),
    Bool(Option<bool>),
}

macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr),+ $(,)?) => {
        $(impl From<$t> for Arg {
            fn from($v: $t) -> Arg {
                $e
            }
        })+
    };
}

arg_from! {
    i64 => |v| Arg::Int(Some(v)),
    Option<i64> => |v| Arg::Int(v),
    bool => |v| Arg::Bool(Some(v)),
    &str => |v| Arg::Text(Some(v.to_owned())),
    String => |v| Arg::Text(Some(v)),
    &String => |v| Arg::Text(Some(v.clone())),
    Option<&str> => |v| Arg::Text(v.map(str::to_owned)),
    Option<String> => |v| Arg::Text(v),
    &Option<String> => |v| Arg::Text(v.clone()),
    Vec<u8> => |v| Arg::Bytes(Some(v)),
    &[u8] => |v| Arg::Bytes(Some(v.to_vec())),
    &Vec<u8> => |v| Arg::Bytes(Some(v.clone())),
    Option<Vec<u8>> => |v| Arg::Bytes(v),
    DateTime<Utc> => |v| Arg::Ts(Some(v)),
    Option<DateTime<Utc>> => |v| Arg::Ts(v),
    &TenantId => |v| Arg::Text(Some(v.as_str().to_owned())),
    Option<&TenantId> => |v| Arg::Text(v.map(|t| t.as_str().to_owned())),
    &RunId => |v| Arg::Text(Some(v.as_str().to_owned())),
    &DataprintId => |v| Arg::Text(Some(v.as_str().to_owned())),
}

/// SQL text and its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub sql: &'static str,
    pub args: Vec<Arg>,
}

/// Starts a query. SQL is always a literal: values go through [`Query::bind`].
pub(crate) fn query(sql: &'static str) -> Query {
    Query { sql, args: Vec::new() }
}

impl Query {
    /// Binds the next placeholder.
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Query {
        self.args.push(value.into());
        self
    }
}

/// A result row, still in its engine's form; [`crate::rows::RowExt`] reads typed columns from it.
pub(crate) enum Row {
    Sqlite(sqlx::sqlite::SqliteRow),
    Postgres(sqlx::postgres::PgRow),
}

/// Runs queries: on a pool (each statement on its own) or inside a transaction.
#[async_trait]
pub(crate) trait Exec: Send {
    /// Runs a statement; returns the rows it affected.
    async fn execute(&mut self, q: Query) -> Result<u64>;

    /// Every row of a query.
    async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>>;

    /// The first row of a query, if any.
    async fn fetch_optional(&mut self, q: Query) -> Result<Option<Row>>;
}

/// What every [`Exec`] can do on top of the three primitives.
#[async_trait]
pub(crate) trait ExecExt: Exec {
    /// The first row of a query, which must return one.
    async fn fetch_one(&mut self, q: Query) -> Result<Row> {
        let sql = q.sql;
        self.fetch_optional(q).await?.ok_or_else(|| StoreError::Internal(format!("no row returned by: {sql}")))
    }

    /// The integer in the first column of the first row, if there is a row.
    async fn int(&mut self, q: Query) -> Result<Option<i64>> {
        use crate::rows::RowExt;
        self.fetch_optional(q).await?.map(|row| row.int_at(0)).transpose()
    }

    /// The text in the first column of the first row, if there is a row.
    async fn text(&mut self, q: Query) -> Result<Option<String>> {
        use crate::rows::RowExt;
        self.fetch_optional(q).await?.map(|row| row.text_at(0)).transpose()
    }
}

impl<T: Exec + ?Sized> ExecExt for T {}

/// A transaction: dropping it without [`Tx::commit`] rolls it back.
#[async_trait]
pub(crate) trait Tx: Exec {
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// What a transaction is for, which decides how it locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxKind {
    /// Several writes that must commit together.
    Write,
    /// A tenant commit: may add blobs that garbage collection must not remove under it.
    Commit,
    /// Garbage collection of blobs: excludes every [`TxKind::Commit`].
    Collect,
    /// Reads that must see one consistent snapshot.
    Snapshot,
}

/// What differs between SQLite and PostgreSQL.
#[async_trait]
pub(crate) trait Dialect: Send + Sync {
    /// Which engine.
    fn backend(&self) -> Backend;

    /// Runs single statements that only read (SQLite: on the readers, beside the writer).
    fn read(&self) -> Box<dyn Exec + '_>;

    /// Runs single statements that write (SQLite: on the one writer connection).
    fn write(&self) -> Box<dyn Exec + '_>;

    /// Starts a transaction.
    async fn begin(&self, kind: TxKind) -> Result<Box<dyn Tx + '_>>;

    /// Bytes the store's data occupies.
    async fn storage_bytes(&self) -> Result<u64>;

    /// Hands space freed by deletions back to the file system where the engine can.
    async fn reclaim_space(&self) -> Result<()>;

    /// Writes a consistent copy of the whole database, taken while it is in use, to `path`, a file
    /// that exists and is empty.
    async fn backup(&self, path: &std::path::Path) -> Result<()>;

    /// What the engine's own consistency check finds wrong; empty when nothing is.
    async fn integrity_problems(&self) -> Result<Vec<String>>;

    /// Closes connections gracefully.
    async fn close(&self);
}

/// Turns a [`Query`] into an sqlx query of one engine; `$ts` converts a checked timestamp into the
/// type the engine stores.
macro_rules! bind_query {
    ($q:expr, |$t:ident| $ts:expr) => {{
        let q: crate::sql::Query = $q;
        let mut out = sqlx::query(q.sql);
        for arg in q.args {
            out = match arg {
                crate::sql::Arg::Int(v) => out.bind(v),
                crate::sql::Arg::Text(v) => out.bind(v),
                crate::sql::Arg::Bytes(v) => out.bind(v),
                crate::sql::Arg::Ts(v) => out.bind(v.map(|$t| $ts).transpose()?),
                crate::sql::Arg::Bool(v) => out.bind(v),
            };
        }
        Ok(out)
    }};
}

pub(crate) use bind_query;

/// Implements [`Exec`] for a type holding an sqlx executor: `$exec` turns `&mut self` into one.
macro_rules! impl_exec {
    ($ty:ty, $row:ident, $bind:path, |$s:ident| $exec:expr) => {
        #[async_trait::async_trait]
        impl crate::sql::Exec for $ty {
            async fn execute(&mut self, q: crate::sql::Query) -> crate::error::Result<u64> {
                let $s = self;
                Ok($bind(q)?.execute($exec).await?.rows_affected())
            }

            async fn fetch_all(&mut self, q: crate::sql::Query) -> crate::error::Result<Vec<crate::sql::Row>> {
                let $s = self;
                Ok($bind(q)?.fetch_all($exec).await?.into_iter().map(crate::sql::Row::$row).collect())
            }

            async fn fetch_optional(&mut self, q: crate::sql::Query) -> crate::error::Result<Option<crate::sql::Row>> {
                let $s = self;
                Ok($bind(q)?.fetch_optional($exec).await?.map(crate::sql::Row::$row))
            }
        }
    };
}

pub(crate) use impl_exec;
