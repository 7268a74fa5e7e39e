//! The durable, audited write on the embedded store: one flag state change plus its audit record,
//! committed with `synchronous=FULL` (fsync before the commit returns).
//!
//! `cargo bench -p vexil-store --bench write` runs criterion, then a second pass that times 2 000
//! individual writes and prints their p50 / p99 / max, the figure `docs/benchmarks.md` records.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use serde_json::json;
use vexil_core::{AuditAction, AuditDraft, EnvKey, FlagDefinition, FlagName, FlagState, FlagType, Serve, Source, StateSpec};
use vexil_store::{DefinitionWrite, SqliteStore, StateWrite, Store, Write};

struct Bench {
    runtime: tokio::runtime::Runtime,
    store: SqliteStore,
    version: u64,
    _directory: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let directory =
            tempfile::tempdir_in(std::env::var_os("VEXIL_BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into_os_string())).unwrap();
        let environments = [EnvKey::parse("dev").unwrap(), EnvKey::parse("staging").unwrap(), EnvKey::parse("prod").unwrap()];
        let store = SqliteStore::open(directory.path(), &environments).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let flag = FlagName::parse("ui.new_feature").unwrap();
        let definition = FlagDefinition::new(flag.clone(), FlagType::Boolean, json!(false));
        runtime
            .block_on(store.commit(Write {
                definitions: vec![DefinitionWrite { definition, expected_version: 0 }],
                states: vec![StateWrite { environment: environments[2].clone(), flag, state: state(false), expected_version: 0 }],
                ..Write::default()
            }))
            .unwrap();
        Self { runtime, store, version: 1, _directory: directory }
    }

    fn write_once(&mut self) {
        let enabled = self.version % 2 == 1;
        let write = Write {
            states: vec![StateWrite {
                environment: EnvKey::parse("prod").unwrap(),
                flag: FlagName::parse("ui.new_feature").unwrap(),
                state: state(enabled),
                expected_version: self.version,
            }],
            audit: vec![AuditDraft {
                flag: Some("ui.new_feature".into()),
                action: if enabled { AuditAction::Enable } else { AuditAction::Disable },
                environment: Some("production".into()),
                user: "admin@asimo.io".into(),
                timestamp: "2025-12-04T10:30:00Z".into(),
                reason: Some("Rollout approved by PM".into()),
                from_environment: None,
                before: Some(json!({"enabled": !enabled})),
                after: Some(json!({"enabled": enabled})),
                source: Source::Cli,
                definition: None,
            }],
            ..Write::default()
        };
        self.runtime.block_on(self.store.commit(write)).unwrap();
        self.version += 1;
    }
}

fn state(enabled: bool) -> FlagState {
    FlagState {
        spec: StateSpec { enabled, serve: Serve::Value(json!(true)), targets: vec![], rules: vec![], split: None },
        version: 0,
        updated_by: "admin@asimo.io".into(),
        updated_at: "2025-12-04T10:30:00Z".into(),
        rollout: None,
    }
}

fn durable_write(criterion: &mut Criterion) {
    let mut bench = Bench::new();
    criterion.bench_function("sqlite durable audited write", |bencher| bencher.iter(|| bench.write_once()));
}

fn percentiles() {
    let mut bench = Bench::new();
    for _ in 0..100 {
        bench.write_once();
    }
    let mut samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let start = Instant::now();
            bench.write_once();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let at = |quantile: f64| samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)];
    println!(
        "sqlite durable audited write, 2000 sequential writes: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        samples[samples.len() - 1]
    );
}

criterion_group!(benches, durable_write);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    percentiles();
}
