//! Resolution: the override priority of DESIGN §1 applied to one flag, and what the caller learns about it.
//!
//! First match wins:
//! 1. an `FF_<FLAG_NAME>` process variable, then the same variable in `.env.local` (values that do not parse are skipped);
//! 2. the flag's state in the environment, evaluated by vexil-core's engine;
//! 3. the flag's default from the definitions registry (when the server sent a definition without a state);
//! 4. the caller's fallback (unknown flag, no data yet, or a typed getter of the wrong type).
//!
//! Resolution borrows from the cache and only the `*_details` getters allocate, so the plain getters stay cheap.

use std::sync::Arc;

use serde_json::Value;
use vexil_core::evaluation::ErrorCode;
use vexil_core::{EvaluationContext, FlagType, Reason};

use crate::cache::{CacheOrigin, FlagCache, FlagEntry};
use crate::overrides::{OverrideLayer, Overrides, ResolvedOverride};

/// Which layer of the override priority answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An `FF_<FLAG_NAME>` variable of the process environment.
    EnvironmentVariable,
    /// An `FF_<FLAG_NAME>` line of `.env.local`.
    DotEnvLocal,
    /// The flag's state in this environment, evaluated by the engine.
    StoredState,
    /// The flag's default from the definitions registry.
    RegistryDefault,
    /// The fallback the caller passed.
    Fallback,
}

impl Source {
    /// `environment_variable`, `dotenv_local`, `stored_state`, `registry_default` or `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::EnvironmentVariable => "environment_variable",
            Source::DotEnvLocal => "dotenv_local",
            Source::StoredState => "stored_state",
            Source::RegistryDefault => "registry_default",
            Source::Fallback => "fallback",
        }
    }
}

impl From<OverrideLayer> for Source {
    fn from(layer: OverrideLayer) -> Self {
        match layer {
            OverrideLayer::EnvironmentVariable => Source::EnvironmentVariable,
            OverrideLayer::DotEnvLocal => Source::DotEnvLocal,
        }
    }
}

/// Why an evaluation has reason `ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No flags have been received yet (neither from the server nor from a bootstrap file).
    NotReady,
    /// The environment has no flag of that name.
    FlagNotFound,
    /// The flag exists with another type than the getter's.
    TypeMismatch,
    /// The flag's state splits by percentage and the context has no targeting key; the served value was returned.
    TargetingKeyMissing,
}

impl ErrorKind {
    /// `PROVIDER_NOT_READY`, `FLAG_NOT_FOUND`, `TYPE_MISMATCH` or `TARGETING_KEY_MISSING`, as OpenFeature spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotReady => "PROVIDER_NOT_READY",
            ErrorKind::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorKind::TypeMismatch => "TYPE_MISMATCH",
            ErrorKind::TargetingKeyMissing => "TARGETING_KEY_MISSING",
        }
    }
}

/// An evaluation that could not give the flag's real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The same, for people.
    pub message: String,
}

/// A flag's value with where it came from and why.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationDetails<T> {
    /// The flag asked for.
    pub flag: String,
    /// The value.
    pub value: T,
    /// The layer of the override priority that answered.
    pub source: Source,
    /// The engine's reason for stored state; `STATIC` for overrides, `DEFAULT` for the registry default, `ERROR` for the fallback.
    pub reason: Reason,
    /// The variant name of the value, when it has one (`true`/`false` for booleans).
    pub variant: Option<String>,
    /// Set when the reason is `ERROR`.
    pub error: Option<EvaluationError>,
    /// The `FF_` variable that answered, for the two override layers.
    pub override_variable: Option<String>,
    /// The version of the flag's state that answered, for stored state.
    pub state_version: Option<u64>,
}

/// Why resolution fell short; turned into an [`EvaluationError`] only by the `*_details` getters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    NotReady,
    FlagNotFound,
    TypeMismatch { actual: FlagType, asked: FlagType },
    TargetingKeyMissing,
}

impl Failure {
    fn into_error(self, flag: &str, environment: &str) -> EvaluationError {
        let (kind, message) = match self {
            Failure::NotReady => {
                (ErrorKind::NotReady, format!("no flags received yet, so flag `{flag}` has no value; the fallback was used"))
            }
            Failure::FlagNotFound => {
                (ErrorKind::FlagNotFound, format!("environment `{environment}` has no flag `{flag}`; the fallback was used"))
            }
            Failure::TypeMismatch { actual, asked } => (
                ErrorKind::TypeMismatch,
                format!("flag `{flag}` is a {} flag, read as {}; the fallback was used", actual.as_str(), asked.as_str()),
            ),
            Failure::TargetingKeyMissing => (
                ErrorKind::TargetingKeyMissing,
                format!("flag `{flag}` splits by percentage and the context has no targeting key; the served value was used"),
            ),
        };
        EvaluationError { kind, message }
    }
}

/// A resolution borrowing from the cache; `value: None` means the caller's fallback.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolution<'a> {
    pub value: Option<&'a Value>,
    pub source: Source,
    pub reason: Reason,
    pub variant: Option<&'a str>,
    pub failure: Option<Failure>,
    pub override_variable: Option<&'a str>,
    pub state_version: Option<u64>,
    /// For stored state: the served label's index in the entry's counters.
    pub slot: Option<u16>,
}

impl<'a> Resolution<'a> {
    fn fallback(failure: Failure) -> Self {
        Self {
            value: None,
            source: Source::Fallback,
            reason: Reason::Error,
            variant: None,
            failure: Some(failure),
            override_variable: None,
            state_version: None,
            slot: None,
        }
    }

    fn overridden(resolved: &'a ResolvedOverride, variant: Option<&'a str>) -> Self {
        Self {
            value: Some(&resolved.value),
            source: resolved.layer.into(),
            // An override does not depend on the context, which is what OpenFeature's STATIC says.
            reason: Reason::Static,
            variant,
            failure: None,
            override_variable: Some(&resolved.variable),
            state_version: None,
            slot: None,
        }
    }
}

/// Resolves `flag` as `asked` for `context`, counts the evaluation when the stored state answered, and hands the
/// answer to `answer`.
///
/// A callback rather than a return value because an override of a flag the server has not sent lives in the
/// override table's memo, not in the cache, and the resolution borrows from whichever holds it.
pub(crate) fn resolve<C, R>(
    cache: &FlagCache,
    overrides: &Overrides,
    flag: &str,
    asked: FlagType,
    context: &C,
    answer: impl FnOnce(Resolution<'_>) -> R,
) -> R
where
    C: EvaluationContext + ?Sized,
{
    let entry = cache.flags.get(flag).map(|entry| &**entry);
    resolve_entry(entry, cache.origin, overrides, flag, asked, context, |resolution| {
        if let (Some(slot), Some(entry)) = (resolution.slot, entry) {
            entry.counters.add_evaluations(slot, 1);
        }
        answer(resolution)
    })
}

/// [`resolve`] for an entry already looked up (`None`: the cache has no such flag), as flag handles keep it.
pub(crate) fn resolve_entry<C, R>(
    entry: Option<&FlagEntry>,
    origin: CacheOrigin,
    overrides: &Overrides,
    flag: &str,
    asked: FlagType,
    context: &C,
    answer: impl FnOnce(Resolution<'_>) -> R,
) -> R
where
    C: EvaluationContext + ?Sized,
{
    let Some(entry) = entry else {
        let unknown_override: Option<Arc<ResolvedOverride>> =
            if overrides.mentions(flag) { overrides.resolve_str(flag, asked) } else { None };
        if let Some(resolved) = &unknown_override {
            let variant = match &resolved.value {
                Value::Bool(true) => Some("true"),
                Value::Bool(false) => Some("false"),
                _ => None,
            };
            return answer(Resolution::overridden(resolved, variant));
        }
        let failure = if origin == CacheOrigin::Empty { Failure::NotReady } else { Failure::FlagNotFound };
        return answer(Resolution::fallback(failure));
    };
    let definition = &entry.definition;
    if definition.flag_type != asked {
        return answer(Resolution::fallback(Failure::TypeMismatch { actual: definition.flag_type, asked }));
    }
    if let Some(resolved) = &entry.override_value {
        return answer(Resolution::overridden(resolved, entry.override_variant.as_deref()));
    }
    let Some(compiled) = &entry.compiled else {
        return answer(Resolution {
            value: Some(&definition.default),
            source: Source::RegistryDefault,
            reason: Reason::Default,
            variant: None,
            failure: None,
            override_variable: None,
            state_version: None,
            slot: None,
        });
    };
    let evaluation = compiled.evaluate(context);
    answer(Resolution {
        value: Some(evaluation.value),
        source: Source::StoredState,
        reason: evaluation.reason,
        variant: evaluation.variant,
        failure: evaluation.error.map(|code| match code {
            ErrorCode::TargetingKeyMissing => Failure::TargetingKeyMissing,
        }),
        override_variable: None,
        state_version: Some(compiled.version),
        slot: Some(evaluation.slot),
    })
}

/// Counts an error for the label `entry`'s stored state serves `context`; `false` (nothing counted) when something
/// else answers (an override, the registry default).
pub(crate) fn report_error<C: EvaluationContext + ?Sized>(
    entry: &FlagEntry,
    origin: CacheOrigin,
    overrides: &Overrides,
    flag: &str,
    context: &C,
) -> bool {
    resolve_entry(Some(entry), origin, overrides, flag, entry.definition.flag_type, context, |resolution| {
        resolution.slot.map(|slot| entry.counters.add_error(slot)).is_some()
    })
}

/// The Rust types the typed getters return, with the flag type each reads: `bool`, `String`, `f64`, `serde_json::Value`.
pub trait FlagValue: Sized + sealed::Sealed {
    /// The flag type a getter of this Rust type reads.
    const FLAG_TYPE: FlagType;
    /// The value as this type; `None` cannot happen for validated flags of [`FlagValue::FLAG_TYPE`].
    fn from_json(value: &Value) -> Option<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for bool {}
    impl Sealed for String {}
    impl Sealed for f64 {}
    impl Sealed for serde_json::Value {}
}

impl FlagValue for bool {
    const FLAG_TYPE: FlagType = FlagType::Boolean;
    fn from_json(value: &Value) -> Option<Self> {
        value.as_bool()
    }
}

impl FlagValue for String {
    const FLAG_TYPE: FlagType = FlagType::String;
    fn from_json(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_owned)
    }
}

impl FlagValue for f64 {
    const FLAG_TYPE: FlagType = FlagType::Number;
    fn from_json(value: &Value) -> Option<Self> {
        value.as_f64()
    }
}

impl FlagValue for Value {
    const FLAG_TYPE: FlagType = FlagType::Json;
    fn from_json(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
}

/// Just the value of a resolution: the fallback when resolution fell back.
pub(crate) fn value_of<T: FlagValue>(resolution: Resolution<'_>, fallback: T) -> T {
    resolution.value.and_then(T::from_json).unwrap_or(fallback)
}

/// The whole answer of a resolution.
pub(crate) fn details_of<T: FlagValue>(resolution: Resolution<'_>, flag: &str, environment: &str, fallback: T) -> EvaluationDetails<T> {
    match resolution.value.map(T::from_json) {
        Some(Some(value)) => EvaluationDetails {
            flag: flag.to_owned(),
            value,
            source: resolution.source,
            reason: resolution.reason,
            variant: resolution.variant.map(str::to_owned),
            error: resolution.failure.map(|failure| failure.into_error(flag, environment)),
            override_variable: resolution.override_variable.map(str::to_owned),
            state_version: resolution.state_version,
        },
        // The cache holds only validated values of the flag's type, so a value that does not convert is a
        // broken invariant upstream; the caller still gets an honest answer rather than a panic.
        Some(None) => EvaluationDetails {
            flag: flag.to_owned(),
            value: fallback,
            source: Source::Fallback,
            reason: Reason::Error,
            variant: None,
            error: Some(EvaluationError {
                kind: ErrorKind::TypeMismatch,
                message: format!("flag `{flag}` holds a value that is not a {}; the fallback was used", T::FLAG_TYPE.as_str()),
            }),
            override_variable: None,
            state_version: None,
        },
        None => EvaluationDetails {
            flag: flag.to_owned(),
            value: fallback,
            source: Source::Fallback,
            reason: Reason::Error,
            variant: None,
            error: resolution.failure.map(|failure| failure.into_error(flag, environment)),
            override_variable: None,
            state_version: None,
        },
    }
}
