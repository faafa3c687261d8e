//! The money, drawn: the pages of `serve`'s dashboard and of
//! `replay --html`, rendered on the server as plain HTML with SVG charts —
//! no script, no build step, nothing fetched from elsewhere.
//!
//! A [`Page`] is a list of [`Block`]s. Every chart comes with the table of
//! the numbers it draws, and every table has an id: [`csv`] renders exactly
//! that table as CSV, which is what a page's "CSV" link downloads. The
//! page builders ([`overview`], [`allowance`], [`calls`]) work on the
//! export rows of `wameter-export` (one per charge, call and agent usage),
//! so the dashboard and the HTML report show the same numbers as
//! `/v1/charges` and `replay`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use jiff::civil::Date;
use rust_decimal::Decimal;
use wameter_core::money::format_amount as money;
use wameter_core::settlement::Month;
use wameter_export::{Kind, Row};

mod svg;

pub use svg::{Series, stacked_bars};

/// A table of a page: what a chart draws, or a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Its id: `?csv=ID` downloads it.
    pub id: &'static str,
    /// Column names.
    pub headers: Vec<String>,
    /// Rows of cells, as text.
    pub rows: Vec<Vec<String>>,
    /// Which columns are numbers (right-aligned).
    pub numeric: Vec<bool>,
    /// A cell's link: `(row, column) → href`.
    pub links: BTreeMap<(usize, usize), String>,
}

impl Table {
    /// A table with these columns; `numeric` marks the right-aligned ones.
    pub fn new(id: &'static str, headers: &[&str], numeric: &[bool]) -> Table {
        Table {
            id,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            numeric: numeric.to_vec(),
            ..Table::default()
        }
    }
}

/// A part of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// A heading.
    Heading(String),
    /// A paragraph of text (escaped when rendered).
    Text(String),
    /// Ready HTML (a form): built by this crate's callers from escaped parts.
    Html(String),
    /// A figure: an SVG drawing and the table of its numbers.
    Chart {
        /// The drawing.
        svg: String,
        /// Its numbers.
        table: Table,
    },
    /// A table.
    Table(Table),
    /// Headline figures: (label, value).
    Figures(Vec<(String, String)>),
}

/// A page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Its title.
    pub title: String,
    /// Its blocks, in order.
    pub blocks: Vec<Block>,
}

/// The navigation of the dashboard: (href, label).
pub const NAV: [(&str, &str); 5] = [
    ("/overview", "Overview"),
    ("/windows", "Windows"),
    ("/allowance", "Allowance"),
    ("/reconciliation", "Reconciliation"),
    ("/calls", "Calls"),
];

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1c2430;background:#f6f7f9}
header{background:#0f3d32;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header strong{font-size:1.1rem;margin-right:.5rem}header a{color:#cfe9df;text-decoration:none;padding:.2rem .1rem}
header a.on{color:#fff;border-bottom:2px solid #5fd3a6}header form{margin-left:auto}header button{background:none;border:1px solid #cfe9df;color:#cfe9df;border-radius:4px;padding:.15rem .6rem;cursor:pointer}
main{max-width:1100px;margin:0 auto;padding:1rem}h1{font-size:1.35rem;margin:.4rem 0 1rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
section{background:#fff;border:1px solid #e1e5ea;border-radius:8px;padding:.8rem 1rem;margin:0 0 1rem}
.figures{display:flex;flex-wrap:wrap;gap:.8rem}.figure{background:#fff;border:1px solid #e1e5ea;border-radius:8px;padding:.6rem .9rem;min-width:10rem}
.figure b{display:block;font-size:1.25rem}.figure span{color:#5b6675;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.3rem .5rem;border-bottom:1px solid #edf0f3;text-align:left;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.scroll{overflow-x:auto}
details summary{cursor:pointer;color:#0f6b52;margin:.4rem 0}a.csv{font-size:.85rem;color:#0f6b52}
svg{max-width:100%;height:auto}form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}
form.filters label{display:flex;flex-direction:column;font-size:.8rem;color:#5b6675}select,input{font:inherit;padding:.25rem .4rem}
p.note{color:#5b6675;font-size:.88rem}
";

/// Renders a page as a whole HTML document. `nav`: `Some(active href)`
/// for the dashboard's navigation and sign-out; `None` for a standalone
/// report. `csv_link`: how to link a table's CSV (`None`: no links, as in
/// a file that must work offline).
pub fn render(page: &Page, nav: Option<&str>, csv_link: Option<&dyn Fn(&str) -> String>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{} · wameter</title><style>{STYLE}</style></head><body><header><strong>wameter</strong>",
        escape(&page.title)
    );
    if let Some(active) = nav {
        for (href, label) in NAV {
            let on = if href == active { " class=\"on\"" } else { "" };
            let _ = write!(out, "<a href=\"{href}\"{on}>{label}</a>");
        }
        out.push_str("<form method=\"post\" action=\"/sign-out\"><button type=\"submit\">Sign out</button></form>");
    }
    let _ = write!(out, "</header><main><h1>{}</h1>", escape(&page.title));
    for block in &page.blocks {
        match block {
            Block::Heading(text) => {
                let _ = write!(out, "<h2>{}</h2>", escape(text));
            }
            Block::Text(text) => {
                let _ = write!(out, "<p class=\"note\">{}</p>", escape(text));
            }
            Block::Html(html) => out.push_str(html),
            Block::Figures(figures) => {
                out.push_str("<div class=\"figures\">");
                for (label, value) in figures {
                    let _ = write!(
                        out,
                        "<div class=\"figure\"><b>{}</b><span>{}</span></div>",
                        escape(value),
                        escape(label)
                    );
                }
                out.push_str("</div>");
            }
            Block::Chart { svg, table } => {
                out.push_str("<section>");
                out.push_str(svg);
                out.push_str("<details><summary>The numbers</summary>");
                table_html(&mut out, table, csv_link);
                out.push_str("</details></section>");
            }
            Block::Table(table) => {
                out.push_str("<section>");
                table_html(&mut out, table, csv_link);
                out.push_str("</section>");
            }
        }
    }
    out.push_str("</main></body></html>");
    out
}

fn table_html(out: &mut String, table: &Table, csv_link: Option<&dyn Fn(&str) -> String>) {
    if table.rows.is_empty() {
        out.push_str("<p class=\"note\">Nothing in this slice.</p>");
        return;
    }
    let _ = write!(
        out,
        "<div class=\"scroll\"><table id=\"{}\"><thead><tr>",
        table.id
    );
    for (k, header) in table.headers.iter().enumerate() {
        let class = if table.numeric.get(k) == Some(&true) {
            " class=\"n\""
        } else {
            ""
        };
        let _ = write!(out, "<th{class}>{}</th>", escape(header));
    }
    out.push_str("</tr></thead><tbody>");
    for (r, row) in table.rows.iter().enumerate() {
        out.push_str("<tr>");
        for (k, cell) in row.iter().enumerate() {
            let class = if table.numeric.get(k) == Some(&true) {
                " class=\"n\""
            } else {
                ""
            };
            match table.links.get(&(r, k)) {
                Some(href) => {
                    let _ = write!(
                        out,
                        "<td{class}><a href=\"{}\">{}</a></td>",
                        escape(href),
                        escape(cell)
                    );
                }
                None => {
                    let _ = write!(out, "<td{class}>{}</td>", escape(cell));
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    if let Some(link) = csv_link {
        let _ = write!(
            out,
            "<a class=\"csv\" href=\"{}\">CSV</a>",
            escape(&link(table.id))
        );
    }
}

/// The table `id` of a page as CSV, with its header: exactly what the page
/// shows. `None` when the page has no such table.
pub fn csv(page: &Page, id: &str) -> Option<String> {
    let table = page.blocks.iter().find_map(|block| match block {
        Block::Chart { table, .. } | Block::Table(table) if table.id == id => Some(table),
        _ => None,
    })?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&table.headers).ok()?;
    for row in &table.rows {
        writer.write_record(row).ok()?;
    }
    String::from_utf8(writer.into_inner().ok()?).ok()
}

/// The sign-in page: one field, the API token.
pub fn sign_in(error: Option<&str>) -> String {
    let page = Page {
        title: "Sign in".into(),
        blocks: vec![Block::Html(format!(
            "<section><form method=\"post\" action=\"/sign-in\" class=\"filters\"><label>API token<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label><button type=\"submit\">Sign in</button></form>{}<p class=\"note\">The token is one of <code>serve</code>'s API tokens; a token scoped to some WABAs sees only theirs. It is kept in an HTTP-only cookie.</p></section>",
            error
                .map(|e| format!("<p class=\"note\" role=\"alert\">{}</p>", escape(e)))
                .unwrap_or_default()
        ))],
    };
    render(&page, None, None)
}

/// What the overview shows: one month, and optionally one market and one
/// business number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// `YYYY-MM` (default: the latest month with charges).
    pub month: Option<String>,
    /// A market (default: all).
    pub market: Option<String>,
    /// A business phone number id (default: all).
    pub business: Option<String>,
}

impl Filters {
    fn keeps(&self, row: &Row) -> bool {
        self.market
            .as_ref()
            .is_none_or(|m| row.market.as_ref() == Some(m))
            && self.business.as_ref().is_none_or(|b| &row.business == b)
    }
}

/// A budget as the overview shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetLine {
    /// Its name.
    pub name: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Currency.
    pub currency: String,
    /// The budget.
    pub amount: Decimal,
    /// Charged so far this month.
    pub spent: Decimal,
    /// Forecast to the month's end at the pace so far.
    pub forecast: Decimal,
}

/// The categories in a stable order (the charts' colours follow it).
const CATEGORIES: [&str; 8] = [
    "marketing",
    "marketing_lite",
    "utility",
    "authentication",
    "authentication_international",
    "service",
    "call",
    "meta_business_agent",
];

fn category_rank(category: &str) -> usize {
    CATEGORIES
        .iter()
        .position(|c| *c == category)
        .unwrap_or(CATEGORIES.len())
}

/// The overview: the month's money by day, stacked by category (one chart
/// per currency), the last months by category, budgets with their
/// forecasts, and the markets that cost most.
pub fn overview(rows: &[&Row], filters: &Filters, budgets: &[BudgetLine], form: &str) -> Page {
    // Months as values, not text: formatting one per row was a tenth of a
    // page on 72,000 charges.
    let months: BTreeSet<Month> = rows.iter().map(|r| Month::of(r.local_date)).collect();
    let month = filters
        .month
        .clone()
        .or_else(|| months.iter().next_back().map(Month::to_string))
        .unwrap_or_default();
    let chosen = Month::parse(&month);
    let kept: Vec<&Row> = rows.iter().copied().filter(|r| filters.keeps(r)).collect();
    let this_month: Vec<&Row> = kept
        .iter()
        .copied()
        .filter(|r| Some(Month::of(r.local_date)) == chosen)
        .collect();
    let mut page = Page {
        title: if month.is_empty() {
            "Overview".into()
        } else {
            format!("Overview, {month}")
        },
        blocks: vec![Block::Html(form.to_string())],
    };
    // Totals per currency, the headline.
    let mut totals: BTreeMap<&str, (Decimal, u64)> = BTreeMap::new();
    for row in &this_month {
        let total = totals.entry(&row.currency).or_default();
        total.0 += row.amount;
        total.1 += u64::from(row.billable);
    }
    page.blocks.push(Block::Figures(
        totals
            .iter()
            .map(|(currency, (amount, billable))| {
                (
                    format!("{month} · {billable} billable"),
                    format!("{} {currency}", money(*amount)),
                )
            })
            .collect(),
    ));
    // By day, stacked by category, per currency.
    let mut daily = Table::new(
        "daily",
        &["date", "currency", "category", "amount", "items"],
        &[false, false, false, true, true],
    );
    let mut by_day: BTreeMap<(&str, Date, &str), (Decimal, u64)> = BTreeMap::new();
    for row in &this_month {
        let slot = by_day
            .entry((&row.currency, row.local_date, &row.category))
            .or_default();
        slot.0 += row.amount;
        slot.1 += 1;
    }
    for ((currency, date, category), (amount, items)) in &by_day {
        daily.rows.push(vec![
            date.to_string(),
            currency.to_string(),
            category.to_string(),
            money(*amount),
            items.to_string(),
        ]);
    }
    for currency in totals.keys() {
        let mut days: BTreeMap<Date, Vec<(String, Decimal)>> = BTreeMap::new();
        if let Some(first) = month_start(&month) {
            let mut day = first;
            while day.month() == first.month() {
                days.insert(day, Vec::new());
                match day.tomorrow() {
                    Ok(next) => day = next,
                    Err(_) => break,
                }
            }
        }
        for ((c, date, category), (amount, _)) in &by_day {
            if c == currency {
                days.entry(*date)
                    .or_default()
                    .push((category.to_string(), *amount));
            }
        }
        let series: Vec<Series> = days
            .iter()
            .map(|(date, parts)| {
                let mut parts = parts.clone();
                parts.sort_by_key(|(category, _)| category_rank(category));
                Series {
                    label: format!("{:02}", date.day()),
                    title: date.to_string(),
                    parts,
                }
            })
            .collect();
        page.blocks
            .push(Block::Heading(format!("By day, {currency}")));
        page.blocks.push(Block::Chart {
            svg: stacked_bars(&series, currency, &CATEGORIES),
            table: Table {
                rows: daily
                    .rows
                    .iter()
                    .filter(|r| r[1] == **currency)
                    .cloned()
                    .collect(),
                ..daily.clone()
            },
        });
    }
    if totals.len() > 1 {
        // One CSV with every currency's days, beside the per-currency charts.
        page.blocks.push(Block::Table(daily));
    }
    // The last months.
    let mut by_month: BTreeMap<(Month, &str, &str), (Decimal, u64, u64)> = BTreeMap::new();
    for row in &kept {
        let slot = by_month
            .entry((Month::of(row.local_date), &row.currency, &row.category))
            .or_default();
        slot.0 += row.amount;
        slot.1 += 1;
        slot.2 += u64::from(row.billable);
    }
    let mut months_table = Table::new(
        "months",
        &[
            "month", "currency", "category", "items", "billable", "amount",
        ],
        &[false, false, false, true, true, true],
    );
    for ((m, currency, category), (amount, items, billable)) in by_month.iter().rev() {
        months_table.rows.push(vec![
            m.to_string(),
            currency.to_string(),
            category.to_string(),
            items.to_string(),
            billable.to_string(),
            money(*amount),
        ]);
    }
    page.blocks.push(Block::Heading("Month by month".into()));
    page.blocks.push(Block::Table(months_table));
    // Budgets.
    page.blocks.push(Block::Heading("Budgets".into()));
    let mut budget_table = Table::new(
        "budgets",
        &[
            "budget",
            "month",
            "currency",
            "amount",
            "spent",
            "forecast",
            "forecast / amount",
        ],
        &[false, false, false, true, true, true, true],
    );
    for b in budgets {
        let share = if b.amount.is_zero() {
            "-".to_string()
        } else {
            format!(
                "{} %",
                (b.forecast * Decimal::from(100) / b.amount)
                    .round_dp(1)
                    .normalize()
            )
        };
        budget_table.rows.push(vec![
            b.name.clone(),
            b.month.clone(),
            b.currency.clone(),
            money(b.amount),
            money(b.spent),
            money(b.forecast),
            share,
        ]);
    }
    page.blocks.push(Block::Table(budget_table));
    // What drives the month: markets and categories by cost.
    let mut drivers: BTreeMap<(&str, &str, &str), (Decimal, u64)> = BTreeMap::new();
    for row in &this_month {
        let market = row.market.as_deref().unwrap_or("-");
        let slot = drivers
            .entry((&row.currency, market, &row.category))
            .or_default();
        slot.0 += row.amount;
        slot.1 += 1;
    }
    let mut drivers: Vec<_> = drivers.into_iter().collect();
    drivers.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let mut top = Table::new(
        "top",
        &["market", "category", "currency", "items", "amount"],
        &[false, false, false, true, true],
    );
    for ((currency, market, category), (amount, items)) in drivers.into_iter().take(15) {
        top.rows.push(vec![
            market.to_string(),
            category.to_string(),
            currency.to_string(),
            items.to_string(),
            money(amount),
        ]);
    }
    page.blocks
        .push(Block::Heading(format!("What cost most in {month}")));
    page.blocks.push(Block::Table(top));
    // The templates that cost most.
    let mut templates: BTreeMap<(&str, &str, &str), (Decimal, u64)> = BTreeMap::new();
    for row in &this_month {
        if let Some(template) = &row.template {
            let slot = templates
                .entry((&row.currency, template, &row.category))
                .or_default();
            slot.0 += row.amount;
            slot.1 += 1;
        }
    }
    let mut templates: Vec<_> = templates.into_iter().collect();
    templates.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let mut top = Table::new(
        "templates",
        &["template", "category", "currency", "messages", "amount"],
        &[false, false, false, true, true],
    );
    for ((currency, template, category), (amount, messages)) in templates.into_iter().take(15) {
        top.rows.push(vec![
            template.to_string(),
            category.to_string(),
            currency.to_string(),
            messages.to_string(),
            money(amount),
        ]);
    }
    page.blocks.push(Block::Heading(format!(
        "Templates that cost most in {month}"
    )));
    page.blocks.push(Block::Table(top));
    page
}

fn month_start(month: &str) -> Option<Date> {
    let (year, month) = month.split_once('-')?;
    Date::new(year.parse().ok()?, month.parse().ok()?, 1).ok()
}

/// Meta's free service messages per business number and month from
/// 2026-10-01 (docs/rules.md §7).
pub const ALLOWANCE: u64 = 1000;

/// The 2026-10 free service allowance: per business number and month, the
/// service messages it counted (1:1, outside free entry points; groups are
/// not metered), how many were free, how many were charged, and what is
/// left.
pub fn allowance(rows: &[&Row], month: Option<&str>) -> Page {
    let chosen = month.map(Month::parse);
    let mut used: BTreeMap<(Month, &str), (u64, u64, u64)> = BTreeMap::new();
    for row in rows.iter().filter(|r| {
        // Deliveries the allowance counted: free in it, or charged past it
        // (not those inside a free entry point).
        r.kind == Kind::Message
            && r.category == "service"
            && r.ruleset == "pmp-2026-10"
            && matches!(
                r.pricing_type.as_deref(),
                Some("free_customer_service" | "regular")
            )
            && chosen.is_none_or(|m| m == Some(Month::of(r.local_date)))
    }) {
        let slot = used
            .entry((Month::of(row.local_date), &row.business))
            .or_default();
        slot.0 += 1;
        slot.1 += u64::from(!row.billable);
        slot.2 += u64::from(row.billable);
    }
    let mut table = Table::new(
        "allowance",
        &[
            "month",
            "business",
            "service delivered",
            "free",
            "charged",
            "left",
        ],
        &[false, false, true, true, true, true],
    );
    for ((m, business), (delivered, free, charged)) in used.iter().rev() {
        table.rows.push(vec![
            m.to_string(),
            business.to_string(),
            delivered.to_string(),
            free.to_string(),
            charged.to_string(),
            ALLOWANCE.saturating_sub(*delivered).to_string(),
        ]);
    }
    Page {
        title: "Free service allowance".into(),
        blocks: vec![
            Block::Text(format!(
                "From 2026-10-01 each business number's first {ALLOWANCE} service messages of a month are free (the month in the time zone of the account billing them); later ones are charged at the market's utility rate. Group deliveries also use it; wameter does not meter groups yet (docs/rules.md §17)."
            )),
            Block::Table(table),
        ],
    }
}

/// Calls: per month, market and band, the calls, billed minutes and cost.
pub fn calls(rows: &[&Row]) -> Page {
    let mut by: BTreeMap<(Month, &str, &str, &str), (u64, u64, u64, Decimal)> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.kind == Kind::Call) {
        let market = row.market.as_deref().unwrap_or("-");
        let band = row.tier.as_deref().unwrap_or("-");
        let slot = by
            .entry((Month::of(row.local_date), &row.currency, market, band))
            .or_default();
        slot.0 += 1;
        slot.1 += u64::from(row.billable);
        slot.2 += if row.billable { row.quantity } else { 0 };
        slot.3 += row.amount;
    }
    let mut table = Table::new(
        "calls",
        &[
            "month",
            "currency",
            "market",
            "band (minutes)",
            "calls",
            "billed",
            "billed minutes",
            "amount",
        ],
        &[false, false, false, false, true, true, true, true],
    );
    for ((month, currency, market, band), (calls, billed, pulses, amount)) in by.iter().rev() {
        let minutes = Decimal::from(*pulses) / Decimal::from(10);
        table.rows.push(vec![
            month.to_string(),
            currency.to_string(),
            market.to_string(),
            band.to_string(),
            calls.to_string(),
            billed.to_string(),
            money(minutes),
            money(*amount),
        ]);
    }
    Page {
        title: "Calls".into(),
        blocks: vec![
            Block::Text("Business-initiated calls that connected, billed in 6-second pulses by the callee's market and the portfolio's minute band of the month (docs/rules.md §14). Billed minutes are pulses / 10.".into()),
            Block::Table(table),
        ],
    }
}

/// The self-contained report of `replay --html`: the overview of the
/// latest month (or `month`), then the allowance and calls — one HTML file
/// with no link to anything, to attach to an e-mail or an invoice query.
pub fn report(rows: &[Row], month: Option<&str>) -> String {
    let rows: Vec<&Row> = rows.iter().collect();
    let rows = rows.as_slice();
    let filters = Filters {
        month: month.map(str::to_string),
        ..Filters::default()
    };
    let mut page = overview(rows, &filters, &[], "");
    page.title = format!(
        "wameter report: {}",
        page.title.trim_start_matches("Overview, ")
    );
    // No budgets in a replay: drop their empty section.
    if let Some(at) = page
        .blocks
        .iter()
        .position(|b| *b == Block::Heading("Budgets".into()))
    {
        page.blocks.drain(at..at + 2);
    }
    for extra in [allowance(rows, None), calls(rows)] {
        let has_rows = extra
            .blocks
            .iter()
            .any(|b| matches!(b, Block::Table(t) if !t.rows.is_empty()));
        if has_rows {
            page.blocks.push(Block::Heading(extra.title));
            page.blocks.extend(extra.blocks);
        }
    }
    page.blocks.push(Block::Text(
        "Made by wameter replay from the log given; every amount is exact, priced by the rules in force at each delivery (docs/rules.md).".into(),
    ));
    render(&page, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, pricing_type: &str, billable: bool, amount: &str) -> Row {
        Row {
            kind: Kind::Message,
            id: id.into(),
            business: "B".into(),
            messaging_account: None,
            user: "+5511999990000".into(),
            at: "2026-10-05T12:00:00Z".parse().unwrap(),
            local_date: jiff::civil::date(2026, 10, 5),
            pricing_model: Some("PMP".into()),
            category: "service".into(),
            pricing_type: Some(pricing_type.into()),
            direction: None,
            billable,
            market: Some("Brazil".into()),
            currency: "USD".into(),
            amount: amount.parse().unwrap(),
            quantity: 1,
            tier: None,
            ruleset: "pmp-2026-10".into(),
            rule: "r".into(),
            reason: String::new(),
            template: None,
        }
    }

    /// Deliveries inside a free entry point do not use the allowance.
    #[test]
    fn the_allowance_counts_what_it_counted_and_its_csv_is_its_table() {
        let rows = [
            row("a", "free_customer_service", false, "0"),
            row("b", "free_customer_service", false, "0"),
            row("c", "regular", true, "0.0068"),
            row("d", "free_entry_point", false, "0"),
        ];
        let page = allowance(&rows.iter().collect::<Vec<_>>(), Some("2026-10"));
        assert_eq!(
            csv(&page, "allowance").unwrap(),
            "month,business,service delivered,free,charged,left\n2026-10,B,3,2,1,997\n"
        );
        assert_eq!(csv(&page, "nothing"), None);
    }

    #[test]
    fn the_overview_headline_is_the_months_sum_and_text_is_escaped() {
        let rows = [
            row("a", "regular", true, "0.0068"),
            row("b", "regular", true, "0.0032"),
        ];
        let page = overview(
            &rows.iter().collect::<Vec<_>>(),
            &Filters::default(),
            &[],
            "",
        );
        assert!(page.blocks.contains(&Block::Figures(vec![(
            "2026-10 · 2 billable".into(),
            "0.01 USD".into()
        )])));
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
