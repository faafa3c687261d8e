-- Kept charges as typed columns beside their document line (issue 20,
-- part 3): the dashboard and reports read and aggregate these instead of
-- parsing every line back. Rows kept before this migration have empty
-- columns; the server re-settles every month when it starts (its
-- settlement revision changed with this layout).
ALTER TABLE charges ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN messaging_account TEXT;
ALTER TABLE charges ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN local_date TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN pricing_model TEXT;
ALTER TABLE charges ADD COLUMN category TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN pricing_type TEXT;
ALTER TABLE charges ADD COLUMN direction TEXT;
ALTER TABLE charges ADD COLUMN billable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN market TEXT;
ALTER TABLE charges ADD COLUMN currency TEXT NOT NULL DEFAULT '';
-- Exact decimal text: never summed as a float.
ALTER TABLE charges ADD COLUMN amount TEXT NOT NULL DEFAULT '0';
ALTER TABLE charges ADD COLUMN quantity INTEGER NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN tier TEXT;
ALTER TABLE charges ADD COLUMN ruleset TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN template TEXT;
