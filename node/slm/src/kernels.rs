//! Quantized matrix kernels for the forward pass: 4-bit (Q4_1 layout, also used for Q4_0),
//! 8-bit (Q8_0) and the K-quants Q4_K and Q6_K (super-blocks of 256) times activations
//! quantized to 8 bits in blocks of 32.
//!
//! Why not candle's kernels: candle has only a scalar loop for Q4_1 (SmolLM2's shipped type),
//! and its int8 kernels with VNNI need rows that are multiples of 256 (SmolLM2's are 576). The
//! kernels here work on any row length that is a multiple of 32, keep 4-bit weights in 4 bits
//! (a decode step is bound by how many weight bytes it streams), and pick at run time among
//! AVX-VNNI / AVX512-VNNI, AVX2+FMA+F16C and portable code, so one binary runs on any x86-64
//! or aarch64 gateway. For the K-quants candle's batched (prompt) and one-token paths round
//! differently, so a prompt computed at once and one computed token by token disagreed; here
//! a (row, token) result does not depend on the batch. (candle's repacked VNNI tiles are about
//! twice as fast on long prompts; these win on decode.)
//!
//! The arithmetic is llama.cpp's: a weight block is `d·q + m` (Q4_1) or `d·q` (Q8_0); the
//! activation block is `d_a·q_a` with `s_a = d_a·Σq_a`, so a block's dot product is
//! `d·d_a·Σ(q·q_a) + m·s_a`, with the integer sum done in 8-bit SIMD lanes. A Q4_K sub-block of
//! 32 is the same with `d·sc_j` and `−dmin·m_j`; a Q6_K block of 32 has two scales (one per
//! 16 values) and `q − 32` weights, so its integer sum is kept per 16. The same kernel
//! serves one token (decode) and many (prompt), so a prompt computed at once and one computed
//! token by token give the same numbers.

// The kernels are raw-pointer SIMD code from top to bottom; each unsafe fn states its contract.
#![allow(unsafe_op_in_unsafe_fn)]

use crate::pool::Pool;
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
    ty: QType,
    n: usize,
    k: usize,
    data: Vec<u8>,
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

fn f16_bits(b: &[u8], at: usize) -> half::f16 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Unpacks Q4_K's 12 scale bytes: bytes 0..8 of the result (as little-endian words) are the
/// 6-bit scales of sub-blocks 0..8, bytes 8..16 their mins (ggml's `get_scale_min_k4`, done
/// four at a time as in llama.cpp).
#[inline(always)]
fn q4k_scales(s: &[u8; 12]) -> [u32; 4] {
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
fn q4k_scale_bytes(blk: &[u8]) -> [u8; 16] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&blk[4..16]);
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(q4k_scales(&s)) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Q4_K: the 4-bit `q` of value `32·j + l` of a super-block (`j` the sub-block).
fn q4k_q(blk: &[u8], j: usize, l: usize) -> u8 {
    let b = blk[16 + 32 * (j / 2) + l];
    if j.is_multiple_of(2) {
        b & 0x0F
    } else {
        b >> 4
    }
}

/// Q6_K: the 6-bit `q` (0..64, offset 32 not yet taken off) of value `128·h + 32·c + l` of a
/// super-block.
fn q6k_q(blk: &[u8], h: usize, c: usize, l: usize) -> i32 {
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
    fn row_bytes(&self) -> usize {
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

    /// `y[t·n + r] = Σ_j W[r][j]·x[t][j]` for the `m` activation rows in `a`, split over the
    /// pool's threads by weight rows.
    pub fn matmul(&self, a: &QActs, y: &mut [f32], pool: &Pool) {
        self.matmul_into(a, y, self.n, 0, pool);
    }

    /// `y[t·ld + off + r] = Σ_j W[r][j]·x[t][j]`: the same product written into columns
    /// `off..off+n` of an output with rows of `ld` (several matrices fill one output).
    pub fn matmul_into(&self, a: &QActs, y: &mut [f32], ld: usize, off: usize, pool: &Pool) {
        let m = a.m;
        debug_assert_eq!(a.k, self.k);
        if a.k != self.k || off + self.n > ld || y.len() < m * ld || m == 0 {
            return;
        }
        let out = SendPtr(y[off..].as_mut_ptr());
        let work = |rows: std::ops::Range<usize>| {
            // SAFETY: each call writes only `y[t·ld + off + r]` for its own rows `r`, which
            // are disjoint between calls and inside `y` (checked above); `y` outlives the job.
            unsafe { rows_kernel(self, a, rows, out.get(), ld) }
        };
        // Enough rows per thread to be worth waking it.
        if pool.threads() == 1 || self.n * self.k * m < 64 * 1024 {
            work(0..self.n);
        } else {
            pool.for_ranges(self.n, 16, &work);
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint parts of one output buffer to the pool's threads.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Activations quantized to 8 bits in blocks of 32: `m` rows of `k` values.
#[derive(Default)]
pub struct QActs {
    m: usize,
    k: usize,
    /// Per block: `[d, d·Σq]`.
    ds: Vec<[f32; 2]>,
    qs: Vec<i8>,
}

impl QActs {
    /// Quantizes `x` (`m` rows of `k`, `k` a multiple of 32) reusing this buffer.
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize) {
        self.m = m;
        self.k = k;
        let nb = k / QK;
        self.ds.clear();
        self.ds.resize(m * nb, [0.0; 2]);
        self.qs.clear();
        self.qs.resize(m * k, 0);
        let x = &x[..m * k];
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() != Isa::Portable {
            // SAFETY: every non-portable kernel set implies AVX2 and FMA.
            unsafe { quantize_blocks_avx2(x, &mut self.qs, &mut self.ds) };
            return;
        }
        quantize_blocks(x, &mut self.qs, &mut self.ds);
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

/// [`quantize_blocks`] compiled for AVX2 (the same arithmetic, so the same result).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_blocks_avx2(x: &[f32], qs: &mut [i8], ds: &mut [[f32; 2]]) {
    quantize_blocks(x, qs, ds)
}

/// Quantizes `x` in blocks of 32 to `q = round(x/d)`, `d = max|x|/127` (rounding half away
/// from zero, without a libm call so that it vectorizes).
#[inline(always)]
fn quantize_blocks(x: &[f32], qs: &mut [i8], ds: &mut [[f32; 2]]) {
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

/// The best kernel set this CPU supports (detected once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust (any CPU).
    Portable,
    /// AVX2 + FMA + F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2 + AVX-VNNI.
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// AVX2 + AVX512-VNNI with VL (256-bit lanes; CPUs with AVX-512 but no AVX-VNNI).
    #[cfg(target_arch = "x86_64")]
    Vnni512,
}

impl Isa {
    /// The kernel set in use.
    pub fn detect() -> Self {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            // `MILLWRIGHT_SLM_KERNELS=portable|avx2|avx512-vnni|avx-vnni` caps the choice (to
            // measure what an older gateway gets); it never picks what the CPU lacks.
            let cap = std::env::var("MILLWRIGHT_SLM_KERNELS").ok();
            let allowed = |isa: Isa| cap.as_deref().is_none_or(|c| isa.rank() <= Isa::rank_of(c));
            let mut best = Isa::Portable;
            for isa in Isa::supported() {
                if allowed(isa) && isa.rank() > best.rank() {
                    best = isa;
                }
            }
            best
        })
    }

    /// Every kernel set this CPU can run.
    pub fn supported() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                v.push(Isa::Avx2);
                if has!("avx512vnni") && has!("avx512vl") && has!("avx512f") {
                    v.push(Isa::Vnni512);
                }
                if has!("avxvnni") {
                    v.push(Isa::Vnni);
                }
            }
        }
        v
    }

    fn rank(self) -> u8 {
        match self {
            Isa::Portable => 0,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 1,
            #[cfg(target_arch = "x86_64")]
            Isa::Vnni512 => 2,
            #[cfg(target_arch = "x86_64")]
            Isa::Vnni => 3,
        }
    }

    fn rank_of(name: &str) -> u8 {
        match name.trim().to_ascii_lowercase().as_str() {
            "portable" => 0,
            "avx2" => 1,
            "avx512-vnni" => 2,
            _ => u8::MAX,
        }
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Vnni => "avx-vnni",
            #[cfg(target_arch = "x86_64")]
            Isa::Vnni512 => "avx512-vnni",
        }
    }
}

/// Runs the rows `rows` of `w` against every activation row.
///
/// # Safety
/// `y` must point to `(a.m - 1) · ld + w.n` writable floats; no other thread may write the
/// entries of these rows.
unsafe fn rows_kernel(
    w: &QMatrix,
    a: &QActs,
    rows: std::ops::Range<usize>,
    y: *mut f32,
    ld: usize,
) {
    rows_kernel_with(Isa::detect(), w, a, rows, y, ld)
}

/// Weight rows per tile: a tile (a few KB) and four activation rows stay in L1 while the
/// tile is run against every group of four tokens of a prompt.
const ROW_TILE: usize = 16;

/// [`rows_kernel`] with a chosen kernel set (tests compare them).
///
/// # Safety
/// As [`rows_kernel`]; `isa` must be supported by this CPU.
unsafe fn rows_kernel_with(
    isa: Isa,
    w: &QMatrix,
    a: &QActs,
    rows: std::ops::Range<usize>,
    y: *mut f32,
    ld: usize,
) {
    let nb = w.k / QK;
    let rb = w.row_bytes();
    let m = a.m;
    let wp = w.data.as_ptr();
    let qs = a.qs.as_ptr();
    let ds = a.ds.as_ptr();
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + ROW_TILE).min(rows.end);
        let mut t = 0;
        while t + 4 <= m {
            let (aq, ad) = (qs.add(t * w.k), ds.add(t * nb));
            for r in r0..r1 {
                let mut out = [0f32; 4];
                row_dot(isa, w.ty, wp.add(r * rb), aq, ad, nb, w.k, &mut out);
                for (i, v) in out.iter().enumerate() {
                    *y.add((t + i) * ld + r) = *v;
                }
            }
            t += 4;
        }
        while t < m {
            let (aq, ad) = (qs.add(t * w.k), ds.add(t * nb));
            for r in r0..r1 {
                let mut out = [0f32; 1];
                row_dot(isa, w.ty, wp.add(r * rb), aq, ad, nb, w.k, &mut out);
                *y.add(t * ld + r) = out[0];
            }
            t += 1;
        }
        r0 = r1;
    }
}

/// One weight row (`nb` blocks of 32 values) against `T` activation rows `k` values apart,
/// with the kernel of `isa` for `ty`.
///
/// # Safety
/// As [`portable`]; `isa` must be supported by this CPU.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_dot<const T: usize>(
    isa: Isa,
    ty: QType,
    row: *const u8,
    aq: *const i8,
    ad: *const [f32; 2],
    nb: usize,
    k: usize,
    out: &mut [f32; T],
) {
    #[cfg(target_arch = "x86_64")]
    macro_rules! by_type {
        ($m:ident) => {
            match ty {
                QType::Q4_1 => $m::q4_1::<T>(row, aq, ad, nb, k, nb, out),
                QType::Q8_0 => $m::q8_0::<T>(row, aq, ad, nb, k, nb, out),
                QType::Q4_K => $m::q4_k::<T>(row, aq, ad, nb, k, nb, out),
                QType::Q6_K => $m::q6_k::<T>(row, aq, ad, nb, k, nb, out),
            }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Vnni => by_type!(x86_vnni),
        #[cfg(target_arch = "x86_64")]
        Isa::Vnni512 => by_type!(x86_vnni512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => by_type!(x86_avx2),
        Isa::Portable => portable::<T>(ty, row, aq, ad, nb, k, nb, out),
    }
}

/// Portable kernel: one weight row against `T` activation rows (`a_stride` values and
/// `d_stride` blocks apart); `nb` counts blocks of 32 (a multiple of 8 for the K-quants).
///
/// # Safety
/// Pointers must cover `nb` blocks of 32 values of the row and of each activation row.
#[allow(clippy::too_many_arguments)]
unsafe fn portable<const T: usize>(
    ty: QType,
    row: *const u8,
    aq: *const i8,
    ad: *const [f32; 2],
    nb: usize,
    a_stride: usize,
    d_stride: usize,
    out: &mut [f32; T],
) {
    let bb = ty.block_bytes();
    let per = ty.block_values() / QK;
    let mut acc = [0f32; T];
    for sb in 0..nb / per {
        let blk = std::slice::from_raw_parts(row.add(sb * bb), bb);
        let d = f16_bits(blk, 0).to_f32();
        let sm = if ty == QType::Q4_K {
            q4k_scale_bytes(blk)
        } else {
            [0; 16]
        };
        for (t, acc_t) in acc.iter_mut().enumerate() {
            for j in 0..per {
                let b = sb * per + j;
                let q = std::slice::from_raw_parts(aq.add(t * a_stride + b * QK), QK);
                let [da, sa] = *ad.add(t * d_stride + b);
                match ty {
                    QType::Q4_1 => {
                        let mut s = 0i32;
                        for j in 0..16 {
                            let w = blk[4 + j];
                            s += i32::from(w & 0x0F) * i32::from(q[j])
                                + i32::from(w >> 4) * i32::from(q[j + 16]);
                        }
                        let m = f16_bits(blk, 2).to_f32();
                        *acc_t += d * da * s as f32 + m * sa;
                    }
                    QType::Q8_0 => {
                        let mut s = 0i32;
                        for j in 0..QK {
                            s += i32::from(blk[2 + j] as i8) * i32::from(q[j]);
                        }
                        *acc_t += d * da * s as f32;
                    }
                    QType::Q4_K => {
                        let mut s = 0i32;
                        for (l, qa) in q.iter().enumerate() {
                            s += i32::from(q4k_q(blk, j, l)) * i32::from(*qa);
                        }
                        let dmin = f16_bits(blk, 2).to_f32();
                        *acc_t +=
                            d * f32::from(sm[j]) * da * s as f32 - dmin * f32::from(sm[8 + j]) * sa;
                    }
                    QType::Q6_K => {
                        let (h, c) = (j / 4, j % 4);
                        let mut s = [0i32; 2];
                        for (l, qa) in q.iter().enumerate() {
                            s[l / 16] += (q6k_q(blk, h, c, l) - 32) * i32::from(*qa);
                        }
                        let d6 = f16_bits(blk, 208).to_f32();
                        let sc = |i: usize| f32::from(blk[192 + 8 * h + 2 * c + i] as i8);
                        *acc_t += d6 * da * (sc(0) * s[0] as f32 + sc(1) * s[1] as f32);
                    }
                }
            }
        }
    }
    *out = acc;
}

#[cfg(target_arch = "x86_64")]
macro_rules! x86_kernels {
    ($name:ident, $features:literal, $idot:ident) => {
        mod $name {
            use super::{q4k_scales, QK};
            use std::arch::x86_64::*;

            #[inline(always)]
            unsafe fn hsum(v: __m256) -> f32 {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                _mm_cvtss_f32(s)
            }

            /// One Q4_1 weight row against `T` activation rows.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn q4_1<const T: usize>(
                row: *const u8,
                aq: *const i8,
                ad: *const [f32; 2],
                nb: usize,
                a_stride: usize,
                d_stride: usize,
                out: &mut [f32; T],
            ) {
                let m4 = _mm_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); T];
                let mut mins = [_mm_setzero_ps(); T];
                for b in 0..nb {
                    let blk = row.add(b * 20);
                    // [d, m, 0, 0]
                    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(
                        blk as *const i32,
                    )));
                    let q = _mm_loadu_si128(blk.add(4) as *const __m128i);
                    let lo = _mm_and_si128(q, m4);
                    let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
                    let wq = _mm256_set_m128i(hi, lo);
                    for t in 0..T {
                        let a = _mm256_loadu_si256(aq.add(t * a_stride + b * QK) as *const __m256i);
                        let p = $idot!(wq, a);
                        // [d_a, s_a]
                        let das =
                            _mm_castpd_ps(_mm_load_sd(ad.add(t * d_stride + b) as *const f64));
                        // [d·d_a, m·s_a, 0, 0]
                        let prod = _mm_mul_ps(dm, das);
                        acc[t] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(p),
                            _mm256_broadcastss_ps(prod),
                            acc[t],
                        );
                        mins[t] = _mm_add_ps(mins[t], prod);
                    }
                }
                for t in 0..T {
                    let m = _mm_cvtss_f32(_mm_movehdup_ps(mins[t]));
                    out[t] = hsum(acc[t]) + m;
                }
            }

            /// One Q8_0 weight row against `T` activation rows.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn q8_0<const T: usize>(
                row: *const u8,
                aq: *const i8,
                ad: *const [f32; 2],
                nb: usize,
                a_stride: usize,
                d_stride: usize,
                out: &mut [f32; T],
            ) {
                let mut acc = [_mm256_setzero_ps(); T];
                for b in 0..nb {
                    let blk = row.add(b * 34);
                    let d = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(std::ptr::read_unaligned(
                        blk as *const u16,
                    ))));
                    let wq = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                    let wabs = _mm256_sign_epi8(wq, wq);
                    for t in 0..T {
                        let a = _mm256_loadu_si256(aq.add(t * a_stride + b * QK) as *const __m256i);
                        let p = $idot!(wabs, _mm256_sign_epi8(a, wq));
                        let da = _mm_load_ss(ad.add(t * d_stride + b) as *const f32);
                        let s = _mm256_broadcastss_ps(_mm_mul_ss(d, da));
                        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[t]);
                    }
                }
                for t in 0..T {
                    out[t] = hsum(acc[t]);
                }
            }

            /// One Q4_K weight row against `T` activation rows (`nb` blocks of 32, a
            /// multiple of 8): per sub-block `d·sc_j·d_a·Σ(q·q_a) − dmin·m_j·s_a`.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn q4_k<const T: usize>(
                row: *const u8,
                aq: *const i8,
                ad: *const [f32; 2],
                nb: usize,
                a_stride: usize,
                d_stride: usize,
                out: &mut [f32; T],
            ) {
                // The activation scales of 8 blocks are read deinterleaved, which leaves them
                // in the lane order 0,1,4,5,2,3,6,7; the weight scales are put in that order
                // too, and `POS[j]` is the lane of sub-block `j`.
                const POS: [usize; 8] = [0, 1, 4, 5, 2, 3, 6, 7];
                let perm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
                let m4 = _mm256_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); T];
                let mut acc2 = [_mm256_setzero_ps(); T];
                for sb in 0..nb / 8 {
                    let blk = row.add(sb * 144);
                    // [d, dmin, 0, 0]
                    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(
                        blk as *const i32,
                    )));
                    let u = q4k_scales(&*(blk.add(4) as *const [u8; 12]));
                    let v = _mm_setr_epi32(u[0] as i32, u[1] as i32, u[2] as i32, u[3] as i32);
                    let sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
                    let mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)));
                    let dsc = _mm256_permutevar8x32_ps(
                        _mm256_mul_ps(_mm256_broadcastss_ps(dm), sc),
                        perm,
                    );
                    let dmn = _mm256_permutevar8x32_ps(
                        _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), mn),
                        perm,
                    );
                    // d·sc_j·d_a per sub-block and token (lane order as above).
                    let mut fs = [[0f32; 8]; T];
                    for t in 0..T {
                        let p = ad.add(t * d_stride + sb * 8) as *const f32;
                        let lo = _mm256_loadu_ps(p);
                        let hi = _mm256_loadu_ps(p.add(8));
                        let da = _mm256_shuffle_ps(lo, hi, 0x88);
                        let sa = _mm256_shuffle_ps(lo, hi, 0xDD);
                        _mm256_storeu_ps(fs[t].as_mut_ptr(), _mm256_mul_ps(dsc, da));
                        acc[t] = _mm256_fnmadd_ps(dmn, sa, acc[t]);
                    }
                    // Keep the factors in memory: broadcasting from memory takes a load
                    // port, from a register two shuffles on the busiest port.
                    let fs = std::hint::black_box(&fs);
                    for j in 0..4 {
                        let q = _mm256_loadu_si256(blk.add(16 + 32 * j) as *const __m256i);
                        let lo = _mm256_and_si256(q, m4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                        for t in 0..T {
                            let a = aq.add(t * a_stride + sb * 256 + 64 * j);
                            let plo = $idot!(lo, _mm256_loadu_si256(a as *const __m256i));
                            let phi = $idot!(hi, _mm256_loadu_si256(a.add(32) as *const __m256i));
                            acc[t] = _mm256_fmadd_ps(
                                _mm256_cvtepi32_ps(plo),
                                _mm256_broadcast_ss(&fs[t][POS[2 * j]]),
                                acc[t],
                            );
                            acc2[t] = _mm256_fmadd_ps(
                                _mm256_cvtepi32_ps(phi),
                                _mm256_broadcast_ss(&fs[t][POS[2 * j + 1]]),
                                acc2[t],
                            );
                        }
                    }
                }
                for t in 0..T {
                    out[t] = hsum(_mm256_add_ps(acc[t], acc2[t]));
                }
            }

            /// One Q6_K weight row against `T` activation rows (`nb` blocks of 32, a
            /// multiple of 8). The weights go in as `|q − 32|` with their sign moved onto the
            /// activations; the integer dot's lanes 0–3 cover values 0–15 and lanes 4–7 values
            /// 16–31, so each half gets its own scale.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn q6_k<const T: usize>(
                row: *const u8,
                aq: *const i8,
                ad: *const [f32; 2],
                nb: usize,
                a_stride: usize,
                d_stride: usize,
                out: &mut [f32; T],
            ) {
                let m4 = _mm256_set1_epi8(0x0F);
                let m2 = _mm256_set1_epi8(0x03);
                let k32 = _mm256_set1_epi8(32);
                let mut acc = [_mm256_setzero_ps(); T];
                let mut acc2 = [_mm256_setzero_ps(); T];
                for sb in 0..nb / 8 {
                    let blk = row.add(sb * 210);
                    let d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                        std::ptr::read_unaligned(blk.add(208) as *const u16),
                    ))));
                    let sc8 = _mm_loadu_si128(blk.add(192) as *const __m128i);
                    // d·sc for the 16 scales (8 per half of 128 values).
                    let scf = [
                        _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8))),
                        _mm256_mul_ps(
                            d,
                            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8))),
                        ),
                    ];
                    for h in 0..2 {
                        let ql0 = _mm256_loadu_si256(blk.add(64 * h) as *const __m256i);
                        let ql1 = _mm256_loadu_si256(blk.add(64 * h + 32) as *const __m256i);
                        let qh = _mm256_loadu_si256(blk.add(128 + 32 * h) as *const __m256i);
                        // Bits 2c, 2c+1 of qh moved to bits 4, 5.
                        let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
                        let h1 =
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
                        let h2 =
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
                        let h3 =
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
                        let w = [
                            _mm256_or_si256(_mm256_and_si256(ql0, m4), h0),
                            _mm256_or_si256(_mm256_and_si256(ql1, m4), h1),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h2),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h3),
                        ];
                        for (c, wc) in w.iter().enumerate() {
                            let ws = _mm256_sub_epi8(*wc, k32);
                            let wabs = _mm256_sign_epi8(ws, ws);
                            // [d·sc_lo ×4, d·sc_hi ×4] for this block of 32.
                            let c2 = 2 * c as i32;
                            let sv = _mm256_permutevar8x32_ps(
                                scf[h],
                                _mm256_setr_epi32(c2, c2, c2, c2, c2 + 1, c2 + 1, c2 + 1, c2 + 1),
                            );
                            let b = sb * 8 + 4 * h + c;
                            for t in 0..T {
                                let a = _mm256_loadu_si256(
                                    aq.add(t * a_stride + b * QK) as *const __m256i
                                );
                                let p = $idot!(wabs, _mm256_sign_epi8(a, ws));
                                let da =
                                    _mm256_broadcast_ss(&*(ad.add(t * d_stride + b) as *const f32));
                                let f = _mm256_mul_ps(sv, da);
                                if c % 2 == 0 {
                                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc[t]);
                                } else {
                                    acc2[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc2[t]);
                                }
                            }
                        }
                    }
                }
                for t in 0..T {
                    out[t] = hsum(_mm256_add_ps(acc[t], acc2[t]));
                }
            }
        }
    };
}

/// u8 × i8 pairs summed into 8 i32 lanes (AVX2: two steps; the 16-bit middle step cannot
/// overflow since |q| ≤ 128 and the weights are ≤ 128).
#[cfg(target_arch = "x86_64")]
macro_rules! idot_avx2 {
    ($u:expr, $s:expr) => {
        _mm256_madd_epi16(_mm256_maddubs_epi16($u, $s), _mm256_set1_epi16(1))
    };
}

/// u8 × i8 summed into 8 i32 lanes with one VNNI instruction.
#[cfg(target_arch = "x86_64")]
macro_rules! idot_vnni {
    ($u:expr, $s:expr) => {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), $u, $s)
    };
}

/// The same with AVX512-VNNI's EVEX form on 256-bit lanes.
#[cfg(target_arch = "x86_64")]
macro_rules! idot_vnni512 {
    ($u:expr, $s:expr) => {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), $u, $s)
    };
}

#[cfg(target_arch = "x86_64")]
x86_kernels!(
    x86_vnni512,
    "avx2,fma,f16c,avx512f,avx512vnni,avx512vl",
    idot_vnni512
);
#[cfg(target_arch = "x86_64")]
x86_kernels!(x86_avx2, "avx2,fma,f16c", idot_avx2);
#[cfg(target_arch = "x86_64")]
x86_kernels!(x86_vnni, "avx2,fma,f16c,avxvnni", idot_vnni);

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }

    fn byte(seed: &mut u64) -> u8 {
        ((rng(seed).abs() * 256.0) as u32 & 0xFF) as u8
    }

    fn random_matrix(ty: QType, n: usize, k: usize, seed: &mut u64) -> QMatrix {
        let mut data = Vec::new();
        for _ in 0..n * k / ty.block_values() {
            let d = half::f16::from_f32(0.01 + rng(seed).abs() * 0.05);
            let f16 = |v: f32| half::f16::from_f32(v).to_bits().to_le_bytes();
            match ty {
                QType::Q4_K => {
                    // d, dmin, 12 packed scale bytes, 128 bytes of nibbles
                    data.extend_from_slice(&f16(0.001 + rng(seed).abs() * 0.004));
                    data.extend_from_slice(&f16(0.001 + rng(seed).abs() * 0.01));
                    data.extend((0..140).map(|_| byte(seed)));
                    continue;
                }
                QType::Q6_K => {
                    // ql, qh, 16 signed scales, d
                    data.extend((0..208).map(|_| byte(seed)));
                    data.extend_from_slice(&f16(0.0005 + rng(seed).abs() * 0.002));
                    continue;
                }
                _ => {}
            }
            data.extend_from_slice(&d.to_bits().to_le_bytes());
            match ty {
                QType::Q4_K | QType::Q6_K => {}
                QType::Q4_1 => {
                    let m = half::f16::from_f32(rng(seed) * 0.2);
                    data.extend_from_slice(&m.to_bits().to_le_bytes());
                    for _ in 0..16 {
                        data.push(((rng(seed).abs() * 255.0) as u32 & 0xFF) as u8);
                    }
                }
                QType::Q8_0 => {
                    for _ in 0..QK {
                        data.push(((rng(seed) * 127.0) as i8) as u8);
                    }
                }
            }
        }
        QMatrix::from_blocks(ty, n, k, data).unwrap()
    }

    /// f64 reference on the dequantized weights and activations.
    fn reference(w: &QMatrix, a: &QActs, x_deq: &[f32]) -> Vec<f64> {
        let mut row = vec![0f32; w.k];
        let mut y = vec![0f64; a.m * w.n];
        for r in 0..w.n {
            w.dequantize_row(r, &mut row);
            for t in 0..a.m {
                y[t * w.n + r] = row
                    .iter()
                    .zip(&x_deq[t * w.k..(t + 1) * w.k])
                    .map(|(p, q)| f64::from(*p) * f64::from(*q))
                    .sum();
            }
        }
        y
    }

    /// Every kernel set on random matrices of `types` and `shapes` (n, k, m) against the f64
    /// reference; `nonzero` also checks that the reference itself is not trivially small.
    fn check_against_reference(
        types: &[QType],
        shapes: &[(usize, usize, usize)],
        mut seed: u64,
        nonzero: bool,
    ) {
        for &ty in types {
            for &(n, k, m) in shapes {
                let w = random_matrix(ty, n, k, &mut seed);
                let x: Vec<f32> = (0..m * k).map(|_| rng(&mut seed) * 3.0).collect();
                let mut a = QActs::default();
                a.quantize(&x, m, k);
                let mut xd = vec![0f32; m * k];
                a.dequantize(&mut xd);
                let want = reference(&w, &a, &xd);
                if nonzero {
                    assert!(want.iter().any(|v| v.abs() > 1.0));
                }
                for isa in Isa::supported() {
                    let mut y = vec![0f32; m * n];
                    unsafe { rows_kernel_with(isa, &w, &a, 0..n, y.as_mut_ptr(), n) };
                    for (i, (g, e)) in y.iter().zip(&want).enumerate() {
                        let tol = 1e-4 * e.abs().max(1.0);
                        assert!(
                            (f64::from(*g) - e).abs() < tol,
                            "{ty:?} {isa:?} n={n} k={k} m={m} at {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_kernel_matches_the_f64_reference() {
        let shapes = [(5, 32, 1), (17, 576, 1), (9, 576, 7), (3, 1536, 4)];
        check_against_reference(&[QType::Q4_1, QType::Q8_0], &shapes, 7, false);
    }

    #[test]
    fn k_quant_kernels_match_the_f64_reference() {
        let shapes = [(3, 256, 1), (5, 512, 4), (7, 768, 7), (4, 2048, 5)];
        check_against_reference(&[QType::Q4_K, QType::Q6_K], &shapes, 5, true);
    }

    /// The layout is candle's (ggml's): our dequantization of random blocks equals candle's.
    #[test]
    fn k_quant_dequantization_matches_candle() {
        use candle_core::quantized::{QStorage, QTensor};
        use candle_core::Device;
        use std::borrow::Cow;
        let mut seed = 13u64;
        for ty in [QType::Q4_K, QType::Q6_K] {
            let (n, k) = (6, 768);
            let w = random_matrix(ty, n, k, &mut seed);
            let storage =
                QStorage::from_data(Cow::Owned(w.data().to_vec()), &Device::Cpu, ty.ggml())
                    .unwrap();
            let want = QTensor::new(storage, (n, k))
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let mut got = vec![0f32; n * k];
            for (r, row) in got.chunks_exact_mut(k).enumerate() {
                w.dequantize_row(r, row);
            }
            assert!(got.iter().any(|v| *v != 0.0));
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    e.to_bits(),
                    "{ty:?} value {i}: {g} vs candle {e}"
                );
            }
        }
    }

    /// A row's result does not depend on how many activation rows go through with it (the
    /// 4-row and the 1-row kernels agree bit for bit), for every type and kernel set.
    #[test]
    fn results_do_not_depend_on_the_batch() {
        let mut seed = 17u64;
        let (n, k, m) = (5, 512, 5);
        for ty in [QType::Q4_1, QType::Q8_0, QType::Q4_K, QType::Q6_K] {
            let w = random_matrix(ty, n, k, &mut seed);
            let x: Vec<f32> = (0..m * k).map(|_| rng(&mut seed)).collect();
            let mut a = QActs::default();
            a.quantize(&x, m, k);
            for isa in Isa::supported() {
                let mut all = vec![0f32; m * n];
                unsafe { rows_kernel_with(isa, &w, &a, 0..n, all.as_mut_ptr(), n) };
                for t in 0..m {
                    let mut one = QActs::default();
                    one.quantize(&x[t * k..(t + 1) * k], 1, k);
                    let mut y = vec![0f32; n];
                    unsafe { rows_kernel_with(isa, &w, &one, 0..n, y.as_mut_ptr(), n) };
                    for r in 0..n {
                        assert_eq!(
                            y[r].to_bits(),
                            all[t * n + r].to_bits(),
                            "{ty:?} {isa:?} token {t} row {r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn threaded_matmul_equals_single_threaded() {
        let mut seed = 11u64;
        let w = random_matrix(QType::Q4_1, 1000, 576, &mut seed);
        let x: Vec<f32> = (0..3 * 576).map(|_| rng(&mut seed)).collect();
        let mut a = QActs::default();
        a.quantize(&x, 3, 576);
        let mut y1 = vec![0f32; 3000];
        let mut y2 = vec![0f32; 3000];
        w.matmul(&a, &mut y1, &Pool::new(1));
        w.matmul(&a, &mut y2, &Pool::new(2));
        assert_eq!(y1, y2);
        assert!(y1.iter().any(|v| *v != 0.0));
    }

    #[test]
    fn two_matrices_fill_one_output_side_by_side() {
        let mut seed = 5u64;
        let a4 = random_matrix(QType::Q4_1, 40, 256, &mut seed);
        let b8 = random_matrix(QType::Q8_0, 24, 256, &mut seed);
        let x: Vec<f32> = (0..5 * 256).map(|_| rng(&mut seed)).collect();
        let mut a = QActs::default();
        a.quantize(&x, 5, 256);
        let pool = Pool::new(2);
        let (mut ya, mut yb) = (vec![0f32; 5 * 40], vec![0f32; 5 * 24]);
        a4.matmul(&a, &mut ya, &pool);
        b8.matmul(&a, &mut yb, &pool);
        let mut both = vec![f32::NAN; 5 * 64];
        a4.matmul_into(&a, &mut both, 64, 0, &pool);
        b8.matmul_into(&a, &mut both, 64, 40, &pool);
        for t in 0..5 {
            assert_eq!(&both[t * 64..t * 64 + 40], &ya[t * 40..(t + 1) * 40]);
            assert_eq!(&both[t * 64 + 40..(t + 1) * 64], &yb[t * 24..(t + 1) * 24]);
        }
    }

    #[test]
    fn q4_0_converts_exactly() {
        let mut src = Vec::new();
        let d = half::f16::from_f32(0.03125);
        src.extend_from_slice(&d.to_bits().to_le_bytes());
        src.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let w = QMatrix::from_q4_0(1, 32, &src).unwrap();
        let mut row = vec![0f32; 32];
        w.dequantize_row(0, &mut row);
        for j in 0..16 {
            assert_eq!(row[j], 0.03125 * (j as f32 - 8.0));
            assert_eq!(row[j + 16], 0.03125 * (7.0 - j as f32));
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(QMatrix::from_blocks(QType::Q8_0, 2, 30, vec![0; 68]).is_err());
        assert!(QMatrix::from_blocks(QType::Q8_0, 2, 32, vec![0; 67]).is_err());
        // K-quants need rows that are a multiple of 256.
        assert!(matches!(
            QMatrix::from_blocks(QType::Q4_K, 1, 32, vec![0; 144]),
            Err(QMatrixError::RowLength {
                k: 32,
                multiple: 256
            })
        ));
        assert!(QMatrix::from_blocks(QType::Q6_K, 2, 256, vec![0; 419]).is_err());
        assert!(QMatrix::from_blocks(QType::Q6_K, 2, 256, vec![0; 420]).is_ok());
    }
}
