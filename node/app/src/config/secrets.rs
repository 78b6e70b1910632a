//! Secrets of the config file from outside it: `password_file` / `token_file` (a file whose
//! content, without its trailing newline, is the secret — e.g. a systemd credential at
//! `${CREDENTIALS_DIRECTORY}/token`; a relative path is relative to the config file) and `${VAR}` in `password` / `token` (expanded from the
//! environment; `$${` is a literal `${`).
//!
//! Runs on the config text before it is deserialized: a `*_file` key is read and blanked out
//! of the text (offsets and line numbers stay), so the sections' own types need no `*_file`
//! field; the resolved values are set on the parsed config afterwards ([`apply`]). A missing
//! file or variable is a [`ConfigProblem`] naming the field, the file or variable and the line.
//! No secret value ever goes into a problem's message.

use super::{line_of, Config, ConfigProblem};
use millwright_core::Secret;
use std::path::Path;

/// The secret fields: section and key. `<key>_file` is accepted next to each.
pub const SECRET_FIELDS: [(&str, &str); 2] = [("mqtt", "password"), ("influxdb", "token")];

/// Secrets found in the config text, to set on the parsed config.
#[derive(Default)]
pub struct Resolved {
    /// (section, key, value).
    values: Vec<(&'static str, &'static str, Secret)>,
}

/// The environment to expand `${VAR}` from.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads the `*_file` keys and expands `${VAR}` in the secret fields of `text`. Returns the
/// text with the `*_file` keys blanked out, the secrets, and every problem found. Text that
/// is not valid TOML is returned as it is (the TOML reader reports it).
pub fn resolve(
    text: &str,
    base: Option<&Path>,
    env: Env<'_>,
) -> (String, Resolved, Vec<ConfigProblem>) {
    let mut out = text.to_string();
    let mut res = Resolved::default();
    let mut problems = Vec::new();
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return (out, res, problems);
    };
    for (section, key) in SECRET_FIELDS {
        let Some(item) = doc.get(section) else {
            continue;
        };
        let Some(table) = item.as_table_like() else {
            continue;
        };
        let file_key = format!("{key}_file");
        let problem =
            |k: &str, span: Option<std::ops::Range<usize>>, message: String| ConfigProblem {
                path: format!("{section}.{k}"),
                line: span.map(|s| line_of(text, s.start)),
                message,
            };
        if let Some((k, v)) = table.get_key_value(&file_key) {
            let span = k.span();
            if table.contains_key(key) {
                problems.push(problem(
                    &file_key,
                    span.clone(),
                    format!("`{key}` and `{file_key}` are both set; keep one"),
                ));
            }
            let Some(raw) = v.as_str() else {
                problems.push(problem(
                    &file_key,
                    span,
                    "must be a file path (a string)".into(),
                ));
                continue;
            };
            let Some(value_span) = v.span() else {
                continue;
            };
            if item.as_table().is_none_or(toml_edit::Table::is_dotted) {
                problems.push(problem(
                    &file_key,
                    span,
                    format!("is read only in a `[{section}]` table, not an inline table"),
                ));
                continue;
            }
            let read = |path: String| match base {
                Some(b) if Path::new(&path).is_relative() => {
                    read_secret_file(&b.join(&path).display().to_string())
                }
                _ => read_secret_file(&path),
            };
            match expand(raw, env).and_then(read) {
                Ok(secret) => res.values.push((section, key, secret)),
                Err(why) => problems.push(problem(&file_key, span.clone(), why)),
            }
            // Blank `key_file = "…"` so the section's type never sees it.
            if let Some(s) = span {
                blank(&mut out, s.start..value_span.end);
            }
        } else if let Some((k, v)) = table.get_key_value(key) {
            let Some(raw) = v.as_str() else {
                continue; // the section's type reports the wrong type
            };
            if !raw.contains('$') {
                continue;
            }
            match expand(raw, env) {
                Ok(value) => res.values.push((section, key, Secret::new(value))),
                Err(why) => problems.push(problem(key, k.span(), why)),
            }
        }
    }
    (out, res, problems)
}

/// A problem the TOML reader found in a secret field may quote the value (`invalid type:
/// integer `1234``): its message is replaced by one that does not.
pub fn redact_problem(p: &mut ConfigProblem) {
    if SECRET_FIELDS
        .iter()
        .any(|(section, key)| p.path == format!("{section}.{key}"))
    {
        p.message = "must be a string (the value is not shown: it is a secret)".into();
    }
}

/// Sets the resolved secrets on the parsed config.
pub fn apply(cfg: &mut Config, res: Resolved) {
    for (section, key, value) in res.values {
        match (section, key) {
            ("mqtt", "password") => {
                if let Some(m) = cfg.mqtt.as_mut() {
                    m.password = Some(value);
                }
            }
            ("influxdb", "token") => {
                if let Some(i) = cfg.influxdb.as_mut() {
                    i.token = value;
                }
            }
            _ => {}
        }
    }
}

/// `${VAR}` replaced by the variable's value; `$${` is a literal `${`. The error names the
/// variable, never a value.
pub fn expand(raw: &str, env: Env<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((head, after)) = rest.split_once('$') {
        out.push_str(head);
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some((name, tail)) = body.split_once('}') else {
                return Err("has `${` without a closing `}`".into());
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a variable name"));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable `{name}` is not set")),
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The file's content without its trailing newline (`\n` or `\r\n`).
fn read_secret_file(path: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(format!("`{path}` is empty"));
    }
    Ok(Secret::new(value))
}

/// Replaces `range` of `src` with spaces (newlines kept).
fn blank(src: &mut String, range: std::ops::Range<usize>) {
    let Some(part) = src.get(range.clone()) else {
        return;
    };
    let spaces: String = part
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    src.replace_range(range, &spaces);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "MQTT_PW" => Some("s3cr3t-pw".into()),
            "CREDS" => Some("/nonexistent-creds".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_escapes() {
        assert_eq!(expand("a${MQTT_PW}b", &env).unwrap(), "as3cr3t-pwb");
        assert_eq!(expand("$${MQTT_PW}", &env).unwrap(), "${MQTT_PW}");
        assert_eq!(expand("pa$$word", &env).unwrap(), "pa$$word");
        let e = expand("${NOPE}", &env).unwrap_err();
        assert_eq!(e, "environment variable `NOPE` is not set");
        assert!(expand("${A", &env).is_err());
        assert!(expand("${A-B}", &env).is_err());
    }

    #[test]
    fn file_keys_are_blanked_and_problems_have_lines() {
        let text = "[site]\nname = \"s\"\n[mqtt]\nhost = \"h\"\nusername = \"u\"\n\
                    password_file = \"${CREDS}/pw\"\n[influxdb]\nurl = \"http://x\"\n\
                    org = \"o\"\nbucket = \"b\"\ntoken = \"${NOPE}\"\n";
        let (out, res, probs) = resolve(text, None, &env);
        assert_eq!(out.len(), text.len());
        assert!(!out.contains("password_file"));
        assert_eq!(out.lines().count(), text.lines().count());
        assert!(res.values.is_empty());
        let got: Vec<_> = probs
            .iter()
            .map(|p| (p.path.as_str(), p.line, p.message.as_str()))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "mqtt.password_file");
        assert_eq!(got[0].1, Some(6));
        assert!(got[0].2.contains("/nonexistent-creds/pw"), "{got:?}");
        assert_eq!(
            got[1],
            (
                "influxdb.token",
                Some(11),
                "environment variable `NOPE` is not set"
            )
        );
    }

    #[test]
    fn resolved_secrets_reach_the_config_and_never_its_debug_or_serialized_form() {
        let dir = std::env::temp_dir().join(format!("mw-secret-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "tok-3141\r\n").unwrap();
        let text = "[site]\nname = \"s\"\n[mqtt]\nhost = \"127.0.0.1\"\nusername = \"u\"\n\
                    password = \"x${MQTT_PW}y\"\n[[mqtt.subscriptions]]\ntopic = \"a/{asset}/{signal}\"\n\
                    [influxdb]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\n\
                    token_file = \"token\"\n";
        let cfg = Config::parse_in(text, Some(&dir), &env).unwrap();
        let m = cfg.mqtt.as_ref().unwrap();
        assert_eq!(m.password.as_ref().unwrap().expose(), "xs3cr3t-pwy");
        assert_eq!(cfg.influxdb.as_ref().unwrap().token.expose(), "tok-3141");
        let debug = format!("{cfg:?} {:?}", m.connection());
        let json = serde_json::to_string(&cfg).unwrap();
        for shown in [&debug, &json] {
            assert!(
                !shown.contains("s3cr3t") && !shown.contains("tok-3141"),
                "{shown}"
            );
            assert!(shown.contains("**redacted**"), "{shown}");
        }
        // A secret of the wrong type is reported without its value.
        let numeric = text.replace("\"x${MQTT_PW}y\"", "918273");
        let probs = Config::parse_in(&numeric, Some(&dir), &env).unwrap_err();
        assert_eq!(probs[0].path, "mqtt.password", "{probs:?}");
        assert_eq!(probs[0].line, Some(6), "{probs:?}");
        assert!(!probs[0].to_string().contains("918273"), "{probs:?}");
        // A missing variable is named (not redacted: it holds no secret).
        let unset = text.replace("MQTT_PW", "UNSET_PW");
        let probs = Config::parse_in(&unset, Some(&dir), &env).unwrap_err();
        assert_eq!(
            probs[0].to_string(),
            "line 6: mqtt.password: environment variable `UNSET_PW` is not set"
        );
        // Both forms at once is a problem; so is an empty file.
        let both = text.replace("token_file", "token = \"t\"\ntoken_file");
        let probs = Config::parse_in(&both, Some(&dir), &env).unwrap_err();
        assert_eq!(probs[0].path, "influxdb.token_file", "{probs:?}");
        assert!(probs[0].message.contains("both set"), "{probs:?}");
        std::fs::write(dir.join("token"), "\n").unwrap();
        let probs = Config::parse_in(text, Some(&dir), &env).unwrap_err();
        assert!(probs[0].message.ends_with("is empty"), "{probs:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
