//! The client applications hold: built once, cloned freely, evaluated from any thread.
//!
//! A [`VexilClient`] is a handle on shared state (the flag cache, the override table, the status and the change
//! channel) plus, for a connected client, one background tokio task that keeps the cache current from the server's
//! SSE stream ([`crate::connection`]). Evaluation never waits on the network: it reads the cache under a read lock
//! that writers hold only to swap in an already compiled snapshot or to insert one compiled flag.
//! Dropping the last handle (or calling [`VexilClient::close`]) stops the task.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};
use vexil_core::{EvaluationContext, FlagDefinition, FlagName, FlagType};

use crate::cache::{CacheOrigin, FlagCache};
use crate::connection::{self, ConnectionSettings};
use crate::details::{EvaluationDetails, FlagValue, details_of, resolve, value_of};
use crate::metrics::{Metrics, Sender as MetricsSender};
use crate::overrides::{OverrideWarning, Overrides};
use crate::{SdkError, Snapshot};

/// How current the client's flags are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No flags yet: the first connection is being made. Getters answer from overrides or the fallback.
    Connecting,
    /// Connected and up to date with the server.
    Ready,
    /// Serving flags that may be out of date: disconnected after having had data, or running from a bootstrap file
    /// or an offline snapshot. The client keeps trying to reconnect.
    Stale,
    /// [`VexilClient::close`] was called; the flags are kept but no longer updated.
    Closed,
}

impl Status {
    /// `connecting`, `ready`, `stale` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Ready => "ready",
            Status::Stale => "stale",
            Status::Closed => "closed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What changed in the client's flags; received from [`VexilClient::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagEvent {
    /// One flag changed (a `change` event of the stream).
    Changed {
        /// The flag.
        flag: FlagName,
        /// The environment's revision after the change.
        revision: u64,
    },
    /// A whole snapshot replaced the cache (first connection, a reconnection the server could not resume, a bootstrap file).
    SnapshotReplaced {
        /// The snapshot's revision.
        revision: u64,
        /// The flags whose definition or state differ from what the client had before, sorted by name.
        changed: Vec<FlagName>,
    },
}

impl FlagEvent {
    /// The environment's revision after this event.
    pub fn revision(&self) -> u64 {
        match self {
            FlagEvent::Changed { revision, .. } | FlagEvent::SnapshotReplaced { revision, .. } => *revision,
        }
    }

    /// Whether this event may change what `flag` evaluates to.
    pub fn concerns(&self, flag: &str) -> bool {
        match self {
            FlagEvent::Changed { flag: changed, .. } => changed.as_str() == flag,
            FlagEvent::SnapshotReplaced { changed, .. } => changed.iter().any(|changed| changed.as_str() == flag),
        }
    }
}

/// How many events a slow subscriber may fall behind before it sees `RecvError::Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// State shared by the client handles and the connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Swapped whole on every change, so reading it takes no lock. Written only through [`Shared::store_cache`].
    pub cache: ArcSwap<FlagCache>,
    /// Bumped after every cache swap, so a [`FlagHandle`](crate::FlagHandle) knows when to look its flag up again.
    pub generation: std::sync::atomic::AtomicU64,
    pub overrides: Overrides,
    pub status: watch::Sender<Status>,
    pub events: broadcast::Sender<FlagEvent>,
    pub last_error: Mutex<Option<String>>,
    /// The environment as configured (key or long name), for messages until a snapshot names it.
    pub configured_environment: String,
    /// Evaluation and error counts (`crate::metrics`).
    pub metrics: Metrics,
    /// Where the counts are sent; `None` for clients that do not send them.
    pub metrics_sender: Option<MetricsSender>,
}

impl Shared {
    pub(crate) fn read_cache(&self) -> arc_swap::Guard<Arc<FlagCache>> {
        self.cache.load()
    }

    /// Swaps in a new cache, then bumps the generation: a handle that sees the new generation finds the new cache.
    pub(crate) fn store_cache(&self, cache: FlagCache) {
        self.cache.store(Arc::new(cache));
        self.bump_generation();
    }

    /// Makes every [`FlagHandle`](crate::FlagHandle) look its flag up again on its next read (and hand over its counts).
    pub(crate) fn bump_generation(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn set_status(&self, status: Status) {
        self.status.send_if_modified(|current| {
            let modified = *current != status && *current != Status::Closed;
            if modified {
                *current = status;
            }
            modified
        });
    }

    pub(crate) fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = error;
    }
}

/// Configures a [`VexilClient`]; made by [`VexilClient::builder`] or [`VexilClient::offline`].
#[derive(Debug)]
pub struct ClientBuilder {
    server_url: Option<String>,
    environment: String,
    sdk_key: String,
    snapshot: Option<Snapshot>,
    dotenv_path: Option<PathBuf>,
    variables: Option<Vec<(OsString, OsString)>>,
    bootstrap_file: Option<PathBuf>,
    initial_backoff: Duration,
    max_backoff: Duration,
    idle_timeout: Duration,
    metrics_interval: Option<Duration>,
}

/// How often a connected client sends its evaluation counts by default.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(10);

impl ClientBuilder {
    fn new(server_url: Option<String>, environment: String, sdk_key: String, snapshot: Option<Snapshot>) -> Self {
        Self {
            server_url,
            environment,
            sdk_key,
            snapshot,
            dotenv_path: Some(PathBuf::from(".env.local")),
            variables: None,
            bootstrap_file: None,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(45),
            metrics_interval: Some(DEFAULT_METRICS_INTERVAL),
        }
    }

    /// How often the evaluation counts and reported errors are sent to the server (default 10 s). The server's
    /// rollout guard judges from them, so a longer interval delays its decisions.
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = Some(interval.max(Duration::from_millis(100)));
        self
    }

    /// Sends no evaluation metrics (and counts none). The server's guard then has nothing from this client to judge by.
    pub fn without_metrics(mut self) -> Self {
        self.metrics_interval = None;
        self
    }

    /// Reads `FF_` overrides from this file instead of `.env.local` in the working directory.
    pub fn dotenv_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.dotenv_path = Some(path.into());
        self
    }

    /// Reads no `.env.local` file.
    pub fn without_dotenv(mut self) -> Self {
        self.dotenv_path = None;
        self
    }

    /// Takes `FF_` overrides from these variables instead of the process environment (which is then not read).
    pub fn environment_variables<I, K, V>(mut self, variables: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.variables = Some(variables.into_iter().map(|(name, value)| (name.into(), value.into())).collect());
        self
    }

    /// Starts from this bootstrap file (the JSON of a `snapshot` event) when the first connection fails.
    pub fn bootstrap_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.bootstrap_file = Some(path.into());
        self
    }

    /// The reconnection delays: the first (until the server advises one with `retry:`) and the cap. Defaults: 1 s, 30 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// How long a connection may stay silent before it is considered dead. The server sends a heartbeat at least
    /// every 15 s; the default, 45 s, tolerates two lost ones.
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Reads the override sources and, for a connected client, starts the connection task.
    ///
    /// A connected client must be built inside a tokio runtime. Building does not wait for the server:
    /// use [`VexilClient::wait_ready`] for that.
    pub fn build(self) -> Result<VexilClient, SdkError> {
        let variables = self.variables.unwrap_or_else(|| std::env::vars_os().collect());
        let overrides = Overrides::load(variables, self.dotenv_path.as_deref())?;
        let settings = match &self.server_url {
            Some(server_url) => Some(ConnectionSettings::new(
                server_url,
                &self.environment,
                &self.sdk_key,
                self.bootstrap_file.clone(),
                self.initial_backoff,
                self.max_backoff,
                self.idle_timeout,
            )?),
            None => None,
        };
        let runtime = match settings {
            Some(_) => Some(tokio::runtime::Handle::try_current().map_err(|_| SdkError::NoRuntime)?),
            None => None,
        };
        let metrics_interval = self.metrics_interval.filter(|_| settings.is_some());
        let metrics = Metrics::new(metrics_interval.is_some());
        let (cache, status) = match self.snapshot {
            Some(snapshot) => (FlagCache::from_snapshot(snapshot, CacheOrigin::Bootstrap, &overrides, &metrics), Status::Stale),
            None => (FlagCache::empty(), Status::Connecting),
        };
        let metrics_sender = match (&settings, metrics_interval) {
            (Some(settings), Some(_)) => Some(settings.metrics.clone()),
            _ => None,
        };
        let environment = if cache.environment.is_empty() { self.environment } else { cache.environment.clone() };
        let shared = Arc::new(Shared {
            cache: ArcSwap::from_pointee(cache),
            generation: std::sync::atomic::AtomicU64::new(0),
            overrides,
            status: watch::Sender::new(status),
            events: broadcast::Sender::new(EVENT_CAPACITY),
            last_error: Mutex::new(None),
            configured_environment: environment,
            metrics,
            metrics_sender,
        });
        let (shutdown, shutdown_receiver) = watch::channel(false);
        if let (Some(settings), Some(runtime)) = (settings, runtime) {
            if let (Some(sender), Some(interval)) = (&shared.metrics_sender, metrics_interval) {
                runtime.spawn(crate::metrics::run(Arc::clone(&shared), sender.clone(), interval, shutdown_receiver.clone()));
            }
            runtime.spawn(connection::run(Arc::clone(&shared), settings, shutdown_receiver));
        }
        Ok(VexilClient { shared, shutdown: Arc::new(shutdown) })
    }
}

/// A Vexil client: a local, always-current copy of one environment's flags and the override priority over it.
///
/// Cloning is cheap and every clone shares the same cache and connection.
#[derive(Debug, Clone)]
pub struct VexilClient {
    shared: Arc<Shared>,
    /// Dropped with the last handle, which ends the connection task.
    shutdown: Arc<watch::Sender<bool>>,
}

impl VexilClient {
    /// A client of `environment` (key or long name, `prod` or `production`) on the server at `server_url`,
    /// authenticated by `sdk_key` (a `vxs_…` key from `vexil token create --sdk --env <environment>`).
    pub fn builder(server_url: impl Into<String>, environment: impl Into<String>, sdk_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(Some(server_url.into()), environment.into(), sdk_key.into(), None)
    }

    /// A client that never connects and serves `snapshot` (with the overrides on top), for tests and offline tools.
    /// Its status is [`Status::Stale`].
    pub fn offline(snapshot: Snapshot) -> ClientBuilder {
        let environment = snapshot.environment.clone();
        ClientBuilder::new(None, environment, String::new(), Some(snapshot))
    }

    /// A handle on one flag, for reads on a hot path: it keeps the flag's compiled entry and looks it up again only
    /// after the cache changed, so a read costs the evaluation and little more. See [`FlagHandle`](crate::FlagHandle).
    pub fn flag<T: crate::FlagValue>(&self, flag: &str) -> crate::FlagHandle<T> {
        crate::handle::FlagHandle::new(self.shared.clone(), flag)
    }

    /// The value of boolean flag `flag` for `context`, or `fallback`.
    pub fn bool_value<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: bool) -> bool {
        self.value(flag, context, fallback)
    }

    /// The value of string flag `flag` for `context`, or `fallback`.
    pub fn string_value<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: &str) -> String {
        let cache = self.shared.read_cache();
        resolve(&cache, &self.shared.overrides, flag, FlagType::String, context, |resolution| {
            resolution.value.and_then(Value::as_str).unwrap_or(fallback).to_owned()
        })
    }

    /// The value of number flag `flag` for `context`, or `fallback`.
    pub fn number_value<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: f64) -> f64 {
        self.value(flag, context, fallback)
    }

    /// The value of JSON flag `flag` for `context`, or `fallback`.
    pub fn json_value<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: Value) -> Value {
        self.value(flag, context, fallback)
    }

    /// [`VexilClient::bool_value`] with where the value came from and why.
    pub fn bool_details<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: bool) -> EvaluationDetails<bool> {
        self.details(flag, context, fallback)
    }

    /// [`VexilClient::string_value`] with where the value came from and why.
    pub fn string_details<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: &str) -> EvaluationDetails<String> {
        self.details(flag, context, fallback.to_owned())
    }

    /// [`VexilClient::number_value`] with where the value came from and why.
    pub fn number_details<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: f64) -> EvaluationDetails<f64> {
        self.details(flag, context, fallback)
    }

    /// [`VexilClient::json_value`] with where the value came from and why.
    pub fn json_details<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: Value) -> EvaluationDetails<Value> {
        self.details(flag, context, fallback)
    }

    fn value<T: FlagValue, C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: T) -> T {
        let cache = self.shared.read_cache();
        resolve(&cache, &self.shared.overrides, flag, T::FLAG_TYPE, context, |resolution| value_of(resolution, fallback))
    }

    fn details<T: FlagValue, C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C, fallback: T) -> EvaluationDetails<T> {
        let cache = self.shared.read_cache();
        let environment = if cache.environment.is_empty() { &self.shared.configured_environment } else { &cache.environment };
        resolve(&cache, &self.shared.overrides, flag, T::FLAG_TYPE, context, |resolution| {
            details_of(resolution, flag, environment, fallback)
        })
    }

    /// Reports that the application hit an error while serving `context` with `flag`: the error is counted for the
    /// variant `context` is served now, and the server's rollout guard compares the variants' error rates.
    ///
    /// Returns whether it was counted: not when the flag is unknown, overridden by an `FF_` variable, or has no
    /// state (only what the stored state serves is judged). Cheap enough for every failed request; sent with the
    /// next batch of metrics.
    pub fn report_error<C: EvaluationContext + ?Sized>(&self, flag: &str, context: &C) -> bool {
        let cache = self.shared.read_cache();
        cache.flags.get(flag).is_some_and(|entry| crate::details::report_error(entry, cache.origin, &self.shared.overrides, flag, context))
    }

    /// Sends the evaluation counts and reported errors now, rather than at the next interval, and waits for the
    /// server's answer. Counts a [`FlagHandle`](crate::FlagHandle) holds are handed over when it is dropped or
    /// next read, so they go with the batch after.
    pub async fn flush_metrics(&self) -> Result<(), SdkError> {
        let sender = self.shared.metrics_sender.as_ref().ok_or(SdkError::MetricsOff)?;
        crate::metrics::flush(&self.shared, sender).await
    }

    /// The client's status now.
    pub fn status(&self) -> Status {
        *self.shared.status.borrow()
    }

    /// A receiver that sees every status change (`changed().await`).
    pub fn status_updates(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Change notifications from now on. A receiver more than 1024 events behind gets `RecvError::Lagged`
    /// and should re-read the flags it cares about.
    pub fn subscribe(&self) -> broadcast::Receiver<FlagEvent> {
        self.shared.events.subscribe()
    }

    /// Waits until the client is connected and up to date ([`Status::Ready`]).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), SdkError> {
        self.wait_for(timeout, |status| status == Status::Ready).await.map(|_| ())
    }

    /// Waits until the client has flags, from the server or from a bootstrap file ([`Status::Ready`] or
    /// [`Status::Stale`]); returns which.
    pub async fn wait_for_flags(&self, timeout: Duration) -> Result<Status, SdkError> {
        self.wait_for(timeout, |status| matches!(status, Status::Ready | Status::Stale)).await
    }

    async fn wait_for(&self, timeout: Duration, wanted: impl Fn(Status) -> bool) -> Result<Status, SdkError> {
        let mut receiver = self.shared.status.subscribe();
        let waited = tokio::time::timeout(timeout, receiver.wait_for(|status| wanted(*status) || *status == Status::Closed)).await;
        match waited {
            Ok(Ok(status)) if *status != Status::Closed => Ok(*status),
            Ok(_) => Err(SdkError::Closed),
            Err(_) => Err(SdkError::Timeout { waited: timeout, status: self.status(), last_error: self.last_connection_error() }),
        }
    }

    /// The environment: as the server names it (its key) once a snapshot arrived, as configured before.
    pub fn environment(&self) -> String {
        let cache = self.shared.read_cache();
        if cache.environment.is_empty() { self.shared.configured_environment.clone() } else { cache.environment.clone() }
    }

    /// The environment's revision the cache is current at; `None` before any flags arrived.
    pub fn revision(&self) -> Option<u64> {
        let cache = self.shared.read_cache();
        (cache.origin != CacheOrigin::Empty).then_some(cache.revision)
    }

    /// The names of every flag the client knows, sorted.
    pub fn flag_names(&self) -> Vec<FlagName> {
        let mut names: Vec<FlagName> = self.shared.read_cache().flags.values().map(|entry| entry.definition.name.clone()).collect();
        names.sort();
        names
    }

    /// The definition of `flag`, as the server sent it.
    pub fn definition(&self, flag: &str) -> Option<FlagDefinition> {
        self.shared.read_cache().flags.get(flag).map(|entry| entry.definition.clone())
    }

    /// Every `FF_` override that was reported and ignored (invalid for the flag's type, or not naming a flag).
    ///
    /// Values are parsed when the flag's type becomes known, so a warning about a flag appears once its
    /// definition arrives or once a typed getter asks for it.
    pub fn override_warnings(&self) -> Vec<OverrideWarning> {
        self.shared.overrides.warnings()
    }

    /// Why the last connection attempt failed or ended; `None` while connected.
    pub fn last_connection_error(&self) -> Option<String> {
        self.shared.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The cached flags as a snapshot; `None` before any flags arrived.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let cache = self.shared.read_cache();
        (cache.origin != CacheOrigin::Empty).then(|| cache.to_snapshot())
    }

    /// Writes the cached flags to `path` as a bootstrap file, replacing it atomically (write, then rename).
    ///
    /// This does blocking file I/O; the file is small, but call it from `spawn_blocking` in latency-critical tasks.
    pub fn save_bootstrap(&self, path: impl AsRef<Path>) -> Result<(), SdkError> {
        let path = path.as_ref();
        let snapshot = self.snapshot().ok_or(SdkError::NothingToSave)?;
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let io_error = |source| SdkError::BootstrapFile { path: path.to_owned(), source };
        std::fs::write(&temporary, snapshot.to_json()).map_err(io_error)?;
        std::fs::rename(&temporary, path).map_err(io_error)
    }

    /// Stops the connection; the flags are kept and still answer, with status [`Status::Closed`].
    pub fn close(&self) {
        self.shutdown.send_replace(true);
        self.shared.set_status(Status::Closed);
    }
}
