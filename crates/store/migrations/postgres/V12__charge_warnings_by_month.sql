-- The warnings a charge question returns are those of the months around
-- its slice: found through the month, not by reading every month's
-- (`charge_warnings_by_scope` starts with the portfolio, which the question
-- does not name). docs/PERFORMANCE.md, session 52.
CREATE INDEX charge_warnings_by_month ON charge_warnings (month);
