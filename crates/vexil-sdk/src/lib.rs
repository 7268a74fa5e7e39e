//! The Rust SDK for Vexil: flags evaluated in-process, from a local copy the server keeps current.
//!
//! An application builds one [`VexilClient`] with the server's URL, its environment and an SDK key. The client
//! opens the server's SSE stream (`docs/streaming.md`), keeps a cache of every flag of the environment, and answers
//! the typed getters ([`VexilClient::bool_value`] and friends) from memory with vexil-core's evaluation engine, the
//! same one the server uses. On top of the cache sits the override priority of DESIGN §1: `FF_<FLAG_NAME>` process
//! variables, then `.env.local`, then the stored state, then the registry default, then the caller's fallback.
//! When the stream breaks the client keeps serving what it has (status [`Status::Stale`]) and reconnects with backoff
//! and jitter, resuming by `Last-Event-ID`; with no server at all it can start from a bootstrap file.
//!
//! ```no_run
//! use vexil_sdk::{Context, VexilClient};
//! # async fn example() -> Result<(), vexil_sdk::SdkError> {
//! let client = VexilClient::builder("http://localhost:8080", "staging", "vxs_…").build()?;
//! client.wait_ready(std::time::Duration::from_secs(5)).await?;
//! if client.bool_value("ui.new_feature", &Context::new("user-42"), false) {
//!     // the new feature
//! }
//! # Ok(()) }
//! ```
//!
//! The modules, from the wire inwards:
//! - `sse`: the `text/event-stream` parser (bytes in, events out).
//! - [`wire`]: the stream's payloads ([`Snapshot`], [`Change`], [`Heartbeat`]); a snapshot is also the bootstrap file format.
//! - `connection`: the background task: connect, apply events, reconnect (`backoff`), fall back to a bootstrap file.
//! - `cache`: the environment's flags, compiled for the engine, with each flag's winning override worked out in advance.
//! - `overrides`: reading `FF_` variables and `.env.local` without touching the process environment.
//! - `details`: the override priority itself, and [`EvaluationDetails`] saying which layer answered and why.
//! - `client`: [`VexilClient`], its builder, [`Status`] and [`FlagEvent`] notifications.
//! - `metrics`: evaluations and reported errors per flag and variant, sent in batches for the server's rollout guard.
//! - `openfeature`: [`VexilProvider`], the provider for the `open-feature` crate.
//!
//! The SDK is documented for application developers in `docs/sdk.md`.

#![deny(missing_docs)]

mod backoff;
mod cache;
mod client;
mod connection;
mod details;
mod error;
mod handle;
mod metrics;
mod openfeature;
mod overrides;
mod sse;
pub mod wire;

pub use client::{ClientBuilder, DEFAULT_METRICS_INTERVAL, FlagEvent, Status, VexilClient};
pub use details::{ErrorKind, EvaluationDetails, EvaluationError, FlagValue, Source};
pub use error::SdkError;
pub use handle::FlagHandle;
pub use openfeature::VexilProvider;
pub use overrides::{OverrideLayer, OverrideWarning};
pub use vexil_core::{Context, EvaluationContext, FlagDefinition, FlagName, FlagState, FlagType, Reason};
pub use wire::{Change, Heartbeat, Snapshot, SnapshotFlag};
