//! Following a shared store: every change, from this server or any other, reaches memory and the streams here.
//!
//! On a shared store (Redis) one task per server reads the store's change feed with one connection and applies
//! what it reads in revision order; a server's own writes come back the same way, so there is one order for
//! everything. When the store goes away the task retries with backoff and, once it is back, catches up from the
//! revisions it had; if changes were lost to retention meanwhile, it reloads everything.

use std::time::Duration;

use vexil_store::StoreError;

use crate::service::AppState;

/// How long one read of the feed waits for news.
const BLOCK: Duration = Duration::from_secs(5);

/// Runs until the server shuts down.
pub async fn follow(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let positions = state.applied();
        let read = tokio::select! {
            read = state.store.follow(&positions, BLOCK) => read,
            _ = shutdown.changed() => return,
        };
        match read {
            Ok(changes) => {
                if failures > 0 {
                    tracing::info!("change feed is back; catching up");
                }
                failures = 0;
                if changes.is_empty() {
                    continue;
                }
                let gap = changes.iter().any(|change| {
                    let applied = positions.get(&change.environment).copied().unwrap_or(0);
                    change.revision > applied + 1
                        && !changes.iter().any(|other| other.environment == change.environment && other.revision == change.revision - 1)
                });
                if gap {
                    tracing::warn!("changes were trimmed from the feed before this server read them; reloading everything");
                    match state.store.load().await {
                        Ok(catalog) => state.reset(catalog),
                        Err(error) => tracing::error!(%error, "reload failed; will retry"),
                    }
                    continue;
                }
                state.apply(&changes);
            }
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "change feed unavailable; serving from memory until it is back");
                }
                if matches!(error, StoreError::Corrupt(_)) {
                    tracing::error!(%error, "unreadable change in the feed");
                }
                let backoff = Duration::from_millis(50u64.saturating_mul(1 << failures.min(4))).min(Duration::from_millis(500));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}
