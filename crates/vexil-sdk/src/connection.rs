//! The connection task: reads the server's SSE stream into the cache, and reconnects when it breaks.
//!
//! One loop: connect (sending `Last-Event-ID` with the last applied revision once the server has sent data),
//! read events until the stream ends, fails, falls silent for longer than the idle timeout, or a heartbeat shows
//! that something was missed; then wait a jittered, growing delay and connect again. A `snapshot` replaces the whole
//! cache, a `change` replaces one flag. If the very first attempt fails and a bootstrap file is configured, the
//! cache starts from that file (status `Stale`) while the loop keeps trying.
//!
//! After a bootstrap file the client deliberately sends no `Last-Event-ID`: the file may come from another
//! server or an older store, whose revisions mean nothing here, so the server is asked for a full snapshot.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;
use reqwest::header::{ACCEPT, CACHE_CONTROL};
use tokio::sync::watch;

use crate::SdkError;
use crate::backoff::Backoff;
use crate::cache::{CacheOrigin, FlagCache};
use crate::client::{FlagEvent, Shared, Status};
use crate::sse::{SseEvent, SseItem, SseParser};
use crate::wire::{Change, Heartbeat, Snapshot, check_version};

/// Everything the task needs to connect.
#[derive(Debug)]
pub(crate) struct ConnectionSettings {
    stream_url: Url,
    sdk_key: String,
    bootstrap_file: Option<PathBuf>,
    initial_backoff: Duration,
    max_backoff: Duration,
    idle_timeout: Duration,
    http: reqwest::Client,
    /// Where metrics go, on the same server and with the same key and HTTP client.
    pub(crate) metrics: crate::metrics::Sender,
}

impl ConnectionSettings {
    pub(crate) fn new(
        server_url: &str,
        environment: &str,
        sdk_key: &str,
        bootstrap_file: Option<PathBuf>,
        initial_backoff: Duration,
        max_backoff: Duration,
        idle_timeout: Duration,
    ) -> Result<Self, SdkError> {
        let invalid = |reason: String| SdkError::InvalidServerUrl { url: server_url.to_owned(), reason };
        let mut base = Url::parse(server_url).map_err(|error| invalid(error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!("scheme `{}` is not http or https", base.scheme())));
        }
        // A server behind a path prefix (`https://example.com/vexil`) keeps it: join relative to a directory.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut stream_url = base.join("api/feature-flags/stream").map_err(|error| invalid(error.to_string()))?;
        stream_url.query_pairs_mut().append_pair("env", environment);
        let http = reqwest::Client::builder()
            // Connecting must not hang for the whole idle timeout when the server's host is unreachable.
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(SdkError::HttpClient)?;
        let metrics = crate::metrics::Sender::new(&base, sdk_key, http.clone()).map_err(invalid)?;
        Ok(Self { stream_url, sdk_key: sdk_key.to_owned(), bootstrap_file, initial_backoff, max_backoff, idle_timeout, http, metrics })
    }
}

/// Why a connection ended; every one of them leads to a reconnection.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnded {
    #[error("cannot reach the server: {0}")]
    Http(#[source] reqwest::Error),
    #[error("the server refused the stream ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the server closed the stream")]
    Closed,
    #[error("nothing received for {0:?}, not even a heartbeat")]
    Idle(Duration),
    #[error(transparent)]
    Format(#[from] crate::sse::SseError),
    #[error("invalid `{event}` event: {reason}")]
    InvalidEvent { event: String, reason: String },
    #[error("the server is at revision {server} and this client at {client}: something was missed, resuming")]
    Behind { server: u64, client: u64 },
}

/// Runs until `shutdown` says so or its sender is dropped.
pub(crate) async fn run(shared: Arc<Shared>, settings: ConnectionSettings, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(settings.initial_backoff, settings.max_backoff);
    let mut connection = Connection { shared: &shared, settings: &settings, resume_from: None };
    let mut first_attempt = true;
    loop {
        let ended = tokio::select! {
            ended = connection.stream(&mut backoff) => ended,
            _ = shutdown.wait_for(|closed| *closed) => break,
        };
        let message = ended.to_string();
        match &ended {
            ConnectionEnded::Refused { .. } => tracing::error!(url = %settings.stream_url, "{message}"),
            _ => tracing::warn!(url = %settings.stream_url, "{message}"),
        }
        shared.set_last_error(Some(message));
        let has_flags = shared.read_cache().origin != CacheOrigin::Empty;
        shared.set_status(if has_flags { Status::Stale } else { Status::Connecting });
        if first_attempt
            && !has_flags
            && let Some(path) = &settings.bootstrap_file
        {
            load_bootstrap(&shared, path).await;
        }
        first_attempt = false;
        let delay = backoff.next_delay();
        tracing::debug!(?delay, "reconnecting to the Vexil stream");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|closed| *closed) => break,
        }
    }
    shared.set_status(Status::Closed);
}

/// Loads a bootstrap file into an empty cache; a missing or invalid file is reported and the client goes on without.
async fn load_bootstrap(shared: &Shared, path: &PathBuf) {
    let snapshot = match tokio::fs::read_to_string(path).await {
        Ok(text) => Snapshot::from_json(&text),
        Err(source) => Err(SdkError::BootstrapFile { path: path.clone(), source }),
    };
    match snapshot {
        Ok(snapshot) => {
            tracing::warn!(path = %path.display(), revision = snapshot.revision, "the Vexil server is unreachable; serving flags from the bootstrap file");
            replace_cache(shared, snapshot, CacheOrigin::Bootstrap);
            shared.set_status(Status::Stale);
        }
        Err(error) => tracing::error!(path = %path.display(), "{error}; no flags until the server answers"),
    }
}

/// Swaps in a new cache built from `snapshot` and tells subscribers which flags differ.
fn replace_cache(shared: &Shared, snapshot: Snapshot, origin: CacheOrigin) -> u64 {
    let revision = snapshot.revision;
    let new_cache = FlagCache::from_snapshot(snapshot, origin, &shared.overrides, &shared.metrics);
    // Only this connection task writes the cache, so load-then-store loses nothing.
    let changed = shared.cache.load().changed_flags(&new_cache);
    shared.store_cache(new_cache);
    // No subscriber is not an error: notifications are optional.
    let _ = shared.events.send(FlagEvent::SnapshotReplaced { revision, changed });
    revision
}

struct Connection<'a> {
    shared: &'a Shared,
    settings: &'a ConnectionSettings,
    /// The last revision applied from this server, sent as `Last-Event-ID`.
    resume_from: Option<u64>,
}

impl Connection<'_> {
    /// One connection, from request to the end of the stream.
    async fn stream(&mut self, backoff: &mut Backoff) -> ConnectionEnded {
        let mut request = self
            .settings
            .http
            .get(self.settings.stream_url.clone())
            .bearer_auth(&self.settings.sdk_key)
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        if let Some(revision) = self.resume_from {
            request = request.header("Last-Event-ID", revision.to_string());
        }
        let response = match tokio::time::timeout(self.settings.idle_timeout, request.send()).await {
            Err(_) => return ConnectionEnded::Idle(self.settings.idle_timeout),
            Ok(Err(error)) => return ConnectionEnded::Http(error),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return ConnectionEnded::Refused { status: status.as_u16(), message: error_message(&body) };
        }
        self.shared.set_last_error(None);
        if self.resume_from.is_some() {
            // Resuming: the server replays what was missed right away, then goes live; no snapshot comes.
            self.shared.set_status(Status::Ready);
        }
        let mut body = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(self.settings.idle_timeout, body.next()).await {
                Err(_) => return ConnectionEnded::Idle(self.settings.idle_timeout),
                Ok(None) => return ConnectionEnded::Closed,
                Ok(Some(Err(error))) => return ConnectionEnded::Http(error),
                Ok(Some(Ok(chunk))) => chunk,
            };
            if let Err(error) = parser.feed(&chunk, &mut items) {
                return error.into();
            }
            for item in items.drain(..) {
                match item {
                    SseItem::Retry(delay) => backoff.set_initial(delay),
                    SseItem::Event(event) => {
                        if let Err(ended) = self.handle(event) {
                            return ended;
                        }
                        backoff.reset();
                    }
                }
            }
        }
    }

    fn handle(&mut self, event: SseEvent) -> Result<(), ConnectionEnded> {
        let invalid = |reason: String| ConnectionEnded::InvalidEvent { event: event.event.clone(), reason };
        match event.event.as_str() {
            "snapshot" => {
                let snapshot = Snapshot::from_json(&event.data).map_err(|error| invalid(error.to_string()))?;
                let revision = replace_cache(self.shared, snapshot, CacheOrigin::Server);
                self.resume_from = Some(revision);
                self.shared.set_status(Status::Ready);
                tracing::debug!(revision, "Vexil snapshot applied");
            }
            "change" => {
                let change: Change = serde_json::from_str(&event.data).map_err(|error| invalid(error.to_string()))?;
                check_version(change.version).map_err(invalid)?;
                let (flag, revision) = (change.flag.clone(), change.revision);
                let applied = {
                    let current = self.shared.cache.load_full();
                    if current.origin != CacheOrigin::Server {
                        return Err(invalid("a change arrived before the snapshot it applies to".to_owned()));
                    }
                    // Copy-on-write: readers keep the cache they loaded; entries are shared, only the map is copied.
                    let mut next = (*current).clone();
                    let applied = next.apply_change(change, &self.shared.overrides, &self.shared.metrics);
                    if applied {
                        self.shared.store_cache(next);
                    }
                    applied
                };
                if applied {
                    self.resume_from = Some(revision);
                    let _ = self.shared.events.send(FlagEvent::Changed { flag, revision });
                    tracing::debug!(revision, "Vexil change applied");
                }
            }
            "heartbeat" => {
                let heartbeat: Heartbeat = serde_json::from_str(&event.data).map_err(|error| invalid(error.to_string()))?;
                check_version(heartbeat.version).map_err(invalid)?;
                let client = self.shared.read_cache().revision;
                if heartbeat.revision > client {
                    return Err(ConnectionEnded::Behind { server: heartbeat.revision, client });
                }
            }
            // Events a later server may add are not this client's business.
            other => tracing::debug!(event = other, "ignoring an unknown Vexil stream event"),
        }
        Ok(())
    }
}

/// The message of a JSON error body (`{"error": {"code", "message"}}`), or the body itself, shortened.
pub(crate) fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}
