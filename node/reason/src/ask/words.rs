//! The word lists of question understanding: signal synonyms, aggregate, kind and time words,
//! injection markers, and the small edit distance used for typo tolerance. Data and two pure
//! helpers only; how they are used lives in [`super::understand`].

/// Question words → the signal-name token they stand for (signal names are split on `_`).
pub const SIGNAL_SYNONYMS: &[(&str, &str)] = &[
    ("vibration", "vibration"),
    ("vibrations", "vibration"),
    ("vibrating", "vibration"),
    ("vibrate", "vibration"),
    ("vibrates", "vibration"),
    ("vib", "vibration"),
    ("shaking", "vibration"),
    ("shake", "vibration"),
    ("shakes", "vibration"),
    ("rms", "vibration"),
    ("temperature", "temp"),
    ("temperatures", "temp"),
    ("temp", "temp"),
    ("temps", "temp"),
    ("hot", "temp"),
    ("hotter", "temp"),
    ("hottest", "temp"),
    ("heat", "temp"),
    ("warm", "temp"),
    ("overheating", "temp"),
    ("cold", "temp"),
    ("coldest", "temp"),
    ("bearing", "bearing"),
    ("bearings", "bearing"),
    ("flow", "flow"),
    ("flows", "flow"),
    ("flowrate", "flow"),
    ("throughput", "flow"),
    ("current", "current"),
    ("amps", "current"),
    ("amperage", "current"),
    ("ampere", "current"),
    ("pressure", "pressure"),
    ("pressures", "pressure"),
    ("discharge", "discharge"),
    ("outlet", "discharge"),
    ("suction", "suction"),
    ("inlet", "suction"),
    ("oil", "oil"),
    ("speed", "speed"),
    ("rpm", "speed"),
    ("power", "power"),
    ("kw", "power"),
    ("shaft", "shaft"),
    ("winding", "winding"),
    ("windings", "winding"),
    ("stator", "winding"),
    ("motor", "motor"),
];

/// Signal tokens that only qualify (a signal is not named by its qualifier alone).
pub const QUALIFIERS: &[&str] = &[
    "bearing",
    "discharge",
    "suction",
    "oil",
    "shaft",
    "motor",
    "winding",
];

/// Aggregate words.
pub const MAX_WORDS: &[&str] = &[
    "max", "maximum", "highest", "peak", "peaked", "top", "hottest", "largest", "biggest", "worst",
];
/// Minimum words.
pub const MIN_WORDS: &[&str] = &["min", "minimum", "lowest", "coldest", "smallest", "least"];
/// Mean words.
pub const MEAN_WORDS: &[&str] = &["average", "avg", "mean", "typical", "averaged"];
/// Trend words.
pub const TREND_WORDS: &[&str] = &[
    "trend",
    "trending",
    "rising",
    "rise",
    "rises",
    "falling",
    "fall",
    "falls",
    "increasing",
    "decreasing",
    "climbing",
    "dropping",
    "change",
    "changing",
    "changed",
    "drifting",
];
/// Latest-value words.
pub const LATEST_WORDS: &[&str] = &["now", "currently", "latest", "present", "moment", "reading"];

/// Words that make a question a "how many anomalies" question (after "how many", "number
/// of", "count").
pub const COUNT_OBJECTS: &[&str] = &[
    "anomalies",
    "anomaly",
    "alarms",
    "alarm",
    "alerts",
    "alert",
    "events",
    "event",
    "incidents",
    "incident",
    "faults",
    "fault",
    "deviations",
];

/// Phrases of "why" questions.
pub const WHY_PHRASES: &[&str] = &[
    "why",
    "what's wrong",
    "whats wrong",
    "what is wrong",
    "wrong with",
    "cause",
    "causes",
    "causing",
    "reason",
    "explain",
    "what happened",
    "diagnosis",
    "diagnose",
    "problem with",
    "issue with",
];

/// Phrases of status questions.
pub const STATUS_PHRASES: &[&str] = &[
    "how is",
    "how's",
    "hows",
    "how are",
    "status",
    "state of",
    "doing",
    "healthy",
    "health",
    "condition",
    "okay",
    " ok",
    "running fine",
    "all right",
    "alright",
    "overview",
];

/// Phrases of "which machines need attention" questions.
pub const ATTENTION_PHRASES: &[&str] = &[
    "attention",
    "which machine",
    "which machines",
    "which asset",
    "which assets",
    "which pump",
    "which pumps",
    "which motor",
    "which motors",
    "which compressor",
    "which compressors",
    "which equipment",
    "most urgent",
    "priority",
    "priorities",
    "look at first",
    "worst machine",
    "worst asset",
    "needs maintenance",
    "need maintenance",
    "rank",
];

/// Markers of prompt injection or of requests for the node's configuration and secrets.
pub const INJECTION_MARKERS: &[&str] = &[
    "ignore",
    "disregard",
    "forget",
    "previous instructions",
    "instruction",
    "system prompt",
    "prompt",
    "config",
    "configuration",
    "password",
    "passwd",
    "token",
    "secret",
    "credential",
    "api key",
    "apikey",
    "topic",
    "mqtt",
    "broker",
    "username",
    "jailbreak",
    "you are now",
    "pretend",
    "act as",
    "sudo",
    "admin",
    "reveal",
    "dump",
    "env var",
    "environment",
    "ssh",
    "private key",
    "certificate",
    "root access",
    "developer mode",
];

/// Words that are never corrected as typos (common words close to domain words).
pub const PLAIN_WORDS: &[&str] = &[
    "shift",
    "shifts",
    "slow",
    "lower",
    "lowered",
    "need",
    "needs",
    "what",
    "when",
    "where",
    "which",
    "there",
    "their",
    "last",
    "past",
    "most",
    "show",
    "tell",
    "give",
    "much",
    "many",
    "about",
    "doing",
    "going",
    "right",
    "value",
    "level",
    "state",
    "status",
    "hour",
    "hours",
    "minute",
    "minutes",
    "today",
    "yesterday",
    "since",
    "this",
    "that",
    "with",
    "have",
    "been",
    "does",
    "tower",
    "mower",
    "seed",
    "lean",
    "mail",
    "team",
    "near",
    "shaft",
    "fast",
    "plant",
    "site",
    "week",
    "weeks",
    "days",
    "over",
    "during",
    "were",
    "time",
    "than",
    "then",
    "from",
    "machine",
    "machines",
    "asset",
    "assets",
    "please",
    "list",
    "print",
    "rate",
    "high",
    "some",
    "same",
    "cool",
    "cooler",
    "hold",
    "held",
    "ours",
    "your",
    "into",
    "tell",
    "stop",
    "running",
];

/// Number words.
pub const NUMBER_WORDS: &[(&str, i64)] = &[
    ("a", 1),
    ("an", 1),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("twelve", 12),
    ("fifteen", 15),
    ("twenty", 20),
    ("thirty", 30),
    ("few", 3),
    ("couple", 2),
];

/// Time units → seconds.
pub fn unit_seconds(w: &str) -> Option<i64> {
    Some(match w {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "week" | "weeks" | "w" => 7 * 86_400,
        _ => return None,
    })
}

/// Optimal-string-alignment edit distance (insertions, deletions, substitutions and swaps of
/// neighbours), stopping early above `max`.
pub fn edit_distance(a: &str, b: &str, max: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * w] = i;
        let mut row_min = usize::MAX;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return max + 1;
        }
    }
    d[a.len() * w + b.len()]
}

/// Edits allowed for a word of this length: none below 4 letters, 1 up to 6, 2 from 7.
pub fn typo_budget(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits_and_swaps() {
        assert_eq!(edit_distance("vibraton", "vibration", 2), 1);
        assert_eq!(edit_distance("temprature", "temperature", 2), 1);
        assert_eq!(edit_distance("bearng", "bearing", 2), 1);
        assert_eq!(edit_distance("baering", "bearing", 2), 1);
        assert_eq!(edit_distance("flow", "slow", 2), 1);
        assert_eq!(edit_distance("pump", "compressor", 2), 3);
        assert_eq!(edit_distance("", "abc", 5), 3);
    }
}
