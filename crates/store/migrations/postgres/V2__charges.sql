-- Charges kept per (portfolio, business-local month), settled from the
-- events by the engine (PostgreSQL). Same design as ../sqlite/; keep the
-- two in step.

-- A month some new event may have changed, per business phone number
-- ('' when the event names none: every business that month). One row per
-- write, never updated, so writers do not contend; the settler deletes the
-- rows it listed once it has re-settled their months.
CREATE TABLE unsettled (
    id BIGSERIAL PRIMARY KEY,
    business TEXT NOT NULL,
    month TEXT NOT NULL
);

-- The charges of one (portfolio, month), replaced as a whole when it is
-- settled. `line` is the charge exactly as the `replay --json` document
-- prints it.
CREATE TABLE charges (
    portfolio TEXT NOT NULL,
    month TEXT NOT NULL,
    business TEXT NOT NULL,
    delivered_at_us BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX charges_by_scope ON charges (portfolio, month);
CREATE INDEX charges_by_delivery ON charges (business, delivered_at_us);

-- What the engine warned about while settling a (portfolio, month).
-- `business` is the business of the event warned about (NULL: none or
-- unknown, shown to all-WABA tokens only); `count` is how many messages a
-- counting warning (outbound_inferred) covers.
CREATE TABLE charge_warnings (
    portfolio TEXT NOT NULL,
    month TEXT NOT NULL,
    business TEXT,
    event_id BIGINT,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    count BIGINT NOT NULL
);
CREATE INDEX charge_warnings_by_scope ON charge_warnings (portfolio, month);

-- Which accounts, rate cards, tiers and engine version the kept charges
-- were settled with: when it changes, every month is settled again.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
