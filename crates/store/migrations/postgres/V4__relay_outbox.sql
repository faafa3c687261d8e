-- Accepted webhook bodies not yet relayed to the business's own app
-- (`serve --relay-url`). A row is written in the same transaction as its
-- body, so every webhook acknowledged to Meta is relayed at least once, and
-- only after it is on disk; it is deleted once the app answered 2xx. The
-- SQLite schema in ../sqlite/ is the same design.
CREATE TABLE relay_outbox (
    webhook_id BIGINT PRIMARY KEY REFERENCES webhook_bodies (id)
);
