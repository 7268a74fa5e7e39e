//! What a server runs with: its environments, flag categories and limits.

use vexil_core::{Categories, Environments};

/// The server's configuration, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Environments in promotion order.
    pub environments: Environments,
    /// Accepted flag categories.
    pub categories: Categories,
    /// The largest request body accepted, in bytes (imports get eight times as much).
    pub body_limit: usize,
    /// How often an idle stream gets a heartbeat (at most 15 s, so proxies keep it open).
    pub heartbeat: std::time::Duration,
    /// How many changes a streaming client may fall behind before it is disconnected.
    pub stream_buffer: usize,
    /// How long a write to a client may make no progress before the connection is closed.
    pub write_stall: std::time::Duration,
    /// How often the guard looks at watched flags' error rates.
    pub guard_interval: std::time::Duration,
    /// How long after a change in a protected environment the guard watches it (zero: only rollouts are watched).
    pub guard_window: std::time::Duration,
    /// The guard's policy (minimum sample, minimum increase, false-positive budget).
    pub guard: vexil_core::guard::GuardPolicy,
    /// Whether a rollout step waits for the guard's evidence that the current one is healthy (`hold`, true) or
    /// is taken on schedule whatever the guard has seen (`advance`).
    pub rollout_holds_without_evidence: bool,
    /// The most evaluations one SDK key may report per minute (counted by arrival, whichever minute they are filed in).
    pub metrics_key_evaluations_per_minute: u64,
    /// The most evaluations one client-side key may report per minute from one client address. A client-side key is
    /// public (it is in a page), so this bounds what anyone holding it can add to what the guard judges from one place.
    pub metrics_client_evaluations_per_minute: u64,
    /// How many client networks a guard decision on client-side counts alone takes: each network (an IPv4 address, an
    /// IPv6 /64) counts at most `guard.min_evaluations / guard_client_networks` evaluations per flag, variant and hour
    /// under client-side keys ([`crate::routes::metrics::NetworkShares`]); 0 counts them all.
    pub guard_client_networks: u64,
    /// How many minutes back a batch's `start` may lie (a batch held back through a short outage).
    pub metrics_max_backdate_minutes: u64,
    /// The origins whose pages may call OFREP and open the stream (CORS); empty means any origin, which is safe
    /// because those endpoints take keys in headers, never cookies.
    pub cors_origins: Vec<String>,
    /// How many connections may be open, in all and from one client address.
    pub connection_limits: crate::listener::ConnectionLimits,
    /// How long a client has to send each request head; also how long an idle keep-alive connection is kept.
    pub header_timeout: std::time::Duration,
    /// How long a client has to send a request body.
    pub body_timeout: std::time::Duration,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` names the client (for the login limiter); none by default.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The memory answers of 64 KiB and more may hold while clients read them, in bytes ([`crate::answers`]).
    pub response_memory: usize,
}

impl ServerConfig {
    /// The most evaluations one client network counts per flag, variant and hour under client-side keys (`None`: no bound).
    pub fn client_network_share(&self) -> Option<u64> {
        (self.guard_client_networks > 0).then(|| self.guard.min_evaluations.div_ceil(self.guard_client_networks).max(1))
    }

    /// The largest request body `path` accepts: imports eight times `body_limit`, a registry applied
    /// (`POST /api/flags/apply`, thousands of definitions) thirty-two times, everything else `body_limit`.
    pub fn body_limit_for(&self, path: &str) -> usize {
        if path == "/api/flags/apply" {
            self.body_limit * 32
        } else if path.starts_with("/api/environments/") && path.ends_with("/import") {
            self.body_limit * 8
        } else {
            self.body_limit
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            environments: Environments::seed(),
            categories: Categories::default(),
            body_limit: 256 * 1024,
            heartbeat: std::time::Duration::from_secs(15),
            stream_buffer: crate::hub::CLIENT_BUFFER,
            write_stall: std::time::Duration::from_secs(30),
            guard_interval: std::time::Duration::from_secs(30),
            guard_window: std::time::Duration::from_secs(30 * 60),
            guard: vexil_core::guard::GuardPolicy::default(),
            rollout_holds_without_evidence: true,
            metrics_key_evaluations_per_minute: 10_000_000,
            metrics_client_evaluations_per_minute: 60_000,
            guard_client_networks: 20,
            metrics_max_backdate_minutes: 10,
            cors_origins: Vec::new(),
            connection_limits: crate::listener::ConnectionLimits::resolve(0, 0),
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            shutdown_grace: std::time::Duration::from_secs(5),
            trusted_proxies: Vec::new(),
            response_memory: 256 * 1024 * 1024,
        }
    }
}
