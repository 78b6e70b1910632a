//! The language-model boundary: prompts in, text out, tokens streamed to a callback.
//!
//! The node's reasoning code talks to a model only through [`LanguageModel`]; the candle engine
//! (`millwright-slm`) and the rule-based fallback both implement it. Nothing here does I/O.

use serde::{Deserialize, Serialize};

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
        }
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
}
