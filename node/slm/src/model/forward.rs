//! The forward pass: embedding lookup, per block norm → fused q|k|v → q/k norms → rotary
//! embedding → causal attention over the cache (grouped KV heads, Gemma 3's sliding window)
//! → output projection → norm → gated feed-forward, then the output head on the last
//! position. Plain Rust on `f32` slices (the matrix products are the weights' job); nothing
//! here reads files or allocates per request beyond the step's buffers.

use super::weights::{inf, Embed};
use super::{Arch, KvCache, Model};
use crate::kernels::{Isa, QActs};
use crate::pool;
use candle_core::{Device, Tensor};
use millwright_core::SlmError;

pub(super) struct Rope {
    /// [pos][rope_dim/2]
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    pub(super) fn new(
        base: f32,
        rope_dim: usize,
        scale: f32,
        max_pos: usize,
        freq_factors: Option<&[f32]>,
    ) -> Self {
        let half = rope_dim / 2;
        let mut cos = Vec::with_capacity(max_pos * half);
        let mut sin = Vec::with_capacity(max_pos * half);
        let inv: Vec<f64> = (0..half)
            .map(|i| {
                let f = 1.0 / f64::from(base).powf(2.0 * i as f64 / rope_dim as f64);
                let ff = freq_factors.and_then(|v| v.get(i)).copied().unwrap_or(1.0);
                f / f64::from(ff)
            })
            .collect();
        for p in 0..max_pos {
            let pos = p as f64 / f64::from(scale);
            for f in &inv {
                let a = pos * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Self { cos, sin, half }
    }
}

impl Model {
    /// Runs `tokens` after what `cache` holds, appends their keys/values to the cache and
    /// returns the logits of the last token. On error the cache is left as it was.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, SlmError> {
        if tokens.is_empty() {
            return Err(SlmError::Inference("forward called with no tokens".into()));
        }
        self.check_input(tokens, cache)?;
        let start = cache.len();
        match self.forward_inner(tokens, cache) {
            Ok(l) => {
                cache.tokens.extend_from_slice(tokens);
                Ok(l)
            }
            Err(e) => {
                cache.rollback_kv(start);
                Err(e)
            }
        }
    }

    /// Whether `tokens` can run after what `cache` holds: a cache of this model with room
    /// for them, and token ids inside the vocabulary.
    pub(super) fn check_input(&self, tokens: &[u32], cache: &KvCache) -> Result<(), SlmError> {
        if cache.kv_dim != self.cfg.n_kv_head * self.cfg.head_dim
            || cache.k.len() != self.cfg.n_layer
        {
            return Err(SlmError::Inference(
                "KV cache belongs to a different model".into(),
            ));
        }
        let total = cache.len() + tokens.len();
        if total > cache.max_len {
            return Err(SlmError::PromptTooLong {
                tokens: total,
                context: cache.max_len,
            });
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab) {
            return Err(SlmError::Inference(format!(
                "token id {bad} outside the vocabulary of {}",
                self.cfg.vocab
            )));
        }
        Ok(())
    }

    /// The embedding rows of `tokens` (`tokens.len()` rows of `hidden`), before any scale.
    pub(super) fn embed_tokens(&self, tokens: &[u32]) -> Result<Vec<f32>, SlmError> {
        let (m, h) = (tokens.len(), self.cfg.hidden);
        Ok(match &self.embed {
            Embed::Own(e) => {
                let mut x = vec![0f32; m * h];
                for (row, &t) in x.chunks_exact_mut(h).zip(tokens) {
                    e.dequantize_row(t as usize, row);
                }
                x
            }
            Embed::Candle(e) => {
                let ids = Tensor::from_slice(tokens, m, &Device::Cpu).map_err(inf)?;
                e.embedding(&ids)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(inf)?
            }
        })
    }

    fn forward_inner(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, SlmError> {
        let c = &self.cfg;
        let m = tokens.len();
        let h = c.hidden;
        let p0 = cache.len();
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
        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut hbuf);
            let qkv = layer
                .qkv
                .forward(&hbuf, m, &mut acts, self.isa)
                .map_err(inf)?;
            let row = qd + 2 * kvd;
            for i in 0..m {
                let r = &qkv[i * row..(i + 1) * row];
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
            self.apply_rope(rope, &mut q, p0, m);
            self.apply_rope(rope, &mut k, p0, m);
            cache.push(li, &k, &v);
            let window = if layer.sliding {
                c.sliding_window
            } else {
                None
            };
            attention(
                &q,
                &cache.k[li],
                &cache.v[li],
                &mut attn,
                AttnShape {
                    m,
                    p0,
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
            let mut act = vec![0f32; m * c.ff];
            let gelu = c.arch == Arch::Gemma3;
            for i in 0..m {
                let r = &gu[i * 2 * c.ff..(i + 1) * 2 * c.ff];
                let (g, u) = r.split_at(c.ff);
                for ((a, gg), uu) in act[i * c.ff..(i + 1) * c.ff].iter_mut().zip(g).zip(u) {
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
        let last = &x[(m - 1) * h..];
        let mut normed = vec![0f32; h];
        rms_norm(last, &self.output_norm, c.eps, &mut normed);
        self.output
            .forward(&normed, 1, &mut acts, self.isa)
            .map_err(inf)
    }

    /// Rotary embedding of row `i` of `x` (rows of equal length) at position `pos[i]`.
    pub(super) fn apply_rope_at(&self, rope: &Rope, x: &mut [f32], pos: &[usize]) {
        let per_row = x.len() / pos.len().max(1);
        for (row, &p) in x.chunks_exact_mut(per_row.max(1)).zip(pos) {
            self.apply_rope(rope, row, p, 1);
        }
    }

    fn apply_rope(&self, rope: &Rope, x: &mut [f32], p0: usize, m: usize) {
        let hd = self.cfg.head_dim;
        let half = rope.half;
        let per_row = x.len() / m.max(1);
        for i in 0..m {
            let pos = p0 + i;
            let cos = &rope.cos[pos * half..(pos + 1) * half];
            let sin = &rope.sin[pos * half..(pos + 1) * half];
            for head in x[i * per_row..(i + 1) * per_row].chunks_exact_mut(hd) {
                if self.interleaved_rope {
                    for j in 0..half {
                        let (a, b) = (head[2 * j], head[2 * j + 1]);
                        head[2 * j] = a * cos[j] - b * sin[j];
                        head[2 * j + 1] = a * sin[j] + b * cos[j];
                    }
                } else {
                    for j in 0..half {
                        let (a, b) = (head[j], head[j + half]);
                        head[j] = a * cos[j] - b * sin[j];
                        head[j + half] = a * sin[j] + b * cos[j];
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct AttnShape {
    pub(super) m: usize,
    pub(super) p0: usize,
    pub(super) n_head: usize,
    pub(super) n_kv_head: usize,
    pub(super) head_dim: usize,
    pub(super) window: Option<usize>,
}

/// Causal attention of `m` new queries over the cache (which already holds their keys).
fn attention(q: &[f32], kc: &[f32], vc: &[f32], out: &mut [f32], s: AttnShape, isa: Isa) {
    let items = s.m * s.n_head;
    let out_ptr = out.as_mut_ptr() as usize;
    let work = |range: std::ops::Range<usize>| {
        // the model's kernel set decides, as for the matrix kernels (every non-portable set
        // implies AVX2 and FMA)
        #[cfg(target_arch = "x86_64")]
        if isa != Isa::PORTABLE {
            // SAFETY: a non-portable `isa` implies AVX2 and FMA, and holding an `Isa` proves
            // the CPU has them; the range contract is `attention_items`'.
            unsafe { attention_items_avx2(q, kc, vc, out_ptr, s, range) };
            return;
        }
        attention_items(q, kc, vc, out_ptr, s, range);
    };
    let cost = items * (s.p0 + s.m) * s.head_dim;
    if cost < 32 * 1024 {
        work(0..items);
    } else {
        pool::global().for_ranges(items, 1, &work);
    }
}

/// One new query per sequence, each over its own cache (`seqs[b]`: keys, values, and the
/// position of its query): the decode step of a batch. `s.m` and `s.p0` are ignored. Each
/// (sequence, head) item runs the same code as [`attention`] with `m = 1`, so a sequence's
/// output does not depend on the batch.
pub(super) fn attention_batch(
    q: &[f32],
    seqs: &[(&[f32], &[f32], usize)],
    out: &mut [f32],
    s: AttnShape,
    isa: Isa,
) {
    let nh = s.n_head;
    let qd = nh * s.head_dim;
    let items = seqs.len() * nh;
    if q.len() < items * s.head_dim || out.len() < items * s.head_dim {
        return;
    }
    let out_ptr = out.as_mut_ptr() as usize;
    let work = |range: std::ops::Range<usize>| {
        let mut item = range.start;
        while item < range.end {
            let b = item / nh;
            let Some(&(kc, vc, pos)) = seqs.get(b) else {
                return;
            };
            let end = range.end.min((b + 1) * nh);
            let shape = AttnShape { m: 1, p0: pos, ..s };
            let qb = &q[b * qd..(b + 1) * qd];
            let ob = out_ptr + b * qd * std::mem::size_of::<f32>();
            let heads = item - b * nh..end - b * nh;
            #[cfg(target_arch = "x86_64")]
            if isa != Isa::PORTABLE {
                // SAFETY: as in `attention`: a non-portable `isa` implies AVX2 and FMA; the
                // heads of sequence `b` write only its own `qd` outputs of `out`.
                unsafe { attention_items_avx2(qb, kc, vc, ob, shape, heads) };
                item = end;
                continue;
            }
            attention_items(qb, kc, vc, ob, shape, heads);
            item = end;
        }
    };
    let cost: usize = seqs.iter().map(|(_, _, p)| (p + 1) * qd).sum();
    if cost < 32 * 1024 {
        work(0..items);
    } else {
        pool::global().for_ranges(items, 1, &work);
    }
}

/// [`attention_items`] compiled for AVX2 (the portable build only assumes SSE2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn attention_items_avx2(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    out_ptr: usize,
    s: AttnShape,
    range: std::ops::Range<usize>,
) {
    attention_items(q, kc, vc, out_ptr, s, range);
}

/// Attention for the (query, head) items in `range`; writes item `i`'s `head_dim` outputs at
/// `out_ptr + i·head_dim` (disjoint per item; `out` outlives the call).
#[inline(always)]
fn attention_items(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    out_ptr: usize,
    s: AttnShape,
    range: std::ops::Range<usize>,
) {
    let hd = s.head_dim;
    let group = s.n_head / s.n_kv_head;
    let kvd = s.n_kv_head * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores: Vec<f32> = Vec::with_capacity(s.p0 + s.m);
    for item in range {
        let i = item / s.n_head;
        let head = item % s.n_head;
        let g = head / group;
        let pos = s.p0 + i;
        let start = s.window.map_or(0, |w| (pos + 1).saturating_sub(w));
        let qh = &q[i * s.n_head * hd + head * hd..][..hd];
        scores.clear();
        let mut max = f32::NEG_INFINITY;
        for j in start..=pos {
            let kj = &kc[j * kvd + g * hd..][..hd];
            let sc = dot2(qh, kj) * scale;
            max = max.max(sc);
            scores.push(sc);
        }
        let mut sum = 0.0;
        for sc in scores.iter_mut() {
            *sc = (*sc - max).exp();
            sum += *sc;
        }
        let inv = 1.0 / sum;
        for w in scores.iter_mut() {
            *w *= inv;
        }
        // SAFETY: every item writes only its own disjoint `hd`-long slice of `out`, which
        // outlives this call (the pool returns after all work is done).
        let o = unsafe { std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(item * hd), hd) };
        // The weighted sum of the values, 64 outputs at a time kept in registers over all
        // positions (each output is summed in position order).
        let vbase = start * kvd + g * hd;
        let mut e0 = 0;
        while e0 + 64 <= hd {
            let mut acc = [0f32; 64];
            for (jj, w) in scores.iter().enumerate() {
                let vj: &[f32; 64] = vc[vbase + jj * kvd + e0..][..64]
                    .try_into()
                    .unwrap_or(&[0.0; 64]);
                for (a, b) in acc.iter_mut().zip(vj) {
                    *a += w * b;
                }
            }
            o[e0..e0 + 64].copy_from_slice(&acc);
            e0 += 64;
        }
        if e0 < hd {
            let o = &mut o[e0..];
            o.iter_mut().for_each(|x| *x = 0.0);
            for (jj, w) in scores.iter().enumerate() {
                let vj = &vc[vbase + jj * kvd + e0..][..hd - e0];
                axpy(o, vj, *w);
            }
        }
    }
}

/// The dot product of a query and a key: 16 lanes in two independent sums (a short
/// dependency chain), combined pairwise.
#[inline(always)]
fn dot2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = [0f32; 8];
    for l in 0..8 {
        s[l] = acc[l] + acc[8 + l];
    }
    let s = [s[0] + s[4], s[1] + s[5], s[2] + s[6], s[3] + s[7]];
    let mut total = (s[0] + s[2]) + (s[1] + s[3]);
    for (x, y) in ra.iter().zip(rb) {
        total += x * y;
    }
    total
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let ra = ca.remainder();
    let rb = cb.remainder();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn axpy(o: &mut [f32], v: &[f32], w: f32) {
    for (a, b) in o.iter_mut().zip(v) {
        *a += w * b;
    }
}

/// `1 / rms(x)` with `eps` added to the mean square.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt()
}

pub(super) fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let h = w.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let r = inv_rms(xr, eps);
        for ((o, a), b) in or.iter_mut().zip(xr).zip(w) {
            *o = a * r * b;
        }
    }
}

pub(super) fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let h = w.len();
    for xr in x.chunks_exact_mut(h) {
        let r = inv_rms(xr, eps);
        for (a, b) in xr.iter_mut().zip(w) {
            *a *= r * b;
        }
    }
}

pub(super) fn add_inplace(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[inline]
pub(super) fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[inline]
pub(super) fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_single_position_returns_value() {
        // one query, one cached position: softmax weight 1 -> output equals v
        let q = vec![1.0, 0.0];
        let k = vec![0.5, 0.5];
        let v = vec![3.0, -2.0];
        let mut out = vec![0.0; 2];
        attention(
            &q,
            &k,
            &v,
            &mut out,
            AttnShape {
                m: 1,
                p0: 0,
                n_head: 1,
                n_kv_head: 1,
                head_dim: 2,
                window: None,
            },
            Isa::best(),
        );
        assert_eq!(out, vec![3.0, -2.0]);
    }

    #[test]
    fn sliding_window_ignores_old_positions() {
        // two cached positions, window 1: only the last value counts
        let q = vec![1.0, 0.0];
        let k = vec![10.0, 0.0, 0.0, 0.0];
        let v = vec![100.0, 100.0, 1.0, 2.0];
        let mut out = vec![0.0; 2];
        attention(
            &q,
            &k,
            &v,
            &mut out,
            AttnShape {
                m: 1,
                p0: 1,
                n_head: 1,
                n_kv_head: 1,
                head_dim: 2,
                window: Some(1),
            },
            Isa::best(),
        );
        assert_eq!(out, vec![1.0, 2.0]);
    }

    #[test]
    fn rms_norm_unit_weight_gives_unit_rms() {
        let x = vec![3.0, 4.0, 0.0, 0.0];
        let mut out = vec![0.0; 4];
        rms_norm(&x, &[1.0; 4], 0.0, &mut out);
        let rms = (out.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-5);
    }
}
