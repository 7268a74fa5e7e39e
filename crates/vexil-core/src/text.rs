//! Checks shared by every free-text field (reasons, descriptions, owners, targeting keys).

use crate::ValidationError;

/// Refuses control characters (newlines included unless `allow_newlines`) and text longer than `max_chars`.
///
/// Free text ends up in terminals, log lines and audit records; a stray escape sequence or a forged
/// newline there is how audit trails get spoofed, so it is refused rather than cleaned.
pub(crate) fn check_text(field: &str, text: &str, max_chars: usize, allow_newlines: bool) -> Result<(), ValidationError> {
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
