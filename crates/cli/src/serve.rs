//! `wameter serve`: reads the configuration (flags, then environment, then
//! `wameter.toml`; the first that gives a value wins), opens the store and
//! runs the server of `wameter-server`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use wameter_server::{ApiToken, Config, Scope};
use wameter_store::{DatabaseUrl, Store};

use crate::input::PricingArgs;

/// Options of `wameter serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free port.
    #[arg(long, env = "WAMETER_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// sqlite://PATH (the embedded default: sqlite://wameter.db) or postgres://…
    #[arg(
        long,
        env = "WAMETER_DATABASE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Configuration file [default: ./wameter.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Meta app secret, the key of X-Hub-Signature-256 (prefer the environment variable).
    #[arg(
        long,
        env = "WAMETER_APP_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub app_secret: Option<String>,
    /// Token Meta's webhook verification request must carry.
    #[arg(
        long,
        env = "WAMETER_VERIFY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub verify_token: Option<String>,
    /// Bearer token for /v1 that sees every WABA (more, scoped, in wameter.toml).
    #[arg(
        long,
        env = "WAMETER_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub api_token: Option<String>,
    /// Largest webhook body accepted, bytes [default: 4 MiB].
    #[arg(long, value_name = "BYTES")]
    pub webhook_bytes_max: Option<usize>,
    /// Also serve Meta's send path, guarded, forwarding to this Graph API root (https://graph.facebook.com, or a sandbox).
    #[arg(long, env = "WAMETER_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,
    /// Refuse a free-form message when the customer service window closes sooner than this [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub safety_margin: Option<jiff::SignedDuration>,
    /// How long a guarded send's answer waits for its record to be on disk; past it, the answer says X-Wameter-Recorded: pending [default: 0, no wait; 30s: always wait].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub record_wait: Option<jiff::SignedDuration>,
    /// Post budget threshold alerts to this URL (signed like Meta's webhooks, header X-Wameter-Signature-256).
    #[arg(long, env = "WAMETER_ALERT_URL", value_name = "URL")]
    pub alert_url: Option<String>,
    /// Relay every accepted webhook, byte for byte and signed as Meta signs it, to your app's own webhook endpoint (after it is on disk; retried until the app answers 2xx).
    #[arg(long, env = "WAMETER_RELAY_URL", value_name = "URL")]
    pub relay_url: Option<String>,
    /// Connections open at once at most; past it new ones are closed at once [default: 512].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers; idle keep-alive connections close after it too [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: Option<jiff::SignedDuration>,
    /// Time one request may take, body included, before it is answered 408 and its connection closed [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<jiff::SignedDuration>,
    /// Bytes of webhook bodies held at once at most, counted as they arrive (bodies are read whole before their signature is checked); past it 503 [default: 268435456 = 256 MiB; at least --webhook-bytes-max].
    #[arg(long, value_name = "BYTES")]
    pub body_bytes_in_flight_max: Option<usize>,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

/// Reads `90s`, `2m`, `1h30m` or seconds (`120`).
fn parse_duration(text: &str) -> Result<jiff::SignedDuration, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(jiff::SignedDuration::from_secs(seconds));
    }
    let duration = text
        .parse::<jiff::SignedDuration>()
        .map_err(|e| format!("`{text}` is not a duration such as 90s, 2m or 1h30m: {e}"))?;
    if duration.is_negative() {
        return Err(format!("`{text}` is negative"));
    }
    Ok(duration)
}

/// A duration from the command line, else wameter.toml's `key`, else `default`.
fn duration_setting(
    arg: Option<jiff::SignedDuration>,
    file: Option<&str>,
    key: &str,
    default: jiff::SignedDuration,
) -> Result<jiff::SignedDuration> {
    match (arg, file) {
        (Some(duration), _) => Ok(duration),
        (None, Some(text)) => {
            parse_duration(text).map_err(|e| anyhow::anyhow!("wameter.toml: `{key}`: {e}"))
        }
        (None, None) => Ok(default),
    }
}

/// `wameter.toml`.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database: Option<String>,
    app_secret: Option<String>,
    verify_token: Option<String>,
    webhook_bytes_max: Option<usize>,
    events_bytes_max: Option<usize>,
    max_connections: Option<usize>,
    body_bytes_in_flight_max: Option<usize>,
    header_timeout: Option<String>,
    request_timeout: Option<String>,
    accounts: Option<PathBuf>,
    #[serde(default)]
    rates: Vec<PathBuf>,
    #[serde(default)]
    tiers: Vec<PathBuf>,
    #[serde(default)]
    tokens: Vec<FileToken>,
    upstream: Option<String>,
    safety_margin: Option<String>,
    record_wait: Option<String>,
    alert_url: Option<String>,
    relay_url: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileToken {
    name: String,
    token: String,
    /// Absent: every WABA.
    wabas: Option<Vec<String>>,
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: FileConfig =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for (index, token) in config.tokens.iter().enumerate() {
        if token.token.len() < 16 {
            bail!(
                "{}: tokens[{index}] ({}): `token` must be at least 16 characters",
                path.display(),
                token.name
            );
        }
    }
    Ok(config)
}

/// An `http://` or `https://` URL given to `flag`.
fn http_url(flag: &str, url: &str, example: &str) -> Result<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{flag} {url}: expected an http:// or https:// URL, such as {example}");
    }
    Ok(url.to_string())
}

/// Paths in the file are relative to the file.
fn relative_to(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    if args.pricing.as_ruleset.is_some() || args.pricing.rates_on.is_some() {
        bail!(
            "--as-ruleset and --rates-on are for what-if replays; the server prices as Meta does"
        );
    }
    let (file, file_dir) = match &args.config {
        Some(path) => (
            read_file_config(path)?,
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
        ),
        None if Path::new("wameter.toml").exists() => {
            (read_file_config(Path::new("wameter.toml"))?, PathBuf::new())
        }
        None => (FileConfig::default(), PathBuf::new()),
    };
    let mut pricing_args = args.pricing.clone();
    if pricing_args.accounts.is_none() {
        pricing_args.accounts = file.accounts.map(|p| relative_to(&file_dir, p));
    }
    if pricing_args.rates.is_empty() {
        pricing_args.rates = file
            .rates
            .into_iter()
            .map(|p| relative_to(&file_dir, p))
            .collect();
    }
    if pricing_args.tiers.is_empty() {
        pricing_args.tiers = file
            .tiers
            .into_iter()
            .map(|p| relative_to(&file_dir, p))
            .collect();
    }
    let setup = pricing_args.setup()?;

    let Some(app_secret) = args.app_secret.or(file.app_secret) else {
        bail!(
            "no app secret: set WAMETER_APP_SECRET (or app_secret in wameter.toml) to your Meta app's secret; without it wameter cannot tell Meta's webhooks from anyone's"
        );
    };
    let mut tokens = Vec::new();
    if let Some(token) = args.api_token {
        tokens.push(ApiToken {
            name: "WAMETER_API_TOKEN".into(),
            token,
            scope: Scope::All,
        });
    }
    for token in file.tokens {
        let scope = match token.wabas {
            None => Scope::All,
            Some(wabas) => Scope::Wabas(wabas.into_iter().collect()),
        };
        tokens.push(ApiToken {
            name: token.name,
            token: token.token,
            scope,
        });
    }
    // One secret, one token: with two entries of one secret the first would
    // win, silently giving the second's holder the first's scope.
    for (index, token) in tokens.iter().enumerate() {
        if let Some(first) = tokens[..index]
            .iter()
            .find(|other| other.token == token.token)
        {
            bail!(
                "API tokens `{}` and `{}` have the same secret; every token must be its own (a request could not tell which scope it has)",
                first.name,
                token.name
            );
        }
    }
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let database = DatabaseUrl::parse(
        &args
            .database
            .or(file.database)
            .unwrap_or_else(|| "sqlite://wameter.db".into()),
    )?;
    let safety_margin = duration_setting(
        args.safety_margin,
        file.safety_margin.as_deref(),
        "safety_margin",
        jiff::SignedDuration::from_mins(2),
    )?;
    let record_wait = duration_setting(
        args.record_wait,
        file.record_wait.as_deref(),
        "record_wait",
        wameter_server::guard::RECORD_WAIT,
    )?;
    let guard = match args.upstream.or(file.upstream) {
        None => None,
        Some(url) => {
            let upstream = http_url("--upstream", &url, "https://graph.facebook.com")?
                .trim_end_matches('/')
                .to_string();
            Some(wameter_server::guard::GuardConfig {
                upstream,
                safety_margin,
                record_wait,
            })
        }
    };
    let relay_url = args
        .relay_url
        .or(file.relay_url)
        .map(|url| http_url("--relay-url", &url, "https://app.example.com/webhook"))
        .transpose()?;
    if relay_url.is_some() && database == DatabaseUrl::Discard {
        bail!("--relay-url needs a database: discard:// keeps no outbox to relay from");
    }
    let defaults = wameter_server::listen::Limits::default();
    let deadline = |setting: jiff::SignedDuration, key: &str| -> Result<std::time::Duration> {
        std::time::Duration::try_from(setting)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| anyhow::anyhow!("`{key}` must be a positive duration, not {setting}"))
    };
    let limits = wameter_server::listen::Limits {
        connections_max: match args.max_connections.or(file.max_connections) {
            Some(0) => bail!("`max_connections` must be at least 1"),
            Some(n) => n,
            None => defaults.connections_max,
        },
        header_timeout: deadline(
            duration_setting(
                args.header_timeout,
                file.header_timeout.as_deref(),
                "header_timeout",
                jiff::SignedDuration::try_from(defaults.header_timeout)?,
            )?,
            "header_timeout",
        )?,
        request_timeout: deadline(
            duration_setting(
                args.request_timeout,
                file.request_timeout.as_deref(),
                "request_timeout",
                jiff::SignedDuration::try_from(defaults.request_timeout)?,
            )?,
            "request_timeout",
        )?,
        body_bytes_in_flight_max: args
            .body_bytes_in_flight_max
            .or(file.body_bytes_in_flight_max)
            .unwrap_or(defaults.body_bytes_in_flight_max),
    };
    let webhook_bytes_max = args
        .webhook_bytes_max
        .or(file.webhook_bytes_max)
        .unwrap_or(wameter_server::WEBHOOK_BYTES_MAX_DEFAULT);
    if limits.body_bytes_in_flight_max < webhook_bytes_max {
        bail!(
            "`body_bytes_in_flight_max` ({}) must be at least `webhook_bytes_max` ({webhook_bytes_max}): otherwise a webhook of the largest accepted size could never be read",
            limits.body_bytes_in_flight_max
        );
    }
    let alert_url = args.alert_url.or(file.alert_url);
    if !setup.billing.budgets.is_empty() && alert_url.is_none() {
        eprintln!(
            "note: budgets are configured but no --alert-url: thresholds crossed are recorded (GET /v1/budgets) but not posted"
        );
    }
    let config = Config {
        app_secret: app_secret.into_bytes(),
        verify_token: args.verify_token.or(file.verify_token),
        tokens,
        webhook_bytes_max,
        events_bytes_max: file
            .events_bytes_max
            .unwrap_or(wameter_server::EVENTS_BYTES_MAX_DEFAULT),
        pricing: setup.pricing,
        billing: setup.billing,
        guard,
        alert_url,
        relay_url,
        limits,
    };

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAMETER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = Store::open(&database).await?;
        let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        if config.tokens.is_empty() {
            tracing::warn!(message = "No API token configured: /v1 answers 401. Set WAMETER_API_TOKEN or [[tokens]] in wameter.toml.");
        }
        if config.verify_token.is_none() {
            tracing::warn!(message = "No verify token: Meta's webhook verification (GET /webhook) will be refused. Set WAMETER_VERIFY_TOKEN.");
        }
        tracing::info!(message = "Database open.", database = %database);
        if database == DatabaseUrl::Discard {
            tracing::warn!(message = "discard:// stores nothing: every webhook is acknowledged and lost. For benchmarks only.");
        }
        if let Some(guard) = &config.guard {
            tracing::info!(message = "Guarding sends.", upstream = %guard.upstream, safety_margin = %guard.safety_margin, record_wait = %guard.record_wait);
        }
        // Tests and scripts read this line for the port.
        eprintln!("wameter serve listening on http://{address}");
        let state = wameter_server::AppState::new(config, store);
        wameter_server::serve(listener, state).await.context("server stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(
            parse_duration("120"),
            Ok(jiff::SignedDuration::from_secs(120))
        );
        assert_eq!(parse_duration("2m"), Ok(jiff::SignedDuration::from_mins(2)));
        assert_eq!(
            parse_duration("500ms"),
            Ok(jiff::SignedDuration::from_millis(500))
        );
        assert_eq!(parse_duration("0"), Ok(jiff::SignedDuration::ZERO));
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() {
        let default = jiff::SignedDuration::from_millis(1);
        let flag = Some(jiff::SignedDuration::from_secs(3));
        assert_eq!(
            duration_setting(flag, Some("9s"), "record_wait", default).unwrap(),
            jiff::SignedDuration::from_secs(3)
        );
        assert_eq!(
            duration_setting(None, Some("9s"), "record_wait", default).unwrap(),
            jiff::SignedDuration::from_secs(9)
        );
        assert_eq!(
            duration_setting(None, None, "record_wait", default).unwrap(),
            default
        );
        let error = duration_setting(None, Some("later"), "record_wait", default)
            .unwrap_err()
            .to_string();
        assert!(error.contains("wameter.toml: `record_wait`"), "{error}");
    }
}
