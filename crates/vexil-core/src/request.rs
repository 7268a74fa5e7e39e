//! An OFREP evaluation request, `{"context": {"targetingKey": "user-1", "plan": "pro"}}`, read straight into a
//! context the engine evaluates.
//!
//! No JSON tree is built: names and text borrow from the request body (only a string with escapes is copied), numbers
//! and booleans are kept as they are, and arrays, objects and null (which no condition compares) are checked for
//! syntax and skipped. A context of up to [`INLINE`] attributes allocates nothing. Duplicate names keep the last
//! value, as a JSON object read into a map would; a context with many attributes is sorted once, so a look-up never
//! scans more than a few names.
//!
//! What is refused, and in which order (the first that applies): a body that is not JSON (`PARSE_ERROR`), a body
//! that is not a JSON object (`PARSE_ERROR`), a `context` that is not an object or null (`INVALID_CONTEXT`), and a
//! `targetingKey` that is not a string (`INVALID_CONTEXT`). An empty body, a missing `context` and `"context": null`
//! are the empty context.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

use crate::evaluation::{AttributeValue, EvaluationContext};

/// Attributes kept without an allocation.
pub const INLINE: usize = 8;

/// Above this many attributes, look-ups search a sorted list instead of scanning.
const SCANNED: usize = 16;

/// An attribute's value as the request gave it.
#[derive(Debug, Clone, PartialEq)]
enum Attribute<'a> {
    Text(Cow<'a, str>),
    Number(f64),
    Bool(bool),
    /// Null, an array or an object: present, but no condition compares it.
    Other,
}

/// The context of one evaluation request; see the module documentation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RequestContext<'a> {
    targeting_key: Option<Cow<'a, str>>,
    attributes: SmallVec<[(Cow<'a, str>, Attribute<'a>); INLINE]>,
    /// Sorted by name, one entry per name (set once the list is longer than [`SCANNED`]).
    sorted: bool,
}

/// Why a request body cannot be evaluated, with OFREP's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// `PARSE_ERROR`: not JSON, or not a JSON object.
    Parse(String),
    /// `INVALID_CONTEXT`: the context, or its targeting key, has the wrong type.
    InvalidContext(&'static str),
}

impl RequestError {
    /// OFREP's `errorCode`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Parse(_) => "PARSE_ERROR",
            Self::InvalidContext(_) => "INVALID_CONTEXT",
        }
    }

    /// OFREP's `errorDetails`: what was wrong and what is accepted.
    pub fn details(&self) -> &str {
        match self {
            Self::Parse(details) => details,
            Self::InvalidContext(details) => details,
        }
    }
}

const NOT_AN_OBJECT: &str = "request body must be a JSON object such as {\"context\": {\"targetingKey\": \"user-1\"}}";

impl<'a> RequestContext<'a> {
    /// Reads a request body; see the module documentation for what is refused.
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        let mut reading = Reading::default();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(reading.context);
        }
        let mut reader = serde_json::Deserializer::from_slice(body);
        let object = reader
            .deserialize_any(Body(&mut reading))
            .and_then(|object| reader.end().map(|()| object))
            .map_err(|error| RequestError::Parse(format!("request body is not valid JSON: {error}")))?;
        if !object {
            return Err(RequestError::Parse(NOT_AN_OBJECT.to_owned()));
        }
        match reading.found {
            Found::Nothing => return Ok(RequestContext::default()),
            Found::Other => return Err(RequestError::InvalidContext("context must be a JSON object")),
            Found::Object => {}
        }
        match reading.targeting.take() {
            None => {}
            Some(Attribute::Text(key)) => reading.context.targeting_key = Some(key),
            Some(_) => return Err(RequestError::InvalidContext("targetingKey must be a string")),
        }
        let mut context = reading.context;
        if context.attributes.len() > SCANNED {
            // Last wins among duplicates: reversed, a stable sort puts the last of each name first, which dedup keeps.
            context.attributes.reverse();
            context.attributes.sort_by(|left, right| left.0.cmp(&right.0));
            context.attributes.dedup_by(|later, first| later.0 == first.0);
            context.sorted = true;
        }
        Ok(context)
    }

    /// How many attributes the context has, besides its targeting key.
    pub fn len(&self) -> usize {
        self.attributes.len()
    }

    /// Whether the context has no attributes besides its targeting key.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    fn value(&self, name: &str) -> Option<&Attribute<'a>> {
        if self.sorted {
            let index = self.attributes.binary_search_by(|(candidate, _)| candidate.as_ref().cmp(name)).ok()?;
            return Some(&self.attributes[index].1);
        }
        self.attributes.iter().rev().find(|(candidate, _)| candidate == name).map(|(_, value)| value)
    }
}

impl EvaluationContext for RequestContext<'_> {
    fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    fn attribute(&self, name: &str) -> Option<AttributeValue<'_>> {
        if name == "targetingKey" {
            return self.targeting_key.as_deref().map(AttributeValue::String);
        }
        match self.value(name)? {
            Attribute::Text(text) => Some(AttributeValue::String(text)),
            Attribute::Number(number) => Some(AttributeValue::Number(*number)),
            Attribute::Bool(flag) => Some(AttributeValue::Bool(*flag)),
            Attribute::Other => None,
        }
    }
}

/// What the body's `context` was (the last one, if several).
#[derive(Default)]
enum Found {
    /// Missing, or null: the empty context.
    #[default]
    Nothing,
    /// An object, read into [`Reading::context`].
    Object,
    /// Anything else.
    Other,
}

/// The context being read, filled in place (a context of [`INLINE`] attributes is a few hundred bytes: it is never
/// moved while reading), with the last `targetingKey` seen (checked once the whole body is known to be JSON).
#[derive(Default)]
struct Reading<'a> {
    context: RequestContext<'a>,
    targeting: Option<Attribute<'a>>,
    found: Found,
}

/// The body: an object whose `context` is read; other members are skipped. Its value says whether it was an object.
struct Body<'r, 'a>(&'r mut Reading<'a>);

/// Skips the elements of an array that is not what was asked for.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Visitor<'de> for Body<'_, 'de> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while let Some(name) = map.next_key::<Text<'de>>()? {
            if name.0 == "context" {
                map.next_value_seed(ContextSeed(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        skip_seq(seq).map(|()| false)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// The value of one `context` member, read into the reading (a later one replaces an earlier one).
struct ContextSeed<'r, 'a>(&'r mut Reading<'a>);

impl<'de> DeserializeSeed<'de> for ContextSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> ContextSeed<'_, 'de> {
    fn found(self, found: Found) {
        self.0.context.attributes.clear();
        self.0.targeting = None;
        self.0.found = found;
    }
}

impl<'de> Visitor<'de> for ContextSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a context object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reading = self.0;
        reading.context.attributes.clear();
        reading.targeting = None;
        reading.found = Found::Object;
        while let Some(name) = map.next_key::<Text<'de>>()? {
            let value = map.next_value::<Attribute<'de>>()?;
            if name.0 == "targetingKey" {
                reading.targeting = Some(value);
            } else {
                reading.context.attributes.push((name.0, value));
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        skip_seq(seq)?;
        self.found(Found::Other);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.found(Found::Nothing);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }
}

/// A string that borrows from the body unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Attribute<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttributeVisitor;
        impl<'de> Visitor<'de> for AttributeVisitor {
            type Value = Attribute<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON value")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Attribute::Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Attribute::Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Attribute::Text(Cow::Owned(text)))
            }

            fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Self::Value, E> {
                Ok(Attribute::Bool(flag))
            }

            // As a JSON map's `as_f64` reads numbers: integers beyond 2^53 lose precision, they are not refused.
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
                Ok(Attribute::Number(number as f64))
            }

            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
                Ok(Attribute::Number(number as f64))
            }

            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
                Ok(Attribute::Number(number))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Attribute::Other)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Attribute::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Attribute::Other)
            }
        }
        deserializer.deserialize_any(AttributeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    /// What the JSON-map reading of a body gives: the behaviour this reader must keep.
    fn by_map(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        let request: Value =
            serde_json::from_slice(body).map_err(|error| RequestError::Parse(format!("request body is not valid JSON: {error}")))?;
        if !request.is_object() {
            return Err(RequestError::Parse(NOT_AN_OBJECT.to_owned()));
        }
        let context = match request.get("context") {
            None | Some(Value::Null) => return Ok(Map::new()),
            Some(Value::Object(context)) => context.clone(),
            Some(_) => return Err(RequestError::InvalidContext("context must be a JSON object")),
        };
        match context.get("targetingKey") {
            None | Some(Value::String(_)) => Ok(context),
            Some(_) => Err(RequestError::InvalidContext("targetingKey must be a string")),
        }
    }

    fn same_as_map(body: &str) {
        let names = ["targetingKey", "plan", "age", "beta", "nested", "list", "nothing", "missing", "é", "a\"b", "n1", "n20"];
        match (RequestContext::parse(body.as_bytes()), by_map(body.as_bytes())) {
            (Ok(context), Ok(map)) => {
                assert_eq!(context.targeting_key(), map.targeting_key(), "{body}");
                for name in names {
                    assert_eq!(context.attribute(name), map.attribute(name), "{body}: attribute {name}");
                }
            }
            (Err(error), Err(expected)) => {
                assert_eq!(error.code(), expected.code(), "{body}");
                if let RequestError::InvalidContext(_) = expected {
                    assert_eq!(error, expected, "{body}");
                }
            }
            (read, expected) => panic!("{body}: read {read:?}, a JSON map gives {expected:?}"),
        }
    }

    #[test]
    fn reads_what_a_json_map_reads() {
        let many: Map<String, Value> = (0..40).map(|index| (format!("n{index}"), json!(index))).collect();
        let mut duplicated = String::from(r#"{"context": {"n20": "first""#);
        for index in 0..30 {
            duplicated.push_str(&format!(r#", "n{index}": {index}"#));
        }
        duplicated.push_str(r#", "n20": "last"}}"#);
        for body in [
            "",
            "  \n",
            "{}",
            r#"{"context": null}"#,
            r#"{"context": {}}"#,
            r#"{"context": {"targetingKey": "user-1", "plan": "pro", "age": 42, "beta": true}}"#,
            r#"{"context": {"targetingKey": "us\u00e9r", "plan": "p\"ro", "\u00e9": "accent", "a\"b": 1.5}}"#,
            r#"{"context": {"nested": {"deep": [1, {"x": null}]}, "list": [1, 2], "nothing": null, "plan": "x"}}"#,
            r#"{"other": [1, {"a": 2}], "context": {"plan": "a"}, "more": "x"}"#,
            r#"{"context": {"plan": "a"}, "context": {"plan": "b"}}"#,
            r#"{"context": {"plan": "a"}, "context": null}"#,
            r#"{"context": {"plan": "a", "plan": "b", "age": 1e3, "age": -7}}"#,
            r#"{"context": {"targetingKey": 5, "targetingKey": "ok"}}"#,
            r#"{"context": {"targetingKey": "ok", "targetingKey": 5}}"#,
            r#"{"context": {"targetingKey": null}}"#,
            r#"{"context": {"targetingKey": ["a"]}}"#,
            r#"{"context": "user-1"}"#,
            r#"{"context": [1, 2]}"#,
            r#"{"context": 5}"#,
            r#"{"context": {"plan": 18446744073709551615, "age": -9223372036854775808}}"#,
            r#"[{"context": {}}]"#,
            r#""text""#,
            "42",
            "null",
            "true",
            r#"{"context": {"plan": "a"}"#,
            r#"{"context": {"plan": "a"}} trailing"#,
            r#"{"context": "x", "broken": }"#,
            r#"[1, 2"#,
            "{\"context\": {\"plan\": \"\\ud800\"}}",
            "\u{feff}{}",
            &json!({ "context": many }).to_string(),
            &duplicated,
        ] {
            same_as_map(body);
        }
    }

    #[test]
    fn a_context_in_the_body_borrows_from_it() {
        let body = br#"{"context": {"targetingKey": "user-1", "plan": "pro", "e\u0301": "x"}}"#;
        let context = RequestContext::parse(body).expect("a valid request");
        assert!(matches!(context.targeting_key, Some(Cow::Borrowed("user-1"))));
        assert!(matches!(context.attributes[0], (Cow::Borrowed("plan"), Attribute::Text(Cow::Borrowed("pro")))));
        assert!(matches!(&context.attributes[1].0, Cow::Owned(name) if name == "e\u{301}"), "escapes are decoded");
        assert!(!context.attributes.spilled());
    }

    /// Values no condition compares are skipped without recursion: nesting a hundred thousand deep (which a JSON tree
    /// reader refuses at 128, and which recursion would overflow the stack with) costs its length and nothing more.
    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        let depth = 100_000;
        let body = format!(
            r#"{{"context": {{"a": {}{}, "plan": "pro"}}, "b": {}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth),
            r#"{"x":"#.repeat(depth),
            "}".repeat(depth)
        );
        let context = RequestContext::parse(body.as_bytes()).expect("deeply nested, but valid JSON");
        assert_eq!(context.attribute("plan"), Some(AttributeValue::String("pro")));
        assert_eq!(context.attribute("a"), None, "an array is no attribute a condition compares");
        let unbalanced = format!(r#"{{"context": {{"a": {}}}}}"#, "[".repeat(depth));
        assert_eq!(RequestContext::parse(unbalanced.as_bytes()).unwrap_err().code(), "PARSE_ERROR");
    }

    #[test]
    fn errors_say_what_was_wrong_and_what_is_accepted() {
        let error = RequestContext::parse(b"[]").expect_err("an array is no request");
        assert_eq!(error.code(), "PARSE_ERROR");
        assert!(error.details().contains("{\"context\": {\"targetingKey\": \"user-1\"}}"), "{error:?}");
        let error = RequestContext::parse(b"{\"context\":").expect_err("cut short");
        assert!(error.details().starts_with("request body is not valid JSON: EOF"), "{error:?}");
    }
}
