//! What a flag serves in one environment, compared over every possible context without enumerating contexts.
//!
//! A flag's answer is a pure function of its definition, its state and the context. Two such functions are
//! compared here for *every* context at once, which is what the gate ("does this write change what production
//! serves?") and the exposure rule ("does this automatic action only take things away?") both need.
//!
//! How: an answer comes from an individual target, else from the first matching rule, else from the fallthrough;
//! each of those serves a constant or a split over the bucket range `0..100000`. So for two states A and B it is
//! enough to look at
//! - every targeting key targeted on either side (its bucket is known, so splits give one value), against every
//!   outcome the other side can give that key;
//! - every pair (A's first matching rule or fallthrough, B's first matching rule or fallthrough) that some context
//!   can reach, over every bucket segment where both sides' splits are constant, and for contexts without a
//!   targeting key (a split then serves the state's `serve`).
//!
//! Which pairs are reachable is worked out treating distinct conditions as independent: a pair is reachable when
//! both rules' conditions can hold while every earlier rule on either side has a condition that does not. That may
//! count a pair no real context reaches (two conditions that contradict each other), never the other way round, so
//! [`for_all_contexts`] can only answer "no" too often, never "yes" wrongly: a write it cannot prove harmless is
//! treated as a change, an automatic action it cannot prove safe is not taken.

use std::collections::HashMap;

use serde_json::Value;

use crate::FlagDefinition;
use crate::bucketing::{BUCKETS, bucket};
use crate::state::{Condition, RuleServe, Serve, Split, StateSpec};

/// One side of a comparison: a flag's definition and its state in one environment.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The definition, which resolves variants and the off value.
    pub definition: &'a FlagDefinition,
    /// The state.
    pub spec: &'a StateSpec,
}

impl<'a> Side<'a> {
    /// A side from its parts.
    pub fn new(definition: &'a FlagDefinition, spec: &'a StateSpec) -> Self {
        Self { definition, spec }
    }
}

/// What one context is served: the value, and the label it is reported under (the variant's name, `true`/`false`
/// for booleans, none for a value that is no variant). The label is part of the answer: OFREP and the stream send it,
/// SDK metrics count by it, and the guard judges by it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The value.
    pub value: Value,
    /// Its label, when it has one.
    pub label: Option<String>,
}

impl PartialEq for Answer {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && identical(&self.value, &other.value)
    }
}

/// Whether two JSON values are served as the same bytes up to object key order: numbers compare by their text, so
/// `-0.0` differs from `0.0` (which `serde_json` calls equal) and `1` from `1.0`.
pub fn identical(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => left.to_string() == right.to_string(),
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(left, right)| identical(left, right))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len() && left.iter().all(|(key, value)| right.get(key).is_some_and(|other| identical(value, other)))
        }
        _ => left == right,
    }
}

/// What a disabled flag serves: its off value, labelled as evaluation labels it.
pub fn off_answer(definition: &FlagDefinition) -> Answer {
    resolve(definition, &Serve::Value(definition.off_value()))
}

/// What a rule or the fallthrough serves, with variants resolved to their values.
#[derive(Debug, Clone)]
enum Outcome {
    Constant(Answer),
    /// Cumulative exclusive upper bounds over `0..BUCKETS`, and what each range serves.
    Split(Vec<(u32, Answer)>),
}

impl Outcome {
    fn at(&self, bucket: u32) -> &Answer {
        match self {
            Outcome::Constant(value) => value,
            Outcome::Split(ranges) => {
                ranges.iter().find(|(upper, _)| bucket < *upper).or(ranges.last()).map(|(_, value)| value).expect("splits have ranges")
            }
        }
    }

    fn bounds(&self) -> Vec<u32> {
        match self {
            Outcome::Constant(_) => Vec::new(),
            Outcome::Split(ranges) => ranges.iter().map(|(upper, _)| *upper).collect(),
        }
    }
}

/// A state prepared for comparison.
struct Prepared<'a> {
    /// Targeted keys and what they get (the first target naming a key wins, as in evaluation). A disabled flag has
    /// no targets, no rules, and the off value as the fallthrough.
    targets: HashMap<&'a str, Answer>,
    /// Each rule's conditions (as ids shared by both sides) and outcome.
    rules: Vec<(Vec<usize>, Outcome)>,
    fallthrough: Outcome,
    /// What contexts without a targeting key get where a split would answer (the state's `serve`).
    keyless: Answer,
    /// The rules (and the fallthrough, at `rules.len()`) that can be a context's first match at all.
    reachable_alone: Vec<usize>,
}

/// Resolves what a state serves as evaluation does (`evaluation::served`): a variant to its value, a value to its label.
fn resolve(definition: &FlagDefinition, serve: &Serve) -> Answer {
    match serve {
        Serve::Variant(name) => Answer {
            value: definition.variant(name).map(|variant| variant.value.clone()).unwrap_or_else(|| definition.default.clone()),
            label: Some(name.clone()),
        },
        Serve::Value(value) => {
            let label = match value {
                Value::Bool(flag) if definition.flag_type == crate::FlagType::Boolean => Some(flag.to_string()),
                _ => definition.variants.iter().find(|variant| &variant.value == value).map(|variant| variant.name.clone()),
            };
            Answer { value: value.clone(), label }
        }
    }
}

fn split_outcome(definition: &FlagDefinition, split: &Split) -> Outcome {
    let mut upper = 0u32;
    let ranges: Vec<(u32, Answer)> = split
        .buckets
        .iter()
        .filter(|bucket| bucket.weight > 0)
        .map(|bucket| {
            upper = upper.saturating_add(bucket.weight);
            (upper.min(BUCKETS), resolve(definition, &bucket.serve))
        })
        .collect();
    if ranges.is_empty() { Outcome::Constant(off_answer(definition)) } else { Outcome::Split(ranges) }
}

/// Gives structurally equal conditions one id, across both sides of a comparison.
#[derive(Default)]
struct Conditions(HashMap<String, usize>);

impl Conditions {
    fn ids(&mut self, conditions: &[Condition]) -> Vec<usize> {
        let mut ids: Vec<usize> = conditions
            .iter()
            .map(|condition| {
                let text = serde_json::to_string(condition).unwrap_or_default();
                let next = self.0.len();
                *self.0.entry(text).or_insert(next)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

fn prepare<'a>(side: &Side<'a>, conditions: &mut Conditions) -> Prepared<'a> {
    let definition = side.definition;
    let spec = side.spec;
    if !spec.enabled {
        let off = off_answer(definition);
        return Prepared {
            targets: HashMap::new(),
            rules: Vec::new(),
            fallthrough: Outcome::Constant(off.clone()),
            keyless: off,
            reachable_alone: vec![0],
        };
    }
    let mut targets: HashMap<&str, Answer> = HashMap::new();
    for target in &spec.targets {
        let value = resolve(definition, &target.serve);
        for key in &target.keys {
            targets.entry(key.as_str()).or_insert_with(|| value.clone());
        }
    }
    let rules: Vec<(Vec<usize>, Outcome)> = spec
        .rules
        .iter()
        .map(|rule| {
            let outcome = match &rule.serve {
                RuleServe::Value(value) => Outcome::Constant(resolve(definition, &Serve::Value(value.clone()))),
                RuleServe::Variant(name) => Outcome::Constant(resolve(definition, &Serve::Variant(name.clone()))),
                RuleServe::Split(split) => split_outcome(definition, split),
            };
            (conditions.ids(&rule.conditions), outcome)
        })
        .collect();
    let serve = resolve(definition, &spec.serve);
    let fallthrough = match &spec.split {
        Some(split) => split_outcome(definition, split),
        None => Outcome::Constant(serve.clone()),
    };
    let reachable_alone = (0..=rules.len())
        .filter(|index| {
            let holding = rules.get(*index).map(|(ids, _)| ids.as_slice()).unwrap_or(&[]);
            rules[..*index].iter().all(|(earlier, _)| escapes(earlier, holding, &[]))
        })
        .collect();
    Prepared { targets, rules, fallthrough, keyless: serve, reachable_alone }
}

/// Whether a rule with conditions `rule` can fail to match while every condition in `holding` and `also` holds.
fn escapes(rule: &[usize], holding: &[usize], also: &[usize]) -> bool {
    rule.iter().any(|id| holding.binary_search(id).is_err() && also.binary_search(id).is_err())
}

impl Prepared<'_> {
    /// The outcome of rule `index`, or the fallthrough at `rules.len()`.
    fn outcome(&self, index: usize) -> &Outcome {
        self.rules.get(index).map(|(_, outcome)| outcome).unwrap_or(&self.fallthrough)
    }

    fn conditions(&self, index: usize) -> &[usize] {
        self.rules.get(index).map(|(ids, _)| ids.as_slice()).unwrap_or(&[])
    }

    /// What a context without a targeting key gets from this outcome.
    fn keyless_value<'v>(&'v self, outcome: &'v Outcome) -> &'v Answer {
        match outcome {
            Outcome::Constant(value) => value,
            Outcome::Split(_) => &self.keyless,
        }
    }

    /// Everything this side can give a context with this key: its target's value, or any reachable rule's or the
    /// fallthrough's answer at the key's bucket.
    fn values_for(&self, key: &str, position: u32) -> Vec<&Answer> {
        match self.targets.get(key) {
            Some(value) => vec![value],
            None => self.reachable_alone.iter().map(|index| self.outcome(*index).at(position)).collect(),
        }
    }
}

/// Whether rule `a_index` of `a` and rule `b_index` of `b` (the fallthrough at the end of each list) can both be
/// the first match of one context, with distinct conditions taken as independent.
fn reachable(a: &Prepared<'_>, a_index: usize, b: &Prepared<'_>, b_index: usize) -> bool {
    let (holding_a, holding_b) = (a.conditions(a_index), b.conditions(b_index));
    a.rules[..a_index.min(a.rules.len())].iter().all(|(earlier, _)| escapes(earlier, holding_a, holding_b))
        && b.rules[..b_index.min(b.rules.len())].iter().all(|(earlier, _)| escapes(earlier, holding_a, holding_b))
}

/// Whether `holds(a's value, b's value)` is true for every context: with `a` and `b` the values the two sides
/// serve that context. May answer `false` for a pair of states where it holds (see the module documentation);
/// never `true` where it does not.
pub fn for_all_contexts(a: Side<'_>, b: Side<'_>, holds: impl Fn(&Answer, &Answer) -> bool) -> bool {
    let flag = a.definition.name.as_str();
    let mut conditions = Conditions::default();
    let (a, b) = (prepare(&a, &mut conditions), prepare(&b, &mut conditions));

    // Targeted keys: the targeted side's value against everything the other side can give that key.
    let both = a.targets.keys().chain(b.targets.keys().filter(|key| !a.targets.contains_key(*key)));
    for key in both {
        let pair = (a.targets.get(key), b.targets.get(key));
        let agrees = match pair {
            (Some(left), Some(right)) => holds(left, right),
            _ => {
                let position = bucket(flag, key);
                let (from_a, from_b) = (a.values_for(key, position), b.values_for(key, position));
                from_a.iter().all(|left| from_b.iter().all(|right| holds(left, right)))
            }
        };
        if !agrees {
            return false;
        }
    }

    // Everyone else: each reachable pair of first matches, per bucket segment, and without a targeting key. When both
    // sides have the same rule conditions in the same order, a context's first match is the same rule on both.
    let same_rules = a.rules.len() == b.rules.len() && a.rules.iter().zip(&b.rules).all(|(left, right)| left.0 == right.0);
    let pairs: Vec<(usize, usize)> = if same_rules {
        a.reachable_alone.iter().map(|index| (*index, *index)).collect()
    } else {
        let mut pairs = Vec::new();
        for a_index in &a.reachable_alone {
            for b_index in &b.reachable_alone {
                if reachable(&a, *a_index, &b, *b_index) {
                    pairs.push((*a_index, *b_index));
                }
            }
        }
        pairs
    };
    for (a_index, b_index) in pairs {
        let (left, right) = (a.outcome(a_index), b.outcome(b_index));
        if !holds(a.keyless_value(left), b.keyless_value(right)) {
            return false;
        }
        let mut starts: Vec<u32> = std::iter::once(0).chain(left.bounds()).chain(right.bounds()).filter(|start| *start < BUCKETS).collect();
        starts.sort_unstable();
        starts.dedup();
        if !starts.into_iter().all(|start| holds(left.at(start), right.at(start))) {
            return false;
        }
    }
    true
}

/// Whether both sides serve every context the same value under the same label.
pub fn serves_same(a: Side<'_>, b: Side<'_>) -> bool {
    for_all_contexts(a, b, |left, right| left == right)
}

/// The exposure rule: whether going from `before` to `after` only takes things away. Every context must get
/// either what it got before or the flag's off value (what a disabled flag serves); so no value reaches a
/// context that did not have it, a disabled flag stays off, and a percentage never grows.
///
/// This is the one condition every automatic action (the guard, monitoring triggers) must meet.
pub fn only_reduces_exposure(before: Side<'_>, after: Side<'_>) -> bool {
    let off = after.definition.off_value();
    for_all_contexts(before, after, |was, will| identical(&will.value, &was.value) || identical(&will.value, &off))
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::{FlagName, FlagType, Variant};

    fn boolean() -> FlagDefinition {
        FlagDefinition::new(FlagName::parse("ui.checkout_v2").unwrap(), FlagType::Boolean, json!(false))
    }

    /// A string flag with variants control (grey, also the default) and treatment (blue); the gate's tests use it too.
    pub(crate) fn colours() -> FlagDefinition {
        let mut definition = FlagDefinition::new(FlagName::parse("ui.button_colour").unwrap(), FlagType::String, json!("grey"));
        definition.variants = vec![
            Variant { name: "control".into(), value: json!("grey"), description: None },
            Variant { name: "treatment".into(), value: json!("blue"), description: None },
        ];
        definition
    }

    pub(crate) fn spec(value: serde_json::Value) -> StateSpec {
        serde_json::from_value(value).unwrap()
    }

    fn percent(share: u32) -> StateSpec {
        spec(json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [
            {"serve": {"value": true}, "weight": share * 1000}, {"serve": {"value": false}, "weight": (100 - share) * 1000}]}}))
    }

    const ON: fn() -> StateSpec = || spec(json!({"enabled": true, "serve": {"value": true}}));
    const OFF: fn() -> StateSpec = || spec(json!({"enabled": false, "serve": {"value": true}}));

    /// The exposure table: (what it is, before, after, whether going from before to after only reduces exposure).
    #[test]
    fn the_exposure_rule_as_a_table() {
        let flag = boolean();
        let beta_rule = |serve: serde_json::Value| {
            spec(json!({"enabled": true, "serve": {"value": false}, "rules": [
                {"conditions": [{"attribute": "plan", "operator": "equals", "values": ["beta"]}], "serve": serve}]}))
        };
        let cases: Vec<(&str, StateSpec, StateSpec, bool)> = vec![
            ("disabling", ON(), OFF(), true),
            ("enabling a disabled flag (undoing a kill switch)", OFF(), ON(), false),
            ("cutting 100 % back to 33 %", ON(), percent(33), true),
            ("widening 33 % back to 100 %", percent(33), ON(), false),
            ("50 % back to the 20 % it grew from", percent(50), percent(20), true),
            ("20 % to 50 %", percent(20), percent(50), false),
            ("a plan at 100 % back to off", ON(), OFF(), true),
            (
                "removing a rule that served true to beta users",
                beta_rule(json!({"value": true})),
                spec(json!({"enabled": true, "serve": {"value": false}})),
                true,
            ),
            (
                "adding a rule that serves true to beta users",
                spec(json!({"enabled": true, "serve": {"value": false}})),
                beta_rule(json!({"value": true})),
                false,
            ),
            (
                "a target removed",
                spec(json!({"enabled": true, "serve": {"value": false}, "targets": [{"keys": ["alice"], "serve": {"value": true}}]})),
                spec(json!({"enabled": true, "serve": {"value": false}})),
                true,
            ),
            (
                "a target added",
                spec(json!({"enabled": true, "serve": {"value": false}})),
                spec(json!({"enabled": true, "serve": {"value": false}, "targets": [{"keys": ["alice"], "serve": {"value": true}}]})),
                false,
            ),
            ("nothing changes", percent(40), percent(40), true),
        ];
        for (what, before, after, expected) in cases {
            before.validate(&flag).unwrap();
            after.validate(&flag).unwrap();
            assert_eq!(only_reduces_exposure(Side::new(&flag, &before), Side::new(&flag, &after)), expected, "{what}");
        }
    }

    #[test]
    fn multivariate_exposure_counts_any_value_but_the_off_value() {
        let flag = colours();
        let half = spec(json!({"enabled": true, "serve": {"variant": "control"}, "split": {"buckets": [
            {"serve": {"variant": "treatment"}, "weight": 50000}, {"serve": {"variant": "control"}, "weight": 50000}]}}));
        let all_control = spec(json!({"enabled": true, "serve": {"variant": "control"}}));
        let all_treatment = spec(json!({"enabled": true, "serve": {"variant": "treatment"}}));
        // Control is grey, the off value (the default): moving users there only takes the treatment away.
        assert!(only_reduces_exposure(Side::new(&flag, &half), Side::new(&flag, &all_control)));
        assert!(!only_reduces_exposure(Side::new(&flag, &half), Side::new(&flag, &all_treatment)));
    }

    #[test]
    fn definitions_change_what_is_served_through_variants_and_the_default() {
        let before = colours();
        let mut recoloured = colours();
        recoloured.variants[1].value = json!("red");
        let mut described = colours();
        described.description = "the checkout button".into();
        described.owner = Some("growth".into());
        let mut new_default = colours();
        new_default.default = json!("white");

        let serving_treatment = spec(json!({"enabled": true, "serve": {"variant": "treatment"}}));
        let disabled = spec(json!({"enabled": false, "serve": {"variant": "treatment"}}));
        let same = |a: &FlagDefinition, b: &FlagDefinition, state: &StateSpec| serves_same(Side::new(a, state), Side::new(b, state));
        assert!(!same(&before, &recoloured, &serving_treatment), "a served variant's value changed");
        assert!(same(&before, &recoloured, &disabled), "a disabled flag serves the default, not the variant");
        assert!(same(&before, &described, &serving_treatment), "metadata serves nothing");
        assert!(!same(&before, &new_default, &disabled), "a disabled string flag serves the default");
        assert!(same(&before, &new_default, &serving_treatment));
    }

    #[test]
    fn states_that_serve_alike_compare_equal_whatever_their_shape() {
        let flag = boolean();
        let hundred = percent(100);
        assert!(serves_same(Side::new(&flag, &ON()), Side::new(&flag, &hundred)), "a 100 % split serves what the flag serves");
        let zero = spec(json!({"enabled": true, "serve": {"value": false}, "split": {"buckets": [
            {"serve": {"value": true}, "weight": 0}, {"serve": {"value": false}, "weight": 100000}]}}));
        let off = OFF();
        assert!(serves_same(Side::new(&flag, &zero), Side::new(&flag, &off)));
        // Rules in another order are a different decision list, and the check sees the overlap it cannot rule out.
        let two_rules = |first: &str, second: &str| {
            spec(json!({"enabled": true, "serve": {"value": false}, "rules": [
                {"conditions": [{"attribute": "plan", "operator": "equals", "values": [first]}], "serve": {"value": true}},
                {"conditions": [{"attribute": "country", "operator": "equals", "values": [second]}], "serve": {"value": true}}]}))
        };
        assert!(serves_same(Side::new(&flag, &two_rules("beta", "nz")), Side::new(&flag, &two_rules("beta", "nz"))));
        assert!(!serves_same(Side::new(&flag, &two_rules("beta", "nz")), Side::new(&flag, &two_rules("beta", "au"))));
        // A rule that serves what the fallthrough serves changes nothing, wherever it stands.
        let redundant = spec(json!({"enabled": true, "serve": {"value": false}, "rules": [
            {"conditions": [{"attribute": "country", "operator": "equals", "values": ["nz"]}], "serve": {"value": false}}]}));
        let plain = spec(json!({"enabled": true, "serve": {"value": false}}));
        assert!(serves_same(Side::new(&flag, &redundant), Side::new(&flag, &plain)));
    }

    #[test]
    fn served_values_compare_as_served_not_as_numbers() {
        let mut before = FlagDefinition::new(FlagName::parse("backend.rate").unwrap(), FlagType::Number, json!(0.0));
        before.variants = vec![Variant { name: "zero".into(), value: json!(0.0), description: None }];
        let mut negative = before.clone();
        negative.variants[0].value = json!(-0.0);
        let serving = spec(json!({"enabled": true, "serve": {"variant": "zero"}}));
        assert!(!serves_same(Side::new(&before, &serving), Side::new(&negative, &serving)), "-0.0 is served as another value");
        assert!(identical(&json!({"a": 1, "b": [2.5]}), &json!({"b": [2.5], "a": 1})), "key order is not a difference");
        assert!(!identical(&json!(1), &json!(1.0)));
    }

    #[test]
    fn a_split_rule_gives_keyless_contexts_the_served_value() {
        let flag = boolean();
        let with_split_rule = |serve: bool| {
            spec(json!({"enabled": true, "serve": {"value": serve}, "rules": [
                {"conditions": [{"attribute": "plan", "operator": "equals", "values": ["beta"]}],
                 "serve": {"split": {"buckets": [{"serve": {"value": true}, "weight": 50000}, {"serve": {"value": false}, "weight": 50000}]}}}]}))
        };
        assert!(!serves_same(Side::new(&flag, &with_split_rule(true)), Side::new(&flag, &with_split_rule(false))));
    }
}
