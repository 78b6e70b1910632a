//! Topic patterns: MQTT filters whose segments can name the asset and the signal.
//!
//! `plant/{asset}/{signal}` subscribes to `plant/+/+` and takes the asset and signal from the
//! 2nd and 3rd topic levels. Plain `+` and a trailing `#` work as in MQTT.
//!
//! A shared subscription `$share/<group>/<pattern>` (MQTT 5, and Mosquitto for 3.1.1 too)
//! subscribes with the prefix, so the broker splits the stream among the group's nodes; the
//! topics delivered carry no prefix and are matched against `<pattern>`.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Literal(String),
    Plus,
    Asset,
    Signal,
    Hash,
}

/// A parsed subscription topic pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPattern {
    segs: Vec<Seg>,
    /// Shared-subscription group (`$share/<group>/…`), if any.
    share: Option<String>,
}

/// What a topic told us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicMatch<'t> {
    /// The whole topic of the message.
    pub topic: &'t str,
    /// The `{asset}` level, if the pattern has one.
    pub asset: Option<&'t str>,
    /// The `{signal}` level, if the pattern has one.
    pub signal: Option<&'t str>,
}

/// Why a pattern is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("topic pattern `{pattern}`: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl TopicPattern {
    /// Parses a pattern such as `plant/{asset}/{signal}` or `sensors/#`.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let err = |reason| PatternError {
            pattern: pattern.to_string(),
            reason,
        };
        if pattern.is_empty() {
            return Err(err("is empty"));
        }
        let (share, pattern) =
            match pattern.strip_prefix("$share/") {
                Some(rest) => match rest.split_once('/') {
                    Some((g, p)) if !g.is_empty() && !g.contains(['+', '#']) && !p.is_empty() => {
                        (Some(g.to_string()), p)
                    }
                    _ => return Err(err(
                        "a shared subscription is `$share/<group>/<pattern>` with a group name \
                         without wildcards",
                    )),
                },
                None => (None, pattern),
            };
        let parts: Vec<&str> = pattern.split('/').collect();
        let mut segs = Vec::with_capacity(parts.len());
        let (mut has_asset, mut has_signal) = (false, false);
        for (i, p) in parts.iter().enumerate() {
            let seg = match *p {
                "+" => Seg::Plus,
                "#" if i + 1 == parts.len() => Seg::Hash,
                "#" => return Err(err("`#` is only allowed as the last level")),
                "{asset}" if !has_asset => {
                    has_asset = true;
                    Seg::Asset
                }
                "{signal}" if !has_signal => {
                    has_signal = true;
                    Seg::Signal
                }
                "{asset}" | "{signal}" => {
                    return Err(err("`{asset}` and `{signal}` may appear once each"))
                }
                lit if lit.contains(['+', '#', '{', '}']) => {
                    return Err(err("wildcards and placeholders must fill a whole level"))
                }
                lit => Seg::Literal(lit.to_string()),
            };
            segs.push(seg);
        }
        Ok(Self { segs, share })
    }

    /// The MQTT filter to subscribe to (placeholders become `+`; a shared subscription keeps
    /// its `$share/<group>/` prefix).
    pub fn filter(&self) -> String {
        self.to_string()
            .replace("{asset}", "+")
            .replace("{signal}", "+")
    }

    /// The shared-subscription group, if the pattern is `$share/<group>/…`.
    pub fn share_group(&self) -> Option<&str> {
        self.share.as_deref()
    }

    /// True when the pattern names the asset in a topic level.
    pub fn has_asset(&self) -> bool {
        self.segs.contains(&Seg::Asset)
    }

    /// True when the pattern names the signal in a topic level.
    pub fn has_signal(&self) -> bool {
        self.segs.contains(&Seg::Signal)
    }

    /// Matches a concrete topic; `None` when it does not match.
    pub fn matches<'t>(&self, topic: &'t str) -> Option<TopicMatch<'t>> {
        let mut m = TopicMatch {
            topic,
            ..Default::default()
        };
        let mut levels = topic.split('/');
        for seg in &self.segs {
            if *seg == Seg::Hash {
                return Some(m);
            }
            let level = levels.next()?;
            match seg {
                Seg::Literal(l) if l != level => return None,
                Seg::Asset => m.asset = Some(level),
                Seg::Signal => m.signal = Some(level),
                _ => {}
            }
        }
        if levels.next().is_some() {
            return None;
        }
        Some(m)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(g) = &self.share {
            write!(f, "$share/{g}/")?;
        }
        for (i, s) in self.segs.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match s {
                Seg::Literal(l) => f.write_str(l)?,
                Seg::Plus => f.write_str("+")?,
                Seg::Asset => f.write_str("{asset}")?,
                Seg::Signal => f.write_str("{signal}")?,
                Seg::Hash => f.write_str("#")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_plus() {
        let p = TopicPattern::parse("plant/{asset}/{signal}").unwrap();
        assert_eq!(p.filter(), "plant/+/+");
        let m = p.matches("plant/P-101/temp_c").unwrap();
        assert_eq!((m.asset, m.signal), (Some("P-101"), Some("temp_c")));
        assert!(p.matches("plant/P-101").is_none());
        assert!(p.matches("plant/P-101/temp_c/x").is_none());
        assert!(p.matches("other/P-101/temp_c").is_none());
    }

    #[test]
    fn hash_matches_rest() {
        let p = TopicPattern::parse("a/{asset}/#").unwrap();
        assert_eq!(p.filter(), "a/+/#");
        assert_eq!(p.matches("a/M1/x/y").unwrap().asset, Some("M1"));
        assert_eq!(p.matches("a/M1").unwrap().asset, Some("M1"));
    }

    #[test]
    fn bad_patterns_are_named() {
        for bad in [
            "",
            "a/#/b",
            "a/b+",
            "a/{asset}/{asset}",
            "a/x{signal}",
            "$share/",
            "$share/g",
            "$share//a",
            "$share/g+/a",
        ] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_subscriptions_keep_the_prefix_in_the_filter_only() {
        let p = TopicPattern::parse("$share/line-1/plant/{asset}/{signal}").unwrap();
        assert_eq!(p.filter(), "$share/line-1/plant/+/+");
        assert_eq!(p.share_group(), Some("line-1"));
        assert_eq!(p.to_string(), "$share/line-1/plant/{asset}/{signal}");
        let m = p.matches("plant/P-101/temp_c").unwrap();
        assert_eq!((m.asset, m.signal), (Some("P-101"), Some("temp_c")));
        assert!(p.matches("$share/line-1/plant/P-101/temp_c").is_none());
    }
}
