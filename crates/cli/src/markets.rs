//! `wameter markets …`: which of Meta's markets a number belongs to, and
//! what each market contains, on a date.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use jiff::civil::Date;
use serde::Serialize;
use wameter_core::event::UserId;
use wameter_core::market::MarketTable;

use crate::output::table;

#[derive(Serialize)]
struct LookupJson {
    input: String,
    user: String,
    date: String,
    market: String,
    country: Option<String>,
    rule: String,
}

/// `wameter markets lookup NUMBER|BSUID…`.
pub fn lookup(inputs: &[String], on: Date, json: bool) -> Result<ExitCode> {
    let table = MarketTable::builtin();
    let mut out = std::io::stdout().lock();
    let mut found = Vec::new();
    let mut failed = false;
    for input in inputs {
        match UserId::parse(input) {
            Ok(user) => {
                let matched = table.lookup(&user, on);
                found.push(LookupJson {
                    input: input.clone(),
                    user: user.to_string(),
                    date: on.to_string(),
                    market: matched.market.to_string(),
                    country: matched.country.map(|c| c.to_string()),
                    rule: matched.rule,
                });
            }
            Err(message) => {
                eprintln!("error: {message}");
                failed = true;
            }
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut out, &found)?;
        writeln!(out)?;
    } else {
        for item in &found {
            writeln!(
                out,
                "{} → {}{} on {} ({})",
                item.user,
                item.market,
                item.country
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default(),
                item.date,
                item.rule
            )?;
        }
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `wameter markets list`: every market on a date with its calling codes.
pub fn list(on: Date, json: bool) -> Result<ExitCode> {
    let members = MarketTable::builtin().members_on(on);
    let mut out = std::io::stdout().lock();
    if json {
        let document: Vec<serde_json::Value> = members
            .iter()
            .map(|(market, list)| {
                serde_json::json!({
                    "market": &**market,
                    "members": list.iter().map(|m| serde_json::json!({
                        "country": m.country, "iso2": m.iso2, "calling_code": m.calling_code,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({ "date": on.to_string(), "markets": document }),
        )?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{} markets on {on}\n", members.len())?;
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|(market, list)| {
            let text = if list.is_empty() {
                "every calling code not listed elsewhere".to_string()
            } else {
                list.iter()
                    .map(|m| format!("{} +{}", m.country, m.calling_code))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![market.to_string(), text]
        })
        .collect();
    table(
        &mut out,
        &["Market", "Countries (calling codes)"],
        &rows,
        &[false, false],
    )?;
    Ok(ExitCode::SUCCESS)
}
