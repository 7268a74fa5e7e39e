//! Evaluation speed and allocations: a plain flag, one rule, a percentage split.
//!
//! `cargo bench -p vexil-core --bench evaluation` runs criterion for each case, then evaluates each case
//! 100 000 more times under a counting allocator and prints how many allocations that took (target: 0).

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};
use vexil_core::{CompiledFlag, Context, FlagDefinition, FlagState};

#[path = "counting.rs"]
mod counting;

fn flag(state: Value) -> CompiledFlag {
    let definition: FlagDefinition =
        serde_json::from_value(json!({"name": "ui.new_feature", "type": "boolean", "default": false})).unwrap();
    let mut state = state;
    state["version"] = json!(1);
    state["updated_by"] = json!("bench");
    state["updated_at"] = json!("2025-12-04T10:30:00Z");
    let state: FlagState = serde_json::from_value(state).unwrap();
    state.spec.validate(&definition).unwrap();
    CompiledFlag::compile(&definition, &state)
}

fn cases() -> Vec<(&'static str, CompiledFlag, Context)> {
    let context = Context::new("user-123456").with("plan", "pro").with("country", "fr").with("app_version", "2.3.1");
    vec![
        ("plain flag", flag(json!({"enabled": true, "serve": {"value": true}})), context.clone()),
        (
            "one rule",
            flag(json!({"enabled": true, "serve": {"value": false},
                "rules": [{"conditions": [{"attribute": "plan", "operator": "equals", "values": ["pro"]}], "serve": {"value": true}}]})),
            context.clone(),
        ),
        (
            "split",
            flag(json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [
                {"serve": {"value": true}, "weight": 30000}, {"serve": {"value": false}, "weight": 70000}]}})),
            context.clone(),
        ),
        (
            "regex and semver rules",
            flag(json!({"enabled": true, "serve": {"value": false}, "rules": [
                {"conditions": [{"attribute": "country", "operator": "regex", "values": ["^(fr|de)$"]},
                                {"attribute": "app_version", "operator": "semver_gte", "values": ["2.0.0"]}], "serve": {"value": true}}]})),
            context,
        ),
    ]
}

fn evaluation(criterion: &mut Criterion) {
    for (name, flag, context) in cases() {
        criterion.bench_function(&format!("evaluate: {name}"), |bencher| bencher.iter(|| black_box(flag.evaluate(black_box(&context)))));
    }
}

fn allocations() {
    for (name, flag, context) in cases() {
        // Warm up once (a regex builds its matching cache on first use), then count.
        black_box(flag.evaluate(&context));
        let before = counting::allocations();
        for _ in 0..100_000 {
            black_box(flag.evaluate(black_box(&context)));
        }
        let allocated = counting::allocations() - before;
        println!("evaluate: {name}: {allocated} allocations in 100000 evaluations");
    }
}

criterion_group!(benches, evaluation);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    allocations();
}
