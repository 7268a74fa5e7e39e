//! An OpenFeature provider over a [`VexilClient`], for applications written against the `open-feature` crate.
//!
//! Resolution goes through the client, so the override priority, the engine and the cache are the same as for the
//! client's own getters. OpenFeature's five resolvers map onto Vexil's four types: `bool` → boolean, `string` →
//! string, `float` → number, `int` → number holding an integer, `struct` → JSON holding an object. Vexil's reasons
//! map one to one; a resolution that fell back becomes an OpenFeature error (so the OpenFeature client returns the
//! application's default and reports the code), and the layer that answered is in the flag metadata as `source`.

use std::time::Duration;

use open_feature::provider::{FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails};
use open_feature::{
    EvaluationContext as OpenFeatureContext, EvaluationContextFieldValue, EvaluationError as OpenFeatureError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue, Value as OpenFeatureValue,
};
use serde_json::Value;
use vexil_core::evaluation::AttributeValue;
use vexil_core::{EvaluationContext, Reason};

use crate::{ErrorKind, EvaluationDetails, Status, VexilClient};

/// Vexil as an OpenFeature provider.
///
/// ```no_run
/// # async fn example() -> Result<(), vexil_sdk::SdkError> {
/// let client = vexil_sdk::VexilClient::builder("http://localhost:8080", "staging", "vxs_…").build()?;
/// let mut api = open_feature::OpenFeature::singleton_mut().await;
/// api.set_provider(vexil_sdk::VexilProvider::new(client)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct VexilProvider {
    client: VexilClient,
    metadata: ProviderMetadata,
    initialization_timeout: Duration,
}

impl VexilProvider {
    /// A provider answering from `client`. OpenFeature's `initialize` waits up to 5 s for the client's flags.
    pub fn new(client: VexilClient) -> Self {
        Self { client, metadata: ProviderMetadata::new("vexil"), initialization_timeout: Duration::from_secs(5) }
    }

    /// How long `initialize` waits for flags (from the server or a bootstrap file) before giving up.
    pub fn initialization_timeout(mut self, timeout: Duration) -> Self {
        self.initialization_timeout = timeout;
        self
    }

    /// The client behind the provider.
    pub fn client(&self) -> &VexilClient {
        &self.client
    }
}

/// Reads an OpenFeature context the way the engine reads contexts.
struct ContextAdapter<'a>(&'a OpenFeatureContext);

impl EvaluationContext for ContextAdapter<'_> {
    fn targeting_key(&self) -> Option<&str> {
        self.0.targeting_key.as_deref()
    }

    fn attribute(&self, name: &str) -> Option<AttributeValue<'_>> {
        if name == "targetingKey" {
            return self.targeting_key().map(AttributeValue::String);
        }
        // Date-times and opaque structures have no counterpart in rule conditions: they count as absent.
        match self.0.custom_fields.get(name)? {
            EvaluationContextFieldValue::Bool(flag) => Some(AttributeValue::Bool(*flag)),
            EvaluationContextFieldValue::Int(number) => Some(AttributeValue::Number(*number as f64)),
            EvaluationContextFieldValue::Float(number) => Some(AttributeValue::Number(*number)),
            EvaluationContextFieldValue::String(text) => Some(AttributeValue::String(text)),
            EvaluationContextFieldValue::DateTime(_) | EvaluationContextFieldValue::Struct(_) => None,
        }
    }
}

fn reason_of(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::Default => EvaluationReason::Default,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Error => EvaluationReason::Error,
    }
}

fn error_code_of(kind: ErrorKind) -> EvaluationErrorCode {
    match kind {
        ErrorKind::NotReady => EvaluationErrorCode::ProviderNotReady,
        ErrorKind::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorKind::TypeMismatch => EvaluationErrorCode::TypeMismatch,
        ErrorKind::TargetingKeyMissing => EvaluationErrorCode::TargetingKeyMissing,
    }
}

fn type_mismatch(message: String) -> OpenFeatureError {
    OpenFeatureError::builder().code(EvaluationErrorCode::TypeMismatch).message(message).build()
}

/// Turns Vexil's details into OpenFeature's, converting the value with `convert`.
fn resolution<T, U>(
    details: EvaluationDetails<T>,
    convert: impl FnOnce(T) -> EvaluationResult<U>,
) -> EvaluationResult<ResolutionDetails<U>> {
    if let Some(error) = details.error {
        return Err(OpenFeatureError::builder().code(error_code_of(error.kind)).message(error.message).build());
    }
    let mut metadata = FlagMetadata::default().with_value("source", details.source.as_str());
    if let Some(variable) = details.override_variable {
        metadata.add_value("override_variable", variable);
    }
    if let Some(version) = details.state_version {
        // OpenFeature metadata integers are i64; a state version never comes near the limit.
        metadata.add_value("state_version", i64::try_from(version).unwrap_or(i64::MAX));
    }
    Ok(ResolutionDetails {
        value: convert(details.value)?,
        variant: details.variant,
        reason: Some(reason_of(details.reason)),
        flag_metadata: Some(metadata),
    })
}

/// JSON to OpenFeature's value; `null` has no counterpart.
fn open_feature_value(value: Value) -> Result<OpenFeatureValue, String> {
    Ok(match value {
        Value::Null => return Err("null has no OpenFeature value".to_owned()),
        Value::Bool(flag) => OpenFeatureValue::Bool(flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => OpenFeatureValue::Int(integer),
            None => OpenFeatureValue::Float(number.as_f64().ok_or("a number out of range")?),
        },
        Value::String(text) => OpenFeatureValue::String(text),
        Value::Array(items) => OpenFeatureValue::Array(items.into_iter().map(open_feature_value).collect::<Result<_, _>>()?),
        Value::Object(fields) => OpenFeatureValue::Struct(struct_value(fields)?),
    })
}

fn struct_value(fields: serde_json::Map<String, Value>) -> Result<StructValue, String> {
    let mut result = StructValue::default();
    for (name, value) in fields {
        result.add_field(name, open_feature_value(value)?);
    }
    Ok(result)
}

#[open_feature::async_trait]
impl FeatureProvider for VexilProvider {
    async fn initialize(&mut self, _context: &OpenFeatureContext) {
        // Not ready in time is not fatal: the client keeps connecting and `status` says where it stands.
        if let Err(error) = self.client.wait_for_flags(self.initialization_timeout).await {
            tracing::warn!("Vexil OpenFeature provider: {error}");
        }
    }

    fn status(&self) -> ProviderStatus {
        match self.client.status() {
            Status::Connecting => ProviderStatus::NotReady,
            Status::Ready => ProviderStatus::Ready,
            Status::Stale => ProviderStatus::STALE,
            Status::Closed => ProviderStatus::Error,
        }
    }

    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(&self, flag_key: &str, context: &OpenFeatureContext) -> EvaluationResult<ResolutionDetails<bool>> {
        resolution(self.client.bool_details(flag_key, &ContextAdapter(context), false), Ok)
    }

    async fn resolve_int_value(&self, flag_key: &str, context: &OpenFeatureContext) -> EvaluationResult<ResolutionDetails<i64>> {
        resolution(self.client.number_details(flag_key, &ContextAdapter(context), 0.0), |number| {
            let integral = number.fract() == 0.0 && number >= i64::MIN as f64 && number < i64::MAX as f64;
            if integral {
                Ok(number as i64)
            } else {
                Err(type_mismatch(format!("flag `{flag_key}` is {number}, not an integer; resolve it as a float")))
            }
        })
    }

    async fn resolve_float_value(&self, flag_key: &str, context: &OpenFeatureContext) -> EvaluationResult<ResolutionDetails<f64>> {
        resolution(self.client.number_details(flag_key, &ContextAdapter(context), 0.0), Ok)
    }

    async fn resolve_string_value(&self, flag_key: &str, context: &OpenFeatureContext) -> EvaluationResult<ResolutionDetails<String>> {
        resolution(self.client.string_details(flag_key, &ContextAdapter(context), ""), Ok)
    }

    async fn resolve_struct_value(&self, flag_key: &str, context: &OpenFeatureContext) -> EvaluationResult<ResolutionDetails<StructValue>> {
        resolution(self.client.json_details(flag_key, &ContextAdapter(context), Value::Null), |value| match value {
            Value::Object(fields) => struct_value(fields).map_err(type_mismatch),
            other => Err(type_mismatch(format!("flag `{flag_key}` holds {other}, not a JSON object; OpenFeature structures are objects"))),
        })
    }
}
