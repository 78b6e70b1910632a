//! A string that never shows up in logs, error messages or serialized config: passwords and
//! tokens from the config.
//!
//! `Debug`, `Display` and `Serialize` all give `**redacted**`; only [`Secret::expose`] hands the
//! value out, for the client library that sends it. Reading secrets from files or the
//! environment (`password_file`, `${VAR}`) is the app's config loader's job; no I/O here.

use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// What every printed or serialized form of a [`Secret`] shows.
pub const REDACTED: &str = "**redacted**";

/// A secret value; `Debug`, `Display` and `Serialize` give `**redacted**`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
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
    /// Whether the secret is empty (e.g. no token for a server without auth).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Serialized config never carries the secret: it serializes as `**redacted**` (an empty
/// secret stays empty, so "no token" is still visible as such).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn redacts() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "**redacted** **redacted**");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn serializes_redacted_and_reads_plain() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct C {
            token: Secret,
        }
        let c: C = serde_json::from_str(r#"{"token":"hunter2"}"#).unwrap();
        assert_eq!(c.token.expose(), "hunter2");
        let out = serde_json::to_string(&c).unwrap();
        assert_eq!(out, r#"{"token":"**redacted**"}"#);
        assert!(!out.contains("hunter2"));
        let empty = C {
            token: Secret::default(),
        };
        assert_eq!(serde_json::to_string(&empty).unwrap(), r#"{"token":""}"#);
    }
}
