//! Vexil's HTTP server: the JSON API over the store, with authentication, roles and the audit trail.
//!
//! The server loads every definition and state from the [`Store`](vexil_store::Store) once, keeps them
//! in memory ([`catalog`]), and answers every read from there. Writes go through one path
//! ([`service`]): check who is asking and whether they may, validate against the flag's definition,
//! commit state and audit records atomically with a version check, then update memory.
//!
//! - [`config`]: environments, categories and limits the server runs with.
//! - [`app`]: the router shared by `vexil serve` and the tests; [`run`] serves it until shutdown.
//! - [`auth`]: bearer tokens, passwords, roles, and the first admin on an empty store.
//! - [`error`]: the one [`ApiError`](error::ApiError) every handler returns, and extractors that turn bad input into it.
//! - [`hub`]: each environment's compiled snapshot, swapped on every commit, and its broadcast of serialised changes.
//! - [`wire`]: request and response bodies, kept apart from the domain types.
//! - `routes/*`: one module per resource, each with its own `router()`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub mod answers;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
mod follower;
pub mod guard;
pub mod hub;
pub mod idempotency;
pub mod listener;
pub mod rollout;
mod routes;
pub mod service;
pub mod telemetry;
pub mod time;
pub mod wire;

pub use auth::{BootstrapCredentials, BootstrapOptions, bootstrap};
pub use config::ServerConfig;
/// The OFREP bulk answer for a context, and its ETag (what `POST /ofrep/v1/evaluate/flags` serves; benchmarked).
pub use routes::ofrep::render_bulk as ofrep_bulk_answer;
pub use service::AppState;

/// The whole HTTP API as one router; `vexil serve` and the integration tests both use it.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then ends open streams and gives in-flight requests
/// the configured grace to finish (see [`listener`]).
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let router = app(state.clone());
    listener::serve(listener, state, router, shutdown).await
}

/// Opens the server state over a store: loads the catalog and gives every flag a state in every configured environment.
pub async fn open(config: ServerConfig, store: Arc<dyn vexil_store::Store>) -> Result<AppState, vexil_store::StoreError> {
    AppState::open(config, store).await
}
