//! A string that never shows up in logs: passwords and tokens from the config.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret value; `Debug` and `Display` print `**redacted**`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**redacted**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**redacted**")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts() {
        let s = super::Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "**redacted** **redacted**");
        assert_eq!(s.expose(), "hunter2");
    }
}
