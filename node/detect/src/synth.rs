//! Deterministic synthetic signals for tests and benchmarks: normal noise from the workspace's
//! seeded generator ([`SplitMix64`] in `millwright-core`), fault shapes (step, ramp, spike,
//! flatline, gap) and a simulated machine per profile. No clock, no global state.

use millwright_core::rng::SplitMix64;
use millwright_profile::Profile;

/// A fault shape added to a signal from `start` (reading index).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Nothing.
    None,
    /// Adds `size` from `start` on.
    Step {
        /// First affected reading.
        start: usize,
        /// Added value.
        size: f64,
    },
    /// Adds `per_reading * (i - start)` from `start` on.
    Ramp {
        /// First affected reading.
        start: usize,
        /// Slope per reading.
        per_reading: f64,
    },
    /// Adds `size` at reading `at` only.
    Spike {
        /// The reading.
        at: usize,
        /// Added value.
        size: f64,
    },
    /// Freezes the value from `start` on.
    Flatline {
        /// First frozen reading.
        start: usize,
    },
}

/// `n` readings of `mean + sd·noise` with `shape` applied.
pub fn series(n: usize, mean: f64, sd: f64, shape: Shape, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut frozen = None;
    for i in 0..n {
        let mut v = mean + sd * rng.normal();
        match shape {
            Shape::None => {}
            Shape::Step { start, size } if i >= start => v += size,
            Shape::Ramp { start, per_reading } if i >= start => {
                v += per_reading * (i - start) as f64
            }
            Shape::Spike { at, size } if i == at => v += size,
            Shape::Flatline { start } if i >= start => {
                v = *frozen.get_or_insert(v);
            }
            _ => {}
        }
        out.push(v);
    }
    out
}

/// A fault injected into one signal of a [`Machine`] from `start_s` on.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthFault {
    /// Signal name.
    pub signal: String,
    /// Seconds after the start of the run.
    pub start_s: f64,
    /// What happens.
    pub kind: FaultKind,
}

/// What a [`SynthFault`] does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaultKind {
    /// Adds a change of `total` reached linearly over `over_s` seconds, then held.
    Ramp {
        /// Total change in the unit.
        total: f64,
        /// Seconds to reach it (0: a step).
        over_s: f64,
    },
    /// The value freezes (stuck sensor).
    Freeze,
    /// No readings for `len_s` seconds.
    Gap {
        /// Seconds without readings.
        len_s: f64,
    },
    /// Extra noise of this standard deviation (e.g. cavitation makes vibration erratic).
    Noise {
        /// Standard deviation in the unit.
        sd: f64,
    },
}

/// One simulated signal: normal value, noise, daily swing, resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct SimSignal {
    /// Signal name.
    pub name: String,
    /// Unit symbol.
    pub unit: String,
    /// Mean value.
    pub mean: f64,
    /// Noise standard deviation.
    pub sd: f64,
    /// Amplitude of a 24 h sinusoid (ambient, load).
    pub daily_amp: f64,
    /// Resolution the value is rounded to (0: none).
    pub quantum: f64,
}

/// A simulated machine producing readings of every signal of a profile at a fixed interval.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Asset tag.
    pub asset: String,
    /// Signals.
    pub signals: Vec<SimSignal>,
    /// Injected faults.
    pub faults: Vec<SynthFault>,
    rng: SplitMix64,
}

impl Machine {
    /// A healthy machine for `profile`: each signal at 40 % of its normal range, noise 1 %
    /// of the range, a daily swing of 1.5 % of the range, resolution 0.01.
    pub fn for_profile(asset: &str, profile: &Profile, seed: u64) -> Self {
        let signals = profile
            .signals
            .iter()
            .map(|s| {
                let [lo, hi] = s.normal.unwrap_or([0.0, 100.0]);
                let w = hi - lo;
                SimSignal {
                    name: s.name.clone(),
                    unit: s.unit.clone(),
                    mean: lo + 0.4 * w,
                    sd: 0.01 * w,
                    daily_amp: 0.015 * w,
                    quantum: 0.01,
                }
            })
            .collect();
        Self {
            asset: asset.to_string(),
            signals,
            faults: Vec::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Adds a fault.
    pub fn inject(&mut self, signal: &str, start_s: f64, kind: FaultKind) -> &mut Self {
        self.faults.push(SynthFault {
            signal: signal.to_string(),
            start_s,
            kind,
        });
        self
    }

    /// Runs for `seconds` at `interval_s`, starting at `t0_ns`; calls `f(signal index, ts_ns,
    /// value)` for each reading and `tick(ts_ns)` once per interval after the readings.
    pub fn run(
        &mut self,
        t0_ns: i64,
        seconds: f64,
        interval_s: f64,
        mut f: impl FnMut(usize, i64, f64),
        mut tick: impl FnMut(i64),
    ) {
        let steps = (seconds / interval_s) as u64;
        let mut frozen: Vec<Option<f64>> = vec![None; self.signals.len()];
        for k in 0..steps {
            let t = k as f64 * interval_s;
            let ts = t0_ns + (t * 1e9) as i64;
            for (i, s) in self.signals.iter().enumerate() {
                let mut v = s.mean
                    + s.daily_amp * (std::f64::consts::TAU * t / 86_400.0).sin()
                    + s.sd * self.rng.normal();
                let mut skip = false;
                for fl in self
                    .faults
                    .iter()
                    .filter(|fl| fl.signal == s.name && t >= fl.start_s)
                {
                    let dt = t - fl.start_s;
                    match fl.kind {
                        FaultKind::Ramp { total, over_s } => {
                            v += if over_s <= 0.0 {
                                total
                            } else {
                                total * (dt / over_s).min(1.0)
                            };
                        }
                        FaultKind::Noise { sd } => v += sd * self.rng.normal(),
                        FaultKind::Gap { len_s } => skip |= dt < len_s,
                        FaultKind::Freeze => {}
                    }
                }
                if s.quantum > 0.0 {
                    v = (v / s.quantum).round() * s.quantum;
                }
                let is_frozen = self.faults.iter().any(|fl| {
                    fl.signal == s.name && t >= fl.start_s && fl.kind == FaultKind::Freeze
                });
                if is_frozen {
                    v = *frozen[i].get_or_insert(v);
                }
                if !skip {
                    f(i, ts, v);
                }
            }
            tick(ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_apply_where_asked() {
        let s = series(
            10,
            0.0,
            0.0,
            Shape::Step {
                start: 5,
                size: 2.0,
            },
            1,
        );
        assert_eq!(s[4], 0.0);
        assert_eq!(s[5], 2.0);
        let f = series(10, 0.0, 1.0, Shape::Flatline { start: 3 }, 1);
        assert!(f[3..].iter().all(|v| *v == f[3]) && f[2] != f[3]);
    }
}
