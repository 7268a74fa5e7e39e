//! The override priority of DESIGN §1, layer by layer, on clients fed an in-memory snapshot.
//!
//! One number flag makes every layer visible by its value: the process variable says 1, `.env.local` 2, the stored
//! state serves 3, the registry default is 4 and the caller's fallback 5. Each row of the table switches layers on
//! and off (or makes them invalid) and states the documented answer.

use std::path::PathBuf;

use serde_json::{Value, json};
use vexil_sdk::{Context, ErrorKind, OverrideLayer, Reason, SdkError, Snapshot, SnapshotFlag, Source, Status, VexilClient};

const FLAG: &str = "backend.rag_max_results";
const VARIABLE: &str = "FF_BACKEND_RAG_MAX_RESULTS";

fn snapshot_flag(definition: Value, state: Option<Value>) -> SnapshotFlag {
    let state = state.map(|mut state| {
        state["version"] = json!(7);
        state["updated_by"] = json!("admin@localhost");
        state["updated_at"] = json!("2026-01-01T00:00:00Z");
        state
    });
    serde_json::from_value(json!({"definition": definition, "state": state})).expect("a valid snapshot flag")
}

fn snapshot(flags: Vec<SnapshotFlag>) -> Snapshot {
    Snapshot { version: 1, environment: "staging".to_owned(), revision: 42, flags }
}

/// The number flag with its registry default 4, and (when `stored`) a state serving 3.
fn number_flag(stored: bool) -> SnapshotFlag {
    snapshot_flag(json!({"name": FLAG, "type": "number", "default": 4}), stored.then(|| json!({"enabled": true, "serve": {"value": 3}})))
}

/// A client over `flags` with exactly these override sources.
fn client(flags: Vec<SnapshotFlag>, variable: Option<&str>, dotenv_line: Option<&str>) -> (VexilClient, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let dotenv: PathBuf = directory.path().join(".env.local");
    if let Some(line) = dotenv_line {
        std::fs::write(&dotenv, format!("# written by the test\n{line}\n")).unwrap();
    }
    let variables: Vec<(String, String)> = variable.map(|value| (VARIABLE.to_owned(), value.to_owned())).into_iter().collect();
    let client = VexilClient::offline(snapshot(flags)).environment_variables(variables).dotenv_path(&dotenv).build().unwrap();
    (client, directory)
}

/// `spec/overrides.json`: the table every SDK runs.
fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/overrides.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("spec/overrides.json is readable")).expect("spec/overrides.json is JSON")
}

fn source_named(name: &str) -> Source {
    [Source::EnvironmentVariable, Source::DotEnvLocal, Source::StoredState, Source::RegistryDefault, Source::Fallback]
        .into_iter()
        .find(|source| source.as_str() == name)
        .unwrap_or_else(|| panic!("spec/overrides.json names source `{name}`"))
}

fn layer_named(name: &str) -> OverrideLayer {
    match name {
        "environment_variable" => OverrideLayer::EnvironmentVariable,
        "dotenv_local" => OverrideLayer::DotEnvLocal,
        other => panic!("spec/overrides.json names layer `{other}`"),
    }
}

#[test]
fn every_combination_of_layers_gives_the_documented_answer() {
    use Source::*;
    let spec = spec();
    assert_eq!((spec["flag"].as_str(), spec["variable"].as_str()), (Some(FLAG), Some(VARIABLE)));
    let fallback = spec["fallback"].as_f64().unwrap();
    let rows = spec["rows"].as_array().unwrap();
    assert!(rows.len() >= 15, "{} rows", rows.len());
    for (row, case) in rows.iter().enumerate() {
        let (variable, dotenv) = (case["variable"].as_str(), case["dotenv"].as_str());
        let flags = match case["flag"].as_str().unwrap() {
            "stored" => vec![number_flag(true)],
            "definition_only" => vec![number_flag(false)],
            "unknown" => Vec::new(),
            other => panic!("row {row}: flag `{other}`"),
        };
        let expect = &case["expect"];
        let (value, source) = (expect["value"].as_f64().unwrap(), source_named(expect["source"].as_str().unwrap()));
        let ignored: Vec<OverrideLayer> =
            expect["ignored"].as_array().unwrap().iter().map(|layer| layer_named(layer.as_str().unwrap())).collect();
        let dotenv_line = dotenv.map(|value| format!("{VARIABLE}={value}"));
        let (client, _directory) = client(flags, variable, dotenv_line.as_deref());
        let context = Context::new("user-1");
        let details = client.number_details(FLAG, &context, fallback);
        let label = format!("row {row}: variable {variable:?}, .env.local {dotenv:?}, flag {}", case["flag"]);
        assert_eq!((details.value, details.source), (value, source), "{label}: {details:?}");
        assert_eq!(client.number_value(FLAG, &context, fallback), value, "{label}: the plain getter agrees");
        assert_eq!(details.reason.as_str(), expect["reason"].as_str().unwrap(), "{label}");
        assert_eq!(details.error.map(|error| error.kind), (source == Fallback).then_some(ErrorKind::FlagNotFound), "{label}");
        let expected_variable = matches!(source, EnvironmentVariable | DotEnvLocal).then_some(VARIABLE.to_owned());
        assert_eq!(details.override_variable, expected_variable, "{label}");
        assert_eq!(details.state_version, (source == StoredState).then_some(7), "{label}");
        let warnings = client.override_warnings();
        let reported: Vec<OverrideLayer> = warnings.iter().map(|warning| warning.layer).collect();
        assert_eq!(reported, ignored, "{label}: {warnings:?}");
        for warning in warnings {
            assert_eq!(warning.variable, VARIABLE, "{label}: the warning names the variable");
            assert!(warning.message.contains(VARIABLE) && warning.message.contains("number"), "{label}: {}", warning.message);
        }
    }
}

#[test]
fn a_known_flag_reports_its_invalid_override_as_soon_as_its_definition_arrives() {
    let (client, _directory) = client(vec![number_flag(true)], Some("twelve"), None);
    let warnings = client.override_warnings();
    assert_eq!(warnings.len(), 1, "reported before any getter ran: {warnings:?}");
    assert_eq!(warnings[0].value, "twelve");
    assert!(warnings[0].message.contains("`twelve` is not a finite number"), "{}", warnings[0].message);
    for _ in 0..3 {
        assert_eq!(client.number_value(FLAG, &Context::default(), 5.0), 3.0);
    }
    assert_eq!(client.override_warnings().len(), 1, "reported once, not on every evaluation");
}

#[test]
fn boolean_overrides_accept_the_documented_spellings_and_name_their_variant() {
    let flag = snapshot_flag(
        json!({"name": "ui.new_feature", "type": "boolean", "default": false}),
        Some(json!({"enabled": false, "serve": {"value": true}})),
    );
    let spec = spec();
    let spellings = |which: &str| -> Vec<(String, bool)> {
        spec["boolean_spellings"][which].as_array().unwrap().iter().map(|raw| (raw.as_str().unwrap().to_owned(), which == "true")).collect()
    };
    for (raw, expected) in spellings("true").into_iter().chain(spellings("false")) {
        let raw = raw.as_str();
        let directory = tempfile::tempdir().unwrap();
        let client = VexilClient::offline(snapshot(vec![flag.clone()]))
            .environment_variables([("FF_UI_NEW_FEATURE", raw)])
            .dotenv_path(directory.path().join("absent"))
            .build()
            .unwrap();
        let details = client.bool_details("ui.new_feature", &Context::default(), !expected);
        assert_eq!((details.value, details.source), (expected, Source::EnvironmentVariable), "{raw}");
        assert_eq!(details.variant.as_deref(), Some(if expected { "true" } else { "false" }), "{raw}");
    }
}

#[test]
fn an_override_of_a_multivariate_flag_names_the_variant_with_that_value() {
    let flag = snapshot_flag(
        json!({"name": "experiment.voice_v2", "type": "string", "default": "a",
               "variants": [{"name": "control", "value": "a"}, {"name": "treatment", "value": "b"}]}),
        Some(json!({"enabled": true, "serve": {"variant": "control"}})),
    );
    let directory = tempfile::tempdir().unwrap();
    let dotenv = directory.path().join(".env.local");
    std::fs::write(&dotenv, "FF_EXPERIMENT_VOICE_V2=b\n").unwrap();
    let client = VexilClient::offline(snapshot(vec![flag]))
        .environment_variables(Vec::<(String, String)>::new())
        .dotenv_path(&dotenv)
        .build()
        .unwrap();
    let details = client.string_details("experiment.voice_v2", &Context::default(), "z");
    assert_eq!((details.value.as_str(), details.source, details.variant.as_deref()), ("b", Source::DotEnvLocal, Some("treatment")));
}

#[test]
fn a_getter_of_the_wrong_type_returns_the_fallback_with_an_error_even_when_overridden() {
    let (client, _directory) = client(vec![number_flag(true)], Some("1"), None);
    let details = client.bool_details(FLAG, &Context::default(), true);
    assert_eq!((details.value, details.source, details.reason), (true, Source::Fallback, Reason::Error));
    let error = details.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::TypeMismatch);
    assert_eq!(error.message, "flag `backend.rag_max_results` is a number flag, read as boolean; the fallback was used");
    assert_eq!(client.string_value(FLAG, &Context::default(), "x"), "x");
    assert_eq!(client.json_value(FLAG, &Context::default(), json!({"x": 1})), json!({"x": 1}));
}

#[test]
fn an_unknown_flag_name_falls_back_with_flag_not_found() {
    let (client, _directory) = client(vec![number_flag(true)], None, None);
    let details = client.bool_details("not a flag name", &Context::default(), true);
    assert_eq!((details.value, details.source), (true, Source::Fallback));
    let error = details.error.unwrap();
    assert_eq!(error.kind, ErrorKind::FlagNotFound);
    assert_eq!(error.message, "environment `staging` has no flag `not a flag name`; the fallback was used");
}

#[test]
fn an_offline_client_is_stale_and_its_snapshot_round_trips_through_a_bootstrap_file() {
    let (client, directory) = client(vec![number_flag(true), number_flag(false)], None, None);
    assert_eq!(client.status(), Status::Stale);
    assert_eq!(client.revision(), Some(42));
    assert_eq!(client.environment(), "staging");
    let path = directory.path().join("bootstrap.json");
    client.save_bootstrap(&path).unwrap();
    let reread = Snapshot::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(Some(reread), client.snapshot());
    assert!(!directory.path().join("bootstrap.json.tmp").exists(), "the temporary file was renamed");
}

#[test]
fn a_snapshot_of_another_format_version_is_refused_with_what_to_do() {
    let error = Snapshot::from_json(r#"{"version": 2, "environment": "staging", "revision": 1, "flags": []}"#).unwrap_err();
    assert!(matches!(error, SdkError::InvalidSnapshot { .. }));
    assert_eq!(
        error.to_string(),
        "invalid snapshot: stream format version 2 is not supported; this vexil-sdk reads version 1: upgrade vexil-sdk"
    );
}

#[tokio::test]
async fn before_any_flags_arrive_an_unknown_flag_is_not_ready_but_overrides_already_answer() {
    // Port 9 (discard) on loopback: nothing listens, so the client stays `Connecting` with an empty cache.
    let directory = tempfile::tempdir().unwrap();
    let client = VexilClient::builder("http://127.0.0.1:9", "staging", "vxs_unused")
        .environment_variables([("FF_UI_NEW_FEATURE", "on")])
        .dotenv_path(directory.path().join("absent"))
        .build()
        .unwrap();
    let details = client.number_details(FLAG, &Context::default(), 5.0);
    assert_eq!((details.value, details.source), (5.0, Source::Fallback));
    assert_eq!(details.error.map(|error| error.kind), Some(ErrorKind::NotReady));
    let overridden = client.bool_details("ui.new_feature", &Context::default(), false);
    assert_eq!((overridden.value, overridden.source, overridden.reason), (true, Source::EnvironmentVariable, Reason::Static));
    assert!(client.revision().is_none());
    assert!(matches!(client.save_bootstrap(directory.path().join("b.json")), Err(SdkError::NothingToSave)));
    let waited = client.wait_ready(std::time::Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(waited, SdkError::Timeout { status: Status::Connecting, .. }), "{waited}");
}

#[test]
fn a_connected_client_needs_a_runtime_and_a_valid_url() {
    let error = VexilClient::builder("http://127.0.0.1:9", "staging", "k").without_dotenv().build().unwrap_err();
    assert!(matches!(error, SdkError::NoRuntime), "{error}");
    let error = VexilClient::builder("localhost:8080", "staging", "k").without_dotenv().build().unwrap_err();
    assert!(matches!(error, SdkError::InvalidServerUrl { .. }), "{error}");
}
