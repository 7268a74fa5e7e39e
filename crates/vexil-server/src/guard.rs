//! The guard: watches flags whose state just changed and rolls them back when what the change serves errs more.
//!
//! Two kinds of watch, looked at every guard interval:
//! - **a rollout plan**, for as long as it runs: the new variant (`true`) against the old one (`false`) since the plan
//!   started, and against the flag's error rate in the hour before it started;
//! - **a change in a protected environment**, for the guard window after it (`guard_window_seconds`): the labels the
//!   change made servable (the candidate; all of them when it made none new) against the labels served alongside since
//!   the change, and against the flag's error rate in the hour before the change.
//!
//! Each comparison is a one-sided two-proportion z-test at half the false-positive budget
//! ([`vexil_core::guard::judge_watch`]), so one watch's two comparisons together keep within it. On a regression the guard restores the state from
//! before (the plan's `before`, or the state the change replaced, like `vexil rollback`), records a `rollback` by
//! `system:guard` with the figures as the reason, and the change is streamed like any other.
//!
//! Never watched: changes that turn a flag off (the safe direction: undoing them would re-enable what someone switched
//! off), rollbacks (undoing them would put the bad state back), and changes outside protected environments.
//!
//! Metrics come in minute buckets, so "since the change" starts with the change's minute and "before" ends before it.
//! Every server looks at every watch; when several decide to roll back, the versioned write lets exactly one do it.
//! What the last look saw is kept per server for `GET /api/flags/{flag}/environments/{environment}/guard`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vexil_core::guard::{Arms, Counts, GuardPolicy, Verdict, judge_watch};
use vexil_core::{AuditAction, CompiledFlag, EnvKey, Environment, FlagName, FlagState};

use crate::auth::Actor;
use crate::hub::SnapshotFlag;
use crate::service::{AppState, Remedy, RemedyOutcome};

/// How far before a change "the rate before" reaches, in minutes.
pub const BEFORE_MINUTES: u64 = 60;

/// The guard's actor.
fn guard_actor() -> Actor {
    Actor::automatic(vexil_core::gate::Automation::Guard, "")
}

/// What a watch is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Watching {
    /// A rollout plan runs.
    Rollout,
    /// A change in a protected environment, within the window after it.
    Change,
}

/// What the candidate is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Against {
    /// The labels served alongside the candidate since the change.
    #[serde(rename = "old variant")]
    OldVariant,
    /// The whole flag in the hour before the change.
    #[serde(rename = "before the change")]
    Before,
}

/// What the guard last saw of one watched flag.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// What is watched.
    pub watching: Watching,
    /// The state version watched.
    pub version: u64,
    /// When the watched change or plan began.
    pub since: String,
    /// When the watch ends (`null` for a plan: while it runs).
    pub until: Option<String>,
    /// The labels judged as new.
    pub candidate: Vec<String>,
    /// The comparisons of the last look.
    pub comparisons: Vec<Comparison>,
    /// `waiting for data`, `healthy`, `rolled back` or why the change is not judged.
    pub decision: String,
    /// For a running plan: what the guard has seen of its current step, which decides whether the next may be taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepEvidence>,
    /// When the last look happened.
    pub checked_at: String,
}

/// What the guard has seen of a plan's current step: counts since its first look at this step (so nothing served
/// at an earlier step counts), and whether that is evidence enough to take the next step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepEvidence {
    /// The step, from 1.
    pub step: usize,
    /// The state version of the step.
    pub version: u64,
    /// The new variant's counts at this step.
    pub candidate: Counts,
    /// The old variant's counts at this step.
    pub alongside: Counts,
    /// The minimum each arm needs.
    pub needed: u64,
    /// Both arms have the minimum and no comparison found a regression.
    pub healthy: bool,
    /// What the plan waits for, while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// One comparison of a look.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    /// The baseline.
    pub against: Against,
    /// The candidate's counts.
    pub candidate: Counts,
    /// The baseline's counts.
    pub baseline: Counts,
    /// The test's outcome.
    pub verdict: Verdict,
}

/// Why a flag is watched; for a change, worked out once per state version (it reads the audit trail).
#[derive(Debug, Clone)]
struct Basis {
    watching: Watching,
    version: u64,
    since: OffsetDateTime,
    until: Option<OffsetDateTime>,
    candidate: BTreeSet<String>,
    /// Set when the change is deliberately not judged, with the reason.
    exempt: Option<&'static str>,
}

/// The plan's counts (candidate, alongside) at the guard's first look at a step's version: a step's evidence is
/// what came after.
type StepBaseline = (u64, Counts, Counts);

/// Each watched flag, by environment and name: its basis, its last report, its step baseline.
type Watches = HashMap<(EnvKey, FlagName), (Basis, Report, Option<StepBaseline>)>;

/// The guard's memory on one server: each watched flag's basis, the report of its last look, and for a plan the
/// counts its current step started from.
#[derive(Debug, Default)]
pub struct Guard {
    watches: Mutex<Watches>,
}

impl Guard {
    /// The last report on `flag` in `environment`, while it is watched.
    pub fn report(&self, environment: &EnvKey, flag: &FlagName) -> Option<Report> {
        self.lock().get(&(environment.clone(), flag.clone())).map(|(_, report, _)| report.clone())
    }

    /// Whether the guard has seen enough of `version` (a plan's current step) to let the plan take its next step.
    pub fn step_is_healthy(&self, environment: &EnvKey, flag: &FlagName, version: u64) -> bool {
        self.report(environment, flag).and_then(|report| report.step).is_some_and(|step| step.version == version && step.healthy)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn minute_of(moment: OffsetDateTime) -> u64 {
    moment.unix_timestamp().max(0) as u64 / 60
}

/// One look at every watched flag of every environment.
pub async fn look(state: &AppState) {
    let now = OffsetDateTime::now_utc();
    for environment in state.config.environments.iter() {
        let Some(snapshot) = state.hub.snapshot(&environment.key) else { continue };
        for (name, flag) in &snapshot.flags {
            let key = (environment.key.clone(), name.clone());
            match basis(state, environment, name, flag, now).await {
                Some(basis) => {
                    let baseline = state.guard.lock().get(&key).and_then(|(_, _, baseline)| *baseline);
                    let (report, baseline) = look_at(state, environment, name, flag, &basis, baseline, now).await;
                    state.telemetry.guard_looks.inc();
                    let kind = match report.decision.as_str() {
                        "healthy" => "healthy",
                        "waiting for data" => "waiting",
                        "rolled back" => "rolled_back",
                        _ if basis.exempt.is_some() => "exempt",
                        _ => "other",
                    };
                    state.telemetry.guard_decisions.get_or_create(&crate::telemetry::Kind { kind }).inc();
                    state.guard.lock().insert(key, (basis, report, baseline));
                }
                None => {
                    state.guard.lock().remove(&key);
                }
            }
        }
    }
}

/// Whether `flag` is watched now, and on what basis.
async fn basis(state: &AppState, environment: &Environment, name: &FlagName, flag: &SnapshotFlag, now: OffsetDateTime) -> Option<Basis> {
    let version = flag.state.version;
    if let Some(plan) = &flag.state.rollout {
        return Some(Basis {
            watching: Watching::Rollout,
            version,
            since: parse_time(&plan.started_at)?,
            until: None,
            candidate: BTreeSet::from(["true".to_owned()]),
            exempt: None,
        });
    }
    let window = state.config.guard_window;
    if !environment.protected || window.is_zero() {
        return None;
    }
    let changed_at = parse_time(&flag.state.updated_at)?;
    let until = changed_at + window;
    if until <= now {
        return None;
    }
    let known = state.guard.lock().get(&(environment.key.clone(), name.clone())).map(|(basis, _, _)| basis.clone());
    if let Some(known) = known.filter(|known| known.version == version && known.until.is_some()) {
        return Some(known);
    }
    let mut basis =
        Basis { watching: Watching::Change, version, since: changed_at, until: Some(until), candidate: BTreeSet::new(), exempt: None };
    let record = state.producing_record(environment, name, version).await;
    // The last step of a plan: the plan's watch goes on for the window, against the state before the plan.
    let finished_plan = record.as_ref().ok().and_then(Option::as_ref).and_then(|record| record.before.clone()).and_then(|before| {
        serde_json::from_value::<FlagState>(before).ok().and_then(|before| before.rollout).filter(|_| flag.state.spec.enabled)
    });
    if let Some(plan) = finished_plan {
        return Some(Basis {
            watching: Watching::Rollout,
            version,
            since: parse_time(&plan.started_at)?,
            until: Some(until),
            candidate: BTreeSet::from(["true".to_owned()]),
            exempt: None,
        });
    }
    match record {
        Ok(Some(record)) if record.action == AuditAction::Rollback => basis.exempt = Some("a rollback is never rolled back"),
        Ok(Some(record)) if !flag.state.spec.enabled && record.definition.is_some() => {
            basis.exempt = Some("the flag is off; the change was to the default it serves while off, which only a definition edit undoes")
        }
        Ok(Some(record)) if !flag.state.spec.enabled && record.action == AuditAction::Create => {
            basis.exempt = Some("the flag was just defined, off: it serves nothing new to judge")
        }
        Ok(_) if !flag.state.spec.enabled => basis.exempt = Some("the change turned the flag off, which the guard never undoes"),
        Ok(record) => {
            let after: BTreeSet<String> = flag.compiled.serving_labels().into_iter().map(str::to_owned).collect();
            let before: BTreeSet<String> = record
                .and_then(|record| record.before)
                .and_then(|before| serde_json::from_value::<FlagState>(before).ok())
                .map(|before| CompiledFlag::compile(&flag.definition, &before).serving_labels().into_iter().map(str::to_owned).collect())
                .unwrap_or_default();
            let new: BTreeSet<String> = after.difference(&before).cloned().collect();
            basis.candidate = if new.is_empty() { after } else { new };
        }
        Err(error) => {
            tracing::warn!(flag = %name, error = %error.message, "guard cannot read the audit trail; will retry");
            // A different version makes the next look read it again.
            return Some(Basis { exempt: Some("the audit trail could not be read; retrying"), version: u64::MAX, ..basis });
        }
    }
    Some(basis)
}

/// Looks at one watch: reads its metrics, runs both comparisons and rolls back on a regression.
async fn look_at(
    state: &AppState,
    environment: &Environment,
    name: &FlagName,
    flag: &SnapshotFlag,
    basis: &Basis,
    baseline: Option<StepBaseline>,
    now: OffsetDateTime,
) -> (Report, Option<StepBaseline>) {
    let mut report = Report {
        watching: basis.watching,
        version: flag.state.version,
        since: crate::time::format(basis.since),
        until: basis.until.map(crate::time::format),
        candidate: basis.candidate.iter().cloned().collect(),
        comparisons: Vec::new(),
        decision: String::new(),
        step: None,
        checked_at: crate::time::format(now),
    };
    if let Some(exempt) = basis.exempt {
        report.decision = exempt.to_owned();
        return (report, None);
    }
    let since = minute_of(basis.since);
    let rows = match state.store.metrics(&environment.key, name.as_str(), since.saturating_sub(BEFORE_MINUTES)).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "guard cannot read metrics");
            report.decision = "metrics could not be read; retrying".to_owned();
            return (report, baseline);
        }
    };
    let mut arms = Arms::default();
    for row in &rows {
        let arm = if row.bucket < since {
            &mut arms.before
        } else if basis.candidate.contains(&row.variant) {
            &mut arms.candidate
        } else {
            &mut arms.alongside
        };
        arm.evaluations += row.evaluations;
        arm.errors += row.errors;
    }
    let [against_alongside, against_before] = judge_watch(arms, &state.config.guard);
    report.comparisons = vec![
        Comparison { against: Against::OldVariant, candidate: arms.candidate, baseline: arms.alongside, verdict: against_alongside },
        Comparison { against: Against::Before, candidate: arms.candidate, baseline: arms.before, verdict: against_before },
    ];
    let regression = report.comparisons.iter().find(|comparison| comparison.verdict.regression).cloned();
    // A running plan's step: its evidence is what came in since the guard first looked at this version.
    let baseline = flag.state.rollout.as_ref().map(|plan| {
        let baseline = baseline.filter(|(version, _, _)| *version == flag.state.version).unwrap_or((
            flag.state.version,
            arms.candidate,
            arms.alongside,
        ));
        let since = |now: Counts, then: Counts| Counts {
            evaluations: now.evaluations.saturating_sub(then.evaluations),
            errors: now.errors.saturating_sub(then.errors),
        };
        let (candidate, alongside) = (since(arms.candidate, baseline.1), since(arms.alongside, baseline.2));
        let needed = state.config.guard.min_evaluations;
        let enough = candidate.evaluations >= needed && alongside.evaluations >= needed;
        let waiting = (!enough).then(|| {
            format!(
                "waiting for evidence at this step: {} of {needed} evaluations of the new variant and {} of {needed} of the old one since the guard's first look at it",
                candidate.evaluations, alongside.evaluations
            )
        });
        report.step = Some(StepEvidence {
            step: plan.next_step.max(1),
            version: flag.state.version,
            candidate,
            alongside,
            needed,
            healthy: enough && regression.is_none(),
            waiting,
        });
        baseline
    });
    let Some(fired) = regression else {
        let waiting = report.comparisons.iter().all(|comparison| comparison.verdict.insufficient_data);
        report.decision = if waiting { "waiting for data" } else { "healthy" }.to_owned();
        return (report, baseline);
    };
    let rollback = rollback_reason(basis, &fired, &state.config.guard, None);
    let actor = guard_actor();
    // The one remedy path: restore the last state a person set before what is watched, or, when that would serve
    // anything to someone who does not get it now, turn the flag off.
    let outcome = match state.remedy(&actor, environment, name, Remedy::Rollback, rollback).await {
        Ok(RemedyOutcome::Nothing(why) | RemedyOutcome::WidensExposure(why) | RemedyOutcome::Unrestorable(why)) => {
            let reason = rollback_reason(basis, &fired, &state.config.guard, Some(&why));
            state.remedy(&actor, environment, name, Remedy::Disable, reason).await
        }
        other => other,
    };
    report.decision = match outcome {
        Ok(RemedyOutcome::Done(_)) => {
            tracing::warn!(flag = %name, environment = %environment.key, "guard rolled back a regression");
            "rolled back".to_owned()
        }
        Ok(RemedyOutcome::Nothing(why) | RemedyOutcome::WidensExposure(why) | RemedyOutcome::Unrestorable(why)) => why,
        // Another server did it, or a person changed the flag meanwhile.
        Err(error) if error.status.as_u16() == 412 || error.status.as_u16() == 409 => "changed meanwhile".to_owned(),
        Err(error) => {
            tracing::warn!(flag = %name, error = %error.message, "guard rollback failed; will retry");
            format!("rollback failed, retrying: {}", error.message)
        }
    };
    (report, baseline)
}

/// The audit reason of a rollback: which comparison fired, with its rates, samples and test statistic; `instead`
/// says why the flag is turned off rather than restored.
fn rollback_reason(basis: &Basis, fired: &Comparison, policy: &GuardPolicy, instead: Option<&str>) -> String {
    let labels: Vec<&str> = basis.candidate.iter().map(String::as_str).collect();
    let (against, restored) = match (fired.against, basis.watching) {
        (Against::OldVariant, Watching::Rollout) => {
            ("for the old one since the rollout started", "the rollout is stopped and its state before restored")
        }
        (Against::Before, Watching::Rollout) => ("before the rollout started", "the rollout is stopped and its state before restored"),
        (Against::OldVariant, Watching::Change) => ("for the old one since the change", "the change is undone"),
        (Against::Before, Watching::Change) => ("before the change", "the change is undone"),
    };
    let what = match instead {
        Some(instead) => format!("the flag is turned off instead of restored ({instead})"),
        None => restored.to_owned(),
    };
    format!(
        "guard: error rate of the new variant ({}) {:.2} % ({}/{}) against {:.2} % ({}/{}) {against}; z = {:.2} > {:.2} (one-sided two-proportion z-test, half of the {} % false-positive budget over {} looks); {what}",
        labels.join(", "),
        fired.verdict.candidate_rate * 100.0,
        fired.candidate.errors.min(fired.candidate.evaluations),
        fired.candidate.evaluations,
        fired.verdict.baseline_rate * 100.0,
        fired.baseline.errors.min(fired.baseline.evaluations),
        fired.baseline.evaluations,
        fired.verdict.z,
        fired.verdict.critical_z,
        policy.false_positive_budget * 100.0,
        policy.max_looks,
    )
}
