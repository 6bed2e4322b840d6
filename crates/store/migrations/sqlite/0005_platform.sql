-- The platform (`tenantscope serve`): a job queue whose workers hold leases and whose results are
-- fenced, per-tenant schedule state, named leases (one scheduler across replicas), operator
-- sessions, API tokens, and an append-only audit log.
CREATE TABLE jobs (
    key              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    params           TEXT NOT NULL,
    pool             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    -- Incremented by every claim: a worker's writes carry the fence it claimed with, and are
    -- refused once another worker has claimed the job since.
    fence            INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      INTEGER,
    not_before       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    cancel_requested_at INTEGER,
    last_error       TEXT,
    result           TEXT,
    progress         TEXT
);
-- A claim takes the head of one of these: the oldest due queued job, or the job whose lease expired
-- first. Partial indexes keep both short however many jobs have ended.
CREATE INDEX jobs_queued ON jobs (pool, not_before, key) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs (pool, lease_until, key) WHERE status = 'running';
CREATE INDEX jobs_created ON jobs (created_at);

-- Which tenants a job has committed, and in which run: each at most once per job.
CREATE TABLE job_tenants (
    job_key    INTEGER NOT NULL,
    tenant_key INTEGER NOT NULL,
    run_key    INTEGER NOT NULL,
    PRIMARY KEY (job_key, tenant_key)
) WITHOUT ROWID;

ALTER TABLE runs ADD COLUMN job_key INTEGER;
ALTER TABLE runs ADD COLUMN job_fence INTEGER;

CREATE TABLE schedule_state (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    next_at   INTEGER NOT NULL,
    last_job  TEXT
) WITHOUT ROWID;

CREATE TABLE leases (
    name  TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY NOT NULL,
    subject      TEXT NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    address      TEXT,
    revoked_at   INTEGER
) WITHOUT ROWID;
CREATE INDEX sessions_subject ON sessions (subject);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    address TEXT,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Each tenant's latest result, for the platform's tenant list, from the index alone.
CREATE INDEX tenant_runs_latest ON tenant_runs (tenant_key, finished_at);
