//! Evaluation metrics: how often each variant of each flag was served, and how often the application reported an
//! error for a context served that variant; sent in batches to `POST /api/feature-flags/metrics` (docs/api.md).
//!
//! The counting is arranged so evaluation stays cheap:
//! - every cached flag has one [`FlagCounters`], an atomic pair per label the flag can serve (the engine numbers them:
//!   [`vexil_core::CompiledFlag::labels`] and `Evaluation::slot`), so counting is one relaxed `fetch_add`;
//! - a [`FlagHandle`](crate::FlagHandle) counts in its own plain cells and adds them to the flag's counters when it looks
//!   the flag up again, which it does after every cache change and after every send (the sender bumps the cache
//!   generation for that), and when it is dropped;
//! - the sender takes the counters' totals (swapping them to zero), merges them into the batch that is waiting, and
//!   posts it. A batch the server did not accept for a passing reason (unreachable, 5xx) stays and is sent with the next
//!   one; a batch refused for good (4xx: key revoked, wrong format) is dropped with an error in the log.
//!
//! Only evaluations answered by the stored state are counted: an `FF_` override or the caller's fallback says nothing
//! about the state the server serves, which is what the guard judges.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::SdkError;
use crate::client::Shared;

/// One cached flag's counts, per label.
#[derive(Debug)]
pub(crate) struct FlagCounters {
    flag: String,
    labels: Vec<String>,
    evaluations: Box<[AtomicU64]>,
    errors: Box<[AtomicU64]>,
}

impl FlagCounters {
    pub(crate) fn new(flag: &str, labels: &[String]) -> Self {
        let zeros = || labels.iter().map(|_| AtomicU64::new(0)).collect();
        Self { flag: flag.to_owned(), labels: labels.to_vec(), evaluations: zeros(), errors: zeros() }
    }

    /// How many labels there are (slots `0..len`).
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    /// Counts `count` evaluations that served label `slot`.
    #[inline]
    pub(crate) fn add_evaluations(&self, slot: u16, count: u64) {
        if let Some(counter) = self.evaluations.get(usize::from(slot)) {
            counter.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Counts one error reported for a context that was served label `slot`.
    pub(crate) fn add_error(&self, slot: u16) {
        if let Some(counter) = self.errors.get(usize::from(slot)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves the counts into `batch`, leaving zeros.
    fn drain_into(&self, batch: &mut Batch) {
        for (index, label) in self.labels.iter().enumerate() {
            let evaluations = self.evaluations[index].swap(0, Ordering::Relaxed);
            let errors = self.errors[index].swap(0, Ordering::Relaxed);
            if evaluations > 0 || errors > 0 {
                let counts = batch.entry(self.flag.clone()).or_default().entry(label.clone()).or_default();
                counts.0 += evaluations;
                counts.1 += errors;
            }
        }
    }
}

/// flag → label → (evaluations, errors).
type Batch = BTreeMap<String, BTreeMap<String, (u64, u64)>>;

/// Every flag's counters and the batch waiting to be sent.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Off for clients that never send (offline ones, or built `without_metrics`): nothing is registered then.
    enabled: bool,
    /// Counters of current cache entries and of replaced ones still held by a handle; a set of counters is
    /// forgotten once it is drained and nothing else holds it.
    counters: Mutex<Vec<Arc<FlagCounters>>>,
    /// Counts taken from the counters but not yet accepted by the server.
    waiting: tokio::sync::Mutex<Batch>,
}

impl Metrics {
    pub(crate) fn new(enabled: bool) -> Self {
        Self { enabled, ..Self::default() }
    }

    /// Counters for a new cache entry, registered so the sender finds them.
    pub(crate) fn counters(&self, flag: &str, labels: &[String]) -> Arc<FlagCounters> {
        let counters = Arc::new(FlagCounters::new(flag, labels));
        if self.enabled {
            self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Arc::clone(&counters));
        }
        counters
    }

    /// Moves every counter's counts into the waiting batch and forgets counters nobody can add to any more.
    fn collect(&self, batch: &mut Batch) {
        let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counters.retain(|counter| {
            // Checked before draining: when only this list holds it, nobody can add after the drain.
            let last_holder = Arc::strong_count(counter) == 1;
            counter.drain_into(batch);
            !last_holder
        });
    }
}

/// The settings of the sending task.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    url: Url,
    sdk_key: String,
    http: reqwest::Client,
}

impl Sender {
    pub(crate) fn new(base: &Url, sdk_key: &str, http: reqwest::Client) -> Result<Self, String> {
        let url = base.join("api/feature-flags/metrics").map_err(|error| error.to_string())?;
        Ok(Self { url, sdk_key: sdk_key.to_owned(), http })
    }
}

/// Why a batch was not accepted.
#[derive(Debug)]
enum Refusal {
    /// Try again with the next batch.
    Passing(String),
    /// The server refused it for good.
    Final(String),
}

/// Takes the counts and sends them with whatever was waiting. Returns once the server answered.
pub(crate) async fn flush(shared: &Shared, sender: &Sender) -> Result<(), SdkError> {
    // One flush at a time, so a batch is never sent twice.
    let mut waiting = shared.metrics.waiting.lock().await;
    shared.metrics.collect(&mut waiting);
    // Handles add their counts when they next look their flag up, which a generation bump makes them do.
    shared.bump_generation();
    if waiting.is_empty() {
        return Ok(());
    }
    match post(sender, &waiting).await {
        Ok(()) => {
            waiting.clear();
            Ok(())
        }
        Err(Refusal::Passing(reason)) => Err(SdkError::MetricsNotSent { reason, kept: true }),
        Err(Refusal::Final(reason)) => {
            waiting.clear();
            Err(SdkError::MetricsNotSent { reason, kept: false })
        }
    }
}

async fn post(sender: &Sender, batch: &Batch) -> Result<(), Refusal> {
    let flags: Map<String, Value> = batch
        .iter()
        .map(|(flag, labels)| {
            let variants: Map<String, Value> = labels
                .iter()
                .map(|(label, (evaluations, errors))| (label.clone(), json!({"evaluations": evaluations, "errors": errors})))
                .collect();
            (flag.clone(), json!({"variants": variants}))
        })
        .collect();
    let request = sender.http.post(sender.url.clone()).bearer_auth(&sender.sdk_key).json(&json!({"flags": flags}));
    let response = match tokio::time::timeout(Duration::from_secs(10), request.send()).await {
        Err(_) => return Err(Refusal::Passing("the server did not answer within 10 s".to_owned())),
        Ok(Err(error)) => return Err(Refusal::Passing(format!("cannot reach the server: {error}"))),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let message = format!("the server answered {status}: {}", crate::connection::error_message(&body));
    // 408 and 429 are the 4xx that pass.
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        Err(Refusal::Final(message))
    } else {
        Err(Refusal::Passing(message))
    }
}

/// Sends the counts every `interval` until the client closes, then once more.
pub(crate) async fn run(shared: Arc<Shared>, sender: Sender, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closing = tokio::select! {
            _ = ticker.tick() => false,
            _ = shutdown.wait_for(|closed| *closed) => true,
        };
        match flush(&shared, &sender).await {
            Ok(()) => {}
            Err(error @ SdkError::MetricsNotSent { kept: true, .. }) => tracing::warn!(url = %sender.url, "{error}"),
            Err(error) => tracing::error!(url = %sender.url, "{error}"),
        }
        if closing {
            return;
        }
    }
}
