//! Event life cycle with hysteresis: a score crossing the open threshold opens one event; it
//! closes only after the score stayed below the (lower) close threshold for a while, so one
//! fault gives one alert, not a storm. Time comes from the readings.

use millwright_core::{AnomalyKind, Phase};

/// Open / close thresholds of an event tracker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hysteresis {
    /// Score at which an event opens.
    pub open_score: f64,
    /// Score below which the close timer runs.
    pub close_score: f64,
    /// Nanoseconds below `close_score` before the event closes.
    pub close_after_ns: i64,
}

/// State of one event stream (one sensor or one correlation group).
#[derive(Clone, Debug)]
pub(crate) struct EventTracker {
    pub open: bool,
    pub since_ns: i64,
    last_hot_ns: i64,
    peak: [f64; 8],
    kinds_mask: u16,
    pub main: AnomalyKind,
    pub peak_score: f64,
}

impl EventTracker {
    pub fn new() -> Self {
        Self {
            open: false,
            since_ns: 0,
            last_hot_ns: 0,
            peak: [0.0; 8],
            kinds_mask: 0,
            main: AnomalyKind::LevelShift,
            peak_score: 0.0,
        }
    }

    /// Feeds the score of one reading and the kind that produced it; returns the phase change.
    #[inline]
    pub fn step(
        &mut self,
        ts_ns: i64,
        score: f64,
        kind: AnomalyKind,
        h: &Hysteresis,
    ) -> Option<Phase> {
        if !self.open {
            if score >= h.open_score {
                self.open = true;
                self.since_ns = ts_ns;
                self.last_hot_ns = ts_ns;
                self.peak = [0.0; 8];
                self.peak[kind.index()] = score;
                self.kinds_mask = 1 << kind.index();
                self.main = kind;
                self.peak_score = score;
                return Some(Phase::Opened);
            }
            return None;
        }
        if score >= h.close_score {
            self.last_hot_ns = ts_ns;
            if score >= h.open_score {
                self.kinds_mask |= 1 << kind.index();
            }
            if score > self.peak_score {
                self.peak_score = score;
            }
            let i = kind.index();
            if score > self.peak[i] {
                self.peak[i] = score;
                // The first kind to cross stays the main kind, except that a sustained kind
                // replaces a one-reading spike, and a hard limit replaces anything.
                if kind != self.main && score >= h.open_score && takes_over(kind, self.main) {
                    self.main = kind;
                    return Some(Phase::Updated);
                }
            }
            None
        } else if ts_ns.saturating_sub(self.last_hot_ns) >= h.close_after_ns {
            self.open = false;
            Some(Phase::Closed)
        } else {
            None
        }
    }

    /// Time went back to `ts_ns` (a far-ahead reading was the odd one out): times after it
    /// move back to it, so the close timer runs on the corrected clock.
    pub fn rewind(&mut self, ts_ns: i64) {
        self.since_ns = self.since_ns.min(ts_ns);
        self.last_hot_ns = self.last_hot_ns.min(ts_ns);
    }

    /// Closes an open event at once (re-learning); returns whether one was open.
    pub fn force_close(&mut self) -> bool {
        std::mem::replace(&mut self.open, false)
    }

    /// Records a secondary kind of the same reading that is over the open threshold while the
    /// event is open (the main `step` saw only the largest score).
    pub fn note(&mut self, score: f64, kind: AnomalyKind, h: &Hysteresis) -> Option<Phase> {
        if !self.open || score < h.open_score {
            return None;
        }
        self.kinds_mask |= 1 << kind.index();
        let i = kind.index();
        if score > self.peak[i] {
            self.peak[i] = score;
        }
        if kind != self.main && takes_over(kind, self.main) {
            self.main = kind;
            return Some(Phase::Updated);
        }
        None
    }

    /// Kinds that crossed the open threshold during the event, in declaration order.
    pub fn kinds(&self) -> Vec<AnomalyKind> {
        AnomalyKind::ALL
            .into_iter()
            .filter(|k| self.kinds_mask & (1 << k.index()) != 0)
            .collect()
    }
}

/// Whether `new` replaces `main` as an event's main kind.
fn takes_over(new: AnomalyKind, main: AnomalyKind) -> bool {
    (main == AnomalyKind::Spike && new != AnomalyKind::Dropout)
        || (new == AnomalyKind::Limit && main != AnomalyKind::Limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hysteresis = Hysteresis {
        open_score: 0.5,
        close_score: 0.3,
        close_after_ns: 10,
    };

    #[test]
    fn flapping_score_gives_one_event() {
        let mut t = EventTracker::new();
        let mut phases = Vec::new();
        // Score flaps around the open threshold, dipping below close only briefly.
        let scores = [0.1, 0.6, 0.2, 0.55, 0.25, 0.7, 0.4, 0.2, 0.2, 0.2, 0.6];
        for (i, s) in scores.iter().enumerate() {
            if let Some(p) = t.step(i as i64 * 3, *s, AnomalyKind::Drift, &H) {
                phases.push((i, p));
            }
        }
        // Opens at 1; hot until index 6 (ts 18); closes at ts >= 28 -> index 10 is 30 but
        // index 10 has score 0.6, so the event is still open at the end.
        assert_eq!(phases, vec![(1, Phase::Opened)]);
        assert!(t.open);
    }

    #[test]
    fn closes_after_quiet_time_and_reopens_as_new_event() {
        let mut t = EventTracker::new();
        assert_eq!(t.step(0, 0.9, AnomalyKind::Spike, &H), Some(Phase::Opened));
        assert_eq!(t.step(5, 0.1, AnomalyKind::Spike, &H), None);
        assert_eq!(t.step(10, 0.1, AnomalyKind::Spike, &H), Some(Phase::Closed));
        assert_eq!(t.step(11, 0.6, AnomalyKind::Drift, &H), Some(Phase::Opened));
        assert_eq!(t.since_ns, 11);
    }

    #[test]
    fn sustained_kind_replaces_spike_and_limit_replaces_all() {
        let mut t = EventTracker::new();
        t.step(0, 0.6, AnomalyKind::Spike, &H);
        assert_eq!(t.step(1, 0.45, AnomalyKind::LevelShift, &H), None);
        assert_eq!(
            t.step(2, 0.9, AnomalyKind::LevelShift, &H),
            Some(Phase::Updated)
        );
        assert_eq!(t.main, AnomalyKind::LevelShift);
        assert_eq!(t.kinds(), vec![AnomalyKind::LevelShift, AnomalyKind::Spike]);
        // A drift growing on top of a level shift does not rename it; a limit does.
        assert_eq!(t.step(3, 1.0, AnomalyKind::Drift, &H), None);
        assert_eq!(t.main, AnomalyKind::LevelShift);
        assert_eq!(t.step(4, 0.7, AnomalyKind::Limit, &H), Some(Phase::Updated));
        assert_eq!(t.main, AnomalyKind::Limit);
    }
}
