//! Posting webhooks to the app, as Meta does: signed with the app secret
//! (`X-Hub-Signature-256`), retried with backoff while the app is down,
//! after the verification handshake when a verify token is given — and,
//! when asked, with faults an app must survive (duplicates, reordering,
//! delays; the last two are drawn when a webhook is queued, see
//! [`crate::world::Options`]).
//!
//! Delivery runs on its own thread in real time, independent of the
//! sandbox clock: the app being down is a real-time fact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use wameter_core::random::SplitMix64;

use crate::world::{Outgoing, World};

/// Where and how webhooks go.
#[derive(Clone, Debug)]
pub struct Target {
    /// The app's webhook URL (`http://…`).
    pub url: String,
    /// The Meta app secret that signs bodies; `None` posts them unsigned.
    pub app_secret: Option<Vec<u8>>,
    /// When set, the app must answer Meta's verification handshake with
    /// this token before any webhook is posted.
    pub verify_token: Option<String>,
    /// Percent of rounds whose first two webhooks are posted in reverse
    /// order.
    pub reorder_percent: u64,
    /// Seed of the reorder draws.
    pub seed: u64,
}

/// How long to wait after the `attempts`-th failed post: 1 s, doubling up
/// to 10 minutes, for up to about 7 days (Meta retries "with decreasing
/// frequency" for 7 days); `None`: give up.
pub fn retry_in(attempts: u32) -> Option<SignedDuration> {
    const CAP: i64 = 600;
    const SEVEN_DAYS: i64 = 7 * 24 * 3600;
    let wait = |n: u32| if n >= 10 { CAP } else { (1i64 << n).min(CAP) };
    let waited: i64 = (0..attempts.saturating_sub(1)).map(wait).sum();
    (waited < SEVEN_DAYS).then(|| SignedDuration::from_secs(wait(attempts.saturating_sub(1))))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Meta's handshake: `GET url?hub.mode=subscribe&hub.challenge=C&hub.verify_token=T`
/// must answer 200 with exactly `C`.
pub fn handshake(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    challenge: &str,
) -> Result<(), String> {
    let mut response = agent
        .get(url)
        .query("hub.mode", "subscribe")
        .query("hub.challenge", challenge)
        .query("hub.verify_token", token)
        .call()
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    match status {
        200 if body.trim() == challenge => Ok(()),
        200 => Err(format!(
            "answered 200 with `{}` instead of the challenge `{challenge}`",
            body.chars().take(80).collect::<String>()
        )),
        status => Err(format!("answered {status}")),
    }
}

fn post(agent: &ureq::Agent, target: &Target, body: &str) -> Result<(), String> {
    let mut request = agent
        .post(&target.url)
        .header("Content-Type", "application/json");
    let signature;
    if let Some(secret) = &target.app_secret {
        signature = wameter_meta::signature::sign(secret, body.as_bytes());
        request = request.header("X-Hub-Signature-256", &signature);
    }
    let response = request
        .send(body.as_bytes())
        .map_err(|e| format!("no answer: {e}"))?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        status => Err(format!("answered {status}")),
    }
}

/// Runs delivery until `stop` is set: handshake first (retried with the
/// same backoff), then every due webhook in order.
pub fn run(world: Arc<Mutex<World>>, target: Target, stop: Arc<std::sync::atomic::AtomicBool>) {
    let agent = agent();
    let mut random = SplitMix64(target.seed ^ 0x05EE_D0F0_DE55);
    let stopping = || stop.load(std::sync::atomic::Ordering::Relaxed);
    if let Some(token) = &target.verify_token {
        let mut attempts = 0;
        loop {
            if stopping() {
                return;
            }
            let challenge = format!("{}", random.next() % 1_000_000_000);
            match handshake(&agent, &target.url, token, &challenge) {
                Ok(()) => {
                    tracing::info!(message = "Webhook URL verified.", url = %target.url);
                    break;
                }
                Err(error) => {
                    attempts += 1;
                    let wait = retry_in(attempts).unwrap_or(SignedDuration::from_secs(600));
                    tracing::warn!(message = "Webhook verification failed; webhooks wait for it.", url = %target.url, error, retry_in = %wait);
                    sleep_unless(&stopping, wait);
                }
            }
        }
    }
    loop {
        if stopping() {
            return;
        }
        let now = Timestamp::now();
        let due = match crate::lock(&world).due_webhooks(now, 64) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(message = "Cannot read the webhook outbox.", %error);
                sleep_unless(&stopping, SignedDuration::from_secs(1));
                continue;
            }
        };
        if due.is_empty() {
            let next = crate::lock(&world).next_webhook_ms().ok().flatten();
            // Sends add webhooks at any time: look again soon.
            let wait = next.map_or(50, |ms| {
                (ms - Timestamp::now().as_millisecond()).clamp(1, 50)
            });
            std::thread::sleep(Duration::from_millis(wait as u64));
            continue;
        }
        let mut due: Vec<Outgoing> = due;
        if due.len() >= 2 && random.percent(target.reorder_percent) {
            due.swap(0, 1);
        }
        for outgoing in due {
            let result = post(&agent, &target, &outgoing.body);
            let now = Timestamp::now();
            let world = crate::lock(&world);
            let recorded = match &result {
                Ok(()) => world.webhook_result(now, outgoing.seq, None),
                Err(error) => {
                    let retry = retry_in(outgoing.attempts + 1);
                    if retry.is_none() {
                        tracing::error!(
                            message = "Webhook abandoned after 7 days of retries.",
                            seq = outgoing.seq,
                            error
                        );
                    } else {
                        tracing::warn!(
                            message = "Webhook not accepted; will retry.",
                            seq = outgoing.seq,
                            error,
                            attempts = outgoing.attempts + 1
                        );
                    }
                    world.webhook_result(now, outgoing.seq, Some((error, retry)))
                }
            };
            if let Err(error) = recorded {
                tracing::error!(message = "Cannot record a webhook delivery.", %error);
            }
        }
    }
}

fn sleep_unless(stopping: &impl Fn() -> bool, wait: SignedDuration) {
    let until = std::time::Instant::now() + Duration::from_millis(wait.as_millis() as u64);
    while !stopping() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::retry_in;
    use jiff::SignedDuration;

    #[test]
    fn backoff_doubles_then_caps_then_gives_up_after_a_week() {
        let secs = |n| retry_in(n).map(|d: SignedDuration| d.as_secs());
        assert_eq!(
            (secs(1), secs(2), secs(3), secs(10), secs(11), secs(50)),
            (Some(1), Some(2), Some(4), Some(512), Some(600), Some(600))
        );
        let last = (1..).find(|&n| retry_in(n).is_none()).unwrap();
        let waited: i64 = (1..last).map(|n| retry_in(n).unwrap().as_secs()).sum();
        assert!(
            (7 * 24 * 3600..7 * 24 * 3600 + 600).contains(&waited),
            "{waited}"
        );
    }
}
