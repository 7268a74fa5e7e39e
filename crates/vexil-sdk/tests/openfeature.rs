//! The OpenFeature provider, used the way an application uses it: through the `open-feature` crate's API and client.

use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadataValue, OpenFeature, StructValue, Value};
use serde_json::json;
use vexil_sdk::{Snapshot, VexilClient, VexilProvider};

fn snapshot() -> Snapshot {
    let flag = |definition: serde_json::Value, state: serde_json::Value| {
        let mut state = state;
        state["version"] = json!(3);
        state["updated_by"] = json!("admin@localhost");
        state["updated_at"] = json!("2026-01-01T00:00:00Z");
        json!({"definition": definition, "state": state})
    };
    serde_json::from_value(json!({
        "version": 1, "environment": "staging", "revision": 9,
        "flags": [
            flag(json!({"name": "ui.new_feature", "type": "boolean", "default": false}),
                 json!({"enabled": true, "serve": {"value": false},
                        "rules": [{"conditions": [{"attribute": "plan", "operator": "equals", "values": ["pro"]}], "serve": {"value": true}}]})),
            flag(json!({"name": "backend.rag_max_results", "type": "number", "default": 10}),
                 json!({"enabled": true, "serve": {"value": 25}})),
            flag(json!({"name": "backend.temperature", "type": "number", "default": 0.5}),
                 json!({"enabled": true, "serve": {"value": 0.7}})),
            flag(json!({"name": "ui.theme", "type": "string", "default": "light",
                        "variants": [{"name": "light", "value": "light"}, {"name": "dark", "value": "dark"}]}),
                 json!({"enabled": true, "serve": {"variant": "dark"}})),
            flag(json!({"name": "ui.banner", "type": "json", "default": {}}),
                 json!({"enabled": true, "serve": {"value": {"text": "hello", "count": 2, "tags": ["a"]}}})),
            flag(json!({"name": "experiment.voice_v2", "type": "boolean", "default": false}),
                 json!({"enabled": true, "serve": {"value": false},
                        "split": {"buckets": [{"serve": {"value": true}, "weight": 50000}, {"serve": {"value": false}, "weight": 50000}]}})),
        ],
    }))
    .unwrap()
}

#[tokio::test]
async fn the_provider_answers_through_the_open_feature_client() {
    let client = VexilClient::offline(snapshot()).environment_variables([("FF_UI_THEME", "light")]).without_dotenv().build().unwrap();
    let provider = VexilProvider::new(client);
    assert_eq!(provider.metadata().name, "vexil");
    assert_eq!(provider.status(), ProviderStatus::STALE, "an offline snapshot is stale by definition");

    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(provider).await;
    let openfeature = api.create_client();
    drop(api);

    let pro = EvaluationContext::default().with_targeting_key("user-1").with_custom_field("plan", "pro");
    let free = EvaluationContext::default().with_targeting_key("user-2").with_custom_field("plan", "free");
    let details = openfeature.get_bool_details("ui.new_feature", Some(&pro), None).await.unwrap();
    assert_eq!((details.value, details.reason, details.variant.as_deref()), (true, Some(EvaluationReason::TargetingMatch), Some("true")));
    assert_eq!(details.flag_metadata.values.get("source"), Some(&FlagMetadataValue::String("stored_state".into())));
    assert_eq!(details.flag_metadata.values.get("state_version"), Some(&FlagMetadataValue::Int(3)));
    let details = openfeature.get_bool_details("ui.new_feature", Some(&free), None).await.unwrap();
    assert_eq!((details.value, details.reason), (false, Some(EvaluationReason::Default)));

    assert_eq!(openfeature.get_int_value("backend.rag_max_results", None, None).await.unwrap(), 25);
    assert_eq!(openfeature.get_float_value("backend.temperature", None, None).await.unwrap(), 0.7);
    let error = openfeature.get_int_value("backend.temperature", None, None).await.unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TypeMismatch, "0.7 is not an integer");

    // The override priority applies through the provider too: FF_UI_THEME=light beats the stored `dark`.
    let theme = openfeature.get_string_details("ui.theme", None, None).await.unwrap();
    assert_eq!((theme.value.as_str(), theme.reason, theme.variant.as_deref()), ("light", Some(EvaluationReason::Static), Some("light")));
    assert_eq!(theme.flag_metadata.values.get("source"), Some(&FlagMetadataValue::String("environment_variable".into())));
    assert_eq!(theme.flag_metadata.values.get("override_variable"), Some(&FlagMetadataValue::String("FF_UI_THEME".into())));

    let banner: StructValue = openfeature.get_struct_value("ui.banner", None, None).await.unwrap();
    assert_eq!(banner.fields.get("text"), Some(&Value::String("hello".into())));
    assert_eq!(banner.fields.get("count"), Some(&Value::Int(2)));
    assert_eq!(banner.fields.get("tags"), Some(&Value::Array(vec![Value::String("a".into())])));

    let error = openfeature.get_bool_value("ui.absent", None, None).await.unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    let error = openfeature.get_string_value("ui.new_feature", None, None).await.unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TypeMismatch);
    let error = openfeature.get_bool_value("experiment.voice_v2", Some(&EvaluationContext::default()), None).await.unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TargetingKeyMissing, "a split needs a targeting key");
    let split = openfeature.get_bool_details("experiment.voice_v2", Some(&pro), None).await.unwrap();
    assert_eq!(split.reason, Some(EvaluationReason::Split));
}
