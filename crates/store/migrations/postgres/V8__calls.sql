-- Calls and Meta Business Agent usage are events (interfaces §1, `call`
-- and `agent_usage`; issue 23): the `kind` check admits them. NOT VALID:
-- every stored row already passes the narrower
-- check, so there is nothing to scan; new rows are checked.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_kind_check;
ALTER TABLE events ADD CONSTRAINT events_kind_check CHECK (kind IN ('inbound', 'outbound', 'status', 'call', 'agent_usage')) NOT VALID;
