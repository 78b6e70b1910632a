//! Tokenizers built from GGUF metadata (`tokenizer.ggml.*`), and streaming UTF-8-safe decoding.
//!
//! Two kinds, chosen by `tokenizer.ggml.model`:
//! - `gpt2`: byte-level BPE (tokens + ranked merges) with a pre-tokenizer picked from
//!   `tokenizer.ggml.pre` (GPT-2 style with individually split digits for SmolLM2; the
//!   Llama 3 / Qwen 2 style otherwise). No prefix space is added.
//! - `llama` (SentencePiece, used by Gemma, Llama 2, Mistral, Phi-3): pieces with scores and no
//!   merges; adjacent symbols are merged by best score, unknown characters fall back to
//!   `<0xXX>` byte tokens.
//!
//! Control and user-defined tokens (token types 3 and 4) are matched as whole specials in the
//! text before the ordinary encoding, so a chat template's `<|im_start|>` is one token.
//! This module does no I/O and never panics on any input.
//!
//! Rooms: `vocab.rs` (building from GGUF metadata), `pretokenize.rs` (the split regexes),
//! `merge.rs` (BPE and SentencePiece encoding), `stream.rs` (UTF-8-safe streaming decode);
//! this file the [`Tokenizer`] type, special-token matching and decoding.

mod merge;
mod pretokenize;
mod stream;
mod vocab;

pub use pretokenize::{pre_tokenize, PreTokenizer};
pub use stream::Utf8Stream;

use std::collections::HashMap;

/// Why a tokenizer could not be built from the metadata.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required metadata key is missing or has the wrong type.
    #[error("tokenizer metadata `{key}`: {problem}")]
    Metadata {
        /// The GGUF key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// `tokenizer.ggml.model` names a kind this engine does not implement.
    #[error("unsupported tokenizer model `{0}` (supported: gpt2, llama)")]
    Unsupported(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Byte-level BPE.
    Bpe,
    /// SentencePiece by score.
    Spm,
}

/// A tokenizer built from a GGUF file's metadata.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    pub(super) kind: Kind,
    pub(super) pre: PreTokenizer,
    pub(super) tokens: Vec<String>,
    /// Decoded bytes of each token (specials decode to nothing).
    pub(super) token_bytes: Vec<Vec<u8>>,
    pub(super) ids: HashMap<String, u32>,
    pub(super) merges: HashMap<(String, String), u32>,
    pub(super) scores: Vec<f32>,
    /// Specials sorted longest first.
    pub(super) specials: Vec<(String, u32)>,
    pub(super) special_ids: Vec<bool>,
    pub(super) byte_tokens: [Option<u32>; 256],
    pub(super) byte_to_char: [char; 256],
    pub(super) bos: Option<u32>,
    pub(super) eos: Option<u32>,
    pub(super) add_bos: bool,
    pub(super) add_space_prefix: bool,
    pub(super) unk: Option<u32>,
}

impl Tokenizer {
    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token spelled exactly `text` (e.g. `<|im_end|>`).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The spelling of a token in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Beginning-of-sequence token, if the model uses one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token from the metadata.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether the model expects a BOS token at the start of a prompt.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `id` is a control token (decodes to nothing).
    pub fn is_control(&self, id: u32) -> bool {
        self.special_ids.get(id as usize).copied().unwrap_or(false)
    }

    /// Encodes text; control and user-defined tokens written in the text become single tokens.
    /// No BOS is added (the chat template decides).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        let mut rest = text;
        let mut first = true;
        while !rest.is_empty() {
            // find the earliest special occurrence (longest at that position)
            let mut hit: Option<(usize, usize, u32)> = None;
            for (s, id) in &self.specials {
                if let Some(pos) = rest.find(s.as_str()) {
                    let better = match hit {
                        None => true,
                        Some((p, l, _)) => pos < p || (pos == p && s.len() > l),
                    };
                    if better {
                        hit = Some((pos, s.len(), *id));
                    }
                }
            }
            match hit {
                Some((pos, len, id)) => {
                    if pos > 0 {
                        self.encode_plain(&rest[..pos], first, &mut out);
                    }
                    out.push(id);
                    rest = &rest[pos + len..];
                }
                None => {
                    self.encode_plain(rest, first, &mut out);
                    rest = "";
                }
            }
            first = false;
        }
        out
    }

    /// The raw bytes a token stands for (control tokens: none).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Decodes ids to text (control tokens are skipped, invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_bytes(id));
        }
        let s = String::from_utf8_lossy(&bytes).into_owned();
        // the encoder added a leading "▁" to the text: take it off again
        if self.kind == Kind::Spm && self.add_space_prefix && s.starts_with(' ') {
            s[1..].to_string()
        } else {
            s
        }
    }
}
