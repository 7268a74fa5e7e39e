//! Gradual rollouts: plans kept in the flag's state and advanced on schedule by `system:rollout`.
//!
//! A plan's steps are percentages of a boolean flag's targeting keys. Each step is an ordinary state write with
//! the version the scheduler saw, so when several servers share a store exactly one of them takes it (the others
//! get a conflict and move on). The plan is part of the state, so it survives restarts; a change by a person ends it.

use std::time::Duration;

use time::OffsetDateTime;
use vexil_core::{AuditAction, FlagName, RolloutPlan, Split};

use crate::auth::Actor;
use crate::service::{AppState, PlannedChange};

/// How often due steps are looked for.
const TICK: Duration = Duration::from_millis(250);

/// The actor rollout steps are recorded as.
pub fn rollout_actor() -> Actor {
    Actor::automatic(vexil_core::gate::Automation::Rollout, "")
}

/// `10000` thousandths → `"10 %"`, `12500` → `"12.5 %"`.
pub fn percent_text(thousandths: u32) -> String {
    format!("{} %", vexil_core::state::format_percent(u64::from(thousandths)))
}

/// The state after step `index` of `plan` (enabled, `true` for that share of targeting keys) and the plan it carries
/// on: the next step scheduled one interval from now, or none after the last step.
pub fn apply_step(spec: &vexil_core::StateSpec, plan: &RolloutPlan, index: usize) -> Option<(vexil_core::StateSpec, Option<RolloutPlan>)> {
    let share = *plan.steps.get(index)?;
    let mut spec = spec.clone();
    spec.enabled = true;
    spec.serve = vexil_core::Serve::Value(serde_json::Value::Bool(true));
    spec.split = if share >= vexil_core::state::SPLIT_TOTAL { None } else { Some(Split::boolean_rollout(share)) };
    let next =
        (index + 1 < plan.steps.len()).then(|| RolloutPlan { next_step: index + 1, next_at: one_interval_from_now(plan), ..plan.clone() });
    Some((spec, next))
}

/// A new plan from percentages and an interval as people type them; the message says what is wrong.
pub fn new_plan(
    steps: &[f64],
    every: &str,
    started_by: &str,
    reason: Option<String>,
    before: vexil_core::StateSpec,
) -> Result<RolloutPlan, String> {
    if steps.is_empty() || steps.len() > 100 {
        return Err("steps: give between 1 and 100 percentages, such as 10,25,50,100".to_owned());
    }
    let mut thousandths: Vec<u32> = Vec::with_capacity(steps.len());
    for percent in steps {
        if !(*percent > 0.0 && *percent <= 100.0) {
            return Err(format!("step {percent} is out of range; each step is above 0 and at most 100"));
        }
        let share = (percent * 1000.0).round() as u32;
        if thousandths.last().is_some_and(|last| *last >= share) {
            return Err("steps must grow: each step serves more users than the one before".to_owned());
        }
        thousandths.push(share);
    }
    Ok(RolloutPlan {
        steps: thousandths,
        every_seconds: parse_every(every)?,
        next_step: 0,
        next_at: crate::time::now(),
        paused: false,
        started_by: started_by.to_owned(),
        reason,
        started_at: crate::time::now(),
        before: Some(Box::new(before)),
    })
}

/// The state change that takes step `index` of `plan` (and schedules the next, or ends the plan after the last),
/// summarised as `rollout step 2/4: 25 %` with the plan's reason.
pub fn step_change(
    state: &AppState,
    environment: &vexil_core::Environment,
    flag: &FlagName,
    plan: &RolloutPlan,
    index: usize,
    expected_version: u64,
) -> Option<PlannedChange> {
    let current = state.catalog.state(&environment.key, flag)?;
    let (spec, next) = apply_step(&current.spec, plan, index)?;
    Some(PlannedChange {
        environment: environment.clone(),
        flag: flag.clone(),
        edit: crate::service::Edit::Replace(spec),
        expected_version: Some(expected_version),
        action: AuditAction::RolloutStep,
        reason: plan.reason.clone(),
        from_environment: None,
        expected_definition_version: None,
        summary: Some(format!(
            "rollout step {}/{}: {}",
            index + 1,
            plan.steps.len(),
            percent_text(plan.steps.get(index).copied().unwrap_or(0))
        )),
        rollout: next,
    })
}

/// Runs until the server shuts down, taking every step that is due and, every guard interval, judging each
/// running plan's error rates. A due step is taken only once the guard has found the current one healthy on
/// enough evidence (unless `rollout_without_evidence = "advance"`); until then the plan holds, and its status says why.
pub async fn schedule(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_guard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {},
            _ = shutdown.changed() => return,
        }
        if last_guard.elapsed() >= state.config.guard_interval {
            last_guard = tokio::time::Instant::now();
            crate::guard::look(&state).await;
        }
        let now = crate::time::now();
        for environment in state.config.environments.iter() {
            let Some(snapshot) = state.hub.snapshot(&environment.key) else { continue };
            for (name, flag) in &snapshot.flags {
                let Some(plan) = &flag.state.rollout else { continue };
                if plan.paused || plan.next_at > now {
                    continue;
                }
                // Guarded steps: the next step waits until the guard has seen this one healthy, with enough data.
                if state.config.rollout_holds_without_evidence && !state.guard.step_is_healthy(&environment.key, name, flag.state.version) {
                    continue;
                }
                let index = plan.next_step;
                let Some(change) = step_change(&state, environment, name, plan, index, flag.state.version) else { continue };
                match state.commit_states(&rollout_actor(), vec![change]).await {
                    Ok(_) => tracing::info!(flag = %name, environment = %environment.key, step = index + 1, "rollout step taken"),
                    // Another server took it, or a person changed the flag meanwhile: either way this step is not ours.
                    Err(error) if error.status.as_u16() == 412 || error.status.as_u16() == 409 => {}
                    Err(error) => tracing::warn!(flag = %name, error = %error.message, "rollout step failed; will retry"),
                }
            }
        }
    }
}

/// The longest interval between steps: a plan is meant to finish, and the arithmetic on moments stays in range.
pub const MAX_EVERY_SECONDS: u64 = 365 * 86_400;

/// Parses `30m`, `4s`, `2h`, `1d` into seconds (at least 1, at most a year).
pub fn parse_every(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let not_a_duration = || format!("`{}` is not a duration such as 4s, 30m, 2h or 1d", vexil_core::name::printable(text));
    let amount: u64 = number.parse().map_err(|_| not_a_duration())?;
    let unit_seconds: u64 = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(not_a_duration()),
    };
    match amount.checked_mul(unit_seconds) {
        Some(0) => Err("the interval between steps must be at least one second".to_owned()),
        Some(seconds) if seconds <= MAX_EVERY_SECONDS => Ok(seconds),
        _ => Err(format!("`{}` is longer than the longest interval between steps, 365d", vexil_core::name::printable(text))),
    }
}

/// One interval of `plan` from now (a stored interval beyond [`MAX_EVERY_SECONDS`] counts as that).
pub fn one_interval_from_now(plan: &RolloutPlan) -> String {
    let seconds = plan.every_seconds.min(MAX_EVERY_SECONDS) as i64;
    crate::time::format(OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_checked_not_wrapped() {
        assert_eq!(parse_every("4s"), Ok(4));
        assert_eq!(parse_every("30m"), Ok(1800));
        assert_eq!(parse_every("365d"), Ok(MAX_EVERY_SECONDS));
        for input in ["366d", "5000000d", "18446744073709551615s", "18446744073709551615d", "99999999999999999999999s"] {
            assert!(parse_every(input).is_err(), "{input}");
        }
        assert!(parse_every("0s").unwrap_err().contains("at least one second"));
    }
}
