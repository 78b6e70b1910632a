//! Loading a [`Model`] from a GGUF file, in named steps: hyper-parameters, embedding and
//! output head (sharing one copy when tied), the transformer blocks, the rotary tables, the
//! weight byte count. Tensors are read in the file's natural order (embedding, output norm,
//! output, then block by block) and every shape is checked before use.

use super::forward::Rope;
use super::weights::{
    convert, fuse, own_as_is, single, target, CloneForOutput, Embed, Layer, LinW, Linear, Loader,
    Target,
};
use super::{Arch, Hyperparams, Model, WeightFormat};
use crate::gguf::{file_error, GgufFile};
use crate::kernels::{Isa, KernelCap};
use millwright_core::SlmError;
use std::path::Path;
use std::sync::Arc;

impl Model {
    /// Loads the model in `f` with weights in `format` and the best kernel set `kernels`
    /// allows; the KV caches it makes hold at most `max_context` positions (capped by the
    /// model's trained context).
    pub fn load(
        f: &mut GgufFile,
        format: WeightFormat,
        max_context: usize,
        kernels: KernelCap,
    ) -> Result<Self, SlmError> {
        let path = f.path.clone();
        let cfg = Hyperparams::read(f)?;
        let max_context = max_context.clamp(1, cfg.train_context.max(1));
        let mut l = Loader { f, format };
        let (embed, output_norm, output) = load_embedding_and_output(&mut l, &cfg, &path)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            layers.push(load_layer(&mut l, &cfg, i, &path)?);
        }
        let (rope_global, rope_local) = rope_tables(&mut l, &cfg, max_context)?;
        let weight_bytes = weight_bytes(&embed, &output, &layers);
        let arch = cfg.arch;
        Ok(Self {
            embed_scale: if arch == Arch::Gemma3 {
                (cfg.hidden as f32).sqrt()
            } else {
                1.0
            },
            interleaved_rope: arch == Arch::Llama,
            cfg,
            format,
            isa: Isa::select(kernels),
            embed,
            output_norm,
            output,
            layers,
            rope_global,
            rope_local,
            max_context,
            weight_bytes,
        })
    }

    /// Loads a model straight from a path.
    pub fn load_file(
        path: &Path,
        format: WeightFormat,
        max_context: usize,
        kernels: KernelCap,
    ) -> Result<Self, SlmError> {
        let mut f = GgufFile::open(path)?;
        Self::load(&mut f, format, max_context, kernels)
    }
}

/// The token embedding, the output norm and the output head. A tied head shares the
/// embedding's own matrix when that is already in the wanted format; the file's copy of the
/// embedding is freed as soon as the own matrix holds it.
fn load_embedding_and_output(
    l: &mut Loader<'_>,
    cfg: &Hyperparams,
    path: &Path,
) -> Result<(Embed, Vec<f32>, Linear), SlmError> {
    let (vocab, hidden, format) = (cfg.vocab, cfg.hidden, l.format);
    let embed_q = l.qtensor("token_embd.weight")?;
    if embed_q.shape().dims() != [vocab, hidden] {
        return Err(file_error(
            path,
            "tensor `token_embd.weight` has the wrong shape",
        ));
    }
    let output_norm = l.vector("output_norm.weight", hidden)?;
    let embed_own = own_as_is(&embed_q)
        .map_err(|e| file_error(path, format!("tensor `token_embd.weight`: {e}")))?
        .map(Arc::new);
    let wanted = target(embed_q.dtype(), format, hidden);
    let output = if l.has("output.weight") {
        let q = l.matrix("output.weight", vocab, hidden)?;
        single(q, None).map_err(|e| file_error(path, e.to_string()))?
    } else {
        match &embed_own {
            // tied embedding already in the wanted format: share it, no second copy
            Some(e) if wanted == Target::Own(e.qtype()) => Linear {
                w: LinW::Own(vec![e.clone()]),
                bias: None,
                n: vocab,
                k: hidden,
            },
            _ => {
                let q = convert(embed_q.clone_for_output()?, format, hidden)
                    .map_err(|e| file_error(path, e.to_string()))?;
                single(q, None).map_err(|e| file_error(path, e.to_string()))?
            }
        }
    };
    let embed = match embed_own {
        Some(e) => {
            // the file's copy is no longer needed: free it before the layers load
            drop(embed_q);
            Embed::Own(e)
        }
        None => Embed::Candle(Arc::new(embed_q)),
    };
    Ok((embed, output_norm, output))
}

/// Transformer block `i`: norms, the fused q|k|v and gate|up projections, the output and
/// down projections.
fn load_layer(
    l: &mut Loader<'_>,
    cfg: &Hyperparams,
    i: usize,
    path: &Path,
) -> Result<Layer, SlmError> {
    let (hidden, head_dim, ff) = (cfg.hidden, cfg.head_dim, cfg.ff);
    let qd = cfg.n_head * head_dim;
    let kvd = cfg.n_kv_head * head_dim;
    let p = |s: &str| format!("blk.{i}.{s}");
    let attn_norm = l.vector(&p("attn_norm.weight"), hidden)?;
    let qkv = if l.has(&p("attn_qkv.weight")) {
        let w = l.matrix(&p("attn_qkv.weight"), qd + 2 * kvd, hidden)?;
        let b = l.bias(&p("attn_qkv.bias"), qd + 2 * kvd)?;
        single(w, b).map_err(|e| file_error(path, e.to_string()))?
    } else {
        let q = l.matrix(&p("attn_q.weight"), qd, hidden)?;
        let k = l.matrix(&p("attn_k.weight"), kvd, hidden)?;
        let v = l.matrix(&p("attn_v.weight"), kvd, hidden)?;
        let bq = l.bias(&p("attn_q.bias"), qd)?;
        let bk = l.bias(&p("attn_k.bias"), kvd)?;
        let bv = l.bias(&p("attn_v.bias"), kvd)?;
        fuse(vec![q, k, v], vec![bq, bk, bv], hidden)
            .map_err(|e| file_error(path, e.to_string()))?
    };
    let o = l.matrix(&p("attn_output.weight"), hidden, qd)?;
    let ob = l.bias(&p("attn_output.bias"), hidden)?;
    let o = single(o, ob).map_err(|e| file_error(path, e.to_string()))?;
    let q_norm = l.opt_vector(&p("attn_q_norm.weight"), head_dim)?;
    let k_norm = l.opt_vector(&p("attn_k_norm.weight"), head_dim)?;
    let post_attn_norm = l.opt_vector(&p("post_attention_norm.weight"), hidden)?;
    let ffn_norm = l.vector(&p("ffn_norm.weight"), hidden)?;
    let gate_up = if l.has(&p("ffn_gate.weight")) {
        let g = l.matrix(&p("ffn_gate.weight"), ff, hidden)?;
        let u = l.matrix(&p("ffn_up.weight"), ff, hidden)?;
        fuse(vec![g, u], vec![None, None], hidden).map_err(|e| file_error(path, e.to_string()))?
    } else {
        let gu = l.matrix(&p("ffn_up.weight"), 2 * ff, hidden)?;
        single(gu, None).map_err(|e| file_error(path, e.to_string()))?
    };
    let down = l.matrix(&p("ffn_down.weight"), hidden, ff)?;
    let down = single(down, None).map_err(|e| file_error(path, e.to_string()))?;
    let post_ffn_norm = l.opt_vector(&p("post_ffw_norm.weight"), hidden)?;
    let sliding =
        cfg.arch == Arch::Gemma3 && cfg.sliding_window.is_some() && !(i + 1).is_multiple_of(6);
    Ok(Layer {
        attn_norm,
        qkv,
        o,
        q_norm,
        k_norm,
        post_attn_norm,
        ffn_norm,
        gate_up,
        down,
        post_ffn_norm,
        sliding,
    })
}

/// The rotary tables: global (with the file's frequency factors, if any) and, for Gemma 3,
/// the sliding-window layers' local one.
fn rope_tables(
    l: &mut Loader<'_>,
    cfg: &Hyperparams,
    max_context: usize,
) -> Result<(Rope, Option<Rope>), SlmError> {
    let freq_factors = if l.has("rope_freqs.weight") {
        Some(l.vector("rope_freqs.weight", cfg.rope_dim / 2)?)
    } else {
        None
    };
    let rope_global = Rope::new(
        cfg.rope_base,
        cfg.rope_dim,
        cfg.rope_scale,
        max_context,
        freq_factors.as_deref(),
    );
    let rope_local = (cfg.arch == Arch::Gemma3)
        .then(|| Rope::new(cfg.rope_base_local, cfg.rope_dim, 1.0, max_context, None));
    Ok((rope_global, rope_local))
}

/// Bytes the weights hold in memory (a head shared with the embedding counted once).
fn weight_bytes(embed: &Embed, output: &Linear, layers: &[Layer]) -> usize {
    let (shared, embed_bytes) = match (embed, &output.w) {
        (Embed::Own(e), LinW::Own(o)) => (o.iter().any(|o| Arc::ptr_eq(e, o)), e.bytes()),
        (Embed::Own(e), _) => (false, e.bytes()),
        (Embed::Candle(e), _) => (false, e.storage_size_in_bytes()),
    };
    embed_bytes
        + if shared { 0 } else { output.bytes() }
        + layers
            .iter()
            .map(|x| x.qkv.bytes() + x.o.bytes() + x.gate_up.bytes() + x.down.bytes())
            .sum::<usize>()
}
