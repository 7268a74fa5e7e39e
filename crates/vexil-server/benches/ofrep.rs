//! The OFREP bulk answer's cost per flag: an environment of 76 and of 1 000 boolean flags, each a 30 % rollout (so
//! every answer depends on the context), written for one context (read from a request body, as the server reads it)
//! from the snapshot's prepared fragments.
//!
//! `cargo bench -p vexil-server --bench ofrep` runs criterion for each size, then renders each 10 000 more times
//! under a counting allocator and prints the allocations per answer (a handful for the body and its ETag, none per flag).

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use serde_json::json;
use vexil_core::request::RequestContext;
use vexil_core::{EnvKey, Environments, FlagDefinition, FlagName, FlagState, FlagType};
use vexil_store::Catalog;

#[path = "../../vexil-core/benches/counting.rs"]
mod counting;

/// The staging snapshot of an environment with `count` flags, each a 30 % boolean rollout there.
fn snapshot(count: usize) -> std::sync::Arc<vexil_server::hub::EnvironmentSnapshot> {
    let environments = Environments::seed();
    let staging = EnvKey::parse("staging").unwrap();
    let mut catalog = Catalog::default();
    for index in 0..count {
        let name = FlagName::parse(&format!("ui.feature_{index:04}")).unwrap();
        catalog.definitions.insert(name.clone(), FlagDefinition::new(name.clone(), FlagType::Boolean, json!(false)));
        let state: FlagState = serde_json::from_value(json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [
            {"serve": {"value": true}, "weight": 30000}, {"serve": {"value": false}, "weight": 70000}]},
            "version": 2, "updated_by": "bench", "updated_at": "2026-12-01T00:00:00Z"}))
        .unwrap();
        catalog.states.entry(staging.clone()).or_default().insert(name, state);
    }
    catalog.revisions.insert(staging.clone(), 1);
    vexil_server::hub::Hub::new(environments.as_slice(), &catalog, 16).snapshot(&staging).unwrap()
}

const BODY: &[u8] = br#"{"context": {"targetingKey": "user-123456", "plan": "pro"}}"#;

fn context() -> RequestContext<'static> {
    RequestContext::parse(BODY).unwrap()
}

fn bulk(c: &mut Criterion) {
    let context = context();
    for count in [76, 1000] {
        let snapshot = snapshot(count);
        c.bench_function(&format!("bulk answer, {count} flags"), |b| {
            b.iter(|| black_box(vexil_server::ofrep_bulk_answer(black_box(&snapshot), black_box(&context))))
        });
    }
}

criterion_group!(benches, bulk);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    let context = context();
    for count in [76, 1000] {
        let snapshot = snapshot(count);
        black_box(vexil_server::ofrep_bulk_answer(&snapshot, &context));
        let before = counting::allocations();
        for _ in 0..10_000 {
            black_box(vexil_server::ofrep_bulk_answer(&snapshot, &context));
        }
        let per_answer = (counting::allocations() - before) as f64 / 10_000.0;
        println!("bulk answer, {count} flags: {per_answer:.1} allocations per answer");
    }
}
