//! Understanding a question (deterministic, no model): which visible assets, signals,
//! aggregate and time range it asks about, what kind of question it is, whether it names an
//! asset the operator may not see (or that does not exist: the two are never told apart), and
//! whether it tries prompt injection.
//!
//! Assets: tags in any spelling (`P-101`, `p101`, `p 101`), kind and number (`pump 101`), a
//! kind alone (`the pump`: every visible asset of that kind), or the payload's asset. Signals:
//! the words of their names (split on `_`, unit suffix dropped) and [`SIGNAL_SYNONYMS`];
//! words of four letters or more may be one edit off (two from seven letters). Only the
//! visible assets' tags, kinds and signal names are consulted: no other asset's existence
//! can change the result.

use super::when::{parse_range, this_shift, TimeRange};
use super::words::*;
use super::AskOptions;
use crate::text::display_signal;

/// What kind of question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value or aggregate of signals.
    Value,
    /// Why an asset behaves as it does (its incident and diagnosis).
    Why,
    /// How an asset is doing.
    Status,
    /// Which assets need attention (ranked).
    Attention,
    /// How many anomalies.
    Count,
    /// Nothing the node can answer.
    Unknown,
}

/// The aggregate asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Latest value.
    Latest,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Mean.
    Mean,
    /// Change per hour over the range.
    Trend,
}

impl Aggregate {
    /// The evidence's aggregate name.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Latest => "latest",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Mean => "mean",
            Aggregate::Trend => "trend_per_h",
        }
    }
}

/// A visible asset as understanding sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    /// Its tag.
    pub tag: String,
    /// Its kind word (`pump`, `motor`, `compressor`; the profile name's last part).
    pub kind: String,
    /// Its signal names.
    pub signals: Vec<String>,
}

/// What a question was understood to ask.
#[derive(Clone, Debug, PartialEq)]
pub struct Understanding {
    /// Its kind.
    pub kind: Kind,
    /// Visible assets it names (tags; empty: none named).
    pub assets: Vec<String>,
    /// An asset it names that is not visible (or does not exist), as written.
    pub unknown_asset: Option<String>,
    /// Signals it names (full names, of any visible asset).
    pub signals: Vec<String>,
    /// The question's signal words (canonical), for "no data for …" answers.
    pub signal_words: Vec<String>,
    /// The aggregate.
    pub aggregate: Aggregate,
    /// The time range.
    pub range: TimeRange,
    /// It contains a prompt-injection attempt or asks for configuration or secrets.
    pub injection: bool,
    /// Kind word of an attention question's assets ("which pumps"), if any.
    pub kind_filter: Option<String>,
}

/// Kind words recognised even when no visible asset is of that kind.
const KINDS: &[&str] = &[
    "pump",
    "motor",
    "compressor",
    "fan",
    "blower",
    "conveyor",
    "turbine",
    "gearbox",
    "mixer",
    "chiller",
    "boiler",
    "valve",
    "press",
];

/// The kind word of a profile name: `centrifugal-pump` → `pump`.
pub fn kind_of(profile_name: &str) -> String {
    profile_name
        .rsplit(['-', '_', ' '])
        .next()
        .unwrap_or(profile_name)
        .to_ascii_lowercase()
}

/// The words of a signal name without its unit suffix: `bearing_temp_c` → `bearing`, `temp`.
pub fn signal_tokens(name: &str) -> Vec<String> {
    display_signal(name)
        .split('_')
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Lower-case words of a question: letters, digits, `:` `-` `'` inside words; a number glued
/// to a unit is split (`15min` → `15`, `min`; `6am` → `6`, `am`).
pub fn tokens(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || matches!(c, ':' | '-' | '\''))) {
        let w = raw.trim_matches(|c: char| matches!(c, ':' | '-' | '\''));
        let w = w.strip_suffix("'s").unwrap_or(w);
        if w.is_empty() {
            continue;
        }
        let split = w
            .char_indices()
            .find(|(i, c)| *i > 0 && c.is_alphabetic())
            .filter(|_| w.starts_with(|c: char| c.is_ascii_digit()));
        match split {
            Some((i, _)) if w[..i].bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                out.push(w[..i].to_string());
                out.push(w[i..].to_string());
            }
            _ => out.push(w.to_string()),
        }
    }
    out
}

/// The letters-and-digits key of a tag: `P-101` → `p101`.
fn tag_key(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Looks like an asset tag: 1–5 letters, an optional `-`, 1–5 digits, an optional letter.
fn tag_like(w: &str) -> bool {
    let b = w.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let mut i = letters;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let nd = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = b.len() - i - nd;
    (1..=5).contains(&letters)
        && (1..=5).contains(&nd)
        && rest <= 1
        && b[i + nd..].iter().all(u8::is_ascii_alphabetic)
        && !matches!(w, "m3" | "m2" | "co2" | "h2" | "o2" | "h2o")
}

fn has_phrase(padded: &str, phrases: &[&str]) -> bool {
    phrases
        .iter()
        .any(|p| padded.contains(&format!(" {} ", p.trim())))
}

/// Typo tolerance: a word of four letters or more that is not known is replaced by the
/// closest lexicon word within its edit budget (first of equals).
fn correct(w: &str, lexicon: &[String]) -> Option<String> {
    let budget = typo_budget(w.chars().count());
    if budget == 0
        || !w.chars().all(|c| c.is_ascii_alphabetic())
        || PLAIN_WORDS.contains(&w)
        || lexicon.iter().any(|l| l == w)
    {
        return None;
    }
    let mut best: Option<(usize, &String)> = None;
    for l in lexicon.iter().filter(|l| l.len() >= 4) {
        let d = edit_distance(w, l, budget.min(typo_budget(l.len())));
        if d <= budget.min(typo_budget(l.len())) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, l));
        }
    }
    best.map(|(_, l)| l.clone())
}

fn lexicon(visible: &[Known]) -> Vec<String> {
    let mut lex: Vec<String> = Vec::new();
    let lists: [&[&str]; 7] = [
        MAX_WORDS,
        MIN_WORDS,
        MEAN_WORDS,
        TREND_WORDS,
        LATEST_WORDS,
        COUNT_OBJECTS,
        KINDS,
    ];
    for l in lists {
        lex.extend(l.iter().map(|s| s.to_string()));
    }
    lex.extend(SIGNAL_SYNONYMS.iter().map(|(w, _)| w.to_string()));
    for p in WHY_PHRASES
        .iter()
        .chain(STATUS_PHRASES)
        .chain(ATTENTION_PHRASES)
    {
        if !p.contains(' ') {
            lex.push(p.to_string());
        }
    }
    lex.extend(["yesterday", "today", "shift", "minutes", "hours"].map(String::from));
    for k in visible {
        lex.push(k.kind.clone());
        for s in &k.signals {
            lex.extend(signal_tokens(s));
        }
    }
    lex.sort();
    lex.dedup();
    lex
}

/// Understands `text` (see the module doc). `hint` is the payload's asset; `visible` the
/// assets the operator may see.
pub fn understand(
    text: &str,
    hint: Option<&str>,
    visible: &[Known],
    received_ns: i64,
    opts: &AskOptions,
) -> Understanding {
    let lower = text.to_lowercase();
    let raw_padded = format!(" {} ", tokens(&lower).join(" "));
    let injection = INJECTION_MARKERS.iter().any(|m| {
        if m.contains(' ') {
            raw_padded.contains(&format!(" {m} "))
        } else {
            tokens(&lower).iter().any(|t| t.starts_with(m))
        }
    });
    let lex = lexicon(visible);
    let toks: Vec<String> = tokens(&lower)
        .into_iter()
        .map(|t| correct(&t, &lex).unwrap_or(t))
        .collect();
    let padded = format!(" {} ", toks.join(" "));

    // Assets.
    let mut assets: Vec<String> = Vec::new();
    let mut unknown: Option<String> = None;
    let push = |v: &mut Vec<String>, tag: &str| {
        if !v.iter().any(|a| a == tag) {
            v.push(tag.to_string());
        }
    };
    let by_key = |key: &str| visible.iter().find(|k| tag_key(&k.tag) == key);
    let mut i = 0;
    while i < toks.len() {
        let w = toks[i].as_str();
        let next = toks.get(i + 1).map(String::as_str);
        let next_digits = next.filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty());
        let kind_word = w.trim_end_matches('s');
        if let Some(k) = by_key(&tag_key(w)).filter(|_| tag_like(w)) {
            push(&mut assets, &k.tag);
        } else if let Some(k) = next_digits.and_then(|n| by_key(&format!("{w}{n}"))) {
            push(&mut assets, &k.tag);
            i += 1;
        } else if let (true, Some(n)) = (
            KINDS.contains(&kind_word) || visible.iter().any(|k| k.kind == kind_word),
            next_digits,
        ) {
            match visible
                .iter()
                .find(|k| k.kind == kind_word && digits(&k.tag) == n)
            {
                Some(k) => push(&mut assets, &k.tag),
                None => {
                    unknown.get_or_insert(format!("{kind_word} {n}"));
                }
            }
            i += 1;
        } else if tag_like(w) {
            unknown.get_or_insert(w.to_ascii_uppercase());
        }
        i += 1;
    }
    if assets.is_empty() && unknown.is_none() {
        if let Some(h) = hint {
            match visible.iter().find(|k| k.tag == h) {
                Some(k) => assets.push(k.tag.clone()),
                None => unknown = Some(h.to_string()),
            }
        }
    }

    // Signal words (canonical); "current" means "now" when another signal is named.
    let mut words: Vec<String> = Vec::new();
    for t in &toks {
        if let Some((_, c)) = SIGNAL_SYNONYMS.iter().find(|(w, _)| *w == t) {
            words.push(c.to_string());
        } else if visible
            .iter()
            .any(|k| k.signals.iter().any(|s| signal_tokens(s).contains(t)))
        {
            words.push(t.clone());
        }
    }
    words.dedup();
    let named = |ws: &[String]| ws.iter().any(|w| !QUALIFIERS.contains(&w.as_str()));
    if words.iter().any(|w| w == "current") {
        let others: Vec<String> = words.iter().filter(|w| *w != "current").cloned().collect();
        if named(&others) {
            words = others;
        }
    }

    // Kind words alone ("the pump", "which pumps"), when no asset is named.
    let mut kind_filter = None;
    for t in &toks {
        let kw = t.trim_end_matches('s');
        if !(KINDS.contains(&kw) || visible.iter().any(|k| k.kind == kw)) {
            continue;
        }
        let of_kind: Vec<&Known> = visible.iter().filter(|k| k.kind == kw).collect();
        let is_signal_word = words.iter().any(|w| w == kw);
        if assets.is_empty() && unknown.is_none() && !of_kind.is_empty() {
            kind_filter = Some(kw.to_string());
            if !is_signal_word || of_kind.len() == 1 {
                for k in of_kind {
                    push(&mut assets, &k.tag);
                }
            }
        } else if assets.is_empty() && unknown.is_none() && of_kind.is_empty() && !is_signal_word {
            unknown = Some(format!("the {kw}"));
        }
    }

    // Signals of the assets in scope (or of every visible asset).
    let scope: Vec<&Known> = visible
        .iter()
        .filter(|k| assets.is_empty() || assets.contains(&k.tag))
        .collect();
    let mut scored: Vec<(usize, String)> = Vec::new();
    if named(&words) {
        for k in &scope {
            for s in &k.signals {
                let st = signal_tokens(s);
                let hits = st.iter().filter(|t| words.contains(t)).count();
                let full = hits == st.len();
                let core = st
                    .iter()
                    .any(|t| words.contains(t) && !QUALIFIERS.contains(&t.as_str()));
                if core || full {
                    scored.push((hits, s.clone()));
                }
            }
        }
    }
    // The best-matching signals over the assets in scope.
    let best = scored.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut signals: Vec<String> = Vec::new();
    for (n, s) in scored {
        if n == best && n > 0 && !signals.contains(&s) {
            signals.push(s);
        }
    }

    // Aggregate.
    // "30 min" is a duration, not the minimum.
    let any = |l: &[&str]| {
        toks.iter().enumerate().any(|(i, t)| {
            l.contains(&t.as_str())
                && !(t == "min" && i > 0 && toks[i - 1].bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let aggregate = if any(MAX_WORDS) || padded.contains(" how high ") {
        Aggregate::Max
    } else if any(MIN_WORDS) || padded.contains(" how low ") {
        Aggregate::Min
    } else if any(MEAN_WORDS) {
        Aggregate::Mean
    } else if any(TREND_WORDS) || padded.contains(" going up ") || padded.contains(" going down ") {
        Aggregate::Trend
    } else {
        Aggregate::Latest
    };
    let explicit_agg = aggregate != Aggregate::Latest || any(LATEST_WORDS);

    // Kind.
    let count_phrase = ["how many", "number of", "count"]
        .iter()
        .any(|p| padded.contains(&format!(" {p} ")));
    let count_object = any(COUNT_OBJECTS);
    let kind = if has_phrase(&padded, ATTENTION_PHRASES) {
        Kind::Attention
    } else if has_phrase(&padded, WHY_PHRASES) {
        Kind::Why
    } else if count_phrase && count_object {
        Kind::Count
    } else if !signals.is_empty() || (named(&words) && !count_object) {
        Kind::Value
    } else if count_object {
        Kind::Count
    } else if has_phrase(&padded, STATUS_PHRASES) {
        Kind::Status
    } else if aggregate != Aggregate::Latest {
        Kind::Value
    } else if !assets.is_empty() {
        Kind::Status
    } else if explicit_agg {
        Kind::Value
    } else {
        Kind::Unknown
    };
    // An injection attempt is answered only as far as it names a visible asset or a signal.
    let kind = if injection && assets.is_empty() && signals.is_empty() && kind != Kind::Attention {
        Kind::Unknown
    } else {
        kind
    };

    // Time range: stated, or the kind's default.
    let range = match parse_range(&toks, received_ns, opts) {
        Some(r) if !(r.is_now() && kind == Kind::Value && aggregate != Aggregate::Latest) => r,
        _ => match kind {
            Kind::Attention => this_shift(received_ns, opts),
            Kind::Value if aggregate == Aggregate::Latest => TimeRange::now(received_ns, false),
            Kind::Count | Kind::Why => TimeRange::last(received_ns, 86_400, false),
            Kind::Status => TimeRange::now(received_ns, false),
            _ => TimeRange::last(received_ns, 3600, false),
        },
    };
    // A stated range turns "what is the bearing temp today" into the mean… no: the latest
    // value stays the latest; a range with a latest value reads the last value in the range.
    Understanding {
        kind,
        assets,
        unknown_asset: unknown,
        signals,
        signal_words: words,
        aggregate,
        range,
        injection,
        kind_filter: if kind == Kind::Attention {
            kind_filter
        } else {
            None
        },
    }
}
