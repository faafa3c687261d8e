//! The typed tables `events`, `reconcile` and `invoice` export as CSV or
//! Parquet (`--format`), on the writers of `wameter-export`: the same
//! types and rules as the charge export (docs/interfaces.md, "Exports").

use std::collections::HashSet;
use std::str::FromStr;

use rust_decimal::Decimal;
use wameter_core::event::{Event, EventKind, InboundKind, UserId};
use wameter_core::reconcile::Reconciliation;
use wameter_export::{Cell, Column, Table, Type, column};

use crate::input::LoadedLogs;
use crate::invoice::{Invoice, InvoiceLine};

fn text(value: &str) -> Cell<'_> {
    Cell::Text(value.into())
}

fn optional(value: Option<&str>) -> Cell<'_> {
    value.map_or(Cell::Null, text)
}

fn user(user: &UserId) -> Cell<'static> {
    Cell::Text(user.to_string().into())
}

/// `wameter events --format csv|parquet`: one row per canonical event, in
/// the order `events` prints them.
pub struct EventTable<'a> {
    /// The events, sorted as `events` prints them.
    pub events: Vec<&'a Event>,
    /// Outbound events only a status's `pricing` vouches for.
    pub inferred: &'a HashSet<(Box<str>, Box<str>)>,
}

const EVENT_COLUMNS: [Column; 21] = [
    column("type", Type::Text, false),
    column("at", Type::Timestamp, false),
    column("business", Type::Text, true),
    column("user", Type::Text, true),
    column("id", Type::Text, true),
    column("messaging_account", Type::Text, true),
    column("template", Type::Text, true),
    column("template_category", Type::Text, true),
    column("entry_point", Type::Text, true),
    column("inbound_kind", Type::Text, true),
    column("status", Type::Text, true),
    column("error", Type::Integer, true),
    column("direction", Type::Text, true),
    column("duration_seconds", Type::Count, true),
    column("tokens", Type::Count, true),
    column("pricing_category", Type::Text, true),
    column("pricing_type", Type::Text, true),
    column("pricing_billable", Type::Bool, true),
    column("cost", Type::Decimal, true),
    column("cost_currency", Type::Text, true),
    column("inferred_from_pricing", Type::Bool, false),
];

impl Table for EventTable<'_> {
    fn columns(&self) -> &[Column] {
        &EVENT_COLUMNS
    }

    fn len(&self) -> usize {
        self.events.len()
    }

    fn row(&self, index: usize) -> Vec<Cell<'_>> {
        let event = self.events[index];
        let mut row = vec![Cell::Null; EVENT_COLUMNS.len()];
        row[1] = Cell::Timestamp(event.at);
        row[20] = Cell::Bool(false);
        match &event.kind {
            EventKind::Inbound {
                business,
                user: who,
                id,
                entry_point,
                kind,
            } => {
                row[0] = text("inbound");
                row[2] = text(business);
                row[3] = user(who);
                row[4] = optional(id.as_deref());
                row[8] = optional(entry_point.map(|e| e.as_str()));
                row[9] = text(match kind {
                    InboundKind::Message => "message",
                    InboundKind::Call => "call",
                });
            }
            EventKind::Outbound {
                business,
                user: who,
                id,
                template,
                messaging_account,
            } => {
                row[0] = text("outbound");
                row[2] = text(business);
                row[3] = user(who);
                row[4] = text(id);
                row[5] = optional(messaging_account.as_deref());
                row[6] = optional(template.as_ref().map(|t| &*t.name));
                row[7] = optional(template.as_ref().map(|t| t.category.as_str()));
                row[20] = Cell::Bool(
                    self.inferred
                        .contains(&(Box::from(&**business), Box::from(&**id))),
                );
            }
            EventKind::Status {
                id,
                status,
                error,
                detail,
            } => {
                row[0] = text("status");
                row[4] = text(id);
                row[10] = text(status.as_str());
                row[11] = error.map_or(Cell::Null, Cell::Integer);
                if let Some(detail) = detail {
                    row[2] = optional(detail.business.as_deref());
                    row[3] = detail.recipient.as_ref().map_or(Cell::Null, user);
                    row[5] = optional(detail.messaging_account.as_deref());
                    if let Some(pricing) = &detail.pricing {
                        row[15] = text(&pricing.category);
                        row[16] = optional(pricing.pricing_type.as_deref());
                        row[17] = pricing.billable.map_or(Cell::Null, Cell::Bool);
                        if let Some(cost) = &pricing.cost {
                            row[18] = Cell::Decimal(cost.amount);
                            row[19] = text(cost.currency.code());
                        }
                    }
                }
            }
            EventKind::Call(call) => {
                row[0] = text("call");
                row[2] = text(&call.business);
                row[3] = user(&call.user);
                row[4] = text(&call.id);
                row[5] = optional(call.messaging_account.as_deref());
                row[10] = text(call.status.as_str());
                row[11] = call.error.map_or(Cell::Null, Cell::Integer);
                row[12] = text(call.direction.as_str());
                row[13] = Cell::Count(u64::from(call.duration_seconds));
            }
            EventKind::AgentUsage(usage) => {
                row[0] = text("agent_usage");
                row[2] = text(&usage.business);
                row[3] = user(&usage.user);
                row[4] = text(&usage.id);
                row[5] = optional(usage.messaging_account.as_deref());
                row[14] = Cell::Count(usage.tokens);
            }
        }
        row
    }
}

/// `wameter reconcile --format csv|parquet`: one row per message where
/// Meta's pricing verdict and the engine's differ.
pub struct DiscrepancyTable<'a> {
    /// The reconciliation.
    pub result: &'a Reconciliation,
    /// Where each message was read.
    pub loaded: &'a LoadedLogs,
}

const DISCREPANCY_COLUMNS: [Column; 19] = [
    column("message_id", Type::Text, false),
    column("cause", Type::Text, false),
    column("fields", Type::Text, false),
    column("meta_status", Type::Text, false),
    column("meta_at", Type::Timestamp, false),
    column("meta_pricing_model", Type::Text, true),
    column("meta_category", Type::Text, false),
    column("meta_type", Type::Text, true),
    column("meta_billable", Type::Bool, true),
    column("engine_pricing_model", Type::Text, false),
    column("engine_category", Type::Text, false),
    column("engine_type", Type::Text, false),
    column("engine_billable", Type::Bool, false),
    column("engine_amount", Type::Decimal, false),
    column("engine_currency", Type::Text, false),
    column("delivered_at", Type::Timestamp, false),
    column("ruleset", Type::Text, false),
    column("rule", Type::Text, false),
    column("read_from", Type::Text, false),
];

impl Table for DiscrepancyTable<'_> {
    fn columns(&self) -> &[Column] {
        &DISCREPANCY_COLUMNS
    }

    fn len(&self) -> usize {
        self.result.discrepancies.len()
    }

    fn row(&self, index: usize) -> Vec<Cell<'_>> {
        let d = &self.result.discrepancies[index];
        let (meta, engine) = (&d.meta, &d.engine);
        vec![
            text(&d.message_id),
            text(&d.cause),
            Cell::Text(d.fields.join(";").into()),
            text(meta.status.as_str()),
            Cell::Timestamp(meta.at),
            optional(meta.pricing.pricing_model.as_deref()),
            text(&meta.pricing.category),
            optional(meta.pricing.pricing_type.as_deref()),
            meta.pricing.billable.map_or(Cell::Null, Cell::Bool),
            text(engine.pricing_model.as_str()),
            text(engine.category.as_str()),
            text(engine.pricing_type.as_str()),
            Cell::Bool(engine.billable),
            Cell::Decimal(engine.amount),
            text(engine.currency.code()),
            Cell::Timestamp(engine.delivered_at),
            text(engine.ruleset.id()),
            text(engine.rule),
            Cell::Text(self.loaded.position(engine.trail.origin).into()),
        ]
    }
}

/// `wameter invoice --format csv|parquet`: the lines, then the total line,
/// each with the client, month and currency.
pub struct InvoiceTable<'a>(pub &'a Invoice);

const INVOICE_COLUMNS: [Column; 11] = [
    column("client", Type::Text, false),
    column("month", Type::Text, false),
    column("currency", Type::Text, false),
    column("category", Type::Text, false),
    column("market", Type::Text, false),
    column("messages", Type::Count, false),
    column("billable", Type::Count, false),
    column("meta_cost", Type::Decimal, false),
    column("markup", Type::Decimal, false),
    column("fees", Type::Decimal, false),
    column("client_cost", Type::Decimal, false),
];

impl InvoiceTable<'_> {
    fn line(&self, index: usize) -> &InvoiceLine {
        self.0.lines.get(index).unwrap_or(&self.0.total)
    }
}

/// An invoice amount (exact decimal text, as the invoice computed it).
fn amount(value: &str) -> Cell<'_> {
    Decimal::from_str(value).map_or_else(|_| Cell::Text(value.into()), Cell::Decimal)
}

impl Table for InvoiceTable<'_> {
    fn columns(&self) -> &[Column] {
        &INVOICE_COLUMNS
    }

    fn len(&self) -> usize {
        self.0.lines.len() + 1
    }

    fn row(&self, index: usize) -> Vec<Cell<'_>> {
        let invoice = self.0;
        let line = self.line(index);
        vec![
            text(&invoice.client),
            text(&invoice.month),
            text(&invoice.currency),
            text(&line.category),
            text(&line.market),
            Cell::Count(line.messages),
            Cell::Count(line.billable),
            amount(&line.meta_cost),
            amount(&line.markup),
            amount(&line.fees),
            amount(&line.client_cost),
        ]
    }
}
