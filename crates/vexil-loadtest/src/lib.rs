//! Load harnesses behind the figures in `docs/benchmarks.md`; each binary documents how it is run.
//!
//! - `hello`: a bare hyper server answering a fixed body, the baseline OFREP is compared with
//!   (`scripts/bench-ofrep.sh` runs both under `wrk`, each pinned to one core).
//! - `sse-fanout`: opens many SSE clients against a running `vexil serve`, makes changes, and reports how long
//!   each change took to reach every client and how much memory the server gained per client.
