//! Charges as one typed table, for the tools analysts already use: CSV for
//! spreadsheets and pandas, Parquet for DuckDB and pandas.
//!
//! Every priced item of a replay or of `serve`'s kept charges becomes one
//! [`Row`]: a delivered message, a call or a Meta Business Agent usage
//! (`kind`), with its money as an exact decimal. Summing `amount` by
//! `currency` gives the replay's totals to the last digit: Parquet stores
//! it as `DECIMAL(38, s)`, `s` the largest scale any amount has, and CSV as
//! the decimal text the JSON document prints. The columns are listed in
//! [`CHARGE_COLUMNS`] and documented in `docs/interfaces.md` ("Exports").
//!
//! The writers take any [`Table`] (typed [`Column`]s, rows by index), so
//! the other exports — reconciliation, invoices, events — share them.
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

    /// The kind whose `kind` column reads `text` ([`Kind::as_str`]).
    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Message, Kind::Call, Kind::AgentUsage]
            .into_iter()
            .find(|kind| kind.as_str() == text)
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
    /// The template's name, for a template message.
    pub template: Option<String>,
}

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
            local_date: charge.local_date,
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
            template: charge.trail.template.as_ref().map(|t| t.name.to_string()),
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
            template: None,
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
            template: None,
        }
    }

    /// A charge line of the replay document already read (`serve`'s kept
    /// charges), with its amount.
    pub fn from_charge_line(
        line: &wameter_log::replay_json::ChargeLine,
        amount: Decimal,
    ) -> Result<Row, ExportError> {
        let bad = |what: String| ExportError::Line(format!("{}: {what}", line.message_id));
        Ok(Row {
            kind: Kind::Message,
            id: line.message_id.clone(),
            business: line.business.clone(),
            messaging_account: line.messaging_account.clone(),
            user: line.user.clone(),
            at: Timestamp::from_str(&line.delivered_at).map_err(|e| bad(e.to_string()))?,
            local_date: Date::from_str(&line.local_date).map_err(|e| bad(e.to_string()))?,
            pricing_model: Some(line.pricing_model.clone()),
            category: line.category.clone(),
            pricing_type: Some(line.pricing_type.clone()),
            direction: None,
            billable: line.billable,
            market: Some(line.market.clone()),
            currency: line.currency.clone(),
            amount,
            quantity: 1,
            tier: line.tier.clone(),
            ruleset: line.ruleset.clone(),
            rule: line.rule.clone(),
            reason: line.reason.clone(),
            template: line.template.clone(),
        })
    }

    /// A line of the replay document (`charges`, `calls` or `agent_usage`),
    /// as `serve` keeps it: which of the three it is shows in its id field.
    pub fn from_line(line: &str) -> Result<Row, ExportError> {
        let bad = |what: &str| ExportError::Line(format!("{what}: {line}"));
        let kept: KeptLine = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let (kind, id, at, quantity) = match (kept.message_id, kept.call_id, kept.usage_id) {
            (Some(_), None, None) => {
                // A charge line: read as `serve` reads its kept charges.
                let charge: wameter_log::replay_json::ChargeLine =
                    serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
                let amount = Decimal::from_str(&charge.amount).map_err(|e| bad(&e.to_string()))?;
                return Row::from_charge_line(&charge, amount);
            }
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
            pricing_model: None,
            category: text(if kind == Kind::Call {
                "call"
            } else {
                "meta_business_agent"
            }),
            pricing_type: None,
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
            template: None,
        })
    }

    /// Item `index` of a replay: its charges, then its calls, then its
    /// agent usage (`index` below their count).
    pub fn of(report: &wameter_core::engine::Report, index: usize) -> Row {
        let charges = report.charges.len();
        if let Some(charge) = report.charges.get(index) {
            Row::from_charge(charge)
        } else if let Some(call) = report.calls.get(index - charges) {
            Row::from_call(call)
        } else {
            Row::from_agent(&report.agent[index - charges - report.calls.len()])
        }
    }

    /// `YYYY-MM` of the local date: the billing month.
    pub fn month(&self) -> String {
        format!(
            "{:04}-{:02}",
            self.local_date.year(),
            self.local_date.month()
        )
    }
}

/// The fields of a call or an agent usage line the export reads, and the
/// id that tells a charge line (read as a [`wameter_log::replay_json::ChargeLine`]).
#[derive(serde::Deserialize)]
struct KeptLine {
    message_id: Option<String>,
    call_id: Option<String>,
    usage_id: Option<String>,
    business: String,
    #[serde(default)]
    messaging_account: Option<String>,
    user: String,
    started_at: Option<String>,
    at: Option<String>,
    local_date: String,
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

impl Row {
    /// The row's cells, in the order of [`CHARGE_COLUMNS`].
    pub fn cells(&self) -> Vec<Cell<'_>> {
        fn text(value: &str) -> Cell<'_> {
            Cell::Text(value.into())
        }
        fn optional(value: &Option<String>) -> Cell<'_> {
            value.as_deref().map_or(Cell::Null, text)
        }
        vec![
            Cell::Text(self.kind.as_str().into()),
            text(&self.id),
            text(&self.business),
            optional(&self.messaging_account),
            text(&self.user),
            Cell::Timestamp(self.at),
            Cell::Date(self.local_date),
            Cell::Text(self.month().into()),
            optional(&self.pricing_model),
            text(&self.category),
            optional(&self.pricing_type),
            optional(&self.direction),
            Cell::Bool(self.billable),
            optional(&self.market),
            text(&self.currency),
            Cell::Decimal(self.amount),
            Cell::Count(self.quantity),
            Cell::Text(self.kind.unit().into()),
            optional(&self.tier),
            text(&self.ruleset),
            text(&self.rule),
            text(&self.reason),
            optional(&self.template),
        ]
    }
}

/// The type of a column: how CSV prints it and what Parquet stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// UTF-8 text.
    Text,
    /// `true` / `false`; Parquet `BOOLEAN`.
    Bool,
    /// A count; Parquet `INT64`.
    Count,
    /// A signed integer (an error code); Parquet `INT64`.
    Integer,
    /// An exact decimal; Parquet `DECIMAL(38, s)`, `s` the largest scale
    /// the column has, so every value is stored exactly.
    Decimal,
    /// An instant; CSV RFC 3339 (UTC), Parquet `TIMESTAMP(MICROS, UTC)`.
    Timestamp,
    /// A civil date; CSV `YYYY-MM-DD`, Parquet `DATE`.
    Date,
}

/// One column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name (the CSV header, the Parquet field).
    pub name: &'static str,
    /// Its type.
    pub kind: Type,
    /// Whether a value may be absent (an empty CSV cell, a Parquet null).
    pub nullable: bool,
}

/// A column (`const`, for tables' column lists).
pub const fn column(name: &'static str, kind: Type, nullable: bool) -> Column {
    Column {
        name,
        kind,
        nullable,
    }
}

/// One value of a row; its variant matches its column's [`Type`] (or is
/// `Null` in a nullable column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    /// Absent.
    Null,
    /// Text.
    Text(std::borrow::Cow<'a, str>),
    /// A boolean.
    Bool(bool),
    /// A count.
    Count(u64),
    /// A signed integer.
    Integer(i64),
    /// An exact decimal.
    Decimal(Decimal),
    /// An instant.
    Timestamp(Timestamp),
    /// A date.
    Date(Date),
}

/// A table to export: its columns, and its rows by index (so a writer can
/// go over them twice and in row groups without holding them all).
pub trait Table {
    /// The columns, in order.
    fn columns(&self) -> &[Column];
    /// How many rows.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `index`'s cells, one per column.
    fn row(&self, index: usize) -> Vec<Cell<'_>>;
}

/// The charge export's columns (documented in docs/interfaces.md, "Exports").
pub const CHARGE_COLUMNS: [Column; 23] = [
    column("kind", Type::Text, false),
    column("id", Type::Text, false),
    column("business", Type::Text, false),
    column("messaging_account", Type::Text, true),
    column("user", Type::Text, false),
    column("at", Type::Timestamp, false),
    column("local_date", Type::Date, false),
    column("month", Type::Text, false),
    column("pricing_model", Type::Text, true),
    column("category", Type::Text, false),
    column("pricing_type", Type::Text, true),
    column("direction", Type::Text, true),
    column("billable", Type::Bool, false),
    column("market", Type::Text, true),
    column("currency", Type::Text, false),
    column("amount", Type::Decimal, false),
    column("quantity", Type::Count, false),
    column("unit", Type::Text, false),
    column("tier", Type::Text, true),
    column("ruleset", Type::Text, false),
    column("rule", Type::Text, false),
    column("reason", Type::Text, false),
    column("template", Type::Text, true),
];

/// Rows already built (`serve`'s answer, read from its kept lines).
impl Table for [Row] {
    fn columns(&self) -> &[Column] {
        &CHARGE_COLUMNS
    }
    fn len(&self) -> usize {
        <[Row]>::len(self)
    }
    fn row(&self, index: usize) -> Vec<Cell<'_>> {
        self[index].cells()
    }
}

/// A replay's charges, calls and agent usage, in that order, each row
/// built as it is written.
pub struct ReportRows<'a>(pub &'a wameter_core::engine::Report);

impl Table for ReportRows<'_> {
    fn columns(&self) -> &[Column] {
        &CHARGE_COLUMNS
    }
    fn len(&self) -> usize {
        self.0.charges.len() + self.0.calls.len() + self.0.agent.len()
    }
    fn row(&self, index: usize) -> Vec<Cell<'_>> {
        Row::of(self.0, index)
            .cells()
            .into_iter()
            .map(owned)
            .collect()
    }
}

/// A cell that borrows nothing.
fn owned(cell: Cell<'_>) -> Cell<'static> {
    match cell {
        Cell::Text(text) => Cell::Text(text.into_owned().into()),
        Cell::Null => Cell::Null,
        Cell::Bool(value) => Cell::Bool(value),
        Cell::Count(value) => Cell::Count(value),
        Cell::Integer(value) => Cell::Integer(value),
        Cell::Decimal(value) => Cell::Decimal(value),
        Cell::Timestamp(value) => Cell::Timestamp(value),
        Cell::Date(value) => Cell::Date(value),
    }
}

/// Writes a table as CSV with a header row: instants in RFC 3339 (UTC),
/// dates as `YYYY-MM-DD`, decimals as exact text, an absent value as an
/// empty cell.
pub fn write_csv<T: Table + ?Sized>(out: impl Write, table: &T) -> Result<(), ExportError> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(table.columns().iter().map(|c| c.name))?;
    let mut record: Vec<String> = Vec::with_capacity(table.columns().len());
    for index in 0..table.len() {
        record.clear();
        record.extend(table.row(index).into_iter().map(|cell| match cell {
            Cell::Null => String::new(),
            Cell::Text(text) => text.into_owned(),
            Cell::Bool(value) => value.to_string(),
            Cell::Count(value) => value.to_string(),
            Cell::Integer(value) => value.to_string(),
            Cell::Decimal(value) => format_amount(value),
            Cell::Timestamp(value) => value.to_string(),
            Cell::Date(value) => value.to_string(),
        }));
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

/// Rows per Parquet row group: bounds the column buffers of one group.
const ROW_GROUP: usize = 64 * 1024;

/// Writes a table as a Parquet file, Snappy-compressed, typed by its
/// columns ([`Type`]).
pub fn write_parquet<T: Table + ?Sized, W: Write + Send>(
    out: W,
    table: &T,
) -> Result<(), ExportError> {
    let columns = table.columns();
    // A decimal column's scale: the largest any of its values has.
    let mut scales = vec![0u32; columns.len()];
    if columns.iter().any(|c| c.kind == Type::Decimal) {
        for index in 0..table.len() {
            for (scale, cell) in scales.iter_mut().zip(table.row(index)) {
                if let Cell::Decimal(value) = cell {
                    *scale = (*scale).max(value.normalize().scale());
                }
            }
        }
    }
    let fields: Vec<String> = columns
        .iter()
        .zip(&scales)
        .map(|(column, scale)| {
            let repetition = if column.nullable {
                "OPTIONAL"
            } else {
                "REQUIRED"
            };
            let name = column.name;
            let physical = match column.kind {
                Type::Text => format!("BYTE_ARRAY {name} (UTF8)"),
                Type::Bool => format!("BOOLEAN {name}"),
                Type::Count | Type::Integer => format!("INT64 {name}"),
                Type::Decimal => format!("FIXED_LEN_BYTE_ARRAY (16) {name} (DECIMAL(38,{scale}))"),
                Type::Timestamp => format!("INT64 {name} (TIMESTAMP(MICROS,true))"),
                Type::Date => format!("INT32 {name} (DATE)"),
            };
            format!("{repetition} {physical};")
        })
        .collect();
    let schema = Arc::new(parse_message_type(&format!(
        "message table {{ {} }}",
        fields.join(" ")
    ))?);
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by("wameter".into())
            .build(),
    );
    let mut writer = SerializedFileWriter::new(out, schema, properties)?;
    // At least one row group, so an empty table is still a valid file.
    for group in 0..table.len().div_ceil(ROW_GROUP).max(1) {
        let rows: Vec<Vec<Cell<'_>>> = (group * ROW_GROUP
            ..table.len().min((group + 1) * ROW_GROUP))
            .map(|index| table.row(index))
            .collect();
        let mut row_group = writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column_writer) = row_group.next_column()? {
            let cells = rows.iter().map(|row| &row[index]);
            write_column(&mut column_writer, columns[index], cells, scales[index])?;
            column_writer.close()?;
            index += 1;
        }
        row_group.close()?;
    }
    writer.close()?;
    Ok(())
}

/// One column of a row group.
fn write_column<'c>(
    writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    column: Column,
    cells: impl Iterator<Item = &'c Cell<'c>>,
    scale: u32,
) -> Result<(), ExportError> {
    let mistyped = || {
        ExportError::Line(format!(
            "a value of column `{}` is not of its type",
            column.name
        ))
    };
    let mut levels: Vec<i16> = Vec::new();
    let mut present = Vec::new();
    for cell in cells {
        levels.push(i16::from(*cell != Cell::Null));
        if *cell != Cell::Null {
            present.push(cell);
        } else if !column.nullable {
            return Err(mistyped());
        }
    }
    let levels = column.nullable.then_some(&levels[..]);
    match column.kind {
        Type::Text => {
            let values = present
                .iter()
                .map(|cell| match cell {
                    Cell::Text(text) => Ok(ByteArray::from(text.as_bytes().to_vec())),
                    _ => Err(mistyped()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer
                .typed::<ByteArrayType>()
                .write_batch(&values, levels, None)?;
        }
        Type::Bool => {
            let values = present
                .iter()
                .map(|cell| match cell {
                    Cell::Bool(value) => Ok(*value),
                    _ => Err(mistyped()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer
                .typed::<BoolType>()
                .write_batch(&values, levels, None)?;
        }
        Type::Count => {
            let values = present
                .iter()
                .map(|cell| match cell {
                    Cell::Count(value) => i64::try_from(*value).map_err(|_| {
                        ExportError::Line(format!("`{}`: {value} is too large", column.name))
                    }),
                    _ => Err(mistyped()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer
                .typed::<Int64Type>()
                .write_batch(&values, levels, None)?;
        }
        Type::Integer => {
            let values = present
                .iter()
                .map(|cell| match cell {
                    Cell::Integer(value) => Ok(*value),
                    _ => Err(mistyped()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer
                .typed::<Int64Type>()
                .write_batch(&values, levels, None)?;
        }
        Type::Decimal => {
            let values = present
                .iter()
                .map(|cell| match cell {
                    Cell::Decimal(value) => decimal_bytes(*value, scale),
                    _ => Err(mistyped()),
                })
                .collect::<Result<Vec<FixedLenByteArray>, _>>()?;
            writer
                .typed::<FixedLenByteArrayType>()
                .write_batch(&values, levels, None)?;
        }
        Type::Timestamp => {
            let values = present
                .iter()
                .map(|cell| match cell {
                    Cell::Timestamp(value) => Ok(value.as_microsecond()),
                    _ => Err(mistyped()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer
                .typed::<Int64Type>()
                .write_batch(&values, levels, None)?;
        }
        Type::Date => {
            let values = present
                .iter()
                .map(|cell| match cell {
                    Cell::Date(value) => days_since_epoch(*value),
                    _ => Err(mistyped()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer
                .typed::<Int32Type>()
                .write_batch(&values, levels, None)?;
        }
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
    let too_large =
        || ExportError::Line(format!("amount {amount} does not fit DECIMAL(38, {scale})"));
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
        assert_eq!(
            days_since_epoch(jiff::civil::date(2026, 10, 1)).unwrap(),
            20_727
        );
    }
}
