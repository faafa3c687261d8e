//! Markets: which of Meta's rate-card markets a user belongs to, on a date.
//!
//! Meta prices by the recipient's country calling code, plus the area code for
//! `+1` (docs/rules.md §3.3, decision D11). Meta has moved countries between
//! markets over time (Zimbabwe in 2025, several splits in 2026), so every
//! lookup takes the business-local date of the delivery.
//!
//! The table is data, not code: it is built from the CSV files in
//! `data/markets/` (embedded at build time), whose provenance is documented in
//! `data/markets/PROVENANCE.md`.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use jiff::civil::{Date, date};

use crate::event::UserId;

/// Looked up for every priced pair and day: foldhash, not SipHash (the
/// prefixes are the tables' own, not an attacker's).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

const META_PAGE_2026_03: &str =
    include_str!("../../../data/markets/meta-pricing-page_2026-03-30.csv");
const CALLING_CODES_2026_07: &str =
    include_str!("../../../data/markets/calling-codes_2026-07-01.csv");
const NANP_AREA_CODES: &str = include_str!("../../../data/markets/nanp-area-codes.csv");
const MARKET_CHANGES: &str = include_str!("../../../data/markets/market-changes.csv");

/// The date from which the 2026-07-01 calling-code map applies.
const JULY_2026_SPLIT: Date = date(2026, 7, 1);

/// A market name exactly as Meta prints it on rate cards (`Brazil`,
/// `North America`, `Rest of Latin America`, `Other`).
pub type Market = Arc<str>;

/// The result of a market lookup, with the rule that decided it so that a
/// charge can explain itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketMatch {
    /// Meta's market name.
    pub market: Market,
    /// ISO 3166 alpha-2 country of the user, when known.
    pub country: Option<Arc<str>>,
    /// Human-readable rule, e.g. `calling code +55 (Brazil)`.
    pub rule: String,
}

#[derive(Clone, Debug)]
struct PrefixEntry {
    iso2: Arc<str>,
    country: Arc<str>,
    market: Market,
}

#[derive(Clone, Debug)]
struct Override {
    prefix: String,
    entry: PrefixEntry,
    from: Date,
    until: Option<Date>,
}

/// Whether a lookup writes its rule in words.
#[derive(Clone, Copy)]
struct Words(bool);

impl Words {
    fn say(self, text: impl FnOnce() -> String) -> String {
        if self.0 { text() } else { String::new() }
    }
}

/// The dated calling-code → market table.
#[derive(Debug)]
pub struct MarketTable {
    /// Calling-code prefixes before 2026-07-01 (Meta's page, Mar 2026).
    before_july_2026: HashMap<String, PrefixEntry>,
    /// Calling-code prefixes from 2026-07-01.
    from_july_2026: HashMap<String, PrefixEntry>,
    /// `+1` area codes that are not the United States.
    nanp: HashMap<String, PrefixEntry>,
    overrides: Vec<Override>,
    other: Market,
    north_america: Market,
}

fn csv_rows(text: &str) -> impl Iterator<Item = csv::StringRecord> + '_ {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes())
        .into_records()
        .map(|record| record.expect("embedded market CSVs are well-formed (tested)"))
}

fn parse_date(text: &str) -> Date {
    text.parse()
        .expect("embedded market dates are well-formed (tested)")
}

impl MarketTable {
    /// The table built from the files shipped with wameter. Built once.
    pub fn builtin() -> &'static MarketTable {
        static TABLE: OnceLock<MarketTable> = OnceLock::new();
        TABLE.get_or_init(MarketTable::build)
    }

    fn build() -> MarketTable {
        let mut names: HashMap<String, Market> = HashMap::default();
        let mut intern = |name: &str| -> Market {
            names
                .entry(name.to_string())
                .or_insert_with(|| Arc::from(name))
                .clone()
        };

        // ISO codes by calling code come from the 2026-07 map; the page table
        // names countries but not their ISO codes.
        let mut from_july_2026 = HashMap::default();
        let mut iso_by_code: HashMap<String, Arc<str>> = HashMap::default();
        for row in csv_rows(CALLING_CODES_2026_07) {
            let (prefix, iso2, market) = (&row[0], &row[1], &row[2]);
            if prefix == "*" || prefix.len() == 4 && prefix.starts_with('1') {
                // The fallback row and the author's NANP overrides are replaced
                // by `nanp-area-codes.csv` (see PROVENANCE.md).
                continue;
            }
            let iso2: Arc<str> = Arc::from(iso2);
            iso_by_code.insert(prefix.to_string(), iso2.clone());
            from_july_2026.insert(
                prefix.to_string(),
                PrefixEntry {
                    country: iso2.clone(),
                    iso2,
                    market: intern(market),
                },
            );
        }

        let mut before_july_2026 = HashMap::default();
        for row in csv_rows(META_PAGE_2026_03) {
            let (market, country, code) = (&row[0], &row[1], &row[2]);
            if market == "Other" || code == "1" {
                continue; // `Other` is the fallback; `+1` is handled by area code.
            }
            let iso2 = iso_by_code
                .get(code)
                .cloned()
                .unwrap_or_else(|| Arc::from(""));
            before_july_2026.insert(
                code.to_string(),
                PrefixEntry {
                    iso2,
                    country: Arc::from(country),
                    market: intern(market),
                },
            );
        }
        // The July map carries ISO codes only; give it the page's country names.
        for (code, entry) in from_july_2026.iter_mut() {
            if let Some(page) = before_july_2026.get(code) {
                entry.country = page.country.clone();
            }
        }

        let north_america = intern("North America");
        let latin_america = intern("Rest of Latin America");
        let other = intern("Other");
        let mut nanp = HashMap::default();
        for row in csv_rows(NANP_AREA_CODES) {
            let market = match &row[1] {
                "CA" => north_america.clone(),
                "DO" | "JM" | "PR" => latin_america.clone(),
                _ => other.clone(),
            };
            nanp.insert(
                row[0].to_string(),
                PrefixEntry {
                    iso2: Arc::from(&row[1]),
                    country: Arc::from(&row[2]),
                    market,
                },
            );
        }

        let overrides = csv_rows(MARKET_CHANGES)
            .map(|row| Override {
                prefix: row[0].to_string(),
                entry: PrefixEntry {
                    iso2: Arc::from(&row[1]),
                    country: Arc::from(&row[2]),
                    market: intern(&row[3]),
                },
                from: parse_date(&row[4]),
                until: (!row[5].is_empty()).then(|| parse_date(&row[5])),
            })
            .collect();

        MarketTable {
            before_july_2026,
            from_july_2026,
            nanp,
            overrides,
            other,
            north_america,
        }
    }

    fn base(&self, on: Date) -> &HashMap<String, PrefixEntry> {
        if on < JULY_2026_SPLIT {
            &self.before_july_2026
        } else {
            &self.from_july_2026
        }
    }

    fn override_for(&self, prefix: &str, on: Date) -> Option<&PrefixEntry> {
        self.overrides
            .iter()
            .find(|o| o.prefix == prefix && o.from <= on && o.until.is_none_or(|until| on < until))
            .map(|o| &o.entry)
    }

    /// The market of a user on a (business-local) date.
    ///
    /// ```
    /// use jiff::civil::date;
    /// use wameter_core::{event::UserId, market::MarketTable};
    /// let table = MarketTable::builtin();
    /// let user = UserId::parse("+263771234567").unwrap();
    /// assert_eq!(&*table.lookup(&user, date(2025, 9, 30)).market, "Other");
    /// assert_eq!(&*table.lookup(&user, date(2025, 10, 1)).market, "Rest of Africa");
    /// ```
    pub fn lookup(&self, user: &UserId, on: Date) -> MarketMatch {
        self.find(user, on, Words(true))
    }

    /// [`MarketTable::lookup`] with its `rule` left empty: for pricing
    /// that shows no explanation, which looks a market up for every pair
    /// and day (writing the rule was most of a lookup's cost).
    pub fn lookup_unexplained(&self, user: &UserId, on: Date) -> MarketMatch {
        self.find(user, on, Words(false))
    }

    fn find(&self, user: &UserId, on: Date, words: Words) -> MarketMatch {
        match user {
            UserId::Phone(digits) => self.lookup_phone(digits, on, words),
            UserId::Bsuid(_, Some(country)) => self.lookup_country(country, on, words),
            UserId::Bsuid(id, None) => MarketMatch {
                market: self.other.clone(),
                country: None,
                rule: words.say(|| format!(
                    "business-scoped user id {id} carries no country, and none was given beside it: its market is unknown"
                )),
            },
        }
    }

    fn lookup_phone(&self, digits: &str, on: Date, words: Words) -> MarketMatch {
        if let Some(rest) = digits.strip_prefix('1') {
            let area = rest.get(..3).unwrap_or(rest);
            return match self.nanp.get(area) {
                Some(entry) => MarketMatch {
                    market: entry.market.clone(),
                    country: Some(entry.iso2.clone()),
                    rule: words
                        .say(|| format!("calling code +1, area code {area} ({})", entry.country)),
                },
                None => MarketMatch {
                    market: self.north_america.clone(),
                    country: Some(Arc::from("US")),
                    rule: words
                        .say(|| format!("calling code +1, area code {area} (United States)")),
                },
            };
        }
        // Longest prefix first: `+7 7xx` (Kazakhstan) before `+7` (Russia).
        for length in (1..=4.min(digits.len())).rev() {
            let prefix = &digits[..length];
            let entry = self
                .override_for(prefix, on)
                .or_else(|| self.base(on).get(prefix));
            if let Some(entry) = entry {
                return MarketMatch {
                    market: entry.market.clone(),
                    country: (!entry.iso2.is_empty()).then(|| entry.iso2.clone()),
                    rule: words.say(|| format!("calling code +{prefix} ({})", entry.country)),
                };
            }
        }
        MarketMatch {
            market: self.other.clone(),
            country: None,
            rule: words.say(|| format!("no listed calling code matches +{digits}: Other")),
        }
    }

    fn lookup_country(&self, iso2: &str, on: Date, words: Words) -> MarketMatch {
        let rule = |market: &str| {
            words.say(|| format!("business-scoped user id prefix {iso2} → {market}"))
        };
        if iso2 == "US" {
            return MarketMatch {
                market: self.north_america.clone(),
                country: Some(Arc::from(iso2)),
                rule: rule("North America"),
            };
        }
        let dated = self.overrides.iter().find(|o| {
            &*o.entry.iso2 == iso2 && o.from <= on && o.until.is_none_or(|until| on < until)
        });
        let entry = dated
            .map(|o| &o.entry)
            .or_else(|| self.base(on).values().find(|e| &*e.iso2 == iso2))
            .or_else(|| self.nanp.values().find(|e| &*e.iso2 == iso2));
        match entry {
            Some(entry) => MarketMatch {
                market: entry.market.clone(),
                country: Some(entry.iso2.clone()),
                rule: rule(&entry.market),
            },
            None => MarketMatch {
                market: self.other.clone(),
                country: Some(Arc::from(iso2)),
                rule: rule("Other"),
            },
        }
    }

    /// Every market name in force on a date, sorted.
    pub fn markets_on(&self, on: Date) -> BTreeSet<Market> {
        let mut markets: BTreeSet<Market> =
            self.base(on).values().map(|e| e.market.clone()).collect();
        markets.extend(self.nanp.values().map(|e| e.market.clone()));
        markets.extend(
            self.overrides
                .iter()
                .filter(|o| o.from <= on && o.until.is_none_or(|until| on < until))
                .map(|o| o.entry.market.clone()),
        );
        markets.insert(self.north_america.clone());
        markets.insert(self.other.clone());
        // A market emptied by an override (none so far) would still be listed
        // by the base table; markets are only ever split, never merged.
        markets
    }
}

/// One country (or `+1` area code) of a market, for listings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MarketMember {
    /// Calling code, with the area code for `+1` splits (`55`, `1 809`).
    pub calling_code: String,
    /// Country name as Meta prints it.
    pub country: String,
    /// ISO 3166 alpha-2 code, when known.
    pub iso2: Option<String>,
}

impl MarketTable {
    /// Every market on a date with the calling codes that lead to it, sorted.
    /// `Other` lists nothing: it is whatever no listed code matches.
    pub fn members_on(&self, on: Date) -> std::collections::BTreeMap<Market, Vec<MarketMember>> {
        let mut members: std::collections::BTreeMap<Market, Vec<MarketMember>> = self
            .markets_on(on)
            .into_iter()
            .map(|m| (m, Vec::new()))
            .collect();
        let member = |code: String, entry: &PrefixEntry| MarketMember {
            calling_code: code,
            country: entry.country.to_string(),
            iso2: (!entry.iso2.is_empty()).then(|| entry.iso2.to_string()),
        };
        let mut prefixes: Vec<&String> = self.base(on).keys().collect();
        for o in &self.overrides {
            if o.from <= on
                && o.until.is_none_or(|until| on < until)
                && !prefixes.contains(&&o.prefix)
            {
                prefixes.push(&o.prefix);
            }
        }
        for prefix in prefixes {
            let entry = self
                .override_for(prefix, on)
                .or_else(|| self.base(on).get(prefix))
                .expect("listed prefix");
            members
                .entry(entry.market.clone())
                .or_default()
                .push(member(prefix.clone(), entry));
        }
        for (area, entry) in &self.nanp {
            if &*entry.market != "Other" {
                members
                    .entry(entry.market.clone())
                    .or_default()
                    .push(member(format!("1 {area}"), entry));
            }
        }
        members.entry(self.north_america.clone()).or_default().push(MarketMember {
            calling_code: "1".into(),
            country: "United States (and every +1 area code not listed elsewhere that is not another NANP country)".into(),
            iso2: Some("US".into()),
        });
        for list in members.values_mut() {
            list.sort_by(|a, b| (&a.country, &a.calling_code).cmp(&(&b.country, &b.calling_code)));
            // Canada's many area codes read better as one line.
            let mut merged: Vec<MarketMember> = Vec::new();
            for item in list.drain(..) {
                match merged.last_mut() {
                    Some(last)
                        if last.country == item.country
                            && last.calling_code.starts_with("1 ")
                            && item.calling_code.starts_with("1 ") =>
                    {
                        last.calling_code
                            .push_str(&format!("/{}", &item.calling_code[2..]));
                    }
                    _ => merged.push(item),
                }
            }
            *list = merged;
        }
        members
    }

    /// A phone number that [`MarketTable::lookup`] places in `market` on
    /// `on`, for simulating traffic by market (quotes). `None` when the
    /// market does not exist on that date.
    pub fn example_number(&self, market: &str, on: Date) -> Option<UserId> {
        let candidates: Vec<String> = if market == &*self.north_america {
            vec!["12025550100".into()]
        } else if market == &*self.other {
            // +354 (Iceland) is on no Meta list.
            vec!["3545550100".into()]
        } else {
            let mut codes: Vec<String> = self
                .members_on(on)
                .get(market)?
                .iter()
                .map(|m| {
                    m.calling_code
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .replace(' ', "")
                })
                .collect();
            codes.sort();
            // Each code with a few subscriber numbers: `+7 9…` is Russia
            // where `+7 7…` is Kazakhstan, so one suffix is not enough.
            codes
                .iter()
                .flat_map(|code| {
                    ["9123456780", "7012345678", "5123456780"]
                        .map(|rest| format!("{code}{}", &rest[..(12 - code.len()).min(10)]))
                })
                .collect()
        };
        candidates
            .into_iter()
            .filter_map(|digits| UserId::parse(&format!("+{digits}")).ok())
            .find(|user| &*self.lookup(user, on).market == market)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn market(number: &str, on: Date) -> String {
        MarketTable::builtin()
            .lookup(&UserId::parse(number).unwrap(), on)
            .market
            .to_string()
    }

    const MID_2025: Date = date(2025, 8, 1);

    #[test]
    fn standalone_countries_and_regions() {
        assert_eq!(market("+5511999990000", MID_2025), "Brazil");
        assert_eq!(market("+919876543210", MID_2025), "India");
        assert_eq!(market("+4915112345678", MID_2025), "Germany");
        assert_eq!(market("+31612345678", MID_2025), "Netherlands");
        assert_eq!(market("+351912345678", MID_2025), "Rest of Western Europe");
        assert_eq!(market("+254712345678", MID_2025), "Rest of Africa");
        assert_eq!(market("+97433123456", MID_2025), "Rest of Middle East");
        // No listed calling code: Iceland (+354) is not on Meta's table.
        assert_eq!(market("+3545512345", MID_2025), "Other");
    }

    #[test]
    fn nanp_area_codes_split_plus_one() {
        assert_eq!(market("+12125550100", MID_2025), "North America"); // New York
        assert_eq!(market("+14165550100", MID_2025), "North America"); // Toronto
        for number in [
            "+18095550100",
            "+18295550100",
            "+18495550100",
            "+16585550100",
            "+18765550100",
            "+17875550100",
            "+19395550100",
        ] {
            assert_eq!(
                market(number, MID_2025),
                "Rest of Latin America",
                "{number}"
            );
        }
        // Other NANP territories: Other (decision D11).
        assert_eq!(market("+12425550100", MID_2025), "Other"); // Bahamas
        assert_eq!(market("+18685550100", MID_2025), "Other"); // Trinidad and Tobago
        let toronto =
            MarketTable::builtin().lookup(&UserId::parse("+14165550100").unwrap(), MID_2025);
        assert_eq!(toronto.country.as_deref(), Some("CA"));
    }

    #[test]
    fn plus_seven_is_russia_until_kazakhstan_splits() {
        assert_eq!(market("+79161234567", MID_2025), "Russia");
        assert_eq!(market("+77011234567", MID_2025), "Russia");
        assert_eq!(market("+77011234567", date(2026, 10, 1)), "Kazakhstan");
        assert_eq!(market("+79161234567", date(2026, 10, 1)), "Russia");
    }

    #[test]
    fn dated_moves() {
        assert_eq!(market("+263771234567", date(2025, 9, 30)), "Other");
        assert_eq!(market("+263771234567", date(2025, 10, 1)), "Rest of Africa");
        assert_eq!(
            market("+85291234567", date(2026, 6, 30)),
            "Rest of Asia Pacific"
        );
        assert_eq!(market("+85291234567", date(2026, 7, 1)), "Hong Kong");
        assert_eq!(market("+48501234567", date(2026, 7, 1)), "Poland");
        assert_eq!(
            market("+8801712345678", date(2026, 9, 30)),
            "Rest of Asia Pacific"
        );
        assert_eq!(market("+8801712345678", date(2026, 10, 1)), "Bangladesh");
        assert_eq!(market("+380501234567", date(2026, 10, 1)), "Ukraine");
    }

    #[test]
    fn every_market_has_members_and_an_example_number_on_every_card_date() {
        let table = MarketTable::builtin();
        for on in [
            date(2022, 2, 1),
            date(2025, 10, 1),
            date(2026, 7, 1),
            date(2026, 10, 1),
        ] {
            let members = table.members_on(on);
            assert_eq!(
                members.keys().cloned().collect::<BTreeSet<_>>(),
                table.markets_on(on)
            );
            for market in members.keys() {
                if &**market != "Other" {
                    assert!(!members[market].is_empty(), "{market} on {on}");
                }
                let example = table
                    .example_number(market, on)
                    .unwrap_or_else(|| panic!("no example number for {market} on {on}"));
                let found = table.lookup(&example, on);
                assert_eq!(found.market, *market);
                // Without its words, the same market and country.
                let unexplained = table.lookup_unexplained(&example, on);
                assert!(!found.rule.is_empty() && unexplained.rule.is_empty());
                assert_eq!(
                    (unexplained.market, unexplained.country),
                    (found.market, found.country)
                );
            }
        }
        let members = table.members_on(date(2025, 10, 1));
        let latin: Vec<&str> = members["Rest of Latin America"]
            .iter()
            .map(|m| m.calling_code.as_str())
            .collect();
        assert!(latin.contains(&"1 809/829/849"), "{latin:?}");
        assert!(
            members["Rest of Africa"]
                .iter()
                .any(|m| m.country == "Zimbabwe")
        );
        assert!(
            !table.members_on(date(2025, 9, 30))["Rest of Africa"]
                .iter()
                .any(|m| m.country == "Zimbabwe")
        );
        assert_eq!(table.example_number("Kazakhstan", date(2026, 9, 30)), None);
    }

    #[test]
    fn business_scoped_user_ids_use_their_country_prefix() {
        assert_eq!(market("BR.1502", MID_2025), "Brazil");
        assert_eq!(market("US.1349", MID_2025), "North America");
        assert_eq!(market("CA.1349", MID_2025), "North America");
        assert_eq!(market("PR.1349", MID_2025), "Rest of Latin America");
        assert_eq!(market("KE.1349", MID_2025), "Rest of Africa");
        assert_eq!(market("IS.1349", MID_2025), "Other");
        assert_eq!(market("KZ.1349", date(2026, 10, 2)), "Kazakhstan");
        assert_eq!(market("ZW.1349", date(2025, 1, 2)), "Other");
    }
}
