//! Flag definitions: a flag is defined once, with its type and constraints, for every environment.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::check_text;
use crate::{FlagName, ValidationError};

/// The longest JSON text accepted for one value, in bytes.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// What kind of value a flag serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    /// `true` or `false`.
    Boolean,
    /// A string, optionally limited to `allowed_values`.
    String,
    /// A finite number, optionally within `min` and `max`.
    Number,
    /// Any JSON document.
    Json,
}

impl FlagType {
    /// The name used on the wire and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Json => "json",
        }
    }

    /// Parses `boolean`, `string`, `number` or `json` (and the usual short spellings).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        match input.to_ascii_lowercase().as_str() {
            "boolean" | "bool" => Ok(FlagType::Boolean),
            "string" | "str" => Ok(FlagType::String),
            "number" | "num" => Ok(FlagType::Number),
            "json" => Ok(FlagType::Json),
            _ => Err(ValidationError::new(
                "type",
                format!("flag type `{}` is unknown; accepted: boolean, string, number, json", crate::name::printable(input)),
            )),
        }
    }

    /// The value a new flag of this type defaults to.
    pub fn zero(self) -> Value {
        match self {
            FlagType::Boolean => Value::Bool(false),
            FlagType::String => Value::String(String::new()),
            FlagType::Number => Value::from(0),
            FlagType::Json => Value::Object(Default::default()),
        }
    }
}

/// How much damage a wrong value of this flag can do; shown in the panel and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    /// A cosmetic or internal flag.
    Low,
    /// The default.
    #[default]
    Medium,
    /// A wrong value is visible to users.
    High,
    /// A wrong value is an incident.
    Critical,
}

impl Criticality {
    /// The name used on the wire: `low`, `medium`, `high`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// A named value of a multivariate flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// `[a-z0-9][a-z0-9_-]*`, unique within the flag.
    pub name: String,
    /// The value served for this variant; it has the flag's type.
    pub value: Value,
    /// What this variant is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A flag, defined once for all environments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagDefinition {
    /// `<category>.<snake_case>`.
    pub name: FlagName,
    /// What the flag serves.
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    /// The registry default: served when a disabled non-boolean flag is asked for, and the last layer of the override priority.
    pub default: Value,
    /// What the flag does.
    #[serde(default)]
    pub description: String,
    /// Who to ask about it (a person or a team).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Free labels used for filtering and bulk operations.
    #[serde(default)]
    pub tags: Vec<String>,
    /// How much a wrong value hurts.
    #[serde(default)]
    pub criticality: Criticality,
    /// Named values of a multivariate flag.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// For string flags: the only values accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
    /// For number flags: the smallest value accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// For number flags: the largest value accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Still served, but on its way out.
    #[serde(default)]
    pub deprecated: bool,
    /// No longer in use: hidden from default listings, its states frozen.
    #[serde(default)]
    pub archived: bool,
    /// Monotonic version of the definition, 1 when created.
    #[serde(default)]
    pub version: u64,
    /// When the flag was created (RFC 3339 UTC).
    #[serde(default)]
    pub created_at: String,
    /// When the definition last changed (RFC 3339 UTC).
    #[serde(default)]
    pub updated_at: String,
    /// Who last changed the definition.
    #[serde(default)]
    pub updated_by: String,
}

impl FlagDefinition {
    /// A new definition with everything optional left empty.
    pub fn new(name: FlagName, flag_type: FlagType, default: Value) -> Self {
        Self {
            name,
            flag_type,
            default,
            description: String::new(),
            owner: None,
            tags: Vec::new(),
            criticality: Criticality::Medium,
            variants: Vec::new(),
            allowed_values: None,
            min: None,
            max: None,
            deprecated: false,
            archived: false,
            version: 0,
            created_at: String::new(),
            updated_at: String::new(),
            updated_by: String::new(),
        }
    }

    /// The value a disabled flag serves: `false` for booleans, the default otherwise.
    pub fn off_value(&self) -> Value {
        match self.flag_type {
            FlagType::Boolean => Value::Bool(false),
            _ => self.default.clone(),
        }
    }

    /// Looks up a variant by name.
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|variant| variant.name == name)
    }

    /// Checks the definition as a whole: metadata, constraints, default and variants.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_text("description", &self.description, 2000, true)?;
        if let Some(owner) = &self.owner {
            check_text("owner", owner, 200, false)?;
        }
        if self.tags.len() > 32 {
            return Err(ValidationError::new("tags", format!("{} tags given; at most 32 are accepted", self.tags.len())));
        }
        for tag in &self.tags {
            check_label("tags", tag, "tag")?;
        }
        match (&self.allowed_values, self.flag_type) {
            (Some(_), FlagType::String) | (None, _) => {}
            (Some(_), other) => {
                return Err(ValidationError::new(
                    "allowed_values",
                    format!("allowed_values applies to string flags only; this flag is {}", other.as_str()),
                ));
            }
        }
        if let Some(allowed) = &self.allowed_values {
            if allowed.is_empty() {
                return Err(ValidationError::new("allowed_values", "allowed_values is empty; list at least one value or leave it out"));
            }
            for value in allowed {
                check_text("allowed_values", value, 1000, false)?;
            }
        }
        if (self.min.is_some() || self.max.is_some()) && self.flag_type != FlagType::Number {
            return Err(ValidationError::new(
                "min",
                format!("min and max apply to number flags only; this flag is {}", self.flag_type.as_str()),
            ));
        }
        for (field, bound) in [("min", self.min), ("max", self.max)] {
            if bound.is_some_and(|bound| !bound.is_finite()) {
                return Err(ValidationError::new(field, format!("{field} must be a finite number")));
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err(ValidationError::new("min", format!("min ({min}) is greater than max ({max})")));
        }
        self.check_value("default", &self.default)?;
        if self.variants.len() > 100 {
            return Err(ValidationError::new("variants", format!("{} variants given; at most 100 are accepted", self.variants.len())));
        }
        for (index, variant) in self.variants.iter().enumerate() {
            let field = format!("variants[{index}]");
            check_label(&field, &variant.name, "variant name")?;
            if self.variants[..index].iter().any(|earlier| earlier.name == variant.name) {
                return Err(ValidationError::new(field, format!("variant `{}` is declared twice", variant.name)));
            }
            self.check_value(&format!("{field}.value"), &variant.value)?;
            if let Some(description) = &variant.description {
                check_text(&format!("{field}.description"), description, 500, false)?;
            }
        }
        Ok(())
    }

    /// Checks that `value` has this flag's type and meets its constraints.
    pub fn check_value(&self, field: &str, value: &Value) -> Result<(), ValidationError> {
        let wrong_type = || {
            ValidationError::new(
                field,
                format!("{field} must be a {} for flag `{}`; got {}", self.flag_type.as_str(), self.name, describe_json(value)),
            )
        };
        match self.flag_type {
            FlagType::Boolean => {
                if !value.is_boolean() {
                    return Err(wrong_type());
                }
            }
            FlagType::String => {
                let Some(text) = value.as_str() else { return Err(wrong_type()) };
                check_text(field, text, 10_000, true)?;
                if let Some(allowed) = &self.allowed_values
                    && !allowed.iter().any(|candidate| candidate == text)
                {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "{field} `{}` is not allowed for flag `{}`; allowed: {}",
                            crate::name::printable(text),
                            self.name,
                            allowed.join(", ")
                        ),
                    ));
                }
            }
            FlagType::Number => {
                let Some(number) = value.as_f64() else { return Err(wrong_type()) };
                if let Some(min) = self.min
                    && number < min
                {
                    return Err(ValidationError::new(
                        field,
                        format!("{field} {number} is below the minimum {min} of flag `{}`", self.name),
                    ));
                }
                if let Some(max) = self.max
                    && number > max
                {
                    return Err(ValidationError::new(
                        field,
                        format!("{field} {number} is above the maximum {max} of flag `{}`", self.name),
                    ));
                }
            }
            FlagType::Json => crate::text::check_json_text(field, value)?,
        }
        let size = serde_json::to_string(value).map(|text| text.len()).unwrap_or(usize::MAX);
        if size > MAX_VALUE_BYTES {
            return Err(ValidationError::new(field, format!("{field} is {size} bytes of JSON; at most {MAX_VALUE_BYTES} are accepted")));
        }
        Ok(())
    }
}

/// Tags and variant names: `[a-z0-9][a-z0-9_.-]*`, at most 64 bytes.
fn check_label(field: &str, label: &str, what: &str) -> Result<(), ValidationError> {
    let bytes = label.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "{what} `{}` is invalid; use lowercase letters, digits, `_`, `-` and `.`, starting with a letter or digit (at most 64)",
                crate::name::printable(label)
            ),
        ))
    }
}

/// `a string "abc"`, `a number 3`: how a wrong value is named in an error.
pub(crate) fn describe_json(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let text = value.to_string();
    format!("{kind} {}", crate::name::printable(&text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn definition(flag_type: FlagType, default: Value) -> FlagDefinition {
        FlagDefinition::new(FlagName::parse("ui.x").unwrap(), flag_type, default)
    }

    #[test]
    fn values_must_match_the_type() {
        assert!(definition(FlagType::Boolean, json!(false)).validate().is_ok());
        let error = definition(FlagType::Boolean, json!("yes")).validate().unwrap_err();
        assert_eq!(error.message, "default must be a boolean for flag `ui.x`; got a string \"yes\"");
        assert!(definition(FlagType::Number, json!(3.5)).validate().is_ok());
        assert!(definition(FlagType::Number, json!("3")).validate().is_err());
        assert!(definition(FlagType::Json, json!({"a": [1]})).validate().is_ok());
    }

    #[test]
    fn constraints_apply() {
        let mut flag = definition(FlagType::String, json!("a"));
        flag.allowed_values = Some(vec!["a".into(), "b".into()]);
        assert!(flag.validate().is_ok());
        assert!(flag.check_value("value", &json!("c")).unwrap_err().message.contains("allowed: a, b"));
        let mut number = definition(FlagType::Number, json!(5));
        number.min = Some(1.0);
        number.max = Some(10.0);
        assert!(number.validate().is_ok());
        assert!(number.check_value("value", &json!(11)).is_err());
        number.min = Some(20.0);
        assert!(number.validate().is_err());
        let mut boolean = definition(FlagType::Boolean, json!(true));
        boolean.min = Some(1.0);
        assert!(boolean.validate().is_err());
    }

    #[test]
    fn variants_are_checked() {
        let mut flag = definition(FlagType::String, json!("a"));
        flag.variants = vec![
            Variant { name: "control".into(), value: json!("a"), description: None },
            Variant { name: "control".into(), value: json!("b"), description: None },
        ];
        assert!(flag.validate().unwrap_err().message.contains("declared twice"));
        flag.variants[1].name = "treatment".into();
        flag.variants[1].value = json!(1);
        assert!(flag.validate().is_err());
    }

    #[test]
    fn off_value_is_false_for_booleans_and_the_default_otherwise() {
        assert_eq!(definition(FlagType::Boolean, json!(true)).off_value(), json!(false));
        assert_eq!(definition(FlagType::Number, json!(7)).off_value(), json!(7));
    }
}
