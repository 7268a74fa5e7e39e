//! What the server tells its operators: Prometheus metrics at `GET /metrics` (text exposition, checked by
//! `promtool check metrics` in the test suite).
//!
//! Labels are bounded sets only: route templates (`/api/flags/{flag}`), methods, status codes, environment keys
//! and fixed reasons. No flag name, user or key ever becomes a label, so a client cannot grow the registry.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request's route, method and status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template that matched (`/api/flags/{flag}`), or `unmatched`.
    pub route: &'static str,
    /// The HTTP method.
    pub method: &'static str,
    /// The status answered.
    pub status: u16,
}

/// A route and method.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: &'static str,
    /// The HTTP method.
    pub method: &'static str,
}

/// One label from a fixed set of words (an environment key, a reason, an outcome).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The word.
    pub kind: &'static str,
}

/// An environment and a word.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentKind {
    /// The environment's key.
    pub environment: &'static str,
    /// The word.
    pub kind: &'static str,
}

/// An environment.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabel {
    /// The environment's key.
    pub environment: &'static str,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The series of `vexil_credential_lookups_total`, by how a credential was checked.
#[derive(Debug, Clone, Default)]
pub struct CredentialLookups {
    /// Answered from the credential cache.
    pub cache: Counter,
    /// Looked up in the store.
    pub store: Counter,
    /// From the cache through a store outage.
    pub stale: Counter,
    /// Neither: the store could not be asked and the cache did not know it.
    pub unavailable: Counter,
}

/// Every metric the server keeps.
pub struct Telemetry {
    registry: Registry,
    /// Requests answered, by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency, by route and method.
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// How long the store took to commit a write.
    pub commit_seconds: Histogram,
    /// Store failures of writes, by kind (`unavailable`, `unknown`, `conflict`, `duplicate`, `invalid`, `corrupt`).
    pub store_errors: Family<Kind, Counter>,
    /// Open streams, by environment.
    pub stream_clients: Family<EnvironmentLabel, Gauge>,
    /// Change frames written to stream clients, by environment.
    pub stream_deliveries: Family<EnvironmentLabel, Counter>,
    /// Streams ended, by environment and reason (`lagged`, `write_failed` (stalled or gone), `credential`, `shutdown`).
    pub stream_drops: Family<EnvironmentKind, Counter>,
    /// The guard's looks at watched flags.
    pub guard_looks: Counter,
    /// What the guard decided at a look (`healthy`, `waiting`, `rolled_back`, `exempt`, `other`).
    pub guard_decisions: Family<Kind, Counter>,
    /// Credential look-ups, by how they were answered (`cache`, `store`, `stale`, `unavailable`).
    pub credential_lookups: Family<Kind, Counter>,
    /// The four series of `credential_lookups`, looked up once: every authenticated request counts one.
    pub lookups: CredentialLookups,
    /// Open client connections.
    pub connections: Gauge,
    /// Connections refused at the connection cap.
    pub connections_refused: Counter,
    /// Large answers refused because the memory for answers being read was all held.
    pub answers_refused: Counter,
    /// The series of OFREP's single-flag evaluations, looked up once.
    pub ofrep_single: RouteSeries,
    /// The series of OFREP's bulk evaluations, looked up once.
    pub ofrep_bulk: RouteSeries,
}

/// The statuses a [`RouteSeries`] keeps its counter for; others are counted through the family.
const KEPT_STATUSES: [u16; 6] = [200, 304, 400, 401, 403, 404];

/// One route's request series, looked up once: evaluations (the hot path) are counted without hashing their labels
/// into the families on every request. The series are the families' own (a counter and a histogram are shared
/// handles), so `GET /metrics` shows one set whichever way a request was counted.
#[derive(Debug)]
pub struct RouteSeries {
    route: &'static str,
    method: &'static str,
    seconds: std::sync::OnceLock<Histogram>,
    by_status: [std::sync::OnceLock<Counter>; KEPT_STATUSES.len()],
}

impl RouteSeries {
    /// The series of `method` on the route template `route`.
    pub fn new(route: &'static str, method: &'static str) -> Self {
        Self { route, method, seconds: Default::default(), by_status: Default::default() }
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vexil");
        let telemetry = Self {
            registry: Registry::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency as fn() -> Histogram),
            commit_seconds: latency(),
            store_errors: Family::default(),
            stream_clients: Family::default(),
            stream_deliveries: Family::default(),
            stream_drops: Family::default(),
            guard_looks: Counter::default(),
            guard_decisions: Family::default(),
            credential_lookups: Family::default(),
            lookups: CredentialLookups::default(),
            connections: Gauge::default(),
            connections_refused: Counter::default(),
            answers_refused: Counter::default(),
            ofrep_single: RouteSeries::new("/ofrep/v1/evaluate/flags/{key}", "POST"),
            ofrep_bulk: RouteSeries::new("/ofrep/v1/evaluate/flags", "POST"),
        };
        registry.register("http_requests", "HTTP requests answered, by route template, method and status", telemetry.requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency", telemetry.request_seconds.clone());
        registry.register("store_commit_duration_seconds", "How long the store took to commit a write", telemetry.commit_seconds.clone());
        registry.register("store_errors", "Writes the store failed, by kind", telemetry.store_errors.clone());
        registry.register("stream_clients", "Open server-sent-event streams", telemetry.stream_clients.clone());
        registry.register("stream_deliveries", "Change frames written to stream clients", telemetry.stream_deliveries.clone());
        registry.register("stream_drops", "Streams ended by the server, by reason", telemetry.stream_drops.clone());
        registry.register("guard_looks", "The guard's looks at watched flags", telemetry.guard_looks.clone());
        registry.register("guard_decisions", "What the guard decided at its looks", telemetry.guard_decisions.clone());
        registry.register("credential_lookups", "Credential look-ups, by how they were answered", telemetry.credential_lookups.clone());
        registry.register("connections", "Open client connections", telemetry.connections.clone());
        registry.register("connections_refused", "Connections refused at the connection cap", telemetry.connections_refused.clone());
        registry.register(
            "answers_refused",
            "Large answers refused with 503 because response_memory_mb was held by answers still being read",
            telemetry.answers_refused.clone(),
        );
        let lookup = |kind: &'static str| telemetry.credential_lookups.get_or_create(&Kind { kind }).clone();
        let lookups = CredentialLookups {
            cache: lookup("cache"),
            store: lookup("store"),
            stale: lookup("stale"),
            unavailable: lookup("unavailable"),
        };
        Self { registry, lookups, ..telemetry }
    }
}

impl Telemetry {
    /// Every metric in Prometheus' text format (0.0.4). The registry writes OpenMetrics, whose counter families are
    /// named without `_total` and which ends with `# EOF`; Prometheus' format (what `promtool check metrics` and
    /// every scraper read) names the family as its samples are named, so those lines are rewritten.
    pub fn render(&self) -> String {
        let mut open_metrics = String::new();
        prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry).expect("writing to a String cannot fail");
        let counters: HashSet<&str> =
            open_metrics.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
        let mut text = String::with_capacity(open_metrics.len() + 64);
        for line in open_metrics.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let family = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let name = rest.split(' ').next()?;
                counters.contains(name).then(|| format!("{prefix}{name}_total{}", &rest[name.len()..]))
            });
            text.push_str(family.as_deref().unwrap_or(line));
            text.push('\n');
        }
        text
    }

    /// A large answer refused for want of answer memory.
    pub fn answer_refused(&self) {
        self.answers_refused.inc();
    }

    /// Counts one request of a route whose series are kept (see [`RouteSeries`]).
    pub fn request_of(&self, series: &RouteSeries, status: u16, took: Duration) {
        let (route, method) = (series.route, series.method);
        let seconds = series.seconds.get_or_init(|| self.request_seconds.get_or_create(&RouteLabels { route, method }).clone());
        seconds.observe(took.as_secs_f64());
        match KEPT_STATUSES.iter().position(|kept| *kept == status) {
            Some(index) => {
                series.by_status[index].get_or_init(|| self.requests.get_or_create(&RequestLabels { route, method, status }).clone()).inc()
            }
            None => self.requests.get_or_create(&RequestLabels { route, method, status }).inc(),
        };
    }

    /// Counts one request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
        self.request_seconds.get_or_create(&RouteLabels { route, method }).observe(took.as_secs_f64());
    }
}

/// The `&'static str` of a route template or an environment key: the set is bounded (the router's routes, the
/// configured environments), so each is leaked once and then found by lookup.
pub fn intern(text: &str) -> &'static str {
    static SEEN: RwLock<Option<HashSet<&'static str>>> = RwLock::new(None);
    if let Some(found) = SEEN.read().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref().and_then(|seen| seen.get(text)) {
        return found;
    }
    let mut seen = SEEN.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    if let Some(found) = seen.get(text) {
        return found;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// A method's name as a `&'static str` (other methods count as `other`).
pub fn method_name(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}
