//! Turning database rows into records, shared by both backends.
//!
//! The dialects differ only in how a timestamp column comes back (integer
//! microseconds in SQLite, `timestamptz` in PostgreSQL), so [`RowExt`] hides
//! that and every record decoder is written once. Any value the store could not have
//! written is reported as [`StoreError::Corrupt`] naming the column.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::common::{parse_enum, parse_json, parse_opt_json, ts_from_micros};
use crate::error::{Result, StoreError};
use crate::per_run::{self, Decoded};
use crate::plan::{Envelope, Latest, StoredRun};
use crate::result::{self, ResultContent};
use crate::sql::Row;
use crate::{
    AlertRecord, AppCredentialMeta, BaselineMeta, CacheRecordMeta, DataprintId, DataprintMeta, DeliveryRecord,
    MetricPoint, RunId, RunRecord, StoredEvent, TenantId, TenantRecord, TenantRunRecord,
};

fn decode_error(column: &str, err: sqlx::Error) -> StoreError {
    StoreError::corrupt(format!("column {column}: {err}"))
}

/// Typed column access with corruption errors instead of panics.
pub(crate) trait RowExt {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;
    fn ts(&self, column: &str) -> Result<DateTime<Utc>>;
    fn opt_ts(&self, column: &str) -> Result<Option<DateTime<Utc>>>;
    /// The integer in a column by position, for single-value queries.
    fn int_at(&self, index: usize) -> Result<i64>;
    /// The text in a column by position, for single-value queries.
    fn text_at(&self, index: usize) -> Result<String>;

    fn json(&self, column: &str) -> Result<Value> {
        parse_json(&self.text(column)?, column)
    }

    fn opt_json(&self, column: &str) -> Result<Option<Value>> {
        parse_opt_json(self.opt_text(column)?, column)
    }

    fn enum_value<T: std::str::FromStr>(&self, column: &str) -> Result<T> {
        parse_enum(&self.text(column)?, column)
    }

    fn tenant_id(&self, column: &str) -> Result<TenantId> {
        Ok(TenantId::new(self.text(column)?))
    }

    fn run_id(&self, column: &str) -> Result<RunId> {
        Ok(RunId::new(self.text(column)?))
    }
}

macro_rules! plain_columns {
    () => {
        fn text(&self, column: &str) -> Result<String> {
            self.try_get(column).map_err(|e| decode_error(column, e))
        }

        fn opt_text(&self, column: &str) -> Result<Option<String>> {
            self.try_get(column).map_err(|e| decode_error(column, e))
        }

        fn bytes(&self, column: &str) -> Result<Vec<u8>> {
            self.try_get(column).map_err(|e| decode_error(column, e))
        }

        fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
            self.try_get(column).map_err(|e| decode_error(column, e))
        }

        fn text_at(&self, index: usize) -> Result<String> {
            self.try_get(index).map_err(|e| decode_error(&index.to_string(), e))
        }
    };
}

impl RowExt for SqliteRow {
    plain_columns!();

    fn int(&self, column: &str) -> Result<i64> {
        self.try_get(column).map_err(|e| decode_error(column, e))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        self.try_get(column).map_err(|e| decode_error(column, e))
    }

    fn int_at(&self, index: usize) -> Result<i64> {
        self.try_get(index).map_err(|e| decode_error(&index.to_string(), e))
    }

    fn ts(&self, column: &str) -> Result<DateTime<Utc>> {
        ts_from_micros(self.int(column)?, column)
    }

    fn opt_ts(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        self.opt_int(column)?.map(|micros| ts_from_micros(micros, column)).transpose()
    }
}

impl RowExt for PgRow {
    plain_columns!();

    fn int(&self, column: &str) -> Result<i64> {
        self.opt_int(column)?.ok_or_else(|| StoreError::corrupt(format!("column {column}: unexpected NULL")))
    }

    // Keys and figures are `bigint`; a plain `integer` (a count from an older schema, say) reads as
    // i64 too.
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self.try_get::<Option<i64>, _>(column) {
            Ok(value) => Ok(value),
            Err(sqlx::Error::ColumnDecode { .. }) => {
                let narrow: Option<i32> = self.try_get(column).map_err(|e| decode_error(column, e))?;
                Ok(narrow.map(i64::from))
            }
            Err(err) => Err(decode_error(column, err)),
        }
    }

    fn int_at(&self, index: usize) -> Result<i64> {
        match self.try_get::<i64, _>(index) {
            Ok(value) => Ok(value),
            Err(sqlx::Error::ColumnDecode { .. }) => {
                self.try_get::<i32, _>(index).map(i64::from).map_err(|e| decode_error(&index.to_string(), e))
            }
            Err(err) => Err(decode_error(&index.to_string(), err)),
        }
    }

    fn ts(&self, column: &str) -> Result<DateTime<Utc>> {
        self.try_get(column).map_err(|e| decode_error(column, e))
    }

    fn opt_ts(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        self.try_get(column).map_err(|e| decode_error(column, e))
    }
}

/// Dispatches to the engine's row.
macro_rules! dispatch {
    ($($name:ident($arg:ty) -> $out:ty),+ $(,)?) => {
        $(fn $name(&self, arg: $arg) -> Result<$out> {
            match self {
                Row::Sqlite(row) => row.$name(arg),
                Row::Postgres(row) => row.$name(arg),
            }
        })+
    };
}

impl RowExt for Row {
    dispatch! {
        text(&str) -> String,
        opt_text(&str) -> Option<String>,
        int(&str) -> i64,
        opt_int(&str) -> Option<i64>,
        bytes(&str) -> Vec<u8>,
        opt_bytes(&str) -> Option<Vec<u8>>,
        ts(&str) -> DateTime<Utc>,
        opt_ts(&str) -> Option<DateTime<Utc>>,
        int_at(usize) -> i64,
        text_at(usize) -> String,
    }
}

/// The columns [`tenant`] reads, as a literal for `concat!`.
macro_rules! tenant_columns {
    () => {
        "id, domain, display_name, role, auth, first_seen, last_seen, gone_since, gdap, label"
    };
}

pub(crate) fn tenant(row: &impl RowExt) -> Result<TenantRecord> {
    Ok(TenantRecord {
        id: row.tenant_id("id")?,
        domain: row.opt_text("domain")?,
        display_name: row.text("display_name")?,
        role: row.enum_value("role")?,
        auth: row.enum_value("auth")?,
        first_seen: row.ts("first_seen")?,
        last_seen: row.ts("last_seen")?,
        gone_since: row.opt_ts("gone_since")?,
        gdap: row.opt_json("gdap")?,
        label: row.opt_text("label")?,
    })
}

/// The columns [`run`] reads, as a literal for `concat!`.
macro_rules! run_columns {
    () => {
        "id, kind, started_at, finished_at, status, stats"
    };
}

pub(crate) fn run(row: &impl RowExt) -> Result<RunRecord> {
    Ok(RunRecord {
        id: row.run_id("id")?,
        kind: row.text("kind")?,
        started_at: row.ts("started_at")?,
        finished_at: row.opt_ts("finished_at")?,
        status: row.enum_value("status")?,
        stats: row.json("stats")?,
    })
}

/// The query [`tenant_run`] reads, without its `WHERE` clause: a tenant run
/// joined with its run id, tenant id, result and dataprint id.
macro_rules! tenant_run_select {
    () => {
        concat!("SELECT ", tenant_run_columns!(), " FROM tenant_runs x ", tenant_run_joins!())
    };
}

/// The columns of a tenant run row, from `tenant_runs x` and the tables `tenant_run_joins!` adds.
macro_rules! tenant_run_columns {
    () => {
        "r.id AS run_id, t.tenant_id, x.finished_at, x.per_run, d.id AS dataprint_id, \
         s.hash AS result_hash, s.raw_len AS result_len, s.data AS result_data"
    };
}

/// What a tenant run row (`tenant_runs x`) is joined with.
macro_rules! tenant_run_joins {
    () => {
        "JOIN runs r ON r.key = x.run_key JOIN tenant_keys t ON t.key = x.tenant_key \
         JOIN results s ON s.key = x.result_key LEFT JOIN dataprints d ON d.key = x.dataprint_key"
    };
}

/// The stored result of a tenant run row (selected as `result_hash`,
/// `result_len`, `result_data`).
pub(crate) fn result_content(row: &impl RowExt) -> Result<ResultContent> {
    result::decode(&row.bytes("result_hash")?, row.int("result_len")?, &row.bytes("result_data")?)
}

pub(crate) fn tenant_run(row: &impl RowExt) -> Result<TenantRunRecord> {
    let content = result_content(row)?;
    let run_id = row.run_id("run_id")?;
    let finished_at = row.ts("finished_at")?;
    // The start is kept in the per-run part, as time before the end.
    let elapsed = per_run::elapsed_micros(&row.bytes("per_run")?, run_id.as_str())?;
    let started_at = finished_at
        .checked_sub_signed(TimeDelta::microseconds(elapsed))
        .ok_or_else(|| StoreError::corrupt(format!("tenant run of run {run_id}: invalid start")))?;
    Ok(TenantRunRecord {
        run_id,
        tenant_id: row.tenant_id("tenant_id")?,
        status: content.status,
        started_at,
        finished_at,
        diagnosis: content.diagnosis,
        error: content.error,
        dataprint_id: row.opt_text("dataprint_id")?.map(DataprintId::from),
    })
}

/// The query [`stored_run`] reads, without its `WHERE` clause: what is
/// needed to rebuild a tenant run's outcomes and `run` member, including
/// its dataprint's envelope (the reference of the per-run delta).
macro_rules! stored_run_select {
    () => {
        "SELECT x.run_key, x.tenant_key, r.id AS run_id, t.tenant_id, x.finished_at, x.per_run, \
         s.hash AS result_hash, s.raw_len AS result_len, s.data AS result_data, \
         d.id AS dataprint_id, d.taken_at, d.envelope, d.envelope_len \
         FROM tenant_runs x JOIN runs r ON r.key = x.run_key JOIN tenant_keys t ON t.key = x.tenant_key \
         JOIN results s ON s.key = x.result_key LEFT JOIN dataprints d ON d.key = x.dataprint_key"
    };
}

/// A tenant run as [`stored_run_select`] reads it.
pub(crate) struct StoredRunRow {
    pub run_key: i64,
    pub tenant_key: i64,
    pub run: StoredRun,
    /// The dataprint's id, envelope and `taken_at`, when it has one.
    pub dataprint: Option<(Envelope, DateTime<Utc>)>,
}

impl StoredRunRow {
    /// Decodes the per-run part, reading the reference `run` member from
    /// the envelope only when the encoding uses it.
    pub(crate) fn decode(&self) -> Result<Decoded> {
        if !self.run.needs_reference() {
            return self.run.decode(None);
        }
        let (envelope, taken_at) = self.dataprint.as_ref().ok_or_else(|| {
            StoreError::corrupt(format!(
                "tenant run {}/{}: its per-run data needs a dataprint it no longer has",
                self.run.run_id, self.run.tenant_id
            ))
        })?;
        let reference = envelope.run()?;
        self.run.decode(Some((reference.as_ref(), *taken_at)))
    }

    /// Dataprint `id`, loaded as first stored, with the `run` member this
    /// tenant run produced; unchanged when the run refers to another one.
    pub(crate) fn with_run_member(&self, id: &str, doc: Value) -> Result<Value> {
        match &self.dataprint {
            Some((envelope, taken_at)) if envelope.id == id => {
                let decoded = self.run.decode(Some((doc.get(crate::blob::RUN), *taken_at)))?;
                Ok(crate::plan::with_run(doc, decoded.run))
            }
            _ => Ok(doc),
        }
    }
}

pub(crate) fn stored_run(row: &impl RowExt) -> Result<StoredRunRow> {
    let dataprint = match row.opt_text("dataprint_id")? {
        None => None,
        Some(id) => {
            let envelope = Envelope { id, data: row.bytes("envelope")?, len: row.int("envelope_len")? };
            Some((envelope, row.ts("taken_at")?))
        }
    };
    Ok(StoredRunRow {
        run_key: row.int("run_key")?,
        tenant_key: row.int("tenant_key")?,
        run: StoredRun {
            run_id: row.run_id("run_id")?,
            tenant_id: row.tenant_id("tenant_id")?,
            finished_at: row.ts("finished_at")?,
            content: result_content(row)?,
            per_run: row.bytes("per_run")?,
        },
        dataprint,
    })
}

/// The columns [`latest`] reads.
macro_rules! latest_columns {
    () => {
        "d.key, d.id, d.content_hash, d.status, d.taken_at"
    };
}

pub(crate) fn latest(row: &impl RowExt) -> Result<Latest> {
    Ok(Latest {
        key: row.int("key")?,
        id: row.text("id")?,
        content_hash: row.bytes("content_hash")?,
        status: row.enum_value("status")?,
        taken_at: row.ts("taken_at")?,
    })
}

/// The query [`dataprint_meta`] reads, without its `WHERE` clause. When a
/// dataprint was last confirmed is derived from the tenant runs that point
/// at it rather than stored, so confirming one writes nothing but the
/// tenant run itself.
macro_rules! dataprint_meta_select {
    () => {
        "SELECT d.key, d.id, r.id AS run_id, t.tenant_id, d.taken_at, d.status, \
         COALESCE((SELECT MAX(c.finished_at) FROM tenant_runs c \
                   WHERE c.tenant_key = d.tenant_key AND c.dataprint_key = d.key), d.taken_at) AS confirmed_at, \
         COALESCE((SELECT cr.id FROM tenant_runs c JOIN runs cr ON cr.key = c.run_key \
                   WHERE c.tenant_key = d.tenant_key AND c.dataprint_key = d.key \
                   ORDER BY c.finished_at DESC, cr.id DESC LIMIT 1), r.id) AS confirmed_run_id \
         FROM dataprints d JOIN runs r ON r.key = d.run_key JOIN tenant_keys t ON t.key = d.tenant_key"
    };
}

pub(crate) fn dataprint_meta(row: &impl RowExt) -> Result<DataprintMeta> {
    Ok(DataprintMeta {
        id: DataprintId::from(row.text("id")?),
        run_id: row.run_id("run_id")?,
        tenant_id: row.tenant_id("tenant_id")?,
        taken_at: row.ts("taken_at")?,
        status: row.enum_value("status")?,
        confirmed_at: row.ts("confirmed_at")?,
        confirmed_run_id: row.run_id("confirmed_run_id")?,
    })
}

/// The columns [`cache_meta`] reads, as a literal for `concat!`.
macro_rules! cache_meta_columns {
    () => {
        "key, tenant_id, kind, client_id, home_account, scopes, issued_at, expires_at, claims, updated_at"
    };
}

pub(crate) fn cache_meta(row: &impl RowExt) -> Result<CacheRecordMeta> {
    Ok(CacheRecordMeta {
        key: row.text("key")?,
        tenant_id: row.text("tenant_id")?,
        kind: row.text("kind")?,
        client_id: row.text("client_id")?,
        home_account: row.opt_text("home_account")?,
        scopes: row.text("scopes")?,
        issued_at: row.opt_ts("issued_at")?,
        expires_at: row.opt_ts("expires_at")?,
        claims: row.opt_json("claims")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// The columns [`credential_meta`] reads, as a literal for `concat!`.
macro_rules! credential_meta_columns {
    () => {
        "tenant_id, client_id, kind, certificate_pem, expires_at, label, added_at"
    };
}

pub(crate) fn credential_meta(row: &impl RowExt) -> Result<AppCredentialMeta> {
    Ok(AppCredentialMeta {
        tenant_id: row.tenant_id("tenant_id")?,
        client_id: row.text("client_id")?,
        kind: row.enum_value("kind")?,
        certificate_pem: row.opt_text("certificate_pem")?,
        expires_at: row.opt_ts("expires_at")?,
        label: row.opt_text("label")?,
        added_at: row.ts("added_at")?,
    })
}

pub(crate) fn metric(row: &impl RowExt) -> Result<MetricPoint> {
    Ok(MetricPoint {
        run_id: row.run_id("run_id")?,
        tenant_id: row.tenant_id("tenant_id")?,
        name: row.text("name")?,
        at: row.ts("at")?,
        value: row.json("value")?,
    })
}

pub(crate) fn event(row: &impl RowExt) -> Result<StoredEvent> {
    Ok(StoredEvent {
        id: row.int("id")?,
        run_id: row.run_id("run_id")?,
        tenant_id: row.tenant_id("tenant_id")?,
        at: row.ts("at")?,
        severity: row.enum_value("severity")?,
        event: row.json("payload")?,
    })
}

/// The columns [`alert`] reads, as a literal for `concat!`.
macro_rules! alert_columns {
    () => {
        "key, rule, tenant_id, severity, opened_at, resolved_at, payload, acked_at, acked_by, ack_reason"
    };
}

pub(crate) fn alert(row: &impl RowExt) -> Result<AlertRecord> {
    Ok(AlertRecord {
        key: row.text("key")?,
        rule: row.text("rule")?,
        tenant_id: row.tenant_id("tenant_id")?,
        severity: row.enum_value("severity")?,
        opened_at: row.ts("opened_at")?,
        resolved_at: row.opt_ts("resolved_at")?,
        payload: row.json("payload")?,
        acked_at: row.opt_ts("acked_at")?,
        acked_by: row.opt_text("acked_by")?,
        ack_reason: row.opt_text("ack_reason")?,
    })
}

pub(crate) fn delivery(row: &impl RowExt) -> Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        alert_key: row.text("alert_key")?,
        target: row.text("target")?,
        attempt: row.int("attempt")?,
        status: row.text("status")?,
        at: row.ts("at")?,
    })
}

pub(crate) fn baseline_meta(row: &impl RowExt) -> Result<BaselineMeta> {
    Ok(BaselineMeta { name: row.text("name")?, updated_at: row.ts("updated_at")? })
}

/// Keeps the first point of each metric name, for `latest_metrics` whose
/// query returns ties (two runs at the same instant) newest run first.
pub(crate) fn first_per_name(points: Vec<MetricPoint>) -> Vec<MetricPoint> {
    let mut out: Vec<MetricPoint> = Vec::with_capacity(points.len());
    for point in points {
        if out.last().is_none_or(|last| last.name != point.name) {
            out.push(point);
        }
    }
    out
}

pub(crate) fn mute(row: &impl RowExt) -> Result<crate::MuteRecord> {
    Ok(crate::MuteRecord {
        tenant_id: row.tenant_id("tenant_id")?,
        rule: row.text("rule")?,
        until: row.ts("until")?,
        created_at: row.ts("created_at")?,
        created_by: row.text("created_by")?,
        reason: row.opt_text("reason")?,
    })
}

/// The columns [`outbox_item`] reads, as a literal for `concat!`.
macro_rules! outbox_columns {
    () => {
        "id, alert_key, transition, target, payload, created_at, next_attempt_at, attempts, status, last_error, delivered_at"
    };
}

pub(crate) fn outbox_item(row: &impl RowExt) -> Result<crate::OutboxItem> {
    Ok(crate::OutboxItem {
        id: row.int("id")?,
        alert_key: row.text("alert_key")?,
        transition: row.text("transition")?,
        target: row.text("target")?,
        payload: row.json("payload")?,
        created_at: row.ts("created_at")?,
        next_attempt_at: row.ts("next_attempt_at")?,
        attempts: row.int("attempts")?,
        status: row.enum_value("status")?,
        last_error: row.opt_text("last_error")?,
        delivered_at: row.opt_ts("delivered_at")?,
    })
}

macro_rules! job_columns {
    () => {
        "id, kind, params, pool, status, attempts, max_attempts, fence, lease_owner, lease_until, not_before, \
         created_at, created_by, started_at, finished_at, cancel_requested_at, last_error, result, progress"
    };
}

pub(crate) fn job(row: &impl RowExt) -> Result<crate::JobRecord> {
    Ok(crate::JobRecord {
        id: row.text("id")?,
        kind: row.text("kind")?,
        params: row.json("params")?,
        pool: row.text("pool")?,
        status: row.enum_value("status")?,
        attempts: row.int("attempts")?,
        max_attempts: row.int("max_attempts")?,
        fence: row.int("fence")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_until: row.opt_ts("lease_until")?,
        not_before: row.ts("not_before")?,
        created_at: row.ts("created_at")?,
        created_by: row.text("created_by")?,
        started_at: row.opt_ts("started_at")?,
        finished_at: row.opt_ts("finished_at")?,
        cancel_requested_at: row.opt_ts("cancel_requested_at")?,
        last_error: row.opt_text("last_error")?,
        result: row.opt_json("result")?,
        progress: row.opt_json("progress")?,
    })
}

macro_rules! session_columns {
    () => {
        "id_hash, subject, name, role, csrf, created_at, expires_at, last_seen_at, address, revoked_at"
    };
}

pub(crate) fn session(row: &impl RowExt) -> Result<crate::SessionRecord> {
    Ok(crate::SessionRecord {
        id_hash: row.text("id_hash")?,
        subject: row.text("subject")?,
        name: row.text("name")?,
        role: row.text("role")?,
        csrf: row.text("csrf")?,
        created_at: row.ts("created_at")?,
        expires_at: row.ts("expires_at")?,
        last_seen_at: row.ts("last_seen_at")?,
        address: row.opt_text("address")?,
        revoked_at: row.opt_ts("revoked_at")?,
    })
}

macro_rules! token_columns {
    () => {
        "id, name, hash, role, created_at, created_by, expires_at, revoked_at, last_used_at"
    };
}

pub(crate) fn api_token(row: &impl RowExt) -> Result<crate::ApiTokenRecord> {
    Ok(crate::ApiTokenRecord {
        id: row.text("id")?,
        name: row.text("name")?,
        hash: row.text("hash")?,
        role: row.text("role")?,
        created_at: row.ts("created_at")?,
        created_by: row.text("created_by")?,
        expires_at: row.ts("expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
        last_used_at: row.opt_ts("last_used_at")?,
    })
}

pub(crate) fn audit_entry(row: &impl RowExt) -> Result<crate::AuditEntry> {
    Ok(crate::AuditEntry {
        id: row.int("id")?,
        at: row.ts("at")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        target: row.opt_text("target")?,
        address: row.opt_text("address")?,
        detail: row.json("detail")?,
    })
}

pub(crate) fn agent(row: &impl RowExt) -> Result<crate::AgentRecord> {
    Ok(crate::AgentRecord {
        id: row.text("id")?,
        name: row.text("name")?,
        pool: row.text("pool")?,
        signing_key: row.text("signing_key")?,
        sealing_key: row.text("sealing_key")?,
        version: row.text("version")?,
        enrolled_at: row.ts("enrolled_at")?,
        enrolled_by: row.text("enrolled_by")?,
        revoked_at: row.opt_ts("revoked_at")?,
        last_seen_at: row.opt_ts("last_seen_at")?,
        health: row.opt_json("health")?,
    })
}

pub(crate) fn enrollment(row: &impl RowExt) -> Result<crate::EnrollmentRecord> {
    Ok(crate::EnrollmentRecord {
        id: row.text("id")?,
        hash: row.text("hash")?,
        name: row.text("name")?,
        pool: row.text("pool")?,
        created_at: row.ts("created_at")?,
        created_by: row.text("created_by")?,
        expires_at: row.ts("expires_at")?,
        used_at: row.opt_ts("used_at")?,
        agent_id: row.opt_text("agent_id")?,
    })
}
