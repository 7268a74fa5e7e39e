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
use vexil_core::{AuditAction, CompiledFlag, EnvKey, Environment, FlagName, FlagState, Role, Source};

use crate::auth::Actor;
use crate::hub::SnapshotFlag;
use crate::service::{AppState, PlannedChange};

/// How far before a change "the rate before" reaches, in minutes.
pub const BEFORE_MINUTES: u64 = 60;

/// The guard's actor.
fn guard_actor() -> Actor {
    Actor { email: "system:guard".to_owned(), role: Role::Admin, token_id: String::new(), source: Source::System }
}

/// What a watch is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Watching {
    /// A rollout plan runs.
    Rollout,
    /// A change in a protected environment, within the window after it.
    Change,
}

/// What the candidate is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Against {
    /// The labels served alongside the candidate since the change.
    #[serde(rename = "old variant")]
    OldVariant,
    /// The whole flag in the hour before the change.
    #[serde(rename = "before the change")]
    Before,
}

/// What the guard last saw of one watched flag.
#[derive(Debug, Clone, Serialize)]
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
    /// When the last look happened.
    pub checked_at: String,
}

/// One comparison of a look.
#[derive(Debug, Clone, Serialize)]
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

/// The guard's memory on one server: each watched flag's basis and the report of its last look.
#[derive(Debug, Default)]
pub struct Guard {
    watches: Mutex<HashMap<(EnvKey, FlagName), (Basis, Report)>>,
}

impl Guard {
    /// The last report on `flag` in `environment`, while it is watched.
    pub fn report(&self, environment: &EnvKey, flag: &FlagName) -> Option<Report> {
        self.lock().get(&(environment.clone(), flag.clone())).map(|(_, report)| report.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(EnvKey, FlagName), (Basis, Report)>> {
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
                    let report = look_at(state, environment, name, flag, &basis, now).await;
                    state.guard.lock().insert(key, (basis, report));
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
    let known = state.guard.lock().get(&(environment.key.clone(), name.clone())).map(|(basis, _)| basis.clone());
    if let Some(known) = known.filter(|known| known.version == version && known.watching == Watching::Change) {
        return Some(known);
    }
    let mut basis =
        Basis { watching: Watching::Change, version, since: changed_at, until: Some(until), candidate: BTreeSet::new(), exempt: None };
    match state.producing_record(environment, name, version).await {
        Ok(Some(record)) if record.action == AuditAction::Rollback => basis.exempt = Some("a rollback is never rolled back"),
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
    now: OffsetDateTime,
) -> Report {
    let mut report = Report {
        watching: basis.watching,
        version: flag.state.version,
        since: crate::time::format(basis.since),
        until: basis.until.map(crate::time::format),
        candidate: basis.candidate.iter().cloned().collect(),
        comparisons: Vec::new(),
        decision: String::new(),
        checked_at: crate::time::format(now),
    };
    if let Some(exempt) = basis.exempt {
        report.decision = exempt.to_owned();
        return report;
    }
    let since = minute_of(basis.since);
    let rows = match state.store.metrics(&environment.key, name.as_str(), since.saturating_sub(BEFORE_MINUTES)).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "guard cannot read metrics");
            report.decision = "metrics could not be read; retrying".to_owned();
            return report;
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
    let Some(fired) = report.comparisons.iter().find(|comparison| comparison.verdict.regression) else {
        let waiting = report.comparisons.iter().all(|comparison| comparison.verdict.insufficient_data);
        report.decision = if waiting { "waiting for data" } else { "healthy" }.to_owned();
        return report;
    };
    let reason = rollback_reason(basis, fired, &state.config.guard);
    let outcome = match &flag.state.rollout {
        Some(plan) => {
            let mut restored = plan.before.as_deref().cloned().unwrap_or_else(|| {
                let mut spec = flag.state.spec.clone();
                spec.enabled = false;
                spec
            });
            if restored == flag.state.spec {
                restored.enabled = false;
            }
            let change = PlannedChange {
                environment: environment.clone(),
                flag: name.clone(),
                spec: restored,
                expected_version: Some(flag.state.version),
                action: AuditAction::Rollback,
                reason: Some(reason),
                from_environment: None,
                rollout: None,
            };
            state.commit_states(&guard_actor(), vec![change]).await
        }
        None => state.rollback(&guard_actor(), environment, name, reason).await,
    };
    report.decision = match outcome {
        Ok(_) => {
            tracing::warn!(flag = %name, environment = %environment.key, "guard rolled back a regression");
            "rolled back".to_owned()
        }
        // Another server did it, or a person changed the flag meanwhile.
        Err(error) if error.status.as_u16() == 412 || error.status.as_u16() == 409 => "changed meanwhile".to_owned(),
        Err(error) => {
            tracing::warn!(flag = %name, error = %error.message, "guard rollback failed; will retry");
            format!("rollback failed, retrying: {}", error.message)
        }
    };
    report
}

/// The audit reason of a rollback: which comparison fired, with its rates, samples and test statistic.
fn rollback_reason(basis: &Basis, fired: &Comparison, policy: &GuardPolicy) -> String {
    let labels: Vec<&str> = basis.candidate.iter().map(String::as_str).collect();
    let (against, what) = match (fired.against, basis.watching) {
        (Against::OldVariant, Watching::Rollout) => {
            ("for the old one since the rollout started", "the rollout is stopped and its state before restored")
        }
        (Against::Before, Watching::Rollout) => ("before the rollout started", "the rollout is stopped and its state before restored"),
        (Against::OldVariant, Watching::Change) => ("for the old one since the change", "the change is undone"),
        (Against::Before, Watching::Change) => ("before the change", "the change is undone"),
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
