-- Alerts can be acknowledged (who, when, why) and muted per tenant and rule until a date, and every
-- state change waits in an outbox until each notification target has it: delivered in order per
-- alert and target, retried with backoff, never twice.
ALTER TABLE alerts ADD COLUMN acked_at TIMESTAMPTZ;
ALTER TABLE alerts ADD COLUMN acked_by TEXT;
ALTER TABLE alerts ADD COLUMN ack_reason TEXT;

CREATE TABLE alert_mutes (
    tenant_id  TEXT NOT NULL,
    rule       TEXT NOT NULL,
    until      TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    reason     TEXT,
    PRIMARY KEY (tenant_id, rule)
);

CREATE TABLE alert_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_key       TEXT NOT NULL,
    transition      TEXT NOT NULL,
    target          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ
);
CREATE INDEX alert_outbox_pending ON alert_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_outbox_alert ON alert_outbox (alert_key, target, id);
