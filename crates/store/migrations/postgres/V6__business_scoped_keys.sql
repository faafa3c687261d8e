-- Every key that identifies an event is scoped by the business phone
-- number it names (issue 18, decision D17 in docs/rules.md). Before, a
-- status's key was `status/{wamid}/{status}/{at}` and a send's
-- `outbound/{wamid}`: a tenant who knew another's wamid and instant could
-- store a status under that key first, and the other tenant's real webhook
-- was then dropped as its duplicate. Same design as ../sqlite/.
--
-- Old keys are unique and each new key adds the business to its old key,
-- so no two events merge: the rewrite keeps every stored row.

-- A status's `business` is the business it names, with or without a
-- recipient (before, only with one): what matches it to its send.
UPDATE events SET business = line::jsonb ->> 'business'
WHERE kind = 'status' AND business IS NULL AND (line::jsonb ->> 'business') IS NOT NULL;

UPDATE events SET dedupe_key = 'status/' || COALESCE(business, '') || '/' || substr(dedupe_key, 8)
WHERE kind = 'status' AND dedupe_key LIKE 'status/%';

UPDATE events SET dedupe_key = 'outbound/' || business || '/' || substr(dedupe_key, 10)
WHERE kind = 'outbound' AND dedupe_key LIKE 'outbound/%';

-- A send in flight is the sending business's: only its statuses (or one
-- naming no business) end it. Rows kept by the previous version take the
-- business of their stored send ('' when it is missing: any status of the
-- wamid ends it, as before).
ALTER TABLE in_flight ADD COLUMN business TEXT NOT NULL DEFAULT '';
UPDATE in_flight f SET business = COALESCE(
    (SELECT e.business FROM events e WHERE e.kind = 'outbound' AND e.message_id = f.message_id ORDER BY e.id LIMIT 1), '');
ALTER TABLE in_flight DROP CONSTRAINT in_flight_pkey;
ALTER TABLE in_flight ADD PRIMARY KEY (business, message_id);
