//! What the meter and a store exchange: stored events read back, and the
//! charges and warnings kept per (portfolio, month). Plain data: the store
//! persists them, the meter makes and reads them.

/// A stored event, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Row id: ascending in storage order.
    pub id: i64,
    /// The canonical line (shared: the store's cache of pairs hands the
    /// guard each send's pair without copying its lines).
    pub line: std::sync::Arc<str>,
}

/// One charge as kept: what a settle writes, and what a store's `charges`
/// reads back for `/v1/charges` (ordered, filtered and totalled from the
/// typed columns; the line is only copied out).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChargeRow {
    /// Business phone number id.
    pub business: String,
    /// Delivery (or start, or use) instant, UNIX microseconds: range
    /// queries; with `facts.delivered_nanos`, the instant whole.
    pub delivered_at_us: i64,
    /// The wamid, call id or usage id.
    pub message_id: String,
    /// The charge as the `replay --json` document prints it.
    pub line: String,
    /// The same charge as typed columns, which everything reads instead
    /// of parsing `line` back (its `reason` is only in `line`).
    pub facts: ChargeFacts,
}

/// A kept charge's typed columns (migration `V9`): everything the export
/// table has but the reason. Written from the engine's charge by the
/// server, so they say what `line` says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChargeFacts {
    /// `message`, `call` or `agent_usage`.
    pub kind: String,
    /// The Messaging account billed, when not the number's first.
    pub messaging_account: Option<String>,
    /// The user (E.164 or BSUID).
    pub user: String,
    /// Business-local date, `YYYY-MM-DD`.
    pub local_date: String,
    /// `CBP` or `PMP` (messages only).
    pub pricing_model: Option<String>,
    /// Meta's category (`call`, `meta_business_agent` for the others).
    pub category: String,
    /// Meta's pricing type (messages only).
    pub pricing_type: Option<String>,
    /// `business_initiated` or `user_initiated` (calls only).
    pub direction: Option<String>,
    /// Whether Meta bills it.
    pub billable: bool,
    /// The market priced.
    pub market: Option<String>,
    /// ISO 4217 code.
    pub currency: String,
    /// The exact amount as decimal text (never a float).
    pub amount: String,
    /// Units priced: 1 message, a call's pulses, tokens.
    pub quantity: i64,
    /// The volume or calling tier applied.
    pub tier: Option<String>,
    /// The ruleset that priced it.
    pub ruleset: String,
    /// The rule within it.
    pub rule: String,
    /// The template's name, for a template message.
    pub template: Option<String>,
    /// Whether the charge opened a conversation (CBP; messages only).
    pub opens_conversation: bool,
    /// Nanoseconds past the row's `delivered_at_us` microsecond (0 to
    /// 999; negative before 1970): with it, rows order exactly as the
    /// engine's instants do, and give the instant back whole.
    pub delivered_nanos: i32,
}

/// A kept charge's typed columns without its line
/// (a store's `charge_facts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptFacts {
    /// Business phone number id.
    pub business: String,
    /// Delivery (or start, or use) instant, UNIX microseconds.
    pub delivered_at_us: i64,
    /// The wamid, call id or usage id.
    pub message_id: String,
    /// The typed columns.
    pub facts: ChargeFacts,
}

/// A warning the engine gave while settling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WarningRow {
    /// Business of the event warned about (`None`: none or unknown).
    pub business: Option<String>,
    /// The stored event warned about.
    pub event_id: Option<i64>,
    /// Stable code.
    pub code: String,
    /// The sentence.
    pub message: String,
    /// Messages a counting warning covers (1 otherwise).
    pub count: i64,
}

/// What a settle computed for its (portfolio, month).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// The month's charges of the portfolio's businesses; in an incremental
    /// round ((a settle job's `from_event_id`)), only those that changed or
    /// appeared, each replacing the kept charge of its message.
    pub charges: Vec<ChargeRow>,
    /// The month's warnings; in an incremental round, those added.
    pub warnings: Vec<WarningRow>,
    /// Incremental rounds only: (business, wamid) of charges no longer in
    /// the month (not delivered after all, or moved to another month).
    pub removed: Vec<(String, String)>,
    /// Incremental rounds only: kept warnings no longer found.
    pub warnings_removed: Vec<WarningRow>,
}
