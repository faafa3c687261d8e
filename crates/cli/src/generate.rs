//! `wameter gen`: seedable synthetic traffic in the canonical format, for
//! demos, benchmarks and load tests — or, with `--webhooks`, the same
//! traffic as the webhook bodies Meta would POST for it.
//!
//! The same seed and options always give the same bytes (the generator is
//! [`wameter_core::random::SplitMix64`]).

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use wameter_core::account::Accounts;
use wameter_core::charge::Charge;
use wameter_core::engine::Engine;
use wameter_core::event::{CallStatus, DeliveryStatus, EventKind, Origin};
use wameter_core::market::MarketTable;
use wameter_core::random::SplitMix64;
use wameter_core::ratecard::{RateBook, TierBook};
use wameter_log::Parsed;
use wameter_meta::outgoing::{
    Billing, CallEnd, Sender, StatusReport, UserMessage, test_display_number,
};

/// Options of `wameter gen`.
#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// Seed; the same seed gives the same log.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First day of traffic (UTC). Traffic starts one day later so that every
    /// business-local date stays inside the range.
    #[arg(long, default_value = "2026-01-01")]
    from: Date,
    /// Last day of traffic (UTC), inclusive.
    #[arg(long, default_value = "2026-03-31")]
    to: Date,
    /// Approximate number of events to write.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Number of business phone numbers.
    #[arg(long, default_value_t = 6)]
    businesses: u32,
    /// Number of distinct users per business.
    #[arg(long, default_value_t = 2_000)]
    users: u32,
    /// Percent of outbound messages that fail.
    #[arg(long, default_value_t = 2)]
    failed_percent: u64,
    /// Percent of status lines written twice (webhook redelivery).
    #[arg(long, default_value_t = 1)]
    duplicate_percent: u64,
    /// Write the log here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also write a matching accounts file (time zones, WABAs, portfolios).
    #[arg(long, value_name = "FILE")]
    accounts_out: Option<PathBuf>,
    /// Write Meta webhook POST bodies (one per line) instead of canonical
    /// events: users' messages, and each send's statuses with the `pricing`
    /// and `conversation` objects Meta would attach, as the engine prices
    /// them (with the accounts of `--accounts-out`, if given, and the
    /// built-in rate cards). Sends themselves are not webhooks: `replay`
    /// infers them from the statuses' pricing, as for a real capture.
    #[arg(long)]
    webhooks: bool,
    /// Graph API version the webhooks are shaped for (from 24 on, a PMP
    /// status has a `conversation` object only inside a free entry point).
    #[arg(long, default_value_t = 24, requires = "webhooks")]
    graph_version: u32,
}

/// Calling-code prefixes users are drawn from, with weights: a spread over
/// standalone markets, regions, NANP splits and "Other".
const USER_PREFIXES: [(&str, u64); 16] = [
    ("5511", 14),
    ("9198", 14),
    ("6281", 10),
    ("5255", 8),
    ("1212", 8),
    ("4915", 6),
    ("2348", 6),
    ("4477", 5),
    ("1809", 3),
    ("2547", 5),
    ("3531", 4),
    ("9715", 4),
    ("3546", 2),
    ("7916", 4),
    ("6012", 4),
    ("2771", 3),
];

const ZONES: [&str; 6] = [
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "UTC",
    "Europe/Berlin",
    "America/Mexico_City",
    "Asia/Jakarta",
];

struct Generator<W: Write> {
    out: W,
    random: SplitMix64,
    args: GenArgs,
    written: u64,
    next_id: u64,
}

impl<W: Write> Generator<W> {
    fn business(&self, index: u64) -> String {
        format!("10654035224{:04}", index)
    }

    fn user(&mut self, business: u64) -> String {
        let user = self.random.below(u64::from(self.args.users));
        let total: u64 = USER_PREFIXES.iter().map(|(_, w)| w).sum();
        // The user's market is a function of the user, not of the draw.
        let mut pick = (user.wrapping_mul(2_654_435_761) ^ business) % total;
        let prefix = USER_PREFIXES
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map_or("5511", |(p, _)| p);
        format!("+{prefix}{:07}", user * 7 + business)
    }

    fn at(&mut self, at: Timestamp) -> String {
        // Half the lines use RFC 3339, half UNIX seconds: both are valid input.
        if self.random.percent(50) {
            format!("\"{at}\"")
        } else {
            at.as_second().to_string()
        }
    }

    fn line(&mut self, text: String) -> Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    fn inbound(
        &mut self,
        business: &str,
        user: &str,
        at: Timestamp,
        entry_point: bool,
    ) -> Result<()> {
        let at = self.at(at);
        let entry = if entry_point {
            r#","entry_point":"ad""#
        } else {
            ""
        };
        self.line(format!(
            r#"{{"type":"inbound","at":{at},"business":"{business}","user":"{user}"{entry}}}"#
        ))
    }

    /// An outbound message and its statuses. Returns the delivery instant.
    fn outbound(
        &mut self,
        business: &str,
        user: &str,
        at: Timestamp,
        template: Option<&str>,
        must_fail: bool,
    ) -> Result<Option<Timestamp>> {
        self.next_id += 1;
        let id = format!("wamid.gen.{}.{}", self.args.seed, self.next_id);
        let template = match template {
            Some(category) => {
                format!(r#","template":{{"name":"{category}_notice","category":"{category}"}}"#)
            }
            None => String::new(),
        };
        let when = self.at(at);
        self.line(format!(r#"{{"type":"outbound","at":{when},"business":"{business}","user":"{user}","id":"{id}"{template}}}"#))?;
        let sent = at + SignedDuration::from_secs(1);
        self.status(&id, "sent", sent, None)?;
        if must_fail || self.random.percent(self.args.failed_percent) {
            let code = if must_fail {
                131_047
            } else {
                [131_026, 131_049, 131_050][self.random.below(3) as usize]
            };
            self.status(
                &id,
                "failed",
                sent + SignedDuration::from_secs(2),
                Some(code),
            )?;
            return Ok(None);
        }
        let delivered = sent + SignedDuration::from_secs(1 + self.random.below(30) as i64);
        // Some devices report delivered and read at once: only `read` arrives.
        let read_only = self.random.percent(3);
        if !read_only {
            self.status(&id, "delivered", delivered, None)?;
        }
        if read_only || self.random.percent(60) {
            let read = if read_only {
                delivered
            } else {
                delivered + SignedDuration::from_secs(self.random.below(600) as i64)
            };
            self.status(&id, "read", read, None)?;
        }
        Ok(Some(delivered))
    }

    fn status(&mut self, id: &str, status: &str, at: Timestamp, error: Option<u32>) -> Result<()> {
        let when = self.at(at);
        let error = error
            .map(|e| format!(r#","error":{e}"#))
            .unwrap_or_default();
        let line =
            format!(r#"{{"type":"status","at":{when},"id":"{id}","status":"{status}"{error}}}"#);
        if self.random.percent(self.args.duplicate_percent) {
            self.line(line.clone())?;
        }
        self.line(line)
    }

    fn episode(&mut self, start: Timestamp, span_secs: u64) -> Result<()> {
        let at = start + SignedDuration::from_secs(self.random.below(span_secs) as i64);
        let business_index = self.random.below(u64::from(self.args.businesses));
        let business = self.business(business_index);
        let user = self.user(business_index);
        let minutes = |random: &mut SplitMix64, max: u64| {
            SignedDuration::from_secs(60 * (1 + random.below(max)) as i64)
        };
        match self.random.below(100) {
            // A support session: the user writes, the business answers
            // free-form, sometimes with a utility template too.
            0..=54 => {
                let entry_point = self.random.percent(5);
                self.inbound(&business, &user, at, entry_point)?;
                let mut reply_at = at;
                for _ in 0..1 + self.random.below(3) {
                    reply_at += minutes(&mut self.random, 30);
                    self.outbound(&business, &user, reply_at, None, false)?;
                }
                if self.random.percent(20) {
                    reply_at += minutes(&mut self.random, 120);
                    self.outbound(&business, &user, reply_at, Some("utility"), false)?;
                }
                if self.random.percent(30) {
                    let later = reply_at + minutes(&mut self.random, 600);
                    self.inbound(&business, &user, later, false)?;
                    let reply = later + minutes(&mut self.random, 10);
                    self.outbound(&business, &user, reply, None, false)?;
                }
            }
            // A business-initiated template; sometimes the user answers.
            55..=98 => {
                let category = [
                    "marketing",
                    "marketing",
                    "utility",
                    "utility",
                    "authentication",
                ][self.random.below(5) as usize];
                let delivered = self.outbound(&business, &user, at, Some(category), false)?;
                if let Some(delivered) = delivered
                    && self.random.percent(25)
                {
                    let answer = delivered + minutes(&mut self.random, 240);
                    self.inbound(&business, &user, answer, false)?;
                    let reply = answer + minutes(&mut self.random, 15);
                    self.outbound(&business, &user, reply, None, false)?;
                }
            }
            // A free-form message long after the window closed: Meta
            // refuses it with 131047.
            _ => {
                self.outbound(&business, &user, at, None, true)?;
            }
        }
        Ok(())
    }
}

fn accounts_text(businesses: u32) -> String {
    let mut text =
        String::from("# Written by `wameter gen`: one entry per generated business number.\n");
    for index in 0..u64::from(businesses) {
        text.push_str(&format!(
            "\n[[business]]\nphone_number_id = \"10654035224{index:04}\"\nwaba = \"waba-{}\"\nportfolio = \"portfolio-{}\"\ntimezone = \"{}\"\ncurrency = \"USD\"\n",
            index / 2,
            index / 4,
            ZONES[index as usize % ZONES.len()]
        ));
    }
    text
}

/// Runs `wameter gen`.
pub fn run(args: GenArgs) -> Result<ExitCode> {
    if args.businesses == 0 || args.users == 0 {
        bail!("--businesses and --users must be at least 1");
    }
    let utc = jiff::tz::TimeZone::UTC;
    let midnight = jiff::civil::Time::midnight();
    let start = utc.to_timestamp(args.from.to_datetime(midnight))? + SignedDuration::from_hours(24);
    let end = utc.to_timestamp(args.to.to_datetime(midnight))? - SignedDuration::from_hours(12);
    let span = end.duration_since(start).as_secs();
    if span <= 0 {
        bail!("--to must be at least two days after --from");
    }
    let accounts = match &args.accounts_out {
        Some(path) => {
            let text = accounts_text(args.businesses);
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(wameter_log::parse_accounts("generated accounts", &text)?)
        }
        None => None,
    };
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let (seed, target, webhooks, graph_version) =
        (args.seed, args.events, args.webhooks, args.graph_version);
    let mut generator = Generator {
        out: Vec::with_capacity(1 << 20),
        random: SplitMix64(seed),
        args,
        written: 0,
        next_id: 0,
    };
    while generator.written < target {
        generator.episode(start, span as u64)?;
        if !webhooks && generator.out.len() > 1 << 20 {
            out.write_all(&generator.out)?;
            generator.out.clear();
        }
    }
    if webhooks {
        let log = String::from_utf8(std::mem::take(&mut generator.out))?;
        write_webhooks(&mut out, &log, &accounts.unwrap_or_default(), graph_version)?;
    } else {
        out.write_all(&generator.out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Turns a canonical log into the webhook bodies Meta would post for it,
/// one per line, billing objects from the engine's charges.
fn write_webhooks(
    out: &mut impl Write,
    log: &str,
    accounts: &Accounts,
    graph_version: u32,
) -> Result<()> {
    let mut events = Vec::new();
    for (index, line) in log.lines().enumerate() {
        let origin = Origin {
            source: 0,
            line: index as u32 + 1,
        };
        if let Parsed::Event(event) = wameter_log::parse_line(line, origin)
            .map_err(|e| anyhow::anyhow!("generated line {}: {e}", index + 1))?
        {
            events.push(event);
        }
    }
    let (rates, tiers) = (RateBook::builtin(), TierBook::default());
    let engine = Engine::new(accounts, &rates, &tiers, MarketTable::builtin());
    let report = engine.replay(events.clone());
    let charges: HashMap<&str, &Charge> = report
        .charges
        .iter()
        .map(|charge| (&*charge.message_id, charge))
        .collect();
    let delivered: HashSet<&str> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Status {
                id,
                status: DeliveryStatus::Delivered,
                ..
            } => Some(&**id),
            _ => None,
        })
        .collect();
    let mut sends: HashMap<&str, (&str, String)> = HashMap::new();
    // The status that charges, by message: its instant. A redelivered
    // status (the same line twice) is the same webhook twice, pricing and
    // all, as Meta redelivers.
    let mut billed: HashMap<&str, (DeliveryStatus, Timestamp)> = HashMap::new();
    for event in &events {
        let body = match &event.kind {
            EventKind::Inbound {
                business,
                user,
                id,
                entry_point,
                ..
            } => {
                let (waba, display) = (
                    accounts.get_or_default(business).waba.clone(),
                    test_display_number(business),
                );
                let sender = Sender {
                    waba: &waba,
                    phone_number_id: business,
                    display_phone_number: &display,
                };
                let wa_id = user.to_string().trim_start_matches('+').to_string();
                let id = id.as_deref().map_or_else(
                    || format!("wamid.gen.in.{}", event.origin.line),
                    str::to_string,
                );
                sender.user_text(&UserMessage {
                    wa_id: &wa_id,
                    user_id: None,
                    name: "User",
                    id: &id,
                    at: event.at,
                    text: "Hello",
                    content: None,
                    entry_point: *entry_point,
                })
            }
            EventKind::Outbound {
                business, user, id, ..
            } => {
                sends.insert(
                    id,
                    (
                        business,
                        user.to_string().trim_start_matches('+').to_string(),
                    ),
                );
                continue;
            }
            // Meta publishes no webhook for the agent's tokens.
            EventKind::AgentUsage(_) => continue,
            EventKind::Call(call) => {
                let (waba, display) = (
                    accounts.get_or_default(&call.business).waba.clone(),
                    test_display_number(&call.business),
                );
                let sender = Sender {
                    waba: &waba,
                    phone_number_id: &call.business,
                    display_phone_number: &display,
                };
                let wa_id = call.user.to_string().trim_start_matches('+').to_string();
                let ended_at = event
                    .at
                    .checked_add(SignedDuration::from_secs(i64::from(call.duration_seconds)))
                    .unwrap_or(event.at);
                // Meta ends calls COMPLETED or FAILED; what else a log says
                // (missed, rejected) is a call that completed unanswered.
                let status = if call.status == CallStatus::Failed {
                    "failed"
                } else {
                    "completed"
                };
                sender.call_terminate(&CallEnd {
                    id: &call.id,
                    user_wa_id: &wa_id,
                    direction: call.direction,
                    started_at: event.at,
                    ended_at,
                    duration_seconds: call.duration_seconds,
                    status,
                    opaque: None,
                })
            }
            EventKind::Status {
                id, status, error, ..
            } => {
                let Some((business, wa_id)) = sends.get(&**id) else {
                    continue;
                };
                let (waba, display) = (
                    accounts.get_or_default(business).waba.clone(),
                    test_display_number(business),
                );
                let sender = Sender {
                    waba: &waba,
                    phone_number_id: business,
                    display_phone_number: &display,
                };
                // Billing objects on `sent` and on the status that charges:
                // the first `delivered`, or `read` when none came.
                let mut bills = |status: DeliveryStatus| {
                    *billed.entry(id).or_insert((status, event.at)) == (status, event.at)
                };
                let charging = match status {
                    DeliveryStatus::Sent => true,
                    DeliveryStatus::Delivered => bills(DeliveryStatus::Delivered),
                    DeliveryStatus::Read => {
                        !delivered.contains(&**id) && bills(DeliveryStatus::Read)
                    }
                    _ => false,
                };
                let charge = charges
                    .get(&**id)
                    .filter(|_| charging)
                    .map(|charge| (*charge, Billing::of(charge)));
                let error = error.map(|code| code as u32);
                sender.status(&StatusReport {
                    id,
                    status: status.as_str(),
                    at: event.at,
                    recipient_wa_id: wa_id,
                    recipient_user_id: None,
                    charge,
                    error,
                    graph_version,
                    marketing_lite: false,
                    cost: None,
                })
            }
        };
        serde_json::to_writer(&mut *out, &body)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
