-- An event's dedupe key starts with its message: `{bytes}:{wamid}/{kind}/`
-- then `{bytes}:{business}` and what else tells copies apart. Same keys as
-- ../sqlite/ (`record::message_key` computes them; the migration tests
-- hold the two to each other), so a webhook Meta delivers again after the
-- upgrade is still a duplicate. SQLite finds a message's events by the
-- key's prefix and drops its index by message; PostgreSQL's queries keep
-- `events_by_message`: its text comparisons follow the database's
-- collation, in which a prefix need not be a range (and what the index
-- costs its ingestion was not measured).
--
-- Before, a key with a message was `{kind}/{business}/{wamid}{rest}`. Text
-- here holds no NUL, so `substr` counts characters and lengths of the
-- prefix are bytes (`octet_length`), as in Rust. Old keys start with a
-- letter and new ones with a digit: no update meets another row's key.
UPDATE events SET dedupe_key =
    octet_length(message_id)::text || ':' || message_id || '/' || kind || '/'
    || octet_length(coalesce(business, ''))::text || ':' || coalesce(business, '')
    || substr(dedupe_key, length(kind) + length(coalesce(business, '')) + length(message_id) + 3)
WHERE message_id IS NOT NULL;
