//! Meta's Graph analytics responses (`pricing_analytics`,
//! `conversation_analytics`, `call_analytics`; docs/rules.md §11 and §14),
//! read into buckets the core compares with a replay.
//!
//! A `call_analytics` point has `count`, `cost`, `average_duration` and,
//! when split, `country`, `direction` and `tier` (metrics and dimensions
//! of Meta's Graph reference and Python SDK; Meta prints no sample with
//! values, so these names are the SDK's).
//!
//! A response looks like
//! `{"pricing_analytics":{"data":[{"data_points":[{"start":…,"end":…,"country":"BR","pricing_type":"REGULAR","pricing_category":"UTILITY","volume":3,"cost":0.0240}]}]},"id":"<WABA>"}`;
//! the `{"data":[…]}` part alone, or a bare `data_points` array under
//! either key, are read too (people save what their tool prints). Costs are
//! read from the JSON number's text, never through a float.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use wameter_core::reconcile::{AnalyticsKind, AnalyticsPoint};

use crate::webhook::{Problem, json_path, unix_time};

/// A parsed analytics response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analytics {
    /// Which analytics.
    pub kind: AnalyticsKind,
    /// Its buckets.
    pub points: Vec<AnalyticsPoint>,
}

/// Reads a `pricing_analytics` or `conversation_analytics` response.
pub fn parse_analytics(body: &Value) -> Result<Analytics, Problem> {
    let fail = |path: &str, message: &str| Problem {
        path: path.into(),
        message: message.into(),
    };
    let object = body
        .as_object()
        .ok_or_else(|| fail("", "not a JSON object"))?;
    let (kind, root, path) = if let Some(inner) = object.get("pricing_analytics") {
        (Some(AnalyticsKind::Pricing), inner, "pricing_analytics")
    } else if let Some(inner) = object.get("conversation_analytics") {
        (
            Some(AnalyticsKind::Conversation),
            inner,
            "conversation_analytics",
        )
    } else if let Some(inner) = object.get("call_analytics") {
        (Some(AnalyticsKind::Call), inner, "call_analytics")
    } else {
        (None, body, "")
    };
    let mut points = Vec::new();
    let mut saw_volume = false;
    let mut saw_conversation = false;
    let data = root.get("data").and_then(Value::as_array);
    let groups: Vec<(String, &Value)> = match data {
        Some(groups) => groups
            .iter()
            .enumerate()
            .map(|(i, g)| (json_path(path, &format!("data[{i}]")), g))
            .collect(),
        None => vec![(path.to_string(), root)],
    };
    for (group_path, group) in groups {
        let Some(list) = group.get("data_points").and_then(Value::as_array) else {
            return Err(fail(
                &json_path(&group_path, "data_points"),
                "missing or not an array",
            ));
        };
        for (k, point) in list.iter().enumerate() {
            let point_path = json_path(&group_path, &format!("data_points[{k}]"));
            let point = point
                .as_object()
                .ok_or_else(|| fail(&point_path, "not an object"))?;
            saw_volume |= point.contains_key("volume");
            saw_conversation |= point.contains_key("conversation");
            points.push(read_point(point, &point_path)?);
        }
    }
    let kind = match kind {
        Some(kind) => kind,
        None if saw_conversation && !saw_volume => AnalyticsKind::Conversation,
        None if saw_volume => AnalyticsKind::Pricing,
        None => {
            return Err(fail(
                "",
                "neither `pricing_analytics` nor `conversation_analytics`, and no data point has `volume` or `conversation`",
            ));
        }
    };
    Ok(Analytics { kind, points })
}

fn read_point(point: &Map<String, Value>, path: &str) -> Result<AnalyticsPoint, Problem> {
    let field = |name: &str, message: String| Problem {
        path: json_path(path, name),
        message,
    };
    let time = |name: &str| -> Result<jiff::Timestamp, Problem> {
        let value = point
            .get(name)
            .ok_or_else(|| field(name, "missing".into()))?;
        unix_time(value).map_err(|e| field(name, e))
    };
    let lower = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| point.get(*n).and_then(Value::as_str))
            .map(|s| {
                let s = s.trim().to_ascii_lowercase();
                // conversation_analytics: FREE_ENTRY (request) / FREE_ENTRY_POINT (response).
                if s == "free_entry" {
                    "free_entry_point".into()
                } else {
                    s.into_boxed_str()
                }
            })
    };
    let count_key = ["volume", "conversation", "count"]
        .into_iter()
        .find(|k| point.contains_key(*k))
        .unwrap_or("volume");
    let count = match point.get(count_key) {
        None => 0,
        Some(value) => value
            .as_u64()
            .ok_or_else(|| field(count_key, format!("{value} is not a whole count")))?,
    };
    let cost = match point.get("cost") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            decimal(&n.to_string())
                .ok_or_else(|| field("cost", format!("{n} is not a decimal amount")))?,
        ),
        Some(Value::String(s)) => Some(
            decimal(s).ok_or_else(|| field("cost", format!("`{s}` is not a decimal amount")))?,
        ),
        Some(other) => return Err(field("cost", format!("{other} is not a number"))),
    };
    let average_duration = match point.get("average_duration") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(decimal(&n.to_string()).ok_or_else(|| {
            field(
                "average_duration",
                format!("{n} is not a number of seconds"),
            )
        })?),
        Some(other) => {
            return Err(field(
                "average_duration",
                format!("{other} is not a number"),
            ));
        }
    };
    Ok(AnalyticsPoint {
        start: time("start")?,
        end: time("end")?,
        country: point
            .get("country")
            .and_then(Value::as_str)
            .map(|c| c.trim().to_ascii_uppercase().into()),
        category: lower(&["pricing_category", "conversation_category", "direction"]),
        // A call's tier keeps its spelling (`0:50000`).
        pricing_type: lower(&["pricing_type", "conversation_type"]).or_else(|| {
            point
                .get("tier")
                .and_then(Value::as_str)
                .map(|t| t.trim().into())
        }),
        count,
        cost,
        average_duration,
    })
}

/// `0.0625`, `1e-3`, `12`: the JSON number's own digits, exactly.
fn decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    Decimal::from_str(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pricing_analytics_with_exact_costs() {
        let body: Value = serde_json::from_str(
            r#"{"pricing_analytics":{"data":[{"data_points":[
                {"start":1751328000,"end":1751414400,"country":"BR","pricing_type":"REGULAR","pricing_category":"UTILITY","volume":3,"cost":0.024,"tier":"0:750000"},
                {"start":1751328000,"end":1751414400,"country":"BR","pricing_type":"FREE_CUSTOMER_SERVICE","pricing_category":"SERVICE","volume":2}]}]},"id":"1"}"#,
        )
        .unwrap();
        let analytics = parse_analytics(&body).unwrap();
        assert_eq!(analytics.kind, AnalyticsKind::Pricing);
        assert_eq!(analytics.points[0].cost, Some(Decimal::new(24, 3)));
        assert_eq!(
            analytics.points[1].pricing_type.as_deref(),
            Some("free_customer_service")
        );
        assert_eq!(analytics.points[1].cost, None);
    }

    #[test]
    fn reads_call_analytics() {
        let body: Value = serde_json::from_str(
            r#"{"call_analytics":{"data":[{"data_points":[{"start":1785715200,"end":1785801600,"country":"KE","direction":"BUSINESS_INITIATED","tier":"0:50000","count":3,"cost":0.03502,"average_duration":65.3}]}]},"id":"1"}"#,
        )
        .unwrap();
        let analytics = parse_analytics(&body).unwrap();
        assert_eq!(analytics.kind, AnalyticsKind::Call);
        let point = &analytics.points[0];
        assert_eq!(
            (
                point.count,
                point.category.as_deref(),
                point.pricing_type.as_deref()
            ),
            (3, Some("business_initiated"), Some("0:50000"))
        );
        assert_eq!(
            (point.cost, point.average_duration),
            (Some(Decimal::new(3502, 5)), Some(Decimal::new(653, 1)))
        );
    }

    #[test]
    fn reads_conversation_analytics_and_names_bad_fields() {
        let body: Value = serde_json::from_str(
            r#"{"data":[{"data_points":[{"start":1,"end":2,"conversation":4,"conversation_type":"FREE_ENTRY","conversation_category":"MARKETING","cost":1e-3}]}]}"#,
        )
        .unwrap();
        let analytics = parse_analytics(&body).unwrap();
        assert_eq!(analytics.kind, AnalyticsKind::Conversation);
        assert_eq!(
            analytics.points[0].pricing_type.as_deref(),
            Some("free_entry_point")
        );
        assert_eq!(analytics.points[0].cost, Some(Decimal::new(1, 3)));
        let bad: Value = serde_json::from_str(
            r#"{"pricing_analytics":{"data":[{"data_points":[{"start":1,"volume":-1}]}]}}"#,
        )
        .unwrap();
        let problem = parse_analytics(&bad).unwrap_err();
        assert_eq!(
            problem.path,
            "pricing_analytics.data[0].data_points[0].volume"
        );
    }
}
