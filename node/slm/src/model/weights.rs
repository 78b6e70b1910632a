//! The weights as held in memory: where each GGUF matrix goes ([`Target`]: own kernels or
//! candle's, in which block type), the conversions, fused linear layers ([`Linear`]), the
//! per-block tensors ([`Layer`]), the embedding table and the tensor reader ([`Loader`]).
//! Nothing here runs attention or knows the order of a forward pass.

use super::WeightFormat;
use crate::gguf::{file_error, GgufFile};
use crate::kernels::{Isa, QActs, QMatrix, QType, QK_K};
use crate::pool;
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use millwright_core::SlmError;
use std::borrow::Cow;
use std::sync::Arc;

/// A matrix as loaded: on the own kernels, or left to candle's.
pub(super) enum Mat {
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

pub(super) enum LinW {
    /// Own matrices filling the output side by side: usually one; several when fused parts
    /// have different block types (e.g. q/k in Q4_K, v in Q6_K).
    Own(Vec<Arc<QMatrix>>),
    Candle(QMatMul),
}

pub(super) struct Linear {
    pub(super) w: LinW,
    pub(super) bias: Option<Vec<f32>>,
    pub(super) n: usize,
    pub(super) k: usize,
}

impl Linear {
    /// `m` rows of `k` in, `m` rows of `n` out; `acts` is scratch for the quantized input,
    /// `isa` the kernel set of the own matrices.
    pub(super) fn forward(
        &self,
        x: &[f32],
        m: usize,
        acts: &mut QActs,
        isa: Isa,
    ) -> candle_core::Result<Vec<f32>> {
        let mut v = match &self.w {
            LinW::Own(parts) => {
                acts.quantize(x, m, self.k, isa);
                let mut y = vec![0f32; m * self.n];
                let mut off = 0;
                for q in parts {
                    q.matmul_into(acts, &mut y, self.n, off, isa, pool::global());
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

    pub(super) fn bytes(&self) -> usize {
        match &self.w {
            LinW::Own(parts) => parts.iter().map(|q| q.bytes()).sum(),
            LinW::Candle(QMatMul::QTensor(q)) => q.storage_size_in_bytes(),
            LinW::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => {
                t.elem_count() * t.dtype().size_in_bytes()
            }
        }
    }
}

pub(super) struct Layer {
    pub(super) attn_norm: Vec<f32>,
    /// Fused q|k|v projection (rows: q then k then v).
    pub(super) qkv: Linear,
    pub(super) o: Linear,
    pub(super) q_norm: Option<Vec<f32>>,
    pub(super) k_norm: Option<Vec<f32>>,
    pub(super) post_attn_norm: Option<Vec<f32>>,
    pub(super) ffn_norm: Vec<f32>,
    /// Fused gate|up projection (rows: gate then up).
    pub(super) gate_up: Linear,
    pub(super) down: Linear,
    pub(super) post_ffn_norm: Option<Vec<f32>>,
    pub(super) sliding: bool,
}

pub(super) fn inf(e: candle_core::Error) -> SlmError {
    SlmError::Inference(e.to_string())
}

pub(super) struct Loader<'a> {
    pub(super) f: &'a mut GgufFile,
    pub(super) format: WeightFormat,
}

impl Loader<'_> {
    pub(super) fn has(&self, name: &str) -> bool {
        self.f.content.tensor_infos.contains_key(name)
    }

    pub(super) fn qtensor(&mut self, name: &str) -> Result<QTensor, SlmError> {
        let path = self.f.path.clone();
        if !self.has(name) {
            return Err(file_error(&path, format!("tensor `{name}` missing")));
        }
        self.f
            .content
            .tensor(&mut self.f.reader, name, &Device::Cpu)
            .map_err(|e| file_error(&path, format!("tensor `{name}`: {e}")))
    }

    pub(super) fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, SlmError> {
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

    pub(super) fn opt_vector(
        &mut self,
        name: &str,
        len: usize,
    ) -> Result<Option<Vec<f32>>, SlmError> {
        if self.has(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Loads a matrix (n rows of k) converted to the chosen weight format.
    pub(super) fn matrix(&mut self, name: &str, n: usize, k: usize) -> Result<Mat, SlmError> {
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

    pub(super) fn bias(&mut self, name: &str, n: usize) -> Result<Option<Vec<f32>>, SlmError> {
        self.opt_vector(name, n)
    }
}

/// Where a matrix ends up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// On the own kernels in this block type.
    Own(QType),
    /// On candle's kernels in this type (None: a dense f32 tensor).
    Candle(Option<GgmlDType>),
}

/// Where a matrix of `dtype` with rows of `k` goes under `format`.
pub(super) fn target(dtype: GgmlDType, format: WeightFormat, k: usize) -> Target {
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
pub(super) fn own_as_is(q: &QTensor) -> candle_core::Result<Option<QMatrix>> {
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

pub(super) fn convert(q: QTensor, format: WeightFormat, k: usize) -> candle_core::Result<Mat> {
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
pub(super) fn fuse(
    parts: Vec<Mat>,
    biases: Vec<Option<Vec<f32>>>,
    k: usize,
) -> candle_core::Result<Linear> {
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

pub(super) fn single(m: Mat, bias: Option<Vec<f32>>) -> candle_core::Result<Linear> {
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
pub(super) enum Embed {
    Own(Arc<QMatrix>),
    Candle(Arc<QTensor>),
}

pub(super) trait CloneForOutput {
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
