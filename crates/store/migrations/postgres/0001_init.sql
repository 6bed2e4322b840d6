-- The tenantscope store, PostgreSQL flavour.
--
-- Same tables as the SQLite schema. JSON values are text rather than jsonb,
-- because jsonb reorders object keys and the store returns JSON exactly as
-- it was written.
--
-- The tables that gain rows with every run (tenant_runs above all) are kept
-- as narrow as possible, because an unchanged tenant must cost next to
-- nothing per run: runs, tenants and dataprints are referenced there by
-- integer keys instead of repeated UUID text, and whatever repeats from run
-- to run is stored once and referenced (results, dataprints). Columns are
-- ordered widest-aligned first so that no padding is wasted.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    domain       TEXT,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    auth         TEXT NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    gone_since   TIMESTAMPTZ,
    gdap         TEXT
);
CREATE INDEX tenants_id_lower ON tenants (lower(id));
CREATE INDEX tenants_domain_lower ON tenants (lower(domain));

-- Integer keys of tenant ids. Separate from `tenants` because a tenant
-- result may be committed for a tenant that was never upserted.
CREATE TABLE tenant_keys (
    key       INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL UNIQUE
);

CREATE TABLE runs (
    key          INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       TEXT NOT NULL,
    stats        TEXT NOT NULL,
    -- Who executes the run (host, boot, pid...), to detect a dead owner.
    owner        TEXT NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX runs_started ON runs (started_at);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';

-- Content-addressed, zlib-compressed collection JSON. The data is already
-- compressed, so TOAST is told not to try again.
CREATE TABLE blobs (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash    TEXT NOT NULL UNIQUE,
    raw_len BIGINT NOT NULL,
    data    BYTEA NOT NULL
);
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;

-- A set of (collection name -> blob): shared by every dataprint whose
-- collections are all unchanged.
CREATE TABLE collection_sets (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE
);

CREATE TABLE collection_set_members (
    set_id  BIGINT NOT NULL REFERENCES collection_sets (id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    blob_id BIGINT NOT NULL REFERENCES blobs (id),
    PRIMARY KEY (set_id, name)
);
CREATE INDEX collection_set_members_blob ON collection_set_members (blob_id);

-- One row per distinct content of a tenant's dataprint: the envelope (the
-- document without its collections, compressed, with the `run` member of
-- the run that first produced it) and its collection set. `content_hash`
-- identifies the content without the `run` member; a tenant run whose
-- dataprint has the content of the tenant's latest one points at that row
-- instead of adding one.
CREATE TABLE dataprints (
    key          INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_key   INTEGER NOT NULL REFERENCES tenant_keys (key),
    run_key      INTEGER NOT NULL REFERENCES runs (key),
    taken_at     TIMESTAMPTZ NOT NULL,
    status       TEXT NOT NULL,
    content_hash BYTEA NOT NULL,
    envelope     BYTEA NOT NULL,
    envelope_len BIGINT NOT NULL,
    set_id       BIGINT REFERENCES collection_sets (id)
);
ALTER TABLE dataprints ALTER COLUMN envelope SET STORAGE EXTERNAL;
CREATE INDEX dataprints_tenant_taken ON dataprints (tenant_key, taken_at);
CREATE INDEX dataprints_set ON dataprints (set_id);

-- What a tenant result repeats from run to run (status, diagnosis, error,
-- collector outcomes without their figures), compressed JSON stored once.
CREATE TABLE results (
    key     INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash    BYTEA NOT NULL UNIQUE,
    raw_len BIGINT NOT NULL,
    data    BYTEA NOT NULL
);
ALTER TABLE results ALTER COLUMN data SET STORAGE EXTERNAL;

-- One row per tenant per run: the only table an unchanged tenant grows.
-- `per_run` holds that run's own figures (when the tenant's inspection
-- started, outcome requests and durations, the dataprint's `run` member as
-- a delta) in a few dozen bytes; it is never compressed again by TOAST. `result_key` and `dataprint_key` carry
-- no foreign key on purpose: the store maintains them (prune clears
-- `dataprint_key` itself), and the checks would cost a lookup per row.
-- The tenant index is not unique, so btree deduplication stores a tenant's
-- many entries as one key with a list of row pointers.
CREATE TABLE tenant_runs (
    finished_at   TIMESTAMPTZ NOT NULL,
    run_key       INTEGER NOT NULL REFERENCES runs (key),
    tenant_key    INTEGER NOT NULL REFERENCES tenant_keys (key),
    result_key    INTEGER NOT NULL,
    dataprint_key INTEGER,
    per_run       BYTEA NOT NULL,
    PRIMARY KEY (run_key, tenant_key)
);
ALTER TABLE tenant_runs ALTER COLUMN per_run SET STORAGE EXTERNAL;
CREATE INDEX tenant_runs_tenant ON tenant_runs (tenant_key);

CREATE TABLE delta_links (
    tenant_id  TEXT NOT NULL,
    collection TEXT NOT NULL,
    link       TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, collection)
);

-- The secret column holds XChaCha20-Poly1305 ciphertext only.
CREATE TABLE token_cache (
    key          TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    home_account TEXT,
    scopes       TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    issued_at    TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    claims       TEXT,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX token_cache_tenant ON token_cache (tenant_id);

CREATE TABLE app_credentials (
    tenant_id       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    secret          BYTEA NOT NULL,
    certificate_pem TEXT,
    expires_at      TIMESTAMPTZ,
    label           TEXT,
    added_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Metric series, run-length encoded: a point is stored only when the value
-- differs from the one in effect before it, so an unchanged tenant adds
-- nothing. Run ids here are free text (metrics may come from elsewhere).
CREATE TABLE metrics (
    tenant_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    run_id    TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, at, run_id)
);
CREATE INDEX metrics_name_at ON metrics (name, at);

CREATE TABLE events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    severity      TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    payload       TEXT NOT NULL
);
CREATE INDEX events_tenant_at ON events (tenant_id, at);
CREATE INDEX events_at ON events (at);

CREATE TABLE alerts (
    key         TEXT PRIMARY KEY,
    rule        TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    severity    TEXT NOT NULL,
    opened_at   TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    payload     TEXT NOT NULL
);
CREATE INDEX alerts_open ON alerts (tenant_id) WHERE resolved_at IS NULL;

CREATE TABLE alert_deliveries (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_key TEXT NOT NULL REFERENCES alerts (key) ON DELETE CASCADE,
    target    TEXT NOT NULL,
    attempt   BIGINT NOT NULL,
    status    TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_key);

CREATE TABLE baselines (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
