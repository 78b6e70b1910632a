//! Tests of the kernels: every kernel set against an f64 reference, against candle's
//! dequantization, batch independence, threading and the block-format checks.

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
            a.quantize(&x, m, k, Isa::best());
            let mut xd = vec![0f32; m * k];
            a.dequantize(&mut xd);
            let want = reference(&w, &a, &xd);
            if nonzero {
                assert!(want.iter().any(|v| v.abs() > 1.0));
            }
            for isa in Isa::supported() {
                let mut y = vec![0f32; m * n];
                unsafe { rows_kernel(isa, &w, &a, 0..n, y.as_mut_ptr(), n) };
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
            QStorage::from_data(Cow::Owned(w.data().to_vec()), &Device::Cpu, ty.ggml()).unwrap();
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
        a.quantize(&x, m, k, Isa::best());
        for isa in Isa::supported() {
            let mut all = vec![0f32; m * n];
            unsafe { rows_kernel(isa, &w, &a, 0..n, all.as_mut_ptr(), n) };
            for t in 0..m {
                let mut one = QActs::default();
                one.quantize(&x[t * k..(t + 1) * k], 1, k, Isa::best());
                let mut y = vec![0f32; n];
                unsafe { rows_kernel(isa, &w, &one, 0..n, y.as_mut_ptr(), n) };
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

/// The decode step of a batch: one product of 16 activation rows (threaded, through the
/// public `matmul`) equals 16 single-row products (matrix-vector), bit for bit, for every
/// weight type and every kernel set this CPU has (portable included), and each row agrees
/// with the f64 reference.
#[test]
fn a_batch_of_16_equals_16_matvecs_on_every_kernel_set() {
    let mut seed = 23u64;
    let (n, k, m) = (300, 512, 16);
    let pool = Pool::new(2);
    for ty in [QType::Q4_1, QType::Q8_0, QType::Q4_K, QType::Q6_K] {
        let w = random_matrix(ty, n, k, &mut seed);
        let x: Vec<f32> = (0..m * k).map(|_| rng(&mut seed)).collect();
        let isas = Isa::supported();
        assert!(isas.contains(&Isa::PORTABLE));
        for isa in isas {
            let mut a = QActs::default();
            a.quantize(&x, m, k, isa);
            let mut batch = vec![f32::NAN; m * n];
            w.matmul(&a, &mut batch, isa, &pool);
            for t in 0..m {
                let mut one = QActs::default();
                one.quantize(&x[t * k..(t + 1) * k], 1, k, isa);
                let mut y = vec![f32::NAN; n];
                w.matmul(&one, &mut y, isa, &pool);
                for r in 0..n {
                    assert_eq!(
                        y[r].to_bits(),
                        batch[t * n + r].to_bits(),
                        "{ty:?} {isa:?} sequence {t} row {r}"
                    );
                }
            }
            let mut deq = vec![0f32; m * k];
            a.dequantize(&mut deq);
            let want = reference(&w, &a, &deq);
            for (i, (g, e)) in batch.iter().zip(&want).enumerate() {
                let tol = 1e-4 * e.abs().max(1.0);
                assert!(
                    (f64::from(*g) - e).abs() <= tol,
                    "{ty:?} {isa:?} entry {i}: {g} vs {e}"
                );
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
    a.quantize(&x, 3, 576, Isa::best());
    let mut y1 = vec![0f32; 3000];
    let mut y2 = vec![0f32; 3000];
    w.matmul(&a, &mut y1, Isa::best(), &Pool::new(1));
    w.matmul(&a, &mut y2, Isa::best(), &Pool::new(2));
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
    a.quantize(&x, 5, 256, Isa::best());
    let pool = Pool::new(2);
    let (mut ya, mut yb) = (vec![0f32; 5 * 40], vec![0f32; 5 * 24]);
    a4.matmul(&a, &mut ya, Isa::best(), &pool);
    b8.matmul(&a, &mut yb, Isa::best(), &pool);
    let mut both = vec![f32::NAN; 5 * 64];
    a4.matmul_into(&a, &mut both, 64, 0, Isa::best(), &pool);
    b8.matmul_into(&a, &mut both, 64, 40, Isa::best(), &pool);
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

/// Batch sizes 1, 3, 5 and 16 (every group size of the 512-bit kernels and their tails) and
/// rows of an odd number of blocks (a last block alone in its register pair): every kernel
/// set agrees with the portable kernels within rounding, and gives each activation row the
/// bits it gets alone.
#[test]
fn odd_batches_and_ragged_rows_agree_with_the_portable_kernels() {
    let mut seed = 31u64;
    for ty in [QType::Q4_1, QType::Q8_0] {
        for k in [32, 96, 576, 608] {
            let n = 37;
            let w = random_matrix(ty, n, k, &mut seed);
            for m in [1, 3, 5, 16] {
                let x: Vec<f32> = (0..m * k).map(|_| rng(&mut seed) * 2.0).collect();
                let mut pa = QActs::default();
                pa.quantize(&x, m, k, Isa::PORTABLE);
                let mut want = vec![0f32; m * n];
                unsafe { rows_kernel(Isa::PORTABLE, &w, &pa, 0..n, want.as_mut_ptr(), n) };
                for isa in Isa::supported() {
                    let mut a = QActs::default();
                    a.quantize(&x, m, k, isa);
                    let mut y = vec![f32::NAN; m * n];
                    unsafe { rows_kernel(isa, &w, &a, 0..n, y.as_mut_ptr(), n) };
                    for (i, (g, e)) in y.iter().zip(&want).enumerate() {
                        let tol = 2e-5 * e.abs().max(1.0);
                        assert!(
                            (g - e).abs() <= tol,
                            "{ty:?} {isa:?} k={k} m={m} at {i}: {g} vs portable {e}"
                        );
                    }
                    for t in 0..m {
                        let mut one = QActs::default();
                        one.quantize(&x[t * k..(t + 1) * k], 1, k, isa);
                        let mut y1 = vec![f32::NAN; n];
                        unsafe { rows_kernel(isa, &w, &one, 0..n, y1.as_mut_ptr(), n) };
                        for r in 0..n {
                            assert_eq!(
                                y1[r].to_bits(),
                                y[t * n + r].to_bits(),
                                "{ty:?} {isa:?} k={k} m={m} row {t}/{r}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Where the CPU has AVX-512 (F, BW, VL, VNNI), the best kernel set is the 512-bit one and
/// its activations carry the spread scales (so the products above ran its kernels).
#[test]
fn the_512_bit_kernels_are_chosen_where_the_cpu_has_them() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let wide = has!("avx2")
            && has!("fma")
            && has!("f16c")
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512vl")
            && has!("avx512vnni");
        assert_eq!(Isa::best().wide(), wide);
        let mut a = QActs::default();
        a.quantize(&[0.5; 96], 1, 96, Isa::best());
        assert_eq!(a.dx.len(), if wide { 32 } else { 0 });
        if wide {
            assert_eq!(&a.dx[..8], &[a.ds[0][0]; 8]);
            assert_eq!(&a.dx[24..], &[0.0; 8]);
        }
    }
}
