//! Evaluation: what a flag serves to one context, and why.
//!
//! A flag's definition and state are compiled once per change into a [`CompiledFlag`]: variants resolved
//! to values, regexes compiled, targets indexed, split weights turned into bucket ranges. Evaluating it
//! then never fails and never allocates: it borrows the served value from the compiled flag and reads the
//! context through the [`EvaluationContext`] trait.
//!
//! Order, first match wins:
//! 1. disabled → the off value (`false`, or the default), reason `DISABLED`;
//! 2. the targeting key is listed in a target → `TARGETING_MATCH`;
//! 3. the first rule whose conditions all hold → its value (`TARGETING_MATCH`) or its split (`SPLIT`);
//! 4. the fallthrough: the split (`SPLIT`) or the served value (`STATIC` when the state has no targeting, `DEFAULT` otherwise).
//!
//! A split needs a targeting key; without one the answer is the served value with reason `ERROR` and
//! error `TARGETING_KEY_MISSING`. A condition on an attribute the context does not have does not hold,
//! whatever its operator.

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bucketing::{Murmur3, bucket_after, prefix};
use crate::semver::Version;
use crate::state::{Operator, RuleServe, SPLIT_TOTAL};
use crate::{FlagDefinition, FlagName, FlagState, FlagType, Serve, Split};

/// An attribute's value as evaluation sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeValue<'a> {
    /// Text.
    String(&'a str),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
}

/// Where evaluation reads the targeting key and attributes from.
pub trait EvaluationContext {
    /// The key splits bucket on and targets list (a user id, a tenant id).
    fn targeting_key(&self) -> Option<&str>;
    /// An attribute by name; arrays, objects and null count as absent.
    fn attribute(&self, name: &str) -> Option<AttributeValue<'_>>;
}

fn attribute_of(value: &Value) -> Option<AttributeValue<'_>> {
    match value {
        Value::String(text) => Some(AttributeValue::String(text)),
        Value::Number(number) => number.as_f64().map(AttributeValue::Number),
        Value::Bool(flag) => Some(AttributeValue::Bool(*flag)),
        _ => None,
    }
}

/// An OpenFeature-style JSON context: `targetingKey` plus any attributes.
impl EvaluationContext for serde_json::Map<String, Value> {
    fn targeting_key(&self) -> Option<&str> {
        self.get("targetingKey").and_then(Value::as_str)
    }

    fn attribute(&self, name: &str) -> Option<AttributeValue<'_>> {
        self.get(name).and_then(attribute_of)
    }
}

/// An owned context, for applications building one in code.
///
/// Attributes are kept in a short list rather than a hash map: contexts hold a handful of attributes, and
/// comparing a few short names is faster than hashing one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// The targeting key.
    pub targeting_key: Option<String>,
    attributes: Vec<(String, Value)>,
}

impl Context {
    /// A context for this targeting key.
    pub fn new(targeting_key: impl Into<String>) -> Self {
        Self { targeting_key: Some(targeting_key.into()), attributes: Vec::new() }
    }

    /// A context with no targeting key.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an attribute.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets (or replaces) an attribute.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|(existing, _)| *existing == name) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((name, value)),
        }
    }

    /// The attributes, in the order they were set.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.attributes.iter().map(|(name, value)| (name.as_str(), value))
    }
}

impl EvaluationContext for Context {
    fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    fn attribute(&self, name: &str) -> Option<AttributeValue<'_>> {
        match name {
            "targetingKey" => self.targeting_key.as_deref().map(AttributeValue::String),
            _ => self.attributes.iter().find(|(candidate, _)| candidate == name).and_then(|(_, value)| attribute_of(value)),
        }
    }
}

/// Why a flag has the value it has (OpenFeature's resolution reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// Enabled, with no targeting configured: everyone gets the same.
    Static,
    /// Targeting is configured but nothing matched: the served value.
    Default,
    /// The kill switch is off.
    Disabled,
    /// A target or a rule matched.
    TargetingMatch,
    /// A percentage split chose.
    Split,
    /// Evaluation could not do what the state asks (see the error code).
    Error,
}

impl Reason {
    /// `STATIC`, `DEFAULT`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Error => "ERROR",
        }
    }
}

/// Why an evaluation has reason `ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// A split had to choose, and the context has no targeting key.
    TargetingKeyMissing,
}

impl ErrorCode {
    /// `TARGETING_KEY_MISSING`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
        }
    }
}

/// Which part of the state produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matched {
    /// The kill switch.
    Disabled,
    /// An individual target.
    Target,
    /// The rule at this index.
    Rule(usize),
    /// The fallthrough split.
    Split,
    /// The served value.
    Fallthrough,
}

/// The answer for one flag and one context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation<'a> {
    /// The value served.
    pub value: &'a Value,
    /// Its variant name, when it has one (`"true"`/`"false"` for booleans).
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason,
    /// Which part of the state answered.
    pub matched: Matched,
    /// Set when the reason is `ERROR`.
    pub error: Option<ErrorCode>,
    /// The index of the served value's label in [`CompiledFlag::labels`], for per-variant counters.
    pub slot: u16,
}

/// The label under which a value without a variant name is counted.
pub const UNNAMED_LABEL: &str = "(value)";

/// A value with its variant name.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The value.
    pub value: Value,
    /// The variant's name, if the value is a named variant (booleans: `true`/`false`).
    pub variant: Option<String>,
    /// The index of its label in [`CompiledFlag::labels`].
    pub slot: u16,
}

#[derive(Debug, Clone)]
struct CompiledSplit {
    /// Cumulative upper bounds (exclusive) over `0..SPLIT_TOTAL`, with what each range serves.
    ranges: Vec<(u32, Served)>,
}

impl CompiledSplit {
    fn choose(&self, bucket: u32) -> &Served {
        self.ranges
            .iter()
            .find(|(upper, _)| bucket < *upper)
            .or(self.ranges.last())
            .map(|(_, served)| served)
            .expect("validated splits have buckets")
    }
}

#[derive(Debug, Clone)]
enum Outcome {
    Serve(Served),
    Split(CompiledSplit),
}

#[derive(Debug, Clone)]
enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
    Never,
}

impl Literal {
    fn matches(&self, attribute: AttributeValue<'_>) -> bool {
        match (self, attribute) {
            (Literal::String(expected), AttributeValue::String(actual)) => expected == actual,
            (Literal::Number(expected), AttributeValue::Number(actual)) => *expected == actual,
            (Literal::Bool(expected), AttributeValue::Bool(actual)) => *expected == actual,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum TextOperator {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    fn holds(self, order: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Comparison::Equal => order == Equal,
            Comparison::Greater => order == Greater,
            Comparison::GreaterOrEqual => order != Less,
            Comparison::Less => order == Less,
            Comparison::LessOrEqual => order != Greater,
        }
    }
}

#[derive(Debug, Clone)]
enum Test {
    Equals { negate: bool, values: Vec<Literal> },
    Text { operator: TextOperator, values: Vec<String> },
    Regex(Vec<Regex>),
    Numeric { comparison: Comparison, values: Vec<f64> },
    Semver { comparison: Comparison, values: Vec<String> },
}

#[derive(Debug, Clone)]
struct CompiledCondition {
    attribute: String,
    test: Test,
}

impl CompiledCondition {
    fn holds<C: EvaluationContext + ?Sized>(&self, context: &C) -> bool {
        let Some(attribute) = context.attribute(&self.attribute) else { return false };
        match &self.test {
            Test::Equals { negate, values } => values.iter().any(|value| value.matches(attribute)) != *negate,
            Test::Text { operator, values } => {
                let AttributeValue::String(text) = attribute else { return false };
                values.iter().any(|value| match operator {
                    TextOperator::Contains => text.contains(value.as_str()),
                    TextOperator::StartsWith => text.starts_with(value.as_str()),
                    TextOperator::EndsWith => text.ends_with(value.as_str()),
                })
            }
            Test::Regex(patterns) => {
                let AttributeValue::String(text) = attribute else { return false };
                patterns.iter().any(|pattern| pattern.is_match(text))
            }
            Test::Numeric { comparison, values } => {
                let AttributeValue::Number(number) = attribute else { return false };
                values.iter().any(|value| number.partial_cmp(value).is_some_and(|order| comparison.holds(order)))
            }
            Test::Semver { comparison, values } => {
                let AttributeValue::String(text) = attribute else { return false };
                let Some(version) = Version::parse(text) else { return false };
                values.iter().filter_map(|value| Version::parse(value)).any(|value| comparison.holds(version.cmp(&value)))
            }
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledRule {
    conditions: Vec<CompiledCondition>,
    outcome: Outcome,
}

/// A flag's definition and state in one environment, ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledFlag {
    /// The flag.
    pub name: FlagName,
    /// Its type.
    pub flag_type: FlagType,
    /// The state's version this was compiled from.
    pub version: u64,
    /// Whether the kill switch is on.
    pub enabled: bool,
    off: Served,
    serve: Served,
    targets: HashMap<String, usize>,
    target_serves: Vec<Served>,
    rules: Vec<CompiledRule>,
    split: Option<CompiledSplit>,
    /// Murmur3 after `"<flag>/"`, so bucketing only hashes the targeting key.
    bucket_prefix: Murmur3,
    /// The distinct labels of everything this flag can serve, indexed by [`Evaluation::slot`].
    labels: Vec<String>,
}

impl CompiledFlag {
    /// Compiles a validated state; parts that could not have passed validation never match.
    pub fn compile(definition: &FlagDefinition, state: &FlagState) -> Self {
        let spec = &state.spec;
        let mut labels = Labels::default();
        let labels = &mut labels;
        let mut targets = HashMap::new();
        let mut target_serves = Vec::new();
        for target in &spec.targets {
            for key in &target.keys {
                targets.entry(key.clone()).or_insert(target_serves.len());
            }
            target_serves.push(served(definition, &target.serve, labels));
        }
        let rules = spec
            .rules
            .iter()
            .map(|rule| CompiledRule {
                conditions: rule.conditions.iter().map(compile_condition).collect(),
                outcome: match &rule.serve {
                    RuleServe::Value(value) => Outcome::Serve(served(definition, &Serve::Value(value.clone()), labels)),
                    RuleServe::Variant(name) => Outcome::Serve(served(definition, &Serve::Variant(name.clone()), labels)),
                    RuleServe::Split(split) => Outcome::Split(compile_split(definition, split, labels)),
                },
            })
            .collect();
        let off = served(definition, &Serve::Value(definition.off_value()), labels);
        let serve = served(definition, &spec.serve, labels);
        let split = spec.split.as_ref().map(|split| compile_split(definition, split, labels));
        Self {
            name: definition.name.clone(),
            flag_type: definition.flag_type,
            version: state.version,
            enabled: spec.enabled,
            off,
            serve,
            targets,
            target_serves,
            rules,
            split,
            bucket_prefix: prefix(definition.name.as_str()),
            labels: std::mem::take(&mut labels.0),
        }
    }

    /// The labels of everything this flag can serve (variant names, [`UNNAMED_LABEL`] for values without one),
    /// each once, in the order [`Evaluation::slot`] indexes them.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The labels this state can serve as it stands: only the off value's when the flag is disabled, otherwise what
    /// its targets, rules, split and served value can give (each once, in slot order).
    pub fn serving_labels(&self) -> Vec<&str> {
        let mut slots: Vec<u16> = Vec::new();
        if !self.enabled {
            slots.push(self.off.slot);
        } else {
            let splits = self.split.iter().chain(self.rules.iter().filter_map(|rule| match &rule.outcome {
                Outcome::Split(split) => Some(split),
                Outcome::Serve(_) => None,
            }));
            let served = self.target_serves.iter().chain(self.rules.iter().filter_map(|rule| match &rule.outcome {
                Outcome::Serve(served) => Some(served),
                Outcome::Split(_) => None,
            }));
            // Without a split at the fallthrough, the served value answers whoever no target or rule caught.
            let fallthrough = self.split.is_none().then_some(&self.serve);
            slots.extend(served.chain(fallthrough).map(|served| served.slot));
            slots.extend(splits.flat_map(|split| split.ranges.iter().map(|(_, served)| served.slot)));
        }
        slots.sort_unstable();
        slots.dedup();
        slots.into_iter().filter_map(|slot| self.labels.get(usize::from(slot)).map(String::as_str)).collect()
    }

    /// Whether evaluating this flag can depend on the context (targets, rules or a split).
    pub fn uses_context(&self) -> bool {
        self.enabled && (!self.targets.is_empty() || !self.rules.is_empty() || self.split.is_some())
    }

    /// What this flag serves to `context`.
    pub fn evaluate<C: EvaluationContext + ?Sized>(&self, context: &C) -> Evaluation<'_> {
        if !self.enabled {
            return answer(&self.off, Reason::Disabled, Matched::Disabled);
        }
        // The targeting key is looked up only when something needs it: most flags have no targets or split.
        if !self.targets.is_empty()
            && let Some(index) = context.targeting_key().and_then(|key| self.targets.get(key))
        {
            return answer(&self.target_serves[*index], Reason::TargetingMatch, Matched::Target);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.conditions.iter().all(|condition| condition.holds(context)) {
                return match &rule.outcome {
                    Outcome::Serve(served) => answer(served, Reason::TargetingMatch, Matched::Rule(index)),
                    Outcome::Split(split) => self.split_answer(split, context.targeting_key(), Matched::Rule(index)),
                };
            }
        }
        if let Some(split) = &self.split {
            return self.split_answer(split, context.targeting_key(), Matched::Split);
        }
        let reason = if self.targets.is_empty() && self.rules.is_empty() { Reason::Static } else { Reason::Default };
        answer(&self.serve, reason, Matched::Fallthrough)
    }

    fn split_answer<'a>(&'a self, split: &'a CompiledSplit, key: Option<&str>, matched: Matched) -> Evaluation<'a> {
        match key {
            Some(key) => answer(split.choose(bucket_after(&self.bucket_prefix, key)), Reason::Split, matched),
            None => Evaluation {
                value: &self.serve.value,
                variant: self.serve.variant.as_deref(),
                reason: Reason::Error,
                matched,
                error: Some(ErrorCode::TargetingKeyMissing),
                slot: self.serve.slot,
            },
        }
    }
}

fn answer(served: &Served, reason: Reason, matched: Matched) -> Evaluation<'_> {
    Evaluation { value: &served.value, variant: served.variant.as_deref(), reason, matched, error: None, slot: served.slot }
}

/// The labels met while compiling one flag.
#[derive(Default)]
struct Labels(Vec<String>);

impl Labels {
    fn slot(&mut self, variant: Option<&str>) -> u16 {
        let label = variant.unwrap_or(UNNAMED_LABEL);
        let index = self.0.iter().position(|known| known == label).unwrap_or_else(|| {
            self.0.push(label.to_owned());
            self.0.len() - 1
        });
        // A flag serves at most a few hundred distinct things: its variants, true/false, and one unnamed label.
        u16::try_from(index).unwrap_or(u16::MAX)
    }
}

fn served(definition: &FlagDefinition, serve: &Serve, labels: &mut Labels) -> Served {
    let (value, variant) = match serve {
        Serve::Variant(name) => (
            definition.variant(name).map(|variant| variant.value.clone()).unwrap_or_else(|| definition.default.clone()),
            Some(name.clone()),
        ),
        Serve::Value(value) => {
            let variant = match value {
                Value::Bool(flag) if definition.flag_type == FlagType::Boolean => Some(flag.to_string()),
                _ => definition.variants.iter().find(|variant| &variant.value == value).map(|variant| variant.name.clone()),
            };
            (value.clone(), variant)
        }
    };
    let slot = labels.slot(variant.as_deref());
    Served { value, variant, slot }
}

fn compile_split(definition: &FlagDefinition, split: &Split, labels: &mut Labels) -> CompiledSplit {
    let mut upper = 0;
    let ranges = split
        .buckets
        .iter()
        .filter(|bucket| bucket.weight > 0)
        .map(|bucket| {
            upper += bucket.weight;
            (upper.min(SPLIT_TOTAL), served(definition, &bucket.serve, labels))
        })
        .collect();
    CompiledSplit { ranges }
}

fn literal(value: &Value) -> Literal {
    match value {
        Value::String(text) => Literal::String(text.clone()),
        Value::Number(number) => number.as_f64().map(Literal::Number).unwrap_or(Literal::Never),
        Value::Bool(flag) => Literal::Bool(*flag),
        _ => Literal::Never,
    }
}

fn compile_condition(condition: &crate::Condition) -> CompiledCondition {
    let strings = || condition.values.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>();
    let numbers = || condition.values.iter().filter_map(Value::as_f64).collect::<Vec<_>>();
    let test = match condition.operator {
        Operator::Equals | Operator::In => Test::Equals { negate: false, values: condition.values.iter().map(literal).collect() },
        Operator::NotEquals | Operator::NotIn => Test::Equals { negate: true, values: condition.values.iter().map(literal).collect() },
        Operator::Contains => Test::Text { operator: TextOperator::Contains, values: strings() },
        Operator::StartsWith => Test::Text { operator: TextOperator::StartsWith, values: strings() },
        Operator::EndsWith => Test::Text { operator: TextOperator::EndsWith, values: strings() },
        Operator::Regex => Test::Regex(strings().iter().filter_map(|pattern| crate::state::compile_regex(pattern).ok()).collect()),
        Operator::Gt => Test::Numeric { comparison: Comparison::Greater, values: numbers() },
        Operator::Gte => Test::Numeric { comparison: Comparison::GreaterOrEqual, values: numbers() },
        Operator::Lt => Test::Numeric { comparison: Comparison::Less, values: numbers() },
        Operator::Lte => Test::Numeric { comparison: Comparison::LessOrEqual, values: numbers() },
        Operator::SemverEq => Test::Semver { comparison: Comparison::Equal, values: strings() },
        Operator::SemverGt => Test::Semver { comparison: Comparison::Greater, values: strings() },
        Operator::SemverGte => Test::Semver { comparison: Comparison::GreaterOrEqual, values: strings() },
        Operator::SemverLt => Test::Semver { comparison: Comparison::Less, values: strings() },
        Operator::SemverLte => Test::Semver { comparison: Comparison::LessOrEqual, values: strings() },
    };
    CompiledCondition { attribute: condition.attribute.clone(), test }
}
