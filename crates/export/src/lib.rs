//! Charges as one typed table, for the tools analysts already use: CSV for
//! spreadsheets and pandas, Parquet for DuckDB and pandas.
//!
//! Every priced item of a replay or of `serve`'s kept charges becomes one
//! [`Row`]: a delivered message, a call or a Meta Business Agent usage
//! (`kind`), with its money as an exact decimal. Summing `amount` by
//! `currency` gives the replay's totals to the last digit: Parquet stores
//! it as `DECIMAL(38, s)`, `s` the largest scale any amount has, and CSV as
//! the decimal text the JSON document prints. The columns are listed in
//! [`COLUMNS`] and documented in `docs/interfaces.md` ("Exports").
//!
//! Rows come from the engine's own charges ([`Row::from_charge`],
//! [`Row::from_call`], [`Row::from_agent`]: `replay`) or from the lines of
//! the replay document as `serve` keeps them ([`Row::from_line`]); a test
//! holds the two to the same rows.

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, FixedLenByteArray, FixedLenByteArrayType, Int32Type,
    Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rust_decimal::Decimal;
use wameter_core::charge::Charge;
use wameter_core::money::format_amount;
use wameter_core::rules::agent::AgentCharge;
use wameter_core::rules::calling::CallCharge;

/// What an export failed on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV writer failed.
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The Parquet writer failed.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A kept line that does not read as a charge, call or agent usage.
    #[error("a kept charge does not read: {0}")]
    Line(String),
}

/// What a row prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A delivered business message (one unit: the message).
    Message,
    /// A call over the Calling API (units: 6-second pulses).
    Call,
    /// Meta Business Agent tokens (units: tokens).
    AgentUsage,
}

impl Kind {
    /// The `kind` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Call => "call",
            Kind::AgentUsage => "agent_usage",
        }
    }

    /// The `unit` column's value: what `quantity` counts.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Call => "pulse",
            Kind::AgentUsage => "token",
        }
    }
}

/// One priced item, as a row of the export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Message, call or agent usage.
    pub kind: Kind,
    /// The wamid, the call id (`wacid`) or the usage id.
    pub id: String,
    /// Business phone number id.
    pub business: String,
    /// The Messaging account billed, when not the number's first.
    pub messaging_account: Option<String>,
    /// The user (E.164 or BSUID).
    pub user: String,
    /// Delivered (message), started (call) or used (agent), UTC.
    pub at: Timestamp,
    /// The business-local date of `at`: the day and month Meta bills it in.
    pub local_date: Date,
    /// `CBP` or `PMP` (messages only).
    pub pricing_model: Option<String>,
    /// Meta's category; `call` for calls, `meta_business_agent` for tokens.
    pub category: String,
    /// Meta's pricing type (`regular`, `free_customer_service`, …; messages only).
    pub pricing_type: Option<String>,
    /// `business_initiated` or `user_initiated` (calls only).
    pub direction: Option<String>,
    /// Whether Meta bills it.
    pub billable: bool,
    /// The market priced (messages and calls).
    pub market: Option<String>,
    /// ISO 4217 code of `amount`.
    pub currency: String,
    /// Exact amount.
    pub amount: Decimal,
    /// How many units were priced: 1 message, the call's pulses, the tokens.
    pub quantity: u64,
    /// The volume or calling tier, when one applied.
    pub tier: Option<String>,
    /// The ruleset that priced it.
    pub ruleset: String,
    /// The rule within it.
    pub rule: String,
    /// The charge's explanation.
    pub reason: String,
}

/// The export's columns in order, with their Parquet types (`amount`'s
/// scale is the file's). CSV has the same header.
pub const COLUMNS: [(&str, &str); 22] = [
    ("kind", "REQUIRED BYTE_ARRAY kind (UTF8)"),
    ("id", "REQUIRED BYTE_ARRAY id (UTF8)"),
    ("business", "REQUIRED BYTE_ARRAY business (UTF8)"),
    ("messaging_account", "OPTIONAL BYTE_ARRAY messaging_account (UTF8)"),
    ("user", "REQUIRED BYTE_ARRAY user (UTF8)"),
    ("at", "REQUIRED INT64 at (TIMESTAMP(MICROS,true))"),
    ("local_date", "REQUIRED INT32 local_date (DATE)"),
    ("month", "REQUIRED BYTE_ARRAY month (UTF8)"),
    ("pricing_model", "OPTIONAL BYTE_ARRAY pricing_model (UTF8)"),
    ("category", "REQUIRED BYTE_ARRAY category (UTF8)"),
    ("pricing_type", "OPTIONAL BYTE_ARRAY pricing_type (UTF8)"),
    ("direction", "OPTIONAL BYTE_ARRAY direction (UTF8)"),
    ("billable", "REQUIRED BOOLEAN billable"),
    ("market", "OPTIONAL BYTE_ARRAY market (UTF8)"),
    ("currency", "REQUIRED BYTE_ARRAY currency (UTF8)"),
    ("amount", "REQUIRED FIXED_LEN_BYTE_ARRAY (16) amount (DECIMAL(38,{scale}))"),
    ("quantity", "REQUIRED INT64 quantity"),
    ("unit", "REQUIRED BYTE_ARRAY unit (UTF8)"),
    ("tier", "OPTIONAL BYTE_ARRAY tier (UTF8)"),
    ("ruleset", "REQUIRED BYTE_ARRAY ruleset (UTF8)"),
    ("rule", "REQUIRED BYTE_ARRAY rule (UTF8)"),
    ("reason", "REQUIRED BYTE_ARRAY reason (UTF8)"),
];

fn text<T: AsRef<str> + ?Sized>(value: &T) -> String {
    value.as_ref().to_string()
}

fn optional<T: AsRef<str> + ?Sized>(value: Option<&T>) -> Option<String> {
    value.map(text)
}

impl Row {
    /// A delivered message's charge.
    pub fn from_charge(charge: &Charge) -> Row {
        Row {
            kind: Kind::Message,
            id: text(&*charge.message_id),
            business: text(&*charge.business),
            messaging_account: optional(charge.messaging_account.as_deref()),
            user: charge.user.to_string(),
            at: charge.delivered_at,
            local_date: charge.trail.local_date,
            pricing_model: Some(text(charge.pricing_model.as_str())),
            category: text(charge.category.as_str()),
            pricing_type: Some(text(charge.pricing_type.as_str())),
            direction: None,
            billable: charge.billable,
            market: Some(charge.market.to_string()),
            currency: text(charge.currency.code()),
            amount: charge.amount,
            quantity: 1,
            tier: charge.tier.clone(),
            ruleset: text(charge.ruleset.id()),
            rule: text(charge.rule),
            reason: charge.reason.clone(),
        }
    }

    /// A call's charge.
    pub fn from_call(call: &CallCharge) -> Row {
        Row {
            kind: Kind::Call,
            id: text(&*call.call_id),
            business: text(&*call.business),
            messaging_account: optional(call.messaging_account.as_deref()),
            user: call.user.to_string(),
            at: call.started_at,
            local_date: call.local_date,
            pricing_model: None,
            category: text("call"),
            pricing_type: None,
            direction: Some(text(call.direction.as_str())),
            billable: call.billable,
            market: Some(call.market.to_string()),
            currency: text(call.currency.code()),
            amount: call.amount,
            quantity: call.pulses,
            tier: call.tier.clone(),
            ruleset: text(call.ruleset),
            rule: text(call.rule),
            reason: call.reason.clone(),
        }
    }

    /// A Meta Business Agent usage's charge.
    pub fn from_agent(usage: &AgentCharge) -> Row {
        Row {
            kind: Kind::AgentUsage,
            id: text(&*usage.usage_id),
            business: text(&*usage.business),
            messaging_account: optional(usage.messaging_account.as_deref()),
            user: usage.user.to_string(),
            at: usage.at,
            local_date: usage.local_date,
            pricing_model: None,
            category: text("meta_business_agent"),
            pricing_type: None,
            direction: None,
            billable: usage.billable,
            market: None,
            currency: text(usage.currency.code()),
            amount: usage.amount,
            quantity: usage.tokens,
            tier: None,
            ruleset: text(usage.ruleset),
            rule: text(usage.rule),
            reason: usage.reason.clone(),
        }
    }

    /// A line of the replay document (`charges`, `calls` or `agent_usage`),
    /// as `serve` keeps it: which of the three it is shows in its id field.
    pub fn from_line(line: &str) -> Result<Row, ExportError> {
        let bad = |what: &str| ExportError::Line(format!("{what}: {line}"));
        let kept: KeptLine = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let (kind, id, at, quantity) = match (kept.message_id, kept.call_id, kept.usage_id) {
            (Some(id), None, None) => (Kind::Message, id, kept.delivered_at, 1),
            (None, Some(id), None) => (Kind::Call, id, kept.started_at, kept.pulses.unwrap_or(0)),
            (None, None, Some(id)) => (Kind::AgentUsage, id, kept.at, kept.tokens.unwrap_or(0)),
            _ => return Err(bad("not one of a message, a call or an agent usage")),
        };
        let at = at.ok_or_else(|| bad("no instant"))?;
        Ok(Row {
            kind,
            id,
            business: kept.business,
            messaging_account: kept.messaging_account,
            user: kept.user,
            at: Timestamp::from_str(&at).map_err(|e| bad(&e.to_string()))?,
            local_date: Date::from_str(&kept.local_date).map_err(|e| bad(&e.to_string()))?,
            pricing_model: kept.pricing_model,
            category: match kind {
                Kind::Message => kept.category.ok_or_else(|| bad("no category"))?,
                Kind::Call => text("call"),
                Kind::AgentUsage => text("meta_business_agent"),
            },
            pricing_type: kept.pricing_type,
            direction: kept.direction,
            billable: kept.billable,
            market: kept.market,
            currency: kept.currency,
            amount: Decimal::from_str(&kept.amount).map_err(|e| bad(&e.to_string()))?,
            quantity,
            tier: kept.tier,
            ruleset: kept.ruleset,
            rule: kept.rule,
            reason: kept.reason,
        })
    }

    /// `YYYY-MM` of the local date: the billing month.
    pub fn month(&self) -> String {
        format!("{:04}-{:02}", self.local_date.year(), self.local_date.month())
    }
}

/// The fields of a document line the export reads (the union of a charge,
/// a call and an agent usage line).
#[derive(serde::Deserialize)]
struct KeptLine {
    message_id: Option<String>,
    call_id: Option<String>,
    usage_id: Option<String>,
    business: String,
    #[serde(default)]
    messaging_account: Option<String>,
    user: String,
    delivered_at: Option<String>,
    started_at: Option<String>,
    at: Option<String>,
    local_date: String,
    pricing_model: Option<String>,
    category: Option<String>,
    #[serde(rename = "type")]
    pricing_type: Option<String>,
    direction: Option<String>,
    billable: bool,
    market: Option<String>,
    currency: String,
    amount: String,
    pulses: Option<u64>,
    tokens: Option<u64>,
    tier: Option<String>,
    ruleset: String,
    rule: String,
    reason: String,
}

/// Writes `rows` as CSV with a header row: instants in RFC 3339 (UTC),
/// dates as `YYYY-MM-DD`, amounts as exact decimal text, an absent value
/// as an empty cell.
pub fn write_csv<'r>(
    out: impl Write,
    rows: impl IntoIterator<Item = &'r Row>,
) -> Result<(), ExportError> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(COLUMNS.iter().map(|(name, _)| *name))?;
    for row in rows {
        let none = String::new();
        writer.write_record([
            row.kind.as_str(),
            &row.id,
            &row.business,
            row.messaging_account.as_ref().unwrap_or(&none),
            &row.user,
            &row.at.to_string(),
            &row.local_date.to_string(),
            &row.month(),
            row.pricing_model.as_ref().unwrap_or(&none),
            &row.category,
            row.pricing_type.as_ref().unwrap_or(&none),
            row.direction.as_ref().unwrap_or(&none),
            if row.billable { "true" } else { "false" },
            row.market.as_ref().unwrap_or(&none),
            &row.currency,
            &format_amount(row.amount),
            &row.quantity.to_string(),
            row.kind.unit(),
            row.tier.as_ref().unwrap_or(&none),
            &row.ruleset,
            &row.rule,
            &row.reason,
        ])?;
    }
    writer.flush()?;
    Ok(())
}

/// Rows per Parquet row group: bounds the column buffers of one group.
const ROW_GROUP: usize = 128 * 1024;

/// Writes `rows` as a Parquet file (Snappy-compressed columns): instants
/// as `TIMESTAMP(MICROS, UTC)`, dates as `DATE`, `amount` as
/// `DECIMAL(38, s)` with `s` the largest scale of any amount (so every
/// amount is stored exactly), counts as `INT64`, the rest as UTF-8.
pub fn write_parquet<W: Write + Send>(out: W, rows: &[Row]) -> Result<(), ExportError> {
    let scale = rows.iter().map(|r| r.amount.normalize().scale()).max().unwrap_or(0);
    let fields: Vec<String> = COLUMNS
        .iter()
        .map(|(_, field)| format!("{};", field.replace("{scale}", &scale.to_string())))
        .collect();
    let schema = Arc::new(parse_message_type(&format!(
        "message charge {{ {} }}",
        fields.join(" ")
    ))?);
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by("wameter".into())
            .build(),
    );
    let mut writer = SerializedFileWriter::new(out, schema, properties)?;
    for group in rows.chunks(ROW_GROUP) {
        let mut row_group = writer.next_row_group()?;
        let mut column = 0;
        while let Some(mut writer) = row_group.next_column()? {
            write_column(&mut writer, column, group, scale)?;
            writer.close()?;
            column += 1;
        }
        row_group.close()?;
    }
    writer.close()?;
    Ok(())
}

fn bytes(value: &str) -> ByteArray {
    ByteArray::from(value.as_bytes().to_vec())
}

/// One column of a row group; `column` indexes [`COLUMNS`].
fn write_column(
    writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    column: usize,
    rows: &[Row],
    scale: u32,
) -> Result<(), ExportError> {
    let required = |value: fn(&Row) -> String| -> Vec<ByteArray> {
        rows.iter().map(|r| bytes(&value(r))).collect()
    };
    let optional = |value: fn(&Row) -> Option<&String>| -> (Vec<ByteArray>, Vec<i16>) {
        let levels = rows.iter().map(|r| i16::from(value(r).is_some())).collect();
        (rows.iter().filter_map(|r| value(r).map(|v| bytes(v))).collect(), levels)
    };
    let strings = |writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
                   values: Vec<ByteArray>|
     -> Result<(), ExportError> {
        writer.typed::<ByteArrayType>().write_batch(&values, None, None)?;
        Ok(())
    };
    let nullable = |writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
                    (values, levels): (Vec<ByteArray>, Vec<i16>)|
     -> Result<(), ExportError> {
        writer.typed::<ByteArrayType>().write_batch(&values, Some(&levels), None)?;
        Ok(())
    };
    match COLUMNS[column].0 {
        "kind" => strings(writer, required(|r| text(r.kind.as_str())))?,
        "id" => strings(writer, required(|r| r.id.clone()))?,
        "business" => strings(writer, required(|r| r.business.clone()))?,
        "messaging_account" => nullable(writer, optional(|r| r.messaging_account.as_ref()))?,
        "user" => strings(writer, required(|r| r.user.clone()))?,
        "at" => {
            let values: Vec<i64> = rows.iter().map(|r| r.at.as_microsecond()).collect();
            writer.typed::<Int64Type>().write_batch(&values, None, None)?;
        }
        "local_date" => {
            let values = rows
                .iter()
                .map(|r| days_since_epoch(r.local_date))
                .collect::<Result<Vec<i32>, _>>()?;
            writer.typed::<Int32Type>().write_batch(&values, None, None)?;
        }
        "month" => strings(writer, required(Row::month))?,
        "pricing_model" => nullable(writer, optional(|r| r.pricing_model.as_ref()))?,
        "category" => strings(writer, required(|r| r.category.clone()))?,
        "pricing_type" => nullable(writer, optional(|r| r.pricing_type.as_ref()))?,
        "direction" => nullable(writer, optional(|r| r.direction.as_ref()))?,
        "billable" => {
            let values: Vec<bool> = rows.iter().map(|r| r.billable).collect();
            writer.typed::<BoolType>().write_batch(&values, None, None)?;
        }
        "market" => nullable(writer, optional(|r| r.market.as_ref()))?,
        "currency" => strings(writer, required(|r| r.currency.clone()))?,
        "amount" => {
            let values = rows
                .iter()
                .map(|r| decimal_bytes(r.amount, scale))
                .collect::<Result<Vec<FixedLenByteArray>, _>>()?;
            writer
                .typed::<FixedLenByteArrayType>()
                .write_batch(&values, None, None)?;
        }
        "quantity" => {
            let values = rows
                .iter()
                .map(|r| {
                    i64::try_from(r.quantity).map_err(|_| {
                        ExportError::Line(format!("{}: quantity {} too large", r.id, r.quantity))
                    })
                })
                .collect::<Result<Vec<i64>, _>>()?;
            writer.typed::<Int64Type>().write_batch(&values, None, None)?;
        }
        "unit" => strings(writer, required(|r| text(r.kind.unit())))?,
        "tier" => nullable(writer, optional(|r| r.tier.as_ref()))?,
        "ruleset" => strings(writer, required(|r| r.ruleset.clone()))?,
        "rule" => strings(writer, required(|r| r.rule.clone()))?,
        _ => strings(writer, required(|r| r.reason.clone()))?,
    }
    Ok(())
}

/// Parquet's `DATE`: days since 1970-01-01.
fn days_since_epoch(date: Date) -> Result<i32, ExportError> {
    jiff::civil::date(1970, 1, 1)
        .until(date)
        .map(|span| span.get_days())
        .map_err(|e| ExportError::Line(format!("date {date}: {e}")))
}

/// An amount as Parquet's `DECIMAL(38, scale)` in 16 bytes: the unscaled
/// value, big-endian two's complement. Exact: `scale` is at least the
/// amount's own.
fn decimal_bytes(amount: Decimal, scale: u32) -> Result<FixedLenByteArray, ExportError> {
    let too_large = || ExportError::Line(format!("amount {amount} does not fit DECIMAL(38, {scale})"));
    let own = amount.scale();
    let unscaled = if own <= scale {
        10i128
            .checked_pow(scale - own)
            .and_then(|factor| amount.mantissa().checked_mul(factor))
            .ok_or_else(too_large)?
    } else {
        // Only trailing zeros lie beyond `scale` (it is the largest
        // normalized scale): dividing them away is exact.
        let normalized = amount.normalize();
        10i128
            .checked_pow(scale - normalized.scale())
            .and_then(|factor| normalized.mantissa().checked_mul(factor))
            .ok_or_else(too_large)?
    };
    Ok(FixedLenByteArray::from(unscaled.to_be_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit_at_the_file_scale() {
        let bytes = |text: &str, scale| {
            i128::from_be_bytes(
                decimal_bytes(Decimal::from_str(text).unwrap(), scale)
                    .unwrap()
                    .data()
                    .try_into()
                    .unwrap(),
            )
        };
        assert_eq!(bytes("0.0068", 5), 680);
        assert_eq!(bytes("-1.5", 2), -150);
        assert_eq!(bytes("2.5000000", 1), 25, "trailing zeros beyond the scale");
        assert_eq!(bytes("0", 0), 0);
    }

    #[test]
    fn dates_count_days_from_1970() {
        assert_eq!(days_since_epoch(jiff::civil::date(1970, 1, 2)).unwrap(), 1);
        assert_eq!(days_since_epoch(jiff::civil::date(2026, 10, 1)).unwrap(), 20_727);
    }
}
