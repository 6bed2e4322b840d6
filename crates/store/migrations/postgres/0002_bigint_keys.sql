-- Integer keys become 64-bit, as in SQLite, so that every key reads back as the same type in both
-- dialects and no query needs a cast. Changing an identity column's type also changes its
-- sequence's. Referencing columns change first where a foreign key ties them, which PostgreSQL
-- re-checks against the new type.
ALTER TABLE tenant_runs
    ALTER COLUMN run_key TYPE BIGINT,
    ALTER COLUMN tenant_key TYPE BIGINT,
    ALTER COLUMN result_key TYPE BIGINT,
    ALTER COLUMN dataprint_key TYPE BIGINT;
ALTER TABLE dataprints
    ALTER COLUMN tenant_key TYPE BIGINT,
    ALTER COLUMN run_key TYPE BIGINT;
ALTER TABLE tenant_keys ALTER COLUMN key TYPE BIGINT;
ALTER TABLE runs ALTER COLUMN key TYPE BIGINT;
ALTER TABLE dataprints ALTER COLUMN key TYPE BIGINT;
ALTER TABLE results ALTER COLUMN key TYPE BIGINT;
