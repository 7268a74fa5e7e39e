//! Validated names: flag names (`ui.new_feature`), categories and environment keys.
//!
//! A [`FlagName`] or [`EnvKey`] can only be built by parsing, so every function that takes one knows it
//! is well formed. Keys end up in Redis keys (`flags:<env>:<flag>`), URLs, environment variable names
//! and terminals, which is why the alphabets are small and strict.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

/// The longest flag name accepted, in bytes.
pub const MAX_FLAG_NAME_LEN: usize = 100;

/// A flag name: `<category>.<snake_case>`, for example `ui.new_feature` or `experiment.voice_v2`.
///
/// The category is `[a-z][a-z0-9]*` (no underscore, which keeps the `FF_` mapping unambiguous);
/// the rest is lowercase snake case: a letter, then letters, digits and single underscores, not ending in one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlagName(String);

/// Flags are looked up by the text of their name (a request's path segment) without parsing it first: the order
/// and equality of names are those of their text.
impl std::borrow::Borrow<str> for FlagName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FlagName {
    /// Parses and validates a flag name.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let explain = |what: &str| {
            ValidationError::new(
                "name",
                format!(
                    "flag name `{}` {what}; a flag name is `<category>.<snake_case>` such as `ui.new_feature`: lowercase letters, digits and single underscores, starting with a letter",
                    printable(input)
                ),
            )
        };
        if input.is_empty() {
            return Err(ValidationError::new(
                "name",
                "flag name is empty; a flag name is `<category>.<snake_case>` such as `ui.new_feature`",
            ));
        }
        if input.len() > MAX_FLAG_NAME_LEN {
            return Err(ValidationError::new(
                "name",
                format!("flag name is {} bytes long; at most {MAX_FLAG_NAME_LEN} are accepted", input.len()),
            ));
        }
        let Some((category, rest)) = input.split_once('.') else {
            return Err(explain("has no category"));
        };
        Category::check(category).map_err(|_| explain("has an invalid category"))?;
        if rest.contains('.') {
            return Err(explain("has more than one dot"));
        }
        let bytes = rest.as_bytes();
        let valid = !bytes.is_empty()
            && bytes[0].is_ascii_lowercase()
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            && !rest.ends_with('_')
            && !rest.contains("__");
        if !valid {
            return Err(explain("is not snake case after the category"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The whole name, `ui.new_feature`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category, the part before the dot (`ui`).
    pub fn category(&self) -> &str {
        self.0.split_once('.').map(|(category, _)| category).unwrap_or(&self.0)
    }
}

impl fmt::Display for FlagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FlagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlagName({})", self.0)
    }
}

impl AsRef<str> for FlagName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for FlagName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FlagName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        FlagName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The flag categories a server accepts (`ui`, `backend`, `admin`, `integration`, `experiment`, `ops` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categories(Vec<String>);

/// Namespace for category syntax checks.
pub struct Category;

impl Category {
    /// Checks the syntax of a category: `[a-z][a-z0-9]*`, at most 32 bytes.
    pub fn check(category: &str) -> Result<(), ValidationError> {
        let bytes = category.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 32
            && bytes[0].is_ascii_lowercase()
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if valid {
            Ok(())
        } else {
            Err(ValidationError::new(
                "category",
                format!(
                    "category `{}` is invalid; a category is a lowercase letter followed by lowercase letters and digits",
                    printable(category)
                ),
            ))
        }
    }
}

impl Categories {
    /// The seed's categories.
    pub const DEFAULT: [&'static str; 6] = ["ui", "backend", "admin", "integration", "experiment", "ops"];

    /// Builds a category list, checking the syntax of each.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(categories: I) -> Result<Self, ValidationError> {
        let list: Vec<String> = categories.into_iter().map(Into::into).collect();
        for category in &list {
            Category::check(category)?;
        }
        if list.is_empty() {
            return Err(ValidationError::new("categories", "at least one category is needed"));
        }
        Ok(Self(list))
    }

    /// The accepted categories, in configuration order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Refuses a flag whose category is not configured.
    pub fn check_flag(&self, name: &FlagName) -> Result<(), ValidationError> {
        if self.0.iter().any(|category| category == name.category()) {
            Ok(())
        } else {
            Err(ValidationError::new(
                "name",
                format!("category `{}` of flag `{name}` is not configured; known categories: {}", name.category(), self.0.join(", ")),
            ))
        }
    }
}

impl Default for Categories {
    fn default() -> Self {
        Self(Self::DEFAULT.iter().map(|category| (*category).to_owned()).collect())
    }
}

/// An environment's short key (`dev`, `staging`, `prod`): `[a-z][a-z0-9_-]*`, at most 32 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvKey(String);

impl EnvKey {
    /// Parses and validates an environment key.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let bytes = input.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 32
            && bytes[0].is_ascii_lowercase()
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(ValidationError::new(
                "environment",
                format!(
                    "environment key `{}` is invalid; a key is a lowercase letter followed by lowercase letters, digits, `_` or `-` (at most 32)",
                    printable(input)
                ),
            ))
        }
    }

    /// The key, `prod`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvKey({})", self.0)
    }
}

impl Serialize for EnvKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EnvKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        EnvKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The candidate nearest to `input`, for "did you mean …?": the fewest single-character edits (insertions, deletions,
/// substitutions, swaps of neighbours), at most a third of the input's length (at least 1, at most 3); `None` when
/// nothing is that near, or when `input` is itself a candidate.
pub fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let input: Vec<char> = input.to_lowercase().chars().collect();
    let allowed = (input.len() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let chars: Vec<char> = candidate.to_lowercase().chars().collect();
        if chars.len().abs_diff(input.len()) > allowed {
            continue;
        }
        let distance = edit_distance(&input, &chars);
        if distance == 0 {
            return None;
        }
        if distance <= allowed && best.is_none_or(|(shortest, _)| distance < shortest) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate.to_owned())
}

/// Optimal string alignment distance: Levenshtein's edits plus swapping two neighbours.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut distance = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                distance = distance.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = distance;
        }
    }
    rows[a.len()][b.len()]
}

/// Renders untrusted input for an error message: control characters are escaped and long input is cut,
/// so an error can never carry a forged line into a terminal or a log.
pub fn printable(input: &str) -> String {
    printable_within(input, 64)
}

/// [`printable`], cut after `limit` characters instead of 64: for messages that quote a parser's own words.
pub fn printable_within(input: &str, limit: usize) -> String {
    let mut out = String::new();
    for (index, c) in input.chars().enumerate() {
        if index >= limit {
            out.push('…');
            break;
        }
        if c.is_control() || crate::text::is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A string schema for the OpenAPI document: what the parser accepts, as a pattern a client can check.
#[cfg(feature = "openapi")]
fn string_schema(pattern: &str, max_length: usize, description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .max_length(Some(max_length))
        .description(Some(description))
        .into()
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for FlagName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema("^[a-z][a-z0-9]*\\.[a-z](_?[a-z0-9])*$", MAX_FLAG_NAME_LEN, "`<category>.<snake_case>`, such as `ui.new_feature`")
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for FlagName {}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for EnvKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema("^[a-z][a-z0-9_-]*$", 32, "an environment's short key, such as `prod`")
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for EnvKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_follow_category_dot_snake_case() {
        for good in ["ui.new_feature", "experiment.voice_v2", "backend.rag_max_results", "ops.a", "x1.b2_c3"] {
            assert!(FlagName::parse(good).is_ok(), "{good} should be accepted");
        }
        for bad in [
            "",
            "ui",
            "ui.",
            ".x",
            "UI.new",
            "ui.New",
            "ui.new-feature",
            "ui.new__x",
            "ui.new_",
            "ui.a.b",
            "ui_x.a",
            "1ui.a",
            "ui.1a",
            "ui.a b",
            "ui.a\nb",
            "ui:a.b",
        ] {
            assert!(FlagName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(FlagName::parse("experiment.voice_v2").unwrap().category(), "experiment");
    }

    #[test]
    fn errors_escape_hostile_input() {
        let error = FlagName::parse("ui.a\n\u{1b}[31mforged").unwrap_err();
        assert!(!error.message.contains('\n'));
        assert!(!error.message.contains('\u{1b}'));
    }

    #[test]
    fn categories_must_be_configured() {
        let categories = Categories::default();
        assert!(categories.check_flag(&FlagName::parse("ui.x").unwrap()).is_ok());
        let error = categories.check_flag(&FlagName::parse("misc.x").unwrap()).unwrap_err();
        assert!(error.message.contains("known categories: ui, backend"), "{}", error.message);
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn the_documented_patterns_accept_exactly_what_the_parsers_accept() {
        use utoipa::PartialSchema;
        let pattern = |schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
            let json = serde_json::to_value(schema).unwrap();
            regex::Regex::new(json["pattern"].as_str().unwrap()).unwrap()
        };
        let flag = pattern(FlagName::schema());
        for name in
            ["ui.new_feature", "a.b", "exp2.v2_x", "ui.a_b_c", "ui._x", "ui.x_", "ui.a__b", "UI.x", "ui.x.y", "u_i.x", "ui.", ".x", "ui.9x"]
        {
            assert_eq!(flag.is_match(name), FlagName::parse(name).is_ok(), "{name}");
        }
        let environment = pattern(EnvKey::schema());
        for key in ["prod", "production", "us-east_1", "Prod", "9x", "", "a b"] {
            assert_eq!(environment.is_match(key), EnvKey::parse(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn the_nearest_name_is_suggested_only_when_it_is_near() {
        let flags = ["ui.new_feature", "ui.new_checkout", "api.rate_limit"];
        assert_eq!(nearest("ui.new_featur", flags).as_deref(), Some("ui.new_feature"));
        assert_eq!(nearest("ui.new_faeture", flags).as_deref(), Some("ui.new_feature"), "a swap is one edit");
        assert_eq!(nearest("ui.something_else", flags), None);
        assert_eq!(nearest("ui.new_feature", flags), None, "an exact name is no near miss");
        assert_eq!(nearest("prd", ["dev", "staging", "prod"]).as_deref(), Some("prod"));
        assert_eq!(nearest("x", ["dev", "staging", "prod"]), None);
    }
}
