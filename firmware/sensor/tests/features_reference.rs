//! Checks the fixed-point vibration features against an f64 implementation of the same
//! algorithm (property tests) and against closed-form results for sine waves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_sensor::features::{axis_features, vibration_features, FeatureError};
use proptest::prelude::*;

const SCALE: u32 = 38_246; // µm/s² per LSB

/// f64 reference: same steps (mean removal, trapezoid, velocity mean removal).
struct Ref {
    vel_rms: f64,
    acc_rms: f64,
    acc_peak: f64,
    crest: f64,
    kurtosis: f64,
}

fn reference(samples: &[i16], fs: f64, scale: f64) -> Ref {
    let n = samples.len() as f64;
    let a: Vec<f64> = samples.iter().map(|&s| f64::from(s) * scale).collect();
    let mean = a.iter().sum::<f64>() / n;
    let a: Vec<f64> = a.iter().map(|x| x - mean).collect();
    let mut v = vec![0.0; a.len()];
    for k in 1..a.len() {
        v[k] = v[k - 1] + (a[k] + a[k - 1]) / (2.0 * fs);
    }
    let vm = v.iter().sum::<f64>() / n;
    let vel_rms = (v.iter().map(|x| (x - vm).powi(2)).sum::<f64>() / n).sqrt();
    let m2 = a.iter().map(|x| x * x).sum::<f64>() / n;
    let m4 = a.iter().map(|x| x.powi(4)).sum::<f64>() / n;
    let peak = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let rms = m2.sqrt();
    Ref {
        vel_rms,
        acc_rms: rms,
        acc_peak: peak,
        crest: if rms > 0.0 { peak / rms } else { 0.0 },
        kurtosis: if m2 > 0.0 { m4 / (m2 * m2) } else { 0.0 },
    }
}

fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    (got - want).abs() <= want.abs() * rel + abs
}

fn sine(n: usize, fs: f64, f: f64, amp_lsb: f64, offset: f64) -> Vec<i16> {
    (0..n)
        .map(|k| {
            (offset + amp_lsb * (2.0 * std::f64::consts::PI * f * k as f64 / fs).sin()).round()
                as i16
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn fixed_point_matches_f64_reference(
        samples in prop::collection::vec(-4096i16..=4095, 8..=1024),
        fs in prop::sample::select(vec![100u32, 400, 800, 1600, 3200]),
    ) {
        let got = axis_features(&samples, fs, SCALE).unwrap();
        let r = reference(&samples, f64::from(fs), f64::from(SCALE));
        // Integer results are rounded/truncated to 1 µm/s, 1 µm/s² and 0.01. The velocity's
        // integer square root is taken in units of scale / (2·fs·n²) µm/s (about 3 µm/s for 8
        // samples at 100 Hz), so its floor can cost up to one such unit more.
        let n = samples.len() as f64;
        let vel_quantum = f64::from(SCALE) / (2.0 * f64::from(fs) * n * n);
        prop_assert!(close(f64::from(got.vel_rms_um_s), r.vel_rms, 1e-6, 1.0 + vel_quantum), "vel {} vs {}", got.vel_rms_um_s, r.vel_rms);
        prop_assert!(close(f64::from(got.acc_rms_um_s2), r.acc_rms, 1e-6, 1.0), "acc {} vs {}", got.acc_rms_um_s2, r.acc_rms);
        prop_assert!(close(f64::from(got.acc_peak_um_s2), r.acc_peak, 1e-6, 1.0), "peak {} vs {}", got.acc_peak_um_s2, r.acc_peak);
        prop_assert!(close(f64::from(got.crest_x100) / 100.0, r.crest, 1e-6, 0.011), "crest {} vs {}", got.crest_x100, r.crest);
        prop_assert!(close(f64::from(got.kurtosis_x100) / 100.0, r.kurtosis, 1e-6, 0.011), "kurt {} vs {}", got.kurtosis_x100, r.kurtosis);
        prop_assert_eq!(got.flat, r.acc_rms == 0.0);
    }

    #[test]
    fn extreme_codes_do_not_overflow(
        samples in prop::collection::vec(prop::sample::select(vec![i16::MIN, i16::MAX, 0]), 1024..=1024),
    ) {
        let got = axis_features(&samples, 100, 1_000_000).unwrap();
        let r = reference(&samples, 100.0, 1_000_000.0);
        let sat = |x: f64| x.min(f64::from(u32::MAX));
        prop_assert!(close(f64::from(got.acc_rms_um_s2), sat(r.acc_rms), 1e-6, 1.0));
        prop_assert!(close(f64::from(got.vel_rms_um_s), sat(r.vel_rms), 1e-6, 1.0));
        prop_assert!(close(f64::from(got.kurtosis_x100) / 100.0, r.kurtosis, 1e-6, 0.011));
    }
}

#[test]
fn sine_wave_matches_closed_form() {
    // 1 g-ish sine at 25 Hz (1500 rpm), 1600 Hz, 1024 samples (16 periods) plus 1 g gravity.
    let (fs, f, amp) = (1600.0, 25.0, 200.0);
    let s = sine(1024, fs, f, amp, 256.0);
    let got = axis_features(&s, 1600, SCALE).unwrap();
    let a_amp = amp * f64::from(SCALE);
    let acc_rms = a_amp / 2f64.sqrt();
    let vel_rms = a_amp / (2.0 * std::f64::consts::PI * f) / 2f64.sqrt();
    assert!(
        close(f64::from(got.acc_rms_um_s2), acc_rms, 0.005, 0.0),
        "{got:?}"
    );
    assert!(
        close(f64::from(got.vel_rms_um_s), vel_rms, 0.01, 0.0),
        "{got:?} want {vel_rms}"
    );
    assert!(
        close(f64::from(got.crest_x100), 141.4, 0.01, 0.0),
        "{got:?}"
    );
    assert!(
        close(f64::from(got.kurtosis_x100), 150.0, 0.01, 0.0),
        "{got:?}"
    );
    // Four times the frequency, same acceleration: a quarter of the velocity.
    let s4 = sine(1024, fs, 4.0 * f, amp, 256.0);
    let got4 = axis_features(&s4, 1600, SCALE).unwrap();
    let ratio = f64::from(got.vel_rms_um_s) / f64::from(got4.vel_rms_um_s);
    assert!((ratio - 4.0).abs() < 0.1, "ratio {ratio}");
}

#[test]
fn impulses_raise_kurtosis_and_crest() {
    let mut s = sine(1024, 1600.0, 50.0, 100.0, 0.0);
    let base = axis_features(&s, 1600, SCALE).unwrap();
    for k in (0..1024).step_by(128) {
        s[k] = s[k].saturating_add(1500);
    }
    let hit = axis_features(&s, 1600, SCALE).unwrap();
    assert!(
        hit.kurtosis_x100 > 3 * base.kurtosis_x100,
        "{base:?} {hit:?}"
    );
    assert!(hit.crest_x100 > 2 * base.crest_x100, "{base:?} {hit:?}");
}

#[test]
fn flat_signal_and_bad_arguments() {
    let flat = [100i16; 64];
    let f = axis_features(&flat, 1600, SCALE).unwrap();
    assert!(f.flat);
    assert_eq!(
        (
            f.vel_rms_um_s,
            f.acc_rms_um_s2,
            f.crest_x100,
            f.kurtosis_x100
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        axis_features(&[0; 7], 1600, SCALE),
        Err(FeatureError::WindowLength(7))
    );
    assert_eq!(
        axis_features(&[0; 1025], 1600, SCALE),
        Err(FeatureError::WindowLength(1025))
    );
    assert_eq!(
        axis_features(&[0; 8], 0, SCALE),
        Err(FeatureError::SampleRate)
    );
    assert_eq!(axis_features(&[0; 8], 1, 0), Err(FeatureError::Scale(0)));
}

#[test]
fn overall_velocity_is_vector_sum() {
    let x = sine(512, 1600.0, 25.0, 100.0, 0.0);
    let y = sine(512, 1600.0, 25.0, 100.0, 0.0);
    let z = vec![0i16; 512];
    let v = vibration_features(&x, &y, &z, 1600, SCALE).unwrap();
    let want = f64::from(v.axes[0].vel_rms_um_s) * 2f64.sqrt();
    assert!(
        close(f64::from(v.vel_rms_overall_um_s), want, 0.001, 1.0),
        "{v:?}"
    );
    assert!(v.axes[2].flat);
}
