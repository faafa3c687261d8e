-- The kept charges of every business delivered in a span (`/v1/charges`
-- and the cost report without a business list, the dashboard's pages)
-- found through an index on the delivery instant alone: the index on
-- (business, delivered_at_us) serves a business list only, and a day's
-- charges read the whole table (docs/PERFORMANCE.md, session 52).
CREATE INDEX charges_by_delivered_at ON charges (delivered_at_us);
