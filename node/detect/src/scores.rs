//! Per-reading sub-detector scores of one signal ([`SubScores`]) and the score of a value
//! against its hard limits and normal range ([`limit_score`]). Pure functions only.

use millwright_core::{AnomalyKind, Limits};

/// Per-reading scores of the sub-detectors (for tests and back-testing).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SubScores {
    /// Level shift.
    pub level_shift: f64,
    /// Spike.
    pub spike: f64,
    /// Drift (CUSUM).
    pub drift: f64,
    /// Rate of change.
    pub rate: f64,
    /// Flatline.
    pub flatline: f64,
    /// Gap / dropout.
    pub gap: f64,
    /// Hard limits.
    pub limit: f64,
}

impl SubScores {
    /// Every score with its kind.
    #[inline]
    pub fn all(&self) -> [(f64, AnomalyKind); 7] {
        [
            (self.level_shift, AnomalyKind::LevelShift),
            (self.spike, AnomalyKind::Spike),
            (self.drift, AnomalyKind::Drift),
            (self.rate, AnomalyKind::RateOfChange),
            (self.flatline, AnomalyKind::Flatline),
            (self.gap, AnomalyKind::Dropout),
            (self.limit, AnomalyKind::Limit),
        ]
    }

    /// The largest score and its kind.
    #[inline]
    pub fn max(&self) -> (f64, AnomalyKind) {
        let mut best = (self.level_shift, AnomalyKind::LevelShift);
        for (s, k) in [
            (self.spike, AnomalyKind::Spike),
            (self.drift, AnomalyKind::Drift),
            (self.rate, AnomalyKind::RateOfChange),
            (self.flatline, AnomalyKind::Flatline),
            (self.gap, AnomalyKind::Dropout),
            (self.limit, AnomalyKind::Limit),
        ] {
            if s > best.0 {
                best = (s, k);
            }
        }
        best
    }
}

/// Score of a value against hard limits and the normal range: 0 inside the normal range,
/// rising linearly to 0.5 at the hard limit, 1 at one normal-range width beyond it.
#[inline]
pub fn limit_score(v: f64, l: &Limits, normal: Option<[f64; 2]>) -> f64 {
    limit_score_sided(v, l, normal, true)
}

/// [`limit_score`], with the low side scored only when `low` is set (a stopped machine reads
/// zero: its low limits do not apply).
#[inline]
pub fn limit_score_sided(v: f64, l: &Limits, normal: Option<[f64; 2]>, low: bool) -> f64 {
    let (lo_n, hi_n) = match normal {
        Some([lo, hi]) => (lo, hi),
        None => (f64::NEG_INFINITY, f64::INFINITY),
    };
    let width = match normal {
        Some([lo, hi]) => (hi - lo).abs().max(1e-12),
        None => 1.0,
    };
    if let Some(max) = l.max {
        if v > max {
            return (0.5 + 0.5 * (v - max) / width).min(1.0);
        }
        if v > hi_n && max > hi_n {
            return 0.5 * (v - hi_n) / (max - hi_n);
        }
    }
    if let (true, Some(min)) = (low, l.min) {
        if v < min {
            return (0.5 + 0.5 * (min - v) / width).min(1.0);
        }
        if v < lo_n && min < lo_n {
            return 0.5 * (lo_n - v) / (lo_n - min);
        }
    }
    0.0
}
