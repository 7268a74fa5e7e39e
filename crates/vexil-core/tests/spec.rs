//! Runs `spec/evaluation.json`: every case validates, compiles and evaluates to the expected answer.

use serde_json::{Map, Value};
use vexil_core::{CompiledFlag, FlagDefinition, FlagState};

#[test]
fn every_evaluation_case_gives_the_expected_answer() {
    let spec: Value = serde_json::from_str(include_str!("../../../spec/evaluation.json")).expect("the spec is JSON");
    let cases = spec["cases"].as_array().expect("cases");
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let definition: FlagDefinition =
            serde_json::from_value(case["flag"].clone()).unwrap_or_else(|error| panic!("{name}: flag: {error}"));
        definition.validate().unwrap_or_else(|error| panic!("{name}: definition: {}", error.message));
        let mut state_json = case["state"].clone();
        state_json["version"] = 1.into();
        state_json["updated_by"] = "spec".into();
        state_json["updated_at"] = "2025-12-04T10:30:00Z".into();
        let state: FlagState = serde_json::from_value(state_json).unwrap_or_else(|error| panic!("{name}: state: {error}"));
        state.spec.validate(&definition).unwrap_or_else(|error| panic!("{name}: state: {}", error.message));
        let compiled = CompiledFlag::compile(&definition, &state);
        let context: Map<String, Value> = case["context"].as_object().cloned().unwrap_or_default();
        let evaluation = compiled.evaluate(&context);
        let expect = &case["expect"];
        assert_eq!(evaluation.value, &expect["value"], "{name}: value");
        assert_eq!(evaluation.reason.as_str(), expect["reason"].as_str().unwrap(), "{name}: reason");
        assert_eq!(evaluation.variant, expect["variant"].as_str(), "{name}: variant");
        assert_eq!(evaluation.error.map(|error| error.as_str()), expect["error"].as_str(), "{name}: error");
        // What SDKs count evaluations under: the served variant's label, each label once per flag.
        let label = compiled.labels().get(usize::from(evaluation.slot)).map(String::as_str);
        assert_eq!(label, Some(evaluation.variant.unwrap_or(vexil_core::evaluation::UNNAMED_LABEL)), "{name}: label");
        let mut distinct = compiled.labels().to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), compiled.labels().len(), "{name}: labels {:?}", compiled.labels());
    }
}
