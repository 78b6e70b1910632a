//! Quantized matrix kernels for the forward pass: 4-bit (Q4_1 layout, also used for Q4_0),
//! 8-bit (Q8_0) and the K-quants Q4_K and Q6_K (super-blocks of 256) times activations
//! quantized to 8 bits in blocks of 32.
//!
//! Why not candle's kernels: candle has only a scalar loop for Q4_1 (SmolLM2's shipped type),
//! and its int8 kernels with VNNI need rows that are multiples of 256 (SmolLM2's are 576). The
//! kernels here work on any row length that is a multiple of 32, keep 4-bit weights in 4 bits
//! (a decode step is bound by how many weight bytes it streams), and pick at run time among
//! AVX-512 (512-bit, Q4_1/Q8_0), AVX-VNNI / AVX512-VNNI, AVX2+FMA+F16C and portable code, so one
//! binary runs on any x86-64
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
//!
//! Where things live: `blocks.rs` the block formats, [`QMatrix`] (taking and repacking GGML
//! blocks) and [`QActs`] (activation quantization), all safe code; `portable.rs` the portable
//! kernels; `x86.rs` every x86 intrinsic (AVX2, AVX-VNNI, AVX512-VNNI, and `x86::zmm`, the
//! 512-bit kernels for batched decode); this file the kernel
//! sets ([`Isa`], [`KernelCap`]), the dispatch and the threaded matrix product. An aarch64
//! NEON kernel set goes in a `neon.rs` beside `x86.rs` (`#[cfg(target_arch = "aarch64")]`),
//! with a `Set::Neon` variant, its test in `Isa::supported` and one line in `row_dot`.
//! `unsafe` appears only in the dispatch here (raw pointers into the caller's buffers) and
//! in the kernels; each block states its argument.

mod blocks;
mod portable;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use blocks::{QActs, QMatrix, QMatrixError, QType, QK, QK_K};

use crate::pool::Pool;

impl QMatrix {
    /// `y[t·n + r] = Σ_j W[r][j]·x[t][j]` for the `m` activation rows in `a`, with the
    /// kernels of `isa`, split over the pool's threads by weight rows.
    pub fn matmul(&self, a: &QActs, y: &mut [f32], isa: Isa, pool: &Pool) {
        self.matmul_into(a, y, self.n, 0, isa, pool);
    }

    /// `y[t·ld + off + r] = Σ_j W[r][j]·x[t][j]`: the same product written into columns
    /// `off..off+n` of an output with rows of `ld` (several matrices fill one output).
    pub fn matmul_into(
        &self,
        a: &QActs,
        y: &mut [f32],
        ld: usize,
        off: usize,
        isa: Isa,
        pool: &Pool,
    ) {
        let m = a.m;
        debug_assert_eq!(a.k, self.k);
        if a.k != self.k || off + self.n > ld || y.len() < m * ld || m == 0 {
            return;
        }
        let out = SendPtr(y[off..].as_mut_ptr());
        let work = |rows: std::ops::Range<usize>| {
            // SAFETY: each call writes only `y[t·ld + off + r]` for its own rows `r`, which
            // are disjoint between calls and inside `y` (checked above); `y` outlives the job;
            // `isa` is supported (holding an `Isa` proves it, see its doc).
            unsafe { rows_kernel(isa, self, a, rows, out.get(), ld) }
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

/// A kernel set this CPU can run: which code runs the row kernels (chosen once per model,
/// see [`Isa::select`]). Only [`Isa::select`], [`Isa::best`] and [`Isa::supported`] make one
/// (and [`Isa::PORTABLE`], which every CPU runs), so holding an `Isa` proves the CPU has its
/// features; that is what lets the safe [`QMatrix::matmul`] run the SIMD kernels it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(Set);

/// The kernel sets (private so that an [`Isa`] cannot name one the CPU lacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
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
    /// AVX-512 (F, BW, VL, VNNI) on 512-bit registers for Q4_1 and Q8_0 (the K-quants run
    /// `Vnni512`'s kernels).
    #[cfg(target_arch = "x86_64")]
    Wide,
}

impl Isa {
    /// Portable Rust (any CPU).
    pub const PORTABLE: Isa = Isa(Set::Portable);

    /// The best kernel set this CPU supports.
    pub fn best() -> Self {
        Self::select(KernelCap::Auto)
    }

    /// The best kernel set this CPU supports that `cap` allows; never one the CPU lacks.
    pub fn select(cap: KernelCap) -> Self {
        let mut best = Isa::PORTABLE;
        for isa in Isa::supported() {
            if isa.rank() <= cap.rank() && isa.rank() > best.rank() {
                best = isa;
            }
        }
        best
    }

    /// Every kernel set this CPU can run.
    pub fn supported() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::PORTABLE];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                v.push(Isa(Set::Avx2));
                if has!("avx512vnni") && has!("avx512vl") && has!("avx512f") {
                    v.push(Isa(Set::Vnni512));
                    if has!("avx512bw") {
                        v.push(Isa(Set::Wide));
                    }
                }
                if has!("avxvnni") {
                    v.push(Isa(Set::Vnni));
                }
            }
        }
        v
    }

    fn rank(self) -> u8 {
        match self.0 {
            Set::Portable => 0,
            #[cfg(target_arch = "x86_64")]
            Set::Avx2 => 1,
            #[cfg(target_arch = "x86_64")]
            Set::Vnni512 => 2,
            #[cfg(target_arch = "x86_64")]
            Set::Vnni => 3,
            #[cfg(target_arch = "x86_64")]
            Set::Wide => 4,
        }
    }

    /// Whether this set runs the 512-bit kernels (which want [`QActs`]'s spread scales).
    pub(super) fn wide(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.0 == Set::Wide {
            return true;
        }
        false
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self.0 {
            Set::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Set::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Set::Vnni => "avx-vnni",
            #[cfg(target_arch = "x86_64")]
            Set::Vnni512 => "avx512-vnni",
            #[cfg(target_arch = "x86_64")]
            Set::Wide => "avx512",
        }
    }
}

/// The most capable kernel set a model may use (to measure what an older gateway gets). It
/// caps the choice and never picks what the CPU lacks. Set by the caller through
/// `EngineOptions::kernels`; nothing in this crate reads it from the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelCap {
    /// The best the CPU has.
    #[default]
    Auto,
    /// Portable Rust only.
    Portable,
    /// At most AVX2 + FMA + F16C.
    Avx2,
    /// At most AVX512-VNNI on 256-bit registers (that is, no AVX-VNNI).
    Avx512Vnni,
    /// At most AVX-VNNI (that is, not the 512-bit kernels).
    AvxVnni,
}

impl KernelCap {
    /// Parses `auto`, `portable`, `avx2`, `avx512-vnni` or `avx-vnni` (case and surrounding
    /// blanks ignored).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "portable" => Some(Self::Portable),
            "avx2" => Some(Self::Avx2),
            "avx512-vnni" => Some(Self::Avx512Vnni),
            "avx-vnni" => Some(Self::AvxVnni),
            _ => None,
        }
    }

    /// The name [`KernelCap::parse`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512-vnni",
            Self::AvxVnni => "avx-vnni",
        }
    }

    /// The highest [`Isa`] rank allowed.
    fn rank(self) -> u8 {
        match self {
            Self::Portable => 0,
            Self::Avx2 => 1,
            Self::Avx512Vnni => 2,
            Self::AvxVnni => 3,
            Self::Auto => u8::MAX,
        }
    }
}

/// Weight rows per tile: a tile (a few KB) and a group of activation rows (four, or up to
/// eight for the 512-bit kernels) stay in L1 while the tile is run against every group of
/// tokens of a prompt or of a batched decode step.
const ROW_TILE: usize = 16;

/// Runs the rows `rows` of `w` against every activation row with the kernels of `isa`.
///
/// # Safety
/// `y` must point to `(a.m - 1) · ld + w.n` writable floats; no other thread may write the
/// entries of these rows.
unsafe fn rows_kernel(
    isa: Isa,
    w: &QMatrix,
    a: &QActs,
    rows: std::ops::Range<usize>,
    y: *mut f32,
    ld: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if isa.wide() && matches!(w.ty, QType::Q4_1 | QType::Q8_0) && a.dx.len() == a.m * a.dx_stride()
    {
        // SAFETY: the caller's contract, and the spread scales cover every row (checked).
        unsafe { wide_rows(w, a, rows, y, ld) };
        return;
    }
    let nb = w.k / QK;
    let rb = w.row_bytes();
    let m = a.m;
    let wp = w.data.as_ptr();
    let qs = a.qs.as_ptr();
    let ds = a.ds.as_ptr();
    // SAFETY: `r < w.n` and `t < m`, so every weight row, activation block and scale
    // read is inside `w.data`, `a.qs` and `a.ds`; every write is entry `(t, r)` of `y`,
    // which the caller guarantees is writable and ours; `isa` is supported (an `Isa` proves
    // it).
    unsafe {
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
}

/// [`rows_kernel`] on the 512-bit kernels (Q4_1 and Q8_0): per tile of weight rows, the
/// activation rows in groups of 8, 4, 2 and 1, each group against every row of the tile.
///
/// # Safety
/// As [`rows_kernel`]; the CPU has the features of [`Set::Wide`] and `a` holds its spread
/// scales for all `a.m` rows.
#[cfg(target_arch = "x86_64")]
unsafe fn wide_rows(w: &QMatrix, a: &QActs, rows: std::ops::Range<usize>, y: *mut f32, ld: usize) {
    let nb = w.k / QK;
    let rb = w.row_bytes();
    let m = a.m;
    let wp = w.data.as_ptr();
    let dxs = a.dx_stride();
    let acts = |t: usize| {
        // SAFETY (of the pointer offsets): `t < m`, and `qs`, `dx`, `ds` hold `m` rows.
        unsafe {
            x86::zmm::Acts {
                aq: a.qs.as_ptr().add(t * w.k),
                a_stride: w.k,
                dx: a.dx.as_ptr().add(t * dxs),
                dx_stride: dxs,
                ds: a.ds.as_ptr().add(t * nb),
                ds_stride: nb,
            }
        }
    };
    /// `T` activation rows from `t` against the weight rows `r0..r1`.
    ///
    /// # Safety
    /// As [`wide_rows`], with `t + T <= m`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn group<const T: usize>(
        ty: QType,
        wp: *const u8,
        rb: usize,
        nb: usize,
        r: std::ops::Range<usize>,
        acts: x86::zmm::Acts,
        t: usize,
        y: *mut f32,
        ld: usize,
    ) {
        // SAFETY: rows `r` are inside the matrix and `T` activation rows from `t` inside
        // `acts` (the caller's contract); the writes are entries `(t + i, r)` of `y`.
        unsafe {
            for r in r {
                let mut out = [0f32; T];
                let row = wp.add(r * rb);
                if ty == QType::Q4_1 {
                    x86::zmm::q4_1::<T>(row, acts, nb, &mut out);
                } else {
                    x86::zmm::q8_0::<T>(row, acts, nb, &mut out);
                }
                for (i, v) in out.iter().enumerate() {
                    *y.add((t + i) * ld + r) = *v;
                }
            }
        }
    }
    // SAFETY: the caller's contract; every group stays inside `0..m`.
    unsafe {
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = (r0 + ROW_TILE).min(rows.end);
            let mut t = 0;
            while t < m {
                let (ty, ac) = (w.ty, acts(t));
                t += match m - t {
                    8.. => {
                        group::<8>(ty, wp, rb, nb, r0..r1, ac, t, y, ld);
                        8
                    }
                    4..=7 => {
                        group::<4>(ty, wp, rb, nb, r0..r1, ac, t, y, ld);
                        4
                    }
                    2 | 3 => {
                        group::<2>(ty, wp, rb, nb, r0..r1, ac, t, y, ld);
                        2
                    }
                    _ => {
                        group::<1>(ty, wp, rb, nb, r0..r1, ac, t, y, ld);
                        1
                    }
                };
            }
            r0 = r1;
        }
    }
}

/// One weight row (`nb` blocks of 32 values) against `T` activation rows `k` values apart,
/// with the kernel of `isa` for `ty`.
///
/// # Safety
/// As [`portable::dot_row`].
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
        ($($m:ident)::+) => {
            match ty {
                QType::Q4_1 => $($m)::+::q4_1::<T>(row, aq, ad, nb, k, nb, out),
                QType::Q8_0 => $($m)::+::q8_0::<T>(row, aq, ad, nb, k, nb, out),
                QType::Q4_K => $($m)::+::q4_k::<T>(row, aq, ad, nb, k, nb, out),
                QType::Q6_K => $($m)::+::q6_k::<T>(row, aq, ad, nb, k, nb, out),
            }
        };
    }
    // SAFETY: the caller's contract (pointers cover the blocks) is the contract of every
    // kernel called here; the CPU has the features of `isa` (an `Isa` proves it).
    unsafe {
        match isa.0 {
            #[cfg(target_arch = "x86_64")]
            Set::Vnni => by_type!(x86::vnni),
            #[cfg(target_arch = "x86_64")]
            Set::Vnni512 | Set::Wide => by_type!(x86::vnni512),
            #[cfg(target_arch = "x86_64")]
            Set::Avx2 => by_type!(x86::avx2),
            Set::Portable => portable::dot_row::<T>(ty, row, aq, ad, nb, k, nb, out),
        }
    }
}
