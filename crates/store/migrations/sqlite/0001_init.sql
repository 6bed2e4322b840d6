-- The tenantscope store, SQLite flavour.
--
-- Timestamps are INTEGER microseconds since 1970-01-01T00:00:00Z: 8 bytes
-- where fixed-width text took 27, and numeric order is time order. JSON
-- values are text, so key order is kept.
--
-- The tables that gain rows with every run (tenant_runs above all) are kept
-- as narrow as possible, because an unchanged tenant must cost next to
-- nothing per run: runs, tenants and dataprints are referenced there by
-- small integer keys instead of repeated UUID text, whatever repeats from
-- run to run is stored once and referenced (results, dataprints), and
-- tables keyed by a composite key are WITHOUT ROWID so the row lives in the
-- primary-key tree, stored once.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY NOT NULL,
    domain       TEXT,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    auth         TEXT NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    gone_since   INTEGER,
    gdap         TEXT
);
CREATE INDEX tenants_id_lower ON tenants (lower(id));
CREATE INDEX tenants_domain_lower ON tenants (lower(domain));

-- Integer keys of tenant ids. Separate from `tenants` because a tenant
-- result may be committed for a tenant that was never upserted.
CREATE TABLE tenant_keys (
    key       INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL UNIQUE
);

CREATE TABLE runs (
    key          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    status       TEXT NOT NULL,
    stats        TEXT NOT NULL,
    -- Who executes the run (host, boot, pid...), to detect a dead owner.
    owner        TEXT NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
CREATE INDEX runs_started ON runs (started_at);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';

-- Content-addressed, zlib-compressed collection JSON.
CREATE TABLE blobs (
    id      INTEGER PRIMARY KEY,
    hash    TEXT NOT NULL UNIQUE,
    raw_len INTEGER NOT NULL,
    data    BLOB NOT NULL
);

-- A set of (collection name -> blob): shared by every dataprint whose
-- collections are all unchanged.
CREATE TABLE collection_sets (
    id   INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE
);

CREATE TABLE collection_set_members (
    set_id  INTEGER NOT NULL REFERENCES collection_sets (id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    blob_id INTEGER NOT NULL REFERENCES blobs (id),
    PRIMARY KEY (set_id, name)
) WITHOUT ROWID;
CREATE INDEX collection_set_members_blob ON collection_set_members (blob_id);

-- One row per distinct content of a tenant's dataprint: the envelope (the
-- document without its collections, compressed, with the `run` member of
-- the run that first produced it) and its collection set. `content_hash`
-- identifies the content without the `run` member; a tenant run whose
-- dataprint has the content of the tenant's latest one points at that row
-- instead of adding one.
CREATE TABLE dataprints (
    key          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_key   INTEGER NOT NULL REFERENCES tenant_keys (key),
    run_key      INTEGER NOT NULL REFERENCES runs (key),
    taken_at     INTEGER NOT NULL,
    status       TEXT NOT NULL,
    content_hash BLOB NOT NULL,
    envelope     BLOB NOT NULL,
    envelope_len INTEGER NOT NULL,
    set_id       INTEGER REFERENCES collection_sets (id)
);
CREATE INDEX dataprints_tenant_taken ON dataprints (tenant_key, taken_at);
CREATE INDEX dataprints_set ON dataprints (set_id);

-- What a tenant result repeats from run to run (status, diagnosis, error,
-- collector outcomes without their figures), compressed JSON stored once.
CREATE TABLE results (
    key     INTEGER PRIMARY KEY,
    hash    BLOB NOT NULL UNIQUE,
    raw_len INTEGER NOT NULL,
    data    BLOB NOT NULL
);

-- One row per tenant per run: the only table an unchanged tenant grows.
-- `per_run` holds that run's own figures (when the tenant's inspection
-- started, outcome requests and durations, the dataprint's `run` member as
-- a delta) in a few dozen bytes.
-- `result_key` and `dataprint_key` carry no foreign key on purpose: deleting
-- a result or a dataprint would then scan this table for each row, and the
-- store already maintains them (prune clears `dataprint_key` itself).
CREATE TABLE tenant_runs (
    run_key       INTEGER NOT NULL REFERENCES runs (key),
    tenant_key    INTEGER NOT NULL REFERENCES tenant_keys (key),
    finished_at   INTEGER NOT NULL,
    result_key    INTEGER NOT NULL,
    dataprint_key INTEGER,
    per_run       BLOB NOT NULL,
    PRIMARY KEY (run_key, tenant_key)
) WITHOUT ROWID;
-- A tenant's history; the index carries the primary key, so it is
-- (tenant_key, run_key).
CREATE INDEX tenant_runs_tenant ON tenant_runs (tenant_key);

CREATE TABLE delta_links (
    tenant_id  TEXT NOT NULL,
    collection TEXT NOT NULL,
    link       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, collection)
) WITHOUT ROWID;

-- The secret column holds XChaCha20-Poly1305 ciphertext only.
CREATE TABLE token_cache (
    key          TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    home_account TEXT,
    scopes       TEXT NOT NULL,
    secret       BLOB NOT NULL,
    issued_at    INTEGER,
    expires_at   INTEGER,
    claims       TEXT,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX token_cache_tenant ON token_cache (tenant_id);

CREATE TABLE app_credentials (
    tenant_id       TEXT PRIMARY KEY NOT NULL,
    client_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    secret          BLOB NOT NULL,
    certificate_pem TEXT,
    expires_at      INTEGER,
    label           TEXT,
    added_at        INTEGER NOT NULL
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Metric series, run-length encoded: a point is stored only when the value
-- differs from the one in effect before it, so an unchanged tenant adds
-- nothing. Run ids here are free text (metrics may come from elsewhere).
CREATE TABLE metrics (
    tenant_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    run_id    TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, at, run_id)
) WITHOUT ROWID;
CREATE INDEX metrics_name_at ON metrics (name, at);

CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    at            INTEGER NOT NULL,
    severity      TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    payload       TEXT NOT NULL
);
CREATE INDEX events_tenant_at ON events (tenant_id, at);
CREATE INDEX events_at ON events (at);

CREATE TABLE alerts (
    key         TEXT PRIMARY KEY NOT NULL,
    rule        TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    severity    TEXT NOT NULL,
    opened_at   INTEGER NOT NULL,
    resolved_at INTEGER,
    payload     TEXT NOT NULL
);
CREATE INDEX alerts_open ON alerts (tenant_id) WHERE resolved_at IS NULL;

CREATE TABLE alert_deliveries (
    id        INTEGER PRIMARY KEY,
    alert_key TEXT NOT NULL REFERENCES alerts (key) ON DELETE CASCADE,
    target    TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    status    TEXT NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_key);

CREATE TABLE baselines (
    name       TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
