-- As SQLite's migration 0011: the `(name, at)` index of the metric series was
-- maintained by every commit (one entry per metric, each in its own part of
-- the index) for the one query that read a metric across the fleet, which now
-- seeks each tenant's point through the primary key instead.
DROP INDEX IF EXISTS metrics_name_at;
