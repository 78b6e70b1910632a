//! Checking a parsed profile: [`Profile::validate`] is pure and collects every problem with its
//! path instead of stopping at the first. No parsing and no I/O here.

use crate::Profile;
use millwright_core::{Direction, ValidationError};
use std::collections::HashSet;

impl Profile {
    /// Every problem of the profile with its path; empty when it is usable.
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut errs = Vec::new();
        let mut e = |path: String, msg: String| errs.push(ValidationError::new(path, msg));
        if self.name.trim().is_empty() {
            e("name".into(), "must not be empty".into());
        }
        let d = &self.defaults;
        if d.learn_n < 10 {
            e(
                "defaults.learn_n".into(),
                format!(
                    "{} is too few readings to learn a baseline (at least 10)",
                    d.learn_n
                ),
            );
        }
        if d.fast_n < 1 {
            e("defaults.fast_n".into(), "must be at least 1".into());
        }
        if d.trend_n <= d.fast_n {
            e(
                "defaults.trend_n".into(),
                format!("{} must be larger than fast_n ({})", d.trend_n, d.fast_n),
            );
        }
        if d.baseline_n <= d.trend_n {
            e(
                "defaults.baseline_n".into(),
                format!(
                    "{} must be larger than trend_n ({})",
                    d.baseline_n, d.trend_n
                ),
            );
        }
        if !(d.open_score > 0.0 && d.open_score <= 1.0) {
            e(
                "defaults.open_score".into(),
                format!("{} must be in (0, 1]", d.open_score),
            );
        }
        if !(d.close_score > 0.0 && d.close_score < d.open_score) {
            e(
                "defaults.close_score".into(),
                format!("{} must be in (0, open_score)", d.close_score),
            );
        }
        if !(d.close_after_s.is_finite() && d.close_after_s >= 0.0) {
            e(
                "defaults.close_after_s".into(),
                format!(
                    "{} must be a non-negative number of seconds",
                    d.close_after_s
                ),
            );
        }
        if !(d.related_z.is_finite() && d.related_z > 0.0) {
            e("defaults.related_z".into(), "must be positive".into());
        }
        if !(d.relearn_after_s.is_finite() && d.relearn_after_s > 0.0) {
            e(
                "defaults.relearn_after_s".into(),
                format!("{} must be a positive number of seconds", d.relearn_after_s),
            );
        }
        if !(d.learn_dependent_s.is_finite() && d.learn_dependent_s >= 0.0) {
            e(
                "defaults.learn_dependent_s".into(),
                format!(
                    "{} must be a non-negative number of seconds",
                    d.learn_dependent_s
                ),
            );
        }
        if !(d.clock_tolerance_s.is_finite() && d.clock_tolerance_s >= 0.0) {
            e(
                "defaults.clock_tolerance_s".into(),
                format!(
                    "{} must be a non-negative number of seconds",
                    d.clock_tolerance_s
                ),
            );
        }
        if self.signals.is_empty() {
            e(
                "signals".into(),
                "a profile needs at least one signal".into(),
            );
        }
        let mut names = HashSet::new();
        for (i, s) in self.signals.iter().enumerate() {
            let at = |k: &str| format!("signals[{i}]({}).{k}", s.name);
            if s.name.trim().is_empty() || s.name.contains([',', ' ', '/', '#', '+']) {
                e(
                    format!("signals[{i}].name"),
                    format!(
                        "{:?} must be non-empty without spaces, commas, '/', '#' or '+'",
                        s.name
                    ),
                );
            }
            if !names.insert(s.name.as_str()) {
                e(
                    format!("signals[{i}].name"),
                    format!("duplicate signal {:?}", s.name),
                );
            }
            if let Some([lo, hi]) = s.normal {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    e(
                        at("normal"),
                        format!("[{lo}, {hi}] must be two finite numbers, low < high"),
                    );
                }
                if s.limits.min.is_some_and(|m| m > lo) || s.limits.max.is_some_and(|m| m < hi) {
                    e(
                        at("normal"),
                        format!("[{lo}, {hi}] must lie inside the hard limits"),
                    );
                }
            }
            if let (Some(a), Some(b)) = (s.limits.min, s.limits.max) {
                if a >= b || a.is_nan() || b.is_nan() {
                    e(at("limits"), format!("min {a} must be below max {b}"));
                }
            }
            for (k, v) in [("limits.min", s.limits.min), ("limits.max", s.limits.max)] {
                if v.is_some_and(|v| !v.is_finite()) {
                    e(at(k), "must be finite".into());
                }
            }
            if let Some(nf) = s.noise_floor {
                if !(nf.is_finite() && nf > 0.0) {
                    e(
                        at("noise_floor"),
                        format!("{nf} must be a positive number in {}", s.unit),
                    );
                }
            }
            if let Some(v) = s.relearn_after_s {
                if !(v.is_finite() && v > 0.0) {
                    e(at("relearn_after_s"), "must be positive seconds".into());
                }
            }
            if let Some(v) = s.settle_s {
                if !(v.is_finite() && v >= 0.0) {
                    e(at("settle_s"), "must be zero or positive seconds".into());
                }
            }
            if let Some(v) = s.depends_lag_s {
                if !(v.is_finite() && v >= 0.0) {
                    e(
                        at("depends_lag_s"),
                        "must be zero or positive seconds".into(),
                    );
                }
            }
            if s.depends_on.len() > 3 {
                e(
                    at("depends_on"),
                    format!("has {} drivers; at most 3", s.depends_on.len()),
                );
            }
            let mut seen_dep = HashSet::new();
            for (j, d) in s.depends_on.iter().enumerate() {
                let path = format!("signals[{i}]({}).depends_on[{j}]", s.name);
                if *d == s.name {
                    e(path, "a signal cannot depend on itself".into());
                } else if !seen_dep.insert(d.as_str()) {
                    e(path, format!("{d:?} listed twice"));
                } else {
                    match self.signal(d) {
                        None => e(path, format!("unknown signal {d:?}")),
                        Some(ds) if ds.normal.is_none() => e(
                            path,
                            format!("driver {d:?} needs a normal range (it scales the driver)"),
                        ),
                        Some(_) => {}
                    }
                }
            }
            let dt = &s.detect;
            if let Some(l) = &dt.level {
                if !(l.shift_z.is_finite() && l.shift_z > 0.0) {
                    e(at("detect.level.shift_z"), "must be positive".into());
                }
                if !(l.spike_z.is_finite() && l.spike_z > 0.0) {
                    e(at("detect.level.spike_z"), "must be positive".into());
                }
            }
            if let Some(c) = &dt.drift {
                if !(c.k.is_finite() && c.k >= 0.0) {
                    e(at("detect.drift.k"), "must be zero or positive".into());
                }
                if !(c.h.is_finite() && c.h > 0.0) {
                    e(at("detect.drift.h"), "must be positive".into());
                }
                if c.min_delta.is_some_and(|m| !(m.is_finite() && m >= 0.0)) {
                    e(
                        at("detect.drift.min_delta"),
                        format!("must be zero or a positive change in {}", s.unit),
                    );
                }
            }
            if let Some(r) = &dt.rate {
                if !(r.max_per_min.is_finite() && r.max_per_min > 0.0) {
                    e(
                        at("detect.rate.max_per_min"),
                        format!(
                            "{} must be a positive rate in {}/min",
                            r.max_per_min, s.unit
                        ),
                    );
                }
            }
            if let Some(f) = &dt.flatline {
                if !(f.after_s.is_finite() && f.after_s > 0.0) {
                    e(
                        at("detect.flatline.after_s"),
                        "must be positive seconds".into(),
                    );
                }
                if !(f.tolerance.is_finite() && f.tolerance >= 0.0) {
                    e(
                        at("detect.flatline.tolerance"),
                        "must be zero or positive".into(),
                    );
                }
            }
            if let Some(g) = &dt.gap {
                if !(g.after_s.is_finite() && g.after_s > 0.0) {
                    e(at("detect.gap.after_s"), "must be positive seconds".into());
                }
            }
            if dt.limits == Some(true) && s.limits.min.is_none() && s.limits.max.is_none() {
                e(
                    at("detect.limits"),
                    "is true but the signal has no limits.min or limits.max".into(),
                );
            }
        }
        if let Some(st) = &self.states {
            if !names.contains(st.signal.as_str()) {
                e(
                    "states.signal".into(),
                    format!("unknown signal {:?}", st.signal),
                );
            }
            if !st.running_above.is_finite() {
                e("states.running_above".into(), "must be finite".into());
            }
            if !(st.settle_s.is_finite() && st.settle_s >= 0.0) {
                e(
                    "states.settle_s".into(),
                    "must be zero or positive seconds".into(),
                );
            }
        }
        for (i, c) in self.correlations.iter().enumerate() {
            let at = |k: &str| format!("correlations[{i}]({}).{k}", c.name);
            if c.signals.len() < 2 {
                e(
                    at("signals"),
                    "a correlation group needs at least two signals".into(),
                );
            }
            if c.directions.len() != c.signals.len() {
                e(
                    at("directions"),
                    format!(
                        "has {} entries but signals has {}",
                        c.directions.len(),
                        c.signals.len()
                    ),
                );
            }
            if c.directions.contains(&Direction::Flat) {
                e(at("directions"), "must be `up` or `down`".into());
            }
            let mut seen = HashSet::new();
            for (j, s) in c.signals.iter().enumerate() {
                if !names.contains(s.as_str()) {
                    e(
                        format!("correlations[{i}]({}).signals[{j}]", c.name),
                        format!("unknown signal {s:?}"),
                    );
                }
                if !seen.insert(s) {
                    e(
                        format!("correlations[{i}]({}).signals[{j}]", c.name),
                        format!("{s:?} listed twice"),
                    );
                }
            }
            if !(c.z.is_finite() && c.z > 0.0) {
                e(at("z"), "must be positive".into());
            }
            if !(c.max_age_s.is_finite() && c.max_age_s > 0.0) {
                e(at("max_age_s"), "must be positive seconds".into());
            }
        }
        let mut ids = HashSet::new();
        for (i, f) in self.failure_modes.iter().enumerate() {
            let at = |k: &str| format!("failure_modes[{i}]({}).{k}", f.id);
            if f.id.trim().is_empty() {
                e(format!("failure_modes[{i}].id"), "must not be empty".into());
            }
            if !ids.insert(f.id.as_str()) {
                e(
                    format!("failure_modes[{i}].id"),
                    format!("duplicate failure mode {:?}", f.id),
                );
            }
            if f.title.trim().is_empty() {
                e(at("title"), "must not be empty".into());
            }
            if f.symptoms.is_empty() {
                e(at("symptoms"), "needs at least one symptom".into());
            }
            for (j, s) in f.symptoms.iter().enumerate() {
                if !names.contains(s.signal.as_str()) {
                    e(
                        format!("failure_modes[{i}]({}).symptoms[{j}].signal", f.id),
                        format!("unknown signal {:?}", s.signal),
                    );
                }
            }
            if f.causes.is_empty() || f.causes.iter().any(|c| c.trim().is_empty()) {
                e(at("causes"), "needs at least one non-empty cause".into());
            }
            if f.actions.is_empty() || f.actions.iter().any(|a| a.text.trim().is_empty()) {
                e(at("actions"), "needs at least one non-empty action".into());
            }
        }
        errs
    }
}
