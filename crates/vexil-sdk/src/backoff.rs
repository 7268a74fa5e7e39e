//! Reconnection delays: exponential backoff with jitter, capped.
//!
//! After a failure the client waits `initial × 2^attempt` (at most `max`), of which a random half: "equal jitter",
//! so that a thousand clients dropped by one server restart do not all come back in the same millisecond, yet none
//! retries sooner than half the nominal delay. The server's `retry:` advice replaces `initial`, as the SSE standard
//! intends; a successful event resets the attempt count.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// The shortest initial delay accepted, so `retry: 0` cannot turn reconnection into a busy loop.
pub(crate) const MIN_INITIAL_DELAY: Duration = Duration::from_millis(100);

/// The state of one connection's backoff.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(MIN_INITIAL_DELAY);
        Self { initial: initial.clamp(MIN_INITIAL_DELAY, max), max, attempt: 0 }
    }

    /// Takes the server's reconnection advice as the new initial delay.
    pub(crate) fn set_initial(&mut self, initial: Duration) {
        self.initial = initial.clamp(MIN_INITIAL_DELAY, self.max);
    }

    /// The connection worked: the next failure starts from the initial delay again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The nominal delay of the next attempt, before jitter.
    pub(crate) fn nominal(&self) -> Duration {
        // 2^20 × 100 ms is far past any sensible cap; stopping the exponent there avoids overflow.
        let factor = 1u32 << self.attempt.min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt; each call counts as one more attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        let half = nominal / 2;
        half + random_fraction_of(nominal - half)
    }
}

/// A random duration in `0..=limit`. `RandomState` is randomly keyed, which is all jitter needs: it spreads
/// clients apart, it does not have to be unpredictable to an attacker.
fn random_fraction_of(limit: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    let nanos = limit.as_nanos() as u64;
    if nanos == 0 { Duration::ZERO } else { Duration::from_nanos(random % (nanos + 1)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let nominal_seconds = [1, 2, 4, 8, 16, 30, 30, 30];
        for seconds in nominal_seconds {
            let nominal = Duration::from_secs(seconds);
            assert_eq!(backoff.nominal(), nominal);
            let delay = backoff.next_delay();
            assert!(delay >= nominal / 2 && delay <= nominal, "{delay:?} is not within the upper half of {nominal:?}");
        }
    }

    #[test]
    fn jitter_spreads_clients_apart() {
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| Backoff::new(Duration::from_secs(10), Duration::from_secs(30)).next_delay()).collect();
        assert!(delays.len() > 40, "50 clients got only {} distinct delays", delays.len());
    }

    #[test]
    fn a_success_resets_and_the_server_advice_replaces_the_initial_delay() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..10 {
            backoff.next_delay();
        }
        assert_eq!(backoff.nominal(), Duration::from_secs(30));
        backoff.reset();
        backoff.set_initial(Duration::from_millis(3000));
        assert_eq!(backoff.nominal(), Duration::from_secs(3));
        backoff.set_initial(Duration::ZERO);
        assert_eq!(backoff.nominal(), MIN_INITIAL_DELAY, "retry: 0 must not mean a busy loop");
        backoff.set_initial(Duration::from_secs(3600));
        assert_eq!(backoff.nominal(), Duration::from_secs(30), "advice beyond the cap is capped");
    }
}
