//! Config validation results: every problem with the place it was found.

use std::fmt;

/// One problem in a config or profile file, with its path (e.g. `mqtt.subscriptions[2].topic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted path of the offending key.
    pub path: String,
    /// What is wrong, in words an engineer understands.
    pub message: String,
}

impl ValidationError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
