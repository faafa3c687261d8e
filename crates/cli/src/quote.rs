//! `wameter quote`: what a campaign will cost before it is sent.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::Serialize;
use wameter_core::event::UserId;
use wameter_core::market::MarketTable;
use wameter_core::money::{Currency, format_amount};
use wameter_core::quote::{
    MonthToDateInput, Quote, QuoteCategory, QuoteRequest, Recipients, quote,
};

use crate::input::PricingArgs;
use crate::output::table;

/// Arguments of `wameter quote`.
#[derive(clap::Args, Debug)]
pub struct QuoteArgs {
    /// What is sent: marketing, utility, authentication (templates) or service (free-form).
    #[arg(long, value_parser = parse_category, required_unless_present = "call_minutes")]
    category: Option<QuoteCategory>,
    /// A calling campaign instead: business-initiated minutes per market, `MARKET=MINUTES`
    /// (repeatable, or comma-separated). `--month-to-date MARKET=N` then counts billed minutes.
    #[arg(
        long = "call-minutes",
        value_name = "MARKET=MINUTES",
        value_delimiter = ',',
        conflicts_with = "category"
    )]
    call_minutes: Vec<String>,
    /// Length of each call of a calling campaign, in seconds (the last call takes the rest).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    call_seconds: u32,
    /// Recipients per market, `MARKET=COUNT` (repeatable, or comma-separated): `--recipients India=1000,Brazil=500`.
    #[arg(
        long = "recipients",
        value_name = "MARKET=COUNT",
        value_delimiter = ','
    )]
    recipients: Vec<String>,
    /// A CSV of recipients' phone numbers (first column, or a column named phone, number, wa_id or to).
    #[arg(long, value_name = "FILE", conflicts_with = "recipients")]
    numbers: Option<PathBuf>,
    /// Send date, in the business's time zone (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<Date>,
    /// Share of recipients inside an open customer service window: `0.3` or `30%`.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    in_window: Decimal,
    /// Business phone number id from the accounts file (time zone, currency, portfolio).
    #[arg(long, value_name = "ID")]
    business: Option<String>,
    /// Billing currency, overriding the accounts file.
    #[arg(long, value_name = "CODE")]
    currency: Option<String>,
    /// IANA time zone, overriding the accounts file.
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Messages already charged this month before the campaign: `N` for every market,
    /// `MARKET=N` for one (repeatable). Counts towards volume tiers, the CBP free tier and
    /// the 2026-10 service allowance.
    #[arg(long = "month-to-date", value_name = "N|MARKET=N")]
    month_to_date: Vec<String>,
    #[command(flatten)]
    engine: PricingArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_category(text: &str) -> Result<QuoteCategory, String> {
    QuoteCategory::parse(text)
        .ok_or_else(|| "expected marketing, utility, authentication or service".into())
}

fn parse_share(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent.trim(), Decimal::ONE_HUNDRED),
        None => (text, Decimal::ONE),
    };
    let share = number
        .parse::<Decimal>()
        .map_err(|_| format!("`{text}` is not a share such as 0.3 or 30%"))?
        / scale;
    if share < Decimal::ZERO || share > Decimal::ONE {
        return Err(format!("`{text}` is not between 0 and 1 (0% and 100%)"));
    }
    Ok(share)
}

fn parse_pair(text: &str, what: &str) -> Result<(String, u64)> {
    let Some((market, count)) = text.rsplit_once('=') else {
        bail!("`{text}`: expected MARKET={what}")
    };
    let count = count
        .trim()
        .replace(['_', ','], "")
        .parse::<u64>()
        .with_context(|| format!("`{text}`: {what} must be a whole number"))?;
    Ok((market.trim().to_string(), count))
}

/// Reads phone numbers from a CSV; errors name the line.
fn read_numbers(path: &PathBuf) -> Result<Vec<UserId>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut users = Vec::new();
    let mut column = 0;
    for (index, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: not valid CSV", path.display()))?;
        let line = record.position().map_or(index as u64 + 1, |p| p.line());
        if index == 0 {
            let header = record.iter().position(|c| {
                ["phone", "number", "wa_id", "to", "msisdn"]
                    .contains(&c.to_ascii_lowercase().as_str())
            });
            if let Some(found) = header {
                column = found;
                continue;
            }
        }
        let cell = record.get(column).unwrap_or("");
        if cell.is_empty() {
            continue;
        }
        let user =
            UserId::parse(cell).map_err(|e| anyhow::anyhow!("{}:{line}: {e}", path.display()))?;
        users.push(user);
    }
    if users.is_empty() {
        bail!("{}: no phone numbers found", path.display());
    }
    Ok(users)
}

#[derive(Serialize)]
struct BandJson {
    tier: Option<String>,
    rate: String,
    messages: u64,
    amount: String,
}

#[derive(Serialize)]
struct MarketJson {
    market: String,
    recipients: u64,
    in_window: u64,
    not_sendable: u64,
    charged: u64,
    free: std::collections::BTreeMap<&'static str, u64>,
    month_to_date: u64,
    amount: String,
    bands: Vec<BandJson>,
    rules: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct QuoteJson<'a> {
    business: &'a str,
    category: &'static str,
    date: String,
    ruleset: &'static str,
    rules_status: &'static str,
    currency: String,
    rate_card: Option<&'a str>,
    in_window: String,
    markets: Vec<MarketJson>,
    total: String,
    warnings: Vec<serde_json::Value>,
}

/// `wameter quote`.
pub fn run(args: QuoteArgs) -> Result<ExitCode> {
    let mut setup = args.engine.setup()?;
    let business_id = match &args.business {
        Some(id) => id.clone(),
        None => {
            let mut listed = setup.pricing.accounts.businesses();
            match (listed.next(), listed.next()) {
                (Some(only), None) => only.phone_number_id.to_string(),
                (Some(_), Some(_)) => {
                    bail!("the accounts file lists several businesses: say which with --business")
                }
                (None, _) => "quote".to_string(),
            }
        }
    };
    let mut business = (*setup.pricing.accounts.get_or_default(&business_id)).clone();
    if let Some(code) = &args.currency {
        business.currency =
            Currency::parse(code).with_context(|| format!("unknown currency `{code}`"))?;
    }
    if let Some(zone) = &args.timezone {
        business.timezone = jiff::tz::TimeZone::get(zone)
            .with_context(|| format!("unknown IANA time zone `{zone}`"))?;
    }
    let date = args
        .date
        .unwrap_or_else(|| business.timezone.to_datetime(jiff::Timestamp::now()).date());
    setup.pricing.accounts.insert(business.clone());
    let Some(category) = args.category else {
        return call_quote(&args, &setup, &business, date);
    };

    let recipients = match &args.numbers {
        Some(path) => Recipients::Users(read_numbers(path)?),
        None if args.recipients.is_empty() => {
            bail!("say who receives the campaign: --recipients MARKET=COUNT or --numbers FILE")
        }
        None => Recipients::ByMarket(
            args.recipients
                .iter()
                .map(|r| parse_pair(r, "COUNT"))
                .collect::<Result<_>>()?,
        ),
    };
    let mut month_to_date = MonthToDateInput::default();
    for item in &args.month_to_date {
        if item.contains('=') {
            let (market, count) = parse_pair(item, "N")?;
            month_to_date.by_market.insert(market, count);
        } else {
            month_to_date.all = item
                .trim()
                .parse()
                .with_context(|| format!("--month-to-date `{item}`: expected N or MARKET=N"))?;
        }
    }
    let request = QuoteRequest {
        business: business_id.clone(),
        category,
        date,
        recipients,
        in_window: args.in_window,
        month_to_date,
    };
    let mut engine = setup.pricing.engine();
    engine.what_if = args.engine.what_if();
    let quote = quote(&engine, &request)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        write_json(&mut out, &quote, &request)?;
    } else {
        write_table(&mut out, &quote, &request, &business)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `wameter quote --call-minutes …`: a calling campaign
/// ([`wameter_core::rules::calling::quote`]).
fn call_quote(
    args: &QuoteArgs,
    setup: &crate::input::Setup,
    business: &wameter_core::account::Business,
    date: Date,
) -> Result<ExitCode> {
    let minutes: Vec<(String, u64)> = args
        .call_minutes
        .iter()
        .map(|m| parse_pair(m, "MINUTES"))
        .collect::<Result<_>>()?;
    let mut to_date = std::collections::BTreeMap::new();
    for item in &args.month_to_date {
        let (market, count) = parse_pair(item, "MINUTES")
            .with_context(|| "a calling quote counts minutes to date per market")?;
        to_date.insert(market, count);
    }
    let lines = wameter_core::rules::calling::quote(
        business,
        &setup.pricing.accounts,
        &setup.pricing.call_rates,
        MarketTable::builtin(),
        date,
        &minutes,
        &to_date,
        args.call_seconds,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let total: Decimal = lines.iter().map(|l| l.amount).sum();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let document = serde_json::json!({
            "business": &*business.phone_number_id,
            "category": "call",
            "date": date.to_string(),
            "ruleset": wameter_core::rules::calling::RULESET,
            "currency": business.currency.code(),
            "call_seconds": args.call_seconds,
            "markets": lines.iter().map(|l| serde_json::json!({
                "market": l.market,
                "minutes": l.minutes,
                "calls": l.calls,
                "month_to_date_minutes": l.month_to_date,
                "amount": format_amount(l.amount),
                "bands": l.bands.iter().map(|(tier, rate, calls, amount)| serde_json::json!({"tier": tier, "rate_per_minute": format_amount(*rate), "calls": calls, "amount": format_amount(*amount)})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "total": format_amount(total),
        });
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "Quote: business-initiated calls of {} s on {date} ({}, {}); docs/rules.md §14",
            args.call_seconds, business.phone_number_id, business.currency
        )?;
        let rows: Vec<Vec<String>> = lines
            .iter()
            .flat_map(|l| {
                l.bands.iter().map(move |(tier, rate, calls, amount)| {
                    vec![
                        l.market.clone(),
                        l.minutes.to_string(),
                        l.month_to_date.to_string(),
                        tier.clone(),
                        format_amount(*rate),
                        calls.to_string(),
                        format!("{} {}", format_amount(*amount), business.currency),
                    ]
                })
            })
            .collect();
        table(
            &mut out,
            &[
                "Market", "Minutes", "To date", "Band", "Rate/min", "Calls", "Amount",
            ],
            &rows,
            &[false, true, true, false, true, true, true],
        )?;
        writeln!(out, "Total {} {}", format_amount(total), business.currency)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_json(out: &mut impl Write, quote: &Quote, request: &QuoteRequest) -> Result<()> {
    let document = QuoteJson {
        business: &request.business,
        category: request.category.as_str(),
        date: quote.date.to_string(),
        ruleset: quote.ruleset.id(),
        rules_status: quote.ruleset.status(),
        currency: quote.currency.to_string(),
        rate_card: quote.rate_card.as_deref(),
        in_window: request.in_window.normalize().to_string(),
        markets: quote
            .markets
            .iter()
            .map(|m| MarketJson {
                market: m.market.to_string(),
                recipients: m.recipients,
                in_window: m.in_window,
                not_sendable: m.not_sendable,
                charged: m.charged,
                free: m.free.clone(),
                month_to_date: m.month_to_date,
                amount: format_amount(m.amount),
                bands: m
                    .bands
                    .iter()
                    .map(|b| BandJson {
                        tier: b.tier.clone(),
                        rate: format_amount(b.rate),
                        messages: b.messages,
                        amount: format_amount(b.amount),
                    })
                    .collect(),
                rules: m.rules.clone(),
            })
            .collect(),
        total: format_amount(quote.total),
        warnings: quote
            .warnings
            .iter()
            .map(|w| serde_json::json!({ "code": w.code, "message": w.message }))
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)?;
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    quote: &Quote,
    request: &QuoteRequest,
    business: &wameter_core::account::Business,
) -> Result<()> {
    let status = match quote.ruleset.status() {
        "confirmed" => {
            " (confirmed on Meta's pages; the service allowance's reset time zone is Meta's open point: counted in the business's)"
        }
        _ => "",
    };
    writeln!(
        out,
        "Quote: {} messages on {} under {}{status}",
        request.category.as_str(),
        quote.date,
        quote.ruleset
    )?;
    writeln!(
        out,
        "Business {} (portfolio {}, {}, {}); {}% of recipients inside an open window",
        request.business,
        business.portfolio,
        business.timezone_name(),
        quote.currency,
        (request.in_window * Decimal::ONE_HUNDRED).normalize()
    )?;
    if let Some(card) = &quote.rate_card {
        writeln!(out, "Rate card {card}")?;
    }
    writeln!(out)?;
    let mut rows = Vec::new();
    for market in &quote.markets {
        let free: u64 = market.free.values().sum();
        rows.push(vec![
            market.market.to_string(),
            market.recipients.to_string(),
            market.in_window.to_string(),
            market.not_sendable.to_string(),
            market.charged.to_string(),
            free.to_string(),
            format_amount(market.amount),
        ]);
        for band in &market.bands {
            let tier = match &band.tier {
                Some(tier) => format!("volume tier {tier}"),
                None => "list rate".to_string(),
            };
            rows.push(vec![
                format!(
                    "  {} at {} ({tier})",
                    band.messages,
                    format_amount(band.rate)
                ),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format_amount(band.amount),
            ]);
        }
        if market.month_to_date > 0 {
            rows.push(vec![
                format!("  after {} this month", market.month_to_date),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let currency = quote.currency.to_string();
    let amount_header = format!("Amount ({currency})");
    table(
        out,
        &[
            "Market",
            "Recipients",
            "In window",
            "Not sendable",
            "Charged",
            "Free",
            &amount_header,
        ],
        &rows,
        &[false, true, true, true, true, true, true],
    )?;
    writeln!(out, "\nTotal {} {currency}", format_amount(quote.total))?;
    let not_sendable: u64 = quote.markets.iter().map(|m| m.not_sendable).sum();
    if not_sendable > 0 {
        writeln!(
            out,
            "{not_sendable} recipient(s) outside the window cannot receive a free-form message (Meta refuses it; send a template)."
        )?;
    }
    for warning in &quote.warnings {
        if warning.code == "note" {
            continue;
        }
        writeln!(out, "warning: {}", warning.message)?;
    }
    Ok(())
}
