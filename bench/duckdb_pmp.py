#!/usr/bin/env python3
"""What an analyst would write instead of wameter: load a canonical NDJSON log
into DuckDB and compute PMP-2025 charges in SQL.

Covers what `wameter gen` logs exercise in Jan–Mar 2026: delivery = first
`delivered` else first `read`; templates charged per message at the card rate
of the user's market; free-form free; utility free inside the 24 h customer
service window; everything free inside a 72 h free entry point opened by the
first reply within 24 h of an ad click. No volume tiers, no auth-international
(the generated accounts have none). Prints the total so it can be checked
against `wameter replay --json` — the comparison is only fair if both agree.

usage: bench/duckdb_pmp.py LOG.ndjson [RATE_CARD.csv]
"""
import sys
import time

import duckdb

log = sys.argv[1]
card = sys.argv[2] if len(sys.argv) > 2 else "data/ratecards/unknown-repo-idx53635240303_effective-2026-01-01_USD.csv"
page = "data/markets/meta-pricing-page_2026-03-30.csv"
nanp = "data/markets/nanp-area-codes.csv"

started = time.perf_counter()
db = duckdb.connect()
db.execute(f"""
CREATE TABLE raw AS SELECT * FROM read_json('{log}', format='newline_delimited',
  columns={{'type':'VARCHAR', 'at':'VARCHAR', 'business':'VARCHAR', 'user':'VARCHAR', 'id':'VARCHAR',
           'entry_point':'VARCHAR', 'template':'STRUCT(name VARCHAR, category VARCHAR)', 'status':'VARCHAR'}});
""")
loaded = time.perf_counter()
total = db.execute(f"""
WITH ev AS (
  SELECT type, business, regexp_replace("user", '[^0-9]', '', 'g') AS digits, id, entry_point,
         template.category AS category, status,
         CASE WHEN regexp_full_match("at", '[0-9]+') THEN to_timestamp("at"::BIGINT) ELSE "at"::TIMESTAMPTZ END AS ts
  FROM raw),
outbound AS (SELECT id, any_value(business) AS business, any_value(digits) AS digits, any_value(category) AS category
             FROM ev WHERE type = 'outbound' GROUP BY id),
delivery AS (SELECT id, coalesce(min(ts) FILTER (WHERE status = 'delivered'), min(ts) FILTER (WHERE status = 'read')) AS delivered_at
             FROM ev WHERE type = 'status' GROUP BY id),
delivered AS (SELECT o.*, d.delivered_at FROM outbound o JOIN delivery d USING (id) WHERE d.delivered_at IS NOT NULL),
inbound AS (SELECT DISTINCT business, digits, ts, entry_point IS NOT NULL AS ad FROM ev WHERE type = 'inbound'),
last_inbound AS (
  SELECT d.*, i.ts AS inbound_at FROM delivered d ASOF LEFT JOIN inbound i
    ON d.business = i.business AND d.digits = i.digits AND d.delivered_at >= i.ts),
fep AS (
  SELECT DISTINCT e.business, e.digits, d.delivered_at AS opened_at
  FROM (SELECT * FROM inbound WHERE ad) e ASOF JOIN delivered d
    ON e.business = d.business AND e.digits = d.digits AND d.delivered_at >= e.ts
  WHERE d.delivered_at < e.ts + INTERVAL 24 HOUR),
flagged AS (
  SELECT l.*, l.inbound_at IS NOT NULL AND l.delivered_at < l.inbound_at + INTERVAL 24 HOUR AS in_csw,
         EXISTS (SELECT 1 FROM fep f WHERE f.business = l.business AND f.digits = l.digits
                 AND l.delivered_at >= f.opened_at AND l.delivered_at < f.opened_at + INTERVAL 72 HOUR) AS in_fep
  FROM last_inbound l),
page AS (SELECT calling_code AS prefix, market FROM read_csv('{page}', all_varchar=true)
         WHERE calling_code <> '1' AND market <> 'Other'),
nanp AS (SELECT '1' || area_code AS prefix,
                CASE WHEN iso2 = 'CA' THEN 'North America' WHEN iso2 IN ('DO','JM','PR') THEN 'Rest of Latin America'
                     ELSE 'Other' END AS market FROM read_csv('{nanp}', all_varchar=true)),
prefixes AS (SELECT * FROM page UNION ALL SELECT * FROM nanp UNION ALL SELECT '1', 'North America'),
market AS (
  SELECT DISTINCT ON (f.id) f.*, coalesce(p.market, 'Other') AS market
  FROM flagged f LEFT JOIN prefixes p ON starts_with(f.digits, p.prefix)
  ORDER BY f.id, length(p.prefix) DESC NULLS LAST),
card AS (SELECT market, marketing::DECIMAL(12,6) AS marketing, utility::DECIMAL(12,6) AS utility,
                authentication::DECIMAL(12,6) AS authentication FROM read_csv('{card}', all_varchar=true))
SELECT sum(CASE
    WHEN m.in_fep OR m.category IS NULL THEN 0
    WHEN m.category = 'utility' AND m.in_csw THEN 0
    WHEN m.category = 'marketing' THEN c.marketing
    WHEN m.category = 'utility' THEN c.utility
    ELSE c.authentication END) AS total,
  count(*) AS delivered
FROM market m JOIN card c USING (market)
""").fetchone()
finished = time.perf_counter()
print(f"total {total[0]} USD over {total[1]} delivered messages")
print(f"load {loaded - started:.2f} s, compute {finished - loaded:.2f} s, end to end {finished - started:.2f} s")
