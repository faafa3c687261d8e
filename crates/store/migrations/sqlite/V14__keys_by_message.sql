-- An event's dedupe key starts with its message: `{bytes}:{wamid}/{kind}/`
-- then `{bytes}:{business}` and what else tells copies apart (a status's
-- name and instant, a call's digest). The unique index on the key then
-- also finds a message's events of a kind by prefix, and the index by
-- message goes: on keys as random as wamids it was a fifth B-tree that
-- every stored event wrote a random page of (docs/PERFORMANCE.md,
-- session 53). `record::message_key` computes the same keys; the
-- migration tests hold the two to each other.
--
-- Before, a key with a message was `{kind}/{business}/{wamid}{rest}`
-- (business '' for a status naming none); the rest is what follows the
-- wamid. Lengths are bytes (`octet_length`, and `substr` on the key as a
-- BLOB counts bytes too). Old keys start with a letter and new ones with
-- a digit, so no update meets another row's key; keys without a message
-- (an inbound without wamid) are unchanged.
DROP INDEX events_by_message;

UPDATE events SET dedupe_key =
    octet_length(message_id) || ':' || message_id || '/' || kind || '/'
    || octet_length(coalesce(business, '')) || ':' || coalesce(business, '')
    || CAST(substr(CAST(dedupe_key AS BLOB),
                   octet_length(kind) + octet_length(coalesce(business, '')) + octet_length(message_id) + 3)
            AS TEXT)
WHERE message_id IS NOT NULL;

-- Every key moved: the rewritten index is rebuilt in order, its pages full.
REINDEX events;
