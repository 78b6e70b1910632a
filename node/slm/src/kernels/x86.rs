//! The x86-64 kernels: AVX2+FMA+F16C, AVX-VNNI and AVX512-VNNI (on 256-bit lanes) variants of
//! the Q4_1, Q8_0, Q4_K and Q6_K row kernels, generated from one body by `x86_kernels!` with a
//! different integer dot product, plus the AVX2 build of the activation quantizer.
//!
//! This is the only file with SIMD intrinsics for x86; it is compiled on x86-64 only. Every
//! kernel is an `unsafe fn` with `#[target_feature]` whose body is one `unsafe` block: the
//! pointer arithmetic, unaligned loads and intrinsics run throughout the body, and splitting
//! them into dozens of blocks with the same argument would only hide the one contract that
//! matters (stated on each block): the CPU has the features, the pointers cover the blocks.

use super::blocks::{q4k_scales, quantize_blocks};
use super::QK;

/// [`quantize_blocks`] compiled for AVX2 (the same arithmetic, so the same result).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_blocks_avx2(x: &[f32], qs: &mut [i8], ds: &mut [[f32; 2]]) {
    quantize_blocks(x, qs, ds)
}

macro_rules! x86_kernels {
    ($name:ident, $features:literal, $idot:ident) => {
        pub(super) mod $name {
            use super::{q4k_scales, QK};
            use std::arch::x86_64::*;

            #[inline(always)]
            unsafe fn hsum(v: __m256) -> f32 {
                // SAFETY: only register arithmetic; inlined into kernels compiled with AVX.
                unsafe {
                    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                    _mm_cvtss_f32(s)
                }
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
                // SAFETY: the caller guarantees that the CPU has `$features` (the kernel
                // set is an `Isa`, which proves it) and that `row`, `aq` and `ad` cover
                // `nb` blocks of the weight row and of each of the `T` activation rows;
                // every load below stays inside those blocks.
                unsafe {
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
                            let a =
                                _mm256_loadu_si256(aq.add(t * a_stride + b * QK) as *const __m256i);
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
                // SAFETY: the caller guarantees that the CPU has `$features` (the kernel
                // set is an `Isa`, which proves it) and that `row`, `aq` and `ad` cover
                // `nb` blocks of the weight row and of each of the `T` activation rows;
                // every load below stays inside those blocks.
                unsafe {
                    let mut acc = [_mm256_setzero_ps(); T];
                    for b in 0..nb {
                        let blk = row.add(b * 34);
                        let d = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                            std::ptr::read_unaligned(blk as *const u16),
                        )));
                        let wq = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                        let wabs = _mm256_sign_epi8(wq, wq);
                        for t in 0..T {
                            let a =
                                _mm256_loadu_si256(aq.add(t * a_stride + b * QK) as *const __m256i);
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
                // SAFETY: the caller guarantees that the CPU has `$features` (the kernel
                // set is an `Isa`, which proves it) and that `row`, `aq` and `ad` cover
                // `nb` blocks of the weight row and of each of the `T` activation rows;
                // every load below stays inside those blocks.
                unsafe {
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
                                let phi =
                                    $idot!(hi, _mm256_loadu_si256(a.add(32) as *const __m256i));
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
                // SAFETY: the caller guarantees that the CPU has `$features` (the kernel
                // set is an `Isa`, which proves it) and that `row`, `aq` and `ad` cover
                // `nb` blocks of the weight row and of each of the `T` activation rows;
                // every load below stays inside those blocks.
                unsafe {
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
                            let h1 = _mm256_slli_epi16(
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
                                4,
                            );
                            let h2 = _mm256_slli_epi16(
                                _mm256_and_si256(_mm256_srli_epi16(qh, 4), m2),
                                4,
                            );
                            let h3 = _mm256_slli_epi16(
                                _mm256_and_si256(_mm256_srli_epi16(qh, 6), m2),
                                4,
                            );
                            let w = [
                                _mm256_or_si256(_mm256_and_si256(ql0, m4), h0),
                                _mm256_or_si256(_mm256_and_si256(ql1, m4), h1),
                                _mm256_or_si256(
                                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                    h2,
                                ),
                                _mm256_or_si256(
                                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                    h3,
                                ),
                            ];
                            for (c, wc) in w.iter().enumerate() {
                                let ws = _mm256_sub_epi8(*wc, k32);
                                let wabs = _mm256_sign_epi8(ws, ws);
                                // [d·sc_lo ×4, d·sc_hi ×4] for this block of 32.
                                let c2 = 2 * c as i32;
                                let sv = _mm256_permutevar8x32_ps(
                                    scf[h],
                                    _mm256_setr_epi32(
                                        c2,
                                        c2,
                                        c2,
                                        c2,
                                        c2 + 1,
                                        c2 + 1,
                                        c2 + 1,
                                        c2 + 1,
                                    ),
                                );
                                let b = sb * 8 + 4 * h + c;
                                for t in 0..T {
                                    let a = _mm256_loadu_si256(
                                        aq.add(t * a_stride + b * QK) as *const __m256i
                                    );
                                    let p = $idot!(wabs, _mm256_sign_epi8(a, ws));
                                    let da = _mm256_broadcast_ss(
                                        &*(ad.add(t * d_stride + b) as *const f32),
                                    );
                                    let f = _mm256_mul_ps(sv, da);
                                    if c % 2 == 0 {
                                        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc[t]);
                                    } else {
                                        acc2[t] =
                                            _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc2[t]);
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
        }
    };
}

/// u8 × i8 pairs summed into 8 i32 lanes (AVX2: two steps; the 16-bit middle step cannot
/// overflow since |q| ≤ 128 and the weights are ≤ 128).
macro_rules! idot_avx2 {
    ($u:expr, $s:expr) => {
        _mm256_madd_epi16(_mm256_maddubs_epi16($u, $s), _mm256_set1_epi16(1))
    };
}

/// u8 × i8 summed into 8 i32 lanes with one VNNI instruction.
macro_rules! idot_vnni {
    ($u:expr, $s:expr) => {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), $u, $s)
    };
}

/// The same with AVX512-VNNI's EVEX form on 256-bit lanes.
macro_rules! idot_vnni512 {
    ($u:expr, $s:expr) => {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), $u, $s)
    };
}

x86_kernels!(
    vnni512,
    "avx2,fma,f16c,avx512f,avx512vnni,avx512vl",
    idot_vnni512
);
x86_kernels!(avx2, "avx2,fma,f16c", idot_avx2);
x86_kernels!(vnni, "avx2,fma,f16c,avxvnni", idot_vnni);

/// The 512-bit kernels (AVX512F/BW/VL + AVX512-VNNI) of Q4_1 and Q8_0, the types of the
/// default model; the kernel set [`super::Isa`] "avx512" runs the K-quants on the 256-bit
/// `vnni512` kernels above.
///
/// Built for batched decode, where the product is bound by arithmetic rather than by the
/// weight bytes: one register holds two blocks of 32 weights, decoded once and then dotted
/// with `T` activation rows. Per block pair and activation row that is one integer dot, one
/// conversion, one multiply and one FMA (the activation scales come pre-spread over the 16
/// lanes, [`super::blocks::QActs`]'s `dx`), plus for Q4_1 one FMA of the two mins with the
/// two activation block sums. Every (row, activation row) result is computed in the same
/// order whatever `T`, so a sequence gets the same numbers alone and in a batch.
pub(super) mod zmm {
    use super::QK;
    use std::arch::x86_64::*;

    /// Where `T` activation rows are: quantized values `a_stride` apart, spread scales
    /// (`dx`) `dx_stride` apart, `[d, s]` per block (`ds`) `ds_stride` apart.
    #[derive(Clone, Copy)]
    pub struct Acts {
        pub aq: *const i8,
        pub a_stride: usize,
        pub dx: *const f32,
        pub dx_stride: usize,
        pub ds: *const [f32; 2],
        pub ds_stride: usize,
    }

    /// The first 4 bytes of block `b` and (if `full`) of block `b + 1` (`BB` bytes each) as
    /// f16 pairs converted: `[lo_b, hi_b, lo_b+1, hi_b+1]` (0 for a missing block).
    #[inline(always)]
    unsafe fn heads<const BB: usize>(blk: *const u8, full: bool) -> __m128 {
        // SAFETY: the block (and the next if `full`) exists (the caller's contract);
        // inlined into functions with AVX512F (which implies F16C's conversion here).
        unsafe {
            let h0 = std::ptr::read_unaligned(blk as *const i32);
            let h1 = if full {
                std::ptr::read_unaligned(blk.add(BB) as *const i32)
            } else {
                0
            };
            _mm_cvtph_ps(_mm_setr_epi32(h0, h1, 0, 0))
        }
    }

    /// One activation row's two blocks at `p` (only the first 32 bytes if `!full`).
    #[inline(always)]
    unsafe fn load_acts(p: *const i8, full: bool) -> __m512i {
        // SAFETY: the caller guarantees 64 (or, if `!full`, 32) readable bytes at `p`.
        unsafe {
            if full {
                _mm512_loadu_si512(p as *const __m512i)
            } else {
                _mm512_maskz_loadu_epi8(0xFFFF_FFFF, p)
            }
        }
    }

    /// `[d_b, s_b, d_b+1, s_b+1]` of one activation row (0 for a missing block `b + 1`).
    #[inline(always)]
    unsafe fn act_ds(p: *const [f32; 2], full: bool) -> __m128 {
        // SAFETY: the caller guarantees block `b` (and `b + 1` if `full`) at `p`.
        unsafe {
            if full {
                _mm_loadu_ps(p as *const f32)
            } else {
                _mm_castpd_ps(_mm_load_sd(p as *const f64))
            }
        }
    }

    /// One Q4_1 weight row of `nb` blocks against `T` activation rows.
    ///
    /// # Safety
    /// The CPU has AVX512F/BW/VL/VNNI, AVX2, FMA and F16C; `row` covers `nb` Q4_1 blocks;
    /// `a` covers `T` rows of `nb` blocks (values and `ds`) and `nb.div_ceil(2)·16` spread
    /// scales.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn q4_1<const T: usize>(row: *const u8, a: Acts, nb: usize, out: &mut [f32; T]) {
        // SAFETY: the caller's contract: the CPU has the features and the pointers cover
        // the blocks; every load below is of a block `< nb` (an odd last block is read
        // alone, as half a register).
        unsafe {
            let m4 = _mm512_set1_epi8(0x0F);
            let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
            let mut acc = [_mm512_setzero_ps(); T];
            let mut macc = [_mm_setzero_ps(); T];
            let mut b = 0;
            while b < nb {
                let full = b + 1 < nb;
                let blk = row.add(b * 20);
                // [d_b, m_b, d_b+1, m_b+1]
                let dm = heads::<20>(blk, full);
                // [d_b ×8, d_b+1 ×8]
                let dw = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(dm));
                let lo = _mm_loadu_si128(blk.add(4) as *const __m128i);
                let y = if full {
                    _mm256_inserti128_si256::<1>(
                        _mm256_castsi128_si256(lo),
                        _mm_loadu_si128(blk.add(24) as *const __m128i),
                    )
                } else {
                    _mm256_zextsi128_si256(lo)
                };
                // [q_b, q_b+1, q_b >> 4, q_b+1 >> 4] → [lo_b, hi_b, lo_b+1, hi_b+1]
                let z = _mm512_and_si512(
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(y), _mm256_srli_epi16::<4>(y)),
                    m4,
                );
                let wq = _mm512_shuffle_i64x2::<0b11_01_10_00>(z, z);
                let dxo = b / 2 * 16;
                for t in 0..T {
                    let av = load_acts(a.aq.add(t * a.a_stride + b * QK), full);
                    let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, av);
                    let f = _mm512_mul_ps(dw, _mm512_loadu_ps(a.dx.add(t * a.dx_stride + dxo)));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), f, acc[t]);
                    // lanes 1 and 3: m·s of the two blocks (lanes 0 and 2 unused)
                    let das = act_ds(a.ds.add(t * a.ds_stride + b), full);
                    macc[t] = _mm_fmadd_ps(dm, das, macc[t]);
                }
                b += 2;
            }
            for t in 0..T {
                let m = _mm_movehdup_ps(macc[t]);
                let m = _mm_cvtss_f32(m) + _mm_cvtss_f32(_mm_movehl_ps(m, m));
                out[t] = _mm512_reduce_add_ps(acc[t]) + m;
            }
        }
    }

    /// One Q8_0 weight row of `nb` blocks against `T` activation rows (the weights' signs
    /// moved onto the activations, as in the 256-bit kernels).
    ///
    /// # Safety
    /// As [`q4_1`], with `row` covering `nb` Q8_0 blocks (the block sums are not read).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn q8_0<const T: usize>(row: *const u8, a: Acts, nb: usize, out: &mut [f32; T]) {
        // SAFETY: as in `q4_1`.
        unsafe {
            let zero = _mm512_setzero_si512();
            // lanes 0 and 2 of the heads are the scales (1 and 3 are quants, unused)
            let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
            let mut acc = [_mm512_setzero_ps(); T];
            let mut b = 0;
            while b < nb {
                let full = b + 1 < nb;
                let blk = row.add(b * 34);
                let dw =
                    _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(heads::<34>(blk, full)));
                let lo = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let w = if full {
                    _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(lo),
                        _mm256_loadu_si256(blk.add(36) as *const __m256i),
                    )
                } else {
                    _mm512_zextsi256_si512(lo)
                };
                let neg = _mm512_movepi8_mask(w);
                let wabs = _mm512_abs_epi8(w);
                let dxo = b / 2 * 16;
                for (t, acc) in acc.iter_mut().enumerate() {
                    let av = load_acts(a.aq.add(t * a.a_stride + b * QK), full);
                    let sv = _mm512_mask_sub_epi8(av, neg, zero, av);
                    let p = _mm512_dpbusd_epi32(zero, wabs, sv);
                    let f = _mm512_mul_ps(dw, _mm512_loadu_ps(a.dx.add(t * a.dx_stride + dxo)));
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), f, *acc);
                }
                b += 2;
            }
            for t in 0..T {
                out[t] = _mm512_reduce_add_ps(acc[t]);
            }
        }
    }
}
