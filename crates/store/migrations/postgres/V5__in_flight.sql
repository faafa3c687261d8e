-- Guarded sends that hold a hard-stop budget's money: forwarded and
-- accepted upstream, neither delivered (then charged) nor failed yet.
-- Written with the send's outbound record and deleted in the transaction
-- that stores its delivered, read or failed status, so a restarted server
-- still counts them against their budget. The schema in ../sqlite/ is
-- the same design.
CREATE TABLE in_flight (
    message_id TEXT PRIMARY KEY,
    waba TEXT NOT NULL,
    amount TEXT NOT NULL,
    sent_at_us BIGINT NOT NULL
);
