//! The model's hyper-parameters ([`Hyperparams`]) and architecture ([`Arch`]), read from the
//! GGUF metadata and checked before any weight is loaded. No tensors are read here except the
//! embedding's shape (for the vocabulary size).

use crate::gguf::{file_error, GgufFile};
use millwright_core::SlmError;

/// Supported architectures (`general.architecture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, Mistral, SmolLM2 (interleaved rotary pairs).
    Llama,
    /// Qwen 2 / 2.5 (q/k/v biases, NeoX rotary).
    Qwen2,
    /// Phi-3 / 3.5 (fused qkv and gate_up, NeoX rotary).
    Phi3,
    /// Gemma 3 (scaled embedding, q/k norms, post norms, GELU, sliding-window layers).
    Gemma3,
}

impl Arch {
    pub(super) fn parse(s: &str) -> Option<Self> {
        match s {
            "llama" | "mistral" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "phi3" => Some(Self::Phi3),
            "gemma3" => Some(Self::Gemma3),
            _ => None,
        }
    }
}

/// Hyper-parameters read from the GGUF metadata.
#[derive(Clone, Debug)]
pub struct Hyperparams {
    /// Architecture.
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Feed-forward size.
    pub ff: usize,
    /// RMS norm epsilon.
    pub eps: f32,
    /// Rotary base (global layers).
    pub rope_base: f32,
    /// Rotary base of sliding-window layers (Gemma 3).
    pub rope_base_local: f32,
    /// Dimensions that get the rotary embedding.
    pub rope_dim: usize,
    /// Linear rotary scaling factor (positions are divided by it on global layers).
    pub rope_scale: f32,
    /// The model's trained context length.
    pub train_context: usize,
    /// Sliding window (Gemma 3 local layers).
    pub sliding_window: Option<usize>,
    /// Vocabulary size (rows of the embedding).
    pub vocab: usize,
}

impl Hyperparams {
    /// Reads and checks the hyper-parameters of the model in `f`.
    pub(super) fn read(f: &GgufFile) -> Result<Self, SlmError> {
        let path = f.path.clone();
        let arch_name = f.architecture()?;
        let arch = Arch::parse(&arch_name).ok_or_else(|| {
            file_error(
                &path,
                format!("unsupported architecture `{arch_name}` (supported: llama, mistral, qwen2, phi3, gemma3)"),
            )
        })?;
        let a = arch_name.as_str();
        let key = |s: &str| format!("{a}.{s}");
        let n_layer = f.req_usize(&key("block_count"))?;
        let hidden = f.req_usize(&key("embedding_length"))?;
        let n_head = f.req_usize(&key("attention.head_count"))?;
        let n_kv_head = f
            .get_usize(&key("attention.head_count_kv"))
            .unwrap_or(n_head);
        let ff = f.req_usize(&key("feed_forward_length"))?;
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 || hidden == 0 {
            return Err(file_error(
                &path,
                format!("bad head counts: {n_head} heads, {n_kv_head} kv heads"),
            ));
        }
        let head_dim = f
            .get_usize(&key("attention.key_length"))
            .unwrap_or(hidden / n_head);
        let eps = f
            .get_f32(&key("attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-6);
        let default_base = if arch == Arch::Gemma3 {
            1_000_000.0
        } else {
            10_000.0
        };
        let rope_base = f.get_f32(&key("rope.freq_base")).unwrap_or(default_base);
        let rope_dim = f
            .get_usize(&key("rope.dimension_count"))
            .unwrap_or(head_dim);
        let rope_scale = match f.get_str(&key("rope.scaling.type")) {
            Some("linear") | None => f
                .get_f32(&key("rope.scaling.factor"))
                .unwrap_or(1.0)
                .max(1.0),
            Some(_) => 1.0,
        };
        let train_context = f.get_usize(&key("context_length")).unwrap_or(2048);
        let sliding_window = if arch == Arch::Gemma3 {
            f.get_usize(&key("attention.sliding_window"))
        } else {
            None
        };
        let emb_info = f
            .content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| file_error(&path, "tensor `token_embd.weight` missing"))?;
        let vocab = emb_info.shape.dims().first().copied().unwrap_or(0);
        if rope_dim > head_dim || !rope_dim.is_multiple_of(2) || head_dim == 0 {
            return Err(file_error(
                &path,
                format!("bad rope dimension {rope_dim} for head size {head_dim}"),
            ));
        }
        Ok(Self {
            arch,
            n_layer,
            hidden,
            n_head,
            n_kv_head,
            head_dim,
            ff,
            eps,
            rope_base,
            rope_base_local: 10_000.0,
            rope_dim,
            rope_scale,
            train_context,
            sliding_window,
            vocab,
        })
    }
}
