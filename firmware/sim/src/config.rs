//! Public configuration types of the simulator and their text forms (CLI flags, TOML file).
//!
//! Pure parsing and validation; no I/O except [`SimFile::load`], which reads one file. The
//! operating events and the ambient cycle are defined in `operation.rs`. Over 600 lines only
//! because of its tests.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::operation::{AmbientCycle, OperatingEvent};

/// Errors in simulator configuration text, naming what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unknown machine kind.
    #[error("unknown machine kind `{0}` (expected pump, motor or compressor)")]
    MachineKind(String),
    /// Unknown fault kind.
    #[error("unknown fault kind `{0}` (expected bearing_wear, cavitation, overheating, stuck_sensor, dropout, leak or no_response)")]
    FaultKind(String),
    /// A `--machine` spec that does not parse.
    #[error("bad machine spec `{spec}`: {why} (expected KIND:NAME@HOST:PORT[/UNIT], e.g. pump:P-101@127.0.0.1:5020/1)")]
    MachineSpec {
        /// The spec text.
        spec: String,
        /// What was wrong.
        why: String,
    },
    /// A `--fault` spec that does not parse.
    #[error("bad fault spec `{spec}`: {why} (expected NAME:KIND:ONSET_S[:RAMP_S], e.g. P-101:bearing_wear:30:120)")]
    FaultSpec {
        /// The spec text.
        spec: String,
        /// What was wrong.
        why: String,
    },
    /// A fault names a machine that is not configured.
    #[error("fault `{0}` names machine `{1}`, which is not configured")]
    UnknownMachine(String, String),
    /// Two machines share a name.
    #[error("machine name `{0}` is used twice")]
    DuplicateName(String),
    /// A numeric value out of range.
    #[error("{what} = {value} is out of range ({range})")]
    Range {
        /// Which value.
        what: String,
        /// The value.
        value: f64,
        /// The accepted range.
        range: &'static str,
    },
    /// The TOML file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML file does not parse or has unknown fields.
    #[error("{path}: {message}")]
    Toml {
        /// File path.
        path: String,
        /// Parser message (with line and column).
        message: String,
    },
}

/// Kind of simulated machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineKind {
    /// Centrifugal pump with its motor (1485 rpm, 6-vane impeller).
    Pump,
    /// Induction motor (4-pole, 75 kW).
    Motor,
    /// Screw air compressor with load/unload control.
    Compressor,
}

impl MachineKind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineKind::Pump => "pump",
            MachineKind::Motor => "motor",
            MachineKind::Compressor => "compressor",
        }
    }

    /// All kinds.
    pub const ALL: [MachineKind; 3] = [
        MachineKind::Pump,
        MachineKind::Motor,
        MachineKind::Compressor,
    ];
}

impl fmt::Display for MachineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MachineKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pump" => Ok(MachineKind::Pump),
            "motor" => Ok(MachineKind::Motor),
            "compressor" => Ok(MachineKind::Compressor),
            other => Err(ConfigError::MachineKind(other.to_owned())),
        }
    }
}

/// Kind of injectable fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Rolling-bearing outer-race wear: defect-frequency impacts, higher 1× vibration, kurtosis
    /// and bearing temperature rise.
    BearingWear,
    /// Pump cavitation: discharge-pressure fluctuation, flow and suction-pressure drop,
    /// broadband vibration with spikes (compressor/motor: broadband vibration only).
    Cavitation,
    /// Overheating: bearing temperature (all), winding temperature (motor), discharge
    /// temperature (compressor) rise.
    Overheating,
    /// The temperature sensor and loop channel 0 freeze at their value at onset.
    StuckSensor,
    /// Loop channel 0 intermittently reads 0 mA (wire break), more often as it progresses.
    Dropout,
    /// Leak: discharge pressure drops (pump, compressor); no effect on a motor.
    Leak,
    /// The Modbus device stops answering (requests are accepted and never answered).
    NoResponse,
}

impl FaultKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::BearingWear => "bearing_wear",
            FaultKind::Cavitation => "cavitation",
            FaultKind::Overheating => "overheating",
            FaultKind::StuckSensor => "stuck_sensor",
            FaultKind::Dropout => "dropout",
            FaultKind::Leak => "leak",
            FaultKind::NoResponse => "no_response",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "bearing_wear" => FaultKind::BearingWear,
            "cavitation" => FaultKind::Cavitation,
            "overheating" => FaultKind::Overheating,
            "stuck_sensor" => FaultKind::StuckSensor,
            "dropout" => FaultKind::Dropout,
            "leak" => FaultKind::Leak,
            "no_response" => FaultKind::NoResponse,
            other => return Err(ConfigError::FaultKind(other.to_owned())),
        })
    }
}

/// A fault with onset and progression, in simulated seconds since the machine started.
///
/// Severity is 0 before `onset_s`, rises linearly to 1 over `ramp_s` (a step when `ramp_s` is
/// 0) and stays at 1.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What fails.
    pub kind: FaultKind,
    /// Simulated seconds after start at which it begins.
    pub onset_s: f64,
    /// Simulated seconds from onset to full severity.
    #[serde(default)]
    pub ramp_s: f64,
}

impl Fault {
    /// Severity in [0, 1] at simulated time `t_s`.
    pub fn severity(&self, t_s: f64) -> f64 {
        if t_s < self.onset_s {
            0.0
        } else if self.ramp_s <= 0.0 {
            1.0
        } else {
            ((t_s - self.onset_s) / self.ramp_s).clamp(0.0, 1.0)
        }
    }

    /// Checks onset and ramp are finite and not negative.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (what, v) in [("onset_s", self.onset_s), ("ramp_s", self.ramp_s)] {
            if !v.is_finite() || v < 0.0 {
                return Err(ConfigError::Range {
                    what: format!("{} {what}", self.kind),
                    value: v,
                    range: "finite, >= 0",
                });
            }
        }
        Ok(())
    }
}

/// Configuration of one simulated machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineConfig {
    /// Machine kind.
    pub kind: MachineKind,
    /// Asset name (e.g. "P-101").
    pub name: String,
    /// Modbus unit id the server answers to (it also answers 0 and 255).
    pub unit_id: u8,
    /// Random seed: the same seed gives the same signals.
    pub seed: u64,
    /// Faults scheduled from the start.
    pub faults: Vec<Fault>,
    /// Simulated seconds per real second (1 = real time, 60 = one minute per second).
    pub time_scale: f64,
    /// Scheduled operating events (load steps, stop/start, setpoints); none by default.
    pub events: Vec<OperatingEvent>,
    /// Daily ambient temperature cycle (None: constant 25 °C).
    pub ambient: Option<AmbientCycle>,
}

impl MachineConfig {
    /// A healthy machine at real-time speed.
    pub fn new(kind: MachineKind, name: impl Into<String>, unit_id: u8) -> Self {
        Self {
            kind,
            name: name.into(),
            unit_id,
            seed: 1,
            faults: Vec::new(),
            time_scale: 1.0,
            events: Vec::new(),
            ambient: None,
        }
    }

    /// Checks time scale, faults, operating events and the ambient cycle.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.time_scale.is_finite() || self.time_scale <= 0.0 || self.time_scale > 10_000.0 {
            return Err(ConfigError::Range {
                what: format!("{} time_scale", self.name),
                value: self.time_scale,
                range: "0 < time_scale <= 10000",
            });
        }
        self.faults.iter().try_for_each(Fault::validate)?;
        self.events.iter().try_for_each(|e| e.validate(self.kind))?;
        self.ambient.as_ref().map_or(Ok(()), AmbientCycle::validate)
    }
}

/// A parsed `--machine KIND:NAME@HOST:PORT[/UNIT]` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSpec {
    /// Kind.
    pub kind: MachineKind,
    /// Name.
    pub name: String,
    /// Listen address.
    pub addr: SocketAddr,
    /// Unit id (default 1).
    pub unit_id: u8,
}

impl FromStr for MachineSpec {
    type Err = ConfigError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ConfigError::MachineSpec {
            spec: spec.to_owned(),
            why: why.to_owned(),
        };
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| bad("missing `:` after the kind"))?;
        let kind = kind
            .parse::<MachineKind>()
            .map_err(|e| bad(&e.to_string()))?;
        let (name, rest) = rest
            .split_once('@')
            .ok_or_else(|| bad("missing `@` before the address"))?;
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        let (addr, unit) = match rest.rsplit_once('/') {
            Some((a, u)) => (
                a,
                u.parse::<u8>()
                    .map_err(|_| bad(&format!("unit `{u}` is not 0..=255")))?,
            ),
            None => (rest, 1),
        };
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|_| bad(&format!("`{addr}` is not HOST:PORT")))?;
        Ok(MachineSpec {
            kind,
            name: name.to_owned(),
            addr,
            unit_id: unit,
        })
    }
}

/// A parsed `--fault NAME:KIND:ONSET_S[:RAMP_S]` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Machine name.
    pub machine: String,
    /// The fault.
    pub fault: Fault,
}

impl FromStr for FaultSpec {
    type Err = ConfigError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| ConfigError::FaultSpec {
            spec: spec.to_owned(),
            why,
        };
        let parts: Vec<&str> = spec.split(':').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(bad(format!("{} fields", parts.len())));
        }
        let kind = parts[1]
            .parse::<FaultKind>()
            .map_err(|e| bad(e.to_string()))?;
        let num = |s: &str, what: &str| {
            s.parse::<f64>()
                .map_err(|_| bad(format!("{what} `{s}` is not a number")))
        };
        let onset_s = num(parts[2], "onset")?;
        let ramp_s = match parts.get(3) {
            Some(r) => num(r, "ramp")?,
            None => 0.0,
        };
        let fault = Fault {
            kind,
            onset_s,
            ramp_s,
        };
        fault.validate().map_err(|e| bad(e.to_string()))?;
        Ok(FaultSpec {
            machine: parts[0].to_owned(),
            fault,
        })
    }
}

/// One machine in a TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMachine {
    /// Kind.
    pub kind: MachineKind,
    /// Name.
    pub name: String,
    /// Listen address, e.g. "127.0.0.1:5020".
    pub listen: SocketAddr,
    /// Unit id (default 1).
    #[serde(default = "one")]
    pub unit_id: u8,
    /// Seed (default: derived from the position in the file).
    pub seed: Option<u64>,
    /// Faults.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// Operating events (`[[machine.event]]`).
    #[serde(default, rename = "event")]
    pub events: Vec<OperatingEvent>,
    /// This machine's ambient cycle (default: the file's `[ambient]`).
    #[serde(default)]
    pub ambient: Option<AmbientCycle>,
}

fn one() -> u8 {
    1
}

fn default_speed() -> f64 {
    1.0
}

/// The simulator's TOML file:
///
/// ```toml
/// speed = 60.0
/// [[machine]]
/// kind = "pump"
/// name = "P-101"
/// listen = "127.0.0.1:5020"
/// unit_id = 1
/// [[machine.fault]]
/// kind = "bearing_wear"
/// onset_s = 30
/// ramp_s = 120
/// [[machine.event]]
/// at_s = 3600
/// kind = "load"        # load (to), stop, start, flow_setpoint (m3_h),
/// to = 0.6             # speed_setpoint (rpm), pressure_band (cut_in_bar, cut_out_bar)
/// ```
///
/// and optionally a plant-wide `[ambient]` cycle (`mean_c`, `amplitude_c`, `period_s`,
/// `coldest_at_s`), which a machine's own `ambient` overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFile {
    /// Time scale for every machine (default 1).
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// Ambient cycle of every machine without its own (default: constant 25 °C).
    #[serde(default)]
    pub ambient: Option<AmbientCycle>,
    /// Machines.
    #[serde(default, rename = "machine")]
    pub machines: Vec<FileMachine>,
}

impl SimFile {
    /// Parses TOML text; `path` is used in error messages.
    pub fn parse(text: &str, path: &str) -> Result<SimFile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<SimFile, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    /// The machines as (listen address, config), validated.
    pub fn machines(&self) -> Result<Vec<(SocketAddr, MachineConfig)>, ConfigError> {
        let mut out: Vec<(SocketAddr, MachineConfig)> = Vec::new();
        for (i, m) in self.machines.iter().enumerate() {
            if out.iter().any(|(_, c)| c.name == m.name) {
                return Err(ConfigError::DuplicateName(m.name.clone()));
            }
            let cfg = MachineConfig {
                kind: m.kind,
                name: m.name.clone(),
                unit_id: m.unit_id,
                seed: m.seed.unwrap_or(i as u64 + 1),
                faults: m.faults.clone(),
                time_scale: self.speed,
                events: m.events.clone(),
                ambient: m.ambient.or(self.ambient),
            };
            cfg.validate()?;
            out.push((m.listen, cfg));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for k in MachineKind::ALL {
            assert_eq!(k.as_str().parse::<MachineKind>().unwrap(), k);
        }
        assert!(
            matches!("Pump".parse::<MachineKind>(), Err(ConfigError::MachineKind(s)) if s == "Pump")
        );
        for f in [
            "bearing_wear",
            "cavitation",
            "overheating",
            "stuck_sensor",
            "dropout",
            "leak",
            "no_response",
        ] {
            assert_eq!(f.parse::<FaultKind>().unwrap().as_str(), f);
        }
        assert!("bearingwear".parse::<FaultKind>().is_err());
    }

    #[test]
    fn specs_parse_with_clear_errors() {
        let m: MachineSpec = "pump:P-101@127.0.0.1:5020".parse().unwrap();
        assert_eq!(
            (m.kind, m.name.as_str(), m.addr.port(), m.unit_id),
            (MachineKind::Pump, "P-101", 5020, 1)
        );
        let m: MachineSpec = "motor:M-1@127.0.0.1:0/7".parse().unwrap();
        assert_eq!(m.unit_id, 7);
        let e = "fan:F@127.0.0.1:1"
            .parse::<MachineSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fan:F@127.0.0.1:1") && e.contains("unknown machine kind `fan`"),
            "{e}"
        );
        let e = "pump:P@localhost"
            .parse::<MachineSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("`localhost` is not HOST:PORT"), "{e}");
        let f: FaultSpec = "P-101:bearing_wear:30:120".parse().unwrap();
        assert_eq!(
            f.fault,
            Fault {
                kind: FaultKind::BearingWear,
                onset_s: 30.0,
                ramp_s: 120.0
            }
        );
        let f: FaultSpec = "P-101:leak:5".parse().unwrap();
        assert_eq!(f.fault.ramp_s, 0.0);
        let e = "P-101:leak:soon"
            .parse::<FaultSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("onset `soon` is not a number"), "{e}");
        assert!("P-101:leak:-3".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn severity_ramps() {
        let f = Fault {
            kind: FaultKind::Leak,
            onset_s: 10.0,
            ramp_s: 20.0,
        };
        assert_eq!(f.severity(5.0), 0.0);
        assert_eq!(f.severity(20.0), 0.5);
        assert_eq!(f.severity(100.0), 1.0);
        let step = Fault { ramp_s: 0.0, ..f };
        assert_eq!(step.severity(10.0), 1.0);
    }

    #[test]
    fn toml_file() {
        let text = r#"
speed = 60.0
[[machine]]
kind = "pump"
name = "P-101"
listen = "127.0.0.1:5020"
[[machine.fault]]
kind = "bearing_wear"
onset_s = 30
ramp_s = 120
[[machine]]
kind = "compressor"
name = "C-1"
listen = "127.0.0.1:5021"
unit_id = 3
"#;
        let f = SimFile::parse(text, "sim.toml").unwrap();
        let m = f.machines().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].1.faults[0].kind, FaultKind::BearingWear);
        assert_eq!(m[1].1.unit_id, 3);
        assert_eq!(m[1].1.time_scale, 60.0);
        assert!(m[0].1.events.is_empty() && m[0].1.ambient.is_none());
        let e = SimFile::parse("[[machine]]\nkind = \"pump\"\nnmae = \"x\"\n", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad.toml:") && e.contains("nmae"), "{e}");
        let ops = r#"
[ambient]
mean_c = 26
amplitude_c = 6
[[machine]]
kind = "pump"
name = "P"
listen = "127.0.0.1:1"
[[machine.event]]
at_s = 3600
kind = "flow_setpoint"
m3_h = 150
[[machine.event]]
at_s = 7200
kind = "stop"
"#;
        let m = SimFile::parse(ops, "ops.toml").unwrap().machines().unwrap();
        assert_eq!(
            m[0].1.events[0].kind,
            crate::operation::OperatingKind::FlowSetpoint { m3_h: 150.0 }
        );
        assert_eq!(m[0].1.ambient.map(|a| a.period_s), Some(86_400.0));
        let e = SimFile::parse(
            "[[machine]]\nkind='motor'\nname='M'\nlisten='127.0.0.1:1'\n[[machine.event]]\nat_s=1\nkind='flow_setpoint'\nm3_h=100\n",
            "m.toml",
        )
        .unwrap()
        .machines()
        .unwrap_err()
        .to_string();
        assert!(e.contains("only for a pump"), "{e}");
        let e = SimFile::parse(
            "[[machine]]\nkind='motor'\nname='M'\nlisten='127.0.0.1:1'\n[[machine.event]]\nat_s=1\nkind='load'\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs `to`"), "{e}");
        let dup = "[[machine]]\nkind='pump'\nname='A'\nlisten='127.0.0.1:1'\n[[machine]]\nkind='motor'\nname='A'\nlisten='127.0.0.1:2'\n";
        assert!(
            matches!(SimFile::parse(dup, "d").unwrap().machines(), Err(ConfigError::DuplicateName(n)) if n == "A")
        );
    }
}
