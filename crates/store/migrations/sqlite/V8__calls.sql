-- Calls and Meta Business Agent usage are events (interfaces §1, `call`
-- and `agent_usage`; issue 23): the `kind` check admits them. SQLite
-- cannot change a CHECK in place, so the table is
-- rebuilt as sqlite.org's "other kinds of table schema changes" says:
-- copy, drop, rename, then the indexes again. Every row keeps its id.
-- The PostgreSQL migration in ../postgres/ changes the constraint alone.
CREATE TABLE events_with_calls (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('inbound', 'outbound', 'status', 'call', 'agent_usage')),
    business TEXT,
    user_id TEXT,
    message_id TEXT,
    at_us INTEGER NOT NULL,
    line TEXT NOT NULL,
    webhook_id INTEGER REFERENCES webhook_bodies (id)
);
INSERT INTO events_with_calls (id, dedupe_key, kind, business, user_id, message_id, at_us, line, webhook_id)
SELECT id, dedupe_key, kind, business, user_id, message_id, at_us, line, webhook_id FROM events;
DROP TABLE events;
ALTER TABLE events_with_calls RENAME TO events;
CREATE INDEX events_by_contact ON events (business, user_id, at_us);
CREATE INDEX events_by_business ON events (business, at_us);
CREATE INDEX events_by_message ON events (message_id, kind);
CREATE INDEX events_by_business_id ON events (business, id);
