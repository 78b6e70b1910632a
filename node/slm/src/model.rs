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

use crate::gguf::{file_error, GgufFile};
use crate::kernels::{QActs, QMatrix, QType, QK_K};
use crate::pool;
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use millwright_core::SlmError;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

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
    fn parse(s: &str) -> Option<Self> {
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
pub struct ModelConfig {
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

/// A matrix as loaded: on the own kernels, or left to candle's.
enum Mat {
    Own(QMatrix),
    Candle(QTensor),
}

impl Mat {
    fn rows(&self) -> usize {
        match self {
            Mat::Own(q) => q.rows(),
            Mat::Candle(q) => q.shape().dims().first().copied().unwrap_or(0),
        }
    }
}

enum LinW {
    /// Own matrices filling the output side by side: usually one; several when fused parts
    /// have different block types (e.g. q/k in Q4_K, v in Q6_K).
    Own(Vec<Arc<QMatrix>>),
    Candle(QMatMul),
}

struct Linear {
    w: LinW,
    bias: Option<Vec<f32>>,
    n: usize,
    k: usize,
}

impl Linear {
    /// `m` rows of `k` in, `m` rows of `n` out; `acts` is scratch for the quantized input.
    fn forward(&self, x: &[f32], m: usize, acts: &mut QActs) -> candle_core::Result<Vec<f32>> {
        let mut v = match &self.w {
            LinW::Own(parts) => {
                acts.quantize(x, m, self.k);
                let mut y = vec![0f32; m * self.n];
                let mut off = 0;
                for q in parts {
                    q.matmul_into(acts, &mut y, self.n, off, pool::global());
                    off += q.rows();
                }
                y
            }
            LinW::Candle(w) => self.forward_candle(w, x, m)?,
        };
        if let Some(b) = &self.bias {
            for row in v.chunks_exact_mut(self.n) {
                for (a, bb) in row.iter_mut().zip(b) {
                    *a += bb;
                }
            }
        }
        Ok(v)
    }

    fn forward_candle(&self, w: &QMatMul, x: &[f32], m: usize) -> candle_core::Result<Vec<f32>> {
        let t = Tensor::from_slice(x, (m, self.k), &Device::Cpu)?;
        w.forward(&t)?.flatten_all()?.to_vec1::<f32>()
    }

    fn bytes(&self) -> usize {
        match &self.w {
            LinW::Own(parts) => parts.iter().map(|q| q.bytes()).sum(),
            LinW::Candle(QMatMul::QTensor(q)) => q.storage_size_in_bytes(),
            LinW::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => {
                t.elem_count() * t.dtype().size_in_bytes()
            }
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    /// Fused q|k|v projection (rows: q then k then v).
    qkv: Linear,
    o: Linear,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    /// Fused gate|up projection (rows: gate then up).
    gate_up: Linear,
    down: Linear,
    post_ffn_norm: Option<Vec<f32>>,
    sliding: bool,
}

struct Rope {
    /// [pos][rope_dim/2]
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    fn new(
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

/// Key/value cache of one sequence, owned by the caller. Bounded by `max_len` positions.
#[derive(Clone, Debug)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    tokens: Vec<u32>,
    kv_dim: usize,
    max_len: usize,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    /// The most positions it will ever hold.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    /// The tokens whose keys/values it holds.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
    /// Drops everything after the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.tokens.len() {
            return;
        }
        self.tokens.truncate(len);
        for (k, v) in self.k.iter_mut().zip(self.v.iter_mut()) {
            k.truncate(len * self.kv_dim);
            v.truncate(len * self.kv_dim);
        }
    }
    /// Empties the cache (keeps the allocation).
    pub fn clear(&mut self) {
        self.truncate(0);
    }
    /// Bytes allocated for keys and values.
    pub fn memory_bytes(&self) -> usize {
        self.k
            .iter()
            .chain(self.v.iter())
            .map(|x| x.capacity() * 4)
            .sum()
    }
    fn push(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let max = self.max_len * self.kv_dim;
        for (buf, src) in [(&mut self.k[layer], k), (&mut self.v[layer], v)] {
            let need = buf.len() + src.len();
            if need > buf.capacity() {
                let target = need
                    .max(buf.capacity() * 2)
                    .max(64 * self.kv_dim)
                    .min(max.max(need));
                buf.reserve_exact(target - buf.len());
            }
            buf.extend_from_slice(src);
        }
    }
}

/// A loaded model: immutable weights, shareable between threads.
pub struct Model {
    cfg: ModelConfig,
    format: WeightFormat,
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

fn inf(e: candle_core::Error) -> SlmError {
    SlmError::Inference(e.to_string())
}

struct Loader<'a> {
    f: &'a mut GgufFile,
    format: WeightFormat,
}

impl Loader<'_> {
    fn has(&self, name: &str) -> bool {
        self.f.content.tensor_infos.contains_key(name)
    }

    fn qtensor(&mut self, name: &str) -> Result<QTensor, SlmError> {
        let path = self.f.path.clone();
        if !self.has(name) {
            return Err(file_error(&path, format!("tensor `{name}` missing")));
        }
        self.f
            .content
            .tensor(&mut self.f.reader, name, &Device::Cpu)
            .map_err(|e| file_error(&path, format!("tensor `{name}`: {e}")))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, SlmError> {
        let path = self.f.path.clone();
        let q = self.qtensor(name)?;
        let v = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| file_error(&path, format!("tensor `{name}`: {e}")))?;
        if v.len() != len {
            return Err(file_error(
                &path,
                format!("tensor `{name}` has {} values, expected {len}", v.len()),
            ));
        }
        Ok(v)
    }

    fn opt_vector(&mut self, name: &str, len: usize) -> Result<Option<Vec<f32>>, SlmError> {
        if self.has(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Loads a matrix (n rows of k) converted to the chosen weight format.
    fn matrix(&mut self, name: &str, n: usize, k: usize) -> Result<Mat, SlmError> {
        let path = self.f.path.clone();
        let q = self.qtensor(name)?;
        let dims = q.shape().dims().to_vec();
        if dims != [n, k] {
            return Err(file_error(
                &path,
                format!("tensor `{name}` has shape {dims:?}, expected [{n}, {k}]"),
            ));
        }
        convert(q, self.format, k).map_err(|e| file_error(&path, format!("tensor `{name}`: {e}")))
    }

    fn bias(&mut self, name: &str, n: usize) -> Result<Option<Vec<f32>>, SlmError> {
        self.opt_vector(name, n)
    }
}

/// Where a matrix ends up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// On the own kernels in this block type.
    Own(QType),
    /// On candle's kernels in this type (None: a dense f32 tensor).
    Candle(Option<GgmlDType>),
}

/// Where a matrix of `dtype` with rows of `k` goes under `format`.
fn target(dtype: GgmlDType, format: WeightFormat, k: usize) -> Target {
    use GgmlDType as G;
    let dense = matches!(dtype, G::F32 | G::F16 | G::BF16);
    let simple = dense
        || matches!(
            dtype,
            G::Q4_0 | G::Q4_1 | G::Q5_0 | G::Q5_1 | G::Q8_0 | G::Q8_1
        );
    if format == WeightFormat::F32 || (dense && !k.is_multiple_of(32)) {
        return Target::Candle(None);
    }
    if !k.is_multiple_of(32) {
        return Target::Candle(Some(dtype));
    }
    match (format, dtype) {
        (WeightFormat::Auto | WeightFormat::Native, G::Q4_0 | G::Q4_1) => Target::Own(QType::Q4_1),
        (_, G::Q8_0) => Target::Own(QType::Q8_0),
        // K-quants with own kernels stay as they are (rows must hold whole super-blocks).
        (WeightFormat::Auto | WeightFormat::Native, G::Q4K) if k.is_multiple_of(QK_K) => {
            Target::Own(QType::Q4_K)
        }
        (WeightFormat::Auto | WeightFormat::Native, G::Q6K) if k.is_multiple_of(QK_K) => {
            Target::Own(QType::Q6_K)
        }
        (WeightFormat::Auto | WeightFormat::Q8_0, _) if simple => Target::Own(QType::Q8_0),
        (WeightFormat::Native, _) if dense => Target::Candle(None),
        _ => Target::Candle(Some(dtype)),
    }
}

fn own_err(e: crate::kernels::QMatrixError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Takes a tensor of a type with own kernels as it is (no conversion).
fn own_as_is(q: &QTensor) -> candle_core::Result<Option<QMatrix>> {
    let (n, k) = q.shape().dims2()?;
    if !k.is_multiple_of(32) {
        return Ok(None);
    }
    let m = match q.dtype() {
        GgmlDType::Q4_1 => QMatrix::from_blocks(QType::Q4_1, n, k, q.data()?.into_owned()),
        GgmlDType::Q8_0 => QMatrix::from_blocks(QType::Q8_0, n, k, q.data()?.into_owned()),
        GgmlDType::Q4_0 => QMatrix::from_q4_0(n, k, &q.data()?),
        GgmlDType::Q4K if k.is_multiple_of(QK_K) => {
            QMatrix::from_blocks(QType::Q4_K, n, k, q.data()?.into_owned())
        }
        GgmlDType::Q6K if k.is_multiple_of(QK_K) => {
            QMatrix::from_blocks(QType::Q6_K, n, k, q.data()?.into_owned())
        }
        _ => return Ok(None),
    };
    m.map(Some).map_err(own_err)
}

fn convert(q: QTensor, format: WeightFormat, k: usize) -> candle_core::Result<Mat> {
    match target(q.dtype(), format, k) {
        Target::Own(t) => {
            if let Some(m) = own_as_is(&q)? {
                if m.qtype() == t {
                    return Ok(Mat::Own(m));
                }
            }
            // Only Q8_0 is ever a conversion target.
            to_own_q8_0(&q).map(Mat::Own)
        }
        Target::Candle(t) => {
            let t = t.unwrap_or(GgmlDType::F32);
            if q.dtype() == t {
                return Ok(Mat::Candle(q));
            }
            let dense = q.dequantize(&Device::Cpu)?;
            QTensor::quantize(&dense, t).map(Mat::Candle)
        }
    }
}

/// Any matrix (rows a multiple of 32) requantized to Q8_0 for the own kernels.
fn to_own_q8_0(q: &QTensor) -> candle_core::Result<QMatrix> {
    let (n, k) = q.shape().dims2()?;
    let dense = q.dequantize(&Device::Cpu)?;
    let q8 = QTensor::quantize(&dense, GgmlDType::Q8_0)?;
    QMatrix::from_blocks(QType::Q8_0, n, k, q8.data()?.into_owned()).map_err(own_err)
}

/// A matrix as a dense f32 tensor.
fn dense_of(m: &Mat) -> candle_core::Result<Tensor> {
    match m {
        Mat::Candle(q) => q.dequantize(&Device::Cpu),
        Mat::Own(q) => {
            let (n, k) = (q.rows(), q.cols());
            let mut v = vec![0f32; n * k];
            for (r, row) in v.chunks_exact_mut(k).enumerate() {
                q.dequantize_row(r, row);
            }
            Tensor::from_vec(v, (n, k), &Device::Cpu)
        }
    }
}

/// Concatenates matrices with the same k along the rows into one linear layer.
fn fuse(parts: Vec<Mat>, biases: Vec<Option<Vec<f32>>>, k: usize) -> candle_core::Result<Linear> {
    // A part left to candle (a K-quant without own kernels) next to own parts: make it 8-bit
    // so that the layer stays on the own kernels instead of falling back to dense f32.
    let parts = if parts.iter().any(|p| matches!(p, Mat::Own(_))) {
        parts
            .into_iter()
            .map(|p| match p {
                Mat::Candle(q) => to_own_q8_0(&q).map(Mat::Own),
                own => Ok(own),
            })
            .collect::<candle_core::Result<Vec<_>>>()?
    } else {
        parts
    };
    let n: usize = parts.iter().map(Mat::rows).sum();
    let rows: Vec<usize> = parts.iter().map(Mat::rows).collect();
    let own_type = match parts.first() {
        Some(Mat::Own(q)) => Some(q.qtype()),
        _ => None,
    };
    let candle_type = match parts.first() {
        Some(Mat::Candle(q)) if q.dtype() != GgmlDType::F32 => Some(q.dtype()),
        _ => None,
    };
    let w = if own_type.is_some()
        && parts
            .iter()
            .all(|p| matches!(p, Mat::Own(q) if Some(q.qtype()) == own_type))
    {
        let mut bytes = Vec::new();
        let mut ty = QType::Q8_0;
        for p in parts {
            if let Mat::Own(q) = p {
                ty = q.qtype();
                bytes.extend_from_slice(q.data());
            }
        }
        LinW::Own(vec![Arc::new(
            QMatrix::from_blocks(ty, n, k, bytes).map_err(own_err)?,
        )])
    } else if parts.iter().all(|p| matches!(p, Mat::Own(_))) {
        LinW::Own(
            parts
                .into_iter()
                .filter_map(|p| match p {
                    Mat::Own(q) => Some(Arc::new(q)),
                    Mat::Candle(_) => None,
                })
                .collect(),
        )
    } else if candle_type.is_some()
        && parts
            .iter()
            .all(|p| matches!(p, Mat::Candle(q) if Some(q.dtype()) == candle_type))
    {
        let mut bytes = Vec::new();
        let mut dtype = GgmlDType::F32;
        for p in &parts {
            if let Mat::Candle(q) = p {
                dtype = q.dtype();
                bytes.extend_from_slice(&q.data()?);
            }
        }
        let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype)?;
        LinW::Candle(QMatMul::from_qtensor(QTensor::new(storage, (n, k))?)?)
    } else {
        let ts = parts
            .iter()
            .map(dense_of)
            .collect::<candle_core::Result<Vec<_>>>()?;
        LinW::Candle(QMatMul::Tensor(Tensor::cat(&ts, 0)?))
    };
    let bias = if biases.iter().any(Option::is_some) {
        let mut b = Vec::with_capacity(n);
        for (r, bi) in rows.iter().zip(biases) {
            match bi {
                Some(v) => b.extend_from_slice(&v),
                None => b.extend(std::iter::repeat_n(0.0, *r)),
            }
        }
        Some(b)
    } else {
        None
    };
    Ok(Linear { w, bias, n, k })
}

fn single(m: Mat, bias: Option<Vec<f32>>) -> candle_core::Result<Linear> {
    match m {
        Mat::Own(q) => Ok(Linear {
            n: q.rows(),
            k: q.cols(),
            w: LinW::Own(vec![Arc::new(q)]),
            bias,
        }),
        Mat::Candle(q) => {
            let (n, k) = q.shape().dims2()?;
            Ok(Linear {
                w: LinW::Candle(QMatMul::from_qtensor(q)?),
                bias,
                n,
                k,
            })
        }
    }
}

/// The token embedding table (row lookups only).
enum Embed {
    Own(Arc<QMatrix>),
    Candle(Arc<QTensor>),
}

impl Model {
    /// Loads the model in `f` with weights in `format`; the KV caches it makes hold at most
    /// `max_context` positions (capped by the model's trained context).
    pub fn load(
        f: &mut GgufFile,
        format: WeightFormat,
        max_context: usize,
    ) -> Result<Self, SlmError> {
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
        let cfg = ModelConfig {
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
        };
        let max_context = max_context.clamp(1, train_context.max(1));
        let mut l = Loader { f, format };
        let embed_q = l.qtensor("token_embd.weight")?;
        if embed_q.shape().dims() != [vocab, hidden] {
            return Err(file_error(
                &path,
                "tensor `token_embd.weight` has the wrong shape",
            ));
        }
        let output_norm = l.vector("output_norm.weight", hidden)?;
        let embed_own = own_as_is(&embed_q)
            .map_err(|e| file_error(&path, format!("tensor `token_embd.weight`: {e}")))?
            .map(Arc::new);
        let wanted = target(embed_q.dtype(), format, hidden);
        let output = if l.has("output.weight") {
            let q = l.matrix("output.weight", vocab, hidden)?;
            single(q, None).map_err(|e| file_error(&path, e.to_string()))?
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
                        .map_err(|e| file_error(&path, e.to_string()))?;
                    single(q, None).map_err(|e| file_error(&path, e.to_string()))?
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
        let qd = n_head * head_dim;
        let kvd = n_kv_head * head_dim;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let attn_norm = l.vector(&p("attn_norm.weight"), hidden)?;
            let qkv = if l.has(&p("attn_qkv.weight")) {
                let w = l.matrix(&p("attn_qkv.weight"), qd + 2 * kvd, hidden)?;
                let b = l.bias(&p("attn_qkv.bias"), qd + 2 * kvd)?;
                single(w, b).map_err(|e| file_error(&path, e.to_string()))?
            } else {
                let q = l.matrix(&p("attn_q.weight"), qd, hidden)?;
                let k = l.matrix(&p("attn_k.weight"), kvd, hidden)?;
                let v = l.matrix(&p("attn_v.weight"), kvd, hidden)?;
                let bq = l.bias(&p("attn_q.bias"), qd)?;
                let bk = l.bias(&p("attn_k.bias"), kvd)?;
                let bv = l.bias(&p("attn_v.bias"), kvd)?;
                fuse(vec![q, k, v], vec![bq, bk, bv], hidden)
                    .map_err(|e| file_error(&path, e.to_string()))?
            };
            let o = l.matrix(&p("attn_output.weight"), hidden, qd)?;
            let ob = l.bias(&p("attn_output.bias"), hidden)?;
            let o = single(o, ob).map_err(|e| file_error(&path, e.to_string()))?;
            let q_norm = l.opt_vector(&p("attn_q_norm.weight"), head_dim)?;
            let k_norm = l.opt_vector(&p("attn_k_norm.weight"), head_dim)?;
            let post_attn_norm = l.opt_vector(&p("post_attention_norm.weight"), hidden)?;
            let ffn_norm = l.vector(&p("ffn_norm.weight"), hidden)?;
            let gate_up = if l.has(&p("ffn_gate.weight")) {
                let g = l.matrix(&p("ffn_gate.weight"), ff, hidden)?;
                let u = l.matrix(&p("ffn_up.weight"), ff, hidden)?;
                fuse(vec![g, u], vec![None, None], hidden)
                    .map_err(|e| file_error(&path, e.to_string()))?
            } else {
                let gu = l.matrix(&p("ffn_up.weight"), 2 * ff, hidden)?;
                single(gu, None).map_err(|e| file_error(&path, e.to_string()))?
            };
            let down = l.matrix(&p("ffn_down.weight"), hidden, ff)?;
            let down = single(down, None).map_err(|e| file_error(&path, e.to_string()))?;
            let post_ffn_norm = l.opt_vector(&p("post_ffw_norm.weight"), hidden)?;
            let sliding = arch == Arch::Gemma3 && sliding_window.is_some() && (i + 1) % 6 != 0;
            layers.push(Layer {
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
            });
        }
        let freq_factors = if l.has("rope_freqs.weight") {
            Some(l.vector("rope_freqs.weight", rope_dim / 2)?)
        } else {
            None
        };
        let rope_global = Rope::new(
            rope_base,
            rope_dim,
            rope_scale,
            max_context,
            freq_factors.as_deref(),
        );
        let rope_local = (arch == Arch::Gemma3)
            .then(|| Rope::new(cfg.rope_base_local, rope_dim, 1.0, max_context, None));
        let (shared, embed_bytes) = match (&embed, &output.w) {
            (Embed::Own(e), LinW::Own(o)) => (o.iter().any(|o| Arc::ptr_eq(e, o)), e.bytes()),
            (Embed::Own(e), _) => (false, e.bytes()),
            (Embed::Candle(e), _) => (false, e.storage_size_in_bytes()),
        };
        let weight_bytes = embed_bytes
            + if shared { 0 } else { output.bytes() }
            + layers
                .iter()
                .map(|x| x.qkv.bytes() + x.o.bytes() + x.gate_up.bytes() + x.down.bytes())
                .sum::<usize>();
        Ok(Self {
            embed_scale: if arch == Arch::Gemma3 {
                (hidden as f32).sqrt()
            } else {
                1.0
            },
            interleaved_rope: arch == Arch::Llama,
            cfg,
            format,
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
    ) -> Result<Self, SlmError> {
        let mut f = GgufFile::open(path)?;
        Self::load(&mut f, format, max_context)
    }

    /// Hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
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

    /// Runs `tokens` after what `cache` holds, appends their keys/values to the cache and
    /// returns the logits of the last token. On error the cache is left as it was.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, SlmError> {
        if tokens.is_empty() {
            return Err(SlmError::Inference("forward called with no tokens".into()));
        }
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
        let start = cache.len();
        match self.forward_inner(tokens, cache) {
            Ok(l) => {
                cache.tokens.extend_from_slice(tokens);
                Ok(l)
            }
            Err(e) => {
                for (k, v) in cache.k.iter_mut().zip(cache.v.iter_mut()) {
                    k.truncate(start * cache.kv_dim);
                    v.truncate(start * cache.kv_dim);
                }
                Err(e)
            }
        }
    }

    fn forward_inner(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, SlmError> {
        let c = &self.cfg;
        let m = tokens.len();
        let h = c.hidden;
        let p0 = cache.len();
        let mut x = match &self.embed {
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
        };
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
            let qkv = layer.qkv.forward(&hbuf, m, &mut acts).map_err(inf)?;
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
            );
            let mut o = layer.o.forward(&attn, m, &mut acts).map_err(inf)?;
            if let Some(w) = &layer.post_attn_norm {
                for r in o.chunks_exact_mut(h) {
                    rms_norm_inplace(r, w, c.eps);
                }
            }
            add_inplace(&mut x, &o);
            rms_norm(&x, &layer.ffn_norm, c.eps, &mut hbuf);
            let gu = layer.gate_up.forward(&hbuf, m, &mut acts).map_err(inf)?;
            let mut act = vec![0f32; m * c.ff];
            let gelu = c.arch == Arch::Gemma3;
            for i in 0..m {
                let r = &gu[i * 2 * c.ff..(i + 1) * 2 * c.ff];
                let (g, u) = r.split_at(c.ff);
                for ((a, gg), uu) in act[i * c.ff..(i + 1) * c.ff].iter_mut().zip(g).zip(u) {
                    *a = if gelu { gelu_tanh(*gg) } else { silu(*gg) } * uu;
                }
            }
            let mut d = layer.down.forward(&act, m, &mut acts).map_err(inf)?;
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
        self.output.forward(&normed, 1, &mut acts).map_err(inf)
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

trait CloneForOutput {
    fn clone_for_output(&self) -> Result<QTensor, SlmError>;
}

impl CloneForOutput for QTensor {
    fn clone_for_output(&self) -> Result<QTensor, SlmError> {
        let data = self.data().map_err(inf)?;
        let storage =
            QStorage::from_data(Cow::Owned(data.into_owned()), &Device::Cpu, self.dtype())
                .map_err(inf)?;
        QTensor::new(storage, self.shape().clone()).map_err(inf)
    }
}

#[derive(Clone, Copy)]
struct AttnShape {
    m: usize,
    p0: usize,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    window: Option<usize>,
}

/// Causal attention of `m` new queries over the cache (which already holds their keys).
fn attention(q: &[f32], kc: &[f32], vc: &[f32], out: &mut [f32], s: AttnShape) {
    let items = s.m * s.n_head;
    let out_ptr = out.as_mut_ptr() as usize;
    let work = |range: std::ops::Range<usize>| {
        // the same CPU test as the matrix kernels (and the same MILLWRIGHT_SLM_KERNELS cap)
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::Isa::detect() != crate::kernels::Isa::Portable {
            // SAFETY: the CPU has the features; the range contract is `attention_items`'.
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
            let sc = dot(qh, kj) * scale;
            max = max.max(sc);
            scores.push(sc);
        }
        let mut sum = 0.0;
        for sc in scores.iter_mut() {
            *sc = (*sc - max).exp();
            sum += *sc;
        }
        let inv = 1.0 / sum;
        // SAFETY: every item writes only its own disjoint `hd`-long slice of `out`, which
        // outlives this call (the pool returns after all work is done).
        let o = unsafe { std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(item * hd), hd) };
        o.iter_mut().for_each(|x| *x = 0.0);
        for (jj, w) in scores.iter().enumerate() {
            let vj = &vc[(start + jj) * kvd + g * hd..][..hd];
            axpy(o, vj, w * inv);
        }
    }
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

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let h = w.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let r = inv_rms(xr, eps);
        for ((o, a), b) in or.iter_mut().zip(xr).zip(w) {
            *o = a * r * b;
        }
    }
}

fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let h = w.len();
    for xr in x.chunks_exact_mut(h) {
        let r = inv_rms(xr, eps);
        for (a, b) in xr.iter_mut().zip(w) {
            *a *= r * b;
        }
    }
}

fn add_inplace(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[inline]
fn gelu_tanh(x: f32) -> f32 {
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
