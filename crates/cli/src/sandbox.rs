//! `wameter sandbox`: reads the flags and runs the sandbox of
//! `wameter-sandbox`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use jiff::SignedDuration;
use wameter_sandbox::delivery::Target;
use wameter_sandbox::{Config, Options, Reengagement};

use crate::input::PricingArgs;

/// Options of `wameter sandbox`.
#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    listen: String,
    /// Where the app receives webhooks (http://…). Without it webhooks stay in GET /_sandbox/webhooks.
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// Meta app secret that signs webhooks (X-Hub-Signature-256); prefer the environment variable.
    #[arg(
        long,
        env = "WAMETER_APP_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    app_secret: Option<String>,
    /// Verify token: the app must answer Meta's verification handshake with it before webhooks flow.
    #[arg(
        long,
        env = "WAMETER_VERIFY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    verify_token: Option<String>,
    /// The only bearer token the Graph API paths accept [default: any].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// SQLite file that keeps the sandbox's state across restarts [default: memory].
    #[arg(long, value_name = "FILE")]
    database: Option<String>,
    /// How a free-form message outside the customer service window fails: `async` (Meta's way:
    /// accepted, then a failed status with 131047) or `sync` (refused at once with 131047).
    #[arg(long, default_value = "async", value_parser = ["async", "sync"])]
    reengagement: String,
    /// Sandbox seconds from a send to its `sent` status.
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    sent_after: u32,
    /// Sandbox seconds from a send to its `delivered` (or `failed`) status.
    #[arg(long, default_value_t = 2, value_name = "SECS")]
    delivered_after: u32,
    /// Sandbox seconds from a send to its `read` status [default: never read].
    #[arg(long, value_name = "SECS")]
    read_after: Option<u32>,
    /// Percent of messages that fail with 131026 (undeliverable).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100), value_name = "PERCENT")]
    failure_percent: u64,
    /// Fault injection: percent of webhooks posted twice.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100), value_name = "PERCENT")]
    duplicate_percent: u64,
    /// Fault injection: percent of delivery rounds whose first two webhooks are swapped.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100), value_name = "PERCENT")]
    reorder_percent: u64,
    /// Fault injection: hold each webhook back a random 0..=MS milliseconds (reorders them too).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    delay_ms_max: u64,
    /// Start the clock of a new sandbox here (RFC 3339) instead of at real time, e.g. to develop
    /// against an earlier pricing era. A sandbox with history (--database) keeps its clock.
    #[arg(long, value_name = "INSTANT")]
    clock_start: Option<jiff::Timestamp>,
    /// Seed of the failure and fault draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    pricing: PricingArgs,
}

/// Runs the sandbox until Ctrl-C or SIGTERM.
pub fn run(args: SandboxArgs) -> Result<ExitCode> {
    if args.pricing.as_ruleset.is_some() || args.pricing.rates_on.is_some() {
        bail!(
            "--as-ruleset and --rates-on are for what-if replays; the sandbox prices as Meta does"
        );
    }
    if let Some(url) = &args.webhook_url
        && !url.starts_with("http://")
    {
        bail!(
            "--webhook-url {url}: the sandbox posts to http:// URLs (it runs beside the app; put a TLS proxy in front for https)"
        );
    }
    let setup = args.pricing.setup()?;
    let pricing = Arc::new(setup.pricing);
    let options = Options {
        sent_after: SignedDuration::from_secs(args.sent_after.into()),
        delivered_after: SignedDuration::from_secs(
            args.delivered_after.max(args.sent_after).into(),
        ),
        read_after: args.read_after.map(|s| SignedDuration::from_secs(s.into())),
        failure_percent: args.failure_percent,
        reengagement: if args.reengagement == "sync" {
            Reengagement::Sync
        } else {
            Reengagement::Async
        },
        seed: args.seed,
        duplicate_percent: args.duplicate_percent,
        delay_ms_max: args.delay_ms_max,
    };
    let target = args.webhook_url.clone().map(|url| Target {
        url,
        app_secret: args.app_secret.clone().map(String::into_bytes),
        verify_token: args.verify_token.clone(),
        reorder_percent: args.reorder_percent,
        seed: args.seed,
    });
    let database = args
        .database
        .as_deref()
        .map(|d| PathBuf::from(d.strip_prefix("sqlite://").unwrap_or(d)));
    let config = Config {
        pricing,
        options,
        target,
        token: args.token.clone(),
        database,
        clock_start: args.clock_start,
    };

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAMETER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if config.target.is_some() && args.app_secret.is_none() {
        tracing::warn!(
            message = "No WAMETER_APP_SECRET: webhooks go unsigned (Meta always signs; set it to test your signature check)."
        );
    }
    if config.target.is_none() {
        tracing::info!(message = "No --webhook-url: webhooks are kept for GET /_sandbox/webhooks.");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        // Tests and scripts read this line for the port.
        eprintln!("wameter sandbox listening on http://{address}");
        wameter_sandbox::serve(listener, config)
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(ExitCode::SUCCESS)
    })
}
