-- A status that ends a guarded send's flight deletes its row by wamid,
-- whichever business the status names (or none): the key starts with the
-- business, so every such status read the whole table in the writer, and
-- the table keeps the sends whose outcome never came. docs/PERFORMANCE.md,
-- session 52.
CREATE INDEX in_flight_by_message ON in_flight (message_id);
