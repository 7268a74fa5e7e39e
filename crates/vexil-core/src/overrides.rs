//! The `FF_<FLAG_NAME>` override layer: name mapping, typed parsing and `.env.local` files.
//!
//! `FF_UI_NEW_FEATURE` ↔ `ui.new_feature`: upper case, dots become underscores. Categories hold no
//! underscore, so the first underscore after `FF_` is always the dot and the mapping is unambiguous.
//! Values are parsed for the flag's type; one that does not parse is reported, never guessed.

use serde_json::Value;

use crate::name::printable;
use crate::{FlagName, FlagType, ValidationError};

/// The prefix of every override variable.
pub const PREFIX: &str = "FF_";

/// `ui.new_feature` → `FF_UI_NEW_FEATURE`.
pub fn env_var_name(flag: &FlagName) -> String {
    let mut name = String::with_capacity(PREFIX.len() + flag.as_str().len());
    name.push_str(PREFIX);
    name.extend(flag.as_str().chars().map(|c| if c == '.' { '_' } else { c.to_ascii_uppercase() }));
    name
}

/// `FF_EXPERIMENT_VOICE_V2` → `experiment.voice_v2`; `None` when the variable cannot name a flag.
pub fn flag_name_from_env_var(variable: &str) -> Option<FlagName> {
    let rest = variable.strip_prefix(PREFIX)?;
    let (category, name) = rest.split_once('_')?;
    if category.bytes().any(|b| b.is_ascii_lowercase()) || name.bytes().any(|b| b.is_ascii_lowercase()) {
        return None;
    }
    FlagName::parse(&format!("{}.{}", category.to_ascii_lowercase(), name.to_ascii_lowercase())).ok()
}

/// Parses an override value for a flag of `flag_type`.
///
/// Booleans accept `true/false/1/0/on/off/yes/no` in any case; numbers must be finite; JSON must parse;
/// strings are taken as they are.
pub fn parse_override(flag_type: FlagType, raw: &str) -> Result<Value, ValidationError> {
    let trimmed = raw.trim();
    match flag_type {
        FlagType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "off" | "no" => Ok(Value::Bool(false)),
            _ => Err(ValidationError::new(
                "value",
                format!("`{}` is not a boolean; accepted: true/false, 1/0, on/off, yes/no in any case", printable(raw)),
            )),
        },
        FlagType::Number => trimmed
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .and_then(|number| {
                if number.fract() == 0.0 && number.abs() < 9.0e15 {
                    Some(Value::from(number as i64))
                } else {
                    serde_json::Number::from_f64(number).map(Value::Number)
                }
            })
            .ok_or_else(|| ValidationError::new("value", format!("`{}` is not a finite number", printable(raw)))),
        FlagType::String => Ok(Value::String(raw.to_owned())),
        FlagType::Json => serde_json::from_str(trimmed)
            .map_err(|error| ValidationError::new("value", format!("`{}` is not valid JSON: {error}", printable(raw)))),
    }
}

/// Reads `KEY=VALUE` lines of a `.env` file: `#` comments, an optional `export `, single or double quotes.
///
/// Lines that are not assignments are skipped; the caller decides which keys matter.
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
            inner.replace("\\n", "\n").replace("\\\"", "\"")
        } else if let Some(inner) = value.strip_prefix('\'').and_then(|rest| rest.strip_suffix('\'')) {
            inner.to_owned()
        } else {
            value.split(" #").next().unwrap_or(value).trim_end().to_owned()
        };
        pairs.push((key.to_owned(), value));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_map_both_ways() {
        for (flag, variable) in [("ui.new_feature", "FF_UI_NEW_FEATURE"), ("experiment.voice_v2", "FF_EXPERIMENT_VOICE_V2")] {
            let name = FlagName::parse(flag).unwrap();
            assert_eq!(env_var_name(&name), variable);
            assert_eq!(flag_name_from_env_var(variable), Some(name));
        }
        assert_eq!(flag_name_from_env_var("FF_UI"), None);
        assert_eq!(flag_name_from_env_var("PATH"), None);
        assert_eq!(flag_name_from_env_var("FF_ui_new"), None);
    }

    #[test]
    fn override_values_are_parsed_for_the_type() {
        for (raw, expected) in
            [("true", true), ("YES", true), ("On", true), ("1", true), ("false", false), ("no", false), ("OFF", false), ("0", false)]
        {
            assert_eq!(parse_override(FlagType::Boolean, raw).unwrap(), json!(expected), "{raw}");
        }
        assert!(parse_override(FlagType::Boolean, "enabled").unwrap_err().message.contains("accepted: true/false"));
        assert_eq!(parse_override(FlagType::Number, "25").unwrap(), json!(25));
        assert_eq!(parse_override(FlagType::Number, "2.5").unwrap(), json!(2.5));
        assert!(parse_override(FlagType::Number, "NaN").is_err());
        assert_eq!(parse_override(FlagType::Json, r#"{"a":1}"#).unwrap(), json!({"a": 1}));
        assert!(parse_override(FlagType::Json, "{").is_err());
        assert_eq!(parse_override(FlagType::String, " x ").unwrap(), json!(" x "));
    }

    /// `spec/overrides.json`'s names, spellings and `.env.local` text, which every SDK reads the same way.
    #[test]
    fn the_shared_spec_reads_the_same_here() {
        let spec: Value = serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/overrides.json"))).unwrap();
        for pair in spec["names"].as_array().unwrap() {
            let (flag, variable) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            assert_eq!(env_var_name(&FlagName::parse(flag).unwrap()), variable);
            assert_eq!(flag_name_from_env_var(variable).map(|name| name.to_string()).as_deref(), Some(flag));
        }
        for variable in spec["not_names"].as_array().unwrap() {
            assert_eq!(flag_name_from_env_var(variable.as_str().unwrap()), None, "{variable}");
        }
        for (which, expected) in [("true", Some(true)), ("false", Some(false)), ("invalid", None)] {
            for raw in spec["boolean_spellings"][which].as_array().unwrap() {
                let parsed = parse_override(FlagType::Boolean, raw.as_str().unwrap()).ok();
                assert_eq!(parsed, expected.map(Value::Bool), "{raw}");
            }
        }
        let pairs: Vec<(String, String)> = serde_json::from_value(spec["dotenv"]["pairs"].clone()).unwrap();
        assert_eq!(parse_dotenv(spec["dotenv"]["text"].as_str().unwrap()), pairs);
    }

    #[test]
    fn dotenv_files_are_read_like_the_seed_shows() {
        let text = "# Local override via .env.local\nFF_UI_NEW_FEATURE=true\nexport FF_EXPERIMENT_VOICE_V2=false # off for now\nNAME=\"a b\"\nbroken line\n";
        assert_eq!(
            parse_dotenv(text),
            vec![
                ("FF_UI_NEW_FEATURE".to_owned(), "true".to_owned()),
                ("FF_EXPERIMENT_VOICE_V2".to_owned(), "false".to_owned()),
                ("NAME".to_owned(), "a b".to_owned()),
            ]
        );
    }
}
