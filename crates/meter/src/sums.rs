//! Kept charges summed by everything a cost report can group them by,
//! read row by row without keeping the rows.
//!
//! A cost report needs counts and exact amounts per group, not the
//! charges: building a typed [`Row`](wameter_export::Row) per kept charge
//! (a dozen strings each) was most of `/v1/reports/costs` on a store of
//! 140,000 charges. [`ChargeSums`] takes each row's columns borrowed from
//! the store's cursor and keeps one [`ChargeSum`] per distinct group; a
//! row reads exactly when [`crate::row_of`] would read it, and one that
//! does not is named the same way (`unreadable_kept_charge`).

use std::collections::HashMap as StdHashMap;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use wameter_export::Kind;

use crate::records::KeptFacts;

// Keys are the store's own columns, and iteration order never reaches a
// report (the caller orders the groups).
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// One kept charge's columns, borrowed (from a database cursor or a
/// [`KeptFacts`]): those a cost report groups by, and those a row must
/// read for it to be counted.
#[derive(Clone, Copy, Debug)]
pub struct FactsRef<'a> {
    /// Business phone number id.
    pub business: &'a str,
    /// The wamid, call id or usage id (named when the row does not read).
    pub message_id: &'a str,
    /// Delivery (or start, or use) instant, UNIX microseconds.
    pub delivered_at_us: i64,
    /// Nanoseconds past that microsecond.
    pub delivered_nanos: i32,
    /// `message`, `call` or `agent_usage`.
    pub kind: &'a str,
    /// The Messaging account it is billed through, when not the number's
    /// first.
    pub messaging_account: Option<&'a str>,
    /// Business-local date (`YYYY-MM-DD`).
    pub local_date: &'a str,
    /// CBP or PMP (messages).
    pub pricing_model: Option<&'a str>,
    /// Category.
    pub category: &'a str,
    /// Regular or why free (messages).
    pub pricing_type: Option<&'a str>,
    /// Direction (calls).
    pub direction: Option<&'a str>,
    /// Meta's `billable`.
    pub billable: bool,
    /// Meta market.
    pub market: Option<&'a str>,
    /// Currency code.
    pub currency: &'a str,
    /// Exact amount, as kept.
    pub amount: &'a str,
    /// Messages, call minutes or tokens.
    pub quantity: i64,
}

impl<'a> FactsRef<'a> {
    /// The columns of a kept charge read whole.
    pub fn of(kept: &'a KeptFacts) -> FactsRef<'a> {
        let facts = &kept.facts;
        FactsRef {
            business: &kept.business,
            message_id: &kept.message_id,
            delivered_at_us: kept.delivered_at_us,
            delivered_nanos: facts.delivered_nanos,
            kind: &facts.kind,
            messaging_account: facts.messaging_account.as_deref(),
            local_date: &facts.local_date,
            pricing_model: facts.pricing_model.as_deref(),
            category: &facts.category,
            pricing_type: facts.pricing_type.as_deref(),
            direction: facts.direction.as_deref(),
            billable: facts.billable,
            market: facts.market.as_deref(),
            currency: &facts.currency,
            amount: &facts.amount,
            quantity: facts.quantity,
        }
    }
}

/// The columns of a kept charge that must parse for it to be read at all:
/// one check, shared by [`crate::row_of`] and [`ChargeSums`], so a row
/// reads (or is named unreadable, for the same column) alike in both.
pub(crate) struct Parsed {
    pub(crate) kind: Kind,
    pub(crate) at: Timestamp,
    pub(crate) local_date: Date,
    pub(crate) amount: Decimal,
    pub(crate) quantity: u64,
}

impl Parsed {
    /// `Err` names the charge and the first column that does not read.
    pub(crate) fn of(facts: &FactsRef<'_>) -> Result<Parsed, String> {
        let bad = |what: &str, value: &str| {
            format!("{}: kept {what} {value:?} does not read", facts.message_id)
        };
        Ok(Parsed {
            kind: Kind::parse(facts.kind).ok_or_else(|| bad("kind", facts.kind))?,
            at: crate::kept_instant(facts.delivered_at_us, facts.delivered_nanos)
                .ok_or_else(|| bad("instant", &facts.delivered_at_us.to_string()))?,
            local_date: (facts.local_date.parse())
                .map_err(|_| bad("local date", facts.local_date))?,
            amount: Decimal::from_str(facts.amount).map_err(|_| bad("amount", facts.amount))?,
            quantity: u64::try_from(facts.quantity)
                .map_err(|_| bad("quantity", &facts.quantity.to_string()))?,
        })
    }
}

/// Kept charges alike in every column a cost report groups by: how many,
/// and their exact total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeSum {
    /// Business phone number id.
    pub business: String,
    /// The Messaging account named, when not the number's first.
    pub messaging_account: Option<String>,
    /// Business-local date.
    pub local_date: Date,
    /// Message, call or agent usage.
    pub kind: Kind,
    /// Category.
    pub category: String,
    /// Meta market.
    pub market: Option<String>,
    /// CBP or PMP (messages).
    pub pricing_model: Option<String>,
    /// Regular or why free (messages).
    pub pricing_type: Option<String>,
    /// Direction (calls).
    pub direction: Option<String>,
    /// Meta's `billable`.
    pub billable: bool,
    /// Currency code.
    pub currency: String,
    /// Kept charges summed.
    pub count: u64,
    /// Their total, exact.
    pub amount: Decimal,
}

/// Sums kept charges as they are read ([module docs](self)).
#[derive(Debug, Default)]
pub struct ChargeSums {
    /// Group key (the grouped columns, each length-prefixed, so no two
    /// groups share one) → its sum.
    groups: HashMap<String, ChargeSum>,
    /// Reused for every row's key.
    key: String,
    unreadable: Vec<String>,
}

impl ChargeSums {
    /// Counts one kept charge, or names it among the unreadable.
    pub fn add(&mut self, facts: &FactsRef<'_>) {
        let read = match Parsed::of(facts) {
            Ok(read) => read,
            Err(message) => {
                self.unreadable.push(message);
                return;
            }
        };
        let (kind, local_date, amount) = (read.kind, read.local_date, read.amount);
        self.key.clear();
        for part in [
            Some(facts.business),
            facts.messaging_account,
            Some(facts.local_date),
            Some(facts.kind),
            Some(facts.category),
            facts.market,
            facts.pricing_model,
            facts.pricing_type,
            facts.direction,
            Some(if facts.billable { "1" } else { "0" }),
            Some(facts.currency),
        ] {
            match part {
                None => self.key.push('-'),
                Some(text) => {
                    self.key.push_str(&text.len().to_string());
                    self.key.push(':');
                    self.key.push_str(text);
                }
            }
        }
        if let Some(sum) = self.groups.get_mut(self.key.as_str()) {
            sum.count += 1;
            sum.amount += amount;
            return;
        }
        let owned = |text: Option<&str>| text.map(str::to_string);
        self.groups.insert(
            self.key.clone(),
            ChargeSum {
                business: facts.business.to_string(),
                messaging_account: owned(facts.messaging_account),
                local_date,
                kind,
                category: facts.category.to_string(),
                market: owned(facts.market),
                pricing_model: owned(facts.pricing_model),
                pricing_type: owned(facts.pricing_type),
                direction: owned(facts.direction),
                billable: facts.billable,
                currency: facts.currency.to_string(),
                count: 1,
                amount,
            },
        );
    }

    /// The sums, in no particular order, and a message per kept charge
    /// that did not read.
    pub fn finish(self) -> (Vec<ChargeSum>, Vec<String>) {
        (self.groups.into_values().collect(), self.unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ChargeFacts;

    fn kept(
        id: &str,
        business: &str,
        account: Option<&str>,
        amount: &str,
        billable: bool,
    ) -> KeptFacts {
        KeptFacts {
            business: business.into(),
            delivered_at_us: 1_790_000_000_000_000,
            message_id: id.into(),
            facts: ChargeFacts {
                kind: "message".into(),
                messaging_account: account.map(str::to_string),
                user: "+5511999990000".into(),
                local_date: "2026-09-21".into(),
                pricing_model: Some("PMP".into()),
                category: "utility".into(),
                pricing_type: Some("regular".into()),
                direction: None,
                billable,
                market: Some("Brazil".into()),
                currency: "USD".into(),
                amount: amount.into(),
                quantity: 1,
                tier: None,
                ruleset: "pmp-2025".into(),
                rule: "pmp-utility".into(),
                template: None,
                opens_conversation: false,
                delivered_nanos: 0,
            },
        }
    }

    /// Sums agree with the rows `rows_of` reads, summed one by one, and a
    /// row that does not read is named as `rows_of` names it.
    #[test]
    fn sums_are_the_rows_summed() {
        let mut all = vec![
            kept("a", "B1", None, "0.0068", true),
            kept("b", "B1", None, "0.0068", true),
            kept("c", "B1", None, "0", false),
            // The same text split differently must not share a group.
            kept("d", "B1", Some(""), "0.0068", true),
            kept("e", "B", Some("1"), "0.0068", true),
            kept("f", "B2", None, "1.10", true),
            kept("g", "B2", None, "not money", true),
        ];
        let mut weird = kept("h", "B2", None, "1", true);
        weird.facts.local_date = "2026-13-01".into();
        all.push(weird);
        let mut sums = ChargeSums::default();
        for kept in &all {
            sums.add(&FactsRef::of(kept));
        }
        let (mut sums, unreadable) = sums.finish();
        let (rows, named) = crate::rows_of(all, |_| true);
        assert_eq!(
            unreadable,
            named
                .into_iter()
                .map(|(_, message, _)| message)
                .collect::<Vec<_>>()
        );
        let mut expected: Vec<ChargeSum> = Vec::new();
        for row in rows {
            let found = expected.iter_mut().find(|sum| {
                (
                    &sum.business,
                    &sum.messaging_account,
                    sum.local_date,
                    sum.billable,
                    &sum.amount.is_zero(),
                ) == (
                    &row.business,
                    &row.messaging_account,
                    row.local_date,
                    row.billable,
                    &row.amount.is_zero(),
                )
            });
            match found {
                Some(sum) => {
                    sum.count += 1;
                    sum.amount += row.amount;
                }
                None => expected.push(ChargeSum {
                    business: row.business,
                    messaging_account: row.messaging_account,
                    local_date: row.local_date,
                    kind: row.kind,
                    category: row.category,
                    market: row.market,
                    pricing_model: row.pricing_model,
                    pricing_type: row.pricing_type,
                    direction: row.direction,
                    billable: row.billable,
                    currency: row.currency,
                    count: 1,
                    amount: row.amount,
                }),
            }
        }
        let order = |sums: &mut Vec<ChargeSum>| {
            sums.sort_by(|a, b| {
                (&a.business, &a.messaging_account, a.billable).cmp(&(
                    &b.business,
                    &b.messaging_account,
                    b.billable,
                ))
            })
        };
        order(&mut sums);
        order(&mut expected);
        assert_eq!(sums, expected);
        assert_eq!(
            sums.len(),
            5,
            "B1 billable, B1 free, B1 + \"\", B + \"1\", B2"
        );
        assert_eq!(sums[2].count, 2);
        assert_eq!(sums[2].amount, Decimal::from_str("0.0136").unwrap());
    }
}
