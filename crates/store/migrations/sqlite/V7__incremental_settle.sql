-- The settler keeps each month's engine state between rounds and reads only
-- the events stored since: a mark says where the write that left it began
-- (the lowest event id it stored), and the settler reads from the lowest of
-- the marks it takes. 0 — marks of a pricing reset, marks written before
-- this column, and every PostgreSQL mark (several processes may write and
-- settle, so the PostgreSQL settler settles months whole) — means from the
-- first event.
ALTER TABLE unsettled ADD COLUMN first_event_id BIGINT NOT NULL DEFAULT 0;

-- A round writes only the charges that changed, found by message.
CREATE INDEX charges_by_message ON charges (business, message_id);

-- A round reads a portfolio's events stored since an id: by business and id.
CREATE INDEX events_by_business_id ON events (business, id);
