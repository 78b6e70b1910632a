//! Block formats of the own kernels: the weight block types ([`QType`]) and their layouts,
//! [`QMatrix`] (taking GGML block data as it is, repacking Q4_0 to the Q4_1 layout,
//! dequantizing a row) and [`QActs`] (activations quantized to 8 bits in blocks of 32).
//!
//! Safe code only: the SIMD dot products live in `portable.rs` and `x86.rs`, the dispatch in
//! `mod.rs`.

use super::Isa;
use candle_core::quantized::GgmlDType;

/// Values per activation block (and per block of the simple weight types).
pub const QK: usize = 32;

/// Values per K-quant super-block.
pub const QK_K: usize = 256;

/// Weight block types with own kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    /// `d: f16, m: f16, qs: [u8; 16]` (value `j` in the low nibble of byte `j`, value `j+16`
    /// in the high nibble), value = `d·q + m`.
    Q4_1,
    /// `d: f16, qs: [i8; 32]`, value = `d·q`.
    Q8_0,
    /// Super-block of 256: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`. Sub-block `j`
    /// of 32 has a 6-bit scale `sc_j` and min `m_j` (packed as in ggml's `get_scale_min_k4`);
    /// value = `d·sc_j·q − dmin·m_j`. Values `64i..64i+32` are the low nibbles of
    /// `qs[32i..32i+32]` (sub-block `2i`), values `64i+32..64i+64` their high nibbles.
    #[allow(non_camel_case_types)]
    Q4_K,
    /// Super-block of 256: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`; 6-bit `q`
    /// (low 4 bits in `ql`, high 2 in `qh`), one scale per 16 values, value = `d·sc·(q − 32)`.
    #[allow(non_camel_case_types)]
    Q6_K,
}

impl QType {
    /// Bytes per block ([`QType::block_values`] values).
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q6_K => 210,
        }
    }

    /// Values per block: 32, or 256 for the K-quants (rows must be a multiple of this).
    pub const fn block_values(self) -> usize {
        match self {
            Self::Q4_1 | Self::Q8_0 => QK,
            Self::Q4_K | Self::Q6_K => QK_K,
        }
    }

    /// The GGML type with the same name.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4_K => GgmlDType::Q4K,
            Self::Q6_K => GgmlDType::Q6K,
        }
    }
}

/// A quantized matrix of `n` rows of `k` values (`k` a multiple of the type's block length),
/// row-major blocks.
pub struct QMatrix {
    pub(super) ty: QType,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) data: Vec<u8>,
}

/// Why raw block data could not be taken as a matrix.
#[derive(Debug, thiserror::Error)]
pub enum QMatrixError {
    /// Row length not a (non-zero) multiple of the block length.
    #[error("row length {k} is not a multiple of {multiple}")]
    RowLength {
        /// The row length given.
        k: usize,
        /// The block length it must be a multiple of.
        multiple: usize,
    },
    /// Wrong amount of data.
    #[error("expected {expected} bytes of block data, got {got}")]
    Size {
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A block scale that cannot be used.
    #[error("block {0} has a scale out of range")]
    Scale(usize),
}

pub(super) fn f16_bits(b: &[u8], at: usize) -> half::f16 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Unpacks Q4_K's 12 scale bytes: bytes 0..8 of the result (as little-endian words) are the
/// 6-bit scales of sub-blocks 0..8, bytes 8..16 their mins (ggml's `get_scale_min_k4`, done
/// four at a time as in llama.cpp).
#[inline(always)]
pub(super) fn q4k_scales(s: &[u8; 12]) -> [u32; 4] {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let u0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let u1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
    let u2 = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
    [
        u0 & K1,
        (u2 & K2) | (((u0 >> 6) & K3) << 4),
        u1 & K1,
        ((u2 >> 4) & K2) | (((u1 >> 6) & K3) << 4),
    ]
}

/// Q4_K scales then mins as bytes (`[sc_0..sc_8, m_0..m_8]`).
pub(super) fn q4k_scale_bytes(blk: &[u8]) -> [u8; 16] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&blk[4..16]);
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(q4k_scales(&s)) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Q4_K: the 4-bit `q` of value `32·j + l` of a super-block (`j` the sub-block).
pub(super) fn q4k_q(blk: &[u8], j: usize, l: usize) -> u8 {
    let b = blk[16 + 32 * (j / 2) + l];
    if j.is_multiple_of(2) {
        b & 0x0F
    } else {
        b >> 4
    }
}

/// Q6_K: the 6-bit `q` (0..64, offset 32 not yet taken off) of value `128·h + 32·c + l` of a
/// super-block.
pub(super) fn q6k_q(blk: &[u8], h: usize, c: usize, l: usize) -> i32 {
    let ql = blk[64 * h + 32 * (c % 2) + l];
    let lo = if c < 2 { ql & 0x0F } else { ql >> 4 };
    let hi = (blk[128 + 32 * h + l] >> (2 * c)) & 3;
    i32::from(lo | (hi << 4))
}

impl QMatrix {
    /// Takes GGML block data of type `ty` (n rows of k values).
    pub fn from_blocks(ty: QType, n: usize, k: usize, data: Vec<u8>) -> Result<Self, QMatrixError> {
        let bv = ty.block_values();
        if !k.is_multiple_of(bv) || k == 0 {
            return Err(QMatrixError::RowLength { k, multiple: bv });
        }
        let expected = n * (k / bv) * ty.block_bytes();
        if data.len() != expected {
            return Err(QMatrixError::Size {
                expected,
                got: data.len(),
            });
        }
        Ok(Self { ty, n, k, data })
    }

    /// Converts GGML Q4_0 blocks (`d: f16, qs: [u8; 16]`, value `d·(q-8)`) to the Q4_1 layout
    /// with `m = -8·d` (exact in f16).
    pub fn from_q4_0(n: usize, k: usize, src: &[u8]) -> Result<Self, QMatrixError> {
        if !k.is_multiple_of(QK) || k == 0 {
            return Err(QMatrixError::RowLength { k, multiple: QK });
        }
        let blocks = n * (k / QK);
        if src.len() != blocks * 18 {
            return Err(QMatrixError::Size {
                expected: blocks * 18,
                got: src.len(),
            });
        }
        let mut data = Vec::with_capacity(blocks * 20);
        for (i, b) in src.chunks_exact(18).enumerate() {
            let d = f16_bits(b, 0);
            let m = half::f16::from_f32(-8.0 * d.to_f32());
            if !m.is_finite() {
                return Err(QMatrixError::Scale(i));
            }
            data.extend_from_slice(&b[..2]);
            data.extend_from_slice(&m.to_bits().to_le_bytes());
            data.extend_from_slice(&b[2..18]);
        }
        Self::from_blocks(QType::Q4_1, n, k, data)
    }

    /// Block type.
    pub fn qtype(&self) -> QType {
        self.ty
    }
    /// Rows.
    pub fn rows(&self) -> usize {
        self.n
    }
    /// Values per row.
    pub fn cols(&self) -> usize {
        self.k
    }
    /// The raw block data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
    pub(super) fn row_bytes(&self) -> usize {
        self.k / self.ty.block_values() * self.ty.block_bytes()
    }

    /// Writes row `r` as f32 values into `out` (`k` long).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let Some(row) = self.data.get(r * rb..(r + 1) * rb) else {
            return;
        };
        let bb = self.ty.block_bytes();
        for (blk, o) in row
            .chunks_exact(bb)
            .zip(out.chunks_exact_mut(self.ty.block_values()))
        {
            let d = f16_bits(blk, 0).to_f32();
            match self.ty {
                QType::Q4_1 => {
                    let m = f16_bits(blk, 2).to_f32();
                    for j in 0..16 {
                        let q = blk[4 + j];
                        o[j] = d * f32::from(q & 0x0F) + m;
                        o[j + 16] = d * f32::from(q >> 4) + m;
                    }
                }
                QType::Q8_0 => {
                    for j in 0..QK {
                        o[j] = d * f32::from(blk[2 + j] as i8);
                    }
                }
                // Same rounding as ggml/candle: (d·sc)·q − (dmin·m).
                QType::Q4_K => {
                    let dmin = f16_bits(blk, 2).to_f32();
                    let sm = q4k_scale_bytes(blk);
                    for (j, o) in o.chunks_exact_mut(QK).enumerate() {
                        let dj = d * f32::from(sm[j]);
                        let mj = dmin * f32::from(sm[8 + j]);
                        for (l, v) in o.iter_mut().enumerate() {
                            *v = dj * f32::from(q4k_q(blk, j, l)) - mj;
                        }
                    }
                }
                // (d·sc)·(q − 32).
                QType::Q6_K => {
                    let d = f16_bits(blk, 208).to_f32();
                    for (b, o) in o.chunks_exact_mut(QK).enumerate() {
                        let (h, c) = (b / 4, b % 4);
                        for (l, v) in o.iter_mut().enumerate() {
                            let sc = f32::from(blk[192 + 8 * h + 2 * c + l / 16] as i8);
                            *v = d * sc * (q6k_q(blk, h, c, l) - 32) as f32;
                        }
                    }
                }
            }
        }
    }
}

/// Activations quantized to 8 bits in blocks of 32: `m` rows of `k` values.
#[derive(Default)]
pub struct QActs {
    pub(super) m: usize,
    pub(super) k: usize,
    /// Per block: `[d, d·Σq]`.
    pub(super) ds: Vec<[f32; 2]>,
    pub(super) qs: Vec<i8>,
    /// For the 512-bit kernels only (empty otherwise): per row and pair of blocks, the two
    /// scales `d` spread over 16 lanes (`[d_2j ×8, d_2j+1 ×8]`, 0 for a missing odd block),
    /// [`QActs::dx_stride`] floats per row.
    pub(super) dx: Vec<f32>,
}

impl QActs {
    /// Quantizes `x` (`m` rows of `k`, `k` a multiple of 32) reusing this buffer, with the
    /// code of kernel set `isa` (every set gives the same result).
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize, isa: Isa) {
        self.m = m;
        self.k = k;
        let nb = k / QK;
        self.ds.clear();
        self.ds.resize(m * nb, [0.0; 2]);
        self.qs.clear();
        self.qs.resize(m * k, 0);
        let x = &x[..m * k];
        self.dx.clear();
        #[cfg(target_arch = "x86_64")]
        if isa != Isa::PORTABLE {
            // SAFETY: every non-portable kernel set implies AVX2 and FMA, and holding an
            // `Isa` proves this CPU supports it.
            unsafe { super::x86::quantize_blocks_avx2(x, &mut self.qs, &mut self.ds) };
            if isa.wide() {
                self.spread_scales();
            }
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = isa;
        quantize_blocks(x, &mut self.qs, &mut self.ds);
    }

    /// Floats per row of [`QActs::dx`]: 16 per pair of blocks.
    pub(super) fn dx_stride(&self) -> usize {
        (self.k / QK).div_ceil(2) * 16
    }

    /// Fills [`QActs::dx`] from `ds` (the 512-bit kernels' layout; the values are `ds`'s,
    /// only placed differently).
    fn spread_scales(&mut self) {
        let nb = self.k / QK;
        let dxs = self.dx_stride();
        self.dx.resize(self.m * dxs, 0.0);
        for (ds, dx) in self
            .ds
            .chunks_exact(nb.max(1))
            .zip(self.dx.chunks_exact_mut(dxs.max(1)))
        {
            for (pair, out) in ds.chunks(2).zip(dx.chunks_exact_mut(16)) {
                for (half, d) in out.chunks_exact_mut(8).zip(pair) {
                    half.fill(d[0]);
                }
            }
        }
    }

    /// Writes the values these quantized activations stand for back into `x`.
    pub fn dequantize(&self, x: &mut [f32]) {
        for ((xb, qb), ds) in x
            .chunks_exact_mut(QK)
            .zip(self.qs.chunks_exact(QK))
            .zip(self.ds.iter())
        {
            for (v, q) in xb.iter_mut().zip(qb) {
                *v = ds[0] * f32::from(*q);
            }
        }
    }
}

/// Quantizes `x` in blocks of 32 to `q = round(x/d)`, `d = max|x|/127` (rounding half away
/// from zero, without a libm call so that it vectorizes).
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], qs: &mut [i8], ds: &mut [[f32; 2]]) {
    for ((xb, qb), ds) in x
        .chunks_exact(QK)
        .zip(qs.chunks_exact_mut(QK))
        .zip(ds.iter_mut())
    {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in qb.iter_mut().zip(xb) {
            let s = v * id;
            let r = ((s + 0.5f32.copysign(s)) as i32).clamp(-127, 127);
            *q = r as i8;
            sum += r;
        }
        *ds = [d, d * sum as f32];
    }
}
