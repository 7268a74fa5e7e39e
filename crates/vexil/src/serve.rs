//! `vexil serve`: read the configuration, open the store, create the first admin if needed, serve until SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;
use vexil_core::{Categories, Environment, Environments};
use vexil_server::{BootstrapOptions, ServerConfig};
use vexil_store::{RedisStore, SqliteStore};

use crate::cli::ServeArgs;

/// The server's configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data: Option<PathBuf>,
    redis: Option<String>,
    categories: Option<Vec<String>>,
    environments: Option<Vec<Environment>>,
    body_limit: Option<usize>,
    /// Seconds between heartbeats on idle streams (1 to 15).
    heartbeat_seconds: Option<u64>,
    /// Changes a streaming client may fall behind before it is disconnected.
    stream_buffer: Option<usize>,
    /// Changes kept per environment for resuming clients.
    change_retention: Option<u64>,
    /// Seconds a write to a client may make no progress before its connection is closed.
    write_stall_seconds: Option<u64>,
    /// Seconds between the guard's looks at running rollouts and recent changes.
    guard_check_seconds: Option<u64>,
    /// Seconds the guard watches a change in a protected environment (0: only rollouts).
    guard_window_seconds: Option<u64>,
    /// Evaluations each variant needs before the guard decides anything.
    guard_min_evaluations: Option<u64>,
    /// The smallest error-rate increase (absolute, 0.01 = one point) worth a rollback.
    guard_min_increase: Option<f64>,
    /// The chance a watch of equal error rates is rolled back anyway (0.01 = 1 %).
    guard_false_positive_budget: Option<f64>,
    /// `hold` (default): a rollout step waits until the guard saw the current one healthy; `advance`: on schedule.
    rollout_without_evidence: Option<String>,
    /// The most evaluations one SDK key may report per minute.
    metrics_key_evaluations_per_minute: Option<u64>,
    /// The most evaluations one client-side key may report per minute from one address.
    metrics_client_evaluations_per_minute: Option<u64>,
    /// How many client networks (IPv4 addresses, IPv6 /64s) a guard decision on client-side counts alone takes (0: no bound).
    guard_client_networks: Option<u64>,
    /// How far back (minutes) a metrics batch may be filed.
    metrics_max_backdate_minutes: Option<u64>,
    /// Origins (`https://app.example.com`) whose pages may call OFREP and the stream; any origin when unset.
    cors_origins: Option<Vec<String>>,
    /// Connections open at once (0 or unset: what the open-file limit allows, at most 50 000).
    max_connections: Option<usize>,
    /// Connections one client address may hold (0 or unset: half of `max_connections`).
    max_connections_per_address: Option<usize>,
    /// Seconds a client has to send each request head; also how long an idle keep-alive connection is kept (1 to 300).
    header_timeout_seconds: Option<u64>,
    /// Seconds a client has to send a request body (1 to 300).
    body_timeout_seconds: Option<u64>,
    /// Seconds in-flight requests get to finish after SIGTERM (0 to 300).
    shutdown_grace_seconds: Option<u64>,
    /// Addresses of reverse proxies whose X-Forwarded-For names the client (for login rate limits).
    trusted_proxies: Option<Vec<String>>,
    /// Replicas a Redis commit must reach (WAIT) before it is acknowledged (default: 1 through Sentinel, 0 otherwise).
    redis_replicas: Option<u32>,
    /// How long a commit waits for those replicas, in milliseconds (default 1000).
    redis_replica_wait_ms: Option<u64>,
    /// Memory (MiB) answers of 64 KiB and more may hold while clients read them (default 256, 1 to 65536).
    response_memory_mb: Option<usize>,
}

/// Everything `serve` runs with, after flags, file and defaults are merged (flags win).
#[derive(Debug)]
pub struct Settings {
    pub bind: String,
    pub data: PathBuf,
    pub redis: Option<String>,
    pub change_retention: u64,
    pub server: ServerConfig,
    /// `--bootstrap`: begin a new deployment on an empty store whatever this server belonged to.
    pub bootstrap: bool,
    /// Replicas each Redis commit must reach, and how long it waits for them.
    pub redis_replicas: Option<(u32, std::time::Duration)>,
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_config(path)?,
            None => FileConfig::default(),
        };
        let mut server = ServerConfig::default();
        if let Some(environments) = file.environments {
            server.environments = Environments::new(environments).map_err(|error| anyhow::anyhow!("configuration: {}", error.message))?;
        }
        if let Some(categories) = file.categories {
            server.categories = Categories::new(categories).map_err(|error| anyhow::anyhow!("configuration: {}", error.message))?;
        }
        if let Some(limit) = file.body_limit {
            server.body_limit = limit;
        }
        if let Some(seconds) = file.heartbeat_seconds {
            if !(1..=15).contains(&seconds) {
                anyhow::bail!("configuration: heartbeat_seconds is {seconds}; accepted: 1 to 15");
            }
            server.heartbeat = std::time::Duration::from_secs(seconds);
        }
        if let Some(seconds) = file.write_stall_seconds {
            server.write_stall = std::time::Duration::from_secs(seconds.max(1));
        }
        if let Some(seconds) = file.guard_check_seconds {
            server.guard_interval = std::time::Duration::from_secs(seconds.max(1));
        }
        if let Some(seconds) = file.guard_window_seconds {
            if seconds > 7 * 86_400 {
                anyhow::bail!("configuration: guard_window_seconds is {seconds}; accepted: 0 (off) to 604800 (a week)");
            }
            server.guard_window = std::time::Duration::from_secs(seconds);
        }
        if let Some(minimum) = file.guard_min_evaluations {
            server.guard.min_evaluations = minimum.max(1);
        }
        if let Some(budget) = file.guard_false_positive_budget {
            if !(budget > 0.0 && budget <= 0.2) {
                anyhow::bail!("configuration: guard_false_positive_budget is {budget}; accepted: above 0 and at most 0.2 (20 %)");
            }
            server.guard.false_positive_budget = budget;
        }
        if let Some(increase) = file.guard_min_increase {
            server.guard.min_increase = increase.clamp(0.0, 1.0);
        }
        match file.rollout_without_evidence.as_deref() {
            None | Some("hold") => {}
            Some("advance") => server.rollout_holds_without_evidence = false,
            Some(other) => anyhow::bail!("configuration: rollout_without_evidence is `{other}`; accepted: hold (the default), advance"),
        }
        if let Some(budget) = file.metrics_key_evaluations_per_minute {
            if budget == 0 {
                anyhow::bail!("configuration: metrics_key_evaluations_per_minute is 0; accepted: 1 or more");
            }
            server.metrics_key_evaluations_per_minute = budget;
        }
        if let Some(budget) = file.metrics_client_evaluations_per_minute {
            if budget == 0 {
                anyhow::bail!("configuration: metrics_client_evaluations_per_minute is 0; accepted: 1 or more");
            }
            server.metrics_client_evaluations_per_minute = budget;
        }
        if let Some(networks) = file.guard_client_networks {
            if networks > server.guard.min_evaluations {
                anyhow::bail!(
                    "configuration: guard_client_networks is {networks}; accepted: 0 (count every client-side evaluation) to guard_min_evaluations ({})",
                    server.guard.min_evaluations
                );
            }
            server.guard_client_networks = networks;
        }
        if let Some(minutes) = file.metrics_max_backdate_minutes {
            if minutes > 60 {
                anyhow::bail!("configuration: metrics_max_backdate_minutes is {minutes}; accepted: 0 to 60");
            }
            server.metrics_max_backdate_minutes = minutes;
        }
        for origin in file.cors_origins.unwrap_or_default() {
            let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            let valid = host.is_some_and(|host| {
                !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            });
            if !valid {
                anyhow::bail!(
                    "configuration: cors_origins has `{origin}`; accepted: origins such as https://app.example.com (scheme and host, optional port, no path)"
                );
            }
            server.cors_origins.push(origin);
        }
        if let Some(megabytes) = file.response_memory_mb {
            if !(1..=65536).contains(&megabytes) {
                anyhow::bail!("configuration: response_memory_mb is {megabytes}; accepted: 1 to 65536");
            }
            server.response_memory = megabytes * 1024 * 1024;
        }
        server.connection_limits = vexil_server::listener::ConnectionLimits::resolve(
            file.max_connections.unwrap_or(0),
            file.max_connections_per_address.unwrap_or(0),
        );
        for (name, value, target, minimum) in [
            ("header_timeout_seconds", file.header_timeout_seconds, &mut server.header_timeout, 1),
            ("body_timeout_seconds", file.body_timeout_seconds, &mut server.body_timeout, 1),
            ("shutdown_grace_seconds", file.shutdown_grace_seconds, &mut server.shutdown_grace, 0),
        ] {
            if let Some(seconds) = value {
                if !(minimum..=300).contains(&seconds) {
                    anyhow::bail!("configuration: {name} is {seconds}; accepted: {minimum} to 300");
                }
                *target = std::time::Duration::from_secs(seconds);
            }
        }
        for proxy in file.trusted_proxies.unwrap_or_default() {
            let address = proxy.parse().map_err(|_| {
                anyhow::anyhow!("configuration: trusted_proxies has `{proxy}`; accepted: IP addresses such as 10.0.0.5 or ::1")
            })?;
            server.trusted_proxies.push(address);
        }
        if let Some(buffer) = file.stream_buffer {
            server.stream_buffer = buffer.clamp(1, 1 << 16);
        }
        Ok(Self {
            bind: args.bind.or(file.bind).unwrap_or_else(|| "127.0.0.1:7070".to_owned()),
            data: args.data.or(file.data).unwrap_or_else(|| PathBuf::from("vexil-data")),
            redis: args.redis.or(file.redis),
            change_retention: file.change_retention.unwrap_or(vexil_store::sqlite::DEFAULT_CHANGE_RETENTION).max(1),
            bootstrap: args.bootstrap,
            redis_replicas: match (file.redis_replicas, file.redis_replica_wait_ms) {
                (None, None) => None,
                (replicas, wait) => Some((replicas.unwrap_or(1), std::time::Duration::from_millis(wait.unwrap_or(1000).clamp(1, 60_000)))),
            },
            server,
        })
    }
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read configuration {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("configuration {} is not valid", path.display()))
}

fn bootstrap_options() -> BootstrapOptions {
    let read = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    BootstrapOptions {
        email: read("VEXIL_BOOTSTRAP_EMAIL"),
        password: read("VEXIL_BOOTSTRAP_PASSWORD"),
        token: read("VEXIL_BOOTSTRAP_TOKEN"),
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // The address first: a port already taken fails before anything is created, so a first admin's credentials,
    // shown once, are never printed by a start that then exits.
    let listener = tokio::net::TcpListener::bind(&settings.bind)
        .await
        .with_context(|| format!("cannot listen on {} (is another server already running there? --bind another address)", settings.bind))?;
    let keys: Vec<_> = settings.server.environments.iter().map(|environment| environment.key.clone()).collect();
    let (store, described): (Arc<dyn vexil_store::Store>, String) = match &settings.redis {
        Some(url) => {
            let store = RedisStore::open_with(url, &keys, settings.change_retention, settings.redis_replicas)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            (Arc::new(store), format!("redis store at {}", redact(url)))
        }
        None => {
            let store = SqliteStore::open_with_retention(&settings.data, &keys, settings.change_retention)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            (Arc::new(store), format!("embedded store in {}", settings.data.display()))
        }
    };
    let deployment = join_deployment(store.as_ref(), &settings.data, &described, settings.bootstrap).await?;
    store.prepare().await.map_err(|error| anyhow::anyhow!("cannot prepare the store: {error}"))?;
    let state = vexil_server::open(settings.server, store).await.map_err(|error| anyhow::anyhow!("cannot load the store: {error}"))?;
    state.adopt_deployment(deployment);
    if let Some(credentials) = vexil_server::bootstrap(&state, bootstrap_options())
        .await
        .map_err(|error| anyhow::anyhow!("cannot create the first admin: {}", error.message))?
    {
        println!("vexil: first start on an empty store; created the first admin (shown once, keep it safe):");
        println!("  email:    {}", credentials.email);
        if let Some(password) = &credentials.password {
            println!("  password: {password}");
        }
        if let Some(token) = &credentials.token {
            println!("  token:    {token}");
        }
    }
    let address = listener.local_addr()?;
    println!("vexil: listening on http://{address} ({described})");
    if address.ip().is_unspecified() {
        tracing::warn!("listening on every interface; put TLS in front of Vexil before exposing it");
    }
    vexil_server::run(listener, state, shutdown_signal()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Which deployment this server serves, checked against what it served before (`<data>/deployment`):
///
/// - the store has an id: join it, unless this server belonged to another deployment (a foreign store: refuse);
/// - the store has none and holds nothing, but this server belonged to a deployment: the store was wiped or replaced
///   (refuse, unless `--bootstrap` says to begin a new deployment on it);
/// - otherwise (a new store on a new server, or data from before deployments had ids): claim a new id.
async fn join_deployment(store: &dyn vexil_store::Store, data: &Path, described: &str, bootstrap: bool) -> anyhow::Result<String> {
    let marker = data.join("deployment");
    let known = std::fs::read_to_string(&marker).ok().map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
    let unreadable = |error: vexil_store::StoreError| anyhow::anyhow!("cannot read the store: {error}");
    let held = store.deployment().await.map_err(unreadable)?;
    let empty = store.users().await.map_err(unreadable)?.is_empty() && store.load().await.map_err(unreadable)?.definitions.is_empty();
    let deployment = match (held, known) {
        (Some(held), Some(known)) if held != known && !bootstrap => anyhow::bail!(
            "the {described} belongs to deployment {held}, but this server belonged to deployment {known}: it is pointed at another deployment's store. Point it at its own, or delete {} to join this one",
            marker.display()
        ),
        (Some(held), _) => held,
        (None, Some(known)) if empty && !bootstrap => anyhow::bail!(
            "the {described} is empty, but this server belonged to deployment {known}: the store was wiped or replaced. Restore it, or start with `vexil serve --bootstrap` to begin a new, empty deployment on it"
        ),
        (None, known) => {
            // A store with data but no id was written before deployments had ids: it keeps the id this server knew.
            let id = known.filter(|_| !empty).unwrap_or_else(|| vexil_server::auth::random_secret("dep_")[..24].to_owned());
            store.claim_deployment(&id).await.map_err(|error| anyhow::anyhow!("cannot write the store's deployment id: {error}"))?
        }
    };
    if known_differs(&marker, &deployment)
        && let Err(error) = std::fs::create_dir_all(data).and_then(|()| std::fs::write(&marker, format!("{deployment}\n")))
    {
        tracing::warn!(%error, path = %marker.display(), "cannot record the deployment this server joined");
    }
    Ok(deployment)
}

fn known_differs(marker: &Path, deployment: &str) -> bool {
    std::fs::read_to_string(marker).map(|text| text.trim() != deployment).unwrap_or(true)
}

/// A Redis URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
