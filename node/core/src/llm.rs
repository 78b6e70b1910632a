//! The language-model boundary: prompts in, text out, tokens streamed to a callback.
//!
//! The node's reasoning code talks to a model only through [`LanguageModel`]; the candle engine
//! (`millwright-slm`) and the rule-based fallback both implement it. Nothing here does I/O.
//!
//! [`Vocabulary`] is the optional word constraint of a request: the engine masks every token
//! that would write a word outside it. What a "word" is is defined here once
//! ([`split_words`], [`is_word_byte`]) so the engine's mask and every check agree.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Who says a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Fixed instructions; the engine caches the key/values of a shared system prefix.
    System,
    /// The question or task.
    User,
    /// A previous model answer (few-shot examples, conversation).
    Assistant,
}

/// One message of a chat prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat prompt. The engine renders it with the model's own chat template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Messages in order; a leading system message is the cacheable prefix.
    pub messages: Vec<ChatMessage>,
    /// Text the assistant's answer starts with (the engine appends it after the generation
    /// prompt and generates the rest), e.g. `"Likely cause:"`.
    pub answer_prefix: Option<String>,
}

impl Prompt {
    /// A system + user prompt.
    pub fn new(system: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            messages: vec![ChatMessage::system(system), ChatMessage::user(user)],
            answer_prefix: None,
        }
    }
}

/// How to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    /// Most new tokens to generate.
    pub max_tokens: usize,
    /// 0 means greedy (argmax); otherwise softmax temperature.
    pub temperature: f64,
    /// Nucleus sampling threshold (1.0 disables).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 disables).
    pub top_k: usize,
    /// Penalty for tokens already generated (1.0 disables).
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// Seed for sampling; the same seed and prompt give the same text.
    pub seed: u64,
    /// Generation stops before any of these strings (not included in the output).
    pub stop: Vec<String>,
    /// Wall-clock budget for the whole call in milliseconds (None: no limit).
    pub budget_ms: Option<u64>,
    /// Words the answer may use (None: unconstrained). An engine that supports it masks every
    /// token that would write a word or punctuation outside it; the answer prefix counts.
    #[serde(skip)]
    pub vocabulary: Option<Arc<Vocabulary>>,
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            max_tokens: 128,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: 42,
            stop: Vec::new(),
            budget_ms: None,
            vocabulary: None,
        }
    }
}

/// Whether byte `b` belongs to a word: ASCII letters and digits, `_`, and every byte of a
/// non-ASCII character (so `°c`, `m³` and `11σ` are words). A `.` between two digits also
/// belongs to its word (`78.4`); see [`split_words`].
pub fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The words of `text`, in order: maximal runs of word bytes ([`is_word_byte`]), where a `.`
/// with a digit on both sides stays inside its word. Everything else separates words.
pub fn split_words(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for i in 0..b.len() {
        let inner_dot = b[i] == b'.'
            && start.is_some()
            && i > 0
            && b[i - 1].is_ascii_digit()
            && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if is_word_byte(b[i]) || inner_dot {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            // Word runs start and end at ASCII bytes or whole characters.
            if let Some(w) = text.get(s..i) {
                out.push(w);
            }
        }
    }
    if let Some(s) = start {
        if let Some(w) = text.get(s..) {
            out.push(w);
        }
    }
    out
}

/// The words and punctuation a constrained answer may use. Words are compared in ASCII lower
/// case; a word starting with a digit is a number and must be written exactly as allowed.
/// Whitespace is always allowed; other ASCII characters that are not word bytes only when in
/// the punctuation set (default `. , ; : - ( ) %`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    words: BTreeSet<String>,
    numbers: BTreeSet<String>,
    punctuation: BTreeSet<char>,
}

impl Default for Vocabulary {
    fn default() -> Self {
        Self {
            words: BTreeSet::new(),
            numbers: BTreeSet::new(),
            punctuation: ".,;:-()%".chars().collect(),
        }
    }
}

impl Vocabulary {
    /// An empty vocabulary with the default punctuation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows each word of `text` (split by [`split_words`]).
    pub fn allow_text(&mut self, text: &str) {
        for w in split_words(text) {
            self.allow_word(w);
        }
    }

    /// Allows one word (lower-cased; a number when it starts with a digit).
    pub fn allow_word(&mut self, word: &str) {
        let w = word.to_ascii_lowercase();
        if w.is_empty() {
            return;
        }
        if w.as_bytes()[0].is_ascii_digit() {
            self.numbers.insert(w);
        } else {
            self.words.insert(w);
        }
    }

    /// Allows every ASCII punctuation character of `text` (what separates its words).
    pub fn allow_punctuation_in(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_ascii() && !c.is_ascii_whitespace() && !is_word_byte(c as u8) {
                self.punctuation.insert(c);
            }
        }
    }

    /// Whether `word` is allowed (case-insensitive).
    pub fn allows_word(&self, word: &str) -> bool {
        let w = word.to_ascii_lowercase();
        self.words.contains(&w) || self.numbers.contains(&w)
    }

    /// Whether the separator character `c` is allowed.
    pub fn allows_punctuation(&self, c: char) -> bool {
        c.is_whitespace() || self.punctuation.contains(&c)
    }

    /// Every allowed word and number (lower case).
    pub fn all_words(&self) -> impl Iterator<Item = &str> {
        self.words.iter().chain(&self.numbers).map(String::as_str)
    }

    /// The allowed numbers.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.numbers.iter().map(String::as_str)
    }

    /// The allowed punctuation characters.
    pub fn punctuation(&self) -> impl Iterator<Item = char> + '_ {
        self.punctuation.iter().copied()
    }

    /// Allowed words and numbers in all.
    pub fn len(&self) -> usize {
        self.words.len() + self.numbers.len()
    }

    /// True when no word is allowed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every word and separator of `text` the vocabulary does not allow, in order.
    pub fn violations(&self, text: &str) -> Vec<String> {
        let mut out: Vec<String> = split_words(text)
            .into_iter()
            .filter(|w| !self.allows_word(w))
            .map(str::to_string)
            .collect();
        let b = text.as_bytes();
        for (i, c) in text.char_indices() {
            if !c.is_ascii() || is_word_byte(c as u8) || self.allows_punctuation(c) {
                continue;
            }
            let inner_dot = c == '.'
                && i > 0
                && b[i - 1].is_ascii_digit()
                && b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !inner_dot {
                out.push(c.to_string());
            }
        }
        out
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced its end-of-turn / end-of-sequence token.
    Eos,
    /// A stop sequence matched.
    StopSequence,
    /// `max_tokens` reached.
    MaxTokens,
    /// The wall-clock budget ran out.
    Budget,
}

/// What a generation produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Generated text (without the answer prefix and without a matched stop sequence).
    pub text: String,
    /// Tokens in the rendered prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Milliseconds until the first generated token.
    pub ttft_ms: f64,
    /// Milliseconds for the whole call.
    pub total_ms: f64,
    /// Name of the model that produced the text.
    pub model: String,
}

/// Why a model could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SlmError {
    /// The model file is missing, truncated, corrupt or of an unsupported kind.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request queue is full; try again later.
    #[error("model busy: {0} requests already queued")]
    Busy(usize),
    /// The prompt does not fit the context window.
    #[error("prompt of {tokens} tokens does not fit the context of {context} tokens")]
    PromptTooLong {
        /// Prompt tokens.
        tokens: usize,
        /// Context length.
        context: usize,
    },
    /// No model is loaded (absent, or did not fit the RAM).
    #[error("no language model available: {0}")]
    Unavailable(String),
    /// Tensor / kernel failure during inference.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// A text generator: the candle engine, or the rule-based fallback.
pub trait LanguageModel: Send {
    /// Human-readable model name, e.g. `SmolLM2-135M-Instruct Q4_1`.
    fn name(&self) -> &str;
    /// Generates an answer to `prompt`, calling `on_token` with each new piece of text
    /// (always whole UTF-8 characters).
    fn generate(
        &mut self,
        prompt: &Prompt,
        params: &GenParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError>;

    /// Generates answers to several prompts; a model that can decode several sequences in
    /// one forward pass over shared weights overrides this (the default runs them one after
    /// the other). `on_token` gets the index of the request with each piece of text.
    fn generate_batch(
        &mut self,
        requests: &[(Prompt, GenParams)],
        on_token: &mut dyn FnMut(usize, &str),
    ) -> Vec<Result<Completion, SlmError>> {
        requests
            .iter()
            .enumerate()
            .map(|(i, (p, g))| self.generate(p, g, &mut |s| on_token(i, s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_numbers_units_and_tags() {
        assert_eq!(
            split_words("P-101 bearing_temp 78.4 °C (+11σ, 0.9/min). Check it."),
            vec![
                "P",
                "101",
                "bearing_temp",
                "78.4",
                "°C",
                "11σ",
                "0.9",
                "min",
                "Check",
                "it"
            ]
        );
        assert_eq!(split_words("is 78. Then"), vec!["is", "78", "Then"]);
        assert_eq!(split_words("m³/h"), vec!["m³", "h"]);
    }

    #[test]
    fn vocabulary_flags_words_numbers_and_punctuation() {
        let mut v = Vocabulary::new();
        v.allow_text("the pump P-101 is at 78.4 °C");
        assert!(v.allows_word("The") && v.allows_word("78.4") && v.allows_word("°c"));
        assert!(!v.allows_word("78"));
        assert!(v.violations("The pump is at 78.4 °C.").is_empty());
        assert_eq!(
            v.violations("The electric pump is at 78 °C!"),
            vec!["electric", "78", "!"]
        );
        assert!(GenParams::default().vocabulary.is_none());
    }
}
