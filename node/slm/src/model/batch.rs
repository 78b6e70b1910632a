//! The decode step of a batch ([`Model::forward_batch`]): one new token for each of several
//! sequences, each with its own [`KvCache`] and position, in one pass over the weights.
//!
//! Decode is bound by the weight bytes streamed; here every matrix product runs the B
//! sequences as the B activation rows of one product (a weight tile is read once for all of
//! them), while attention runs per sequence over its own cache. The kernels give a (row,
//! token) the same result whatever the batch, and the per-row steps (norms, rotary
//! embedding, attention) are the one-sequence code, so a sequence gets bit for bit the
//! logits it would get alone. Nothing here samples or tokenizes.

use super::forward::{
    add_inplace, attention_batch, gelu_tanh, rms_norm, rms_norm_inplace, silu, AttnShape,
};
use super::weights::inf;
use super::{Arch, KvCache, Model};
use crate::kernels::QActs;
use millwright_core::SlmError;

impl Model {
    /// Runs `tokens[b]` after what `caches[b]` holds, for every sequence `b` at once; appends
    /// each token's keys/values to its cache and returns the logits, `vocab` per sequence in
    /// order (`tokens.len() × vocab`). On error every cache is left as it was.
    pub fn forward_batch(
        &self,
        tokens: &[u32],
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<f32>, SlmError> {
        if tokens.is_empty() || tokens.len() != caches.len() {
            return Err(SlmError::Inference(format!(
                "forward_batch called with {} tokens for {} caches",
                tokens.len(),
                caches.len()
            )));
        }
        for (t, c) in tokens.iter().zip(caches.iter()) {
            self.check_input(std::slice::from_ref(t), c)?;
        }
        let starts: Vec<usize> = caches.iter().map(|c| c.len()).collect();
        match self.forward_batch_inner(tokens, caches, &starts) {
            Ok(l) => {
                for (c, &t) in caches.iter_mut().zip(tokens) {
                    c.tokens.push(t);
                }
                Ok(l)
            }
            Err(e) => {
                for (c, &s) in caches.iter_mut().zip(&starts) {
                    c.rollback_kv(s);
                }
                Err(e)
            }
        }
    }

    fn forward_batch_inner(
        &self,
        tokens: &[u32],
        caches: &mut [&mut KvCache],
        starts: &[usize],
    ) -> Result<Vec<f32>, SlmError> {
        let c = &self.cfg;
        let m = tokens.len();
        let h = c.hidden;
        let mut x = self.embed_tokens(tokens)?;
        let mut acts = QActs::default();
        if self.embed_scale != 1.0 {
            x.iter_mut().for_each(|v| *v *= self.embed_scale);
        }
        let qd = c.n_head * c.head_dim;
        let kvd = c.n_kv_head * c.head_dim;
        let mut hbuf = vec![0f32; m * h];
        let mut q = vec![0f32; m * qd];
        let mut k = vec![0f32; m * kvd];
        let mut v = vec![0f32; m * kvd];
        let mut attn = vec![0f32; m * qd];
        let mut act = vec![0f32; m * c.ff];
        let gelu = c.arch == Arch::Gemma3;
        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut hbuf);
            let qkv = layer
                .qkv
                .forward(&hbuf, m, &mut acts, self.isa)
                .map_err(inf)?;
            let row = qd + 2 * kvd;
            for (i, r) in qkv.chunks_exact(row).enumerate().take(m) {
                q[i * qd..(i + 1) * qd].copy_from_slice(&r[..qd]);
                k[i * kvd..(i + 1) * kvd].copy_from_slice(&r[qd..qd + kvd]);
                v[i * kvd..(i + 1) * kvd].copy_from_slice(&r[qd + kvd..]);
            }
            if let Some(w) = &layer.q_norm {
                for head in q.chunks_exact_mut(c.head_dim) {
                    rms_norm_inplace(head, w, c.eps);
                }
            }
            if let Some(w) = &layer.k_norm {
                for head in k.chunks_exact_mut(c.head_dim) {
                    rms_norm_inplace(head, w, c.eps);
                }
            }
            let rope = if layer.sliding {
                self.rope_local.as_ref().unwrap_or(&self.rope_global)
            } else {
                &self.rope_global
            };
            self.apply_rope_at(rope, &mut q, starts);
            self.apply_rope_at(rope, &mut k, starts);
            for ((cache, kr), vr) in caches
                .iter_mut()
                .zip(k.chunks_exact(kvd))
                .zip(v.chunks_exact(kvd))
            {
                cache.push(li, kr, vr);
            }
            let window = if layer.sliding {
                c.sliding_window
            } else {
                None
            };
            let seqs: Vec<(&[f32], &[f32], usize)> = caches
                .iter()
                .zip(starts)
                .map(|(cache, &p)| (&cache.k[li][..], &cache.v[li][..], p))
                .collect();
            attention_batch(
                &q,
                &seqs,
                &mut attn,
                AttnShape {
                    m: 1,
                    p0: 0,
                    n_head: c.n_head,
                    n_kv_head: c.n_kv_head,
                    head_dim: c.head_dim,
                    window,
                },
                self.isa,
            );
            let mut o = layer
                .o
                .forward(&attn, m, &mut acts, self.isa)
                .map_err(inf)?;
            if let Some(w) = &layer.post_attn_norm {
                for r in o.chunks_exact_mut(h) {
                    rms_norm_inplace(r, w, c.eps);
                }
            }
            add_inplace(&mut x, &o);
            rms_norm(&x, &layer.ffn_norm, c.eps, &mut hbuf);
            let gu = layer
                .gate_up
                .forward(&hbuf, m, &mut acts, self.isa)
                .map_err(inf)?;
            for (r, a) in gu.chunks_exact(2 * c.ff).zip(act.chunks_exact_mut(c.ff)) {
                let (g, u) = r.split_at(c.ff);
                for ((a, gg), uu) in a.iter_mut().zip(g).zip(u) {
                    *a = if gelu { gelu_tanh(*gg) } else { silu(*gg) } * uu;
                }
            }
            let mut d = layer
                .down
                .forward(&act, m, &mut acts, self.isa)
                .map_err(inf)?;
            if let Some(w) = &layer.post_ffn_norm {
                for r in d.chunks_exact_mut(h) {
                    rms_norm_inplace(r, w, c.eps);
                }
            }
            add_inplace(&mut x, &d);
        }
        let mut normed = vec![0f32; m * h];
        rms_norm(&x, &self.output_norm, c.eps, &mut normed);
        self.output
            .forward(&normed, m, &mut acts, self.isa)
            .map_err(inf)
    }
}
