//! Measures the guard's false-positive rate: `guard-false-positives [WATCHES] [RATE] [PER_LOOK]` simulates watches in
//! which both variants have the same error rate and counts how many the guard would have rolled back, and how quickly
//! it catches a tenfold regression. Seeded, so the figures in docs/benchmarks.md repeat exactly.

use vexil_core::guard::{GuardPolicy, simulate as watch, simulate_watch};

fn main() {
    let mut arguments = std::env::args().skip(1);
    let watches: u64 = arguments.next().and_then(|value| value.parse().ok()).unwrap_or(10_000);
    let rate: f64 = arguments.next().and_then(|value| value.parse().ok()).unwrap_or(0.01);
    let per_look: u64 = arguments.next().and_then(|value| value.parse().ok()).unwrap_or(100);
    let policy = GuardPolicy::default();
    let false_alarms = (0..watches).filter(|seed| watch(*seed, rate, rate, per_look, &policy).is_some()).count();
    println!(
        "equal error rates ({:.1} %), {watches} watches of {} looks × {per_look} evaluations per arm: {false_alarms} rolled back ({:.3} %; budget {:.1} %)",
        rate * 100.0,
        policy.max_looks,
        false_alarms as f64 * 100.0 / watches as f64,
        policy.false_positive_budget * 100.0
    );
    // As the server runs it: the candidate against the variant served alongside and against the hour before the change
    // (3 000 evaluations at the same rate), each comparison at half the budget.
    let both = (0..watches).filter(|seed| simulate_watch(*seed, rate, rate, per_look, 3000, &policy).is_some()).count();
    println!(
        "the same with both comparisons of a watch (alongside, and 3000 evaluations before): {both} rolled back ({:.3} %)",
        both as f64 * 100.0 / watches as f64
    );
    let caught: Vec<u32> = (0..1000).filter_map(|seed| watch(seed, rate, rate * 10.0, per_look, &policy)).collect();
    println!(
        "tenfold regression ({:.1} % → {:.1} %): caught in {} of 1000 watches, median look {}",
        rate * 100.0,
        rate * 1000.0,
        caught.len(),
        {
            let mut sorted = caught.clone();
            sorted.sort();
            sorted.get(sorted.len() / 2).copied().unwrap_or(0)
        }
    );
}
