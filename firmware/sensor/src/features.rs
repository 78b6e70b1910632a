//! Fixed-point vibration features over one window of accelerometer samples.
//!
//! Pure integer arithmetic (i128 accumulators), no allocation, no floating point, no panics.
//! Per axis: the DC component (gravity, offset) is removed exactly by scaling with the window
//! length (a'ₖ = aₖ·n − Σa), acceleration is integrated to velocity with the trapezoidal rule
//! (exact integer running sum), the velocity's own mean (the integration constant) is removed,
//! and RMS velocity, RMS/peak acceleration, crest factor and kurtosis are derived. The lower
//! band edge is therefore about 1/window length; the upper edge is set by the accelerometer's
//! output data rate. Results are in µm/s and µm/s² (u32) and ×100 for dimensionless ratios.

/// Smallest accepted window.
pub const MIN_WINDOW: usize = 8;
/// Largest accepted window (keeps every intermediate inside i128/u128).
pub const MAX_WINDOW: usize = 1024;

/// Why features could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureError {
    /// The window length is outside [`MIN_WINDOW`]..=[`MAX_WINDOW`]; the length is attached.
    WindowLength(usize),
    /// The sample rate is zero.
    SampleRate,
    /// The scale (µm/s² per LSB) is zero or above 1 000 000.
    Scale(u32),
}

/// Features of one axis over one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AxisFeatures {
    /// RMS velocity, µm/s (0.001 mm/s).
    pub vel_rms_um_s: u32,
    /// RMS acceleration after DC removal, µm/s².
    pub acc_rms_um_s2: u32,
    /// Peak |acceleration| after DC removal, µm/s².
    pub acc_peak_um_s2: u32,
    /// Crest factor (peak / RMS) × 100; 0 for a flat signal.
    pub crest_x100: u32,
    /// Kurtosis (m₄ / m₂², 300 for a Gaussian) × 100; 0 for a flat signal.
    pub kurtosis_x100: u32,
    /// Whether the axis was flat (zero variance) over the window.
    pub flat: bool,
}

/// Integer square root, rounded down.
pub fn isqrt_u128(v: u128) -> u128 {
    if v < 2 {
        return v;
    }
    // Initial guess from the bit length, then Newton's method (monotone from above).
    let bits = 128 - v.leading_zeros();
    let mut x: u128 = 1u128 << bits.div_ceil(2);
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

fn sat_u32(v: u128) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Computes the features of one axis.
///
/// `samples` are raw accelerometer codes, `fs_hz` the sample rate and `scale_um_s2` the
/// acceleration of one code in µm/s² (ADXL345 full resolution: 3.9 mg = 38 246 µm/s²).
pub fn axis_features(
    samples: &[i16],
    fs_hz: u32,
    scale_um_s2: u32,
) -> Result<AxisFeatures, FeatureError> {
    let len = samples.len();
    if !(MIN_WINDOW..=MAX_WINDOW).contains(&len) {
        return Err(FeatureError::WindowLength(len));
    }
    if fs_hz == 0 {
        return Err(FeatureError::SampleRate);
    }
    if scale_um_s2 == 0 || scale_um_s2 > 1_000_000 {
        return Err(FeatureError::Scale(scale_um_s2));
    }
    let n = len as i128;
    let scale = u128::from(scale_um_s2);
    let sum: i128 = samples.iter().map(|&s| i128::from(s)).sum();

    // Pass 1: DC-free acceleration (scaled by n), its moments and the velocity running sum.
    let mut m2: u128 = 0;
    let mut m4: u128 = 0;
    let mut peak: u128 = 0;
    let mut s_sum: i128 = 0; // Σ S_k
    let mut s: i128 = 0; // S_k, trapezoid sum of a' (velocity × 2·fs·n)
    let mut prev: i128 = 0;
    for (k, &x) in samples.iter().enumerate() {
        let a = i128::from(x) * n - sum;
        let sq = (a * a) as u128;
        m2 += sq;
        m4 += sq * sq;
        peak = peak.max(a.unsigned_abs());
        if k > 0 {
            s += a + prev;
        }
        prev = a;
        s_sum += s;
    }
    // Pass 2: velocity deviations from their mean (scaled by n again).
    let mut d2: u128 = 0;
    let mut s: i128 = 0;
    let mut prev: i128 = 0;
    for (k, &x) in samples.iter().enumerate() {
        let a = i128::from(x) * n - sum;
        if k > 0 {
            s += a + prev;
        }
        prev = a;
        let d = s * n - s_sum;
        d2 += (d * d) as u128;
    }
    let nu = n as u128;
    let fs = u128::from(fs_hz);
    // v = d / (2·fs·n²) codes·s ; rms = sqrt(d2/n) / (2·fs·n²) · scale.
    let vel = (isqrt_u128(d2 / nu) * scale + fs * nu * nu) / (2 * fs * nu * nu);
    let acc_rms = isqrt_u128(m2 * scale * scale / nu) / nu;
    let acc_peak = (peak * scale + nu / 2) / nu;
    if m2 == 0 {
        return Ok(AxisFeatures {
            vel_rms_um_s: sat_u32(vel),
            flat: true,
            ..AxisFeatures::default()
        });
    }
    // crest = peak / sqrt(m2/n)  ->  sqrt(peak²·n·10⁴ / m2), rounded down.
    let crest = isqrt_u128(peak * peak * nu * 10_000 / m2);
    let q = m4 * nu / m2; // kurtosis × m2, ≥ m2
    let kurt = (q * 100 + m2 / 2) / m2;
    Ok(AxisFeatures {
        vel_rms_um_s: sat_u32(vel),
        acc_rms_um_s2: sat_u32(acc_rms),
        acc_peak_um_s2: sat_u32(acc_peak),
        crest_x100: sat_u32(crest),
        kurtosis_x100: sat_u32(kurt),
        flat: false,
    })
}

/// Combined features of three axes: per-axis velocity, overall velocity and the worst axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VibrationFeatures {
    /// Per-axis features (x, y, z).
    pub axes: [AxisFeatures; 3],
    /// Overall RMS velocity √(x² + y² + z²), µm/s.
    pub vel_rms_overall_um_s: u32,
    /// Largest per-axis RMS acceleration, µm/s².
    pub acc_rms_max_um_s2: u32,
    /// Largest per-axis peak acceleration, µm/s².
    pub acc_peak_max_um_s2: u32,
    /// Largest per-axis crest factor × 100.
    pub crest_max_x100: u32,
    /// Largest per-axis kurtosis × 100.
    pub kurtosis_max_x100: u32,
}

/// Computes [`VibrationFeatures`] from three axis windows of equal length.
pub fn vibration_features(
    x: &[i16],
    y: &[i16],
    z: &[i16],
    fs_hz: u32,
    scale_um_s2: u32,
) -> Result<VibrationFeatures, FeatureError> {
    let axes = [
        axis_features(x, fs_hz, scale_um_s2)?,
        axis_features(y, fs_hz, scale_um_s2)?,
        axis_features(z, fs_hz, scale_um_s2)?,
    ];
    let sq: u128 = axes
        .iter()
        .map(|a| u128::from(a.vel_rms_um_s) * u128::from(a.vel_rms_um_s))
        .sum();
    let max = |f: fn(&AxisFeatures) -> u32| axes.iter().map(f).max().unwrap_or(0);
    Ok(VibrationFeatures {
        axes,
        vel_rms_overall_um_s: sat_u32(isqrt_u128(sq)),
        acc_rms_max_um_s2: max(|a| a.acc_rms_um_s2),
        acc_peak_max_um_s2: max(|a| a.acc_peak_um_s2),
        crest_max_x100: max(|a| a.crest_x100),
        kurtosis_max_x100: max(|a| a.kurtosis_x100),
    })
}
