//! Layer 1 of the override priority: `FF_<FLAG_NAME>` process variables, then `.env.local`.
//!
//! Both sources are read once, when the client is built, and never written: the SDK reads the process
//! environment with [`std::env::vars_os`] and parses `.env.local` itself, so an application's environment is
//! exactly what it was started with. A process variable wins over the same variable in `.env.local`, the way
//! `FF_UI_NEW_FEATURE=false cargo run` is expected to beat a file a developer forgot about.
//!
//! Values are kept raw until the flag's type is known (from the snapshot, or from the typed getter for a flag
//! the server has not sent), then parsed with vexil-core's [`parse_override`]. A value that does not parse is
//! reported once — a `tracing` warning naming the variable and an [`OverrideWarning`] the application can read —
//! and that layer is skipped, never guessed; the next layer answers.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use vexil_core::overrides::{PREFIX, flag_name_from_env_var, parse_dotenv, parse_override};
use vexil_core::{FlagName, FlagType};

use crate::SdkError;

/// Which override source a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverrideLayer {
    /// A variable of the process environment.
    EnvironmentVariable,
    /// A line of `.env.local`.
    DotEnvLocal,
}

impl OverrideLayer {
    /// `environment variable` or `.env.local`, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            OverrideLayer::EnvironmentVariable => "environment variable",
            OverrideLayer::DotEnvLocal => ".env.local",
        }
    }
}

/// An override that was reported and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideWarning {
    /// The variable, `FF_UI_NEW_FEATURE`.
    pub variable: String,
    /// Where it was set.
    pub layer: OverrideLayer,
    /// The value as written.
    pub value: String,
    /// Why it was ignored.
    pub message: String,
}

/// A raw override value and where it came from.
#[derive(Debug, Clone)]
struct RawOverride {
    variable: String,
    layer: OverrideLayer,
    value: String,
}

/// An override that parsed for the flag's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResolvedOverride {
    pub layer: OverrideLayer,
    pub variable: String,
    pub value: Value,
}

/// Parsed answers per flag name and type.
type ResolvedMemo = HashMap<(String, FlagType), Option<Arc<ResolvedOverride>>>;

/// The override sources of one client.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    /// Per flag name, the raw values in priority order (process variable first).
    by_flag: HashMap<String, Vec<RawOverride>>,
    /// Parsed answers per flag and type, so each value is parsed (and reported) once.
    resolved: Mutex<ResolvedMemo>,
    warnings: Mutex<Vec<OverrideWarning>>,
}

impl Overrides {
    /// Reads the override sources: `variables` (the process environment, or what the application passed instead)
    /// and the `.env.local` file at `dotenv`, if given and present.
    pub(crate) fn load(variables: Vec<(OsString, OsString)>, dotenv: Option<&Path>) -> Result<Self, SdkError> {
        let dotenv_pairs = match dotenv {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => parse_dotenv(&text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(source) => return Err(SdkError::DotEnv { path: PathBuf::from(path), source }),
            },
            None => Vec::new(),
        };
        let mut warnings = Vec::new();
        let mut by_flag: HashMap<String, Vec<RawOverride>> = HashMap::new();
        for (name, value) in variables {
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(PREFIX) {
                continue;
            }
            match value.into_string() {
                Ok(value) => add(&mut by_flag, &mut warnings, name.to_owned(), value, OverrideLayer::EnvironmentVariable),
                Err(value) => {
                    let value = value.to_string_lossy().into_owned();
                    warnings.push(OverrideWarning {
                        message: format!("{name} (environment variable) is not valid UTF-8 and is ignored"),
                        variable: name.to_owned(),
                        layer: OverrideLayer::EnvironmentVariable,
                        value,
                    });
                }
            }
        }
        for (name, value) in dotenv_pairs {
            if name.starts_with(PREFIX) {
                add(&mut by_flag, &mut warnings, name, value, OverrideLayer::DotEnvLocal);
            }
        }
        for entries in by_flag.values_mut() {
            entries.sort_by_key(|entry| entry.layer != OverrideLayer::EnvironmentVariable);
        }
        for warning in &warnings {
            report(warning);
        }
        Ok(Self { by_flag, resolved: Mutex::default(), warnings: Mutex::new(warnings) })
    }

    /// Whether any override names `flag`; cheap, so evaluation of flags without overrides takes no lock.
    pub(crate) fn mentions(&self, flag: &str) -> bool {
        self.by_flag.contains_key(flag)
    }

    /// The override that wins for `flag` read as `flag_type`, if any; invalid values are reported once and skipped.
    pub(crate) fn resolve(&self, flag: &FlagName, flag_type: FlagType) -> Option<Arc<ResolvedOverride>> {
        self.resolve_str(flag.as_str(), flag_type)
    }

    /// [`Overrides::resolve`] for a name that has not been validated; names that are not flags have no overrides.
    pub(crate) fn resolve_str(&self, flag: &str, flag_type: FlagType) -> Option<Arc<ResolvedOverride>> {
        let entries = self.by_flag.get(flag)?;
        let mut resolved = self.resolved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(answer) = resolved.get(&(flag.to_owned(), flag_type)) {
            return answer.clone();
        }
        let mut answer = None;
        for entry in entries {
            match parse_override(flag_type, &entry.value) {
                Ok(value) => {
                    answer = Some(Arc::new(ResolvedOverride { layer: entry.layer, variable: entry.variable.clone(), value }));
                    break;
                }
                Err(error) => {
                    let warning = OverrideWarning {
                        variable: entry.variable.clone(),
                        layer: entry.layer,
                        value: entry.value.clone(),
                        message: format!(
                            "{} ({}) is ignored: {} (flag {flag} is a {} flag)",
                            entry.variable,
                            entry.layer.describe(),
                            error.message,
                            flag_type.as_str()
                        ),
                    };
                    report(&warning);
                    self.warnings.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(warning);
                }
            }
        }
        resolved.insert((flag.to_owned(), flag_type), answer.clone());
        answer
    }

    /// Every override reported and ignored so far.
    pub(crate) fn warnings(&self) -> Vec<OverrideWarning> {
        self.warnings.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Files one raw value under its flag, or reports a variable that cannot name a flag.
fn add(
    by_flag: &mut HashMap<String, Vec<RawOverride>>,
    warnings: &mut Vec<OverrideWarning>,
    variable: String,
    value: String,
    layer: OverrideLayer,
) {
    let Some(flag) = flag_name_from_env_var(&variable) else {
        warnings.push(OverrideWarning {
            message: format!(
                "{variable} ({}) does not name a flag: an override is FF_ followed by the flag name in upper case with the dot as `_`, such as FF_UI_NEW_FEATURE for ui.new_feature",
                layer.describe()
            ),
            variable,
            layer,
            value,
        });
        return;
    };
    let entries = by_flag.entry(flag.as_str().to_owned()).or_default();
    // In `.env.local` a later line replaces an earlier one, as in every dotenv reader.
    entries.retain(|entry| entry.layer != layer);
    entries.push(RawOverride { variable, layer, value });
}

fn report(warning: &OverrideWarning) {
    tracing::warn!(variable = %warning.variable, source = warning.layer.describe(), "{}", warning.message);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn variables(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(name, value)| (OsString::from(name), OsString::from(value))).collect()
    }

    fn flag(name: &str) -> FlagName {
        FlagName::parse(name).unwrap()
    }

    #[test]
    fn a_process_variable_wins_over_the_same_variable_in_dotenv_local() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(".env.local");
        std::fs::write(&path, "FF_UI_NEW_FEATURE=false\nFF_UI_OTHER=on\n").unwrap();
        let overrides = Overrides::load(variables(&[("FF_UI_NEW_FEATURE", "yes"), ("PATH", "/bin")]), Some(&path)).unwrap();
        let winner = overrides.resolve(&flag("ui.new_feature"), FlagType::Boolean).unwrap();
        assert_eq!(
            (winner.layer, winner.variable.as_str(), &winner.value),
            (OverrideLayer::EnvironmentVariable, "FF_UI_NEW_FEATURE", &json!(true))
        );
        let other = overrides.resolve(&flag("ui.other"), FlagType::Boolean).unwrap();
        assert_eq!((other.layer, &other.value), (OverrideLayer::DotEnvLocal, &json!(true)));
        assert!(overrides.resolve(&flag("ui.absent"), FlagType::Boolean).is_none());
        assert!(overrides.warnings().is_empty());
    }

    #[test]
    fn an_invalid_value_is_reported_once_and_the_next_layer_answers() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(".env.local");
        std::fs::write(&path, "FF_BACKEND_LIMIT=12\n").unwrap();
        let overrides = Overrides::load(variables(&[("FF_BACKEND_LIMIT", "lots")]), Some(&path)).unwrap();
        for _ in 0..3 {
            let winner = overrides.resolve(&flag("backend.limit"), FlagType::Number).unwrap();
            assert_eq!((winner.layer, &winner.value), (OverrideLayer::DotEnvLocal, &json!(12)));
        }
        let warnings = overrides.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].variable, "FF_BACKEND_LIMIT");
        assert_eq!(warnings[0].layer, OverrideLayer::EnvironmentVariable);
        assert_eq!(warnings[0].value, "lots");
        assert!(warnings[0].message.contains("`lots` is not a finite number"), "{}", warnings[0].message);
    }

    #[test]
    fn variables_that_cannot_name_a_flag_are_reported() {
        let overrides = Overrides::load(variables(&[("FF_NOPE", "1"), ("FF_ui_lower", "1"), ("NOT_FF_UI_X", "1")]), None).unwrap();
        let reported: Vec<String> = overrides.warnings().into_iter().map(|warning| warning.variable).collect();
        assert_eq!(reported, ["FF_NOPE", "FF_ui_lower"]);
    }

    #[test]
    fn a_missing_dotenv_local_is_no_layer_and_a_later_line_replaces_an_earlier_one() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("absent");
        assert!(Overrides::load(Vec::new(), Some(&missing)).unwrap().by_flag.is_empty());
        let path = directory.path().join(".env.local");
        std::fs::write(&path, "FF_UI_X=first\nFF_UI_X=second\n").unwrap();
        let overrides = Overrides::load(Vec::new(), Some(&path)).unwrap();
        assert_eq!(overrides.resolve(&flag("ui.x"), FlagType::String).unwrap().value, json!("second"));
    }

    #[test]
    fn an_unreadable_dotenv_local_is_an_error() {
        let directory = tempfile::tempdir().unwrap();
        // A directory exists but cannot be read as a file.
        let error = Overrides::load(Vec::new(), Some(directory.path())).unwrap_err();
        assert!(matches!(error, SdkError::DotEnv { .. }), "{error}");
    }
}
