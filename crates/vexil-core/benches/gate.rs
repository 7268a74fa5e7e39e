//! What the gate adds to a write: comparing what a flag serves before and after, for every context.
//!
//! `cargo bench -p vexil-core --bench gate` times `gate::decide` (which runs `serving::serves_same`, and for an
//! automatic action `only_reduces_exposure`) on a plain toggle, a state with 20 rules and a split, and a state with
//! 1 000 individual targets and 20 rules whose rules changed (the slowest shape a state may take short of the limits).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use vexil_core::gate::{Automation, EnvironmentChange, Writer, decide};
use vexil_core::serving::Side;
use vexil_core::{Environments, FlagDefinition, Role, StateSpec};

fn spec(value: Value) -> StateSpec {
    serde_json::from_value(value).unwrap()
}

fn rules(count: usize, value: &str) -> Value {
    (0..count)
        .map(|index| {
            json!({"conditions": [{"attribute": "country", "operator": "equals", "values": [format!("{value}{index}")]},
                                           {"attribute": "plan", "operator": "in", "values": ["pro", "team"]}],
                            "serve": {"value": index % 2 == 0}})
        })
        .collect()
}

fn split(percent: u32) -> Value {
    json!({"buckets": [{"serve": {"value": true}, "weight": percent * 1000}, {"serve": {"value": false}, "weight": (100 - percent) * 1000}]})
}

fn benches(criterion: &mut Criterion) {
    let definition: FlagDefinition =
        serde_json::from_value(json!({"name": "ui.checkout_v2", "type": "boolean", "default": false})).unwrap();
    let mut prod = Environments::seed().as_slice()[2].clone();
    prod.protected = true;
    let targets: Value = json!([{"keys": (0..1000).map(|index| format!("user-{index}")).collect::<Vec<_>>(), "serve": {"value": true}}]);
    let cases = [
        ("toggle", spec(json!({"enabled": true, "serve": {"value": true}})), spec(json!({"enabled": false, "serve": {"value": true}}))),
        (
            "20 rules + split, percentage cut",
            spec(json!({"enabled": true, "serve": {"value": true}, "rules": rules(20, "a"), "split": split(50)})),
            spec(json!({"enabled": true, "serve": {"value": true}, "rules": rules(20, "a"), "split": split(20)})),
        ),
        (
            "1000 targets + 20 rules, rules changed",
            spec(json!({"enabled": true, "serve": {"value": true}, "targets": targets, "rules": rules(20, "a"), "split": split(50)})),
            spec(json!({"enabled": true, "serve": {"value": true}, "targets": targets, "rules": rules(20, "b"), "split": split(50)})),
        ),
    ];
    // The heaviest shape an outside probe found (it held the write lock for a minute before the work budget):
    // 30 rules, each and the fallthrough a 30-bucket split over a 32 KB JSON variant, conditions changed.
    let heavy: FlagDefinition = serde_json::from_value(json!({"name": "ops.big", "type": "json", "default": {},
        "variants": [{"name": "big", "value": vec![0; 16000]}]}))
    .unwrap();
    let buckets = |offset: u32| -> Value {
        let weights: Vec<u32> = (0..30).map(|index| if index == 0 { 100_000 - 29 * (3333 + offset) } else { 3333 + offset }).collect();
        json!({"buckets": weights.iter().map(|weight| json!({"serve": {"variant": "big"}, "weight": weight})).collect::<Vec<_>>()})
    };
    let heavy_rules = |prefix: &str, offset: u32| -> Value {
        (0..30)
            .map(|index| {
                json!({"conditions": [{"attribute": "a", "operator": "equals", "values": [format!("{prefix}{index}")]}],
            "serve": {"split": buckets(offset)}})
            })
            .collect()
    };
    let heavy_before = spec(json!({"enabled": true, "serve": {"variant": "big"}, "rules": heavy_rules("x", 0), "split": buckets(0)}));
    let heavy_after = spec(json!({"enabled": true, "serve": {"variant": "big"}, "rules": heavy_rules("y", 1), "split": buckets(1)}));
    let heavy_change = EnvironmentChange {
        environment: &prod,
        before: Side::new(&heavy, &heavy_before),
        after: Side::new(&heavy, &heavy_after),
        plan_changed: false,
        plan_running: false,
        addressed: true,
        restorable: None,
    };
    criterion.bench_function("gate/admin/30 rules of 30-bucket splits over a 32 KB value", |bench| {
        bench.iter(|| decide(black_box(Writer::Person(Role::Admin)), false, black_box(&[heavy_change]), Some("why")))
    });
    for (name, before, after) in &cases {
        let change = EnvironmentChange {
            environment: &prod,
            before: Side::new(&definition, before),
            after: Side::new(&definition, after),
            plan_changed: false,
            plan_running: false,
            addressed: true,
            restorable: None,
        };
        criterion.bench_function(&format!("gate/admin/{name}"), |bench| {
            bench.iter(|| decide(black_box(Writer::Person(Role::Admin)), false, black_box(&[change]), Some("why")))
        });
        criterion.bench_function(&format!("gate/guard/{name}"), |bench| {
            bench.iter(|| decide(black_box(Writer::Automatic(Automation::Guard)), false, black_box(&[change]), Some("why")))
        });
    }
}

criterion_group!(gate, benches);
criterion_main!(gate);
