//! The structural difference between two states: what promotion, copy and import show before they act.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StateSpec;

/// One field that differs, with its value on each side (`null` where it is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    /// `enabled`, `serve`, `split`, `targets`, `rules[1]`, …
    pub path: String,
    /// The value now.
    pub before: Value,
    /// The value after the change.
    pub after: Value,
}

/// Lists what changes when `before` becomes `after`; empty when they serve the same.
///
/// Rules are compared one by one so that a promotion that edits one rule of ten shows one line.
pub fn diff_specs(before: Option<&StateSpec>, after: &StateSpec) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut compare = |path: String, before: Value, after: Value| {
        if before != after {
            changes.push(FieldChange { path, before, after });
        }
    };
    let before_enabled = before.map(|spec| Value::Bool(spec.enabled)).unwrap_or(Value::Null);
    compare("enabled".into(), before_enabled, Value::Bool(after.enabled));
    compare("serve".into(), before.map(|spec| to_json(&spec.serve)).unwrap_or(Value::Null), to_json(&after.serve));
    compare("targets".into(), before.map(|spec| to_json(&spec.targets)).unwrap_or(Value::Null), to_json(&after.targets));
    let before_rules = before.map(|spec| spec.rules.as_slice()).unwrap_or(&[]);
    for index in 0..before_rules.len().max(after.rules.len()) {
        compare(
            format!("rules[{index}]"),
            before_rules.get(index).map(to_json).unwrap_or(Value::Null),
            after.rules.get(index).map(to_json).unwrap_or(Value::Null),
        );
    }
    compare(
        "split".into(),
        before.and_then(|spec| spec.split.as_ref()).map(to_json).unwrap_or(Value::Null),
        after.split.as_ref().map(to_json).unwrap_or(Value::Null),
    );
    changes
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> StateSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn identical_states_have_no_diff() {
        let state = spec(json!({"enabled": true, "serve": {"value": true}}));
        assert!(diff_specs(Some(&state), &state).is_empty());
    }

    #[test]
    fn changed_fields_are_listed_with_both_sides() {
        let before = spec(json!({"enabled": false, "serve": {"value": true}}));
        let after = spec(json!({"enabled": true, "serve": {"value": true}, "rules": [
            {"conditions": [{"attribute": "plan", "operator": "equals", "values": ["pro"]}], "serve": {"value": true}}]}));
        let changes = diff_specs(Some(&before), &after);
        let paths: Vec<_> = changes.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths, ["enabled", "rules[0]"]);
        assert_eq!(changes[0].before, json!(false));
        assert_eq!(changes[1].before, Value::Null);
    }
}
