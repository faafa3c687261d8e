//! Two tenants sharing one server, in process (issue 18): for random
//! interleavings and batchings of both tenants' events, with forged
//! statuses carrying the other tenant's wamids and instants mixed in, each
//! tenant's `GET /v1/charges` equals the engine's replay of that tenant's
//! genuine events alone.
//!
//! The forger posts through its own scoped token, so it may only name its
//! own business; its forged lines are plain statuses (no `pricing`), with
//! or without one of its own users as recipient. (A forged *send* plus a
//! forged delivery under the forger's own business is the forger billing
//! itself, and is priced as such: not an attack on the other tenant.)

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use rust_decimal::Decimal;
use wameter_core::market::MarketTable;
use wameter_core::ratecard::RateBook;
use wameter_log::replay_json::ChargeJson;
use wameter_server::{ApiToken, AppState, Config, Pricing, Scope, api};
use wameter_store::Store;

const TENANTS: [(&str, &str, &str); 2] = [
    ("106540352242922", "WABA-A", "token-a"),
    ("200000000000001", "WABA-B", "token-b"),
];
const USERS: [&str; 3] = ["+5511999990001", "+5511999990002", "+919876543210"];

/// One tenant's genuine traffic, as canonical lines, and the forged
/// statuses the other tenant could post from it.
#[derive(Clone, Debug)]
struct Traffic {
    lines: Vec<String>,
    statuses: Vec<(String, String, String)>,
}

#[derive(Clone, Debug)]
enum Step {
    Inbound {
        user: usize,
        minute: i64,
    },
    /// A send and its statuses (offsets in seconds after it; `None`: not sent).
    Send {
        user: usize,
        minute: i64,
        category: Option<usize>,
        delivered: Option<i64>,
        read: Option<i64>,
        failed: Option<i64>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..USERS.len(), 0..600i64).prop_map(|(user, minute)| Step::Inbound { user, minute }),
        (
            0..USERS.len(),
            0..600i64,
            proptest::option::of(0..3usize),
            proptest::option::of(1..120i64),
            proptest::option::of(1..4000i64),
            proptest::option::weighted(0.2, 1..60i64)
        )
            .prop_map(
                |(user, minute, category, delivered, read, failed)| Step::Send {
                    user,
                    minute,
                    category,
                    delivered,
                    read,
                    failed
                }
            ),
    ]
}

fn at(minute: i64, seconds: i64) -> String {
    (jiff::Timestamp::from_second(1_770_717_600).unwrap()
        + jiff::SignedDuration::from_secs(minute * 60 + seconds))
    .to_string()
}

fn traffic(tenant: usize, steps: &[Step]) -> Traffic {
    let business = TENANTS[tenant].0;
    let mut lines = Vec::new();
    let mut statuses = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        match step {
            Step::Inbound { user, minute } => lines.push(format!(
                r#"{{"type":"inbound","at":"{}","business":"{business}","user":"{}","id":"wamid.in-{tenant}-{n}"}}"#,
                at(*minute, 0),
                USERS[*user]
            )),
            Step::Send { user, minute, category, delivered, read, failed } => {
                let id = format!("wamid.out-{tenant}-{n}");
                let template = match category {
                    Some(c) => format!(r#","template":{{"name":"t{c}","category":"{}"}}"#, ["marketing", "utility", "authentication"][*c]),
                    None => String::new(),
                };
                lines.push(format!(r#"{{"type":"outbound","at":"{}","business":"{business}","user":"{}","id":"{id}"{template}}}"#, at(*minute, 0), USERS[*user]));
                for (status, offset) in [("delivered", delivered), ("read", read), ("failed", failed)] {
                    let Some(offset) = offset else { continue };
                    let when = at(*minute, *offset);
                    lines.push(format!(r#"{{"type":"status","at":"{when}","business":"{business}","user":"{}","id":"{id}","status":"{status}"}}"#, USERS[*user]));
                    statuses.push((id.clone(), status.to_string(), when));
                }
            }
        }
    }
    Traffic { lines, statuses }
}

/// A status of the victim's, re-labelled with the forger's business (and
/// maybe one of the forger's users).
fn forged(
    forger: usize,
    (id, status, when): &(String, String, String),
    recipient: Option<usize>,
) -> String {
    let user = recipient
        .map(|u| format!(r#","user":"{}""#, USERS[u]))
        .unwrap_or_default();
    format!(
        r#"{{"type":"status","at":"{when}","business":"{}"{user},"id":"{id}","status":"{status}"}}"#,
        TENANTS[forger].0
    )
}

fn state(dir: &std::path::Path) -> Arc<AppState> {
    let accounts = TENANTS
        .iter()
        .map(|(business, waba, _)| format!("[[business]]\nphone_number_id = \"{business}\"\nwaba = \"{waba}\"\nportfolio = \"{waba}\"\n"))
        .collect::<Vec<_>>()
        .join("\n");
    let accounts = wameter_log::parse_accounts("accounts.toml", &accounts).unwrap();
    let tokens = TENANTS
        .iter()
        .map(|(_, waba, token)| ApiToken {
            name: token.to_string(),
            token: token.to_string(),
            scope: Scope::Wabas([waba.to_string()].into()),
        })
        .collect();
    let config = Config {
        app_secret: b"secret".to_vec(),
        verify_token: None,
        tokens,
        webhook_bytes_max: wameter_server::WEBHOOK_BYTES_MAX_DEFAULT,
        events_bytes_max: wameter_server::EVENTS_BYTES_MAX_DEFAULT,
        pricing: Pricing {
            accounts,
            rates: RateBook::builtin(),
            tiers: Default::default(),
            markets: MarketTable::builtin(),
            call_rates: Default::default(),
        },
        billing: Default::default(),
        guard: None,
        alert_url: None,
        relay_url: None,
        limits: Default::default(),
    };
    let store =
        Store::Sqlite(wameter_store::sqlite::SqliteStore::open(&dir.join("wameter.db")).unwrap());
    AppState::new(config, store)
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

/// The charges a replay of `lines` prints, sorted by message id.
fn replayed(state: &AppState, lines: &[String]) -> Vec<serde_json::Value> {
    let events = lines
        .iter()
        .map(
            |line| match wameter_log::parse_line(line, Default::default()).unwrap() {
                wameter_log::Parsed::Event(event) => event,
                other => panic!("{line}: {other:?}"),
            },
        )
        .collect();
    let report = state.config.pricing.engine().replay(events);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut charges: Vec<serde_json::Value> = report
        .charges
        .iter()
        .map(|c| serde_json::to_value(ChargeJson::from(c)).unwrap())
        .collect();
    charges.sort_by_key(|c| c["message_id"].as_str().unwrap().to_string());
    charges
}

async fn served(state: &Arc<AppState>, token: &str) -> Vec<serde_json::Value> {
    let query = wameter_server::error::ApiQuery(
        Query::try_from_uri(&Uri::from_static("/v1/charges"))
            .unwrap()
            .0,
    );
    let response = api::charges(State(state.clone()), bearer(token), query)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut charges = document["charges"].as_array().unwrap().clone();
    charges.sort_by_key(|c| c["message_id"].as_str().unwrap().to_string());
    charges
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn each_tenant_is_charged_for_its_own_genuine_events_whatever_the_other_forges(
        a_steps in proptest::collection::vec(step(), 1..14),
        b_steps in proptest::collection::vec(step(), 1..14),
        forgeries in proptest::collection::vec((0..2usize, any::<prop::sample::Index>(), proptest::option::of(0..USERS.len())), 0..16),
        order in any::<u64>(),
        batch in 1..6usize,
    ) {
        let dir = std::env::temp_dir().join(format!("wameter-tenancy-prop-{}-{order}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state = state(&dir);
        let genuine = [traffic(0, &a_steps), traffic(1, &b_steps)];
        // (token, line), every tenant's own lines through its own token.
        let mut posts: Vec<(usize, String)> = Vec::new();
        for (tenant, traffic) in genuine.iter().enumerate() {
            posts.extend(traffic.lines.iter().map(|line| (tenant, line.clone())));
        }
        for (forger, pick, recipient) in &forgeries {
            let victim = &genuine[1 - forger];
            if victim.statuses.is_empty() {
                continue;
            }
            posts.push((*forger, forged(*forger, pick.get(&victim.statuses), *recipient)));
        }
        // A seeded shuffle: any interleaving of the two tenants and the forgeries.
        let mut seed = order | 1;
        for i in (1..posts.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            posts.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            // Consecutive lines of one token go in one POST, up to `batch`.
            let mut i = 0;
            while i < posts.len() {
                let token = posts[i].0;
                let mut body = String::new();
                let mut taken = 0;
                while i < posts.len() && posts[i].0 == token && taken < batch {
                    body.push_str(&posts[i].1);
                    body.push('\n');
                    i += 1;
                    taken += 1;
                }
                let answer = api::post_events(State(state.clone()), bearer(TENANTS[token].2), Ok(Bytes::from(body))).await;
                assert!(answer.is_ok(), "{:?}", answer.err());
            }
        });
        for (tenant, traffic) in genuine.iter().enumerate() {
            let served = runtime.block_on(served(&state, TENANTS[tenant].2));
            prop_assert_eq!(served, replayed(&state, &traffic.lines), "tenant {}", tenant);
            // The dashboard's rows, read from the kept charges' typed
            // columns, are the rows of the document it serves.
            let token = &state.config.tokens[tenant];
            let (typed, document) = runtime.block_on(async {
                let query = api::SliceQuery::default();
                let typed = api::rows_for(&state, token, &query).await.unwrap();
                let answer = api::answer_for(&state, token, &query).await.unwrap();
                assert_eq!(typed.warnings, answer.warnings, "tenant {tenant}");
                // The cost report's sums, read without keeping rows, are
                // the typed rows summed.
                let summed = api::sums_for(&state, token, &query).await.unwrap();
                assert_eq!(summed.warnings, typed.warnings, "tenant {tenant}");
                let mut by_group: BTreeMap<String, (u64, Decimal)> = BTreeMap::new();
                for row in &typed.rows {
                    let group = format!("{:?}", (&row.business, &row.messaging_account, row.local_date, row.kind.as_str(), &row.category, &row.market, &row.pricing_model, &row.pricing_type, &row.direction, row.billable, &row.currency));
                    let entry = by_group.entry(group).or_default();
                    entry.0 += 1;
                    entry.1 += row.amount;
                }
                let sums: BTreeMap<String, (u64, Decimal)> = summed
                    .sums
                    .iter()
                    .map(|sum| {
                        let group = format!("{:?}", (&sum.business, &sum.messaging_account, sum.local_date, sum.kind.as_str(), &sum.category, &sum.market, &sum.pricing_model, &sum.pricing_type, &sum.direction, sum.billable, &sum.currency));
                        (group, (sum.count, sum.amount))
                    })
                    .collect();
                assert_eq!(sums.len(), summed.sums.len(), "one sum per group");
                assert_eq!(sums, by_group, "tenant {tenant}");
                // Read from the lines served, not the columns: the two
                // are kept side by side and must say the same.
                let lines = answer.charges.iter().chain(&answer.calls).chain(&answer.agent);
                let document = lines
                    .map(|kept| wameter_export::Row::from_line(&kept.line).unwrap())
                    .collect::<Vec<_>>();
                (typed.rows, document)
            });
            let by_id = |mut rows: Vec<wameter_export::Row>| {
                for row in &mut rows {
                    row.reason.clear();
                }
                rows.sort_by(|a, b| (a.kind.as_str(), &a.id).cmp(&(b.kind.as_str(), &b.id)));
                rows
            };
            prop_assert_eq!(by_id(typed), by_id(document), "tenant {}", tenant);
        }
        drop(runtime);
        drop(state);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
