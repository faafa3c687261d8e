//! An accounts file (`--accounts`, `serve`'s accounts): TOML → businesses,
//! rules, clients, budgets.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = wameter_log::parse_accounts_file("accounts.toml", text);
});
