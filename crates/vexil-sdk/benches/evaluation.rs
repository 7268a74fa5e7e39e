//! What an application pays per flag read: `VexilClient::bool_value` and a `FlagHandle` on a plain flag, one rule, a
//! split, an override and an unknown flag, with the cache load, the look-up and the override check included.
//!
//! `cargo bench -p vexil-sdk --bench evaluation` runs criterion for each case, then reads each case 100 000 more
//! times under a counting allocator and prints how many allocations that took (target: 0).

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};
use vexil_sdk::{Context, Snapshot, VexilClient};

#[path = "../../vexil-core/benches/counting.rs"]
mod counting;

fn entry(name: &str, state: Value) -> Value {
    let mut state = state;
    state["version"] = json!(1);
    state["updated_by"] = json!("bench");
    state["updated_at"] = json!("2025-12-04T10:30:00Z");
    json!({"definition": {"name": name, "type": "boolean", "default": false}, "state": state})
}

fn client() -> VexilClient {
    // A realistic environment: the flags read below among a hundred others.
    let mut flags: Vec<Value> =
        (0..100).map(|index| entry(&format!("ui.filler_{index}"), json!({"enabled": true, "serve": {"value": true}}))).collect();
    flags.push(entry("ui.plain", json!({"enabled": true, "serve": {"value": true}})));
    flags.push(entry("ui.overridden", json!({"enabled": true, "serve": {"value": true}})));
    flags.push(entry(
        "ui.one_rule",
        json!({"enabled": true, "serve": {"value": false},
               "rules": [{"conditions": [{"attribute": "plan", "operator": "equals", "values": ["pro"]}], "serve": {"value": true}}]}),
    ));
    flags.push(entry(
        "ui.split",
        json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [
            {"serve": {"value": true}, "weight": 30000}, {"serve": {"value": false}, "weight": 70000}]}}),
    ));
    let snapshot: Snapshot =
        serde_json::from_value(json!({"version": 1, "environment": "staging", "revision": 1, "flags": flags})).unwrap();
    VexilClient::offline(snapshot).environment_variables([("FF_UI_OVERRIDDEN", "false")]).without_dotenv().build().unwrap()
}

const CASES: [(&str, &str); 5] = [
    ("plain flag", "ui.plain"),
    ("one rule", "ui.one_rule"),
    ("split", "ui.split"),
    ("FF_ override", "ui.overridden"),
    ("unknown flag (fallback)", "ui.absent"),
];

fn evaluation(criterion: &mut Criterion) {
    let client = client();
    let context = Context::new("user-123456").with("plan", "pro").with("country", "fr");
    for (name, flag) in CASES {
        criterion.bench_function(&format!("bool_value: {name}"), |bencher| {
            bencher.iter(|| black_box(client.bool_value(black_box(flag), black_box(&context), false)))
        });
        let handle = client.flag::<bool>(flag);
        criterion
            .bench_function(&format!("handle: {name}"), |bencher| bencher.iter(|| black_box(handle.value(black_box(&context), false))));
    }
}

fn allocations() {
    let client = client();
    let context = Context::new("user-123456").with("plan", "pro").with("country", "fr");
    for (name, flag) in CASES {
        black_box(client.bool_value(flag, &context, false));
        let before = counting::allocations();
        for _ in 0..100_000 {
            black_box(client.bool_value(black_box(flag), black_box(&context), false));
        }
        let allocated = counting::allocations() - before;
        println!("bool_value: {name}: {allocated} allocations in 100000 reads");
        let handle = client.flag::<bool>(flag);
        black_box(handle.value(&context, false));
        let before = counting::allocations();
        for _ in 0..100_000 {
            black_box(handle.value(black_box(&context), false));
        }
        let allocated = counting::allocations() - before;
        println!("handle: {name}: {allocated} allocations in 100000 reads");
    }
}

criterion_group!(benches, evaluation);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    allocations();
}
