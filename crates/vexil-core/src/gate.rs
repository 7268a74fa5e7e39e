//! The gate: who may make a write, decided by what it changes in what each environment serves.
//!
//! Every write (a state change, a definition edit, `apply`, archive, import, copy, bulk, promote, rollout steps,
//! triggers, rollbacks) is described the same way: whether the definition changed, and for each environment the
//! flag's definition and state there before and after. [`decide`] compiles nothing and calls no endpoint-specific
//! rule: it compares what each environment serves ([`crate::serving`]) and applies that environment's policy to
//! every environment the write affects. So a definition edit that changes a value production serves is a
//! production change, whichever endpoint carried it, and a metadata edit is not.
//!
//! - People: a viewer changes nothing; a developer may define flags and change unprotected environments; only an
//!   admin changes a protected one, and only with a reason.
//! - Automatic actions: a rollout step needs a running plan (which an authorised person started); the guard and
//!   monitoring triggers may only reduce exposure ([`crate::serving::only_reduces_exposure`]). None of them edits
//!   definitions.

use crate::serving::{Side, off_answer, only_reduces_exposure, serves_same};
use crate::{EnvKey, Environment, Role, StateSpec};

/// Vexil's own components that write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Automation {
    /// `system:rollout`: takes the steps of a running plan.
    Rollout,
    /// `system:guard`: rolls back what errs more.
    Guard,
    /// `system:trigger`: acts when a monitoring system calls a trigger's URL.
    Trigger,
}

impl Automation {
    /// The name the audit trail records (`system:guard`).
    pub fn actor(self) -> &'static str {
        match self {
            Automation::Rollout => "system:rollout",
            Automation::Guard => "system:guard",
            Automation::Trigger => "system:trigger",
        }
    }
}

/// Who writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A person, with their role.
    Person(Role),
    /// One of Vexil's components.
    Automatic(Automation),
}

/// One environment's side of a write.
#[derive(Debug, Clone, Copy)]
pub struct EnvironmentChange<'a> {
    /// The environment.
    pub environment: &'a Environment,
    /// The flag there before the write.
    pub before: Side<'a>,
    /// The flag there after it.
    pub after: Side<'a>,
    /// Whether the stored state changes in anything that serves nothing (a rollout plan paused, say).
    pub plan_changed: bool,
    /// Whether a rollout plan was running there before the write.
    pub plan_running: bool,
    /// Whether the write names this environment (a state write does, a definition edit does not): a person's
    /// role must allow an environment they address even when the write turns out to change nothing there.
    pub addressed: bool,
    /// For a definition edit of a flag whose rollout plan runs here: the state before the plan, which the guard or a
    /// trigger restores on a regression, read through the old and the new definition. What it would serve is what
    /// the environment may serve next, so changing it changes the environment.
    pub restorable: Option<(Side<'a>, Side<'a>)>,
}

impl<'a> EnvironmentChange<'a> {
    /// A definition edit as it reaches one environment: the same state, read through the old and the new definition.
    pub fn definition_edit(
        environment: &'a Environment,
        previous: &'a crate::FlagDefinition,
        definition: &'a crate::FlagDefinition,
        state: &'a crate::FlagState,
    ) -> Self {
        Self {
            environment,
            before: Side::new(previous, &state.spec),
            after: Side::new(definition, &state.spec),
            plan_changed: false,
            plan_running: state.rollout.is_some(),
            addressed: false,
            restorable: state
                .rollout
                .as_ref()
                .and_then(|plan| plan.before.as_deref())
                .map(|before| (Side::new(previous, before), Side::new(definition, before))),
        }
    }
}

/// What a write does to one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Some context is served something else.
    Serving,
    /// Nothing served changes, but the state does (its plan, or rules that serve the same).
    State,
}

/// An environment the write affects, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    /// The environment's key.
    pub environment: EnvKey,
    /// How.
    pub effect: Effect,
}

/// Why the gate refused a write; nothing of it may be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The writer's role does not allow it.
    Forbidden(String),
    /// A protected environment is affected and no reason was given (the environment's long name).
    ReasonRequired(String),
    /// An automatic action would serve something to a context that did not get it before.
    WidensExposure(String),
}

/// How a write changes one environment, if at all. What an environment serves is judged with its kill switch in both
/// positions: what it serves off (the off value: `false`, or a non-boolean flag's default) is what an emergency
/// disable, a trigger or the guard would put in front of users, and what a disabled state serves on is what the next
/// enable will. So a new default, or a new value for a variant an armed (disabled) state names, changes the environment.
pub fn effect(change: &EnvironmentChange<'_>) -> Option<Effect> {
    let off_changed = off_answer(change.before.definition) != off_answer(change.after.definition);
    let armed = |side: Side<'_>| StateSpec { enabled: true, ..side.spec.clone() };
    let (armed_before, armed_after) = (armed(change.before), armed(change.after));
    let on_changed = (!change.before.spec.enabled || !change.after.spec.enabled)
        && !serves_same(Side::new(change.before.definition, &armed_before), Side::new(change.after.definition, &armed_after));
    let restorable_changed = change.restorable.is_some_and(|(before, after)| {
        let restored = EnvironmentChange { before, after, restorable: None, ..*change };
        effect(&restored) == Some(Effect::Serving)
    });
    if off_changed || on_changed || restorable_changed || !serves_same(change.before, change.after) {
        Some(Effect::Serving)
    } else if change.plan_changed || change.before.spec != change.after.spec {
        Some(Effect::State)
    } else {
        None
    }
}

/// The cheap part of the gate, which needs no comparison: whether a person's role lets them write to an environment
/// they name. The server asks it before preparing a write, so nobody can make the server compare states (under its
/// write lock) for a change they could never make; [`decide`] applies it again.
pub fn may_address(writer: Writer, environment: &Environment) -> Result<(), Refusal> {
    match writer {
        Writer::Person(Role::Viewer) => Err(Refusal::Forbidden(format!(
            "your role is viewer, which can only read; changing {} needs the developer role",
            environment.name
        ))),
        Writer::Person(role) if environment.protected && role != Role::Admin => Err(Refusal::Forbidden(format!(
            "{} is protected: changing it needs the admin role; your role is {}",
            environment.name,
            role.as_str()
        ))),
        _ => Ok(()),
    }
}

/// The one decision: may `writer` make a write that changes the definition (`definition_changed`) and these
/// environments, with this reason? Returns the affected environments (each needs a revision, an audit record
/// and a stream change of its own) or why not.
pub fn decide(
    writer: Writer,
    definition_changed: bool,
    environments: &[EnvironmentChange<'_>],
    reason: Option<&str>,
) -> Result<Vec<Affected>, Refusal> {
    let affected: Vec<(&EnvironmentChange<'_>, Effect)> =
        environments.iter().filter_map(|change| effect(change).map(|effect| (change, effect))).collect();
    let has_reason = reason.is_some_and(crate::text::has_visible_text);
    for change in environments.iter().filter(|change| change.addressed) {
        may_address(writer, change.environment)?;
    }
    match writer {
        Writer::Person(Role::Viewer) if definition_changed || !affected.is_empty() => {
            return Err(Refusal::Forbidden("your role is viewer, which can only read; changing flags needs the developer role".into()));
        }
        Writer::Person(role) => {
            for (change, effect) in &affected {
                let environment = change.environment;
                if !environment.protected {
                    continue;
                }
                if role != Role::Admin {
                    let what = match (effect, definition_changed) {
                        (Effect::Serving, true) => format!("this definition change alters what {} serves", environment.name),
                        _ => format!("{} is protected", environment.name),
                    };
                    return Err(Refusal::Forbidden(format!("{what}: changing it needs the admin role; your role is {}", role.as_str())));
                }
                if !has_reason {
                    return Err(Refusal::ReasonRequired(environment.name.clone()));
                }
            }
        }
        Writer::Automatic(automation) => {
            if definition_changed {
                return Err(Refusal::Forbidden(format!("{} never edits definitions", automation.actor())));
            }
            for (change, effect) in &affected {
                let environment = &change.environment.name;
                match automation {
                    Automation::Rollout if !change.plan_running => {
                        return Err(Refusal::Forbidden(format!("{environment} has no rollout running, so no step is due")));
                    }
                    Automation::Guard | Automation::Trigger
                        if *effect == Effect::Serving && !only_reduces_exposure(change.before, change.after) =>
                    {
                        return Err(Refusal::WidensExposure(format!(
                            "{} only ever reduces exposure: this would serve something in {environment} that some contexts did not get before",
                            automation.actor()
                        )));
                    }
                    _ => {}
                }
                if change.environment.protected && !has_reason {
                    return Err(Refusal::ReasonRequired(environment.clone()));
                }
            }
        }
    }
    Ok(affected.into_iter().map(|(change, effect)| Affected { environment: change.environment.key.clone(), effect }).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::serving::tests::{colours as definition, spec};
    use crate::{FlagDefinition, StateSpec};

    /// A kind of write, as the definitions and states it moves between.
    struct Kind {
        name: &'static str,
        definition_after: FlagDefinition,
        before: StateSpec,
        after: StateSpec,
        plan_changed: bool,
        plan_running: bool,
    }

    fn kinds() -> Vec<Kind> {
        let serving = spec(json!({"enabled": true, "serve": {"variant": "treatment"}}));
        let disabled = spec(json!({"enabled": false, "serve": {"variant": "treatment"}}));
        let by_value = spec(json!({"enabled": true, "serve": {"value": "blue"}}));
        let serving_control = spec(json!({"enabled": true, "serve": {"variant": "control"}}));
        let with = |edit: fn(&mut FlagDefinition)| {
            let mut definition = definition();
            edit(&mut definition);
            definition
        };
        let kind = |name, definition_after, before: &StateSpec, after: &StateSpec, plan_changed, plan_running| Kind {
            name,
            definition_after,
            before: before.clone(),
            after: after.clone(),
            plan_changed,
            plan_running,
        };
        vec![
            kind("metadata edit", with(|d| d.description = "the button".into()), &serving, &serving, false, false),
            kind("archive", with(|d| d.archived = true), &disabled, &disabled, false, false),
            kind("served variant's value", with(|d| d.variants[1].value = json!("red")), &serving, &serving, false, false),
            kind(
                "unserved variant's value",
                with(|d| d.variants[1].value = json!("red")),
                &serving_control,
                &serving_control,
                false,
                false,
            ),
            kind("armed variant's value", with(|d| d.variants[1].value = json!("red")), &disabled, &disabled, false, false),
            kind("default of a disabled flag", with(|d| d.default = json!("white")), &disabled, &disabled, false, false),
            kind("default of an enabled flag", with(|d| d.default = json!("white")), &serving, &serving, false, false),
            kind("variant served by value renamed", with(|d| d.variants[1].name = "blue_one".into()), &by_value, &by_value, false, false),
            kind("enable", definition(), &disabled, &serving, false, false),
            kind("disable", definition(), &serving, &disabled, false, false),
            kind("rollout paused", definition(), &serving, &serving, true, true),
            kind("rollout step", definition(), &disabled, &serving, true, true),
        ]
    }

    /// A kind of write and its verdicts: for viewer, developer, admin unprotected, then protected; for the guard
    /// (and triggers); for the rollout scheduler.
    type Row = (&'static str, [&'static str; 3], [&'static str; 3], &'static str, &'static str);

    const ALLOWED: &str = "allowed";
    const REFUSED: &str = "refused";
    const WIDENS: &str = "widens";

    fn verdict(writer: Writer, kind: &Kind, protected: bool, reason: Option<&str>) -> &'static str {
        let mut environment = crate::Environments::seed().as_slice()[0].clone();
        environment.protected = protected;
        let before_definition = definition();
        let change = EnvironmentChange {
            environment: &environment,
            before: Side::new(&before_definition, &kind.before),
            after: Side::new(&kind.definition_after, &kind.after),
            plan_changed: kind.plan_changed,
            plan_running: kind.plan_running,
            addressed: kind.definition_after == before_definition,
            restorable: None,
        };
        match decide(writer, kind.definition_after != before_definition, &[change], reason) {
            Ok(_) => ALLOWED,
            Err(Refusal::WidensExposure(_)) => WIDENS,
            Err(Refusal::Forbidden(_) | Refusal::ReasonRequired(_)) => REFUSED,
        }
    }

    /// Each kind of write: the verdict for viewer, developer, admin in an unprotected then a protected environment
    /// (with a reason), then for the guard (and triggers) and the rollout scheduler.
    #[test]
    fn the_gate_as_a_table() {
        let table: [Row; 12] = [
            ("metadata edit", [REFUSED, ALLOWED, ALLOWED], [REFUSED, ALLOWED, ALLOWED], REFUSED, REFUSED),
            ("archive", [REFUSED, ALLOWED, ALLOWED], [REFUSED, ALLOWED, ALLOWED], REFUSED, REFUSED),
            ("served variant's value", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], REFUSED, REFUSED),
            ("unserved variant's value", [REFUSED, ALLOWED, ALLOWED], [REFUSED, ALLOWED, ALLOWED], REFUSED, REFUSED),
            // A disabled state that names a variant serves it on the next enable.
            ("armed variant's value", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], REFUSED, REFUSED),
            ("default of a disabled flag", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], REFUSED, REFUSED),
            // What the kill switch would serve is served too.
            ("default of an enabled flag", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], REFUSED, REFUSED),
            // The label is part of the answer (OFREP's variant, the guard's arms).
            ("variant served by value renamed", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], REFUSED, REFUSED),
            ("enable", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], WIDENS, REFUSED),
            ("disable", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], ALLOWED, REFUSED),
            ("rollout paused", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], ALLOWED, ALLOWED),
            ("rollout step", [REFUSED, ALLOWED, ALLOWED], [REFUSED, REFUSED, ALLOWED], WIDENS, ALLOWED),
        ];
        let kinds = kinds();
        for (name, unprotected, protected, guard, rollout) in table {
            let kind = kinds.iter().find(|kind| kind.name == name).unwrap();
            for (index, role) in [Role::Viewer, Role::Developer, Role::Admin].into_iter().enumerate() {
                let person = Writer::Person(role);
                assert_eq!(verdict(person, kind, false, Some("why")), unprotected[index], "{name} by {role:?}, unprotected");
                assert_eq!(verdict(person, kind, true, Some("why")), protected[index], "{name} by {role:?}, protected");
            }
            for automation in [Automation::Guard, Automation::Trigger] {
                assert_eq!(verdict(Writer::Automatic(automation), kind, true, Some("alert")), guard, "{name} by {automation:?}");
            }
            assert_eq!(verdict(Writer::Automatic(Automation::Rollout), kind, true, Some("step")), rollout, "{name} by the scheduler");
        }
    }

    #[test]
    fn a_protected_change_needs_a_reason_and_an_unprotected_one_does_not() {
        let kinds = kinds();
        let served = kinds.iter().find(|kind| kind.name == "served variant's value").unwrap();
        assert_eq!(verdict(Writer::Person(Role::Admin), served, true, None), REFUSED);
        assert_eq!(verdict(Writer::Person(Role::Admin), served, true, Some("   ")), REFUSED);
        assert_eq!(verdict(Writer::Person(Role::Admin), served, false, None), ALLOWED);
        let metadata = kinds.iter().find(|kind| kind.name == "metadata edit").unwrap();
        assert_eq!(verdict(Writer::Person(Role::Developer), metadata, true, None), ALLOWED, "metadata needs no reason");
    }

    #[test]
    fn a_person_addressing_an_environment_needs_its_role_even_when_nothing_would_change() {
        let mut prod = crate::Environments::seed().as_slice()[2].clone();
        prod.protected = true;
        let definition = definition();
        let off = spec(json!({"enabled": false, "serve": {"variant": "treatment"}}));
        let disable_again = EnvironmentChange {
            environment: &prod,
            before: Side::new(&definition, &off),
            after: Side::new(&definition, &off),
            plan_changed: false,
            plan_running: false,
            addressed: true,
            restorable: None,
        };
        assert!(matches!(decide(Writer::Person(Role::Developer), false, &[disable_again], Some("x")), Err(Refusal::Forbidden(_))));
        assert!(matches!(decide(Writer::Person(Role::Viewer), false, &[disable_again], Some("x")), Err(Refusal::Forbidden(_))));
        assert_eq!(decide(Writer::Person(Role::Admin), false, &[disable_again], None), Ok(Vec::new()), "an admin's no-op needs no reason");
    }

    #[test]
    fn a_developer_is_told_the_definition_change_alters_production() {
        let kinds = kinds();
        let served = kinds.iter().find(|kind| kind.name == "served variant's value").unwrap();
        let mut prod = crate::Environments::seed().as_slice()[2].clone();
        prod.protected = true;
        let before = definition();
        let change = EnvironmentChange {
            environment: &prod,
            before: Side::new(&before, &served.before),
            after: Side::new(&served.definition_after, &served.after),
            plan_changed: false,
            plan_running: false,
            addressed: false,
            restorable: None,
        };
        let refusal = decide(Writer::Person(Role::Developer), true, &[change], Some("recolour")).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Forbidden(
                "this definition change alters what production serves: changing it needs the admin role; your role is developer".into()
            )
        );
    }

    #[test]
    fn a_definition_edit_that_changes_what_a_running_plan_would_restore_changes_the_environment() {
        let mut prod = crate::Environments::seed().as_slice()[2].clone();
        prod.protected = true;
        let before = definition();
        let mut recoloured = definition();
        recoloured.variants[1].value = json!("red");
        // During a plan the state names no variant; the state before it (what a rollback restores) names treatment.
        let during = spec(json!({"enabled": true, "serve": {"variant": "control"}}));
        let pre_plan = spec(json!({"enabled": false, "serve": {"variant": "treatment"}}));
        let mut change = EnvironmentChange {
            environment: &prod,
            before: Side::new(&before, &during),
            after: Side::new(&recoloured, &during),
            plan_changed: false,
            plan_running: true,
            addressed: false,
            restorable: None,
        };
        assert_eq!(effect(&change), None, "without the plan, nothing served changes");
        change.restorable = Some((Side::new(&before, &pre_plan), Side::new(&recoloured, &pre_plan)));
        assert_eq!(effect(&change), Some(Effect::Serving));
        assert!(matches!(decide(Writer::Person(Role::Developer), true, &[change], None), Err(Refusal::Forbidden(_))));
        assert_eq!(decide(Writer::Person(Role::Admin), true, &[change], None), Err(Refusal::ReasonRequired("production".into())));
    }
}
