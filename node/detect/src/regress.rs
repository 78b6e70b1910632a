//! The online regression baseline of a dependent signal: the value expected given up to three
//! driver signals (e.g. a winding temperature given the motor current).
//!
//! Features are `[1, u₁, u₁², u₂, u₂², u₃, u₃²]`, `u` being a driver scaled by its normal range
//! (centre 0, ±1 at the range's ends). With a lag (`depends_lag_s`), each feature — not only the
//! driver — passes a first-order filter with that time constant, so a first-order thermal
//! response to a static nonlinearity (40 + 70·load² through a 600 s lag) is exactly linear in the
//! filtered features. The coefficients come from exponentially weighted moments (plain averages
//! while learning) solved with a small ridge every [`SOLVE_EVERY`] updates: O(d²) per reading,
//! no allocation, no wind-up when a driver stays constant. No I/O, no clock.
//!
//! The linear algebra indexes fixed-size arrays (`[f64; 7]`) with loop counters bounded by the
//! feature count (`dim ≤ 7`, fixed at construction), which is clearer than iterator chains here.
#![allow(clippy::needless_range_loop)]

/// Largest number of drivers of one signal.
pub const MAX_DRIVERS: usize = 3;
/// Largest feature count.
const DIM: usize = 1 + 2 * MAX_DRIVERS;
/// Updates between two solves of the normal equations.
const SOLVE_EVERY: u32 = 16;
/// Ridge added to the diagonal of the (scaled) feature moments, intercept excluded.
const RIDGE: f64 = 1e-4;

/// How one driver is scaled: `u = (x − centre) · inv_half`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriverScale {
    /// Centre of the driver's normal range.
    pub centre: f64,
    /// 1 / half the width of the driver's normal range.
    pub inv_half: f64,
}

impl DriverScale {
    /// The scale of a driver with normal range `[lo, hi]`.
    pub fn from_range(lo: f64, hi: f64) -> Self {
        let half = (0.5 * (hi - lo)).abs().max(1e-12);
        Self {
            centre: 0.5 * (lo + hi),
            inv_half: 1.0 / half,
        }
    }
}

/// Online regression of one signal on its drivers.
#[derive(Clone, Debug)]
pub struct Regression {
    n_drv: usize,
    dim: usize,
    scale: [DriverScale; MAX_DRIVERS],
    tau_s: f64,
    feat: [f64; DIM],
    primed: bool,
    driven: bool,
    cached_dt: f64,
    cached_a: f64,
    m_xx: [[f64; DIM]; DIM],
    m_xy: [f64; DIM],
    m_yy: f64,
    beta: [f64; DIM],
    n: u64,
    since_solve: u32,
}

impl Regression {
    /// A regression on `scales.len()` (1..=3, extra ones ignored) drivers with lag `tau_s`.
    pub fn new(scales: &[DriverScale], tau_s: f64) -> Self {
        let n_drv = scales.len().min(MAX_DRIVERS);
        let mut scale = [DriverScale {
            centre: 0.0,
            inv_half: 1.0,
        }; MAX_DRIVERS];
        for (d, s) in scale.iter_mut().zip(scales) {
            *d = *s;
        }
        let mut feat = [0.0; DIM];
        feat[0] = 1.0;
        Self {
            n_drv,
            dim: 1 + 2 * n_drv,
            scale,
            tau_s: tau_s.max(0.0),
            feat,
            primed: false,
            driven: false,
            cached_dt: f64::NAN,
            cached_a: 1.0,
            m_xx: [[0.0; DIM]; DIM],
            m_xy: [0.0; DIM],
            m_yy: 0.0,
            beta: [0.0; DIM],
            n: 0,
            since_solve: 0,
        }
    }

    /// Number of drivers.
    pub fn drivers(&self) -> usize {
        self.n_drv
    }

    /// True once any driver has had a value (before that the fit is a plain mean).
    pub fn driven(&self) -> bool {
        self.driven
    }

    /// Updates the (filtered) features with the drivers' current values after `dt_s` seconds.
    /// A non-finite driver value keeps that driver's features as they were.
    #[inline]
    pub fn set_drivers(&mut self, dt_s: f64, x: &[f64; MAX_DRIVERS]) {
        let a = if !self.primed || self.tau_s <= 0.0 {
            1.0
        } else if dt_s == self.cached_dt {
            self.cached_a
        } else {
            let a = 1.0 - (-dt_s.max(0.0) / self.tau_s).exp();
            self.cached_dt = dt_s;
            self.cached_a = a;
            a
        };
        for d in 0..self.n_drv {
            let v = x[d];
            if !v.is_finite() {
                continue;
            }
            self.driven = true;
            let u = ((v - self.scale[d].centre) * self.scale[d].inv_half).clamp(-4.0, 4.0);
            let k = 1 + 2 * d;
            self.feat[k] += a * (u - self.feat[k]);
            self.feat[k + 1] += a * (u * u - self.feat[k + 1]);
        }
        self.primed = true;
    }

    /// The value expected from the current features.
    #[inline]
    pub fn predict(&self) -> f64 {
        let mut y = 0.0;
        for k in 0..self.dim {
            y += self.beta[k] * self.feat[k];
        }
        y
    }

    /// Learns `y` at the current features: plain averages while `alpha` is `None` (learning),
    /// else exponentially weighted moments with weight `alpha`.
    #[inline]
    pub fn learn(&mut self, y: f64, alpha: Option<f64>) {
        self.n += 1;
        let w = alpha.unwrap_or(1.0 / self.n as f64);
        for i in 0..self.dim {
            let fi = self.feat[i];
            for j in i..self.dim {
                self.m_xx[i][j] += w * (fi * self.feat[j] - self.m_xx[i][j]);
            }
            self.m_xy[i] += w * (fi * y - self.m_xy[i]);
        }
        self.m_yy += w * (y * y - self.m_yy);
        self.since_solve += 1;
        if self.since_solve >= SOLVE_EVERY {
            self.solve();
        }
    }

    /// Mean squared residual of the current fit over the learned moments.
    pub fn residual_var(&self) -> f64 {
        let mut bxy = 0.0;
        let mut bxxb = 0.0;
        for i in 0..self.dim {
            bxy += self.beta[i] * self.m_xy[i];
            for j in 0..self.dim {
                let m = if i <= j {
                    self.m_xx[i][j]
                } else {
                    self.m_xx[j][i]
                };
                bxxb += self.beta[i] * m * self.beta[j];
            }
        }
        (self.m_yy - 2.0 * bxy + bxxb).max(0.0)
    }

    /// Shifts the intercept (re-learning at a new level).
    pub fn shift(&mut self, delta: f64) {
        self.beta[0] += delta;
        // Keep the moments consistent with the shifted fit: y moves by delta everywhere.
        let m0 = self.m_xy[0];
        for i in 0..self.dim {
            let mx0 = self.m_xx[0][i];
            self.m_xy[i] += delta * mx0;
        }
        self.m_yy += 2.0 * delta * m0 + delta * delta * self.m_xx[0][0];
    }

    /// Solves the ridge-regularised normal equations (Cholesky); keeps the previous solution if
    /// the system is not positive definite.
    pub fn solve(&mut self) {
        self.since_solve = 0;
        let n = self.dim;
        let mut a = [[0.0f64; DIM]; DIM];
        for i in 0..n {
            for j in i..n {
                a[i][j] = self.m_xx[i][j];
                a[j][i] = self.m_xx[i][j];
            }
            if i > 0 {
                a[i][i] += RIDGE;
            }
        }
        a[0][0] += 1e-12;
        // In-place Cholesky: lower triangle holds L.
        for j in 0..n {
            let mut d = a[j][j];
            for k in 0..j {
                d -= a[j][k] * a[j][k];
            }
            if d.is_nan() || d <= 1e-15 {
                return;
            }
            let ljj = d.sqrt();
            a[j][j] = ljj;
            for i in j + 1..n {
                let mut s = a[i][j];
                for k in 0..j {
                    s -= a[i][k] * a[j][k];
                }
                a[i][j] = s / ljj;
            }
        }
        let mut z = [0.0f64; DIM];
        for i in 0..n {
            let mut s = self.m_xy[i];
            for k in 0..i {
                s -= a[i][k] * z[k];
            }
            z[i] = s / a[i][i];
        }
        let mut b = [0.0f64; DIM];
        for i in (0..n).rev() {
            let mut s = z[i];
            for k in i + 1..n {
                s -= a[k][i] * b[k];
            }
            b[i] = s / a[i][i];
        }
        if b[..n].iter().all(|v| v.is_finite()) {
            self.beta = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::rng::SplitMix64;

    #[test]
    fn learns_a_quadratic_through_a_lag() {
        // y = 40 + 70·load² through a 600 s first-order lag; the driver is the current.
        let s = DriverScale::from_range(40.0, 140.0);
        let mut r = Regression::new(&[s], 600.0);
        let mut rng = SplitMix64::new(3);
        let (mut load, mut y) = (0.7f64, 40.0 + 70.0 * 0.49);
        let mut worst = 0.0f64;
        for t in 0..40_000 {
            if t % 200 == 0 {
                load = 0.5 + 0.45 * rng.next_f64();
            }
            y += (40.0 + 70.0 * load * load - y) * (1.0 - (-1.0f64 / 600.0).exp());
            let current = 140.0 * (0.3 + 0.7 * load);
            r.set_drivers(1.0, &[current, f64::NAN, f64::NAN]);
            if t > 20_000 {
                worst = worst.max((r.predict() - y).abs());
            }
            r.learn(y, (t > 1000).then_some(2.0 / 3601.0));
        }
        assert!(worst < 0.5, "worst error {worst} °C");
    }
}
