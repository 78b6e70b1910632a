//! Machine models: process state (speed, load, flow, pressure), temperatures with first-order
//! thermal lag, vibration synthesised from a spectrum (running-speed harmonics, vane/lobe pass,
//! bearing-defect impacts, broadband noise), the normal operating changes of `operation.rs`
//! (load steps, stop/run-down and restart ramp, setpoints, ambient cycle) and the effect of each
//! fault as it progresses. Without operating events and ambient cycle a machine behaves as it
//! did before they existed (the same random load changes at a constant 25 °C). Over 600 lines
//! only because of its tests (the model itself is about 430).
//!
//! Pure and deterministic for a given seed: no I/O, no clock (time is passed in), no panics.

use crate::config::{Fault, FaultKind, MachineKind};
use crate::map::loop_channels;
use crate::operation::Operation;
use millwright_core::rng::SplitMix64;

/// Standard gravity, m/s².
pub const G: f64 = 9.806_65;
/// ADXL345 full-resolution scale, m/s² per code.
pub const ACCEL_M_S2_PER_CODE: f64 = 0.0039 * G;
/// Largest physics step, s.
const MAX_STEP_S: f64 = 0.5;
/// Restart: seconds from standstill to full speed.
const START_RAMP_S: f64 = 15.0;
/// Run-down after a stop: time constant of the speed decay, s.
const RUN_DOWN_TAU_S: f64 = 8.0;

/// The simulator's random source: the workspace's [`SplitMix64`] (seed scrambled with its
/// increment) plus the simulator's own uniform and Gaussian conventions, kept here so every
/// simulated series stays exactly what it was.
#[derive(Debug, Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed ^ SplitMix64::GAMMA))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.next_f64()
    }

    /// Standard normal (Box–Muller on [0, 1) draws, the first clamped away from 0).
    pub fn gauss(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// One sinusoidal vibration component.
#[derive(Debug, Clone, Copy)]
struct Tone {
    /// Frequency, Hz.
    f_hz: f64,
    /// Peak acceleration per axis (x radial-horizontal, y radial-vertical, z axial), m/s².
    amp: [f64; 3],
    /// Phase per axis, rad.
    phase: [f64; 3],
}

/// The process and thermal state of one machine.
#[derive(Debug, Clone)]
pub struct Plant {
    kind: MachineKind,
    faults: Vec<Fault>,
    rng: Rng,
    t_s: f64,
    load: f64,
    load_target: f64,
    next_load_change_s: f64,
    /// Compressor receiver pressure, bar.
    receiver_bar: f64,
    /// Compressor loaded (true) or unloaded.
    loaded: bool,
    /// Compressor air demand as a fraction of capacity.
    demand: f64,
    bearing_c: f64,
    /// Motor winding or compressor discharge temperature, °C.
    aux_c: f64,
    ambient_c: f64,
    phases: [f64; 3],
    frozen_temp_code: Option<i16>,
    frozen_loop0_ma: Option<f64>,
    /// Operating schedule and its current state.
    op: Operation,
    /// Rotating speed as a fraction of the running speed (0 at standstill, 1 running).
    run_frac: f64,
}

/// Sensor-level values at one instant, as the simulated devices present them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurements {
    /// Bearing temperature seen by the TMP117, °C.
    pub temp_c: f64,
    /// Loop currents, mA (0 for a broken loop).
    pub loops_ma: [f64; 4],
    /// The TMP117 result code is frozen at this value (stuck sensor), if set.
    pub frozen_temp_code: Option<i16>,
    /// Loop 0 is frozen (stuck transmitter): the ADC reads it without noise.
    pub frozen_loop0: bool,
}

impl Plant {
    /// A plant at steady state at time 0, without operating events, at a constant 25 °C.
    pub fn new(kind: MachineKind, seed: u64, faults: Vec<Fault>) -> Self {
        Self::with_operation(kind, seed, faults, Operation::new(&[], None))
    }

    /// A plant at steady state at time 0 following the operating schedule `op`.
    pub fn with_operation(kind: MachineKind, seed: u64, faults: Vec<Fault>, op: Operation) -> Self {
        let mut rng = Rng::new(seed);
        let load = 0.75 + 0.1 * rng.uniform();
        let phases = [
            rng.uniform() * std::f64::consts::TAU,
            rng.uniform() * std::f64::consts::TAU,
            rng.uniform() * std::f64::consts::TAU,
        ];
        let mut p = Plant {
            kind,
            faults,
            rng,
            t_s: 0.0,
            load,
            load_target: load,
            next_load_change_s: 60.0,
            receiver_bar: 7.0,
            loaded: true,
            demand: 0.6,
            bearing_c: 0.0,
            aux_c: 0.0,
            ambient_c: 25.0,
            phases,
            frozen_temp_code: None,
            frozen_loop0_ma: None,
            op,
            run_frac: 1.0,
        };
        p.op.apply_due(0.0);
        if !p.op.running {
            p.run_frac = 0.0;
        }
        p.ambient_c = p.op.ambient_c(0.0);
        p.bearing_c = p.bearing_target_c();
        p.aux_c = p.aux_target_c();
        p
    }

    /// Machine kind.
    pub fn kind(&self) -> MachineKind {
        self.kind
    }

    /// Current simulated time, s.
    pub fn time_s(&self) -> f64 {
        self.t_s
    }

    /// Adds a fault.
    pub fn inject(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Severity of the strongest fault of `kind` at the current time.
    pub fn severity(&self, kind: FaultKind) -> f64 {
        self.faults
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.severity(self.t_s))
            .fold(0.0, f64::max)
    }

    /// Running speed, rpm (0 at standstill).
    pub fn speed_rpm(&self) -> f64 {
        self.run_frac
            * match self.kind {
                MachineKind::Pump => 1485.0 - 10.0 * self.load,
                MachineKind::Motor => self.motor_sync_rpm() - 20.0 * self.load,
                MachineKind::Compressor => 2970.0,
            }
    }

    /// Motor synchronous speed: the drive's setpoint, or 1500 rpm on the mains.
    fn motor_sync_rpm(&self) -> f64 {
        self.op.speed_setpoint.unwrap_or(1500.0)
    }

    /// Speed relative to the nominal running speed (0 at standstill, 1 at nominal).
    fn rel_speed(&self) -> f64 {
        match self.kind {
            MachineKind::Motor => self.run_frac * self.motor_sync_rpm() / 1500.0,
            _ => self.run_frac,
        }
    }

    /// Ambient temperature now, °C.
    pub fn ambient_c(&self) -> f64 {
        self.ambient_c
    }

    /// Whether the machine is switched on (it may still be ramping up or running down).
    pub fn running(&self) -> bool {
        self.op.running
    }

    fn bearing_target_c(&self) -> f64 {
        let heat = match self.kind {
            MachineKind::Pump => 12.0 + 18.0 * self.load,
            MachineKind::Motor => 10.0 + 20.0 * self.load,
            MachineKind::Compressor => 20.0 + if self.loaded { 15.0 } else { 8.0 },
        };
        self.ambient_c
            + self.run_frac
                * (heat
                    + 25.0 * self.severity(FaultKind::BearingWear)
                    + 30.0 * self.severity(FaultKind::Overheating))
    }

    fn aux_target_c(&self) -> f64 {
        let hot = self.severity(FaultKind::Overheating);
        match self.kind {
            MachineKind::Pump => self.ambient_c,
            MachineKind::Motor => {
                self.ambient_c + self.run_frac * (15.0 + 70.0 * self.load * self.load + 60.0 * hot)
            }
            MachineKind::Compressor => {
                self.ambient_c
                    + self.run_frac * ((if self.loaded { 57.0 } else { 43.0 }) + 40.0 * hot)
            }
        }
    }

    /// Nominal load level and the spread of the random load changes around it.
    fn load_base_spread(&self) -> (f64, f64) {
        let (base, spread) = match self.kind {
            MachineKind::Pump => (0.8, 0.4),
            MachineKind::Motor => (0.725, 0.45),
            MachineKind::Compressor => (0.6, 0.3),
        };
        (self.op.load_base.unwrap_or(base), spread)
    }

    /// Advances the plant to simulated time `t_s` (no-op if not later than now).
    pub fn advance_to(&mut self, t_s: f64) {
        while self.t_s < t_s {
            let dt = (t_s - self.t_s).min(MAX_STEP_S);
            self.step(dt);
        }
    }

    fn step(&mut self, dt: f64) {
        self.t_s += dt;
        // Operating events; a load step retargets at once.
        let base_before = self.op.load_base;
        if self.op.apply_due(self.t_s) && self.op.load_base != base_before {
            self.next_load_change_s = self.t_s;
        }
        self.ambient_c = self.op.ambient_c(self.t_s);
        // Speed: linear ramp up on a start, exponential run-down after a stop.
        if self.op.running {
            self.run_frac = (self.run_frac + dt / START_RAMP_S).min(1.0);
        } else {
            self.run_frac *= (-dt / RUN_DOWN_TAU_S).exp();
            if self.run_frac < 0.005 {
                self.run_frac = 0.0;
            }
        }
        // Load: slow random changes of operating point around its level.
        if self.t_s >= self.next_load_change_s {
            let (base, spread) = self.load_base_spread();
            self.load_target = match self.kind {
                MachineKind::Pump | MachineKind::Motor => {
                    base + spread * (self.rng.uniform() - 0.5)
                }
                MachineKind::Compressor => 0.0,
            };
            let u = self.rng.uniform();
            self.demand = if self.kind == MachineKind::Compressor {
                base + spread * (u - 0.5)
            } else {
                0.45 + 0.3 * u
            };
            self.next_load_change_s = self.t_s + 60.0 + 240.0 * self.rng.uniform();
        }
        if let (MachineKind::Pump, Some(q)) = (self.kind, self.op.flow_setpoint) {
            self.load_target = q / 180.0;
        }
        if self.kind != MachineKind::Compressor {
            self.load += (self.load_target - self.load) * (1.0 - (-dt / 20.0).exp());
        }
        // Compressor receiver: load/unload between the cut-in and cut-out pressures.
        if self.kind == MachineKind::Compressor {
            // Consumption (and leakage) flow rises with pressure; a full leak alone is as large
            // as the nominal demand, so the receiver settles well below the 6.5 bar cut-in.
            let demand =
                (self.demand + 1.0 * self.severity(FaultKind::Leak)) * self.receiver_bar / 7.0;
            let supply = if self.loaded { self.run_frac } else { 0.0 };
            self.receiver_bar = (self.receiver_bar + 0.08 * (supply - demand) * dt).clamp(0.0, 9.0);
            let (cut_in, cut_out) = self.op.band;
            if self.receiver_bar >= cut_out {
                self.loaded = false;
            } else if self.receiver_bar <= cut_in {
                self.loaded = true;
            }
            self.load = if self.loaded { 1.0 } else { 0.3 };
        }
        // Thermal lag.
        let tau_bearing = 300.0;
        let tau_aux = if self.kind == MachineKind::Motor {
            600.0
        } else {
            90.0
        };
        self.bearing_c +=
            (self.bearing_target_c() - self.bearing_c) * (1.0 - (-dt / tau_bearing).exp());
        self.aux_c += (self.aux_target_c() - self.aux_c) * (1.0 - (-dt / tau_aux).exp());
    }

    /// Process values in engineering units for the four loop channels (before noise).
    fn process_values(&mut self) -> [f64; 4] {
        let cav = self.severity(FaultKind::Cavitation);
        let leak = self.severity(FaultKind::Leak);
        match self.kind {
            MachineKind::Pump => {
                // Affinity laws: flow ∝ speed, head ∝ speed² (the same curve at full speed).
                let n = self.rel_speed();
                let cav = cav * n;
                let q_nom = 180.0;
                let q = q_nom * self.load * n * (1.0 - 0.15 * cav) * (1.0 + 0.1 * leak);
                let head_m = (80.0 * (n * n - 0.35 * (q / q_nom).powi(2))).max(0.0);
                let suction = 1.5 - 1.0 * cav;
                let mut discharge = suction + 1000.0 * G * head_m / 1e5;
                discharge *= 1.0 - 0.35 * leak;
                discharge *= 1.0 + 0.12 * cav * self.rng.gauss();
                let hydraulic_kw = q / 3600.0 * 1000.0 * G * head_m / 1000.0;
                let current = 90.0 * (0.3 * n + 0.7 * (hydraulic_kw / 40.0).min(1.3));
                [discharge, q, suction, current]
            }
            MachineKind::Motor => {
                let n = self.rel_speed();
                let current = 140.0 * (0.3 * self.run_frac + 0.7 * self.load * n);
                [current, self.speed_rpm(), self.aux_c, 75.0 * self.load * n]
            }
            MachineKind::Compressor => {
                let p = self.receiver_bar * (1.0 + 0.05 * cav * self.rng.gauss());
                let current = self.run_frac * if self.loaded { 92.0 } else { 38.0 };
                let oil = self.run_frac * if self.loaded { 3.6 } else { 2.6 };
                [p, self.aux_c, current, oil]
            }
        }
    }

    /// Sensor-level values now, with transmitter noise and sensor faults applied.
    pub fn measure(&mut self) -> Measurements {
        let values = self.process_values();
        let chans = loop_channels(self.kind);
        let mut loops_ma = [0.0; 4];
        for (i, (v, c)) in values.iter().zip(chans.iter()).enumerate() {
            let span = f64::from(c.hi - c.lo);
            let ma = 4.0 + 16.0 * (v - f64::from(c.lo)) / span + 0.004 * self.rng.gauss();
            loops_ma[i] = ma.clamp(3.8, 20.5); // NE43 transmitter saturation
        }
        let temp_c = self.bearing_c + 0.01 * self.rng.gauss();
        // Stuck sensor: freeze temperature code and loop 0 at onset.
        if self.severity(FaultKind::StuckSensor) > 0.0 {
            let code = (temp_c * 128.0).round() as i16;
            let frozen = *self.frozen_temp_code.get_or_insert(code);
            self.frozen_temp_code = Some(frozen);
            let l0 = *self.frozen_loop0_ma.get_or_insert(loops_ma[0]);
            loops_ma[0] = l0;
        }
        let drop = self.severity(FaultKind::Dropout);
        if drop > 0.0 && self.rng.uniform() < drop.max(0.2) {
            loops_ma[0] = 0.0; // wire break
        }
        Measurements {
            temp_c,
            loops_ma,
            frozen_temp_code: self.frozen_temp_code,
            frozen_loop0: self.frozen_loop0_ma.is_some(),
        }
    }

    fn tones(&mut self) -> (Vec<Tone>, f64) {
        // Standstill: no tones (amplitudes ∝ speed²), a floor keeps the frequencies finite.
        let f1 = (self.speed_rpm() / 60.0).max(0.1);
        let n2 = self.rel_speed().powi(2);
        let wear = self.severity(FaultKind::BearingWear) * self.run_frac;
        let cav = self.severity(FaultKind::Cavitation) * self.run_frac;
        let line_hz = 100.0 * self.rel_speed().max(0.01) / self.run_frac.max(0.01);
        // (multiple of 1X, velocity mm/s RMS, axis weights)
        let mut comps: Vec<(f64, f64, [f64; 3])> = match self.kind {
            MachineKind::Pump => vec![
                (1.0, 1.1 * (0.8 + 0.4 * self.load), [1.0, 0.8, 0.4]),
                (2.0, 0.45, [0.7, 0.6, 0.5]),
                (6.0, 0.55 * (0.6 + 0.6 * self.load), [0.8, 0.6, 1.0]),
            ],
            MachineKind::Motor => vec![
                (1.0, 0.9 * (0.8 + 0.4 * self.load), [1.0, 0.9, 0.4]),
                (2.0, 0.35, [0.8, 0.7, 0.5]),
                (line_hz / f1, 0.3 * (0.5 + self.load), [0.6, 0.6, 0.3]), // 2 × line frequency
            ],
            MachineKind::Compressor => vec![
                (1.0, 1.3, [1.0, 0.8, 0.5]),
                (2.0, 0.6, [0.7, 0.7, 0.6]),
                (4.0, if self.loaded { 1.2 } else { 0.6 }, [0.8, 0.6, 1.0]),
            ],
        };
        if wear > 0.0 {
            comps[0].1 *= 1.0 + 1.0 * wear;
            let bpfo = 3.58;
            for h in 1..=3 {
                comps.push((
                    bpfo * f64::from(h),
                    2.0 * wear / f64::from(h),
                    [1.0, 0.9, 0.5],
                ));
            }
        }
        for c in comps.iter_mut() {
            c.1 *= n2;
        }
        let noise = 0.12 + 2.5 * cav;
        let tones = comps
            .into_iter()
            .enumerate()
            .map(|(i, (mult, v_rms_mm_s, w))| {
                let f = mult * f1;
                let a_peak =
                    v_rms_mm_s * 1e-3 * std::f64::consts::SQRT_2 * 2.0 * std::f64::consts::PI * f;
                let ph = |k: usize| self.phases[k] * (i as f64 + 1.0);
                Tone {
                    f_hz: f,
                    amp: [a_peak * w[0], a_peak * w[1], a_peak * w[2]],
                    phase: [ph(0), ph(1), ph(2)],
                }
            })
            .collect();
        (tones, noise)
    }

    /// Fills `out` with `out.len()` accelerometer samples (raw codes, full resolution, ±16 g)
    /// starting at the current time, `fs_hz` apart. Gravity is on the z axis.
    pub fn accel_window(&mut self, fs_hz: f64, out: &mut Vec<[i16; 3]>, n: usize) {
        out.clear();
        let (tones, noise) = self.tones();
        let wear = self.severity(FaultKind::BearingWear) * self.run_frac;
        let cav = self.severity(FaultKind::Cavitation) * self.run_frac;
        let f1 = (self.speed_rpm() / 60.0).max(0.1);
        let bpfo_period = 1.0 / (3.58 * f1);
        let t0 = self.t_s;
        let mut since_impact = self.rng.uniform() * bpfo_period;
        let mut ring = 0.0f64;
        for k in 0..n {
            let t = t0 + k as f64 / fs_hz;
            let mut a = [0.0f64, 0.0, G];
            for tone in &tones {
                let w = 2.0 * std::f64::consts::PI * tone.f_hz * t;
                for (ax, acc) in a.iter_mut().enumerate() {
                    *acc += tone.amp[ax] * (w + tone.phase[ax]).sin();
                }
            }
            // Bearing impacts: decaying 600 Hz ringing excited once per outer-race pass.
            since_impact += 1.0 / fs_hz;
            if wear > 0.0 && since_impact >= bpfo_period {
                since_impact -= bpfo_period;
                ring = 25.0 * wear * (0.7 + 0.6 * self.rng.uniform());
            }
            let r = ring * (2.0 * std::f64::consts::PI * 600.0 * t).sin();
            ring *= (-1.0 / (fs_hz * 0.003)).exp();
            // Cavitation: random bubble-collapse spikes.
            let spike = if cav > 0.0 && self.rng.uniform() < 0.004 * cav {
                30.0 * cav * (self.rng.uniform() - 0.5)
            } else {
                0.0
            };
            let mut s = [0i16; 3];
            for ax in 0..3 {
                let v = a[ax] + noise * self.rng.gauss() + if ax < 2 { r + spike } else { 0.3 * r };
                s[ax] = (v / ACCEL_M_S2_PER_CODE).round().clamp(-4096.0, 4095.0) as i16;
            }
            out.push(s);
        }
    }

    /// Bearing temperature without noise, °C (for tests and logs).
    pub fn bearing_temp_c(&self) -> f64 {
        self.bearing_c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms_velocity_mm_s(samples: &[[i16; 3]], fs: f64, axis: usize) -> f64 {
        let a: Vec<f64> = samples
            .iter()
            .map(|s| f64::from(s[axis]) * ACCEL_M_S2_PER_CODE)
            .collect();
        let m = a.iter().sum::<f64>() / a.len() as f64;
        let mut v = vec![0.0; a.len()];
        for k in 1..a.len() {
            v[k] = v[k - 1] + (a[k] + a[k - 1] - 2.0 * m) / (2.0 * fs);
        }
        let vm = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - vm).powi(2)).sum::<f64>() / v.len() as f64).sqrt() * 1000.0
    }

    #[test]
    fn healthy_machines_are_in_physical_ranges() {
        for kind in MachineKind::ALL {
            let mut p = Plant::new(kind, 3, vec![]);
            for t in 1..600 {
                p.advance_to(f64::from(t));
                let m = p.measure();
                assert!((20.0..90.0).contains(&m.temp_c), "{kind} temp {}", m.temp_c);
                for ma in m.loops_ma {
                    assert!((3.8..=20.5).contains(&ma), "{kind} loop {ma}");
                }
            }
            let mut w = Vec::new();
            p.accel_window(1600.0, &mut w, 1024);
            let v = rms_velocity_mm_s(&w, 1600.0, 0);
            assert!((0.5..4.5).contains(&v), "{kind} healthy velocity {v} mm/s");
            let gz = w.iter().map(|s| f64::from(s[2])).sum::<f64>() / 1024.0 * ACCEL_M_S2_PER_CODE;
            assert!((gz - G).abs() < 0.2, "gravity on z: {gz}");
        }
    }

    #[test]
    fn bearing_wear_raises_vibration_and_temperature() {
        let fault = Fault {
            kind: FaultKind::BearingWear,
            onset_s: 100.0,
            ramp_s: 100.0,
        };
        let mut p = Plant::new(MachineKind::Pump, 5, vec![fault]);
        let mut w = Vec::new();
        p.advance_to(90.0);
        let t0 = p.bearing_temp_c();
        p.accel_window(1600.0, &mut w, 1024);
        let v0 = rms_velocity_mm_s(&w, 1600.0, 0);
        p.advance_to(1500.0);
        p.accel_window(1600.0, &mut w, 1024);
        let v1 = rms_velocity_mm_s(&w, 1600.0, 0);
        assert!(v1 > 2.0 * v0, "{v0} -> {v1}");
        assert!(
            p.bearing_temp_c() > t0 + 15.0,
            "{t0} -> {}",
            p.bearing_temp_c()
        );
    }

    #[test]
    fn leak_drops_pressure_and_stuck_freezes() {
        for kind in [MachineKind::Pump, MachineKind::Compressor] {
            let mut healthy = Plant::new(kind, 9, vec![]);
            let mut leaking = Plant::new(
                kind,
                9,
                vec![Fault {
                    kind: FaultKind::Leak,
                    onset_s: 10.0,
                    ramp_s: 0.0,
                }],
            );
            let (mut a, mut b) = (0.0, 0.0);
            for t in 20..300 {
                healthy.advance_to(f64::from(t));
                leaking.advance_to(f64::from(t));
                a += healthy.measure().loops_ma[0];
                b += leaking.measure().loops_ma[0];
            }
            assert!(b < a * 0.85, "{kind}: leak {b} vs healthy {a}");
        }
        let mut p = Plant::new(
            MachineKind::Motor,
            1,
            vec![Fault {
                kind: FaultKind::StuckSensor,
                onset_s: 5.0,
                ramp_s: 0.0,
            }],
        );
        p.advance_to(6.0);
        let m1 = p.measure();
        p.advance_to(400.0);
        let m2 = p.measure();
        assert_eq!(m1.frozen_temp_code, m2.frozen_temp_code);
        assert!(m1.frozen_temp_code.is_some());
        assert_eq!(m1.loops_ma[0], m2.loops_ma[0]);
    }

    #[test]
    fn cavitation_makes_pressure_fluctuate_and_vibration_spiky() {
        let cav = Fault {
            kind: FaultKind::Cavitation,
            onset_s: 0.0,
            ramp_s: 0.0,
        };
        let mut ok = Plant::new(MachineKind::Pump, 11, vec![]);
        let mut bad = Plant::new(MachineKind::Pump, 11, vec![cav]);
        let spread = |p: &mut Plant| {
            let xs: Vec<f64> = (1..200)
                .map(|t| {
                    p.advance_to(f64::from(t));
                    p.measure().loops_ma[0]
                })
                .collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
        };
        let (s_ok, s_bad) = (spread(&mut ok), spread(&mut bad));
        assert!(s_bad > 5.0 * s_ok, "pressure spread {s_bad} vs {s_ok}");
        let (mut w_ok, mut w_bad) = (Vec::new(), Vec::new());
        ok.accel_window(1600.0, &mut w_ok, 1024);
        bad.accel_window(1600.0, &mut w_bad, 1024);
        let peak = |w: &[[i16; 3]]| w.iter().map(|s| s[0].unsigned_abs()).max().unwrap_or(0);
        assert!(
            peak(&w_bad) > 3 * peak(&w_ok),
            "peaks {} vs {}",
            peak(&w_bad),
            peak(&w_ok)
        );
        let suction_ok = ok.measure().loops_ma[2];
        let suction_bad = bad.measure().loops_ma[2];
        assert!(
            suction_bad < suction_ok - 1.0,
            "suction {suction_bad} vs {suction_ok}"
        );
    }

    #[test]
    fn compressor_overheating_raises_discharge_temperature() {
        let hot = Fault {
            kind: FaultKind::Overheating,
            onset_s: 0.0,
            ramp_s: 100.0,
        };
        let mut ok = Plant::new(MachineKind::Compressor, 2, vec![]);
        let mut bad = Plant::new(MachineKind::Compressor, 2, vec![hot]);
        ok.advance_to(900.0);
        bad.advance_to(900.0);
        let (a, b) = (ok.measure().loops_ma[1], bad.measure().loops_ma[1]);
        // 40 °C on a 0..200 °C span is 3.2 mA.
        assert!(b > a + 2.5, "discharge temperature loop {b} mA vs {a} mA");
    }

    fn ev(at_s: f64, kind: crate::operation::OperatingKind) -> crate::operation::OperatingEvent {
        crate::operation::OperatingEvent { at_s, kind }
    }

    #[test]
    fn stop_runs_down_and_cools_and_start_ramps_back() {
        use crate::operation::OperatingKind as K;
        for kind in MachineKind::ALL {
            let op = Operation::new(&[ev(600.0, K::Stop), ev(2400.0, K::Start)], None);
            let mut p = Plant::with_operation(kind, 4, vec![], op);
            p.advance_to(590.0);
            let mut w = Vec::new();
            p.accel_window(1600.0, &mut w, 1024);
            let v_run = rms_velocity_mm_s(&w, 1600.0, 0);
            let running = p.measure();
            let hot = p.bearing_temp_c();
            p.advance_to(700.0);
            assert_eq!(p.speed_rpm(), 0.0, "{kind}");
            let stopped = p.measure();
            // The current channel of each kind reads ~0 A.
            let ci = match kind {
                MachineKind::Pump => 3,
                MachineKind::Motor => 0,
                MachineKind::Compressor => 2,
            };
            assert!(stopped.loops_ma[ci] < 4.1, "{kind} current {stopped:?}");
            assert!(running.loops_ma[ci] > 6.0, "{kind} current {running:?}");
            p.advance_to(2390.0);
            assert!(
                p.bearing_temp_c() < hot - 5.0,
                "{kind} cools: {hot} -> {}",
                p.bearing_temp_c()
            );
            p.accel_window(1600.0, &mut w, 1024);
            // Only the broadband sensor noise is left.
            let v = rms_velocity_mm_s(&w, 1600.0, 0);
            assert!(
                v < 0.5 * v_run,
                "{kind} still at standstill: {v} vs {v_run} mm/s"
            );
            p.advance_to(2420.0);
            assert!(
                p.speed_rpm() > 1400.0,
                "{kind} back at speed: {}",
                p.speed_rpm()
            );
            assert!(p.measure().loops_ma[ci] > 6.0, "{kind} current back");
        }
    }

    #[test]
    fn setpoints_and_load_steps_move_the_operating_point() {
        use crate::operation::OperatingKind as K;
        let op = Operation::new(&[ev(100.0, K::FlowSetpoint { m3_h: 110.0 })], None);
        let mut pump = Plant::with_operation(MachineKind::Pump, 2, vec![], op);
        pump.advance_to(400.0);
        let q = 4.0 + 16.0 * 110.0 / 250.0;
        let flows: Vec<f64> = (0..50)
            .map(|i| {
                pump.advance_to(400.0 + f64::from(i) * 30.0);
                pump.measure().loops_ma[1]
            })
            .collect();
        assert!(
            flows.iter().all(|f| (f - q).abs() < 0.1),
            "flow held at setpoint: {flows:?}"
        );

        let op = Operation::new(&[ev(100.0, K::SpeedSetpoint { rpm: 1200.0 })], None);
        let mut motor = Plant::with_operation(MachineKind::Motor, 2, vec![], op);
        motor.advance_to(200.0);
        assert!(
            (1150.0..1200.0).contains(&motor.speed_rpm()),
            "{}",
            motor.speed_rpm()
        );

        let band = K::PressureBand {
            cut_in_bar: 5.0,
            cut_out_bar: 6.0,
        };
        let op = Operation::new(&[ev(10.0, band)], None);
        let mut c = Plant::with_operation(MachineKind::Compressor, 2, vec![], op);
        let mut max_p: f64 = 0.0;
        for t in 600..3000 {
            c.advance_to(f64::from(t));
            max_p = max_p.max(c.receiver_bar);
        }
        assert!(
            (5.9..6.2).contains(&max_p),
            "receiver follows the new band: {max_p}"
        );

        let op = Operation::new(&[ev(100.0, K::Load { to: 0.4 })], None);
        let mut m = Plant::with_operation(MachineKind::Motor, 2, vec![], op);
        for t in 200..3000 {
            m.advance_to(f64::from(t));
            assert!(m.load < 0.7, "load around 0.4: {}", m.load);
        }
    }

    #[test]
    fn ambient_cycle_moves_the_temperatures() {
        let op = Operation::new(&[], Some(crate::operation::AmbientCycle::plant_day()));
        let mut p = Plant::with_operation(MachineKind::Compressor, 3, vec![], op);
        p.advance_to(5.0 * 3600.0);
        let cold = (p.ambient_c(), p.bearing_temp_c());
        p.advance_to(17.0 * 3600.0);
        let warm = (p.ambient_c(), p.bearing_temp_c());
        assert!((cold.0 - 20.0).abs() < 0.01 && (warm.0 - 32.0).abs() < 0.01);
        assert!(warm.1 > cold.1 + 8.0, "{cold:?} -> {warm:?}");
    }
}
