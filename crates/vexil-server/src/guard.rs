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

/// What the guard last saw of one watched flag.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `rollout` (a plan runs) or `change` (within the window after a change).
    pub watching: &'static str,
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
    /// `old variant` (served alongside, since the change) or `before the change`.
    pub against: &'static str,
    /// The candidate's counts.
    pub candidate: Counts,
    /// The baseline's counts.
    pub baseline: Counts,
    /// The test's outcome.
    pub verdict: Verdict,
}

/// Why a flag is watched, worked out once per state version.
#[derive(Debug, Clone)]
struct Basis {
    kind: &'static str,
    version: u64,
    since: OffsetDateTime,
    until: Option<OffsetDateTime>,
    candidate: BTreeSet<String>,
    /// Set when the change is deliberately not judged, with the reason.
    exempt: Option<&'static str>,
}

/// The guard's memory on one server: the basis of each watch and its last report.
#[derive(Debug, Default)]
pub struct Guard {
    bases: Mutex<HashMap<(EnvKey, FlagName), Basis>>,
    reports: Mutex<HashMap<(EnvKey, FlagName), Report>>,
}

impl Guard {
    /// The last report on `flag` in `environment`, while it is watched.
    pub fn report(&self, environment: &EnvKey, flag: &FlagName) -> Option<Report> {
        self.reports.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&(environment.clone(), flag.clone())).cloned()
    }

    fn set_report(&self, key: (EnvKey, FlagName), report: Option<Report>) {
        let mut reports = self.reports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match report {
            Some(report) => reports.insert(key, report),
            None => reports.remove(&key),
        };
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
            let Some(basis) = basis(state, environment, name, flag, now).await else {
                state.guard.bases.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&key);
                state.guard.set_report(key, None);
                continue;
            };
            let report = look_at(state, environment, name, flag, &basis, now).await;
            state.guard.set_report(key, report);
        }
    }
}

/// Whether `flag` is watched now, and on what basis; the audit trail is read once per state version.
async fn basis(state: &AppState, environment: &Environment, name: &FlagName, flag: &SnapshotFlag, now: OffsetDateTime) -> Option<Basis> {
    let version = flag.state.version;
    if let Some(plan) = &flag.state.rollout {
        return Some(Basis {
            kind: "rollout",
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
    let key = (environment.key.clone(), name.clone());
    if let Some(known) = state.guard.bases.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key)
        && known.version == version
    {
        return Some(known.clone());
    }
    let mut basis = Basis { kind: "change", version, since: changed_at, until: Some(until), candidate: BTreeSet::new(), exempt: None };
    match producing_record(state, environment, name, version).await {
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
            return Some(Basis { exempt: Some("the audit trail could not be read; retrying"), ..basis });
        }
    }
    state.guard.bases.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, basis.clone());
    Some(basis)
}

/// The audit record that produced `version` of the flag's state.
async fn producing_record(
    state: &AppState,
    environment: &Environment,
    flag: &FlagName,
    version: u64,
) -> crate::error::ApiResult<Option<vexil_core::AuditRecord>> {
    let page = state
        .store
        .audit(vexil_store::AuditQuery {
            flag: Some(flag.to_string()),
            environment: Some(environment.name.clone()),
            limit: 50,
            ..Default::default()
        })
        .await?;
    Ok(page
        .entries
        .into_iter()
        .find(|record| record.after.as_ref().and_then(|after| after.get("version")).and_then(serde_json::Value::as_u64) == Some(version)))
}

/// Looks at one watch: reads its metrics, runs both comparisons and rolls back on a regression.
async fn look_at(
    state: &AppState,
    environment: &Environment,
    name: &FlagName,
    flag: &SnapshotFlag,
    basis: &Basis,
    now: OffsetDateTime,
) -> Option<Report> {
    let mut report = Report {
        watching: basis.kind,
        version: basis.version,
        since: crate::time::format(basis.since),
        until: basis.until.map(crate::time::format),
        candidate: basis.candidate.iter().cloned().collect(),
        comparisons: Vec::new(),
        decision: String::new(),
        checked_at: crate::time::format(now),
    };
    if let Some(exempt) = basis.exempt {
        report.decision = exempt.to_owned();
        return Some(report);
    }
    let since = minute_of(basis.since);
    let rows = match state.store.metrics(&environment.key, name.as_str(), since.saturating_sub(BEFORE_MINUTES)).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "guard cannot read metrics");
            report.decision = "metrics could not be read; retrying".to_owned();
            return Some(report);
        }
    };
    let (mut candidate, mut alongside, mut before) = (Counts::default(), Counts::default(), Counts::default());
    for row in &rows {
        let arm = if row.bucket < since {
            &mut before
        } else if basis.candidate.contains(&row.variant) {
            &mut candidate
        } else {
            &mut alongside
        };
        arm.evaluations += row.evaluations;
        arm.errors += row.errors;
    }
    let arms = Arms { candidate, alongside, before };
    let [against_alongside, against_before] = judge_watch(arms, &state.config.guard);
    report.comparisons = vec![
        Comparison { against: "old variant", candidate, baseline: alongside, verdict: against_alongside },
        Comparison { against: "before the change", candidate, baseline: before, verdict: against_before },
    ];
    let Some(fired) = report.comparisons.iter().find(|comparison| comparison.verdict.regression) else {
        let waiting = report.comparisons.iter().all(|comparison| comparison.verdict.insufficient_data);
        report.decision = if waiting { "waiting for data" } else { "healthy" }.to_owned();
        return Some(report);
    };
    let reason = rollback_reason(basis, fired, &state.config.guard);
    let outcome = match (basis.kind, &flag.state.rollout) {
        ("rollout", Some(plan)) => {
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
        _ => state.rollback(&guard_actor(), environment, name, reason).await,
    };
    match outcome {
        Ok(_) => {
            tracing::warn!(flag = %name, environment = %environment.key, "guard rolled back a regression");
            report.decision = "rolled back".to_owned();
        }
        // Another server did it, or a person changed the flag meanwhile.
        Err(error) if error.status.as_u16() == 412 || error.status.as_u16() == 409 => report.decision = "changed meanwhile".to_owned(),
        Err(error) => {
            tracing::warn!(flag = %name, error = %error.message, "guard rollback failed; will retry");
            report.decision = format!("rollback failed, retrying: {}", error.message);
        }
    }
    Some(report)
}

/// The audit reason of a rollback: which comparison fired, with its rates, samples and test statistic.
fn rollback_reason(basis: &Basis, fired: &Comparison, policy: &GuardPolicy) -> String {
    let labels: Vec<&str> = basis.candidate.iter().map(String::as_str).collect();
    let rollout = basis.kind == "rollout";
    let against = match (fired.against, rollout) {
        ("old variant", true) => "for the old one since the rollout started",
        ("old variant", false) => "for the old one since the change",
        (_, true) => "before the rollout started",
        (_, false) => "before the change",
    };
    let what = if rollout { "the rollout is stopped and its state before restored" } else { "the change is undone" };
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
