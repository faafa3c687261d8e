//! `wameter diff A.json B.json`: two `replay --json` documents compared by
//! month × category × market — typically a replay as Meta priced it against a
//! what-if (`--as-ruleset`, `--rates`), or two months' cards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use rust_decimal::Decimal;
use serde::Deserialize;
use wameter_core::money::format_amount;

use crate::output::table;

#[derive(Deserialize)]
struct Document {
    charges: Vec<ChargeIn>,
}

#[derive(Deserialize)]
struct ChargeIn {
    delivered_at: String,
    #[serde(default)]
    local_date: Option<String>,
    category: String,
    market: String,
    currency: String,
    amount: String,
    billable: bool,
}

/// (month, currency, category, market).
type Key = (String, String, String, String);

#[derive(Default, Clone, Copy)]
struct Side {
    amount: Decimal,
    billable: u64,
}

fn read(path: &Path) -> Result<(BTreeMap<Key, Side>, bool)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let document: Document = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a `wameter replay --json` document", path.display()))?;
    let mut lines: BTreeMap<Key, Side> = BTreeMap::new();
    let mut utc_months = false;
    for (index, charge) in document.charges.iter().enumerate() {
        // Older documents lack `local_date`; their month is the UTC one.
        let date = match &charge.local_date {
            Some(date) => date.as_str(),
            None => {
                utc_months = true;
                charge.delivered_at.as_str()
            }
        };
        let month = date.get(..7).with_context(|| {
            format!(
                "{}: charge {}: bad date `{date}`",
                path.display(),
                index + 1
            )
        })?;
        let amount: Decimal = charge.amount.parse().with_context(|| {
            format!(
                "{}: charge {}: field `amount`: `{}` is not a decimal",
                path.display(),
                index + 1,
                charge.amount
            )
        })?;
        let side = lines
            .entry((
                month.to_string(),
                charge.currency.clone(),
                charge.category.clone(),
                charge.market.clone(),
            ))
            .or_default();
        side.amount += amount;
        side.billable += u64::from(charge.billable);
    }
    Ok((lines, utc_months))
}

/// `(b − a) / a` as a percentage with two decimals; `None` when `a` is 0.
fn relative(a: Decimal, b: Decimal) -> Option<Decimal> {
    (!a.is_zero()).then(|| ((b - a) / a * Decimal::ONE_HUNDRED).round_dp(2))
}

fn relative_text(a: Decimal, b: Decimal) -> String {
    match relative(a, b) {
        Some(change) if change > Decimal::ZERO => format!("+{}%", change.normalize()),
        Some(change) => format!("{}%", change.normalize()),
        None if b.is_zero() => "—".to_string(),
        None => "new".to_string(),
    }
}

fn signed(amount: Decimal) -> String {
    if amount > Decimal::ZERO {
        format!("+{}", format_amount(amount))
    } else {
        format_amount(amount)
    }
}

/// `wameter diff`.
pub fn run(a: &Path, b: &Path, json: bool) -> Result<ExitCode> {
    let (left, left_utc) = read(a)?;
    let (right, right_utc) = read(b)?;
    let keys: BTreeSet<&Key> = left.keys().chain(right.keys()).collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut totals: BTreeMap<&str, (Decimal, Decimal)> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for key in keys {
        let l = left.get(key).copied().unwrap_or_default();
        let r = right.get(key).copied().unwrap_or_default();
        let total = totals.entry(&key.1).or_default();
        total.0 += l.amount;
        total.1 += r.amount;
        let (month, currency, category, market) = key;
        rows.push(vec![
            month.clone(),
            category.clone(),
            market.clone(),
            format!("{} ({})", format_amount(l.amount), l.billable),
            format!("{} ({})", format_amount(r.amount), r.billable),
            signed(r.amount - l.amount),
            relative_text(l.amount, r.amount),
            currency.clone(),
        ]);
        lines.push(serde_json::json!({
            "month": month, "category": category, "market": market, "currency": currency,
            "a": { "amount": format_amount(l.amount), "billable": l.billable },
            "b": { "amount": format_amount(r.amount), "billable": r.billable },
            "change": format_amount(r.amount - l.amount),
            "relative_change_percent": relative(l.amount, r.amount).map(|p| p.normalize().to_string()),
        }));
    }
    if json {
        let totals: Vec<serde_json::Value> = totals
            .iter()
            .map(|(currency, (l, r))| {
                serde_json::json!({
                    "currency": currency, "a": format_amount(*l), "b": format_amount(*r),
                    "change": format_amount(*r - *l),
                    "relative_change_percent": relative(*l, *r).map(|p| p.normalize().to_string()),
                })
            })
            .collect();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "a": a.display().to_string(), "b": b.display().to_string(), "lines": lines, "totals": totals,
            }),
        )?;
        writeln!(out)?;
    } else {
        if rows.is_empty() {
            bail!("neither document has charges");
        }
        writeln!(out, "A = {}\nB = {}\n", a.display(), b.display())?;
        table(
            &mut out,
            &[
                "Month",
                "Category",
                "Market",
                "A (billable)",
                "B (billable)",
                "Change",
                "Relative",
                "Currency",
            ],
            &rows,
            &[false, false, false, true, true, true, true, false],
        )?;
        writeln!(out)?;
        for (currency, (l, r)) in &totals {
            writeln!(
                out,
                "Total {currency}: A {} → B {}, change {} ({})",
                format_amount(*l),
                format_amount(*r),
                signed(*r - *l),
                relative_text(*l, *r)
            )?;
        }
        if left_utc || right_utc {
            writeln!(
                out,
                "note: a document without `local_date` is grouped by UTC month"
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
