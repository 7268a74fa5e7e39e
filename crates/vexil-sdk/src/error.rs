//! The SDK's error type: what can go wrong when building a client, waiting for it, or reading and writing bootstrap files.
//!
//! Evaluation never returns an error: a flag that cannot be answered gives the caller's fallback, and the reason is in
//! the evaluation details ([`crate::EvaluationError`]). Connection failures are not errors either: the client retries
//! by itself, reports them through [`crate::Status`] and `tracing`, and keeps the last one for [`crate::VexilClient::last_connection_error`].

use std::path::PathBuf;
use std::time::Duration;

use crate::Status;

/// Why an SDK operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The server URL does not parse as an absolute `http` or `https` URL.
    #[error("server URL `{url}` is invalid ({reason}); give an absolute URL such as `http://localhost:8080`")]
    InvalidServerUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The client was built outside a tokio runtime, so its connection task has nowhere to run.
    #[error("the Vexil client must be built inside a tokio runtime (its connection runs as a tokio task)")]
    NoRuntime,
    /// The HTTP client could not be created (TLS set-up).
    #[error("the HTTP client could not be created: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// `.env.local` exists but could not be read.
    #[error("cannot read {path}: {source}")]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bootstrap file could not be read or written.
    #[error("bootstrap file {path}: {source}")]
    BootstrapFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot (bootstrap file or event) is not valid JSON of the stream format.
    #[error("invalid snapshot: {reason}")]
    InvalidSnapshot {
        /// What was wrong.
        reason: String,
    },
    /// There is no snapshot to save yet: the client has received no flags.
    #[error("no flags received yet; wait for the client to be ready before saving a bootstrap file")]
    NothingToSave,
    /// The client did not reach the awaited status in time.
    #[error("the Vexil client is still {status} after {waited:?}{}", last_error.as_deref().map(|error| format!("; last connection error: {error}")).unwrap_or_default())]
    Timeout {
        /// How long was waited.
        waited: Duration,
        /// The status when the wait ended.
        status: Status,
        /// The last connection error, if any.
        last_error: Option<String>,
    },
    /// Evaluation metrics could not be delivered.
    #[error("evaluation metrics were not sent: {reason}{}", if *kept { "; they are kept and sent with the next batch" } else { "; they were dropped" })]
    MetricsNotSent {
        /// Why.
        reason: String,
        /// Whether the counts are kept for the next batch (the server was unreachable or failed), or dropped
        /// (it refused them for good: a revoked key, a format it does not accept).
        kept: bool,
    },
    /// This client does not send metrics: it is offline or was built with `without_metrics`.
    #[error("this client does not send evaluation metrics (it is offline or was built with `without_metrics`)")]
    MetricsOff,
    /// The client was closed while waiting.
    #[error("the Vexil client was closed")]
    Closed,
}
