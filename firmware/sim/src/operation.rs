//! Normal operating changes of a simulated machine: scheduled operating events (load and
//! demand steps, stop and restart, setpoint changes) and the ambient temperature cycle.
//!
//! Plain data and the pure state they drive ([`Operation`]); the physics reads the state in
//! `physics.rs`. No I/O, no clock (time is passed in), no panics. A machine without events and
//! without an ambient cycle runs exactly as before these existed: random load changes around
//! its nominal level at a constant 25 °C.

use serde::Deserialize;

use crate::config::{ConfigError, MachineKind};

/// What changes at an operating event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OperatingKind {
    /// Load or demand step: the level the random load changes vary around, as a fraction of
    /// nominal (pump: flow demand, motor: load torque, compressor: air demand). Ends a pump's
    /// flow setpoint control.
    Load {
        /// New level, 0.2..=1.2.
        to: f64,
    },
    /// The machine stops: speed runs down, current and flow fall to zero, pressures to their
    /// idle values, temperatures cool with their thermal lag.
    Stop,
    /// The machine restarts and ramps back to its operating point.
    Start,
    /// Pump: the flow controller holds this flow (no random demand changes while it holds).
    FlowSetpoint {
        /// Flow setpoint, m³/h, 40..=220.
        m3_h: f64,
    },
    /// Motor: the drive's speed setpoint (variable-frequency drive), rpm, 600..=1800.
    SpeedSetpoint {
        /// Synchronous speed setpoint, rpm.
        rpm: f64,
    },
    /// Compressor: new load/unload pressure band.
    PressureBand {
        /// Cut-in (load) pressure, bar.
        cut_in_bar: f64,
        /// Cut-out (unload) pressure, bar; above cut-in, at most 9.
        cut_out_bar: f64,
    },
}

impl OperatingKind {
    /// Short name, e.g. `load 0.65`, `stop`, `flow_setpoint 150`.
    pub fn label(&self) -> String {
        match self {
            OperatingKind::Load { to } => format!("load {to}"),
            OperatingKind::Stop => "stop".into(),
            OperatingKind::Start => "start".into(),
            OperatingKind::FlowSetpoint { m3_h } => format!("flow_setpoint {m3_h}"),
            OperatingKind::SpeedSetpoint { rpm } => format!("speed_setpoint {rpm}"),
            OperatingKind::PressureBand {
                cut_in_bar,
                cut_out_bar,
            } => format!("pressure_band {cut_in_bar}-{cut_out_bar}"),
        }
    }
}

/// One scheduled operating event: `[[machine.event]] at_s = 3600, kind = "load", to = 0.6`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawEvent")]
pub struct OperatingEvent {
    /// Simulated seconds after start.
    pub at_s: f64,
    /// What changes.
    pub kind: OperatingKind,
}

/// The TOML form of an event: one flat table, the fields its kind needs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_s: f64,
    kind: String,
    to: Option<f64>,
    m3_h: Option<f64>,
    rpm: Option<f64>,
    cut_in_bar: Option<f64>,
    cut_out_bar: Option<f64>,
}

impl TryFrom<RawEvent> for OperatingEvent {
    type Error = String;
    fn try_from(r: RawEvent) -> Result<Self, String> {
        let need = |v: Option<f64>, field: &str| {
            v.ok_or_else(|| format!("event `{}` at {} s needs `{field}`", r.kind, r.at_s))
        };
        let kind = match r.kind.as_str() {
            "load" => OperatingKind::Load {
                to: need(r.to, "to")?,
            },
            "stop" => OperatingKind::Stop,
            "start" => OperatingKind::Start,
            "flow_setpoint" => OperatingKind::FlowSetpoint {
                m3_h: need(r.m3_h, "m3_h")?,
            },
            "speed_setpoint" => OperatingKind::SpeedSetpoint {
                rpm: need(r.rpm, "rpm")?,
            },
            "pressure_band" => OperatingKind::PressureBand {
                cut_in_bar: need(r.cut_in_bar, "cut_in_bar")?,
                cut_out_bar: need(r.cut_out_bar, "cut_out_bar")?,
            },
            other => {
                return Err(format!(
                    "unknown event kind `{other}` (expected load, stop, start, flow_setpoint, \
                     speed_setpoint or pressure_band)"
                ))
            }
        };
        Ok(OperatingEvent { at_s: r.at_s, kind })
    }
}

impl OperatingEvent {
    /// Checks the time and the values, and that the event applies to `machine`.
    pub fn validate(&self, machine: MachineKind) -> Result<(), ConfigError> {
        let range = |what: &str, v: f64, lo: f64, hi: f64, text: &'static str| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Range {
                    what: format!("event at {} s: {what}", self.at_s),
                    value: v,
                    range: text,
                })
            }
        };
        range("at_s", self.at_s, 0.0, f64::MAX, "finite, >= 0")?;
        let only = |kind: MachineKind| {
            if machine == kind {
                Ok(())
            } else {
                Err(ConfigError::Range {
                    what: format!(
                        "event `{}` at {} s (only for a {kind}, not a {machine})",
                        self.kind.label(),
                        self.at_s
                    ),
                    value: self.at_s,
                    range: "a matching machine kind",
                })
            }
        };
        match self.kind {
            OperatingKind::Load { to } => range("load to", to, 0.2, 1.2, "0.2..=1.2"),
            OperatingKind::Stop | OperatingKind::Start => Ok(()),
            OperatingKind::FlowSetpoint { m3_h } => {
                only(MachineKind::Pump)?;
                range("flow setpoint m3_h", m3_h, 40.0, 220.0, "40..=220")
            }
            OperatingKind::SpeedSetpoint { rpm } => {
                only(MachineKind::Motor)?;
                range("speed setpoint rpm", rpm, 600.0, 1800.0, "600..=1800")
            }
            OperatingKind::PressureBand {
                cut_in_bar,
                cut_out_bar,
            } => {
                only(MachineKind::Compressor)?;
                range("cut_in_bar", cut_in_bar, 3.0, 8.5, "3..=8.5")?;
                range(
                    "cut_out_bar",
                    cut_out_bar,
                    cut_in_bar + 0.3,
                    9.0,
                    "cut_in_bar + 0.3..=9",
                )
            }
        }
    }
}

/// Daily ambient temperature cycle: `mean_c + amplitude_c · sin(2π (t − t_min) / period_s −
/// π/2)`, coldest at `coldest_at_s`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmbientCycle {
    /// Mean temperature, °C.
    pub mean_c: f64,
    /// Half the day's swing, °C.
    pub amplitude_c: f64,
    /// Cycle length, s (a day: 86400).
    #[serde(default = "day_s")]
    pub period_s: f64,
    /// Simulated time of the coldest point, s after start (the cycle repeats every period).
    #[serde(default)]
    pub coldest_at_s: f64,
}

fn day_s() -> f64 {
    86_400.0
}

impl AmbientCycle {
    /// 20–32 °C over a day, coldest at 05:00 when the run starts at midnight.
    pub fn plant_day() -> Self {
        Self {
            mean_c: 26.0,
            amplitude_c: 6.0,
            period_s: 86_400.0,
            coldest_at_s: 5.0 * 3600.0,
        }
    }

    /// Ambient temperature at `t_s`, °C.
    pub fn at(&self, t_s: f64) -> f64 {
        let phase = std::f64::consts::TAU * (t_s - self.coldest_at_s) / self.period_s;
        self.mean_c - self.amplitude_c * phase.cos()
    }

    /// Checks the values are finite and physical.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, v: f64, range: &'static str| ConfigError::Range {
            what: format!("ambient {what}"),
            value: v,
            range,
        };
        if !(self.mean_c.is_finite() && (-30.0..=50.0).contains(&self.mean_c)) {
            return Err(bad("mean_c", self.mean_c, "-30..=50"));
        }
        if !(self.amplitude_c.is_finite() && (0.0..=20.0).contains(&self.amplitude_c)) {
            return Err(bad("amplitude_c", self.amplitude_c, "0..=20"));
        }
        if !(self.period_s.is_finite() && self.period_s >= 60.0) {
            return Err(bad("period_s", self.period_s, ">= 60"));
        }
        if !self.coldest_at_s.is_finite() {
            return Err(bad("coldest_at_s", self.coldest_at_s, "finite"));
        }
        Ok(())
    }
}

/// Operating state driven by the schedule: what the physics needs from the operator's side.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Events not yet applied, latest first (popped from the end).
    pending: Vec<OperatingEvent>,
    /// Ambient cycle (None: constant 25 °C).
    ambient: Option<AmbientCycle>,
    /// The machine is switched on.
    pub running: bool,
    /// Level the random load changes vary around (None: the kind's nominal level).
    pub load_base: Option<f64>,
    /// Pump flow setpoint, m³/h (None: demand follows the load).
    pub flow_setpoint: Option<f64>,
    /// Motor speed setpoint, rpm (None: mains frequency, 1500 rpm synchronous).
    pub speed_setpoint: Option<f64>,
    /// Compressor cut-in and cut-out pressures, bar.
    pub band: (f64, f64),
}

impl Operation {
    /// A schedule (any order) and an ambient cycle.
    pub fn new(events: &[OperatingEvent], ambient: Option<AmbientCycle>) -> Self {
        let mut pending = events.to_vec();
        pending.sort_by(|a, b| b.at_s.total_cmp(&a.at_s));
        Self {
            pending,
            ambient,
            running: true,
            load_base: None,
            flow_setpoint: None,
            speed_setpoint: None,
            band: (6.5, 7.5),
        }
    }

    /// Ambient temperature at `t_s`, °C.
    pub fn ambient_c(&self, t_s: f64) -> f64 {
        self.ambient.map_or(25.0, |a| a.at(t_s))
    }

    /// Applies the events due at `t_s`; returns true when any applied.
    pub fn apply_due(&mut self, t_s: f64) -> bool {
        let mut any = false;
        while self.pending.last().is_some_and(|e| e.at_s <= t_s) {
            let Some(e) = self.pending.pop() else { break };
            any = true;
            match e.kind {
                OperatingKind::Load { to } => {
                    self.load_base = Some(to);
                    self.flow_setpoint = None;
                }
                OperatingKind::Stop => self.running = false,
                OperatingKind::Start => self.running = true,
                OperatingKind::FlowSetpoint { m3_h } => self.flow_setpoint = Some(m3_h),
                OperatingKind::SpeedSetpoint { rpm } => self.speed_setpoint = Some(rpm),
                OperatingKind::PressureBand {
                    cut_in_bar,
                    cut_out_bar,
                } => self.band = (cut_in_bar, cut_out_bar),
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_apply_in_time_order() {
        let evs = [
            OperatingEvent {
                at_s: 20.0,
                kind: OperatingKind::Start,
            },
            OperatingEvent {
                at_s: 10.0,
                kind: OperatingKind::Stop,
            },
        ];
        let mut op = Operation::new(&evs, None);
        assert!(!op.apply_due(5.0));
        assert!(op.running);
        assert!(op.apply_due(10.0));
        assert!(!op.running);
        assert!(op.apply_due(30.0));
        assert!(op.running);
        assert_eq!(op.ambient_c(0.0), 25.0);
    }

    #[test]
    fn ambient_cycles_between_its_extremes() {
        let a = AmbientCycle::plant_day();
        assert!((a.at(5.0 * 3600.0) - 20.0).abs() < 1e-9);
        assert!((a.at(17.0 * 3600.0) - 32.0).abs() < 1e-9);
        assert!(a.validate().is_ok());
        assert!(AmbientCycle { period_s: 0.0, ..a }.validate().is_err());
    }

    #[test]
    fn events_are_validated_for_their_machine() {
        let e = OperatingEvent {
            at_s: 60.0,
            kind: OperatingKind::FlowSetpoint { m3_h: 150.0 },
        };
        assert!(e.validate(MachineKind::Pump).is_ok());
        let msg = e.validate(MachineKind::Motor).unwrap_err().to_string();
        assert!(msg.contains("only for a pump"), "{msg}");
        let band = OperatingEvent {
            at_s: 1.0,
            kind: OperatingKind::PressureBand {
                cut_in_bar: 7.0,
                cut_out_bar: 7.1,
            },
        };
        assert!(band.validate(MachineKind::Compressor).is_err());
        let load = OperatingEvent {
            at_s: -1.0,
            kind: OperatingKind::Load { to: 0.5 },
        };
        assert!(load.validate(MachineKind::Motor).is_err());
    }
}
