//! Rate, tier and calling-rate files (`--rates`, `--tiers`,
//! `--call-rates`, `rates import`/`check`): every layout's reader on every
//! input, and the dispatch between them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wameter_core::ratecard::calling::CallRateBook;
use wameter_core::ratecard::{RateCard, TierBook, check_rate_file};

fuzz_target!(|text: &str| {
    let _ = check_rate_file("rates.csv", text);
    let _ = RateCard::check_meta_csv("rates.csv", text);
    let _ = TierBook::check_meta_csv("tiers.csv", text);
    let _ = TierBook::check_simple_csv("tiers.csv", text);
    let _ = CallRateBook::check_csv("calls.csv", text);
});
