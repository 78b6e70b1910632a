//! 4–20 mA current-loop conversion: ADC microvolts across a shunt → microamps → engineering
//! value, with NAMUR NE43 range and failure flags.
//!
//! Integer maths for the current; the engineering value is an `f32` because that is what the
//! register map carries. No allocation, no panics.

/// Lower end of the live-zero span, µA.
pub const SPAN_LO_UA: i32 = 4_000;
/// Upper end of the span, µA.
pub const SPAN_HI_UA: i32 = 20_000;
/// NE43: below this the signal is under-range (still a measurement).
pub const UNDER_RANGE_UA: i32 = 3_800;
/// NE43: above this the signal is over-range (still a measurement).
pub const OVER_RANGE_UA: i32 = 20_500;
/// NE43: at or below this the transmitter signals a failure (or the loop is broken).
pub const FAIL_LOW_UA: i32 = 3_600;
/// NE43: at or above this the transmitter signals a failure.
pub const FAIL_HIGH_UA: i32 = 21_000;

/// Engineering range of one loop channel: 4 mA ↦ `lo`, 20 mA ↦ `hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopRange {
    /// Value at 4 mA.
    pub lo: f32,
    /// Value at 20 mA.
    pub hi: f32,
}

impl LoopRange {
    /// Whether the range is usable (both finite, `lo != hi`).
    pub fn is_valid(&self) -> bool {
        self.lo.is_finite() && self.hi.is_finite() && self.lo != self.hi
    }

    /// The engineering value for `current_ua` (linear, extrapolated outside 4–20 mA).
    pub fn scale(&self, current_ua: i32) -> f32 {
        let frac = (current_ua - SPAN_LO_UA) as f32 / (SPAN_HI_UA - SPAN_LO_UA) as f32;
        self.lo + frac * (self.hi - self.lo)
    }
}

/// Range and failure flags of one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoopFlags {
    /// Below 3.8 mA.
    pub under_range: bool,
    /// Above 20.5 mA.
    pub over_range: bool,
    /// At or below 3.6 mA, at or above 21 mA, or the ADC saturated: no valid measurement.
    pub failure: bool,
}

/// Loop current in µA from the shunt voltage in µV and the shunt in milliohms.
pub fn current_ua(shunt_uv: i32, shunt_milliohm: u32) -> i32 {
    if shunt_milliohm == 0 {
        return 0;
    }
    let ua = i64::from(shunt_uv) * 1000 / i64::from(shunt_milliohm);
    ua.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Classifies a loop current per NAMUR NE43.
pub fn classify(current_ua: i32, adc_saturated: bool) -> LoopFlags {
    LoopFlags {
        under_range: current_ua < UNDER_RANGE_UA,
        over_range: current_ua > OVER_RANGE_UA || adc_saturated,
        failure: current_ua <= FAIL_LOW_UA || current_ua >= FAIL_HIGH_UA || adc_saturated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_and_flags() {
        let r = LoopRange { lo: 0.0, hi: 16.0 };
        assert_eq!(r.scale(4_000), 0.0);
        assert_eq!(r.scale(12_000), 8.0);
        assert_eq!(r.scale(20_000), 16.0);
        let n = LoopRange { lo: -1.0, hi: 5.0 };
        assert!((n.scale(8_000) - 0.5).abs() < 1e-6);
        assert_eq!(current_ua(1_200_000, 100_000), 12_000);
        assert_eq!(current_ua(1, 0), 0);
        assert_eq!(classify(12_000, false), LoopFlags::default());
        assert_eq!(
            classify(3_700, false),
            LoopFlags {
                under_range: true,
                over_range: false,
                failure: false
            }
        );
        assert!(classify(3_600, false).failure);
        assert!(classify(20_600, false).over_range && !classify(20_600, false).failure);
        assert!(classify(21_000, false).failure);
        assert!(classify(12_000, true).failure);
        assert!(!LoopRange { lo: 1.0, hi: 1.0 }.is_valid());
        assert!(!LoopRange {
            lo: f32::NAN,
            hi: 1.0
        }
        .is_valid());
    }
}
