-- What `/v1/charges` needs to order, filter and total kept charges from
-- typed columns instead of parsing their lines back (issue 20, part 3):
-- whether a charge opened a conversation, and the nanoseconds past
-- `delivered_at_us`'s microsecond (0 to 999, negative before 1970), so rows
-- order exactly as the engine's instants do. Rows kept before this
-- migration read 0 for both; the server re-settles every month when it
-- starts (its settlement revision changed with this layout).
ALTER TABLE charges ADD COLUMN opens_conversation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN delivered_nanos INTEGER NOT NULL DEFAULT 0;
