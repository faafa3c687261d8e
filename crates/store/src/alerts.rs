//! Budget alerts kept: each (budget, month, threshold) crossed is recorded
//! once — the row's key makes a second crossing a no-op, across restarts
//! and across processes sharing a database — and its webhook is retried
//! until delivered.

/// A threshold crossing, with the alert body to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRow {
    /// Budget name.
    pub budget: String,
    /// Business-local month, `YYYY-MM`.
    pub month: String,
    /// Threshold, percent of the budget.
    pub threshold: i64,
    /// When it was seen crossed (UNIX microseconds).
    pub crossed_at_us: i64,
    /// Charged spend then (decimal text).
    pub spent: String,
    /// The alert webhook body (JSON).
    pub body: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When the alert webhook was acknowledged, if it was.
    pub delivered_at_us: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A change to the alerts kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertWrite {
    /// Record a crossing unless that (budget, month, threshold) is kept
    /// already. Answers whether it was new.
    Cross(AlertRow),
    /// Record a delivery attempt of one alert: `Ok(at)` delivered, `Err`
    /// failed with this reason.
    Attempt {
        /// Budget name.
        budget: String,
        /// `YYYY-MM`.
        month: String,
        /// Threshold.
        threshold: i64,
        /// The outcome.
        outcome: Result<i64, String>,
    },
}
