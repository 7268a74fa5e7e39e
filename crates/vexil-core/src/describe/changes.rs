//! What a change did, in words: the history's "before → after" as lines a person reads
//! (`rule 1: email ends with "@asimo.io" → treatment (added)`), pinned case by case by `spec/changes.json`.
//!
//! States are compared the way evaluation reads them: on or off, targets by key, rules by position (a rule that only
//! moved says so, an edited rule shows what it was), then what everyone else gets. Definitions are compared field by
//! field, variants by name.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{fallthrough, listed, rule_text, serve_label, summary, value_label};
use crate::{AuditAction, AuditRecord, FlagDefinition, FlagState, RolloutPlan, Rule, StateSpec, state::format_percent};

/// What changed when a flag's state went from `before` (none: it was just created) to `after`; empty when it serves
/// the same.
pub fn state_changes(definition: &FlagDefinition, before: Option<&FlagState>, after: &FlagState) -> Vec<String> {
    let Some(before) = before else {
        return vec![format!("created: {}", summary(definition, after))];
    };
    let mut lines = Vec::new();
    let (old, new) = (&before.spec, &after.spec);
    if old.enabled != new.enabled {
        lines.push(if new.enabled { "turned on".to_owned() } else { "turned off".to_owned() });
    }
    lines.extend(target_changes(definition, old, new));
    lines.extend(rule_changes(definition, &old.rules, &new.rules));
    let (was, now) = (fallthrough(definition, old), fallthrough(definition, new));
    if was != now {
        lines.push(format!("everyone else: {now} (was {was})"));
    }
    lines.extend(plan_changes(before.rollout.as_ref(), after.rollout.as_ref()));
    lines
}

/// What replacing `current` with `spec` would change (a promotion, a copy, an import; any rollout plan ends), in words.
pub fn replacement_changes(definition: &FlagDefinition, current: &FlagState, spec: &StateSpec) -> Vec<String> {
    let replaced = FlagState { spec: spec.clone(), rollout: None, ..current.clone() };
    state_changes(definition, Some(current), &replaced)
}

/// Targets compared key by key: who was added, removed, or now gets something else, grouped by what they get.
fn target_changes(definition: &FlagDefinition, old: &StateSpec, new: &StateSpec) -> Vec<String> {
    let serving = |spec: &StateSpec| -> BTreeMap<String, String> {
        spec.targets
            .iter()
            .flat_map(|target| {
                let label = serve_label(definition, &target.serve);
                target.keys.iter().map(move |key| (key.clone(), label.clone()))
            })
            .collect()
    };
    let (was, now) = (serving(old), serving(new));
    // (what they get now, what they got) → keys; `None` on a side where they were not targeted.
    let mut groups: BTreeMap<(Option<&str>, Option<&str>), Vec<&str>> = BTreeMap::new();
    for (key, label) in &now {
        match was.get(key) {
            Some(before) if before == label => {}
            before => groups.entry((Some(label), before.map(String::as_str))).or_default().push(key),
        }
    }
    for (key, label) in &was {
        if !now.contains_key(key) {
            groups.entry((None, Some(label))).or_default().push(key);
        }
    }
    // Additions first, then keys that now get something else, then removals.
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|((now, was), _)| match (now, was) {
        (Some(_), None) => 0,
        (Some(_), Some(_)) => 1,
        _ => 2,
    });
    groups
        .into_iter()
        .map(|((now, was), keys)| {
            let keys = listed(keys.into_iter().map(crate::name::printable));
            match (now, was) {
                (Some(now), None) => format!("targets added: {keys} → {now}"),
                (None, Some(was)) => format!("targets removed: {keys} (got {was})"),
                (Some(now), Some(was)) => format!("targets {keys} → {now} (was {was})"),
                (None, None) => unreachable!("a key is on at least one side"),
            }
        })
        .collect()
}

/// Rules compared by position. Rules found unchanged on both sides are paired first; of those, the ones whose order
/// changed are "moved". What is left is an edit where a position had a rule on both sides, else an addition or a
/// removal.
fn rule_changes(definition: &FlagDefinition, old: &[Rule], new: &[Rule]) -> Vec<String> {
    let mut paired_old = vec![None; old.len()];
    let mut paired_new = vec![None; new.len()];
    for (position, rule) in new.iter().enumerate() {
        let same = |index: &usize| paired_old[*index].is_none() && old[*index] == *rule;
        // The same rule at the same place first, so a rule that stayed put is never taken for one that moved.
        let found =
            if old.get(position) == Some(rule) && paired_old[position].is_none() { Some(position) } else { (0..old.len()).find(same) };
        if let Some(index) = found {
            paired_old[index] = Some(position);
            paired_new[position] = Some(index);
        }
    }
    // The pairs that keep their relative order are the longest increasing run of old positions, in new order; every
    // other pair moved.
    let pairs: Vec<(usize, usize)> = paired_new.iter().enumerate().filter_map(|(now, was)| was.map(|was| (now, was))).collect();
    let kept = longest_increasing(&pairs.iter().map(|(_, was)| *was).collect::<Vec<_>>());
    let mut lines = Vec::new();
    // An old rule left unpaired at a position that a new unpaired rule takes was edited there.
    let mut edited = vec![false; old.len()];
    for (position, rule) in new.iter().enumerate() {
        let number = position + 1;
        match paired_new[position] {
            Some(was) => {
                let pair = pairs.iter().position(|(now, _)| *now == position).unwrap_or(0);
                if !kept.contains(&pair) {
                    lines.push(format!("rule {number}: {} (moved from {})", rule_text(definition, rule), was + 1));
                }
            }
            None if position < old.len() && paired_old[position].is_none() => {
                edited[position] = true;
                lines.push(format!(
                    "rule {number}: {} (changed; was {})",
                    rule_text(definition, rule),
                    rule_text(definition, &old[position])
                ));
            }
            None => lines.push(format!("rule {number}: {} (added)", rule_text(definition, rule))),
        }
    }
    for (index, rule) in old.iter().enumerate() {
        if paired_old[index].is_none() && !edited[index] {
            lines.push(format!("rule {} removed: {}", index + 1, rule_text(definition, rule)));
        }
    }
    lines
}

/// The indexes (into `values`) of one longest strictly increasing subsequence; `values` are at most 100 rules.
fn longest_increasing(values: &[usize]) -> Vec<usize> {
    let mut length = vec![1usize; values.len()];
    let mut previous = vec![None; values.len()];
    for end in 0..values.len() {
        for start in 0..end {
            if values[start] < values[end] && length[start] + 1 > length[end] {
                length[end] = length[start] + 1;
                previous[end] = Some(start);
            }
        }
    }
    let mut run = Vec::new();
    let mut at = (0..values.len()).max_by_key(|index| (length[*index], std::cmp::Reverse(*index)));
    while let Some(index) = at {
        run.push(index);
        at = previous[index];
    }
    run
}

/// A rollout plan starting, pausing, resuming or ending (its steps show as the split's changes).
fn plan_changes(before: Option<&RolloutPlan>, after: Option<&RolloutPlan>) -> Option<String> {
    let steps = |plan: &RolloutPlan| {
        let steps: Vec<String> = plan.steps.iter().map(|step| format_percent(u64::from(*step))).collect();
        format!("{} % every {}", steps.join(" → "), every(plan.every_seconds))
    };
    match (before, after) {
        (None, Some(plan)) => Some(format!("rollout started: {}", steps(plan))),
        (Some(_), None) => Some("rollout ended".to_owned()),
        (Some(old), Some(new)) if !old.paused && new.paused => Some("rollout paused".to_owned()),
        (Some(old), Some(new)) if old.paused && !new.paused => Some("rollout resumed".to_owned()),
        _ => None,
    }
}

/// Seconds as the CLI takes them: `30s`, `15m`, `2h`, `1d`.
fn every(seconds: u64) -> String {
    match seconds {
        0 => "0s".to_owned(),
        _ if seconds.is_multiple_of(86_400) => format!("{}d", seconds / 86_400),
        _ if seconds.is_multiple_of(3_600) => format!("{}h", seconds / 3_600),
        _ if seconds.is_multiple_of(60) => format!("{}m", seconds / 60),
        _ => format!("{seconds}s"),
    }
}

/// What changed in a flag's definition (none before: it was defined).
pub fn definition_changes(before: Option<&FlagDefinition>, after: &FlagDefinition) -> Vec<String> {
    let Some(before) = before else {
        let mut line = format!("defined: {}, default {}", after.flag_type.as_str(), value_label(after, &after.default));
        if !after.variants.is_empty() {
            line.push_str(&format!(
                ", variants {}",
                after.variants.iter().map(|variant| variant.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        return vec![line];
    };
    let mut lines = Vec::new();
    let text = |value: &Value| super::condition_value(value);
    if before.default != after.default {
        lines.push(format!("default: {} (was {})", text(&after.default), text(&before.default)));
    }
    for variant in &after.variants {
        match before.variant(&variant.name) {
            None => lines.push(format!("variant {} added: {}", variant.name, text(&variant.value))),
            Some(old) if old.value != variant.value => {
                lines.push(format!("variant {}: {} (was {})", variant.name, text(&variant.value), text(&old.value)));
            }
            Some(old) if old.description != variant.description => lines.push(format!("variant {}: description changed", variant.name)),
            Some(_) => {}
        }
    }
    for variant in &before.variants {
        if after.variant(&variant.name).is_none() {
            lines.push(format!("variant {} removed (was {})", variant.name, text(&variant.value)));
        }
    }
    if before.description != after.description {
        lines.push(if after.description.is_empty() {
            "description removed".to_owned()
        } else {
            format!("description: {}", text(&Value::String(after.description.clone())))
        });
    }
    if before.owner != after.owner {
        let owner = |owner: &Option<String>| owner.as_deref().map_or_else(|| "none".to_owned(), crate::name::printable);
        lines.push(format!("owner: {} (was {})", owner(&after.owner), owner(&before.owner)));
    }
    let added: Vec<String> = after.tags.iter().filter(|tag| !before.tags.contains(tag)).map(|tag| format!("+{tag}")).collect();
    let removed: Vec<String> = before.tags.iter().filter(|tag| !after.tags.contains(tag)).map(|tag| format!("−{tag}")).collect();
    if !added.is_empty() || !removed.is_empty() {
        lines.push(format!("tags: {}", added.into_iter().chain(removed).collect::<Vec<_>>().join(" ")));
    }
    if before.criticality != after.criticality {
        lines.push(format!("criticality: {} (was {})", after.criticality.as_str(), before.criticality.as_str()));
    }
    if before.allowed_values != after.allowed_values {
        lines.push(match &after.allowed_values {
            Some(values) => format!("allowed values: {}", listed(values.iter().map(|value| text(&Value::String(value.clone()))))),
            None => "allowed values: any".to_owned(),
        });
    }
    let bound = |bound: Option<f64>| bound.map_or_else(|| "none".to_owned(), |bound| bound.to_string());
    if before.min != after.min {
        lines.push(format!("min: {} (was {})", bound(after.min), bound(before.min)));
    }
    if before.max != after.max {
        lines.push(format!("max: {} (was {})", bound(after.max), bound(before.max)));
    }
    if before.deprecated != after.deprecated {
        lines.push(if after.deprecated { "marked deprecated".to_owned() } else { "no longer deprecated".to_owned() });
    }
    if before.archived != after.archived {
        lines.push(if after.archived { "archived".to_owned() } else { "unarchived".to_owned() });
    }
    lines
}

/// What an audit record changed, in words. `current` is the flag's definition now, used to name values in a state
/// record when the record does not carry the definition it was made under. Records of users and tokens, and records
/// whose sides cannot be read, have no lines (their before and after stay in the record).
pub fn record_changes(current: Option<&FlagDefinition>, record: &AuditRecord) -> Vec<String> {
    let definition_of = |value: &Option<Value>| value.as_ref().and_then(|value| FlagDefinition::deserialize(value).ok());
    if matches!(record.action, AuditAction::UserAdd | AuditAction::UserUpdate | AuditAction::TokenCreate | AuditAction::TokenRevoke) {
        return Vec::new();
    }
    if record.environment.is_none() {
        // A definition's own record: create, update, archive, unarchive.
        return match definition_of(&record.after) {
            Some(after) => definition_changes(definition_of(&record.before).as_ref(), &after),
            None => Vec::new(),
        };
    }
    // An environment's record of a definition change that changed what it serves: the definition's lines.
    if let Some(definition) = record.definition.as_ref() {
        let side = |name: &str| definition.get(name).cloned();
        if let Some(after) = definition_of(&side("after")) {
            let mut lines = definition_changes(definition_of(&side("before")).as_ref(), &after);
            if let Some(state) = record.after.as_ref().and_then(|value| FlagState::deserialize(value).ok()) {
                lines.push(format!("now: {}", summary(&after, &state)));
            }
            return lines;
        }
    }
    let state_of = |value: &Option<Value>| value.as_ref().and_then(|value| FlagState::deserialize(value).ok());
    let (Some(after), Some(definition)) = (state_of(&record.after), current) else {
        return Vec::new();
    };
    state_changes(definition, state_of(&record.before).as_ref(), &after)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::describe::{Explanation, explain};

    #[derive(Deserialize)]
    struct Spec {
        states: Vec<StateCase>,
        definitions: Vec<DefinitionCase>,
        explanations: Vec<ExplanationCase>,
    }

    #[derive(Deserialize)]
    struct StateCase {
        description: String,
        definition: Value,
        before: Option<Value>,
        after: Value,
        lines: Vec<String>,
    }

    #[derive(Deserialize)]
    struct DefinitionCase {
        description: String,
        before: Option<Value>,
        after: Value,
        lines: Vec<String>,
    }

    #[derive(Deserialize)]
    struct ExplanationCase {
        description: String,
        definition: Value,
        state: Value,
        explanation: Value,
    }

    fn definition(mut value: Value, case: &str) -> FlagDefinition {
        for (field, default) in [("version", Value::from(1)), ("created_at", "2026-12-01T00:00:00Z".into())] {
            value.as_object_mut().unwrap().entry(field).or_insert(default);
        }
        let definition: FlagDefinition = serde_json::from_value(value).expect(case);
        definition.validate().expect(case);
        definition
    }

    fn state(mut value: Value, definition: &FlagDefinition, case: &str) -> FlagState {
        for (field, default) in [("version", Value::from(1)), ("updated_by", "spec".into()), ("updated_at", "2026-12-01T00:00:00Z".into())]
        {
            value.as_object_mut().unwrap().entry(field).or_insert(default);
        }
        let state: FlagState = serde_json::from_value(value).expect(case);
        state.spec.validate(definition).expect(case);
        state
    }

    /// Every case of `spec/changes.json`: the words are data, so other implementations are held to the same.
    #[test]
    fn changes_and_explanations_are_the_spec_s() {
        let spec: Spec = serde_json::from_str(include_str!("../../../../spec/changes.json")).expect("spec/changes.json is valid");
        assert!(spec.states.len() >= 10 && !spec.definitions.is_empty() && !spec.explanations.is_empty());
        for case in spec.states {
            let flag = definition(case.definition, &case.description);
            let before = case.before.map(|value| state(value, &flag, &case.description));
            let after = state(case.after, &flag, &case.description);
            assert_eq!(state_changes(&flag, before.as_ref(), &after), case.lines, "{}", case.description);
        }
        for case in spec.definitions {
            let before = case.before.map(|value| definition(value, &case.description));
            let after = definition(case.after, &case.description);
            assert_eq!(definition_changes(before.as_ref(), &after), case.lines, "{}", case.description);
        }
        for case in spec.explanations {
            let flag = definition(case.definition, &case.description);
            let explained: Explanation = explain(&flag, &state(case.state, &flag, &case.description));
            assert_eq!(serde_json::to_value(&explained).unwrap(), case.explanation, "{}", case.description);
        }
    }

    /// An audit record is read by its kind: a definition's own record by its definitions, a state's by its states
    /// under the flag's definition, a user's or token's not at all.
    #[test]
    fn records_are_read_by_their_kind() {
        let flag = definition(serde_json::json!({"name": "ui.new_feature", "type": "boolean", "default": false}), "flag");
        let on = serde_json::json!({"enabled": true, "serve": {"value": true}, "version": 2, "updated_by": "a", "updated_at": "t"});
        let off = serde_json::json!({"enabled": false, "serve": {"value": true}, "version": 1, "updated_by": "a", "updated_at": "t"});
        let record = |action, environment: Option<&str>, before: Option<Value>, after: Option<Value>| {
            AuditRecord::seal(
                1,
                crate::audit::GENESIS_HASH,
                crate::AuditDraft {
                    flag: Some("ui.new_feature".into()),
                    action,
                    environment: environment.map(str::to_owned),
                    user: "a".into(),
                    timestamp: "t".into(),
                    reason: None,
                    from_environment: None,
                    before,
                    after,
                    source: crate::audit::Source::Api,
                    definition: None,
                },
            )
        };
        let enable = record(AuditAction::Enable, Some("production"), Some(off), Some(on));
        assert_eq!(record_changes(Some(&flag), &enable), ["turned on"]);
        assert!(record_changes(None, &enable).is_empty(), "without the definition a state is not guessed at");
        let created = record(AuditAction::Create, None, None, Some(serde_json::to_value(&flag).unwrap()));
        assert_eq!(record_changes(None, &created), ["defined: boolean, default false"]);
        let token = record(AuditAction::TokenCreate, None, None, Some(serde_json::json!({"id": "x"})));
        assert!(record_changes(Some(&flag), &token).is_empty());
    }
}
