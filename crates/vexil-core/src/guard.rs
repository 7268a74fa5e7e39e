//! The guard's decision: is a new variant's error rate worse than the old one's, beyond chance?
//!
//! One-sided two-proportion z-test with a pooled variance. The guard checks repeatedly while a rollout runs, and
//! every look is a chance of a false alarm, so the per-look significance is the whole watch's budget divided by
//! the most looks it will take (Bonferroni): with a budget of 1 % over at most 120 looks, each look uses
//! α = 0.0083 %, z > 3.77. A regression must also be large enough to matter (`min_increase`, absolute), and
//! neither arm decides anything below `min_evaluations`. Pure arithmetic: the server feeds it aggregated metrics.

use serde::{Deserialize, Serialize};

/// Evaluations and errors of one variant over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    /// How many evaluations served this variant.
    pub evaluations: u64,
    /// How many of those the application reported as errors.
    pub errors: u64,
}

impl Counts {
    /// The error rate, 0 without evaluations.
    pub fn rate(self) -> f64 {
        if self.evaluations == 0 { 0.0 } else { self.errors.min(self.evaluations) as f64 / self.evaluations as f64 }
    }
}

/// How cautious the guard is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuardPolicy {
    /// No decision until each arm has this many evaluations.
    pub min_evaluations: u64,
    /// The smallest absolute increase of the error rate worth a rollback (0.01 = one percentage point).
    pub min_increase: f64,
    /// The false-positive budget of one whole watch (0.01 = 1 %).
    pub false_positive_budget: f64,
    /// The most looks one watch takes; the budget is spread over them.
    pub max_looks: u32,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        Self { min_evaluations: 500, min_increase: 0.01, false_positive_budget: 0.01, max_looks: 120 }
    }
}

/// What one look concluded, with the figures a rollback's audit reason carries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    /// Roll back.
    pub regression: bool,
    /// Why not, when there is nothing to decide yet.
    pub insufficient_data: bool,
    /// The old variant's error rate.
    pub baseline_rate: f64,
    /// The new variant's error rate.
    pub candidate_rate: f64,
    /// The z statistic (positive: the new variant is worse).
    pub z: f64,
    /// The critical value this look used.
    pub critical_z: f64,
}

/// One look: compares `candidate` (the new variant) with `baseline` (the old one, or the time before the change).
pub fn judge(baseline: Counts, candidate: Counts, policy: &GuardPolicy) -> Verdict {
    let critical_z = critical_z(policy.false_positive_budget / f64::from(policy.max_looks.max(1)));
    let (baseline_rate, candidate_rate) = (baseline.rate(), candidate.rate());
    let enough = baseline.evaluations >= policy.min_evaluations && candidate.evaluations >= policy.min_evaluations;
    let pooled = (baseline.errors.min(baseline.evaluations) + candidate.errors.min(candidate.evaluations)) as f64
        / (baseline.evaluations + candidate.evaluations).max(1) as f64;
    let spread = (pooled * (1.0 - pooled) * (1.0 / baseline.evaluations.max(1) as f64 + 1.0 / candidate.evaluations.max(1) as f64)).sqrt();
    let z = if spread > 0.0 { (candidate_rate - baseline_rate) / spread } else { 0.0 };
    Verdict {
        regression: enough && z > critical_z && candidate_rate - baseline_rate >= policy.min_increase,
        insufficient_data: !enough,
        baseline_rate,
        candidate_rate,
        z,
        critical_z,
    }
}

/// What a watch has seen: the candidate (the labels a change or plan made servable), what is served alongside it
/// since, and the flag as a whole before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Arms {
    /// The new variant's counts since the change.
    pub candidate: Counts,
    /// The other labels' counts since the change.
    pub alongside: Counts,
    /// Every label's counts before the change.
    pub before: Counts,
}

/// One look of a watch: the candidate against what is served alongside, then against before, each at half the
/// false-positive budget so that the two together keep within it. A regression in either is a regression.
pub fn judge_watch(arms: Arms, policy: &GuardPolicy) -> [Verdict; 2] {
    let half = GuardPolicy { false_positive_budget: policy.false_positive_budget / 2.0, ..*policy };
    [judge(arms.alongside, arms.candidate, &half), judge(arms.before, arms.candidate, &half)]
}

/// The z above which a standard normal lies with probability `alpha` (one-sided), by bisection on the
/// complementary error function; exact enough for thresholds.
pub fn critical_z(alpha: f64) -> f64 {
    let alpha = alpha.clamp(1e-15, 0.5);
    let (mut low, mut high) = (0.0f64, 40.0f64);
    for _ in 0..200 {
        let middle = (low + high) / 2.0;
        if upper_tail(middle) > alpha { low = middle } else { high = middle }
    }
    (low + high) / 2.0
}

/// P(Z > z) for a standard normal: erfc(z/√2)/2, with erfc from Numerical Recipes' Chebyshev fit (error < 1.2e-7).
fn upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let polynomial = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * polynomial.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    erfc / 2.0
}

/// A deterministic generator (xorshift64*) for simulations, so their figures repeat exactly.
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Simulates one watch: each look adds `per_look` evaluations per arm with the given error rates; returns the look at
/// which the guard would roll back, if any. How the guard's false-positive rate and reaction time are measured.
pub fn simulate(seed: u64, baseline_rate: f64, candidate_rate: f64, per_look: u64, policy: &GuardPolicy) -> Option<u32> {
    let mut random = Seeded::new(seed);
    let (mut baseline, mut candidate) = (Counts::default(), Counts::default());
    for look in 1..=policy.max_looks {
        for _ in 0..per_look {
            baseline.evaluations += 1;
            candidate.evaluations += 1;
            baseline.errors += u64::from(random.next_unit() < baseline_rate);
            candidate.errors += u64::from(random.next_unit() < candidate_rate);
        }
        if judge(baseline, candidate, policy).regression {
            return Some(look);
        }
    }
    None
}

/// Simulates one watch as the server runs it ([`judge_watch`]): `before` evaluations at the baseline rate are known
/// from before the change, and each look adds `per_look` evaluations to the candidate and to what is served alongside;
/// returns the look at which either comparison would roll back, if any.
pub fn simulate_watch(seed: u64, baseline_rate: f64, candidate_rate: f64, per_look: u64, before: u64, policy: &GuardPolicy) -> Option<u32> {
    let mut random = Seeded::new(seed);
    let mut arms = Arms::default();
    for _ in 0..before {
        arms.before.evaluations += 1;
        arms.before.errors += u64::from(random.next_unit() < baseline_rate);
    }
    for look in 1..=policy.max_looks {
        for _ in 0..per_look {
            arms.alongside.evaluations += 1;
            arms.candidate.evaluations += 1;
            arms.alongside.errors += u64::from(random.next_unit() < baseline_rate);
            arms.candidate.errors += u64::from(random.next_unit() < candidate_rate);
        }
        if judge_watch(arms, policy).iter().any(|verdict| verdict.regression) {
            return Some(look);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_values_match_the_normal_table() {
        for (alpha, z) in [(0.05, 1.6449), (0.01, 2.3263), (0.001, 3.0902), (0.0001, 3.7190)] {
            assert!((critical_z(alpha) - z).abs() < 1e-3, "alpha {alpha}: {} vs {z}", critical_z(alpha));
        }
    }

    #[test]
    fn a_variant_at_10_percent_errors_against_1_percent_is_caught_as_soon_as_the_minimum_sample_is_there() {
        let policy = GuardPolicy::default();
        for seed in 0..50 {
            // 100 evaluations per arm per look: the minimum of 500 is reached at look 5.
            let look = simulate(seed, 0.01, 0.10, 100, &policy).expect("a tenfold error rate is caught");
            assert_eq!(look, 5, "seed {seed}: caught at look {look}, the first with enough data");
        }
    }

    #[test]
    fn equal_error_rates_are_never_rolled_back_over_200_seeded_watches() {
        let policy = GuardPolicy::default();
        let false_alarms = (0..200).filter(|seed| simulate(*seed, 0.01, 0.01, 100, &policy).is_some()).count();
        assert_eq!(false_alarms, 0, "{false_alarms} false alarms in 200 watches of 120 looks");
    }

    #[test]
    fn a_watch_with_both_comparisons_keeps_within_the_budget_and_still_catches_a_tenfold_regression() {
        let policy = GuardPolicy::default();
        let false_alarms = (0..200).filter(|seed| simulate_watch(*seed, 0.01, 0.01, 100, 3000, &policy).is_some()).count();
        assert_eq!(false_alarms, 0, "{false_alarms} false alarms in 200 watches");
        for seed in 0..50 {
            let look = simulate_watch(seed, 0.01, 0.10, 100, 3000, &policy).expect("a tenfold error rate is caught");
            assert_eq!(look, 5, "seed {seed}: caught at look {look}, the first with enough data");
        }
    }

    #[test]
    fn nothing_is_decided_below_the_minimum_sample() {
        let policy = GuardPolicy::default();
        let verdict = judge(Counts { evaluations: 499, errors: 0 }, Counts { evaluations: 499, errors: 400 }, &policy);
        assert!(verdict.insufficient_data && !verdict.regression);
    }

    #[test]
    fn a_significant_but_tiny_increase_is_not_worth_a_rollback() {
        let policy = GuardPolicy::default();
        let verdict =
            judge(Counts { evaluations: 10_000_000, errors: 100_000 }, Counts { evaluations: 10_000_000, errors: 105_000 }, &policy);
        assert!(verdict.z > verdict.critical_z, "significant: z = {}", verdict.z);
        assert!(!verdict.regression, "a 0.05-point increase is below min_increase");
    }
}
