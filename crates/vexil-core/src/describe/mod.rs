//! What a flag's state serves, in words: the one summary every place that shows a state uses (the API's `summary`
//! fields, so the panel and the CLI, and the stream's frames). Pinned, case by case, by `spec/summary.json`.
//!
//! The words follow the order evaluation runs in, and never leave out what a person would be surprised by:
//! - off: `Disabled`, with what it serves when that is not plainly `false`: `Disabled (serves "light")`, and what it
//!   would serve once enabled when that is something else: `Disabled · when enabled: rolled out to 30 %` (an armed
//!   state: turning the kill switch on is the whole launch);
//! - on: `Enabled`, then what everyone no target or rule catches gets (nothing more for a boolean serving `true`):
//!   `serves "dark"`, `serves false`, `rolled out to 30 %`, `50 % treatment / 50 % control`, or a rollout plan's
//!   progress, `rolling out: step 2 of 4, 25 %` (`rollout paused: …`);
//! - then how many rules and individually targeted keys there are: `1 rule`, `2 targets` (none when there are none);
//! - last, when Vexil itself set the state, who: `Disabled · turned off by a monitoring trigger`, `Enabled · rolled out
//!   to 10 % · rolled back by the guard` (when it happened is the state's `updated_at`).
//!
//! Parts are joined by ` · `: `Enabled · 50 % treatment / 50 % control · 1 rule · 2 targets`. Values are named as
//! evaluation labels them: a variant by its name, a value that is a variant's value by that variant's name, other
//! values as JSON (cut to 40 characters).

use serde::Serialize;
use serde_json::Value;

use crate::state::format_percent;
use crate::{Condition, FlagDefinition, FlagState, FlagType, Operator, Rule, RuleServe, Serve, Split, StateSpec, Target};

mod changes;

pub use changes::{definition_changes, record_changes, replacement_changes, state_changes};

/// The longest value shown whole; longer ones are cut with `…`.
const SHOWN: usize = 40;

/// The summary of `state` in words; see the module documentation.
pub fn summary(definition: &FlagDefinition, state: &FlagState) -> String {
    let mut text = served(definition, state);
    // A state Vexil set by itself, not a person: who undid what.
    if let Some(by) = automation(&state.updated_by) {
        text.push_str(if state.spec.enabled { " · rolled back by " } else { " · turned off by " });
        text.push_str(by);
    }
    text
}

/// Who set a state, when it was one of Vexil's own components that undo changes (the guard, a monitoring trigger).
fn automation(updated_by: &str) -> Option<&'static str> {
    match updated_by {
        "system:guard" => Some("the guard"),
        "system:trigger" => Some("a monitoring trigger"),
        _ => None,
    }
}

fn served(definition: &FlagDefinition, state: &FlagState) -> String {
    let on = served_when_enabled(definition, state);
    if state.spec.enabled {
        return std::iter::once("Enabled".to_owned()).chain(on).collect::<Vec<_>>().join(" · ");
    }
    let off = value_label(definition, &definition.off_value());
    let mut text = if off == "false" { "Disabled".to_owned() } else { format!("Disabled (serves {off})") };
    // What turning it on would serve, unless that is what it serves off (or, for a boolean, plainly `true`).
    if !on.is_empty() && on != [format!("serves {off}")] {
        text.push_str(" · when enabled: ");
        text.push_str(&on.join(" · "));
    }
    text
}

/// The parts after `Enabled`: what everyone gets by default, then the rules and targets.
fn served_when_enabled(definition: &FlagDefinition, state: &FlagState) -> Vec<String> {
    let spec = &state.spec;
    let mut parts = Vec::new();
    let default = match (&state.rollout, &spec.split) {
        (Some(plan), split) => {
            let share = split.as_ref().map_or_else(|| if serves_true(definition, &spec.serve) { 100_000 } else { 0 }, true_share);
            let progress = format!("step {} of {}, {} %", plan.next_step, plan.steps.len(), format_percent(share));
            Some(if plan.paused { format!("rollout paused: {progress}") } else { format!("rolling out: {progress}") })
        }
        (None, Some(split)) if definition.flag_type == FlagType::Boolean && is_boolean_rollout(split) => {
            Some(format!("rolled out to {} %", format_percent(true_share(split))))
        }
        (None, Some(split)) => Some(
            split
                .buckets
                .iter()
                .filter(|bucket| bucket.weight > 0)
                .map(|bucket| format!("{} % {}", format_percent(u64::from(bucket.weight)), serve_label(definition, &bucket.serve)))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        (None, None) if definition.flag_type == FlagType::Boolean && serves_true(definition, &spec.serve) => None,
        (None, None) => Some(format!("serves {}", serve_label(definition, &spec.serve))),
    };
    parts.extend(default);
    let rules = spec.rules.len();
    if rules > 0 {
        parts.push(count(rules, "rule"));
    }
    let targets: usize = spec.targets.iter().map(|target| target.keys.len()).sum();
    if targets > 0 {
        parts.push(count(targets, "target"));
    }
    parts
}

/// A state in words, in the order evaluation reads it: the summary, then each target and rule as a line, what
/// everyone else gets and what the flag serves while it is off. What the flag page and `vexil get FLAG --env E` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    /// The one-line summary ([`summary`]).
    pub summary: String,
    /// Individually targeted keys and what they get, checked first: `alice, bob → treatment`.
    pub targets: Vec<String>,
    /// The rules in order, first match wins: `email ends with "@asimo.io" → treatment`.
    pub rules: Vec<String>,
    /// What everyone no target or rule answers gets when the flag is on: `50 % treatment / 50 % control`.
    pub otherwise: String,
    /// What the flag serves while it is off: `false`, `"light"`.
    pub off: String,
}

/// The state explained line by line; see [`Explanation`].
pub fn explain(definition: &FlagDefinition, state: &FlagState) -> Explanation {
    let spec = &state.spec;
    Explanation {
        summary: summary(definition, state),
        targets: spec.targets.iter().map(|target| target_text(definition, target)).collect(),
        rules: spec.rules.iter().map(|rule| rule_text(definition, rule)).collect(),
        otherwise: fallthrough(definition, spec),
        off: value_label(definition, &definition.off_value()),
    }
}

/// What everyone no target or rule answers gets: the split, or what is served.
fn fallthrough(definition: &FlagDefinition, spec: &StateSpec) -> String {
    match &spec.split {
        Some(split) => split_text(definition, split),
        None => serve_label(definition, &spec.serve),
    }
}

/// A split in words: `rolled out to 30 %` for a boolean rollout, else its shares, `50 % treatment / 50 % control`.
fn split_text(definition: &FlagDefinition, split: &Split) -> String {
    if definition.flag_type == FlagType::Boolean && is_boolean_rollout(split) {
        return format!("rolled out to {} %", format_percent(true_share(split)));
    }
    split
        .buckets
        .iter()
        .filter(|bucket| bucket.weight > 0)
        .map(|bucket| format!("{} % {}", format_percent(u64::from(bucket.weight)), serve_label(definition, &bucket.serve)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The most targeting keys or condition values written out; the rest are counted.
const LISTED: usize = 5;

/// Items joined by `, `, the first [`LISTED`] of them, then `and N more`.
fn listed(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut text = items.take(LISTED).collect::<Vec<_>>().join(", ");
    if total > LISTED {
        text.push_str(&format!(" and {} more", total - LISTED));
    }
    text
}

/// `alice, bob → treatment`.
fn target_text(definition: &FlagDefinition, target: &Target) -> String {
    let keys = listed(target.keys.iter().map(|key| crate::name::printable(key)));
    format!("{keys} → {}", serve_label(definition, &target.serve))
}

/// `country is one of "DE", "FR" and plan is "pro" → treatment`; a rule with a description is named by it first:
/// `Internal staff: email ends with "@acme.io" → treatment`.
pub fn rule_text(definition: &FlagDefinition, rule: &Rule) -> String {
    match &rule.description {
        Some(description) if !description.trim().is_empty() => {
            format!("{}: {}", crate::name::printable(description.trim()), rule_conditions_text(definition, rule))
        }
        _ => rule_conditions_text(definition, rule),
    }
}

fn rule_conditions_text(definition: &FlagDefinition, rule: &Rule) -> String {
    let conditions = rule.conditions.iter().map(condition_text).collect::<Vec<_>>().join(" and ");
    let serves = match &rule.serve {
        RuleServe::Value(value) => value_label(definition, value),
        RuleServe::Variant(name) => name.clone(),
        RuleServe::Split(split) => split_text(definition, split),
    };
    format!("{conditions} → {serves}")
}

/// One condition as people say it: `email ends with "@asimo.io"`, `app_version ≥ 2.1.0 (semver)`.
fn condition_text(condition: &Condition) -> String {
    let values = || listed(condition.values.iter().map(condition_value));
    let any = || {
        let shown: Vec<String> = condition.values.iter().take(LISTED).map(condition_value).collect();
        let mut text = shown.join(" or ");
        if condition.values.len() > LISTED {
            text.push_str(&format!(" or {} more", condition.values.len() - LISTED));
        }
        text
    };
    // Versions as people write them, unquoted: `app_version ≥ 2.1.0 (semver)`.
    let versions = || {
        let bare = |value: &Value| value.as_str().map_or_else(|| condition_value(value), crate::name::printable);
        let shown: Vec<String> = condition.values.iter().take(LISTED).map(bare).collect();
        format!("{} (semver)", shown.join(" or "))
    };
    let single = condition.values.len() == 1;
    let attribute = crate::name::printable(&condition.attribute);
    let (verb, operand) = match condition.operator {
        Operator::Equals if single => ("is", values()),
        Operator::Equals | Operator::In => ("is one of", values()),
        Operator::NotEquals if single => ("is not", values()),
        Operator::NotEquals | Operator::NotIn => ("is none of", values()),
        Operator::Contains => ("contains", any()),
        Operator::StartsWith => ("starts with", any()),
        Operator::EndsWith => ("ends with", any()),
        Operator::Regex => ("matches", any()),
        Operator::Gt => (">", any()),
        Operator::Gte => ("≥", any()),
        Operator::Lt => ("<", any()),
        Operator::Lte => ("≤", any()),
        Operator::SemverEq => ("=", versions()),
        Operator::SemverGt => (">", versions()),
        Operator::SemverGte => ("≥", versions()),
        Operator::SemverLt => ("<", versions()),
        Operator::SemverLte => ("≤", versions()),
    };
    format!("{attribute} {verb} {operand}")
}

/// A condition's value: strings in quotes as typed (a pattern's backslashes are not doubled), others as JSON.
fn condition_value(value: &Value) -> String {
    let text = match value {
        Value::String(text) => format!("\"{text}\""),
        other => other.to_string(),
    };
    if text.chars().count() > SHOWN {
        format!("{}…", crate::name::printable(&text.chars().take(SHOWN - 1).collect::<String>()))
    } else {
        crate::name::printable(&text)
    }
}

fn count(number: usize, what: &str) -> String {
    format!("{number} {what}{}", if number == 1 { "" } else { "s" })
}

/// The share of a split that serves `true`, in thousandths of a percent.
fn true_share(split: &Split) -> u64 {
    split
        .buckets
        .iter()
        .filter(|bucket| matches!(&bucket.serve, Serve::Value(Value::Bool(true))))
        .map(|bucket| u64::from(bucket.weight))
        .sum()
}

/// A split of `true` and `false` values only: a percentage rollout.
fn is_boolean_rollout(split: &Split) -> bool {
    split.buckets.iter().all(|bucket| matches!(&bucket.serve, Serve::Value(Value::Bool(_))))
}

fn serves_true(definition: &FlagDefinition, serve: &Serve) -> bool {
    match serve {
        Serve::Value(value) => *value == Value::Bool(true),
        Serve::Variant(name) => definition.variant(name).is_some_and(|variant| variant.value == Value::Bool(true)),
    }
}

fn serve_label(definition: &FlagDefinition, serve: &Serve) -> String {
    match serve {
        Serve::Variant(name) => name.clone(),
        Serve::Value(value) => value_label(definition, value),
    }
}

/// A value as evaluation labels it: `true`/`false` for booleans, a variant's name, else its JSON.
fn value_label(definition: &FlagDefinition, value: &Value) -> String {
    if let Value::Bool(flag) = value {
        return flag.to_string();
    }
    // Variant names are plain (`[a-z0-9][a-z0-9_-]*`); a value is shown as its JSON, with control and bidi characters
    // escaped so it cannot forge anything in a terminal or a page.
    if let Some(variant) = definition.variants.iter().find(|variant| variant.value == *value) {
        return variant.name.clone();
    }
    let text = value.to_string();
    if text.chars().count() > SHOWN {
        format!("{}…", crate::name::printable(&text.chars().take(SHOWN - 1).collect::<String>()))
    } else {
        crate::name::printable(&text)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Case {
        description: String,
        definition: Value,
        state: Value,
        summary: String,
    }

    /// Every case of `spec/summary.json`: the words are data, so other implementations are held to the same.
    #[test]
    fn summaries_are_the_spec_s() {
        let cases: Vec<Case> = serde_json::from_str(include_str!("../../../../spec/summary.json")).expect("spec/summary.json is valid");
        assert!(cases.len() >= 10);
        for case in cases {
            let mut definition = case.definition;
            for (field, value) in [("version", Value::from(1)), ("created_at", "2026-12-01T00:00:00Z".into())] {
                definition.as_object_mut().unwrap().entry(field).or_insert(value);
            }
            let definition: FlagDefinition = serde_json::from_value(definition).expect(&case.description);
            definition.validate().expect(&case.description);
            let mut state = case.state;
            for (field, value) in
                [("version", Value::from(1)), ("updated_by", "spec".into()), ("updated_at", "2026-12-01T00:00:00Z".into())]
            {
                state.as_object_mut().unwrap().entry(field).or_insert(value);
            }
            let state: FlagState = serde_json::from_value(state).expect(&case.description);
            state.spec.validate(&definition).expect(&case.description);
            assert_eq!(summary(&definition, &state), case.summary, "{}", case.description);
        }
    }
}
