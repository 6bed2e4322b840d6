-- The `(name, at)` index of the metric series goes. Each tenant's commit adds
-- a point at the end of each of its metrics' ranges, so every commit rewrote
-- one leaf of this index per metric: 11.7 % of the pages a first inspection
-- appended to the WAL, for an index of 56 pages (docs/performance.md,
-- item 26). The one query that used it, a metric across the fleet at a
-- moment, now seeks each tenant's point through the series index instead,
-- which also no longer reads the metric's whole history.
DROP INDEX IF EXISTS metrics_name_at;
