//! Evaluation speed and allocations: a plain flag, one rule, a percentage split.
//!
//! `cargo bench -p vexil-core --bench evaluation` runs criterion for each case, then evaluates each case
//! 100 000 more times under a counting allocator and prints how many allocations that took (target: 0).
#![allow(unsafe_code)] // the counting allocator below; nothing else in Vexil uses unsafe

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};
use vexil_core::{CompiledFlag, Context, FlagDefinition, FlagState};

/// Counts every allocation the process makes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(pointer, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..100_000 {
            black_box(flag.evaluate(black_box(&context)));
        }
        let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
        println!("evaluate: {name}: {allocated} allocations in 100000 evaluations");
    }
}

criterion_group!(benches, evaluation);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    allocations();
}
