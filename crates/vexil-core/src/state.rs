//! A flag's state in one environment, and its validation against the flag's definition.
//!
//! The state is what a kill switch flips and what promotion copies: `enabled`, the value or variant
//! served, individual targets, ordered rules and an optional percentage split for everyone else.
//! Every state is validated when it is written, so evaluation never meets an invalid one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::check_text;
use crate::{FlagDefinition, ValidationError};

/// Split weights are in thousandths of a percent: all buckets of a split add up to this.
pub const SPLIT_TOTAL: u32 = 100_000;

/// The most bytes of values one state may serve, counting each target, rule, split bucket and the served value with
/// the size of what it resolves to. A compiled state holds each of them, so this bounds the memory (and the time) a
/// state costs every server that compiles it: a small body naming a large variant in many buckets is refused here,
/// before it is stored, rather than exhausting the server at each start.
pub const MAX_SERVED_BYTES: usize = 4 << 20;

/// The most regex patterns one state may hold, across its rules' conditions. With [`REGEX_SIZE_LIMIT`] this bounds
/// what compiling a state's regexes costs (at most 2 MiB and milliseconds): 400 patterns at the regex crate's default
/// limits took ~500 MiB and 9 s to compile, under the write lock and again at every start.
pub const MAX_REGEX_PATTERNS: usize = 32;

/// The most regex patterns one environment's states may hold together (at most 32 MiB of compiled regexes).
pub const MAX_ENVIRONMENT_REGEX_PATTERNS: usize = 512;

/// The compiled size one regex pattern may reach (the regex crate's `size_limit`): ample for patterns such as
/// `^.+@example\.com$`, refusing blow-ups such as `\w{1000}` before they are stored.
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// Compiles a regex pattern within [`REGEX_SIZE_LIMIT`]: the one place patterns are compiled, for validation and
/// for evaluation alike.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_SIZE_LIMIT).build()
}

/// What is served: a literal value of the flag's type, or one of its named variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Serve {
    /// A literal value, `{"value": true}`.
    Value(Value),
    /// A named variant of the definition, `{"variant": "treatment"}`.
    Variant(String),
}

/// Individual targeting: these targeting keys get this answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Targeting keys (user ids, tenant ids).
    pub keys: Vec<String>,
    /// What they are served.
    pub serve: Serve,
}

/// A comparison used in rule conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Gt,
    Gte,
    Lt,
    Lte,
    SemverEq,
    SemverGt,
    SemverGte,
    SemverLt,
    SemverLte,
}

impl Operator {
    fn is_numeric(self) -> bool {
        matches!(self, Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte)
    }

    fn is_semver(self) -> bool {
        matches!(self, Operator::SemverEq | Operator::SemverGt | Operator::SemverGte | Operator::SemverLt | Operator::SemverLte)
    }

    fn is_textual(self) -> bool {
        matches!(self, Operator::Contains | Operator::StartsWith | Operator::EndsWith | Operator::Regex)
    }
}

/// One condition on a context attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The context attribute compared (`country`, `plan`, `app_version`).
    pub attribute: String,
    /// How it is compared.
    pub operator: Operator,
    /// What it is compared with; the condition holds when any value matches (for `not_*`, when none does).
    pub values: Vec<Value>,
}

/// What a matching rule serves: a value, a variant or a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RuleServe {
    /// A literal value.
    Value(Value),
    /// A named variant.
    Variant(String),
    /// A percentage split over values or variants.
    Split(Split),
}

/// A targeting rule: when every condition holds, serve this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Why the rule exists, for people reading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// What the rule serves.
    pub serve: RuleServe,
}

/// A sticky percentage split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// The buckets; their weights add up to [`SPLIT_TOTAL`].
    pub buckets: Vec<SplitBucket>,
}

/// One share of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SplitBucket {
    /// What this share is served.
    pub serve: Serve,
    /// Its share, in thousandths of a percent (30 % is 30000).
    pub weight: u32,
}

/// A share in thousandths of a percent as people read it: 30000 → `30`, 12500 → `12.5`.
pub fn format_percent(thousandths: u64) -> String {
    let whole = thousandths / 1000;
    let fraction = thousandths % 1000;
    if fraction == 0 { whole.to_string() } else { format!("{whole}.{}", format!("{fraction:03}").trim_end_matches('0')) }
}

impl Split {
    /// A boolean percentage rollout: `percent` of targeting keys get `true`, the rest `false`.
    pub fn boolean_rollout(percent_thousandths: u32) -> Self {
        Self {
            buckets: vec![
                SplitBucket { serve: Serve::Value(Value::Bool(true)), weight: percent_thousandths },
                SplitBucket { serve: Serve::Value(Value::Bool(false)), weight: SPLIT_TOTAL - percent_thousandths },
            ],
        }
    }
}

/// The content of a flag's state in one environment: what promotion, copy and import carry over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// The kill switch: a disabled flag serves its off value whatever else is set.
    pub enabled: bool,
    /// What is served when enabled and nothing more specific applies.
    pub serve: Serve,
    /// Individual targets, checked first.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Ordered rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// The fallthrough split for everyone else; when set it replaces `serve` for contexts with a targeting key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

impl StateSpec {
    /// The state of a newly defined flag: disabled; once enabled a boolean serves `true`, any other type its default.
    pub fn initial(definition: &FlagDefinition) -> Self {
        let serve = match definition.flag_type {
            crate::FlagType::Boolean => Value::Bool(true),
            _ => definition.default.clone(),
        };
        Self { enabled: false, serve: Serve::Value(serve), targets: Vec::new(), rules: Vec::new(), split: None }
    }

    /// Checks the state against the flag's definition.
    pub fn validate(&self, definition: &FlagDefinition) -> Result<(), ValidationError> {
        self.validate_new(definition, &[])
    }

    /// Checks the state against the flag's definition as [`StateSpec::validate`] does, except that a regex pattern
    /// one of the `accepted` states already holds is not judged again for what a backtracking engine would make of
    /// it: `accepted` are states that were themselves accepted when written (the state this one replaces, the one a
    /// promote or copy takes it from, the earlier one a rollback restores), so a state stored before that check
    /// existed can still be enabled, re-saved by its flag's definition edits, promoted and rolled back to, while a
    /// write that adds such a pattern is refused. Every other check is made as always.
    pub fn validate_new(&self, definition: &FlagDefinition, accepted: &[&StateSpec]) -> Result<(), ValidationError> {
        let grandfathered: std::collections::HashSet<&str> =
            accepted.iter().flat_map(|state| state.regexes()).filter_map(Value::as_str).collect();
        check_serve(definition, "serve", &self.serve)?;
        let total_keys: usize = self.targets.iter().map(|target| target.keys.len()).sum();
        if total_keys > 10_000 {
            return Err(ValidationError::new("targets", format!("{total_keys} target keys given; at most 10000 are accepted")));
        }
        let mut seen = std::collections::HashSet::new();
        for (index, target) in self.targets.iter().enumerate() {
            let field = format!("targets[{index}]");
            if target.keys.is_empty() {
                return Err(ValidationError::new(&field, format!("{field} has no keys; list at least one targeting key")));
            }
            for key in &target.keys {
                if key.is_empty() {
                    return Err(ValidationError::new(&field, format!("{field} has an empty targeting key")));
                }
                check_text(&format!("{field}.keys"), key, 256, false)?;
                if !seen.insert(key.as_str()) {
                    return Err(ValidationError::new(&field, format!("targeting key `{key}` appears in more than one target")));
                }
            }
            check_serve(definition, &format!("{field}.serve"), &target.serve)?;
        }
        if self.rules.len() > 100 {
            return Err(ValidationError::new("rules", format!("{} rules given; at most 100 are accepted", self.rules.len())));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let field = format!("rules[{index}]");
            if let Some(description) = &rule.description {
                check_text(&format!("{field}.description"), description, 500, false)?;
            }
            if rule.conditions.is_empty() {
                return Err(ValidationError::new(&field, format!("{field} has no conditions; a rule needs at least one")));
            }
            if rule.conditions.len() > 20 {
                return Err(ValidationError::new(
                    &field,
                    format!("{field} has {} conditions; at most 20 are accepted", rule.conditions.len()),
                ));
            }
            for (position, condition) in rule.conditions.iter().enumerate() {
                check_condition(&format!("{field}.conditions[{position}]"), condition, &grandfathered)?;
            }
            let serve_field = format!("{field}.serve");
            match &rule.serve {
                RuleServe::Value(value) => check_serve(definition, &serve_field, &Serve::Value(value.clone()))?,
                RuleServe::Variant(variant) => check_serve(definition, &serve_field, &Serve::Variant(variant.clone()))?,
                RuleServe::Split(split) => check_split(definition, &serve_field, split)?,
            }
        }
        if let Some(split) = &self.split {
            check_split(definition, "split", split)?;
        }
        let patterns = self.regex_patterns();
        if patterns > MAX_REGEX_PATTERNS {
            return Err(ValidationError::new(
                "rules",
                format!(
                    "this state has {patterns} regex patterns in its conditions; at most {MAX_REGEX_PATTERNS} are accepted: use fewer, or one pattern with alternatives"
                ),
            ));
        }
        self.check_served_bytes(definition)
    }

    /// How many regex patterns the state's conditions hold.
    pub fn regex_patterns(&self) -> usize {
        self.rules
            .iter()
            .flat_map(|rule| &rule.conditions)
            .filter(|condition| condition.operator == Operator::Regex)
            .map(|condition| condition.values.len())
            .sum()
    }

    /// The values of the state's regex conditions.
    fn regexes(&self) -> impl Iterator<Item = &Value> {
        self.rules
            .iter()
            .flat_map(|rule| &rule.conditions)
            .filter(|condition| condition.operator == Operator::Regex)
            .flat_map(|condition| &condition.values)
    }

    /// Refuses a state whose outcomes together resolve to more than [`MAX_SERVED_BYTES`] of values.
    fn check_served_bytes(&self, definition: &FlagDefinition) -> Result<(), ValidationError> {
        let size = |value: &Value| serde_json::to_vec(value).map(|bytes| bytes.len()).unwrap_or(0);
        let mut values: Vec<&Value> = vec![&definition.default];
        let mut names: Vec<&str> = Vec::new();
        let mut serves: Vec<&Serve> = vec![&self.serve];
        serves.extend(self.targets.iter().map(|target| &target.serve));
        for rule in &self.rules {
            match &rule.serve {
                RuleServe::Value(value) => values.push(value),
                RuleServe::Variant(name) => names.push(name),
                RuleServe::Split(split) => serves.extend(split.buckets.iter().map(|bucket| &bucket.serve)),
            }
        }
        if let Some(split) = &self.split {
            serves.extend(split.buckets.iter().map(|bucket| &bucket.serve));
        }
        for serve in serves {
            match serve {
                Serve::Value(value) => values.push(value),
                Serve::Variant(name) => names.push(name),
            }
        }
        let outcomes = values.len() + names.len() - 1;
        let mut variant_sizes: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut total: usize = values.into_iter().map(size).sum();
        for name in names {
            let bytes = *variant_sizes.entry(name).or_insert_with(|| {
                definition.variant(name).map(|variant| size(&variant.value)).unwrap_or_else(|| size(&definition.default))
            });
            total = total.saturating_add(bytes);
        }
        if total > MAX_SERVED_BYTES {
            return Err(ValidationError::new(
                "state",
                format!(
                    "this state serves {total} bytes of values across its {outcomes} outcomes (targets, rules, split buckets); at most {MAX_SERVED_BYTES} are accepted: use fewer buckets or rules, or a smaller value"
                ),
            ));
        }
        Ok(())
    }

    /// The percentage of a boolean rollout (`true` share of the fallthrough split), in thousandths of a percent.
    pub fn rollout_thousandths(&self) -> Option<u32> {
        let split = self.split.as_ref()?;
        Some(split.buckets.iter().filter(|bucket| bucket.serve == Serve::Value(Value::Bool(true))).map(|bucket| bucket.weight).sum())
    }
}

/// A gradual rollout in progress: the percentage steps of a boolean flag, taken one by one on a schedule.
///
/// It lives in the flag's state, so a step is an ordinary versioned write (exactly one server takes it), it survives
/// restarts, and any change by a person ends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutPlan {
    /// The steps, in thousandths of a percent (10 % is 10000), ascending.
    pub steps: Vec<u32>,
    /// Seconds between steps.
    pub every_seconds: u64,
    /// The index of the next step to take.
    pub next_step: usize,
    /// When the next step is due (RFC 3339 UTC).
    pub next_at: String,
    /// Paused plans take no step.
    #[serde(default)]
    pub paused: bool,
    /// Who started it.
    pub started_by: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it started (RFC 3339 UTC): the guard compares error rates from then on.
    #[serde(default)]
    pub started_at: String,
    /// The state before the plan started: what the guard restores on a regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Box<StateSpec>>,
}

/// A flag's state in one environment: its content plus the version and who changed it when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagState {
    /// What is served.
    #[serde(flatten)]
    pub spec: StateSpec,
    /// Monotonic per flag and environment; 1 when the flag is created. Compared by `If-Match`.
    pub version: u64,
    /// The email of the last person (or `system:<component>`) to change it.
    pub updated_by: String,
    /// When it last changed (RFC 3339 UTC).
    pub updated_at: String,
    /// A rollout in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutPlan>,
}

fn check_serve(definition: &FlagDefinition, field: &str, serve: &Serve) -> Result<(), ValidationError> {
    match serve {
        Serve::Value(value) => definition.check_value(&format!("{field}.value"), value),
        Serve::Variant(name) => {
            if definition.variant(name).is_some() {
                Ok(())
            } else if definition.variants.is_empty() {
                Err(ValidationError::new(
                    field,
                    format!(
                        "flag `{}` has no variants, so `{}` cannot be served; serve a value instead",
                        definition.name,
                        crate::name::printable(name)
                    ),
                ))
            } else {
                Err(ValidationError::new(
                    field,
                    format!(
                        "variant `{}` is not defined for flag `{}`; defined: {}",
                        crate::name::printable(name),
                        definition.name,
                        definition.variants.iter().map(|variant| variant.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }
    }
}

fn check_split(definition: &FlagDefinition, field: &str, split: &Split) -> Result<(), ValidationError> {
    if split.buckets.is_empty() || split.buckets.len() > 100 {
        return Err(ValidationError::new(field, format!("{field} needs between 1 and 100 buckets")));
    }
    let mut total: u64 = 0;
    for (index, bucket) in split.buckets.iter().enumerate() {
        check_serve(definition, &format!("{field}.buckets[{index}].serve"), &bucket.serve)?;
        total += u64::from(bucket.weight);
    }
    if total != u64::from(SPLIT_TOTAL) {
        return Err(ValidationError::new(
            field,
            format!("{field} weights add up to {total}; they must add up to {SPLIT_TOTAL} (weights are thousandths of a percent)"),
        ));
    }
    Ok(())
}

/// Checks one condition; `grandfathered` are the regex patterns not judged for backtracking (see `validate_new`).
fn check_condition(field: &str, condition: &Condition, grandfathered: &std::collections::HashSet<&str>) -> Result<(), ValidationError> {
    let attribute = condition.attribute.as_bytes();
    let attribute_ok = !attribute.is_empty()
        && attribute.len() <= 64
        && (attribute[0].is_ascii_alphabetic() || attribute[0] == b'_')
        && attribute.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !attribute_ok {
        return Err(ValidationError::new(
            format!("{field}.attribute"),
            format!(
                "attribute `{}` is invalid; attributes are letters, digits, `_`, `.` and `-`, starting with a letter or `_` (at most 64)",
                crate::name::printable(&condition.attribute)
            ),
        ));
    }
    let values_field = format!("{field}.values");
    if condition.values.is_empty() || condition.values.len() > 1000 {
        return Err(ValidationError::new(&values_field, format!("{values_field} needs between 1 and 1000 values")));
    }
    for value in &condition.values {
        let operator = condition.operator;
        if operator.is_numeric() && !value.is_number() {
            return Err(ValidationError::new(
                &values_field,
                format!("{values_field} must be numbers for {operator:?}; got {}", crate::definition::describe_json(value)),
            ));
        }
        if operator.is_semver() || operator.is_textual() {
            let Some(text) = value.as_str() else {
                return Err(ValidationError::new(
                    &values_field,
                    format!("{values_field} must be strings for {operator:?}; got {}", crate::definition::describe_json(value)),
                ));
            };
            check_text(&values_field, text, 1000, false)?;
            if operator.is_semver() && crate::semver::Version::parse(text).is_none() {
                return Err(ValidationError::new(
                    &values_field,
                    format!("`{}` is not a semantic version such as 1.2.3", crate::name::printable(text)),
                ));
            }
            if operator == Operator::Regex {
                compile_regex(text).map_err(|error| {
                    let detail = error.to_string();
                    let detail = detail.lines().last().unwrap_or_default().trim().trim_start_matches("error: ");
                    ValidationError::new(&values_field, format!("regex `{}` does not compile: {detail}", crate::name::printable(text)))
                })?;
                if !grandfathered.contains(text) {
                    crate::backtracking::check(text).map_err(|refusal| backtracking_error(&values_field, text, &refusal))?;
                }
            }
        }
        if let Value::String(text) = value {
            check_text(&values_field, text, 1000, false)?;
        }
    }
    Ok(())
}

/// The refusal of a pattern a backtracking engine (the JavaScript SDK's) could take seconds on.
fn backtracking_error(field: &str, pattern: &str, refusal: &crate::backtracking::Backtracking) -> ValidationError {
    use crate::backtracking::{Cause, MAX_REPEATED_WAYS};
    let why = match refusal.cause {
        Cause::Empty => "which can match the empty text",
        Cause::Alternatives => "whose alternatives can start with the same character",
        Cause::Follows => "which can also match the character that comes after it",
        Cause::Restarts => "which can go on with a character it starts with, so where one repetition ends and the next begins is not fixed",
    };
    let count = match refusal.max {
        None => String::new(),
        Some(max) => format!(", up to {max} times: more than {MAX_REPEATED_WAYS} ways in all"),
    };
    ValidationError::new(
        field,
        format!(
            "regex `{}` can take seconds to fail on a long text in a backtracking engine such as the JavaScript SDK's: `{}` repeats `{}`, {why}{count}; \
             a part that varies, repeated by `*`, `+` or `{{n,}}` (or by `{{n,m}}` in more than {MAX_REPEATED_WAYS} ways), must split one way: \
             match no empty text, hold no alternatives that start alike, nothing in it that can also match what comes after it, and not go on \
             with a character it starts with (`(-[a-z]+)*` and `([a-z]+\\.)+` split one way): \
             write `a+` for `(a+)+`, `[\\w\\s]*` for `(\\w+\\s?)*`, `a(b|c)` for `ab|ac`",
            crate::name::printable(pattern),
            crate::name::printable(&refusal.repetition),
            crate::name::printable(&refusal.part),
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{FlagName, FlagType, Variant};

    fn boolean_flag() -> FlagDefinition {
        FlagDefinition::new(FlagName::parse("ui.new_feature").unwrap(), FlagType::Boolean, json!(false))
    }

    fn spec(value: serde_json::Value) -> StateSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_wire_form_reads_naturally() {
        let state = spec(json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [
            {"serve": {"value": true}, "weight": 30000}, {"serve": {"value": false}, "weight": 70000}]}}));
        assert!(state.validate(&boolean_flag()).is_ok());
        assert_eq!(state.rollout_thousandths(), Some(30000));
    }

    #[test]
    fn invalid_states_are_refused_with_the_field() {
        let flag = boolean_flag();
        let cases = [
            (json!({"enabled": true, "serve": {"value": "yes"}}), "serve.value"),
            (json!({"enabled": true, "serve": {"variant": "on"}}), "serve"),
            (json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [{"serve": {"value": true}, "weight": 5}]}}), "split"),
            (json!({"enabled": true, "serve": {"value": true}, "targets": [{"keys": [], "serve": {"value": true}}]}), "targets[0]"),
            (
                json!({"enabled": true, "serve": {"value": true}, "rules": [{"conditions": [{"attribute": "v", "operator": "regex", "values": ["("]}], "serve": {"value": true}}]}),
                "rules[0].conditions[0].values",
            ),
            (
                json!({"enabled": true, "serve": {"value": true}, "rules": [{"conditions": [{"attribute": "v", "operator": "semver_gt", "values": ["1.x"]}], "serve": {"value": true}}]}),
                "rules[0].conditions[0].values",
            ),
            (
                json!({"enabled": true, "serve": {"value": true}, "rules": [{"conditions": [{"attribute": "age", "operator": "gt", "values": ["3"]}], "serve": {"value": true}}]}),
                "rules[0].conditions[0].values",
            ),
        ];
        for (value, field) in cases {
            let error = spec(value.clone()).validate(&flag).unwrap_err();
            assert_eq!(error.field, field, "{value}: {}", error.message);
        }
    }

    /// A state whose second condition holds `pattern` after a pattern that is fine.
    fn regex_state(pattern: &str) -> StateSpec {
        spec(json!({"enabled": true, "serve": {"value": false}, "rules": [{"conditions": [
            {"attribute": "plan", "operator": "equals", "values": ["pro"]},
            {"attribute": "email", "operator": "regex", "values": ["@asimo\\.io$", pattern]}], "serve": {"value": true}}]}))
    }

    #[test]
    fn regexes_a_backtracking_engine_could_take_seconds_on_are_refused_saying_what_is_accepted() {
        let flag = boolean_flag();
        let error = regex_state("^(a+)+$").validate(&flag).unwrap_err();
        assert_eq!(error.field, "rules[0].conditions[1].values");
        assert_eq!(
            error.message,
            "regex `^(a+)+$` can take seconds to fail on a long text in a backtracking engine such as the JavaScript SDK's: \
             `(a+)+` repeats `a+`, which can go on with a character it starts with, so where one repetition ends and the next \
             begins is not fixed; a part that varies, repeated by `*`, `+` or `{n,}` (or by `{n,m}` in more than 1000 ways), \
             must split one way: match no empty text, hold no alternatives that start alike, nothing in it that can also match \
             what comes after it, and not go on with a character it starts with (`(-[a-z]+)*` and `([a-z]+\\.)+` split one way): \
             write `a+` for `(a+)+`, `[\\w\\s]*` for `(\\w+\\s?)*`, `a(b|c)` for `ab|ac`"
        );
        for (refused, says) in [
            ("^(a|ab)*$", "`(a|ab)*` repeats `a|ab`, whose alternatives can start with the same character; "),
            ("(a*)*", "`(a*)*` repeats `a*`, which can match the empty text; "),
            ("(x+x+)+", "`(x+x+)+` repeats `x+`, which can also match the character that comes after it; "),
            (r"^(\w+\s?)*$", r"`(\w+\s?)*` repeats `\w+\s?`, which can go on with a character it starts with, so "),
            (
                "^(a{1,10}){1,10}$",
                "`(a{1,10}){1,10}` repeats `a{1,10}`, which can go on with a character it starts with, so where one repetition \
                 ends and the next begins is not fixed, up to 10 times: more than 1000 ways in all; ",
            ),
        ] {
            let error = regex_state(refused).validate(&flag).unwrap_err();
            assert_eq!(error.field, "rules[0].conditions[1].values", "{refused}");
            assert!(error.message.contains(says), "{refused}: {}", error.message);
        }
        for refused in ["(a|a)*", "^(a+){3}$", "(?i)(a|A)+", "^(.+,)*$"] {
            let error = regex_state(refused).validate(&flag).unwrap_err();
            assert_eq!(error.field, "rules[0].conditions[1].values", "{refused}");
            assert!(error.message.contains("backtracking engine"), "{refused}: {}", error.message);
        }
        for accepted in [
            r"@asimo\.io$",
            r"^user-\d+$",
            r"^(foo|bar)-[a-z]+$",
            r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$",
            r"^v?\d+\.\d+(\.\d+)?$",
            r"^(\d{1,3}\.){3}\d{1,3}$",
            r"^(pro|team)+$",
            r"^[a-z]+(-[a-z]+)*$",
            r"^([a-z0-9-]+\.)+[a-z]{2,}$",
            r"^(\w+\s)*$",
            r"^[a-z0-9]+(\.[a-z0-9]+)*@example\.com$",
        ] {
            assert_eq!(regex_state(accepted).validate(&flag), Ok(()), "{accepted}");
        }
    }

    #[test]
    fn a_regex_the_replaced_or_source_state_already_holds_is_not_refused_again() {
        let flag = boolean_flag();
        let stored = regex_state("^(a+)+$");
        // Re-saved (enabled, edited around, promoted): the pattern is not new in the write.
        let enabled = StateSpec { enabled: true, ..stored.clone() };
        assert_eq!(enabled.validate_new(&flag, &[&stored]), Ok(()));
        assert_eq!(enabled.validate_new(&flag, &[&StateSpec::initial(&flag), &stored]), Ok(()));
        // Moved to another condition or rule, it is still the same pattern.
        let moved = spec(json!({"enabled": true, "serve": {"value": false}, "rules": [
            {"conditions": [{"attribute": "user_agent", "operator": "regex", "values": ["^(a+)+$"]}], "serve": {"value": true}}]}));
        assert_eq!(moved.validate_new(&flag, &[&stored]), Ok(()));
        // A new pattern in the same write is judged as always, and so is everything else.
        let added = spec(json!({"enabled": true, "serve": {"value": false}, "rules": [{"conditions": [
            {"attribute": "email", "operator": "regex", "values": ["^(a+)+$", "^(b+)+$"]}], "serve": {"value": true}}]}));
        let error = added.validate_new(&flag, &[&stored]).unwrap_err();
        assert!(error.message.starts_with("regex `^(b+)+$` can take seconds"), "{}", error.message);
        assert!(regex_state("^(a+)+$").validate(&flag).is_err(), "validate grandfathers nothing");
        assert!(regex_state("^(a+)+$").validate_new(&flag, &[]).is_err());
        let broken = regex_state("^(a+");
        assert!(broken.validate_new(&flag, &[&broken]).unwrap_err().message.contains("does not compile"));
        let wrong_serve = StateSpec { serve: Serve::Value(json!("yes")), ..stored.clone() };
        assert!(wrong_serve.validate_new(&flag, &[&stored]).is_err());
        // Only a regex condition's pattern counts: the same text as an `equals` value was never judged as a regex.
        let as_text = spec(json!({"enabled": true, "serve": {"value": false}, "rules": [{"conditions": [
            {"attribute": "email", "operator": "equals", "values": ["^(a+)+$"]}], "serve": {"value": true}}]}));
        assert!(regex_state("^(a+)+$").validate_new(&flag, &[&as_text]).is_err());
    }

    #[test]
    fn a_state_stored_with_such_a_regex_before_it_was_refused_still_compiles_and_matches() {
        // Only writes are validated; a stored state is compiled as it is, its pattern kept (the regex crate is linear).
        let state = FlagState {
            spec: regex_state("^(a+)+$"),
            version: 3,
            updated_by: "pm@asimo.io".into(),
            updated_at: "2025-12-04T10:30:00Z".into(),
            rollout: None,
        };
        let compiled = crate::CompiledFlag::compile(&boolean_flag(), &state);
        let hostile = crate::Context::new("u1").with("plan", "pro").with("email", format!("{}!", "a".repeat(10_000)));
        assert_eq!(compiled.evaluate(&hostile).value, &json!(false));
        assert_eq!(compiled.evaluate(&crate::Context::new("u1").with("plan", "pro").with("email", "aaaa")).value, &json!(true));
    }

    #[test]
    fn a_small_state_that_would_serve_a_large_variant_in_thousands_of_buckets_is_refused() {
        let mut flag = FlagDefinition::new(FlagName::parse("ops.flat").unwrap(), FlagType::Json, json!({}));
        flag.variants = vec![Variant { name: "b".into(), value: json!(vec![0; 16000]), description: None }];
        let split = |buckets: u32| {
            let weight = SPLIT_TOTAL / buckets;
            let mut weights = vec![weight; buckets as usize];
            weights[0] += SPLIT_TOTAL - weight * buckets;
            json!({"buckets": weights.iter().map(|weight| json!({"serve": {"variant": "b"}, "weight": weight})).collect::<Vec<_>>()})
        };
        let rules: Vec<serde_json::Value> = (0..60)
            .map(|index| json!({"conditions": [{"attribute": "a", "operator": "equals", "values": [format!("x{index}")]}], "serve": {"split": split(100)}}))
            .collect();
        let heavy = spec(json!({"enabled": true, "serve": {"variant": "b"}, "rules": rules, "split": split(100)}));
        let error = heavy.validate(&flag).unwrap_err();
        assert_eq!(error.field, "state");
        assert!(error.message.contains("outcomes") && error.message.contains("at most 4194304"), "{}", error.message);
        // The same variant served a few times is fine.
        assert!(spec(json!({"enabled": true, "serve": {"variant": "b"}, "split": split(10)})).validate(&flag).is_ok());
    }

    #[test]
    fn variants_are_served_by_name() {
        let mut flag = FlagDefinition::new(FlagName::parse("experiment.voice_v2").unwrap(), FlagType::String, json!("a"));
        flag.variants = vec![Variant { name: "control".into(), value: json!("a"), description: None }];
        assert!(spec(json!({"enabled": true, "serve": {"variant": "control"}})).validate(&flag).is_ok());
        let error = spec(json!({"enabled": true, "serve": {"variant": "treatment"}})).validate(&flag).unwrap_err();
        assert!(error.message.contains("defined: control"), "{}", error.message);
    }
}
