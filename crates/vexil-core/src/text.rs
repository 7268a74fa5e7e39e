//! Checks shared by every free-text field (reasons, descriptions, owners, targeting keys).

use crate::ValidationError;

/// The bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): they reorder how the text
/// after them is shown ("Trojan Source"), so a reason or a name could display as something it does not say.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: whitespace, zero-width and other format characters, fillers.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || is_bidi_control(c)
        || matches!(
            c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        )
}

/// Whether the text shows anything at all: a reason of only spaces or zero-width characters is no reason.
pub fn has_visible_text(text: &str) -> bool {
    text.chars().any(|c| !is_invisible(c) && !c.is_control())
}

/// Refuses control characters (newlines included unless `allow_newlines`), bidirectional overrides, and text longer
/// than `max_chars`.
///
/// Free text ends up in terminals, log lines and audit records; a stray escape sequence, a forged newline or a
/// direction override there is how audit trails get spoofed, so it is refused rather than cleaned.
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
