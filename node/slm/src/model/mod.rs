//! The transformer forward pass for the llama family (llama/mistral, qwen2, phi3, gemma3)
//! with shared immutable weights and a caller-owned, bounded [`KvCache`].
//!
//! Weights come from a GGUF file. Q4_0, Q4_1, Q8_0, Q4_K and Q6_K matrices (and the simple
//! types converted to Q8_0) run on the own kernels in [`crate::kernels`] on the own thread
//! pool ([`crate::pool`]), which give the same result for a token whether it is computed alone
//! or in a batch; the other K-quants and dense f32 fall back to candle-core's kernels.
//! Everything else (norms, rotary embedding, attention with grouped KV heads and Gemma 3's
//! sliding window, activations) is plain Rust on `f32` slices so that a decode step allocates
//! little and nothing grows with the number of requests. The KV cache
//! holds at most `max_context` positions; it can be cloned (to keep a computed prefix) and
//! truncated (to roll back to it). This module does not tokenize, sample or choose models.
//!
//! Rooms: `hyperparams.rs` (what the metadata says), `weights.rs` (matrices, conversions,
//! layers), `load.rs` (reading a file into a [`Model`]), `forward.rs` (the forward pass,
//! attention, norms), `batch.rs` (one decode step for several sequences, each with its own
//! cache: [`Model::forward_batch`]), `cache.rs` ([`KvCache`]). This file: the public types
//! and accessors.

mod batch;
mod cache;
mod forward;
mod hyperparams;
mod load;
mod weights;

pub use cache::KvCache;
pub use hyperparams::{Arch, Hyperparams};

use crate::kernels::Isa;
use forward::Rope;
use weights::{Embed, Layer, Linear};

/// How weights are held in memory (the speed/RAM trade-off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Keep the types with own kernels (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) as they are; convert
    /// the other simple types (Q5_0, Q5_1, F16, BF16, F32) to Q8_0; leave the other K-quants
    /// to candle's kernels. Fastest decode and least RAM for the default model.
    #[default]
    Auto,
    /// Convert every simple type, 4-bit ones too, to Q8_0 (about 1.7x the RAM of Q4_1).
    Q8_0,
    /// Keep the file's types; types without own kernels run on candle's.
    Native,
    /// Dequantize every matrix to f32 (about 6x the RAM of Q4_1; slow decode).
    F32,
}

impl WeightFormat {
    /// Parses `auto`, `q8_0`, `native` or `f32`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "q8_0" | "q8" => Some(Self::Q8_0),
            "native" => Some(Self::Native),
            "f32" => Some(Self::F32),
            _ => None,
        }
    }

    /// The name used in configs and benchmark output.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Q8_0 => "q8_0",
            Self::Native => "native",
            Self::F32 => "f32",
        }
    }
}

/// A loaded model: immutable weights, shareable between threads.
pub struct Model {
    cfg: Hyperparams,
    format: WeightFormat,
    /// The kernel set, chosen once at load from the caller's cap.
    isa: Isa,
    embed: Embed,
    embed_scale: f32,
    output_norm: Vec<f32>,
    output: Linear,
    layers: Vec<Layer>,
    rope_global: Rope,
    rope_local: Option<Rope>,
    interleaved_rope: bool,
    max_context: usize,
    weight_bytes: usize,
}

impl Model {
    /// The hyper-parameters.
    pub fn config(&self) -> &Hyperparams {
        &self.cfg
    }

    /// The in-memory weight format.
    pub fn weight_format(&self) -> WeightFormat {
        self.format
    }

    /// Bytes held by the weights in memory.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// Most positions a cache of this model holds.
    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// A new empty cache bounded by [`Model::max_context`].
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            k: vec![Vec::new(); self.cfg.n_layer],
            v: vec![Vec::new(); self.cfg.n_layer],
            tokens: Vec::new(),
            kv_dim: self.cfg.n_kv_head * self.cfg.head_dim,
            max_len: self.max_context,
        }
    }

    /// The kernel set this model's matrix products and attention run on.
    pub fn kernels(&self) -> Isa {
        self.isa
    }
}
