//! Paths of mapped JSON: `$` (the record), `.key`, `["key"]` / `['key']`, `[n]`; parsing and
//! lookup with an error that names the path, the level and what was there. Nothing else.

use super::super::PayloadError;
use crate::metrics::RejectReason;
use serde_json::Value;
use std::fmt::Write;

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Path {
    pub(crate) text: String,
    segs: Vec<Seg>,
}

pub(crate) fn parse_path(p: &str) -> Result<Path, String> {
    let rest = p
        .strip_prefix('$')
        .ok_or_else(|| format!("`{p}` does not start with `$`"))?;
    let mut segs = Vec::new();
    let mut it = rest.char_indices().peekable();
    while let Some((at, c)) = it.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some((_, k)) = it.next_if(|(_, k)| *k != '.' && *k != '[') {
                    key.push(k);
                }
                if key.is_empty() {
                    return Err(format!("`{p}`: empty key after `.` at {}", at + 1));
                }
                segs.push(Seg::Key(key));
            }
            '[' => {
                let mut inner = String::new();
                let mut closed = false;
                for (_, k) in it.by_ref() {
                    if k == ']' {
                        closed = true;
                        break;
                    }
                    inner.push(k);
                }
                if !closed {
                    return Err(format!("`{p}`: `[` without `]`"));
                }
                let quoted = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
                match quoted {
                    Some(q) => segs.push(Seg::Key(q.to_string())),
                    None => segs.push(Seg::Index(inner.parse::<usize>().map_err(|_| {
                        format!("`{p}`: `[{inner}]` is neither an index nor a quoted key")
                    })?)),
                }
            }
            _ => return Err(format!("`{p}`: expected `.` or `[` at {}", at + 2)),
        }
    }
    Ok(Path {
        text: p.to_string(),
        segs,
    })
}

impl Path {
    pub(crate) fn get<'v>(&self, root: &'v Value) -> Result<&'v Value, PayloadError> {
        let mut v = root;
        for (n, s) in self.segs.iter().enumerate() {
            let next = match (s, v) {
                (Seg::Key(k), Value::Object(m)) => m.get(k),
                (Seg::Index(i), Value::Array(a)) => a.get(*i),
                _ => None,
            };
            v = next.ok_or_else(|| {
                let here = match v {
                    Value::Object(m) => {
                        let mut s = String::from("keys there: ");
                        for (i, k) in m.keys().take(12).enumerate() {
                            let _ = write!(s, "{}{k}", if i > 0 { ", " } else { "" });
                        }
                        if m.is_empty() {
                            s.push_str("none");
                        }
                        s
                    }
                    Value::Array(a) => format!("an array of {} there", a.len()),
                    other => format!("{} there", kind(other)),
                };
                PayloadError::new(
                    RejectReason::NoMatch,
                    format!(
                        "path `{}` matched nothing: no {} at level {} ({here})",
                        self.text,
                        match s {
                            Seg::Key(k) => format!("key `{k}`"),
                            Seg::Index(i) => format!("element {i}"),
                        },
                        n + 1
                    ),
                )
            })?;
        }
        Ok(v)
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
