//! Reading an OFREP request body into a context: the borrowing reader (`RequestContext::parse`) beside the JSON map
//! it replaced, for a typical context and a large one.
//!
//! `cargo bench -p vexil-core --bench request` runs criterion for each, then reads each body 100 000 more times under
//! a counting allocator and prints the allocations (target for the reader: 0 up to eight attributes without escapes).

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use serde_json::{Map, Value};
use vexil_core::EvaluationContext;
use vexil_core::request::RequestContext;

#[path = "counting.rs"]
mod counting;

fn bodies() -> Vec<(&'static str, String)> {
    let typical = r#"{"context": {"targetingKey": "user-123456", "plan": "pro", "country": "fr", "app_version": "2.3.1", "beta": true, "seats": 12}}"#;
    let large = format!(
        r#"{{"context": {{"targetingKey": "user-123456", {}}}}}"#,
        (0..40).map(|index| format!(r#""attribute_{index}": "value {index}""#)).collect::<Vec<_>>().join(", ")
    );
    vec![("typical context (5 attributes)", typical.to_owned()), ("large context (40 attributes)", large)]
}

/// The reading this replaced: a JSON tree, then the context's map out of it.
fn by_map(body: &[u8]) -> Map<String, Value> {
    let request: Value = serde_json::from_slice(body).unwrap();
    request.get("context").and_then(Value::as_object).cloned().unwrap_or_default()
}

fn parsing(criterion: &mut Criterion) {
    for (name, body) in bodies() {
        criterion.bench_function(&format!("read request: {name}"), |bencher| {
            bencher.iter(|| {
                let context = RequestContext::parse(black_box(body.as_bytes())).unwrap();
                black_box(context.attribute("plan").is_some())
            })
        });
        criterion.bench_function(&format!("read request as a JSON map: {name}"), |bencher| {
            bencher.iter(|| {
                let context = by_map(black_box(body.as_bytes()));
                black_box(context.attribute("plan").is_some())
            })
        });
    }
}

fn allocations() {
    for (name, body) in bodies() {
        let before = counting::allocations();
        for _ in 0..100_000 {
            black_box(RequestContext::parse(black_box(body.as_bytes())).unwrap());
        }
        let reader = counting::allocations() - before;
        let before = counting::allocations();
        for _ in 0..100_000 {
            black_box(by_map(black_box(body.as_bytes())));
        }
        let map = counting::allocations() - before;
        println!("read request: {name}: {reader} allocations in 100000 reads (as a JSON map: {map})");
    }
}

criterion_group!(benches, parsing);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    allocations();
}
