//! Meta Business Agent (docs/rules.md §15 and its sources): tokens billed
//! from 2026-08-01, never free (not even in a free entry point), and a
//! message the agent produced is never also a service message.

use wameter_core::event::{AgentUsage, Event, EventKind, Origin, UserId};

use super::support::*;

const BR: &str = "+5511999990000";

fn usage(log: &mut Log, id: &str, at: &str, tokens: u64) {
    let usage = AgentUsage {
        business: B.into(),
        user: UserId::parse(BR).unwrap(),
        id: id.into(),
        tokens,
        messaging_account: None,
    };
    log.events.push(Event {
        at: t(at),
        origin: Origin {
            source: 0,
            line: log.events.len() as u32 + 1,
        },
        kind: EventKind::AgentUsage(Box::new(usage)),
    });
}

/// §5.15: "MBA reply inside FEP → billed": the tokens are charged though
/// the reply is inside a free entry point; the reply itself is the agent's,
/// free, and not counted as a service message.
#[test]
fn an_agent_reply_in_a_free_entry_point_bills_its_tokens_only() {
    let mut log = Log::default();
    log.ad_click(t("2026-11-02T10:00:00Z"), BR)
        .send("w1", t("2026-11-02T10:01:00Z"), BR, None);
    usage(&mut log, "w1", "2026-11-02T10:01:00Z", 21_500);
    let report = World::builtin().replay(&log);
    assert_eq!(
        verdict(&report, "w1"),
        (
            "service".into(),
            "free_customer_service".into(),
            "0".into(),
            "meta-business-agent".into()
        )
    );
    assert_eq!(report.agent.len(), 1);
    assert_eq!(
        report.agent[0].amount,
        dec("0.043"),
        "21,500 tokens at USD 2 per million"
    );
    assert_eq!(report.agent[0].rule, "agent-tokens");
}

/// Without an `agent_usage` naming it, the same reply is a service
/// message as usual; usage naming another business's message changes
/// nothing.
#[test]
fn only_the_usage_of_the_same_business_marks_a_message() {
    let mut log = Log::default();
    log.inbound(t("2026-11-02T10:00:00Z"), BR)
        .send("w1", t("2026-11-02T10:01:00Z"), BR, None);
    let usage = AgentUsage {
        business: "other".into(),
        user: UserId::parse(BR).unwrap(),
        id: "w1".into(),
        tokens: 100,
        messaging_account: None,
    };
    log.events.push(Event {
        at: t("2026-11-02T10:01:00Z"),
        origin: Origin::default(),
        kind: EventKind::AgentUsage(Box::new(usage)),
    });
    let report = World::builtin().replay(&log);
    assert_eq!(charge(&report, "w1").rule, "service-message");
}
