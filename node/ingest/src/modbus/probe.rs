//! Commissioning aid behind `millwright modbus probe`: every type × byte/word-order decoding of
//! raw registers, ranked by plausibility against the range an engineer expects.
//!
//! Pure (the CLI reads the registers with [`super::transport::read_once`] and prints the table).
//! Orders that cannot differ for a type are shown once (16-bit types: ABCD and BADC only).

use super::decode::{decode, FieldType, RegisterOrder, Value};

/// What the engineer expects the value to be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expectation {
    /// Lowest plausible engineering value.
    pub min: Option<f64>,
    /// Highest plausible engineering value.
    pub max: Option<f64>,
    /// Multiplier applied to the raw value before the range check (e.g. 0.1 for tenths).
    pub scale: f64,
}

impl Default for Expectation {
    fn default() -> Self {
        Self {
            min: None,
            max: None,
            scale: 1.0,
        }
    }
}

/// One decoding of the registers.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Data type.
    pub ty: FieldType,
    /// Byte/word order.
    pub order: RegisterOrder,
    /// The decoded raw value.
    pub raw: Value,
    /// The scaled value (None for text or non-finite).
    pub value: Option<f64>,
    /// Plausibility 0..=1 (1 = inside the expected range and an ordinary magnitude).
    pub score: f64,
    /// Whether the scaled value lies inside the expected range (None when no range was given).
    pub in_range: Option<bool>,
}

fn orders_for(ty: FieldType) -> &'static [RegisterOrder] {
    match ty.registers() {
        1 => &[RegisterOrder::ABCD, RegisterOrder::BADC],
        _ => &RegisterOrder::ALL,
    }
}

/// How plausible `v` is as a reading given `exp` (0..=1).
pub fn plausibility(v: f64, ty: FieldType, exp: &Expectation) -> (f64, Option<bool>) {
    if !v.is_finite() {
        return (0.0, None);
    }
    let a = v.abs();
    // Ordinary magnitudes are more plausible than huge numbers or float dust.
    let mut magnitude = if (1e-3..=1e7).contains(&a) {
        1.0
    } else if a == 0.0 {
        0.6 // plausible, but says nothing
    } else if a < 1e-3 {
        0.2
    } else {
        0.3
    };
    if matches!(ty, FieldType::F32 | FieldType::F64) && a != 0.0 && !(1e-6..=1e12).contains(&a) {
        magnitude = 0.01; // almost surely the wrong order
    }
    if exp.min.is_none() && exp.max.is_none() {
        return (0.5 * magnitude, None);
    }
    let lo = exp.min.unwrap_or(f64::NEG_INFINITY);
    let hi = exp.max.unwrap_or(f64::INFINITY);
    if (lo..=hi).contains(&v) {
        return (magnitude, Some(true));
    }
    let width = if lo.is_finite() && hi.is_finite() && hi > lo {
        hi - lo
    } else {
        lo.abs().max(hi.abs()).max(1.0)
    };
    let dist = if v < lo { lo - v } else { v - hi };
    (0.5 * magnitude * (-dist / width).exp(), Some(false))
}

/// Every decoding of `words` (starting at the first register), best first. Types narrower than
/// the registers read rank lower (the engineer read what they believe one value spans); ties
/// keep the simpler type (fewer registers) and the standard order first.
pub fn candidates(words: &[u16], exp: &Expectation) -> Vec<Candidate> {
    let mut out = Vec::new();
    for ty in FieldType::NUMERIC {
        if words.len() < usize::from(ty.registers()) {
            continue;
        }
        for &order in orders_for(ty) {
            let Ok(raw) = decode(words, ty, order) else {
                continue;
            };
            let value = raw.to_f64(exp.scale, 0.0);
            let (mut score, in_range) = value.map_or((0.0, None), |v| plausibility(v, ty, exp));
            if usize::from(ty.registers()) < words.len() {
                // The engineer read more registers than this type uses.
                score *= 0.6;
            }
            out.push(Candidate {
                ty,
                order,
                raw,
                value,
                score,
                in_range,
            });
        }
    }
    if let Ok(n) = u16::try_from(words.len().min(125)) {
        for order in [RegisterOrder::ABCD, RegisterOrder::BADC] {
            if let Ok(raw) = decode(words, FieldType::Ascii(n), order) {
                out.push(Candidate {
                    ty: FieldType::Ascii(n),
                    order,
                    raw,
                    value: None,
                    score: 0.0,
                    in_range: None,
                });
            }
        }
    }
    // Stable sort: equal scores keep the generation order (simple types, ABCD first).
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::decode::encode;

    #[test]
    fn the_right_float_order_ranks_first() {
        // 21.5 °C stored as f32 word-swapped.
        let w = encode(&Value::F64(21.5), FieldType::F32, RegisterOrder::CDAB).unwrap();
        let exp = Expectation {
            min: Some(-20.0),
            max: Some(120.0),
            scale: 1.0,
        };
        let c = candidates(&w, &exp);
        assert_eq!(
            (c[0].ty, c[0].order),
            (FieldType::F32, RegisterOrder::CDAB),
            "{c:#?}"
        );
        assert_eq!(c[0].value, Some(21.5));
        assert_eq!(c[0].in_range, Some(true));
        assert!(c.iter().any(|x| matches!(x.ty, FieldType::Ascii(2))));
        // Every numeric type fitting two registers × its orders is listed.
        assert_eq!(
            c.iter().filter(|x| x.ty != FieldType::Ascii(2)).count(),
            2 + 2 + 4 * 3
        );
    }

    #[test]
    fn scaled_integer_in_range_beats_out_of_range() {
        let exp = Expectation {
            min: Some(0.0),
            max: Some(100.0),
            scale: 0.1,
        };
        let c = candidates(&[215], &exp);
        assert_eq!(c[0].ty, FieldType::U16);
        assert_eq!(c[0].value, Some(21.5));
        // Byte-swapped 215 = 0xD700 → 5504.0 / -1049.6: out of range, ranked lower.
        let swapped = c
            .iter()
            .find(|x| x.order == RegisterOrder::BADC && x.ty == FieldType::U16);
        assert_eq!(swapped.unwrap().in_range, Some(false));
        assert!(swapped.unwrap().score < c[0].score);
    }

    #[test]
    fn non_finite_is_least_plausible() {
        assert_eq!(
            plausibility(f64::NAN, FieldType::F32, &Expectation::default()).0,
            0.0
        );
        let (tiny, _) = plausibility(1e-30, FieldType::F32, &Expectation::default());
        let (ok, _) = plausibility(3.5, FieldType::F32, &Expectation::default());
        assert!(tiny < ok);
    }
}
