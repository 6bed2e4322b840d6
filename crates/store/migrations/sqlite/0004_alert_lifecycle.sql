-- Alerts can be acknowledged (who, when, why) and muted per tenant and rule until a date, and every
-- state change waits in an outbox until each notification target has it: delivered in order per
-- alert and target, retried with backoff, never twice.
ALTER TABLE alerts ADD COLUMN acked_at INTEGER;
ALTER TABLE alerts ADD COLUMN acked_by TEXT;
ALTER TABLE alerts ADD COLUMN ack_reason TEXT;

CREATE TABLE alert_mutes (
    tenant_id  TEXT NOT NULL,
    rule       TEXT NOT NULL,
    until      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    reason     TEXT,
    PRIMARY KEY (tenant_id, rule)
) WITHOUT ROWID;

CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY,
    alert_key       TEXT NOT NULL,
    transition      TEXT NOT NULL,
    target          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    delivered_at    INTEGER
);
CREATE INDEX alert_outbox_pending ON alert_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_outbox_alert ON alert_outbox (alert_key, target, id);
