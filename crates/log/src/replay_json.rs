//! The `replay --json` document (interfaces §4), shared by `wameter replay`
//! and `GET /v1/charges` so the two can never drift apart.

use std::io::Write;

use rayon::prelude::*;

use serde::Serialize;
use wameter_core::charge::Charge;
use wameter_core::engine::WhatIf;
use wameter_core::money::format_amount;
use wameter_core::report::{Totals, totals_with_calls};
use wameter_core::rules::agent::AgentCharge;
use wameter_core::rules::calling::CallCharge;

/// One charge as the document prints it.
#[derive(Serialize)]
pub struct ChargeJson<'a> {
    message_id: &'a str,
    business: &'a str,
    /// The Messaging account billed, when not the number's first (only
    /// then present: documents of one-account numbers keep their shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    messaging_account: Option<&'a str>,
    user: String,
    delivered_at: String,
    /// Delivery date in the business's time zone: the date that chose the
    /// ruleset, card and month (lets `wameter diff` group by local month).
    local_date: String,
    pricing_model: &'static str,
    category: &'static str,
    /// The template's name, for a template message (an extension of
    /// interfaces §4: what the dashboard ranks by cost).
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a str>,
    #[serde(rename = "type")]
    pricing_type: &'static str,
    billable: bool,
    conversation_id: Option<&'a str>,
    opens_conversation: bool,
    market: &'a str,
    currency: &'a str,
    amount: String,
    tier: Option<&'a str>,
    ruleset: &'static str,
    rules_status: &'static str,
    rule: &'static str,
    reason: &'a str,
}

impl<'a> From<&'a Charge> for ChargeJson<'a> {
    fn from(charge: &'a Charge) -> Self {
        ChargeJson {
            message_id: &charge.message_id,
            business: &charge.business,
            messaging_account: charge.messaging_account.as_deref(),
            user: charge.user.to_string(),
            delivered_at: charge.delivered_at.to_string(),
            local_date: charge.local_date.to_string(),
            pricing_model: charge.pricing_model.as_str(),
            category: charge.category.as_str(),
            template: charge.trail.template.as_ref().map(|t| &*t.name),
            pricing_type: charge.pricing_type.as_str(),
            billable: charge.billable,
            conversation_id: charge.conversation_id.as_deref(),
            opens_conversation: charge.opens_conversation,
            market: &charge.market,
            currency: charge.currency.code(),
            amount: format_amount(charge.amount),
            tier: charge.tier.as_deref(),
            ruleset: charge.ruleset.id(),
            rules_status: charge.ruleset.status(),
            rule: charge.rule,
            reason: &charge.reason,
        }
    }
}

/// A charge line of the document read back: the fields a reader groups
/// and sums by (the server's kept charges). Written by [`ChargeJson`],
/// beside which it lives so the two keep the same names.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ChargeLine {
    /// The wamid.
    pub message_id: String,
    /// Business phone number id.
    pub business: String,
    /// The Messaging account billed, when not the number's first.
    #[serde(default)]
    pub messaging_account: Option<String>,
    /// The user.
    pub user: String,
    /// RFC 3339.
    pub delivered_at: String,
    /// Business-local delivery date, `YYYY-MM-DD`.
    pub local_date: String,
    /// `CBP` or `PMP`.
    pub pricing_model: String,
    /// Meta's category.
    pub category: String,
    /// The template's name, for a template message.
    #[serde(default)]
    pub template: Option<String>,
    /// Meta's pricing type.
    #[serde(rename = "type")]
    pub pricing_type: String,
    /// Whether Meta bills it.
    pub billable: bool,
    /// Whether it opened a conversation.
    pub opens_conversation: bool,
    /// Market.
    pub market: String,
    /// ISO 4217.
    pub currency: String,
    /// Exact decimal, as text.
    pub amount: String,
    /// `documented` (Meta's pages describe the era) or `confirmed` (the
    /// 2026-10 change: reported first, then confirmed on Meta's pages).
    pub rules_status: String,
    /// The volume tier, when one applied.
    #[serde(default)]
    pub tier: Option<String>,
    /// The ruleset that priced it.
    #[serde(default)]
    pub ruleset: String,
    /// The rule within it.
    #[serde(default)]
    pub rule: String,
    /// The explanation.
    #[serde(default)]
    pub reason: String,
}

/// One Meta Business Agent usage as the document prints it (`agent_usage`,
/// an extension of interfaces §4).
#[derive(Serialize)]
pub struct AgentJson<'a> {
    usage_id: &'a str,
    business: &'a str,
    /// The Messaging account billed, when not the number's first (only
    /// then present: documents of one-account numbers keep their shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    messaging_account: Option<&'a str>,
    user: String,
    at: String,
    local_date: String,
    category: &'static str,
    tokens: u64,
    billable: bool,
    currency: &'a str,
    rate_per_million: Option<String>,
    amount: String,
    ruleset: &'static str,
    rule: &'static str,
    reason: &'a str,
}

impl<'a> From<&'a AgentCharge> for AgentJson<'a> {
    fn from(usage: &'a AgentCharge) -> Self {
        AgentJson {
            usage_id: &usage.usage_id,
            business: &usage.business,
            messaging_account: usage.messaging_account.as_deref(),
            user: usage.user.to_string(),
            at: usage.at.to_string(),
            local_date: usage.local_date.to_string(),
            category: "meta_business_agent",
            tokens: usage.tokens,
            billable: usage.billable,
            currency: usage.currency.code(),
            rate_per_million: usage.rate_per_million.map(format_amount),
            amount: format_amount(usage.amount),
            ruleset: usage.ruleset,
            rule: usage.rule,
            reason: &usage.reason,
        }
    }
}

/// An agent usage line read back ([`AgentJson`]).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct AgentLine {
    /// The usage id.
    pub usage_id: String,
    /// Business phone number id.
    pub business: String,
    /// The Messaging account billed, when not the number's first.
    #[serde(default)]
    pub messaging_account: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// Business-local date.
    pub local_date: String,
    /// Tokens.
    pub tokens: u64,
    /// Whether Meta bills it.
    pub billable: bool,
    /// ISO 4217.
    pub currency: String,
    /// Exact decimal, as text.
    pub amount: String,
}

/// A call line of the document read back: what a reader orders and sums
/// by. Written by [`CallJson`].
#[derive(Clone, Debug, serde::Deserialize)]
pub struct CallLine {
    /// The call id.
    pub call_id: String,
    /// Business phone number id.
    pub business: String,
    /// The Messaging account billed, when not the number's first.
    #[serde(default)]
    pub messaging_account: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// Business-local start date, `YYYY-MM-DD`.
    pub local_date: String,
    /// `business_initiated` or `user_initiated`.
    pub direction: String,
    /// Market.
    pub market: String,
    /// Whether Meta bills it.
    pub billable: bool,
    /// 6-second pulses.
    pub pulses: u64,
    /// ISO 4217.
    pub currency: String,
    /// Exact decimal, as text.
    pub amount: String,
}

#[derive(Serialize)]
struct TotalsJson {
    currency: String,
    amount: String,
    billable_messages: u64,
    conversations: u64,
    /// Only when the document has calls, so documents without them keep
    /// their exact shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    billable_calls: Option<u64>,
}

/// One call as the document prints it (interfaces §4, `calls`), with
/// `local_date`, `status`, `uncertain`, `error` and `rates_file` besides.
#[derive(Serialize)]
pub struct CallJson<'a> {
    call_id: &'a str,
    business: &'a str,
    /// The Messaging account billed, when not the number's first (only
    /// then present: documents of one-account numbers keep their shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    messaging_account: Option<&'a str>,
    user: String,
    direction: &'static str,
    started_at: String,
    local_date: String,
    duration_seconds: u32,
    pulses: u64,
    billable: bool,
    uncertain: bool,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<i64>,
    market: &'a str,
    currency: &'a str,
    rate_per_minute: Option<String>,
    amount: String,
    tier: Option<&'a str>,
    ruleset: &'static str,
    rule: &'static str,
    reason: &'a str,
    /// The calling-rate file, and `partial` when it lacks other markets.
    #[serde(skip_serializing_if = "Option::is_none")]
    rates_file: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    rates_partial: bool,
}

impl<'a> From<&'a CallCharge> for CallJson<'a> {
    fn from(call: &'a CallCharge) -> Self {
        CallJson {
            call_id: &call.call_id,
            business: &call.business,
            messaging_account: call.messaging_account.as_deref(),
            user: call.user.to_string(),
            direction: call.direction.as_str(),
            started_at: call.started_at.to_string(),
            local_date: call.local_date.to_string(),
            duration_seconds: call.duration_seconds,
            pulses: call.pulses,
            billable: call.billable,
            uncertain: call.uncertain,
            status: call.status.as_str(),
            error: call.error,
            market: &call.market,
            currency: call.currency.code(),
            rate_per_minute: call.rate_per_minute.map(format_amount),
            amount: format_amount(call.amount),
            tier: call.tier.as_deref(),
            ruleset: call.ruleset,
            rule: call.rule,
            reason: &call.reason,
            rates_file: call.rates_source.as_ref().map(|(file, _)| &**file),
            rates_partial: call
                .rates_source
                .as_ref()
                .is_some_and(|(_, partial)| *partial),
        }
    }
}

/// A warning in the document. Where it came from is a file and line for a
/// log replay, a stored event's id for the server.
#[derive(Serialize)]
pub struct WarningJson<'a> {
    /// Stable machine-readable code (`unknown_status_id`, `note`…).
    pub code: &'a str,
    /// What happened, in a sentence.
    pub message: String,
    /// Log file the warning points into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a str>,
    /// Line in that file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Id of the stored event the warning points at (server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
}

/// The message of the `outbound_inferred` warning: how many messages were
/// rated from their status's `pricing` because no outbound event was seen.
pub fn outbound_inferred_message(messages: usize) -> String {
    format!(
        "{messages} message(s) have no outbound event; each is rated as the message its status's `pricing` names (Meta's category; interfaces §4)"
    )
}

#[derive(Serialize)]
struct WhatIfJson {
    ruleset: Option<&'static str>,
    rates_on: Option<String>,
    note: &'static str,
}

/// Writes the document, streaming the charges.
pub fn write_document(
    out: &mut impl Write,
    charges: &[Charge],
    others: Others<'_>,
    warnings: &[WarningJson],
    what_if: WhatIf,
) -> std::io::Result<()> {
    let call_lines = others
        .calls
        .iter()
        .map(|call| serde_json::to_string(&CallJson::from(call)))
        .collect::<Result<Vec<_>, _>>()?;
    let agent_lines = others
        .agent
        .iter()
        .map(|usage| serde_json::to_string(&AgentJson::from(usage)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut totals = totals_with_calls(charges, others.calls);
    wameter_core::report::add_agent(&mut totals, others.agent);
    write_charges_in_batches(out, charges, CHARGE_BATCH, |charge, bytes| {
        sonic_rs::to_writer(bytes, &ChargeJson::from(charge)).map_err(std::io::Error::other)
    })?;
    write_after_charges(
        out,
        OtherLines {
            calls: &call_lines.iter().map(String::as_str).collect::<Vec<_>>(),
            agent: &agent_lines.iter().map(String::as_str).collect::<Vec<_>>(),
        },
        &totals,
        warnings,
        what_if,
    )
}

/// A charge's line of the document. Written by sonic-rs, whose vectorised
/// string escaping took a fifth off writing a large document (the reasons
/// are most of its bytes); its bytes are serde_json's, which writes every
/// other part (a property test holds the two equal, docs/PERFORMANCE.md).
pub fn charge_line(charge: &ChargeJson<'_>) -> std::io::Result<String> {
    sonic_rs::to_string(charge).map_err(std::io::Error::other)
}

/// The `reason` of a document line (a charge's, a call's or an agent
/// usage's; empty when it has none), read without building the rest: the
/// one field `serve` keeps only in the line.
pub fn reason_of(line: &str) -> Result<String, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Reason<'a> {
        #[serde(borrow, default)]
        reason: std::borrow::Cow<'a, str>,
    }
    Ok(serde_json::from_str::<Reason>(line)?.reason.into_owned())
}

/// What a replay charges besides messages: calls and agent usage.
#[derive(Clone, Copy, Default)]
pub struct Others<'a> {
    /// Calls, in start order.
    pub calls: &'a [CallCharge],
    /// Meta Business Agent usage, in time order.
    pub agent: &'a [AgentCharge],
}

/// [`Others`] already written as the document's lines.
#[derive(Clone, Copy, Default)]
pub struct OtherLines<'a> {
    /// [`CallJson`] lines.
    pub calls: &'a [&'a str],
    /// [`AgentJson`] lines.
    pub agent: &'a [&'a str],
}

/// Writes the document from charges already serialised as [`ChargeJson`]
/// (e.g. kept by the server), calls as [`CallJson`], and their totals.
/// The `calls` key is written only when there are calls (interfaces §4).
pub fn write_document_lines<L: AsRef<str>>(
    out: &mut impl Write,
    lines: impl IntoIterator<Item = std::io::Result<L>>,
    others: OtherLines<'_>,
    totals: &[Totals],
    warnings: &[WarningJson],
    what_if: WhatIf,
) -> std::io::Result<()> {
    write_charges(out, lines, |out, line| {
        out.write_all(line?.as_ref().as_bytes())
    })?;
    write_after_charges(out, others, totals, warnings, what_if)
}

/// How many charges one thread serialises at a time in
/// [`write_document`]: about a megabyte of the document.
const CHARGE_BATCH: usize = 2048;

/// What stands between two elements of the `charges` array.
const CHARGE_SEPARATOR: &[u8] = b",\n    ";

/// [`write_charges`] of `items`, each serialised by `element`. Serialising
/// the charges was a third of a large `replay --json`, on one core: here
/// batches of `batch` items are serialised on every core, a window of
/// batches at a time (the memory of one window, not of the document), and
/// written in order.
fn write_charges_in_batches<W: Write, T: Sync>(
    out: &mut W,
    items: &[T],
    batch: usize,
    element: impl Fn(&T, &mut Vec<u8>) -> std::io::Result<()> + Sync,
) -> std::io::Result<()> {
    let batch = batch.max(1);
    let window = batch.saturating_mul(rayon::current_num_threads().max(1));
    write_charges(out, items.chunks(window), |out, window| {
        let batches: Vec<Vec<u8>> = window
            .par_chunks(batch)
            .map(|items| {
                let mut bytes = Vec::new();
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        bytes.extend_from_slice(CHARGE_SEPARATOR);
                    }
                    element(item, &mut bytes)?;
                }
                Ok(bytes)
            })
            .collect::<std::io::Result<_>>()?;
        for (n, bytes) in batches.iter().enumerate() {
            if n > 0 {
                out.write_all(CHARGE_SEPARATOR)?;
            }
            out.write_all(bytes)?;
        }
        Ok(())
    })
}

/// The document's opening and its `charges` array, each item (an element,
/// or a run of them joined by [`CHARGE_SEPARATOR`]) written by `write_one`.
fn write_charges<W: Write, T>(
    out: &mut W,
    items: impl IntoIterator<Item = T>,
    mut write_one: impl FnMut(&mut W, T) -> std::io::Result<()>,
) -> std::io::Result<()> {
    out.write_all(b"{\n  \"charges\": [")?;
    let mut empty = true;
    for item in items {
        out.write_all(if empty { b"\n    " } else { CHARGE_SEPARATOR })?;
        write_one(out, item)?;
        empty = false;
    }
    out.write_all(if empty { b"],\n" } else { b"\n  ],\n" })
}

/// The document after its `charges`: calls, agent usage, totals, warnings
/// and what-if.
fn write_after_charges(
    out: &mut impl Write,
    others: OtherLines<'_>,
    totals: &[Totals],
    warnings: &[WarningJson],
    what_if: WhatIf,
) -> std::io::Result<()> {
    for (key, lines) in [("calls", others.calls), ("agent_usage", others.agent)] {
        if lines.is_empty() {
            continue;
        }
        out.write_all(format!("  \"{key}\": [").as_bytes())?;
        for (n, line) in lines.iter().enumerate() {
            out.write_all(if n == 0 { b"\n    " } else { b",\n    " })?;
            out.write_all(line.as_bytes())?;
        }
        out.write_all(b"\n  ],\n")?;
    }
    let with_calls = !others.calls.is_empty();
    let totals: Vec<TotalsJson> = totals
        .iter()
        .map(|t| TotalsJson {
            currency: t.currency.to_string(),
            amount: format_amount(t.amount),
            billable_messages: t.billable_messages,
            conversations: t.conversations,
            billable_calls: with_calls.then_some(t.billable_calls),
        })
        .collect();
    out.write_all(b"  \"totals\": ")?;
    match totals.as_slice() {
        // One currency: an object, as documented. None: a zero USD total.
        [one] => serde_json::to_writer(&mut *out, one)?,
        [] => serde_json::to_writer(
            &mut *out,
            &TotalsJson {
                currency: "USD".into(),
                amount: "0".into(),
                billable_messages: 0,
                conversations: 0,
                billable_calls: with_calls.then_some(0),
            },
        )?,
        many => serde_json::to_writer(&mut *out, many)?,
    }
    out.write_all(b",\n  \"warnings\": ")?;
    serde_json::to_writer(&mut *out, warnings)?;
    if !what_if.is_none() {
        out.write_all(b",\n  \"what_if\": ")?;
        serde_json::to_writer(
            &mut *out,
            &WhatIfJson {
                ruleset: what_if.ruleset.map(|r| r.id()),
                rates_on: what_if.rates_on.map(|d| d.to_string()),
                note: "re-priced under assumed rules: not what Meta charged",
            },
        )?;
    }
    out.write_all(b"\n}\n")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::io::Write;

    use super::{ChargeJson, charge_line, write_charges, write_charges_in_batches};

    /// Any number of items, in batches of any size: the bytes one item
    /// at a time would give.
    #[test]
    fn batches_write_what_one_at_a_time_writes() {
        let element = |item: &u32, bytes: &mut Vec<u8>| {
            bytes.extend_from_slice(format!("{{\"n\":{item}}}").as_bytes());
            Ok(())
        };
        for count in [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 100] {
            let items: Vec<u32> = (0..count).collect();
            let mut expected = Vec::new();
            write_charges(&mut expected, &items, |out, item| {
                let mut bytes = Vec::new();
                element(item, &mut bytes)?;
                out.write_all(&bytes)
            })
            .unwrap();
            for batch in [0, 1, 2, 3, 4, 64] {
                let mut written = Vec::new();
                write_charges_in_batches(&mut written, &items, batch, element).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected.clone()).unwrap(),
                    "{count} items in batches of {batch}"
                );
            }
        }
    }

    /// An item that cannot be written stops the document there.
    #[test]
    fn an_error_in_a_batch_is_the_documents() {
        let items: Vec<u32> = (0..50).collect();
        let failing = |item: &u32, bytes: &mut Vec<u8>| {
            if *item == 37 {
                return Err(std::io::Error::other("no"));
            }
            bytes.push(b'1');
            Ok(())
        };
        let error = write_charges_in_batches(&mut Vec::new(), &items, 4, failing).unwrap_err();
        assert_eq!(error.to_string(), "no");
    }

    /// Text with what a JSON writer must escape or pass through: control
    /// characters, quotes, backslashes, U+2028, any character at all.
    fn text() -> impl Strategy<Value = String> {
        let special = prop_oneof![
            (0u32..0x20).prop_filter_map("a control character", char::from_u32),
            Just('"'),
            Just('\\'),
            Just('/'),
            Just('\u{7f}'),
            Just('\u{2028}'),
            Just('\u{1f4b8}'),
        ];
        prop::collection::vec(prop_oneof![any::<char>(), special], 0..40)
            .prop_map(String::from_iter)
    }

    proptest! {
        /// Any text in any string field: quotes, backslashes, control
        /// characters, U+2028, astral planes.
        #[test]
        fn a_charge_line_has_serde_jsons_bytes(
            texts in prop::collection::vec(text(), 12),
            flags in any::<(bool, bool, bool)>(),
        ) {
            let text = |at: usize| texts[at].as_str();
            let line = ChargeJson {
                message_id: text(0),
                business: text(1),
                messaging_account: flags.0.then(|| text(2)),
                user: texts[3].clone(),
                delivered_at: texts[4].clone(),
                local_date: texts[5].clone(),
                pricing_model: "PMP",
                category: "utility",
                template: flags.1.then(|| text(6)),
                pricing_type: "regular",
                billable: flags.2,
                conversation_id: flags.1.then(|| text(7)),
                opens_conversation: !flags.2,
                market: text(8),
                currency: "USD",
                amount: texts[9].clone(),
                tier: flags.0.then(|| text(10)),
                ruleset: "pmp-2025",
                rules_status: "confirmed",
                rule: "utility-outside-csw",
                reason: text(11),
            };
            prop_assert_eq!(charge_line(&line).unwrap(), serde_json::to_string(&line).unwrap());
        }
    }
}
