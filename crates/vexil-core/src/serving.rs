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

/// What one context is served, interned: ids of the value's canonical text and of the label, shared by both sides of a
/// comparison, so comparing two answers costs two integer comparisons however large the value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    value: usize,
    label: Option<usize>,
}

/// The comparison's shared tables (values, labels and conditions to ids) and its work budget.
struct Tables {
    values: HashMap<String, usize>,
    labels: HashMap<String, usize>,
    conditions: HashMap<String, usize>,
    /// Steps left before the comparison gives up and answers conservatively.
    budget: u64,
}

/// The most steps one comparison takes (each a rule-pair check, a bucket segment or a targeted key's outcome). A write
/// is judged under the write lock, so no state, however shaped within its limits, may make it slow for everyone;
/// past this the comparison answers "not the same" / "not provably safe", which only ever asks for more care.
const WORK_BUDGET: u64 = 2_000_000;

/// JSON text with object keys sorted and numbers as written, so equal text means the same bytes served up to key order.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

impl Tables {
    fn new() -> Self {
        Self { values: HashMap::new(), labels: HashMap::new(), conditions: HashMap::new(), budget: WORK_BUDGET }
    }

    fn intern(map: &mut HashMap<String, usize>, text: String) -> usize {
        let next = map.len();
        *map.entry(text).or_insert(next)
    }

    fn value(&mut self, value: &Value) -> usize {
        let mut text = String::new();
        canonical(value, &mut text);
        Self::intern(&mut self.values, text)
    }

    fn label(&mut self, label: Option<&str>) -> Option<usize> {
        label.map(|label| Self::intern(&mut self.labels, label.to_owned()))
    }

    fn conditions(&mut self, conditions: &[Condition]) -> Vec<usize> {
        let mut ids: Vec<usize> = conditions
            .iter()
            .map(|condition| Self::intern(&mut self.conditions, serde_json::to_string(condition).unwrap_or_default()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Takes `steps` from the budget; false once it is spent.
    fn spend(&mut self, steps: u64) -> bool {
        self.budget = self.budget.saturating_sub(steps);
        self.budget > 0
    }
}

/// One side's resolution of what it serves, with each variant resolved once.
struct Resolver<'a> {
    definition: &'a FlagDefinition,
    variants: HashMap<&'a str, Token>,
}

impl<'a> Resolver<'a> {
    fn new(definition: &'a FlagDefinition) -> Self {
        Self { definition, variants: HashMap::new() }
    }

    /// As evaluation resolves (`evaluation::served`): a variant to its value, a value to its label.
    fn token(&mut self, serve: &'a Serve, tables: &mut Tables) -> Token {
        match serve {
            Serve::Variant(name) => self.variant_token(name, tables),
            Serve::Value(value) => self.value_token(value, tables),
        }
    }

    fn variant_token(&mut self, name: &'a str, tables: &mut Tables) -> Token {
        if let Some(token) = self.variants.get(name) {
            return *token;
        }
        let definition = self.definition;
        let value = definition.variant(name).map(|variant| &variant.value).unwrap_or(&definition.default);
        let token = Token { value: tables.value(value), label: tables.label(Some(name)) };
        self.variants.insert(name, token);
        token
    }

    fn value_token(&mut self, value: &Value, tables: &mut Tables) -> Token {
        let label = value_label(self.definition, value);
        Token { value: tables.value(value), label: tables.label(label.as_deref()) }
    }
}

/// What a rule or the fallthrough serves.
#[derive(Debug, Clone)]
enum Outcome {
    Constant(Token),
    /// Cumulative exclusive upper bounds over `0..BUCKETS`, and what each range serves.
    Split(Vec<(u32, Token)>),
}

impl Outcome {
    fn at(&self, bucket: u32) -> Token {
        match self {
            Outcome::Constant(token) => *token,
            Outcome::Split(ranges) => {
                ranges.iter().find(|(upper, _)| bucket < *upper).or(ranges.last()).map(|(_, token)| *token).expect("splits have ranges")
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
    targets: HashMap<&'a str, Token>,
    /// Each rule's conditions (as ids shared by both sides) and outcome.
    rules: Vec<(Vec<usize>, Outcome)>,
    fallthrough: Outcome,
    /// What contexts without a targeting key get where a split would answer (the state's `serve`).
    keyless: Token,
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
        Serve::Value(value) => Answer { value: value.clone(), label: value_label(definition, value) },
    }
}

/// The label evaluation reports a served value under: `true`/`false` for booleans, else the first variant with that value.
fn value_label(definition: &FlagDefinition, value: &Value) -> Option<String> {
    match value {
        Value::Bool(flag) if definition.flag_type == crate::FlagType::Boolean => Some(flag.to_string()),
        _ => definition.variants.iter().find(|variant| &variant.value == value).map(|variant| variant.name.clone()),
    }
}

fn split_outcome<'a>(resolver: &mut Resolver<'a>, split: &'a Split, tables: &mut Tables) -> Outcome {
    let mut upper = 0u32;
    let ranges: Vec<(u32, Token)> = split
        .buckets
        .iter()
        .filter(|bucket| bucket.weight > 0)
        .map(|bucket| {
            upper = upper.saturating_add(bucket.weight);
            (upper.min(BUCKETS), resolver.token(&bucket.serve, tables))
        })
        .collect();
    if ranges.is_empty() {
        let off = resolver.definition.off_value();
        Outcome::Constant(resolver.value_token(&off, tables))
    } else {
        Outcome::Split(ranges)
    }
}

fn prepare<'a>(side: &Side<'a>, tables: &mut Tables) -> Prepared<'a> {
    let mut resolver = Resolver::new(side.definition);
    let spec = side.spec;
    if !spec.enabled {
        let off = side.definition.off_value();
        let off = resolver.value_token(&off, tables);
        return Prepared {
            targets: HashMap::new(),
            rules: Vec::new(),
            fallthrough: Outcome::Constant(off),
            keyless: off,
            reachable_alone: vec![0],
        };
    }
    let mut targets: HashMap<&str, Token> = HashMap::new();
    for target in &spec.targets {
        let token = resolver.token(&target.serve, tables);
        for key in &target.keys {
            targets.entry(key.as_str()).or_insert(token);
        }
    }
    let rules: Vec<(Vec<usize>, Outcome)> = spec
        .rules
        .iter()
        .map(|rule| {
            let outcome = match &rule.serve {
                RuleServe::Value(value) => Outcome::Constant(resolver.value_token(value, tables)),
                RuleServe::Variant(name) => Outcome::Constant(resolver.variant_token(name, tables)),
                RuleServe::Split(split) => split_outcome(&mut resolver, split, tables),
            };
            (tables.conditions(&rule.conditions), outcome)
        })
        .collect();
    let keyless = resolver.token(&spec.serve, tables);
    let fallthrough = match &spec.split {
        Some(split) => split_outcome(&mut resolver, split, tables),
        None => Outcome::Constant(keyless),
    };
    let reachable_alone = (0..=rules.len())
        .filter(|index| {
            let holding = rules.get(*index).map(|(ids, _)| ids.as_slice()).unwrap_or(&[]);
            rules[..*index].iter().all(|(earlier, _)| escapes(earlier, holding, &[]))
        })
        .collect();
    Prepared { targets, rules, fallthrough, keyless, reachable_alone }
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
    fn keyless_token(&self, outcome: &Outcome) -> Token {
        match outcome {
            Outcome::Constant(token) => *token,
            Outcome::Split(_) => self.keyless,
        }
    }

    /// Everything this side can give a context with this key: its target's answer, or any reachable rule's or the
    /// fallthrough's answer at the key's bucket.
    fn tokens_for(&self, key: &str, position: u32) -> Vec<Token> {
        match self.targets.get(key) {
            Some(token) => vec![*token],
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

/// How two answers for the same context must relate.
#[derive(Clone, Copy)]
enum Relation {
    /// The same value under the same label.
    Same,
    /// The second is the first's value, or this value (the off value's id).
    SameOrOff(usize),
}

impl Relation {
    fn holds(self, left: Token, right: Token) -> bool {
        match self {
            Relation::Same => left == right,
            Relation::SameOrOff(off) => right.value == left.value || right.value == off,
        }
    }
}

/// Whether `relation` holds between the two sides' answers for every context. May answer `false` where it holds
/// (see the module documentation, and past the work budget); never `true` where it does not.
fn for_all_contexts(a: Side<'_>, b: Side<'_>, tables: &mut Tables, relation: Relation) -> bool {
    let flag = a.definition.name.as_str();
    let (a, b) = (prepare(&a, tables), prepare(&b, tables));

    // Targeted keys: the targeted side's answer against everything the other side can give that key.
    let both = a.targets.keys().chain(b.targets.keys().filter(|key| !a.targets.contains_key(*key)));
    for key in both {
        let agrees = match (a.targets.get(key), b.targets.get(key)) {
            (Some(left), Some(right)) => relation.holds(*left, *right),
            _ => {
                let position = bucket(flag, key);
                let (from_a, from_b) = (a.tokens_for(key, position), b.tokens_for(key, position));
                if !tables.spend((from_a.len() * from_b.len()) as u64) {
                    return false;
                }
                from_a.iter().all(|left| from_b.iter().all(|right| relation.holds(*left, *right)))
            }
        };
        if !agrees {
            return false;
        }
    }

    // Everyone else: each reachable pair of first matches, per bucket segment, and without a targeting key. When both
    // sides have the same rule conditions in the same order, a context's first match is the same rule on both.
    let same_rules = a.rules.len() == b.rules.len() && a.rules.iter().zip(&b.rules).all(|(left, right)| left.0 == right.0);
    let mut pairs = Vec::new();
    if same_rules {
        pairs.extend(a.reachable_alone.iter().map(|index| (*index, *index)));
    } else {
        for a_index in &a.reachable_alone {
            for b_index in &b.reachable_alone {
                if !tables.spend((a_index + b_index + 1) as u64) {
                    return false;
                }
                if reachable(&a, *a_index, &b, *b_index) {
                    pairs.push((*a_index, *b_index));
                }
            }
        }
    }
    for (a_index, b_index) in pairs {
        let (left, right) = (a.outcome(a_index), b.outcome(b_index));
        if !relation.holds(a.keyless_token(left), b.keyless_token(right)) {
            return false;
        }
        let mut starts: Vec<u32> = std::iter::once(0).chain(left.bounds()).chain(right.bounds()).filter(|start| *start < BUCKETS).collect();
        starts.sort_unstable();
        starts.dedup();
        if !tables.spend(starts.len() as u64) {
            return false;
        }
        if !starts.into_iter().all(|start| relation.holds(left.at(start), right.at(start))) {
            return false;
        }
    }
    true
}

/// Whether both sides serve every context the same value under the same label.
pub fn serves_same(a: Side<'_>, b: Side<'_>) -> bool {
    for_all_contexts(a, b, &mut Tables::new(), Relation::Same)
}

/// The exposure rule: whether going from `before` to `after` only takes things away. Every context must get
/// either what it got before or the flag's off value (what a disabled flag serves); so no value reaches a
/// context that did not have it, a disabled flag stays off, and a percentage never grows.
///
/// This is the one condition every automatic action (the guard, monitoring triggers) must meet.
pub fn only_reduces_exposure(before: Side<'_>, after: Side<'_>) -> bool {
    let mut tables = Tables::new();
    let off = tables.value(&after.definition.off_value());
    for_all_contexts(before, after, &mut tables, Relation::SameOrOff(off))
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
    fn past_its_work_budget_a_comparison_answers_the_careful_way() {
        let flag = boolean();
        let rules = |prefix: &str| -> serde_json::Value {
            (0..20)
                .map(|index| {
                    json!({"conditions": [{"attribute": "plan", "operator": "equals", "values": [format!("{prefix}{index}")]}],
                                    "serve": {"value": false}})
                })
                .collect()
        };
        // Rules that all serve what the fallthrough serves: the same for every context, but the rule lists differ.
        let before = spec(json!({"enabled": true, "serve": {"value": false}, "rules": rules("a")}));
        let after = spec(json!({"enabled": true, "serve": {"value": false}, "rules": rules("b")}));
        assert!(serves_same(Side::new(&flag, &before), Side::new(&flag, &after)));
        let mut starved = Tables { budget: 50, ..Tables::new() };
        assert!(!for_all_contexts(Side::new(&flag, &before), Side::new(&flag, &after), &mut starved, Relation::Same), "not the same, then");
        let mut starved = Tables { budget: 50, ..Tables::new() };
        let off = starved.value(&json!(false));
        assert!(
            !for_all_contexts(Side::new(&flag, &before), Side::new(&flag, &after), &mut starved, Relation::SameOrOff(off)),
            "not provably safe, then"
        );
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
