//! [`HistoryStore`] on SQL: metric series kept as change points, events, baselines.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SqlStore;
use crate::common::{event_severity, json_text, non_empty, sql_limit};
use crate::error::Result;
use crate::rows::{self, RowExt};
use crate::sql::{Exec, ExecExt, TxKind, query};
use crate::{Backend, BaselineMeta, EventFilter, HistoryStore, MetricPoint, RunId, Severity, StoredEvent, TenantId};

#[async_trait]
impl HistoryStore for SqlStore {
    async fn put_metrics(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        values: &[(String, Value)],
    ) -> Result<()> {
        let mut tx = self.db.begin(TxKind::Write).await?;
        put_metrics_in(&mut *tx, self.db.backend(), run_id, tenant_id, at, values).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn metric_series(
        &self,
        tenant_id: Option<&TenantId>,
        name: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<MetricPoint>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT run_id, tenant_id, name, at, value FROM metrics \
                     WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR name = $2) AND ($3 IS NULL OR at >= $3) \
                     ORDER BY at, tenant_id, name, run_id",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(since),
            )
            .await?;
        rows.iter().map(rows::metric).collect()
    }

    async fn latest_metrics(&self, tenant_id: &TenantId) -> Result<Vec<MetricPoint>> {
        let rows = self.db.read().fetch_all(query(LATEST_POINTS).bind(tenant_id)).await?;
        let points = rows.iter().map(rows::metric).collect::<Result<Vec<_>>>()?;
        Ok(rows::first_per_name(points))
    }

    async fn metrics_at(&self, at: DateTime<Utc>) -> Result<Vec<MetricPoint>> {
        self.points_at(at, None).await
    }

    async fn metric_at(&self, at: DateTime<Utc>, name: &str) -> Result<Vec<MetricPoint>> {
        self.points_at(at, Some(name)).await
    }

    async fn put_events(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        at: DateTime<Utc>,
        events: &[Value],
    ) -> Result<()> {
        let severities = events.iter().map(event_severity).collect::<Result<Vec<_>>>()?;
        let mut tx = self.db.begin(TxKind::Write).await?;
        for (event, severity) in events.iter().zip(severities) {
            tx.execute(
                query(
                    "INSERT INTO events (run_id, tenant_id, at, severity, severity_rank, payload) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(run_id)
                .bind(tenant_id)
                .bind(at)
                .bind(severity.as_str())
                .bind(severity.rank())
                .bind(json_text(event)?),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let rows = self
            .db
            .read()
            .fetch_all(
                query(
                    "SELECT id, run_id, tenant_id, at, severity, payload FROM events \
                     WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR at >= $2) AND severity_rank >= $3 \
                     ORDER BY at DESC, id DESC LIMIT $4",
                )
                .bind(filter.tenant.as_ref())
                .bind(filter.since)
                .bind(filter.min_severity.unwrap_or(Severity::Info).rank())
                .bind(sql_limit(filter.limit)),
            )
            .await?;
        rows.iter().map(rows::event).collect()
    }

    async fn baseline_put(&self, name: &str, value: &Value) -> Result<()> {
        non_empty(name, "baseline name")?;
        self.db
            .write()
            .execute(
                query(
                    "INSERT INTO baselines (name, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(json_text(value)?)
                .bind(Utc::now()),
            )
            .await?;
        Ok(())
    }

    async fn baseline_get(&self, name: &str) -> Result<Option<Value>> {
        let row =
            self.db.read().fetch_optional(query("SELECT value FROM baselines WHERE name = $1").bind(name)).await?;
        row.map(|r| r.json("value")).transpose()
    }

    async fn baseline_list(&self) -> Result<Vec<BaselineMeta>> {
        let rows = self.db.read().fetch_all(query("SELECT name, updated_at FROM baselines ORDER BY name")).await?;
        rows.iter().map(rows::baseline_meta).collect()
    }
}

/// Puts a run's metric values for a tenant inside the caller's transaction (see
/// [`HistoryStore::put_metrics`]).
pub(super) async fn put_metrics_in(
    exec: &mut (dyn Exec + '_),
    backend: Backend,
    run_id: &RunId,
    tenant_id: &TenantId,
    at: DateTime<Utc>,
    values: &[(String, Value)],
) -> Result<()> {
    if put_after_every_point(exec, backend, tenant_id, run_id, at, values).await? {
        return Ok(());
    }
    let series = Series { tenant_id, run_id };
    for (name, value) in values {
        let value = json_text(value)?;
        // A value already saved for this run is replaced: remove it, and the point after it if
        // that one now repeats the point before.
        let replaced = exec
            .fetch_optional(
                query("DELETE FROM metrics WHERE tenant_id = $1 AND name = $2 AND run_id = $3 RETURNING at")
                    .bind(tenant_id)
                    .bind(name)
                    .bind(run_id),
            )
            .await?;
        if let Some(old_at) = replaced.map(|row| row.ts("at")).transpose()? {
            let before = series.neighbour(&mut *exec, name, old_at, false).await?;
            series.drop_if_repeats(&mut *exec, name, old_at, before.map(|(_, _, v)| v)).await?;
        }
        // A new point only when the value differs from the one in effect at `at`, then the next
        // point goes if it repeats it.
        let before = series.neighbour(&mut *exec, name, at, false).await?.map(|(_, _, v)| v);
        let in_effect = if before.as_deref() == Some(value.as_str()) {
            before
        } else {
            insert_point(&mut *exec, tenant_id, name, at, run_id, &value).await?;
            Some(value)
        };
        series.drop_if_repeats(&mut *exec, name, at, in_effect).await?;
    }
    Ok(())
}

/// The latest point of each of a tenant's series (`$1`), by name; of two at the same instant, the
/// later run's comes first.
const LATEST_POINTS: &str = "SELECT m.run_id, m.tenant_id, m.name, m.at, m.value FROM metrics m WHERE m.tenant_id = $1 \
     AND m.at = (SELECT MAX(l.at) FROM metrics l WHERE l.tenant_id = m.tenant_id AND l.name = m.name) \
     ORDER BY m.name, m.run_id DESC";

/// Puts a run's metric values in the common case, in three statements (two reads and one insert)
/// instead of four or five per metric: every point of the tenant is older than `at` and none is of
/// this run, so the value in effect at `at` is each series' latest point and nothing after `at` can
/// repeat it. Says whether that was the case; if not, nothing was written. Of values with the same
/// name, the last counts, as it does when they are put one after another.
async fn put_after_every_point(
    exec: &mut (dyn Exec + '_),
    backend: Backend,
    tenant_id: &TenantId,
    run_id: &RunId,
    at: DateTime<Utc>,
    values: &[(String, Value)],
) -> Result<bool> {
    let bounds = exec
        .fetch_one(
            query(
                "SELECT MAX(at) AS newest, SUM(CASE WHEN run_id = $2 THEN 1 ELSE 0 END) AS mine \
                 FROM metrics WHERE tenant_id = $1",
            )
            .bind(tenant_id)
            .bind(run_id),
        )
        .await?;
    if bounds.opt_ts("newest")?.is_some_and(|newest| newest >= at) || bounds.opt_int("mine")?.unwrap_or(0) > 0 {
        return Ok(false);
    }
    // The latest point of each series: of two at the same instant, the later run's, as in
    // `Series::neighbour`'s order. Values are compared as the stored text, as there.
    let rows = exec.fetch_all(query(LATEST_POINTS).bind(tenant_id)).await?;
    let mut in_effect: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for row in &rows {
        in_effect.entry(row.text("name")?).or_insert(row.text("value")?);
    }
    let mut wanted: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
    for (name, value) in values {
        wanted.insert(name.as_str(), json_text(value)?);
    }
    // The new points go in as one statement, a JSON object from name to the value's JSON text: a
    // tenant's first inspection adds a point to each of its 29 series at once.
    let points: serde_json::Map<String, Value> = wanted
        .into_iter()
        .filter(|(name, value)| in_effect.get(*name) != Some(value))
        .map(|(name, value)| (name.to_owned(), Value::String(value)))
        .collect();
    if points.is_empty() {
        return Ok(true);
    }
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO metrics (tenant_id, name, at, run_id, value) \
             SELECT $1, j.key, $2, $3, j.value FROM json_each($4) j"
        }
        Backend::Postgres => {
            "INSERT INTO metrics (tenant_id, name, at, run_id, value) \
             SELECT $1, j.key, $2, $3, j.value FROM json_each_text($4::json) j"
        }
    };
    exec.execute(query(sql).bind(tenant_id).bind(at).bind(run_id).bind(serde_json::to_string(&points)?)).await?;
    Ok(true)
}

/// Adds one point to a series; the callers decide that it is a change.
async fn insert_point(
    exec: &mut (dyn Exec + '_),
    tenant_id: &TenantId,
    name: &str,
    at: DateTime<Utc>,
    run_id: &RunId,
    value: &str,
) -> Result<()> {
    exec.execute(
        query("INSERT INTO metrics (tenant_id, name, at, run_id, value) VALUES ($1, $2, $3, $4, $5)")
            .bind(tenant_id)
            .bind(name)
            .bind(at)
            .bind(run_id)
            .bind(value),
    )
    .await?;
    Ok(())
}

/// One tenant's metric series, as written by one run.
struct Series<'a> {
    tenant_id: &'a TenantId,
    run_id: &'a RunId,
}

impl Series<'_> {
    /// The point of a series just before (or after) `(at, run_id)` in series order, as
    /// `(at, run_id, value)`.
    async fn neighbour(
        &self,
        exec: &mut (dyn Exec + '_),
        name: &str,
        at: DateTime<Utc>,
        after: bool,
    ) -> Result<Option<(DateTime<Utc>, String, String)>> {
        let sql = if after {
            "SELECT at, run_id, value FROM metrics WHERE tenant_id = $1 AND name = $2 \
             AND (at, run_id) > ($3, $4) ORDER BY at, run_id LIMIT 1"
        } else {
            "SELECT at, run_id, value FROM metrics WHERE tenant_id = $1 AND name = $2 \
             AND (at, run_id) < ($3, $4) ORDER BY at DESC, run_id DESC LIMIT 1"
        };
        let row = exec.fetch_optional(query(sql).bind(self.tenant_id).bind(name).bind(at).bind(self.run_id)).await?;
        row.map(|r| Ok((r.ts("at")?, r.text("run_id")?, r.text("value")?))).transpose()
    }

    /// Removes the point after `(at, run_id)` when it holds `in_effect`, the value already in effect
    /// before it, so the series keeps only changes.
    async fn drop_if_repeats(
        &self,
        exec: &mut (dyn Exec + '_),
        name: &str,
        at: DateTime<Utc>,
        in_effect: Option<String>,
    ) -> Result<()> {
        let Some(in_effect) = in_effect else {
            return Ok(());
        };
        if let Some((next_at, next_run, next_value)) = self.neighbour(exec, name, at, true).await?
            && next_value == in_effect
        {
            exec.execute(
                query("DELETE FROM metrics WHERE tenant_id = $1 AND name = $2 AND at = $3 AND run_id = $4")
                    .bind(self.tenant_id)
                    .bind(name)
                    .bind(next_at)
                    .bind(next_run),
            )
            .await?;
        }
        Ok(())
    }
}

/// Points ordered by tenant, name and run (newest first), with ties (two runs at the same instant)
/// kept once: the newest run's point, as `latest_metrics` does.
fn newest_of_ties(points: Vec<MetricPoint>) -> Result<Vec<MetricPoint>> {
    let mut out: Vec<MetricPoint> = Vec::with_capacity(points.len());
    for p in points {
        if out.last().is_none_or(|l: &MetricPoint| (&l.tenant_id, &l.name) != (&p.tenant_id, &p.name)) {
            out.push(p);
        }
    }
    Ok(out)
}

impl SqlStore {
    /// Every tenant's value of each metric (or of `name` alone) in effect at `at`.
    async fn points_at(&self, at: DateTime<Utc>, name: Option<&str>) -> Result<Vec<MetricPoint>> {
        let q = match name {
            None => query(
                "SELECT m.run_id, m.tenant_id, m.name, m.at, m.value FROM metrics m WHERE \
                 m.at = (SELECT MAX(l.at) FROM metrics l WHERE l.tenant_id = m.tenant_id AND l.name = m.name \
                 AND l.at <= $1) ORDER BY m.tenant_id, m.name, m.run_id DESC",
            )
            .bind(at),
            // One metric across the fleet: each tenant with points is found by a seek on the series
            // index (the recursive part steps from one tenant id to the next), and its point in
            // effect by another. There is no index by name: every commit would rewrite one leaf of
            // it per metric (docs/performance.md, item 26), and a scan by name would read the
            // metric's whole history.
            Some(name) => query(
                "WITH RECURSIVE t(id) AS (SELECT MIN(tenant_id) FROM metrics \
                 UNION ALL SELECT (SELECT MIN(tenant_id) FROM metrics WHERE tenant_id > t.id) FROM t WHERE t.id IS NOT NULL) \
                 SELECT m.run_id, m.tenant_id, m.name, m.at, m.value FROM t JOIN metrics m \
                 ON m.tenant_id = t.id AND m.name = $2 \
                 AND m.at = (SELECT MAX(l.at) FROM metrics l WHERE l.tenant_id = t.id AND l.name = $2 AND l.at <= $1) \
                 ORDER BY m.tenant_id, m.name, m.run_id DESC",
            )
            .bind(at)
            .bind(name),
        };
        let rows = self.db.read().fetch_all(q).await?;
        newest_of_ties(rows.iter().map(rows::metric).collect::<Result<Vec<_>>>()?)
    }
}
