-- wameter serve: the durable record (SQLite). The Postgres schema in
-- ../postgres/ is the same design; keep the two in step.

-- Every webhook body received with a valid signature, byte for byte and
-- append-only: accepted ones for audit and re-replay, rejected ones (not
-- JSON, not a WhatsApp envelope) for inspection. Redeliveries are kept too.
CREATE TABLE webhook_bodies (
    id INTEGER PRIMARY KEY,
    received_at_us INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    reason TEXT,
    body BLOB NOT NULL
);

-- Canonical events (interfaces §1), one per fact. dedupe_key makes a
-- redelivered webhook or a repeated status a no-op.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('inbound', 'outbound', 'status')),
    business TEXT,
    user_id TEXT,
    message_id TEXT,
    at_us INTEGER NOT NULL,
    line TEXT NOT NULL,
    webhook_id INTEGER REFERENCES webhook_bodies (id)
);
CREATE INDEX events_by_contact ON events (business, user_id, at_us);
CREATE INDEX events_by_business ON events (business, at_us);
CREATE INDEX events_by_message ON events (message_id, kind);

-- Notices (template re-categorised, tier reached…).
CREATE TABLE notices (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    waba TEXT,
    at_us INTEGER,
    line TEXT NOT NULL,
    webhook_id INTEGER REFERENCES webhook_bodies (id)
);

-- Per-contact state, updated in the same transaction as the events.
CREATE TABLE contacts (
    business TEXT NOT NULL,
    user_id TEXT NOT NULL,
    first_event_at_us INTEGER NOT NULL,
    last_event_at_us INTEGER NOT NULL,
    last_inbound_at_us INTEGER,
    events INTEGER NOT NULL,
    PRIMARY KEY (business, user_id)
);
