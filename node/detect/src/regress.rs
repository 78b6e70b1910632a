//! The online regression baseline of a dependent signal: the value expected given up to three
//! driver signals (e.g. a winding temperature given the motor current and the speed).
//!
//! Features are a second-order response surface of the drivers with their pairwise
//! interactions: `1`, per driver `u` and `u²`, per pair of drivers `uᵢ·uⱼ`, `uᵢ²·uⱼ` and
//! `uᵢ·uⱼ²`, `u` being a driver scaled by its normal range (centre 0, ±1 at the range's ends).
//! The interactions matter when one driver scales another's effect: a winding's I²R heating at
//! a given current grows as the speed (and with it the fan's cooling and the torque per amp)
//! falls, so `40 + 70·(I/n)²`-like responses are not a sum of a current term and a speed term.
//! Without them the fit is exact at one speed only, and data from two speeds give compromise
//! coefficients that are several °C off at either (a false level shift after a load step).
//!
//! With a lag (`depends_lag_s`), each feature — not only the driver — passes a first-order
//! filter with that time constant, so a first-order thermal response to a static nonlinearity
//! (40 + 70·load² through a 600 s lag) is exactly linear in the filtered features.
//!
//! Two time scales: the expected value is `ȳ + β·(f − f̄)`. The level — the means `ȳ` and `f̄`
//! — follows the baseline's rate, as it must: it carries what no driver measures (the ambient
//! temperature swings 10 °C and more over a day). The shape `β` (how the signal responds to
//! its drivers: physics, which changes only with the machine) comes from the covariances of
//! the deviations from those moving means, remembered [`SHAPE_MEMORY`] times longer. Learned
//! with the level's short memory, the shape was refitted from the last hour's narrow operating
//! range alone, confounded with the ambient's trend over that hour, and extrapolated several
//! °C wrong as soon as the load left that range (a false level shift after a normal load
//! step); deviations from the moving means carry no ambient trend, and a day's memory covers
//! the day's operating points. The covariances are exponentially weighted (plain averages
//! while learning) and solved with a small ridge every [`SOLVE_EVERY`] updates: O(d²) per
//! reading, no allocation, no wind-up when a driver stays constant. No I/O, no clock.
//!
//! The linear algebra indexes fixed-size arrays (`[f64; DIM]`) with loop counters bounded by
//! the feature count (`dim ≤ DIM`, fixed at construction), which is clearer than iterator chains
//! here.
#![allow(clippy::needless_range_loop)]

/// Largest number of drivers of one signal.
pub const MAX_DRIVERS: usize = 3;
/// Pairs of drivers at most.
const MAX_PAIRS: usize = MAX_DRIVERS * (MAX_DRIVERS - 1) / 2;
/// Largest feature count: the intercept, two per driver, three per pair of drivers.
const DIM: usize = 1 + 2 * MAX_DRIVERS + 3 * MAX_PAIRS;

/// The feature count of a regression on `n_drv` drivers.
const fn dim_of(n_drv: usize) -> usize {
    1 + 2 * n_drv + 3 * (n_drv * n_drv.saturating_sub(1) / 2)
}
/// Updates between two solves of the normal equations.
const SOLVE_EVERY: u32 = 16;
/// Ridge added to the diagonal of the (scaled) feature covariances.
const RIDGE: f64 = 1e-4;
/// The shape's memory in multiples of the level's: its weight per update is the level's
/// divided by this (with the plant's 2 h baseline span, about a day).
pub const SHAPE_MEMORY: f64 = 12.0;
/// The shape's memory while the signal adapts to an operating point the fit has not learned
/// (a new setpoint), in multiples of the level's: shorter, since the shape there is an
/// extrapolation that must be learned within the adaptation, but not as short as the level's,
/// which would refit the whole shape from the new point's narrow range and forget the rest.
const NEW_POINT_SHAPE_MEMORY: f64 = 3.0;

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
    /// Moving means of the features (index 0, the constant, unused) and of the signal.
    mu_f: [f64; DIM],
    mu_y: f64,
    /// Slow covariances of the deviations from the moving means (upper triangle used).
    c_ff: [[f64; DIM]; DIM],
    c_fy: [f64; DIM],
    c_yy: f64,
    /// Shape coefficients (index 0 unused: the level is `mu_y`).
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
            dim: dim_of(n_drv),
            scale,
            tau_s: tau_s.max(0.0),
            feat,
            primed: false,
            driven: false,
            cached_dt: f64::NAN,
            cached_a: 1.0,
            mu_f: [0.0; DIM],
            mu_y: 0.0,
            c_ff: [[0.0; DIM]; DIM],
            c_fy: [0.0; DIM],
            c_yy: 0.0,
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
    /// A non-finite driver value keeps the features involving that driver as they were.
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
        let mut u = [f64::NAN; MAX_DRIVERS];
        for d in 0..self.n_drv {
            let v = x[d];
            if !v.is_finite() {
                continue;
            }
            self.driven = true;
            u[d] = ((v - self.scale[d].centre) * self.scale[d].inv_half).clamp(-4.0, 4.0);
            let k = 1 + 2 * d;
            self.feat[k] += a * (u[d] - self.feat[k]);
            self.feat[k + 1] += a * (u[d] * u[d] - self.feat[k + 1]);
        }
        // Pairwise interactions, after the per-driver features (same order as `dim_of`).
        let mut k = 1 + 2 * self.n_drv;
        for i in 0..self.n_drv {
            for j in i + 1..self.n_drv {
                let (ui, uj) = (u[i], u[j]);
                if ui.is_finite() && uj.is_finite() {
                    let p = ui * uj;
                    self.feat[k] += a * (p - self.feat[k]);
                    self.feat[k + 1] += a * (p * ui - self.feat[k + 1]);
                    self.feat[k + 2] += a * (p * uj - self.feat[k + 2]);
                }
                k += 3;
            }
        }
        self.primed = true;
    }

    /// The value expected from the current features.
    #[inline]
    pub fn predict(&self) -> f64 {
        let mut y = self.mu_y;
        for k in 1..self.dim {
            y += self.beta[k] * (self.feat[k] - self.mu_f[k]);
        }
        y
    }

    /// Learns `y` at the current features: plain averages while `alpha` is `None` (learning),
    /// else the level with weight `alpha` and the shape with `alpha / SHAPE_MEMORY`.
    #[inline]
    pub fn learn(&mut self, y: f64, alpha: Option<f64>) {
        self.n += 1;
        let (w, w_shape) = match alpha {
            Some(a) => (a, a / SHAPE_MEMORY),
            None => {
                let w = 1.0 / self.n as f64;
                (w, w)
            }
        };
        self.learn_weighted(y, w, w_shape);
    }

    /// Learns `y` at an operating point the fit has not learned (a new setpoint): the level
    /// with weight `alpha`, the shape with `alpha / NEW_POINT_SHAPE_MEMORY`.
    #[inline]
    pub fn learn_new_point(&mut self, y: f64, alpha: f64) {
        self.n += 1;
        self.learn_weighted(y, alpha, alpha / NEW_POINT_SHAPE_MEMORY);
    }

    #[inline]
    fn learn_weighted(&mut self, y: f64, w: f64, w_shape: f64) {
        self.mu_y += w * (y - self.mu_y);
        let dy = y - self.mu_y;
        let mut d = [0.0; DIM];
        for k in 1..self.dim {
            self.mu_f[k] += w * (self.feat[k] - self.mu_f[k]);
            d[k] = self.feat[k] - self.mu_f[k];
        }
        for i in 1..self.dim {
            for j in i..self.dim {
                self.c_ff[i][j] += w_shape * (d[i] * d[j] - self.c_ff[i][j]);
            }
            self.c_fy[i] += w_shape * (d[i] * dy - self.c_fy[i]);
        }
        self.c_yy += w_shape * (dy * dy - self.c_yy);
        self.since_solve += 1;
        if self.since_solve >= SOLVE_EVERY {
            self.solve();
        }
    }

    /// Mean squared residual of the current fit over the learned deviations.
    pub fn residual_var(&self) -> f64 {
        let mut bxy = 0.0;
        let mut bxxb = 0.0;
        for i in 1..self.dim {
            bxy += self.beta[i] * self.c_fy[i];
            for j in 1..self.dim {
                let m = if i <= j {
                    self.c_ff[i][j]
                } else {
                    self.c_ff[j][i]
                };
                bxxb += self.beta[i] * m * self.beta[j];
            }
        }
        (self.c_yy - 2.0 * bxy + bxxb).max(0.0)
    }

    /// Shifts the level (re-learning at a new level); the shape stays.
    pub fn shift(&mut self, delta: f64) {
        self.mu_y += delta;
    }

    /// Solves the ridge-regularised normal equations of the shape (Cholesky); keeps the
    /// previous solution if the system is not positive definite.
    pub fn solve(&mut self) {
        self.since_solve = 0;
        // The system over features 1..dim, at indices 0..n.
        let n = self.dim - 1;
        let mut a = [[0.0f64; DIM]; DIM];
        for i in 0..n {
            for j in i..n {
                a[i][j] = self.c_ff[i + 1][j + 1];
                a[j][i] = self.c_ff[i + 1][j + 1];
            }
            a[i][i] += RIDGE;
        }
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
            let mut s = self.c_fy[i + 1];
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
            self.beta[1..=n].copy_from_slice(&b[..n]);
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
            if t % 200 == 0 && t > 0 {
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

    /// A first-order lag step of `dt_s`.
    fn lag(y: &mut f64, target: f64, dt_s: f64, tau_s: f64) {
        *y += (target - *y) * (1.0 - (-dt_s / tau_s).exp());
    }

    #[test]
    fn learns_how_the_speed_scales_the_current_s_heating() {
        // The plant's winding: 40 + 70·load² through 600 s, the current 140·(0.3 + 0.7·load·n)
        // at speed n: the same current heats more at a lower speed. The drive alternates
        // between 1200 and 1500 rpm every two hours; the fit must hold at both (a sum of a
        // current term and a speed term is several °C off at either).
        let scales = [
            DriverScale::from_range(40.0, 140.0),
            DriverScale::from_range(900.0, 1500.0),
        ];
        let mut r = Regression::new(&scales, 600.0);
        let mut rng = SplitMix64::new(5);
        let (mut load, mut y) = (0.7f64, 40.0 + 70.0 * 0.49);
        let mut worst = 0.0f64;
        for k in 0..(16 * 1800) {
            let t = 2 * k;
            if t % 240 == 0 && t > 0 {
                load = 0.35 + 0.65 * rng.next_f64();
            }
            let n = if (t / 7200) % 2 == 0 { 1.0 } else { 0.8 };
            lag(&mut y, 40.0 + 70.0 * load * load, 2.0, 600.0);
            let current = 140.0 * (0.3 + 0.7 * load * n);
            let speed = 1500.0 * n - 20.0 * load;
            r.set_drivers(2.0, &[current, speed, f64::NAN]);
            // After the first switch back to 1500 rpm has been seen and settled.
            if t > 4 * 7200 + 1800 && (t % 7200) > 1800 {
                worst = worst.max((r.predict() - y).abs());
            }
            r.learn(y, (k > 900).then_some(2.0 / 3601.0));
        }
        assert!(worst < 1.0, "worst error {worst} °C");
    }

    #[test]
    fn the_shape_outlasts_the_level_so_a_load_range_left_hours_ago_is_still_known() {
        // The load runs low (0.3–0.6) for four hours, in a narrow high band (0.85–0.95) for
        // six, then low again. With the shape as short-lived as the level (one hour here) it is
        // refitted from the narrow band alone, where the transmitters' noise blurs the
        // curvature, and extrapolated back to low load (0.3 °C off); remembered twelve times
        // longer it still holds the low range it learned hours ago.
        let s = DriverScale::from_range(40.0, 140.0);
        let mut r = Regression::new(&[s], 600.0);
        let mut rng = SplitMix64::new(9);
        let (mut load, mut y) = (0.45f64, 40.0 + 70.0 * 0.45 * 0.45);
        let mut worst = 0.0f64;
        for k in 0..(12 * 1800) {
            let t = 2 * k;
            if t % 180 == 0 && t > 0 {
                load = if (14_400..36_000).contains(&t) {
                    0.85 + 0.1 * rng.next_f64()
                } else {
                    0.3 + 0.3 * rng.next_f64()
                };
            }
            lag(&mut y, 40.0 + 70.0 * load * load, 2.0, 600.0);
            // The transmitters' noise (0.05 A, 0.05 °C).
            let current = 140.0 * (0.3 + 0.7 * load) + 0.05 * rng.normal();
            r.set_drivers(2.0, &[current, f64::NAN, f64::NAN]);
            if t >= 36_000 {
                worst = worst.max((r.predict() - y).abs());
            }
            r.learn(y + 0.05 * rng.normal(), (k > 900).then_some(2.0 / 3601.0));
        }
        assert!(worst < 0.2, "worst error {worst} °C");
    }
}
