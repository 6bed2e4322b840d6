-- Agents: processes that run inspections from a network the MSP chooses (a static egress address
-- that customers' Conditional Access allows). An agent enrolls once with a one-time token and then
-- authenticates every request with its own key; the server never connects to it.

CREATE TABLE agents (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    pool         TEXT NOT NULL,
    -- The agent's public keys, base64: Ed25519 for the tokens it signs, X25519 for the secrets
    -- sealed to it. The private halves never leave the agent.
    signing_key  TEXT NOT NULL,
    sealing_key  TEXT NOT NULL,
    version      TEXT NOT NULL,
    enrolled_at  INTEGER NOT NULL,
    enrolled_by  TEXT NOT NULL,
    revoked_at   INTEGER,
    last_seen_at INTEGER,
    -- The agent's last heartbeat as it reported it (JSON).
    health       TEXT
) WITHOUT ROWID;

CREATE INDEX agents_pool ON agents (pool);

-- One-time enrollment tokens, kept as hashes; a token is spent by the enrollment that uses it.
CREATE TABLE agent_enrollments (
    id         TEXT PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    pool       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    agent_id   TEXT
) WITHOUT ROWID;

-- Which pool of agents inspects a tenant; a tenant without a row is the default pool's.
CREATE TABLE tenant_pools (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    pool      TEXT NOT NULL
) WITHOUT ROWID;
