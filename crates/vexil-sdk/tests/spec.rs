//! Runs `spec/evaluation.json` through the SDK's typed getters: the SDK answers exactly as the engine specifies.
//!
//! Each case becomes a one-flag snapshot served by an offline client with no overrides, and is asked through the
//! getter of its flag's type; value, reason, variant and error must be the spec's, and the layer the stored state.

use serde_json::{Map, Value, json};
use vexil_sdk::{EvaluationDetails, FlagType, Snapshot, Source, VexilClient};

#[test]
fn every_evaluation_case_gives_the_expected_answer_through_the_sdk() {
    let spec: Value = serde_json::from_str(include_str!("../../../spec/evaluation.json")).expect("the spec is JSON");
    let cases = spec["cases"].as_array().expect("cases");
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut state = case["state"].clone();
        state["version"] = json!(1);
        state["updated_by"] = json!("spec");
        state["updated_at"] = json!("2025-12-04T10:30:00Z");
        let snapshot: Snapshot = serde_json::from_value(json!({
            "version": 1, "environment": "staging", "revision": 1,
            "flags": [{"definition": case["flag"], "state": state}],
        }))
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        let client = VexilClient::offline(snapshot).environment_variables(Vec::<(String, String)>::new()).without_dotenv().build().unwrap();
        let context: Map<String, Value> = case["context"].as_object().cloned().unwrap_or_default();
        let flag = case["flag"]["name"].as_str().unwrap();
        let flag_type = FlagType::parse(case["flag"]["type"].as_str().unwrap()).unwrap();
        let details: EvaluationDetails<Value> = match flag_type {
            FlagType::Boolean => widen(client.bool_details(flag, &context, false)),
            FlagType::String => widen(client.string_details(flag, &context, "")),
            FlagType::Number => widen(client.number_details(flag, &context, 0.0)),
            FlagType::Json => client.json_details(flag, &context, Value::Null),
        };
        let expect = &case["expect"];
        let expected_value = &expect["value"];
        match flag_type {
            // Number getters return f64; compare as numbers so `25` and `25.0` agree.
            FlagType::Number => assert_eq!(details.value.as_f64(), expected_value.as_f64(), "{name}: value"),
            _ => assert_eq!(&details.value, expected_value, "{name}: value"),
        }
        assert_eq!(details.source, Source::StoredState, "{name}: source");
        assert_eq!(details.reason.as_str(), expect["reason"].as_str().unwrap(), "{name}: reason");
        assert_eq!(details.variant.as_deref(), expect["variant"].as_str(), "{name}: variant");
        assert_eq!(details.error.map(|error| error.kind.as_str()), expect["error"].as_str(), "{name}: error");
    }
}

fn widen<T: Into<Value>>(details: EvaluationDetails<T>) -> EvaluationDetails<Value> {
    EvaluationDetails {
        flag: details.flag,
        value: details.value.into(),
        source: details.source,
        reason: details.reason,
        variant: details.variant,
        error: details.error,
        override_variable: details.override_variable,
        state_version: details.state_version,
    }
}
