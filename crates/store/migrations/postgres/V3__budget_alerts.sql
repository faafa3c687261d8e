-- Budget thresholds crossed, one row per (budget, business-local month,
-- threshold): the primary key makes "alert once each" hold across restarts
-- and processes. The alert webhook is retried until `delivered_at_us` is
-- set. The SQLite schema in ../sqlite/ is the same design.
CREATE TABLE budget_alerts (
    budget TEXT NOT NULL,
    month TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    crossed_at_us BIGINT NOT NULL,
    spent TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    delivered_at_us BIGINT,
    last_error TEXT,
    PRIMARY KEY (budget, month, threshold)
);
