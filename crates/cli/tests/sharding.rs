//! Sharding by portfolio (issue 21, docs/DEPLOYMENT.md §3): `serve` nodes
//! on databases of their own, each given the webhooks of whole portfolios
//! (as Meta's per-WABA callback URL overrides route them), answer together
//! exactly the charges one database holding everything answers — and
//! sharding by anything narrower than the portfolio does not, because the
//! volume tiers count a portfolio's messages across its businesses.

mod common;
#[path = "common/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use server::*;

/// Four business numbers, two per portfolio, each with its own WABA.
const BUSINESSES: [&str; 4] = [
    "300000000000000",
    "300000000000001",
    "300000000000002",
    "300000000000003",
];
/// Utility templates each business delivers to Brazil in May 2026.
const PER_BUSINESS: i64 = 15;

fn portfolio_of(business: &str) -> usize {
    BUSINESSES
        .iter()
        .position(|b| *b == business)
        .expect("a known business")
        / 2
}

/// The accounts file, and a tier table whose Brazil utility list band ends
/// at 20 messages a month: a portfolio's 30 cross it, a business's 15 do not.
fn setup(dir: &Path) {
    let mut accounts = String::new();
    for business in BUSINESSES {
        accounts.push_str(&format!(
            "[[business]]\nphone_number_id = \"{business}\"\nwaba = \"WABA-{business}\"\nportfolio = \"portfolio-{}\"\ntimezone = \"America/Sao_Paulo\"\ncurrency = \"USD\"\n\n",
            portfolio_of(business)
        ));
    }
    std::fs::write(dir.join("accounts.toml"), accounts).unwrap();
    std::fs::write(
        dir.join("tiers.csv"),
        "effective,currency,market,category,from,to,rate\n2026-04-01,USD,Brazil,utility,0,20,0.0068\n2026-04-01,USD,Brazil,utility,21,,0.0050\n",
    )
    .unwrap();
}

/// (business, body): every template's `sent` and `delivered` webhooks,
/// interleaved across businesses in time order.
fn traffic() -> Vec<(&'static str, String)> {
    let start = 1_778_000_000; // 2026-05-05T16:53:20Z
    let mut out = Vec::new();
    for n in 0..PER_BUSINESS {
        for (index, business) in BUSINESSES.iter().enumerate() {
            let at = start + n * 3600 + index as i64 * 7;
            let user = format!("55119888{index}{n:04}");
            let wamid = format!("wamid.{index}.{n}");
            for (status, delay) in [("sent", 0), ("delivered", 2)] {
                out.push((
                    *business,
                    status_webhook(
                        business,
                        &user,
                        &wamid,
                        status,
                        at + delay,
                        "utility",
                        "regular",
                        true,
                    ),
                ));
            }
        }
    }
    out
}

/// A node: `serve` on its own database, with the accounts and tiers.
fn node(dir: &Path, database: String) -> Server {
    let extra = ["--accounts", "accounts.toml", "--tiers", "tiers.csv"]
        .map(String::from)
        .to_vec();
    let server = Server::start(Start {
        dir,
        database,
        extra,
    });
    // Healthy once its store answers; right after start, on a loaded
    // machine, the first ping may not yet (a 503 a load balancer retries).
    let mut last = (0, String::new());
    let healthy = common::poll(|| {
        last = server.get("/healthz", None);
        (last.0 == 200).then_some(())
    });
    assert!(
        healthy.is_some(),
        "the node never got healthy; last /healthz: {last:?}"
    );
    server
}

/// The charges a node answers, by (business, wamid), and their total.
fn charges(server: &Server) -> (BTreeMap<(String, String), serde_json::Value>, Decimal) {
    let document = server.get_json("/v1/charges");
    let mut out = BTreeMap::new();
    for charge in document["charges"].as_array().unwrap() {
        let key = (
            charge["business"].as_str().unwrap().to_string(),
            charge["message_id"].as_str().unwrap().to_string(),
        );
        assert!(
            out.insert(key, charge.clone()).is_none(),
            "one charge per message"
        );
    }
    // One currency here: the totals are one object.
    assert_eq!(
        document["totals"]["currency"], "USD",
        "{}",
        document["totals"]
    );
    let total = document["totals"]["amount"]
        .as_str()
        .unwrap()
        .parse::<Decimal>()
        .unwrap();
    (out, total)
}

/// Posts the traffic to `shards` nodes, each body to `route(business)`,
/// and returns what the nodes answer together.
fn sharded(
    servers: &[Server],
    route: impl Fn(&str) -> usize,
) -> (BTreeMap<(String, String), serde_json::Value>, Decimal) {
    for (business, body) in traffic() {
        assert_eq!(servers[route(business)].post_signed(body.as_bytes()), 200);
    }
    let mut all = BTreeMap::new();
    let mut total = Decimal::ZERO;
    for server in servers {
        let (charges, sum) = charges(server);
        total += sum;
        for (key, charge) in charges {
            assert!(
                all.insert(key, charge).is_none(),
                "a message is charged by one shard only"
            );
        }
    }
    (all, total)
}

/// `backend` names the test's directory: the two backends' tests run at
/// once in one process, and a shared directory let one test's fresh start
/// delete the other's SQLite files under its running nodes (a CI failure).
fn shards_by_portfolio_answer_what_one_database_does(
    backend: &str,
    database: impl Fn(&Path, &str) -> String,
) {
    let dir = fresh_dir(&format!("sharding-{backend}"));
    setup(&dir);

    let one = node(&dir, database(&dir, "one"));
    let (expected, expected_total) = sharded(std::slice::from_ref(&one), |_| 0);
    assert_eq!(expected.len(), BUSINESSES.len() * PER_BUSINESS as usize);
    // Each portfolio's 21st to 30th message is past the list band: 2 × 20
    // at 0.0068 and 2 × 10 at 0.0050.
    assert_eq!(expected_total, "0.372".parse::<Decimal>().unwrap());
    let tiered = expected.values().filter(|c| c["amount"] == "0.005").count();
    assert_eq!(
        tiered, 20,
        "the tier counter spans each portfolio's two businesses"
    );

    let by_portfolio = [
        node(&dir, database(&dir, "p0")),
        node(&dir, database(&dir, "p1")),
    ];
    let (charges, total) = sharded(&by_portfolio, portfolio_of);
    assert_eq!(total, expected_total);
    assert_eq!(
        charges, expected,
        "shards by portfolio answer, charge for charge, what one database answers"
    );

    // The control: shards by business number (each portfolio split across
    // both) no longer see a portfolio's whole month: every message is
    // charged the list rate, the tier discount is lost. The key must be
    // the portfolio.
    let by_business = [
        node(&dir, database(&dir, "b0")),
        node(&dir, database(&dir, "b1")),
    ];
    let (charges, total) = sharded(&by_business, |business| {
        BUSINESSES.iter().position(|b| *b == business).unwrap() % 2
    });
    assert_eq!(charges.len(), expected.len());
    assert_ne!(
        total, expected_total,
        "a narrower shard key loses the portfolio's tier count"
    );
    assert_eq!(
        total,
        "0.408".parse::<Decimal>().unwrap(),
        "60 messages at the list rate"
    );
}

#[test]
fn sqlite_shards_by_portfolio_answer_what_one_database_does() {
    shards_by_portfolio_answer_what_one_database_does("sqlite", |dir, name| {
        format!("sqlite://{}", dir.join(format!("{name}.db")).display())
    });
}

#[test]
fn postgres_shards_by_portfolio_answer_what_one_database_does() {
    if postgres_database("probe").is_none() {
        return;
    }
    shards_by_portfolio_answer_what_one_database_does("postgres", |_, name| {
        postgres_database(&format!("shard_{name}")).expect("checked above")
    });
}
