-- wameter serve: the durable record (PostgreSQL). Same design as
-- ../sqlite/; keep the two in step.

CREATE TABLE webhook_bodies (
    id BIGSERIAL PRIMARY KEY,
    received_at_us BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    reason TEXT,
    body BYTEA NOT NULL
);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('inbound', 'outbound', 'status')),
    business TEXT,
    user_id TEXT,
    message_id TEXT,
    at_us BIGINT NOT NULL,
    line TEXT NOT NULL,
    webhook_id BIGINT REFERENCES webhook_bodies (id)
);
CREATE INDEX events_by_contact ON events (business, user_id, at_us);
CREATE INDEX events_by_business ON events (business, at_us);
CREATE INDEX events_by_message ON events (message_id, kind);

CREATE TABLE notices (
    id BIGSERIAL PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    waba TEXT,
    at_us BIGINT,
    line TEXT NOT NULL,
    webhook_id BIGINT REFERENCES webhook_bodies (id)
);

CREATE TABLE contacts (
    business TEXT NOT NULL,
    user_id TEXT NOT NULL,
    first_event_at_us BIGINT NOT NULL,
    last_event_at_us BIGINT NOT NULL,
    last_inbound_at_us BIGINT,
    events BIGINT NOT NULL,
    PRIMARY KEY (business, user_id)
);
