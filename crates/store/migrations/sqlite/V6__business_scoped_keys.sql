-- Every key that identifies an event is scoped by the business phone
-- number it names (issue 18, decision D17 in docs/rules.md). Before, a
-- status's key was `status/{wamid}/{status}/{at}` and a send's
-- `outbound/{wamid}`: a tenant who knew another's wamid and instant could
-- store a status under that key first, and the other tenant's real webhook
-- was then dropped as its duplicate. The Postgres migration in
-- ../postgres/ is the same design.
--
-- Old keys are unique and each new key adds the business to its old key,
-- so no two events merge: the rewrite keeps every stored row.

-- A status's `business` is the business it names, with or without a
-- recipient (before, only with one): what matches it to its send.
UPDATE events SET business = json_extract(line, '$.business')
WHERE kind = 'status' AND business IS NULL AND json_extract(line, '$.business') IS NOT NULL;

UPDATE events SET dedupe_key = 'status/' || COALESCE(business, '') || '/' || substr(dedupe_key, 8)
WHERE kind = 'status' AND dedupe_key LIKE 'status/%';

UPDATE events SET dedupe_key = 'outbound/' || business || '/' || substr(dedupe_key, 10)
WHERE kind = 'outbound' AND dedupe_key LIKE 'outbound/%';

-- A send in flight is the sending business's: only its statuses (or one
-- naming no business) end it. Rows kept by the previous version take the
-- business of their stored send ('' when it is missing: any status of the
-- wamid ends it, as before).
CREATE TABLE in_flight_scoped (
    business TEXT NOT NULL,
    message_id TEXT NOT NULL,
    waba TEXT NOT NULL,
    amount TEXT NOT NULL,
    sent_at_us INTEGER NOT NULL,
    PRIMARY KEY (business, message_id)
);
INSERT INTO in_flight_scoped (business, message_id, waba, amount, sent_at_us)
SELECT COALESCE((SELECT e.business FROM events e WHERE e.kind = 'outbound' AND e.message_id = f.message_id ORDER BY e.id LIMIT 1), ''),
       f.message_id, f.waba, f.amount, f.sent_at_us
FROM in_flight f;
DROP TABLE in_flight;
ALTER TABLE in_flight_scoped RENAME TO in_flight;
