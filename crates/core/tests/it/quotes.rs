//! Quotes, checked against sums worked out by hand from real card rows.
//!
//! Rows used (USD, `data/ratecards/`):
//! - 2026-01-01 card: India utility 0.0014, Brazil utility 0.0068, Brazil marketing 0.0625;
//! - 2026-10-01 card: Brazil service 0.0068;
//! - 2024-10-01 CBP card: Brazil marketing 0.0625 per conversation.

use jiff::civil::date;
use rust_decimal::Decimal;
use wameter_core::category::TemplateCategory;
use wameter_core::engine::Engine;
use wameter_core::event::UserId;
use wameter_core::market::MarketTable;
use wameter_core::quote::{
    MonthToDateInput, Quote, QuoteCategory, QuoteError, QuoteRequest, Recipients, quote,
};
use wameter_core::ratecard::TierBook;
use wameter_core::ruleset::Ruleset;

use crate::support::*;

fn request(
    category: QuoteCategory,
    on: jiff::civil::Date,
    recipients: &[(&str, u64)],
) -> QuoteRequest {
    QuoteRequest {
        business: B.into(),
        category,
        date: on,
        recipients: Recipients::ByMarket(
            recipients
                .iter()
                .map(|(m, n)| (m.to_string(), *n))
                .collect(),
        ),
        in_window: Decimal::ZERO,
        month_to_date: MonthToDateInput::default(),
    }
}

fn run(world: &World, request: &QuoteRequest) -> Quote {
    let engine = Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        MarketTable::builtin(),
    );
    quote(&engine, request).unwrap()
}

const UTILITY: QuoteCategory = QuoteCategory::Template(TemplateCategory::Utility);

#[test]
fn utility_campaign_under_pmp_2025_is_free_inside_the_window() {
    let world = World::builtin();
    let mut ask = request(
        UTILITY,
        date(2026, 2, 10),
        &[("India", 1000), ("Brazil", 500)],
    );
    ask.in_window = dec("0.3");
    let quote = run(&world, &ask);
    assert_eq!(quote.ruleset, Ruleset::Pmp2025);
    let [brazil, india] = &quote.markets[..] else {
        panic!("{:?}", quote.markets)
    };
    // India: 300 inside (free), 700 × 0.0014 = 0.98.
    assert_eq!(
        (india.recipients, india.in_window, india.charged),
        (1000, 300, 700)
    );
    assert_eq!(india.free.get("free_customer_service"), Some(&300));
    assert_eq!(india.amount, dec("0.98"));
    // Brazil: 150 inside, 350 × 0.0068 = 2.38.
    assert_eq!(
        (brazil.in_window, brazil.charged, brazil.amount),
        (150, 350, dec("2.38"))
    );
    assert_eq!(quote.total, dec("3.36"));
    assert_eq!(india.rules.get("utility-inside-csw"), Some(&300));
    // Naming a market twice is the same as naming it once with the sum.
    let mut split = request(
        UTILITY,
        date(2026, 2, 10),
        &[("India", 600), ("Brazil", 500), ("India", 400)],
    );
    split.in_window = dec("0.3");
    let again = run(&world, &split);
    assert_eq!(
        (
            again.markets[1].recipients,
            again.markets[1].charged,
            again.total
        ),
        (1000, 700, dec("3.36"))
    );
}

#[test]
fn a_tier_boundary_crossed_mid_campaign_prices_band_by_band() {
    // Illustrative bands (no real Meta tier table is available): the first
    // 1,000 India utility messages of a month at 0.0014, then 0.0010.
    let bands = TierBook::parse_simple_csv(
        "tiers.csv",
        "effective,currency,market,category,from,to,rate\n\
2026-01-01,USD,India,utility,0,1000,0.0014\n\
2026-01-01,USD,India,utility,1001,,0.0010\n",
    )
    .unwrap();
    let world = World {
        tiers: TierBook::new(bands),
        ..World::builtin()
    };
    let mut ask = request(UTILITY, date(2026, 2, 10), &[("India", 300)]);
    ask.month_to_date.all = 900;
    let quote = run(&world, &ask);
    let india = &quote.markets[0];
    // Messages #901-#1000 at 0.0014 (0.14), #1001-#1200 at 0.0010 (0.20).
    let bands: Vec<(Option<&str>, String, u64, String)> = india
        .bands
        .iter()
        .map(|b| {
            (
                b.tier.as_deref(),
                b.rate.to_string(),
                b.messages,
                b.amount.normalize().to_string(),
            )
        })
        .collect();
    assert_eq!(
        bands,
        [
            (Some("0:1000"), "0.0014".into(), 100, "0.14".into()),
            (Some("1001:MAX"), "0.0010".into(), 200, "0.2".into())
        ]
    );
    assert_eq!(quote.total, dec("0.34"));
    // Month-to-date given per market wins over the general figure.
    ask.month_to_date.by_market.insert("India".into(), 0);
    assert_eq!(run(&world, &ask).total, dec("0.42"));
}

#[test]
fn service_messages_under_the_2026_10_rules_use_the_allowance() {
    let world = World::builtin();
    let mut ask = request(
        QuoteCategory::Service,
        date(2026, 11, 25),
        &[("Brazil", 100)],
    );
    ask.in_window = dec("0.5");
    ask.month_to_date.all = 980;
    let quote = run(&world, &ask);
    assert_eq!(quote.ruleset, Ruleset::Pmp2026Oct);
    let brazil = &quote.markets[0];
    // 50 outside the window cannot be sent free-form; of the 50 sent,
    // #981-#1000 are in the allowance and 30 pay 0.0068 = 0.204.
    assert_eq!(
        (
            brazil.not_sendable,
            brazil.charged,
            brazil.free.get("free_customer_service")
        ),
        (50, 30, Some(&20))
    );
    assert_eq!(quote.total, dec("0.204"));
    assert!(
        !quote.warnings.iter().any(|w| w.code == "reported_rules"),
        "the 2026-10 rules are confirmed: {:?}",
        quote.warnings
    );
}

#[test]
fn conversation_based_quote_and_real_numbers() {
    let world = World::builtin();
    let mut ask = request(
        QuoteCategory::Template(TemplateCategory::Marketing),
        date(2024, 12, 10),
        &[],
    );
    ask.recipients = Recipients::Users(
        ["+5511999990001", "+5511999990002", "+919876543210"]
            .iter()
            .map(|n| UserId::parse(n).unwrap())
            .collect(),
    );
    let quote = run(&world, &ask);
    assert_eq!(quote.ruleset, Ruleset::Cbp2023);
    // Two Brazil conversations at 0.0625, one India at 0.0107.
    let amounts: Vec<(&str, u64, Decimal)> = quote
        .markets
        .iter()
        .map(|m| (&*m.market, m.charged, m.amount))
        .collect();
    assert_eq!(
        amounts,
        [("Brazil", 2, dec("0.125")), ("India", 1, dec("0.0107"))]
    );
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let world = World::builtin();
    let engine = Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        MarketTable::builtin(),
    );
    let unknown = quote(
        &engine,
        &request(UTILITY, date(2026, 2, 10), &[("Atlantis", 5)]),
    )
    .unwrap_err();
    assert!(
        matches!(unknown, QuoteError::UnknownMarket { .. }),
        "{unknown}"
    );
    // Kazakhstan is its own market only from 2026-10-01.
    assert!(
        quote(
            &engine,
            &request(UTILITY, date(2026, 9, 1), &[("Kazakhstan", 5)])
        )
        .is_err()
    );
    let mut share = request(UTILITY, date(2026, 2, 10), &[("India", 5)]);
    share.in_window = dec("1.5");
    assert_eq!(
        quote(&engine, &share).unwrap_err(),
        QuoteError::BadShare(dec("1.5"))
    );
    // No EUR per-message card covers 2025-08: an error, never a guess.
    let eur = World::with_businesses(vec![business(B, "UTC", "EUR")]);
    let engine = Engine::new(
        &eur.accounts,
        &eur.rates,
        &eur.tiers,
        MarketTable::builtin(),
    );
    let error = quote(
        &engine,
        &request(UTILITY, date(2025, 8, 1), &[("India", 5)]),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains(
            "no PMP rate card in EUR covers 2025-08-01; the earliest after it is eur-2026-07-01"
        ),
        "{error}"
    );
}

#[test]
fn large_quotes_carry_counters_across_slices() {
    // 60,000 service messages replay in two slices (QUOTE_SLICE = 50,000).
    // The 1,000 free service messages of the number go to the first messages
    // in settlement order (Brazil's +55 numbers sort before India's +91):
    // Brazil 29,000 × 0.0068 = 197.2, India 30,000 × 0.0014 = 42. Had the
    // second slice started from fresh counters, India would get 1,000 free.
    const { assert!(wameter_core::quote::QUOTE_SLICE < 60_000) };
    let world = World::builtin();
    let mut ask = request(
        QuoteCategory::Service,
        date(2026, 11, 25),
        &[("Brazil", 30_000), ("India", 30_000)],
    );
    ask.in_window = Decimal::ONE;
    let quote = run(&world, &ask);
    let charged: Vec<(&str, u64, Decimal)> = quote
        .markets
        .iter()
        .map(|m| (&*m.market, m.charged, m.amount))
        .collect();
    assert_eq!(
        charged,
        [
            ("Brazil", 29_000, dec("197.2")),
            ("India", 30_000, dec("42"))
        ]
    );
    assert_eq!(quote.total, dec("239.2"));
}
