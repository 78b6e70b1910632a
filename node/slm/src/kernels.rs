//! Quantized matrix kernels for the forward pass: 4-bit (Q4_1 layout, also used for Q4_0) and
//! 8-bit (Q8_0) weights times activations quantized to 8 bits in blocks of 32.
//!
//! Why not candle's kernels: candle has only a scalar loop for Q4_1 (SmolLM2's shipped type),
//! and its int8 kernels with VNNI need rows that are multiples of 256 (SmolLM2's are 576). The
//! kernels here work on any row length that is a multiple of 32, keep 4-bit weights in 4 bits
//! (a decode step is bound by how many weight bytes it streams), and pick at run time among
//! AVX-VNNI / AVX512-VNNI, AVX2+FMA+F16C and portable code, so one binary runs on any x86-64
//! or aarch64 gateway.
//!
//! The arithmetic is llama.cpp's: a weight block is `d·q + m` (Q4_1) or `d·q` (Q8_0); the
//! activation block is `d_a·q_a` with `s_a = d_a·Σq_a`, so a block's dot product is
//! `d·d_a·Σ(q·q_a) + m·s_a`, with the integer sum done in 8-bit SIMD lanes. The same kernel
//! serves one token (decode) and many (prompt), so a prompt computed at once and one computed
//! token by token give the same numbers.

// The kernels are raw-pointer SIMD code from top to bottom; each unsafe fn states its contract.
#![allow(unsafe_op_in_unsafe_fn)]

use crate::pool::Pool;
use candle_core::quantized::GgmlDType;

/// Values per quantization block.
pub const QK: usize = 32;

/// Weight block types with own kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    /// `d: f16, m: f16, qs: [u8; 16]` (value `j` in the low nibble of byte `j`, value `j+16`
    /// in the high nibble), value = `d·q + m`.
    Q4_1,
    /// `d: f16, qs: [i8; 32]`, value = `d·q`.
    Q8_0,
}

impl QType {
    /// Bytes per block of 32 values.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
        }
    }

    /// The GGML type with the same name.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q8_0 => GgmlDType::Q8_0,
        }
    }
}

/// A quantized matrix of `n` rows of `k` values (`k` a multiple of 32), row-major blocks.
pub struct QMatrix {
    ty: QType,
    n: usize,
    k: usize,
    data: Vec<u8>,
}

/// Why raw block data could not be taken as a matrix.
#[derive(Debug, thiserror::Error)]
pub enum QMatrixError {
    /// Row length not a multiple of 32.
    #[error("row length {0} is not a multiple of 32")]
    RowLength(usize),
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

impl QMatrix {
    /// Takes GGML block data of type `ty` (n rows of k values).
    pub fn from_blocks(ty: QType, n: usize, k: usize, data: Vec<u8>) -> Result<Self, QMatrixError> {
        if !k.is_multiple_of(QK) || k == 0 {
            return Err(QMatrixError::RowLength(k));
        }
        let expected = n * (k / QK) * ty.block_bytes();
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
            return Err(QMatrixError::RowLength(k));
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
        self.k / QK * self.ty.block_bytes()
    }

    /// Writes row `r` as f32 values into `out` (`k` long).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let Some(row) = self.data.get(r * rb..(r + 1) * rb) else {
            return;
        };
        let bb = self.ty.block_bytes();
        for (blk, o) in row.chunks_exact(bb).zip(out.chunks_exact_mut(QK)) {
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
            }
        }
    }

    /// `y[t·n + r] = Σ_j W[r][j]·x[t][j]` for the `m` activation rows in `a`, split over the
    /// pool's threads by weight rows.
    pub fn matmul(&self, a: &QActs, y: &mut [f32], pool: &Pool) {
        let m = a.m;
        debug_assert_eq!(a.k, self.k);
        debug_assert_eq!(y.len(), m * self.n);
        if a.k != self.k || y.len() < m * self.n {
            return;
        }
        let out = SendPtr(y.as_mut_ptr());
        let work = |rows: std::ops::Range<usize>| {
            // SAFETY: each call writes only `y[t·n + r]` for its own rows `r`, which are
            // disjoint between calls, and `y` outlives the pool job.
            unsafe { rows_kernel(self, a, rows, out.get()) }
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
        for ((xb, qb), ds) in x[..m * k]
            .chunks_exact(QK)
            .zip(self.qs.chunks_exact_mut(QK))
            .zip(self.ds.iter_mut())
        {
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, v) in qb.iter_mut().zip(xb) {
                let r = (v * id).round() as i32;
                let r = r.clamp(-127, 127);
                *q = r as i8;
                sum += r;
            }
            *ds = [d, d * sum as f32];
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.m
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
            if std::env::var_os("MILLWRIGHT_SLM_PORTABLE").is_some() {
                return Isa::Portable;
            }
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                let avx2 = has!("avx2") && has!("fma") && has!("f16c");
                if avx2 && has!("avxvnni") {
                    return Isa::Vnni;
                }
                if avx2 && has!("avx512vnni") && has!("avx512vl") && has!("avx512f") {
                    return Isa::Vnni512;
                }
                if avx2 {
                    return Isa::Avx2;
                }
            }
            Isa::Portable
        })
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
/// `y` must point to `a.m · w.n` writable floats; no other thread may write the entries of
/// these rows.
unsafe fn rows_kernel(w: &QMatrix, a: &QActs, rows: std::ops::Range<usize>, y: *mut f32) {
    rows_kernel_with(Isa::detect(), w, a, rows, y)
}

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
) {
    let nb = w.k / QK;
    let rb = w.row_bytes();
    let (m, n) = (a.m, w.n);
    let wp = w.data.as_ptr();
    let qs = a.qs.as_ptr();
    let ds = a.ds.as_ptr();
    for r in rows {
        let row = wp.add(r * rb);
        let mut t = 0;
        while t + 4 <= m {
            let mut out = [0f32; 4];
            let (aq, ad) = (qs.add(t * w.k), ds.add(t * nb));
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Vnni => match w.ty {
                    QType::Q4_1 => x86_vnni::q4_1::<4>(row, aq, ad, nb, w.k, nb, &mut out),
                    QType::Q8_0 => x86_vnni::q8_0::<4>(row, aq, ad, nb, w.k, nb, &mut out),
                },
                #[cfg(target_arch = "x86_64")]
                Isa::Vnni512 => match w.ty {
                    QType::Q4_1 => x86_vnni512::q4_1::<4>(row, aq, ad, nb, w.k, nb, &mut out),
                    QType::Q8_0 => x86_vnni512::q8_0::<4>(row, aq, ad, nb, w.k, nb, &mut out),
                },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => match w.ty {
                    QType::Q4_1 => x86_avx2::q4_1::<4>(row, aq, ad, nb, w.k, nb, &mut out),
                    QType::Q8_0 => x86_avx2::q8_0::<4>(row, aq, ad, nb, w.k, nb, &mut out),
                },
                Isa::Portable => portable::<4>(w.ty, row, aq, ad, nb, w.k, nb, &mut out),
            }
            for (i, v) in out.iter().enumerate() {
                *y.add((t + i) * n + r) = *v;
            }
            t += 4;
        }
        while t < m {
            let mut out = [0f32; 1];
            let (aq, ad) = (qs.add(t * w.k), ds.add(t * nb));
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Vnni => match w.ty {
                    QType::Q4_1 => x86_vnni::q4_1::<1>(row, aq, ad, nb, w.k, nb, &mut out),
                    QType::Q8_0 => x86_vnni::q8_0::<1>(row, aq, ad, nb, w.k, nb, &mut out),
                },
                #[cfg(target_arch = "x86_64")]
                Isa::Vnni512 => match w.ty {
                    QType::Q4_1 => x86_vnni512::q4_1::<1>(row, aq, ad, nb, w.k, nb, &mut out),
                    QType::Q8_0 => x86_vnni512::q8_0::<1>(row, aq, ad, nb, w.k, nb, &mut out),
                },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => match w.ty {
                    QType::Q4_1 => x86_avx2::q4_1::<1>(row, aq, ad, nb, w.k, nb, &mut out),
                    QType::Q8_0 => x86_avx2::q8_0::<1>(row, aq, ad, nb, w.k, nb, &mut out),
                },
                Isa::Portable => portable::<1>(w.ty, row, aq, ad, nb, w.k, nb, &mut out),
            }
            *y.add(t * n + r) = out[0];
            t += 1;
        }
    }
}

/// Portable kernel: one weight row against `T` activation rows (`a_stride` values and
/// `d_stride` blocks apart).
///
/// # Safety
/// Pointers must cover `nb` blocks of the row and of each activation row.
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
    let mut acc = [0f32; T];
    for b in 0..nb {
        let blk = std::slice::from_raw_parts(row.add(b * bb), bb);
        let d = f16_bits(blk, 0).to_f32();
        for t in 0..T {
            let q = std::slice::from_raw_parts(aq.add(t * a_stride + b * QK), QK);
            let [da, sa] = *ad.add(t * d_stride + b);
            let mut s = 0i32;
            match ty {
                QType::Q4_1 => {
                    for j in 0..16 {
                        let w = blk[4 + j];
                        s += i32::from(w & 0x0F) * i32::from(q[j])
                            + i32::from(w >> 4) * i32::from(q[j + 16]);
                    }
                    let m = f16_bits(blk, 2).to_f32();
                    acc[t] += d * da * s as f32 + m * sa;
                }
                QType::Q8_0 => {
                    for j in 0..QK {
                        s += i32::from(blk[2 + j] as i8) * i32::from(q[j]);
                    }
                    acc[t] += d * da * s as f32;
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
            use super::QK;
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
                        let das = _mm_castpd_ps(_mm_load_sd(ad.add(t * d_stride + b) as *const f64));
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
x86_kernels!(x86_vnni512, "avx2,fma,f16c,avx512f,avx512vnni,avx512vl", idot_vnni512);
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

    fn random_matrix(ty: QType, n: usize, k: usize, seed: &mut u64) -> QMatrix {
        let mut data = Vec::new();
        for _ in 0..n * k / QK {
            let d = half::f16::from_f32(0.01 + rng(seed).abs() * 0.05);
            data.extend_from_slice(&d.to_bits().to_le_bytes());
            match ty {
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

    fn isas() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                v.push(Isa::Avx2);
                if has!("avxvnni") {
                    v.push(Isa::Vnni);
                }
                if has!("avx512vnni") && has!("avx512vl") && has!("avx512f") {
                    v.push(Isa::Vnni512);
                }
            }
        }
        v
    }

    #[test]
    fn every_kernel_matches_the_f64_reference() {
        let mut seed = 7u64;
        for ty in [QType::Q4_1, QType::Q8_0] {
            for (n, k, m) in [(5, 32, 1), (17, 576, 1), (9, 576, 7), (3, 1536, 4)] {
                let w = random_matrix(ty, n, k, &mut seed);
                let x: Vec<f32> = (0..m * k).map(|_| rng(&mut seed) * 3.0).collect();
                let mut a = QActs::default();
                a.quantize(&x, m, k);
                let mut xd = vec![0f32; m * k];
                a.dequantize(&mut xd);
                let want = reference(&w, &a, &xd);
                for isa in isas() {
                    let mut y = vec![0f32; m * n];
                    unsafe { rows_kernel_with(isa, &w, &a, 0..n, y.as_mut_ptr()) };
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
    }
}
