//! Portable kernels: plain Rust for any CPU (the reference the SIMD kernels must match bit
//! for bit within each (row, token)). Raw pointers only at the two places a block is taken
//! from the caller's buffers.

use super::blocks::{f16_bits, q4k_q, q4k_scale_bytes, q6k_q, QType};
use super::QK;

/// Portable kernel: one weight row against `T` activation rows (`a_stride` values and
/// `d_stride` blocks apart); `nb` counts blocks of 32 (a multiple of 8 for the K-quants).
///
/// # Safety
/// Pointers must cover `nb` blocks of 32 values of the row and of each activation row.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn dot_row<const T: usize>(
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
        // SAFETY: super-block `sb < nb / per` lies inside the row (the caller's contract).
        let blk = unsafe { std::slice::from_raw_parts(row.add(sb * bb), bb) };
        let d = f16_bits(blk, 0).to_f32();
        let sm = if ty == QType::Q4_K {
            q4k_scale_bytes(blk)
        } else {
            [0; 16]
        };
        for (t, acc_t) in acc.iter_mut().enumerate() {
            for j in 0..per {
                let b = sb * per + j;
                // SAFETY: block `b < nb` of activation row `t < T` is covered by the
                // caller's contract for `aq` and `ad`.
                let (q, [da, sa]) = unsafe {
                    (
                        std::slice::from_raw_parts(aq.add(t * a_stride + b * QK), QK),
                        *ad.add(t * d_stride + b),
                    )
                };
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
