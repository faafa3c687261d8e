//! `wameter invoice --client C --month M`: what a client owes for a month —
//! Meta's charges for its WABAs' messages, replayed from the logs, with the
//! client's markup rules applied — as CSV or JSON.
//!
//! Lines group messages by pricing category and market. Every amount is
//! exact (no rounding): the markup of a 0.0068 message at 15 % is 0.00102.
//! The month is the client's businesses' local calendar month, as Meta's
//! invoices use.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use jiff::tz::TimeZone;
use serde::Serialize;
use wameter_core::account::Accounts;
use wameter_core::billing::{Client, ClientCost, LocalMonth};
use wameter_core::charge::Charge;
use wameter_core::money::format_amount;
use wameter_core::settlement::Month;

use crate::input::EngineArgs;

/// Options of `wameter invoice`.
#[derive(clap::Args, Debug)]
pub struct InvoiceArgs {
    /// Event logs: canonical events and Meta webhook bodies (what `serve` exports at GET /v1/events, too).
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// The client, as named by a [[client]] of the accounts file.
    #[arg(long, value_name = "NAME")]
    pub client: String,
    /// The month, YYYY-MM, in the client's businesses' time zone.
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// How the invoice is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One row per category and market, then a total row.
    Csv,
    /// One JSON document.
    Json,
    /// The CSV's rows as a typed Parquet file (docs/interfaces.md, "Exports").
    Parquet,
}

/// One line of an invoice.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    /// Pricing category.
    pub category: String,
    /// Meta market.
    pub market: String,
    /// Messages delivered.
    pub messages: u64,
    /// Of which billable.
    pub billable: u64,
    /// Meta's charges.
    pub meta_cost: String,
    /// Percentage markup.
    pub markup: String,
    /// Fixed fees.
    pub fees: String,
    /// What the client pays.
    pub client_cost: String,
}

/// A client's month.
#[derive(Serialize, Debug)]
pub struct Invoice {
    /// Client name.
    pub client: String,
    /// Its WABAs.
    pub wabas: Vec<String>,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's time zone.
    pub timezone: String,
    /// Billing currency.
    pub currency: String,
    /// By category and market.
    pub lines: Vec<InvoiceLine>,
    /// Sums of the lines.
    pub total: InvoiceLine,
}

/// The time zone of a client's businesses (they must share one; unlisted
/// WABAs bill in UTC).
pub fn client_timezone(accounts: &Accounts, client: &Client) -> Result<TimeZone> {
    let zones: Vec<(String, TimeZone)> = accounts
        .businesses()
        .filter(|b| client.wabas.contains(&b.waba))
        .map(|b| (b.timezone_name().to_string(), b.timezone.clone()))
        .collect();
    match zones.split_first() {
        None => Ok(TimeZone::UTC),
        Some((first, rest)) => {
            if let Some(other) = rest.iter().find(|z| z.0 != first.0) {
                bail!(
                    "client {}'s businesses are in {} and {}: a client's month needs one time zone",
                    client.name,
                    first.0,
                    other.0
                );
            }
            Ok(first.1.clone())
        }
    }
}

/// The invoice of one client for one month, from replayed charges.
pub fn invoice(
    charges: &[Charge],
    accounts: &Accounts,
    client: &Client,
    month: &LocalMonth,
    timezone: &TimeZone,
) -> Result<Invoice> {
    let mut by_line: BTreeMap<(&str, String), (u64, u64, ClientCost)> = BTreeMap::new();
    let mut currency = None;
    for charge in charges {
        // A client is its Messaging accounts: a charge billed through
        // another account of a shared number is not its.
        let waba = &accounts
            .payer(&charge.business, charge.messaging_account.as_deref())
            .waba;
        if !client.wabas.contains(waba)
            || charge.delivered_at < month.start
            || charge.delivered_at >= month.end
        {
            continue;
        }
        match currency {
            None => currency = Some(charge.currency),
            Some(seen) if seen != charge.currency => bail!(
                "client {} is billed in {} and {}: one invoice needs one currency",
                client.name,
                seen.code(),
                charge.currency.code()
            ),
            Some(_) => {}
        }
        let line = by_line
            .entry((charge.category.as_str(), charge.market.to_string()))
            .or_default();
        line.0 += 1;
        line.1 += u64::from(charge.billable);
        line.2 += client.cost(charge.category, charge.billable, charge.amount);
    }
    let render = |category: &str, market: &str, messages: u64, billable: u64, cost: &ClientCost| {
        InvoiceLine {
            category: category.into(),
            market: market.into(),
            messages,
            billable,
            meta_cost: format_amount(cost.meta),
            markup: format_amount(cost.markup),
            fees: format_amount(cost.fee),
            client_cost: format_amount(cost.total),
        }
    };
    let mut total = (0, 0, ClientCost::default());
    let lines = by_line
        .iter()
        .map(|((category, market), (messages, billable, cost))| {
            total.0 += messages;
            total.1 += billable;
            total.2 += *cost;
            render(category, market, *messages, *billable, cost)
        })
        .collect();
    Ok(Invoice {
        client: client.name.to_string(),
        wabas: client.wabas.iter().map(|w| w.to_string()).collect(),
        month: month.label(),
        timezone: timezone.iana_name().unwrap_or("UTC").to_string(),
        currency: currency.map_or_else(
            || accounts_currency(accounts, client),
            |c| c.code().to_string(),
        ),
        lines,
        total: render("total", "", total.0, total.1, &total.2),
    })
}

/// Every client's invoice for every month its WABAs had deliveries in:
/// the client-facing cost beside Meta's, for the `replay` report. A client
/// that cannot be invoiced (businesses in two time zones or currencies)
/// gets its reason instead.
pub fn every_client_month(
    charges: &[Charge],
    accounts: &Accounts,
    billing: &wameter_core::billing::Billing,
) -> Vec<Result<Invoice, String>> {
    let mut out = Vec::new();
    for client in &billing.clients {
        let timezone = match client_timezone(accounts, client) {
            Ok(zone) => zone,
            Err(error) => {
                out.push(Err(error.to_string()));
                continue;
            }
        };
        let mut months: Vec<LocalMonth> = Vec::new();
        for charge in charges.iter().filter(|c| {
            client.wabas.contains(
                &accounts
                    .payer(&c.business, c.messaging_account.as_deref())
                    .waba,
            )
        }) {
            let month = LocalMonth::of(charge.delivered_at, &timezone);
            if !months.contains(&month) {
                months.push(month);
            }
        }
        months.sort_by_key(|m| m.start);
        out.extend(months.iter().map(|month| {
            invoice(charges, accounts, client, month, &timezone).map_err(|e| e.to_string())
        }));
    }
    out
}

fn accounts_currency(accounts: &Accounts, client: &Client) -> String {
    accounts
        .businesses()
        .find(|b| client.wabas.contains(&b.waba))
        .map_or("USD", |b| b.currency.code())
        .to_string()
}

/// Runs `wameter invoice`.
pub fn run(args: InvoiceArgs) -> Result<ExitCode> {
    let what_if = args.engine.what_if();
    if what_if.ruleset.is_some() || what_if.rates_on.is_some() {
        bail!(
            "--as-ruleset and --rates-on are for what-if replays; an invoice prices as Meta does"
        );
    }
    let Some(month) = Month::parse(&args.month) else {
        bail!("--month {}: expected YYYY-MM", args.month)
    };
    let (loaded, report, setup, _) = crate::run_replay(&args.logs, &args.engine, None, true)?;
    crate::report_malformed(&loaded);
    if crate::print_pricing_errors(&loaded, &report) {
        return Ok(ExitCode::from(1));
    }
    let Some(client) = setup.billing.client(&args.client) else {
        let known: Vec<&str> = setup.billing.clients.iter().map(|c| &*c.name).collect();
        if known.is_empty() {
            bail!(
                "no client `{}`: the accounts file (--accounts) has no [[client]]",
                args.client
            );
        }
        bail!(
            "no client `{}` in the accounts file (clients: {})",
            args.client,
            known.join(", ")
        );
    };
    let timezone = client_timezone(&setup.pricing.accounts, client)?;
    let month = LocalMonth::in_zone(month, &timezone);
    let invoice = invoice(
        &report.charges,
        &setup.pricing.accounts,
        client,
        &month,
        &timezone,
    )?;
    let to = args.output.as_deref();
    let mut out = crate::output::open(to, args.format == Format::Parquet)?;
    let table = crate::tables::InvoiceTable(&invoice);
    match args.format {
        Format::Csv => crate::output::export(&mut out, to, crate::output::Format::Csv, &table)?,
        Format::Parquet => {
            crate::output::export(&mut out, to, crate::output::Format::Parquet, &table)?
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &invoice)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
