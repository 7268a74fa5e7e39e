//! Checks shared by every free-text field (reasons, descriptions, owners, targeting keys).

use crate::ValidationError;

/// The bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): they reorder how the text
/// after them is shown ("Trojan Source"), so a reason or a name could display as something it does not say.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Fillers that Unicode counts as letters but that show nothing (Hangul and Khitan fillers).
fn is_filler(c: char) -> bool {
    matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{16FE4}')
}

/// Whether the text says something: at least one letter or digit of any script (Unicode general categories L and N,
/// so not a combining mark on its own), or a visible ASCII sign. An allowlist, because the characters that show
/// nothing (spaces, zero-width and format characters, tag characters, variation selectors, blanks, lone marks) are
/// too many to list: a reason of only those is no reason.
pub fn has_visible_text(text: &str) -> bool {
    static LETTER_OR_DIGIT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let letter_or_digit = LETTER_OR_DIGIT.get_or_init(|| regex::Regex::new(r"[\p{L}\p{N}]").expect("a valid class"));
    text.chars().any(|c| c.is_ascii_graphic()) || letter_or_digit.find_iter(text).any(|found| found.as_str().chars().any(|c| !is_filler(c)))
}

/// Refuses control characters (newlines included unless `allow_newlines`), bidirectional overrides, and text longer
/// than `max_chars`.
///
/// Free text ends up in terminals, log lines and audit records; a stray escape sequence, a forged newline or a
/// direction override there is how audit trails get spoofed, so it is refused rather than cleaned.
/// The checks [`check_text`] makes, for text that is not a field of a definition or state (an import document's
/// environment name, say): no control characters, no direction overrides, at most `max_chars`.
pub fn check_plain_text(field: &str, text: &str, max_chars: usize) -> Result<(), ValidationError> {
    check_text(field, text, max_chars, false)
}

/// Every string inside a JSON value (keys too): no direction overrides, and no control characters but newlines,
/// tabs and carriage returns, which JSON documents carry.
pub(crate) fn check_json_text(field: &str, value: &serde_json::Value) -> Result<(), ValidationError> {
    let check = |text: &str| match text.chars().find(|c| is_bidi_control(*c) || (c.is_control() && !matches!(c, '\n' | '\t' | '\r'))) {
        Some(bad) => Err(ValidationError::new(
            field,
            format!(
                "{field} has a string with U+{:04X}; control characters (but newlines and tabs) and direction overrides are not accepted",
                bad as u32
            ),
        )),
        None => Ok(()),
    };
    match value {
        serde_json::Value::String(text) => check(text),
        serde_json::Value::Array(items) => items.iter().try_for_each(|item| check_json_text(field, item)),
        serde_json::Value::Object(members) => members.iter().try_for_each(|(key, item)| {
            check(key)?;
            check_json_text(field, item)
        }),
        _ => Ok(()),
    }
}

pub(crate) fn check_text(field: &str, text: &str, max_chars: usize, allow_newlines: bool) -> Result<(), ValidationError> {
    if let Some(bad) = text.chars().find(|c| is_bidi_control(*c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} contains the direction override U+{:04X}, which changes how the text after it is shown; \
                 write right-to-left text without overrides",
                bad as u32
            ),
        ));
    }
    if let Some(bad) = text.chars().find(|c| c.is_control() && !(allow_newlines && *c == '\n')) {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} contains the control character U+{:04X}; {}",
                bad as u32,
                if allow_newlines {
                    "only printable characters and newlines are accepted"
                } else {
                    "only printable characters on one line are accepted"
                }
            ),
        ));
    }
    let count = text.chars().count();
    if count > max_chars {
        return Err(ValidationError::new(field, format!("{field} is {count} characters long; at most {max_chars} are accepted")));
    }
    Ok(())
}
