-- The index on `tenant_runs (tenant_key)` is a prefix of `tenant_runs_latest`
-- (`tenant_key, finished_at`, migration 0005), which answers every query the
-- older one did. Keeping both cost 10 to 11 bytes per tenant-run for nothing,
-- and a page write per commit.
DROP INDEX tenant_runs_tenant;
