"""Drives the dashboard of a running `wameter serve` in Debian's Chromium
with Playwright (crates/cli/tests/dashboard.rs starts the server and seeds
it). Every check that fails raises; the pages' screenshots are saved.

    check.py BASE_URL EXPECTED.json SCREENSHOT_DIR

EXPECTED holds the tokens, the totals by month and currency that
`/v1/charges` answers, and what the scoped token must not see.
"""

import csv
import io
import json
import sys
from decimal import Decimal

from playwright.sync_api import sync_playwright

base, expected_path, shots = sys.argv[1], sys.argv[2], sys.argv[3]
expected = json.load(open(expected_path))


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def normal(amount):
    return format(Decimal(amount).normalize(), "f")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    for viewport, suffix in (({"width": 1200, "height": 900}, ""), ({"width": 390, "height": 844}, "-phone")):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        # Not signed in: every page sends to the sign-in page.
        page.goto(base + "/overview")
        check(page.url.endswith("/sign-in"), f"unsigned /overview went to {page.url}")
        page.fill("input[name=token]", "not-a-token")
        page.click("button[type=submit]")
        check("not one of this server's API tokens" in page.content(), "a wrong token is refused")
        page.fill("input[name=token]", expected["token"])
        page.click("button[type=submit]")
        page.wait_for_url("**/overview")
        cookies = context.cookies()
        session = [c for c in cookies if c["name"] == "wameter_token"]
        check(session and session[0]["httpOnly"], f"the session cookie is HTTP-only: {cookies}")

        # Overview: each month's headline equals /v1/charges, per currency.
        for month, totals in expected["totals"].items():
            page.goto(f"{base}/overview?month={month}")
            figures = [f.inner_text() for f in page.query_selector_all(".figure b")]
            for currency, amount in totals.items():
                check(f"{normal(amount)} {currency}" in figures, f"{month}: {normal(amount)} {currency} not in {figures}")
            # The months table's CSV is exactly the table.
            href = page.get_attribute("a.csv", "href")
            body = page.request.get(base + href).text() if href.startswith("/") else ""
            rows = list(csv.DictReader(io.StringIO(body)))
            check(rows, f"the CSV of {href} has rows: {body!r}")
            in_page = [[c.inner_text() for c in r.query_selector_all("td")] for r in page.query_selector_all("table#daily tbody tr, table#months tbody tr")]
            check(len(in_page) >= len(rows), "the page shows the CSV's rows")
        # The WABA filter shows what that WABA's own token sees.
        for month, totals in expected["scoped_totals"].items():
            page.goto(f"{base}/overview?month={month}&waba={expected['scoped_waba']}")
            figures = [f.inner_text() for f in page.query_selector_all(".figure b")]
            check(figures == [f"{normal(a)} {c}" for c, a in totals.items()], f"waba filter {month}: {figures}")
        page.goto(f"{base}/overview?month={expected['chart_month']}")
        check(page.query_selector("svg rect") is not None, "the overview draws its chart")
        page.screenshot(path=f"{shots}/overview{suffix}.png", full_page=True)
        # The months CSV sums to the charges' totals, month by month.
        body = page.request.get(f"{base}/overview?csv=months").text()
        sums = {}
        for row in csv.DictReader(io.StringIO(body)):
            key = (row["month"], row["currency"])
            sums[key] = sums.get(key, Decimal(0)) + Decimal(row["amount"])
        for month, totals in expected["totals"].items():
            for currency, amount in totals.items():
                check(sums.get((month, currency)) == Decimal(amount), f"months CSV {month} {currency}: {sums.get((month, currency))} != {amount}")

        for path, must in expected["pages"].items():
            response = page.goto(base + path)
            check(response.status == 200, f"{path}: {response.status}")
            text = page.inner_text("main")
            for needle in must:
                check(needle in text, f"{path}: {needle!r} not shown in {text[:2000]!r}")
            name = path.split("?")[0].strip("/").replace("/", "-")
            page.screenshot(path=f"{shots}/{name}{suffix}.png", full_page=True)
        # The windows page links each contact to its timeline.
        page.goto(base + "/windows")
        link = page.query_selector(f"table#closing a:has-text('{expected['window_user']}')")
        check(link is not None, f"{expected['window_user']}, closing soon, is linked")
        link.click()
        check(expected["window_user"] in page.inner_text("h1"), f"timeline of {expected['window_user']}: {page.inner_text('h1')}")
        page.screenshot(path=f"{shots}/contact{suffix}.png", full_page=True)

        # Sign out: the cookie goes, the pages send to sign-in again.
        page.goto(base + "/overview")
        page.click("header button[type=submit]")
        page.wait_for_url("**/sign-in")
        page.goto(base + "/allowance")
        check(page.url.endswith("/sign-in"), "signed out")

        # A scoped token never sees another WABA's numbers.
        page.fill("input[name=token]", expected["scoped_token"])
        page.click("button[type=submit]")
        page.wait_for_url("**/overview")
        for path in ["/overview", "/overview?csv=months", "/allowance", "/calls", "/windows", "/reconciliation", "/allowance?csv=allowance", "/calls?csv=calls"]:
            body = page.request.get(base + path).text()
            for hidden in expected["hidden"]:
                check(hidden not in body, f"the scoped token sees {hidden!r} on {path}")
        for month, totals in expected["scoped_totals"].items():
            page.goto(f"{base}/overview?month={month}")
            figures = [f.inner_text() for f in page.query_selector_all(".figure b")]
            check(figures == [f"{normal(a)} {c}" for c, a in totals.items()], f"scoped {month}: {figures}")
        response = page.goto(base + expected["hidden_contact"])
        check(response.status == 403, f"another WABA's contact: {response.status}")
        context.close()
    browser.close()
print("ok")
