//! Which of Meta's pricing rulesets applies on a business-local date.
//!
//! One module per era lives in [`crate::rules`]; this file only names them
//! and draws the boundaries (decision D1, at 00:00 in the business's time
//! zone, decision D2).

use std::fmt;

use jiff::civil::{Date, date};

/// A pricing era.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ruleset {
    /// Conversation-based pricing v1: user-/business-initiated (2022-02-01 → 2023-05-31).
    Cbp2022,
    /// Conversation-based pricing v2: four categories (2023-06-01 → 2025-06-30).
    Cbp2023,
    /// Per-message pricing (2025-07-01 → 2026-09-30).
    Pmp2025,
    /// Per-message pricing from 2026-10-01: service messages and utility in the window billed (confirmed, D12).
    Pmp2026Oct,
}

/// The ruleset start dates, oldest first.
pub const ERA_STARTS: [(Date, Ruleset); 4] = [
    (date(2022, 2, 1), Ruleset::Cbp2022),
    (date(2023, 6, 1), Ruleset::Cbp2023),
    (date(2025, 7, 1), Ruleset::Pmp2025),
    (date(2026, 10, 1), Ruleset::Pmp2026Oct),
];

impl Ruleset {
    /// The ruleset in force on a business-local date, or `None` before
    /// 2022-02-01 (notification-based pricing, not supported: decision D1).
    pub fn on(local_date: Date) -> Option<Ruleset> {
        ERA_STARTS
            .iter()
            .rev()
            .find(|(start, _)| *start <= local_date)
            .map(|(_, ruleset)| *ruleset)
    }

    /// Stable id used in output (`pmp-2025-07`).
    pub fn id(self) -> &'static str {
        match self {
            Ruleset::Cbp2022 => "cbp-2022-02",
            Ruleset::Cbp2023 => "cbp-2023-06",
            Ruleset::Pmp2025 => "pmp-2025-07",
            Ruleset::Pmp2026Oct => "pmp-2026-10",
        }
    }

    /// Parses an id as printed by [`Ruleset::id`].
    pub fn parse(id: &str) -> Option<Ruleset> {
        ERA_STARTS.iter().map(|(_, r)| *r).find(|r| r.id() == id)
    }

    /// Parses an id, or an era name without the month: `cbp-2022`,
    /// `cbp-2023`, `pmp-2025`, `pmp-2026-10` (case-insensitive).
    pub fn parse_loose(text: &str) -> Option<Ruleset> {
        let text = text.trim().to_ascii_lowercase();
        Ruleset::parse(&text).or(match text.as_str() {
            "cbp-2022" | "cbp2022" => Some(Ruleset::Cbp2022),
            "cbp-2023" | "cbp2023" => Some(Ruleset::Cbp2023),
            "pmp-2025" | "pmp2025" => Some(Ruleset::Pmp2025),
            "pmp-2026" | "pmp2026" | "pmp-2026-oct" => Some(Ruleset::Pmp2026Oct),
            _ => None,
        })
    }

    /// `documented` when Meta's own pages describe the rules; `confirmed`
    /// for the 2026-10 change, first reported by third parties and then
    /// confirmed on Meta's pages (decision D12). What stays uncertain in an
    /// era is flagged in the reason of the charges it touches.
    pub fn status(self) -> &'static str {
        match self {
            Ruleset::Pmp2026Oct => "confirmed",
            _ => "documented",
        }
    }

    /// Whether this is a conversation-based era.
    pub fn is_conversation_based(self) -> bool {
        matches!(self, Ruleset::Cbp2022 | Ruleset::Cbp2023)
    }
}

impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_the_first_local_day_of_each_era() {
        assert_eq!(Ruleset::on(date(2022, 1, 31)), None);
        assert_eq!(Ruleset::on(date(2022, 2, 1)), Some(Ruleset::Cbp2022));
        assert_eq!(Ruleset::on(date(2023, 5, 31)), Some(Ruleset::Cbp2022));
        assert_eq!(Ruleset::on(date(2023, 6, 1)), Some(Ruleset::Cbp2023));
        assert_eq!(Ruleset::on(date(2025, 6, 30)), Some(Ruleset::Cbp2023));
        assert_eq!(Ruleset::on(date(2025, 7, 1)), Some(Ruleset::Pmp2025));
        assert_eq!(Ruleset::on(date(2026, 9, 30)), Some(Ruleset::Pmp2025));
        assert_eq!(Ruleset::on(date(2026, 10, 1)), Some(Ruleset::Pmp2026Oct));
        for (_, ruleset) in ERA_STARTS {
            assert_eq!(Ruleset::parse(ruleset.id()), Some(ruleset));
            assert_eq!(
                Ruleset::parse_loose(&ruleset.id().to_uppercase()),
                Some(ruleset)
            );
        }
        assert_eq!(Ruleset::parse_loose("pmp-2025"), Some(Ruleset::Pmp2025));
        assert_eq!(Ruleset::parse_loose("pmp-2024"), None);
    }
}
