//! The one error of the domain: a value that breaks a rule, with a message that says what is accepted.

/// Why a name, definition, state or override value was refused.
///
/// The message is written for the person who sent the value: lowercase, no trailing period,
/// naming the offending field and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// The field (or path, such as `rules[2].conditions[0].values`) that was wrong.
    pub field: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl ValidationError {
    /// A refusal of `field`, explained by `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
