-- Metric series in a rowid table. As a WITHOUT ROWID table, every entry of the
-- `(name, at)` index carried the whole primary key (tenant and run ids as
-- text, about 110 bytes), and a tenant's commit adds a point at the end of
-- each of its 29 metrics' ranges: that index was a fifth of what a first
-- inspection wrote to the WAL. With a rowid the index's entries are a third
-- of the size, and the rows themselves are appended at the table's end; the
-- series key stays unique through an index of its own.
CREATE TABLE metrics_new (
    tenant_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    run_id    TEXT NOT NULL,
    value     TEXT NOT NULL
);
INSERT INTO metrics_new (tenant_id, name, at, run_id, value)
    SELECT tenant_id, name, at, run_id, value FROM metrics ORDER BY at, tenant_id, name, run_id;
DROP TABLE metrics;
ALTER TABLE metrics_new RENAME TO metrics;
CREATE UNIQUE INDEX metrics_series ON metrics (tenant_id, name, at, run_id);
CREATE INDEX metrics_name_at ON metrics (name, at);
