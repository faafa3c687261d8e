//! Calling API pricing (from 2025-07-01; docs/rules.md §14, decision D15).
//!
//! Everything a call costs is decided here, top to bottom:
//!
//! 1. **Which calls bill.** A business-initiated call that connected
//!    (`duration` > 0) bills; a user-initiated call never does, nor does a
//!    call that never connected. Meta's `status` does not decide it: "even
//!    unanswered calls are considered completed", and a `FAILED` call can
//!    carry a duration (`data/calling/NOTES.md` §2). Such a call bills and
//!    is marked *uncertain*, as is one with error 138023 ("could not
//!    determine if the call was connected"); `[rules] failed_calls_free =
//!    true` makes failed calls free instead.
//! 2. **Pulses.** The duration in 6-second pulses, a part pulse counting
//!    whole: 56 s = 10 pulses. A pulse costs a tenth of the per-minute rate.
//! 3. **Bands.** The rate is the band of the callee's market reached by the
//!    portfolio's billed minutes of the business-local month *including this
//!    call*: a call that crosses into a band is priced wholly there. Minutes
//!    count pulses / 10 (billed minutes, the contract's reading); `[rules]
//!    call_bands_count_seconds = true` counts connected seconds instead —
//!    Meta does not say which (NOTES §3, open question).
//! 4. **Money** is exact: `pulses × rate / 10`, not rounded (USD gets five
//!    decimals; Meta does not say how it rounds a call, NOTES §9.6).
//!
//! Calls open the customer service window ([`Call::opens_window`]); that
//! belongs to the message eras and is applied by the engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;

use crate::account::{Accounts, RuleOptions};
use crate::charge::{PricingError, Warning};
use crate::engine::MonthToDate;
use crate::event::{Call, CallDirection, CallStatus, Origin, UserId};
use crate::market::{Market, MarketTable};
use crate::money::Currency;
use crate::ratecard::calling::{CALLING_FROM, CallBand, CallRateBook};

/// The ruleset every call charge names.
pub const RULESET: &str = "calling-2025-07";

/// Countries whose business numbers may not place calls, whoever the
/// callee (Meta's calling overview as several sources quote it; NOTES §4).
pub const NO_BUSINESS_CALLS_FROM: [&str; 5] = ["US", "CA", "EG", "VN", "NG"];

/// The country of `business` that forbids it business-initiated calls, if
/// any: its `primary_country` in the accounts file (wameter knows no
/// other country of a business number).
pub fn calls_forbidden_from(business: &crate::account::Business) -> Option<&str> {
    business
        .primary_country
        .as_deref()
        .filter(|country| NO_BUSINESS_CALLS_FROM.contains(country))
}

/// Seconds in one billing pulse.
pub const PULSE_SECONDS: u32 = 6;

/// The error Meta sends when it "could not determine if the call was
/// connected".
const CONNECTION_UNKNOWN: i64 = 138023;

/// A call as read: the event's instant and origin with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedCall {
    /// When the call started (interfaces §1).
    pub at: Timestamp,
    /// Where it was read.
    pub origin: Origin,
    /// The call.
    pub call: Call,
}

/// What one call costs and why (interfaces §4, `calls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallCharge {
    /// The call id (`wacid…`).
    pub call_id: Box<str>,
    /// Business phone number id.
    pub business: Arc<str>,
    /// The Messaging account it is billed through, when not the number's
    /// first (as [`crate::charge::Charge::messaging_account`]).
    pub messaging_account: Option<Arc<str>>,
    /// The user called or calling.
    pub user: UserId,
    /// Who placed it.
    pub direction: CallDirection,
    /// When it started.
    pub started_at: Timestamp,
    /// Business-local date of the start: chooses the card and the month.
    pub local_date: Date,
    /// Seconds connected.
    pub duration_seconds: u32,
    /// 6-second pulses of that duration, rounded up.
    pub pulses: u64,
    /// Whether Meta bills it.
    pub billable: bool,
    /// Billed although Meta's webhook leaves doubt (a failed call with a
    /// duration, error 138023).
    pub uncertain: bool,
    /// How it ended.
    pub status: CallStatus,
    /// Meta's error code on it.
    pub error: Option<i64>,
    /// The callee's (or caller's) market.
    pub market: Market,
    /// The user's ISO country, when known (analytics split by it).
    pub country: Option<Arc<str>>,
    /// Billing currency of the Messaging account billed.
    pub currency: Currency,
    /// The band's rate, for a billable call.
    pub rate_per_minute: Option<Decimal>,
    /// `pulses × rate_per_minute / 10`; 0 when not billable.
    pub amount: Decimal,
    /// The band used (`0:50000`), for a billable call.
    pub tier: Option<String>,
    /// The portfolio whose month the minutes count in.
    pub portfolio: Arc<str>,
    /// Billed minutes of the portfolio's month in that market before this
    /// call, in tenths of a minute (pulses) or seconds, as counted.
    pub month_to_date: u64,
    /// The file the rate came from, and whether it is a partial one.
    pub rates_source: Option<(Arc<str>, bool)>,
    /// Always [`RULESET`].
    pub ruleset: &'static str,
    /// The rule applied.
    pub rule: &'static str,
    /// One sentence a person can read.
    pub reason: String,
    /// Where the call was read.
    pub origin: Origin,
}

/// Every call of a log, priced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReport {
    /// One entry per call, in start order.
    pub calls: Vec<CallCharge>,
    /// Billable calls that cannot be priced without guessing.
    pub errors: Vec<PricingError>,
    /// Conflicting copies of a call.
    pub warnings: Vec<Warning>,
    /// Copies of a call dropped (Meta redelivers webhooks).
    pub duplicates: u64,
}

/// Adds the billed units `calls` reached (on top of `carried`) to `out`:
/// what the next part of a log carries in.
pub fn publish(
    calls: &[CallCharge],
    options: &RuleOptions,
    carried: Option<&MonthToDate>,
    out: &mut MonthToDate,
) {
    if let Some(carried) = carried {
        out.call_units.extend(
            carried
                .call_units
                .iter()
                .map(|(key, units)| (key.clone(), *units)),
        );
    }
    for call in calls
        .iter()
        .filter(|call| call.billable && call.rate_per_minute.is_some())
    {
        let units = if options.call_bands_count_seconds {
            u64::from(call.duration_seconds)
        } else {
            call.pulses
        };
        let key = (
            call.portfolio.to_string(),
            call.currency.code().to_string(),
            call.market.to_string(),
            (call.local_date.year(), call.local_date.month()),
        );
        let reached = call.month_to_date.saturating_add(units);
        let slot = out.call_units.entry(key).or_insert(0);
        *slot = (*slot).max(reached);
    }
}

/// 6-second pulses in `seconds`, a part pulse counting whole.
pub fn pulses(seconds: u32) -> u64 {
    u64::from(seconds).div_ceil(u64::from(PULSE_SECONDS))
}

/// Keeps one copy of each (business, call id): the earliest read, so the
/// answer does not depend on input order. A copy that disagrees is reported.
fn distinct(calls: Vec<TimedCall>, warnings: &mut Vec<Warning>) -> (Vec<TimedCall>, u64) {
    let mut kept: HashMap<(Box<str>, Box<str>), TimedCall> = HashMap::with_capacity(calls.len());
    let mut duplicates = 0;
    for call in calls {
        let key = (call.call.business.clone(), call.call.id.clone());
        match kept.get_mut(&key) {
            None => {
                kept.insert(key, call);
            }
            Some(seen) => {
                duplicates += 1;
                let (first, second) = if (call.at, call.origin) < (seen.at, seen.origin) {
                    (&call, &*seen)
                } else {
                    (&*seen, &call)
                };
                if first.call != second.call || first.at != second.at {
                    warnings.push(Warning {
                        code: "conflicting_call",
                        message: format!(
                            "call {} of business {} is logged twice with different details ({} s from {} vs {} s from {}); the earliest copy is priced",
                            first.call.id, first.call.business, first.call.duration_seconds, first.at, second.call.duration_seconds, second.at
                        ),
                        origin: Some(second.origin),
                    });
                }
                if (call.at, call.origin) < (seen.at, seen.origin) {
                    *seen = call;
                }
            }
        }
    }
    let mut calls: Vec<TimedCall> = kept.into_values().collect();
    calls.sort_by(|a, b| {
        (a.at, &a.call.business, &a.call.id).cmp(&(b.at, &b.call.business, &b.call.id))
    });
    (calls, duplicates)
}

/// The band whose last minute is at or past `reached` (in counting units),
/// i.e. the band a call ending at that count falls in.
fn band_for(ladder: &[CallBand], reached: u64, units_per_minute: u64) -> Option<&CallBand> {
    ladder.iter().find(|band| {
        band.minutes_to
            .is_none_or(|to| reached <= to.saturating_mul(units_per_minute))
    })
}

/// Prices calls in start order (module docs). `accounts` gives each
/// business's portfolio, time zone, currency and the `[rules]` options.
pub fn price(
    calls: Vec<TimedCall>,
    accounts: &Accounts,
    rates: &CallRateBook,
    markets: &MarketTable,
) -> CallReport {
    price_from(calls, accounts, rates, markets, None)
}

/// [`price`], the month's bands counted on from `carried` (what an earlier
/// part of the log reached: [`crate::engine::MonthToDate::call_units`]).
pub fn price_from(
    calls: Vec<TimedCall>,
    accounts: &Accounts,
    rates: &CallRateBook,
    markets: &MarketTable,
    carried: Option<&MonthToDate>,
) -> CallReport {
    let mut report = CallReport::default();
    let (calls, duplicates) = distinct(calls, &mut report.warnings);
    report.duplicates = duplicates;
    let options = &accounts.options;
    let units_per_minute: u64 = if options.call_bands_count_seconds {
        60
    } else {
        10
    };
    // Billed units per (portfolio, currency, market, local month).
    let mut months: BTreeMap<(Arc<str>, Currency, Market, (i16, i8)), u64> = BTreeMap::new();
    for ((portfolio, currency, market, month), units) in
        carried.map(|c| &c.call_units).into_iter().flatten()
    {
        if let Some(currency) = Currency::parse(currency) {
            months.insert(
                (
                    Arc::from(portfolio.as_str()),
                    currency,
                    Market::from(market.as_str()),
                    *month,
                ),
                *units,
            );
        }
    }
    for TimedCall { at, origin, call } in calls {
        let messaging_account =
            accounts.messaging_account(&call.business, call.messaging_account.as_deref());
        let business = accounts.payer(&call.business, messaging_account.as_deref());
        if let Some(sentence) = call
            .messaging_account
            .as_deref()
            .and_then(|named| accounts.unknown_messaging_account(&call.business, named))
        {
            report.warnings.push(Warning {
                code: "note",
                message: format!("{}: {sentence}", call.id),
                origin: Some(origin),
            });
        }
        let local_date = business.timezone.to_datetime(at).date();
        let found = markets.lookup(&call.user, local_date);
        let pulses = pulses(call.duration_seconds);
        let failed = call.status == CallStatus::Failed;
        let uncertain =
            call.duration_seconds > 0 && (failed || call.error == Some(CONNECTION_UNKNOWN));
        let mut charge = CallCharge {
            call_id: call.id.clone(),
            business: business.phone_number_id.clone(),
            messaging_account,
            user: call.user.clone(),
            direction: call.direction,
            started_at: at,
            local_date,
            duration_seconds: call.duration_seconds,
            pulses,
            billable: false,
            uncertain: false,
            status: call.status.clone(),
            error: call.error,
            market: found.market.clone(),
            country: found.country.clone(),
            currency: business.currency,
            rate_per_minute: None,
            amount: Decimal::ZERO,
            tier: None,
            portfolio: business.portfolio.clone(),
            month_to_date: 0,
            rates_source: None,
            ruleset: RULESET,
            rule: "",
            reason: String::new(),
            origin,
        };
        match call.direction {
            CallDirection::UserInitiated => {
                charge.rule = "user-initiated-free";
                charge.reason = "user-initiated call: free (Meta's calling pricing page); it opens the customer service window".into();
            }
            CallDirection::BusinessInitiated if call.duration_seconds == 0 => {
                charge.rule = "not-connected";
                charge.reason = format!(
                    "business-initiated call that never connected ({}): not billed",
                    call.status.as_str()
                );
            }
            CallDirection::BusinessInitiated if failed && options.failed_calls_free => {
                charge.rule = "failed-not-billed";
                charge.reason = format!(
                    "business-initiated call ended `failed` after {} s: not billed (`failed_calls_free`; Meta does not say, docs/rules.md §14)",
                    call.duration_seconds
                );
            }
            CallDirection::BusinessInitiated => {
                charge.billable = true;
                charge.uncertain = uncertain;
                charge.rule = "business-initiated-connected";
                if local_date < CALLING_FROM {
                    report.errors.push(PricingError {
                        message_id: Arc::from(&*call.id),
                        origin,
                        message: format!(
                            "business-initiated call that connected is dated {local_date}, before the Calling API billed calls ({CALLING_FROM}): check its timestamp"
                        ),
                    });
                    continue;
                }
                let ladder = rates.ladder(business.currency, &found.market, local_date);
                let key = (
                    business.portfolio.clone(),
                    business.currency,
                    found.market.clone(),
                    (local_date.year(), local_date.month()),
                );
                let before = months.get(&key).copied().unwrap_or(0);
                let units = if options.call_bands_count_seconds {
                    u64::from(call.duration_seconds)
                } else {
                    pulses
                };
                let reached = before.saturating_add(units);
                let Some(band) = band_for(ladder, reached, units_per_minute) else {
                    let why = if ladder.is_empty() {
                        let (earlier, later) =
                            rates.nearest(business.currency, &found.market, local_date);
                        let known = match (earlier, later) {
                            (None, None) => String::new(),
                            (Some(d), _) => format!(" (latest known: {d})"),
                            (None, Some(d)) => format!(" (earliest known: {d})"),
                        };
                        format!(
                            "no calling rate for {} in {} on {local_date}{known}",
                            found.market, business.currency
                        )
                    } else {
                        format!(
                            "the month's calls to {} reach {} minute(s), past the last band the calling rates give ({})",
                            found.market,
                            minutes_text(reached, units_per_minute),
                            ladder.last().map(CallBand::label).unwrap_or_default()
                        )
                    };
                    report.errors.push(no_rate(&call, origin, why));
                    continue;
                };
                // Checked: a rate file can hold any decimal.
                let Some(amount) = Decimal::from(pulses).checked_mul(band.rate_per_minute) else {
                    report.errors.push(no_rate(
                        &call,
                        origin,
                        format!(
                            "{pulses} pulses at {} per minute overflow an exact amount",
                            band.rate_per_minute
                        ),
                    ));
                    continue;
                };
                months.insert(key, reached);
                charge.month_to_date = before;
                charge.rate_per_minute = Some(band.rate_per_minute);
                charge.amount = amount / Decimal::TEN;
                charge.tier = Some(band.label());
                charge.rates_source = Some((band.source.clone(), band.partial));
                let crossed = band.minutes_from > 1
                    && before < (band.minutes_from - 1).saturating_mul(units_per_minute);
                charge.reason = format!(
                    "business-initiated call connected {} s = {pulses} pulse(s) of 6 s; {} at {} {}/min (band {} of {}'s month in {}, {} min before this call{}){}{}",
                    call.duration_seconds,
                    found.market,
                    band.rate_per_minute,
                    business.currency,
                    band.label(),
                    business.portfolio,
                    found.market,
                    minutes_text(before, units_per_minute),
                    if crossed {
                        "; the call crosses into this band and is priced wholly in it"
                    } else {
                        ""
                    },
                    if band.partial {
                        format!("; rate from {}, a partial card", band.source)
                    } else {
                        String::new()
                    },
                    if uncertain {
                        if failed {
                            "; billed although Meta says `failed`: it carries a duration (uncertain, docs/rules.md §14)"
                        } else {
                            "; billed although Meta could not tell whether it connected (138023, uncertain)"
                        }
                    } else {
                        ""
                    }
                );
            }
        }
        report.calls.push(charge);
    }
    report
}

/// What a calling campaign will cost in one market ([`quote`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallQuoteLine {
    /// The market.
    pub market: String,
    /// Minutes asked for.
    pub minutes: u64,
    /// Calls of the given length they make.
    pub calls: u64,
    /// Billed minutes of the portfolio's month in the market before them.
    pub month_to_date: u64,
    /// (band, rate per minute, calls in it, amount), in band order.
    pub bands: Vec<(String, Decimal, u64, Decimal)>,
    /// The sum.
    pub amount: Decimal,
}

/// Prices a calling campaign before it is placed: `minutes` per market of
/// business-initiated calls that connect, each `call_seconds` long (the
/// last one shorter), on `date` in the business's time zone, after
/// `month_to_date` billed minutes of the month in that market. Priced by
/// [`price`] itself, so bands and a call crossing into one are what a
/// replay would find.
pub fn quote(
    business: &crate::account::Business,
    accounts: &Accounts,
    rates: &CallRateBook,
    markets: &MarketTable,
    date: Date,
    minutes: &[(String, u64)],
    month_to_date: &BTreeMap<String, u64>,
    call_seconds: u32,
) -> Result<Vec<CallQuoteLine>, String> {
    let call_seconds = call_seconds.max(1);
    let noon = business
        .timezone
        .to_timestamp(date.at(12, 0, 0, 0))
        .map_err(|e| e.to_string())?;
    let first = business
        .timezone
        .to_timestamp(date.first_of_month().at(0, 0, 1, 0))
        .map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for (market, wanted) in minutes {
        let user = markets
            .example_number(market, date)
            .ok_or_else(|| format!("`{market}` is not one of Meta's markets on {date}"))?;
        let call = |id: String, seconds: u32| Call {
            business: business.phone_number_id.to_string().into(),
            user: user.clone(),
            id: id.into(),
            direction: CallDirection::BusinessInitiated,
            duration_seconds: seconds,
            status: CallStatus::Completed,
            error: None,
            messaging_account: None,
        };
        let mut calls = Vec::new();
        let before = month_to_date.get(market).copied().unwrap_or(0);
        if before > 0 {
            // The month so far, as one earlier call (not in the quote).
            let seconds = u32::try_from(before.saturating_mul(60)).map_err(|_| {
                format!("{market}: {before} minutes to date is more than this quote can count")
            })?;
            calls.push(TimedCall {
                at: first,
                origin: Origin::default(),
                call: call("to-date".into(), seconds),
            });
        }
        let total = wanted.saturating_mul(60);
        let count = total.div_ceil(u64::from(call_seconds));
        if count > 10_000_000 {
            return Err(format!(
                "{market}: {count} calls of {call_seconds} s; give longer calls (--call-seconds)"
            ));
        }
        for n in 0..count {
            let seconds = (total - n * u64::from(call_seconds)).min(u64::from(call_seconds)) as u32;
            calls.push(TimedCall {
                at: noon,
                origin: Origin {
                    source: 0,
                    line: n as u32 + 1,
                },
                call: call(format!("q{n:09}"), seconds),
            });
        }
        let report = price(calls, accounts, rates, markets);
        if let Some(error) = report.errors.first() {
            return Err(error.message.clone());
        }
        let mut line = CallQuoteLine {
            market: market.clone(),
            minutes: *wanted,
            calls: count,
            month_to_date: before,
            bands: Vec::new(),
            amount: Decimal::ZERO,
        };
        for charge in report.calls.iter().filter(|c| &*c.call_id != "to-date") {
            let tier = charge.tier.clone().unwrap_or_default();
            let rate = charge.rate_per_minute.unwrap_or_default();
            match line.bands.last_mut() {
                Some(band) if band.0 == tier => {
                    band.2 += 1;
                    band.3 += charge.amount;
                }
                _ => line.bands.push((tier, rate, 1, charge.amount)),
            }
            line.amount += charge.amount;
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Minutes as counted, for reasons: `12.5` (pulses) or `0.75` (seconds).
fn minutes_text(units: u64, units_per_minute: u64) -> String {
    crate::money::format_amount(Decimal::from(units) / Decimal::from(units_per_minute))
}

fn no_rate(call: &Call, origin: Origin, why: String) -> PricingError {
    PricingError {
        message_id: Arc::from(&*call.id),
        origin,
        message: format!(
            "business-initiated call that connected cannot be priced: {why}. Pass the calling rates with `--call-rates FILE` (effective,currency,market,minutes_from,minutes_to,rate_per_minute)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Business, RuleOptions};

    fn call(id: &str, user: &str, direction: CallDirection, seconds: u32) -> Call {
        Call {
            business: "B".into(),
            user: UserId::parse(user).unwrap(),
            id: id.into(),
            direction,
            duration_seconds: seconds,
            status: CallStatus::default_for(seconds),
            error: None,
            messaging_account: None,
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn priced(calls: Vec<(&str, Call)>, options: RuleOptions) -> CallReport {
        let accounts = Accounts::new(vec![Business::with_defaults("B")], options);
        let calls = calls
            .into_iter()
            .enumerate()
            .map(|(line, (when, call))| TimedCall {
                at: at(when),
                origin: Origin {
                    source: 0,
                    line: line as u32 + 1,
                },
                call,
            })
            .collect();
        price(
            calls,
            &accounts,
            CallRateBook::builtin_ref(),
            MarketTable::builtin(),
        )
    }

    const KENYA: &str = "+254700000001";

    #[test]
    fn pulses_round_up() {
        assert_eq!(
            (
                pulses(0),
                pulses(1),
                pulses(6),
                pulses(56),
                pulses(61),
                pulses(120)
            ),
            (0, 1, 1, 10, 11, 20)
        );
    }

    /// NOTES.md §10: 120 s → 20 pulses → 0.0206 USD; 56 s → 0.0103; 61 s → 0.01133 (Rest of Africa, July 2026).
    #[test]
    fn a_connected_business_call_pays_its_pulses() {
        let report = priced(
            vec![
                (
                    "2026-08-03T10:00:00Z",
                    call("a", KENYA, CallDirection::BusinessInitiated, 120),
                ),
                (
                    "2026-08-03T11:00:00Z",
                    call("b", KENYA, CallDirection::BusinessInitiated, 56),
                ),
                (
                    "2026-08-03T12:00:00Z",
                    call("c", KENYA, CallDirection::BusinessInitiated, 61),
                ),
            ],
            RuleOptions::default(),
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let amounts: Vec<String> = report
            .calls
            .iter()
            .map(|c| c.amount.normalize().to_string())
            .collect();
        assert_eq!(amounts, ["0.0206", "0.0103", "0.01133"]);
        assert_eq!(report.calls[0].tier.as_deref(), Some("0:50000"));
        assert_eq!(
            report.calls[2].month_to_date, 30,
            "12 + 2.0 + 1.0 minutes before, in pulses"
        );
    }

    #[test]
    fn user_initiated_and_unconnected_calls_are_free() {
        let report = priced(
            vec![
                (
                    "2026-08-03T10:00:00Z",
                    call("u", KENYA, CallDirection::UserInitiated, 300),
                ),
                (
                    "2026-08-03T10:05:00Z",
                    call("m", KENYA, CallDirection::BusinessInitiated, 0),
                ),
            ],
            RuleOptions::default(),
        );
        assert!(
            report
                .calls
                .iter()
                .all(|c| !c.billable && c.amount.is_zero())
        );
        assert_eq!(report.calls[0].rule, "user-initiated-free");
        assert_eq!(report.calls[1].rule, "not-connected");
        assert_eq!(
            report.calls[1].reason,
            "business-initiated call that never connected (missed): not billed"
        );
    }

    /// NOTES.md §10: at 49,999.5 minutes, a 2-minute call crosses into band 2 and pays 2.0 × 0.0084.
    #[test]
    fn a_call_crossing_into_a_band_is_priced_wholly_there() {
        // 49,999.5 billed minutes = 499,995 pulses: 833,325 s of calls.
        let mut calls = Vec::new();
        let mut left: u32 = 499_995 * 6;
        let mut n = 0;
        while left > 0 {
            let seconds = left.min(3_000_000);
            calls.push((
                "2026-08-01T00:00:00Z",
                call(
                    &format!("fill{n}"),
                    KENYA,
                    CallDirection::BusinessInitiated,
                    seconds,
                ),
            ));
            left -= seconds;
            n += 1;
        }
        calls.push((
            "2026-08-20T00:00:00Z",
            call("cross", KENYA, CallDirection::BusinessInitiated, 120),
        ));
        let report = priced(calls, RuleOptions::default());
        let cross = report
            .calls
            .iter()
            .find(|c| &*c.call_id == "cross")
            .unwrap();
        assert_eq!(cross.tier.as_deref(), Some("50001:250000"));
        assert_eq!(cross.amount.normalize().to_string(), "0.0168");
        assert!(
            cross.reason.contains("crosses into this band"),
            "{}",
            cross.reason
        );
    }

    /// NOTES.md §10: the real FAILED capture, made business-initiated: billed, uncertain, 4 pulses.
    #[test]
    fn a_failed_call_with_a_duration_bills_uncertain_unless_configured_free() {
        let failed = Call {
            status: CallStatus::Failed,
            error: Some(138021),
            ..call("f", KENYA, CallDirection::BusinessInitiated, 20)
        };
        let report = priced(
            vec![("2026-08-03T10:00:00Z", failed.clone())],
            RuleOptions::default(),
        );
        assert!(report.calls[0].billable && report.calls[0].uncertain);
        assert_eq!(report.calls[0].pulses, 4);
        assert!(report.calls[0].reason.contains("uncertain"));
        let free = priced(
            vec![("2026-08-03T10:00:00Z", failed)],
            RuleOptions {
                failed_calls_free: true,
                ..RuleOptions::default()
            },
        );
        assert!(!free.calls[0].billable);
        assert_eq!(free.calls[0].rule, "failed-not-billed");
    }

    #[test]
    fn bands_can_count_connected_seconds() {
        let options = RuleOptions {
            call_bands_count_seconds: true,
            ..RuleOptions::default()
        };
        let report = priced(
            vec![
                (
                    "2026-08-03T10:00:00Z",
                    call("a", KENYA, CallDirection::BusinessInitiated, 61),
                ),
                (
                    "2026-08-03T11:00:00Z",
                    call("b", KENYA, CallDirection::BusinessInitiated, 6),
                ),
            ],
            options,
        );
        assert_eq!(report.calls[1].month_to_date, 61);
        assert!(
            report.calls[1].reason.contains("1.0166"),
            "{}",
            report.calls[1].reason
        );
    }

    #[test]
    fn a_market_without_rates_is_an_error_naming_the_flag() {
        let report = priced(
            vec![(
                "2026-08-03T10:00:00Z",
                call("br", "+5511999990000", CallDirection::BusinessInitiated, 30),
            )],
            RuleOptions::default(),
        );
        assert!(report.calls.is_empty());
        assert!(
            report.errors[0]
                .message
                .contains("no calling rate for Brazil in USD on 2026-08-03"),
            "{}",
            report.errors[0].message
        );
        assert!(report.errors[0].message.contains("--call-rates"));
    }

    #[test]
    fn copies_of_a_call_count_once_and_the_earliest_is_priced() {
        let report = priced(
            vec![
                (
                    "2026-08-03T10:00:10Z",
                    call("a", KENYA, CallDirection::BusinessInitiated, 120),
                ),
                (
                    "2026-08-03T10:00:00Z",
                    call("a", KENYA, CallDirection::BusinessInitiated, 60),
                ),
                (
                    "2026-08-03T10:00:00Z",
                    call("a", KENYA, CallDirection::BusinessInitiated, 60),
                ),
            ],
            RuleOptions::default(),
        );
        assert_eq!((report.calls.len(), report.duplicates), (1, 2));
        assert_eq!(report.calls[0].duration_seconds, 60);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    }
}
