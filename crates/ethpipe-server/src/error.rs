//! Bad input, at the bottom of the crate: the store (cursors, directions),
//! the service (backfill rules) and the HTTP edge (path and query values)
//! all refuse input with an [`Invalid`], which the edge answers with a 400.

/// Input that cannot be used: what was wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Invalid {
        Invalid(message.into())
    }

    /// Echoes user input in messages, shortened so a huge value cannot bloat them.
    pub fn shown(text: &str) -> String {
        if text.chars().count() > 80 {
            format!("{}…", text.chars().take(80).collect::<String>())
        } else {
            text.to_string()
        }
    }
}
