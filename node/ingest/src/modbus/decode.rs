//! Register decoding: raw Modbus words/bits → typed values, for every data type × byte/word order.
//!
//! Pure functions only (no I/O, no clock). [`encode`] is the exact inverse of [`decode`]; the
//! property tests at the bottom check the round trip for every type and order. Scaling
//! (`raw × scale + offset`) is applied by the caller through [`Value::to_f64`].
//!
//! Byte and word order are named after the four bytes `A B C D` of a 32-bit big-endian value:
//!
//! | order | registers on the wire       | meaning                                   |
//! |-------|-----------------------------|-------------------------------------------|
//! | ABCD  | `[AB] [CD]`                 | big-endian words, most significant first  |
//! | CDAB  | `[CD] [AB]`                 | big-endian words, least significant first (word swap) |
//! | BADC  | `[BA] [DC]`                 | bytes swapped inside each word            |
//! | DCBA  | `[DC] [BA]`                 | fully little-endian                       |
//!
//! For 64-bit types the same two rules (word swap: register order reversed; byte swap: the two
//! bytes of each register swapped) are applied to four registers. For 16-bit types only the byte
//! swap matters (ABCD = CDAB, BADC = DCBA). ASCII strings honour the byte swap (two characters per
//! register, the first in the high byte unless swapped) and ignore the word swap.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Byte and word order of a multi-byte value (see the module doc for the table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegisterOrder {
    /// Big-endian, most significant word first (Modbus standard).
    #[default]
    #[serde(alias = "abcd")]
    ABCD,
    /// Little-endian: least significant word first, bytes swapped in each word.
    #[serde(alias = "dcba")]
    DCBA,
    /// Most significant word first, bytes swapped in each word.
    #[serde(alias = "badc")]
    BADC,
    /// Least significant word first, bytes in each word big-endian ("word swap").
    #[serde(alias = "cdab")]
    CDAB,
}

impl RegisterOrder {
    /// All four orders, for probes and tests.
    pub const ALL: [RegisterOrder; 4] = [
        RegisterOrder::ABCD,
        RegisterOrder::DCBA,
        RegisterOrder::BADC,
        RegisterOrder::CDAB,
    ];
    /// True when the register order is reversed (least significant word first).
    pub fn word_swap(self) -> bool {
        matches!(self, RegisterOrder::DCBA | RegisterOrder::CDAB)
    }
    /// True when the two bytes inside each register are swapped.
    pub fn byte_swap(self) -> bool {
        matches!(self, RegisterOrder::DCBA | RegisterOrder::BADC)
    }
    /// Name as written in config: `ABCD`, `DCBA`, `BADC`, `CDAB`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterOrder::ABCD => "ABCD",
            RegisterOrder::DCBA => "DCBA",
            RegisterOrder::BADC => "BADC",
            RegisterOrder::CDAB => "CDAB",
        }
    }
}

impl fmt::Display for RegisterOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field's data type with its parameters, as the decoder needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// One coil / discrete input, or a register that is non-zero.
    Bool,
    /// Bit `n` (0 = least significant) of one register.
    Bit(u8),
    /// Unsigned 16-bit integer (one register).
    U16,
    /// Signed 16-bit integer (one register).
    I16,
    /// Unsigned 32-bit integer (two registers).
    U32,
    /// Signed 32-bit integer (two registers).
    I32,
    /// Unsigned 64-bit integer (four registers).
    U64,
    /// Signed 64-bit integer (four registers).
    I64,
    /// IEEE-754 single precision (two registers).
    F32,
    /// IEEE-754 double precision (four registers).
    F64,
    /// ASCII text of the given number of registers (two characters each, NULs/spaces trimmed).
    Ascii(u16),
}

impl FieldType {
    /// Number of 16-bit registers the type occupies (1 for `Bool`, which on coils is one bit).
    pub fn registers(self) -> u16 {
        match self {
            FieldType::Bool | FieldType::Bit(_) | FieldType::U16 | FieldType::I16 => 1,
            FieldType::U32 | FieldType::I32 | FieldType::F32 => 2,
            FieldType::U64 | FieldType::I64 | FieldType::F64 => 4,
            FieldType::Ascii(n) => n,
        }
    }
    /// Short name as written in config (`u32`, `bit`, `string`, …).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Bool => "bool",
            FieldType::Bit(_) => "bit",
            FieldType::U16 => "u16",
            FieldType::I16 => "i16",
            FieldType::U32 => "u32",
            FieldType::I32 => "i32",
            FieldType::U64 => "u64",
            FieldType::I64 => "i64",
            FieldType::F32 => "f32",
            FieldType::F64 => "f64",
            FieldType::Ascii(_) => "string",
        }
    }
    /// The numeric types the probe tries, in display order.
    pub const NUMERIC: [FieldType; 8] = [
        FieldType::U16,
        FieldType::I16,
        FieldType::U32,
        FieldType::I32,
        FieldType::F32,
        FieldType::U64,
        FieldType::I64,
        FieldType::F64,
    ];
}

/// A decoded value before scaling.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Coil, discrete input, register bit or non-zero register.
    Bool(bool),
    /// Unsigned integer types.
    U64(u64),
    /// Signed integer types.
    I64(i64),
    /// Floating-point types (f32 widened exactly to f64).
    F64(f64),
    /// ASCII text (not a number: strings are never emitted as readings).
    Text(String),
}

impl Value {
    /// The raw value as f64 (`true` = 1), or `None` for text. u64/i64 beyond 2^53 lose precision.
    #[allow(clippy::cast_precision_loss)]
    pub fn raw_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::U64(v) => Some(*v as f64),
            Value::I64(v) => Some(*v as f64),
            Value::F64(v) => Some(*v),
            Value::Text(_) => None,
        }
    }
    /// The engineering value `raw × scale + offset`, or `None` for text or a non-finite result.
    pub fn to_f64(&self, scale: f64, offset: f64) -> Option<f64> {
        let v = self.raw_f64()? * scale + offset;
        v.is_finite().then_some(v)
    }
}

/// Why raw data could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterDecodeError {
    /// Fewer registers than the type needs.
    #[error("{ty} needs {need} registers, got {got}")]
    TooShort {
        /// Type name.
        ty: &'static str,
        /// Registers needed.
        need: usize,
        /// Registers given.
        got: usize,
    },
    /// Bit index above 15.
    #[error("bit {0} does not exist in a 16-bit register (0..=15)")]
    BitOutOfRange(u8),
    /// The value does not fit the type (encode only).
    #[error("value {value} cannot be encoded as {ty}")]
    Unrepresentable {
        /// Type name.
        ty: &'static str,
        /// The value, as text.
        value: String,
    },
}

/// Puts `words` into big-endian byte order (`A B C D …`) according to `order`.
fn to_be_bytes(words: &[u16], order: RegisterOrder, out: &mut [u8]) {
    let n = words.len();
    for (i, slot) in out.chunks_exact_mut(2).enumerate().take(n) {
        let w = if order.word_swap() {
            words[n - 1 - i]
        } else {
            words[i]
        };
        let w = if order.byte_swap() { w.swap_bytes() } else { w };
        slot.copy_from_slice(&w.to_be_bytes());
    }
}

/// Inverse of [`to_be_bytes`].
fn from_be_bytes(bytes: &[u8], order: RegisterOrder) -> Vec<u16> {
    let mut words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            let w = u16::from_be_bytes([c[0], c[1]]);
            if order.byte_swap() {
                w.swap_bytes()
            } else {
                w
            }
        })
        .collect();
    if order.word_swap() {
        words.reverse();
    }
    words
}

fn need(words: &[u16], ty: FieldType) -> Result<(), RegisterDecodeError> {
    let need = usize::from(ty.registers());
    if words.len() < need {
        return Err(RegisterDecodeError::TooShort {
            ty: ty.name(),
            need,
            got: words.len(),
        });
    }
    Ok(())
}

/// Decodes a value of type `ty` from the first registers of `words`.
pub fn decode(
    words: &[u16],
    ty: FieldType,
    order: RegisterOrder,
) -> Result<Value, RegisterDecodeError> {
    need(words, ty)?;
    let mut b = [0u8; 8];
    Ok(match ty {
        FieldType::Bool => Value::Bool(words[0] != 0),
        FieldType::Bit(n) => {
            if n > 15 {
                return Err(RegisterDecodeError::BitOutOfRange(n));
            }
            Value::Bool(words[0] >> n & 1 == 1)
        }
        FieldType::U16 | FieldType::I16 => {
            to_be_bytes(&words[..1], order, &mut b[..2]);
            let v = u16::from_be_bytes([b[0], b[1]]);
            if ty == FieldType::U16 {
                Value::U64(u64::from(v))
            } else {
                Value::I64(i64::from(v as i16))
            }
        }
        FieldType::U32 | FieldType::I32 | FieldType::F32 => {
            to_be_bytes(&words[..2], order, &mut b[..4]);
            let a = [b[0], b[1], b[2], b[3]];
            match ty {
                FieldType::U32 => Value::U64(u64::from(u32::from_be_bytes(a))),
                FieldType::I32 => Value::I64(i64::from(i32::from_be_bytes(a))),
                _ => Value::F64(f64::from(f32::from_be_bytes(a))),
            }
        }
        FieldType::U64 | FieldType::I64 | FieldType::F64 => {
            to_be_bytes(&words[..4], order, &mut b);
            match ty {
                FieldType::U64 => Value::U64(u64::from_be_bytes(b)),
                FieldType::I64 => Value::I64(i64::from_be_bytes(b)),
                _ => Value::F64(f64::from_be_bytes(b)),
            }
        }
        FieldType::Ascii(n) => {
            let n = usize::from(n);
            let mut text = String::with_capacity(n * 2);
            for w in &words[..n] {
                let w = if order.byte_swap() {
                    w.swap_bytes()
                } else {
                    *w
                };
                for c in w.to_be_bytes() {
                    // Non-ASCII bytes are shown as '?', NUL ends nothing (padding is trimmed).
                    text.push(if c.is_ascii() { char::from(c) } else { '?' });
                }
            }
            Value::Text(
                text.trim_end_matches(['\0', ' '])
                    .trim_start_matches('\0')
                    .to_string(),
            )
        }
    })
}

/// Decodes a coil / discrete input (already a bit).
pub fn decode_bit(bit: bool) -> Value {
    Value::Bool(bit)
}

fn unrepresentable(ty: FieldType, v: &Value) -> RegisterDecodeError {
    RegisterDecodeError::Unrepresentable {
        ty: ty.name(),
        value: format!("{v:?}"),
    }
}

/// Encodes `value` as type `ty` in `order`: the exact inverse of [`decode`] (used by servers,
/// simulators and tests to lay out register images).
///
/// `Bool` encodes as 1/0; `Bit(n)` as a register with only bit `n` set (or 0); text is padded with
/// NULs to the type's length.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn encode(
    value: &Value,
    ty: FieldType,
    order: RegisterOrder,
) -> Result<Vec<u16>, RegisterDecodeError> {
    let bad = || unrepresentable(ty, value);
    let mut b = [0u8; 8];
    let width = usize::from(ty.registers());
    let as_u64 = || match value {
        Value::U64(v) => Some(*v),
        Value::I64(v) => u64::try_from(*v).ok(),
        Value::Bool(v) => Some(u64::from(*v)),
        _ => None,
    };
    let as_i64 = || match value {
        Value::I64(v) => Some(*v),
        Value::U64(v) => i64::try_from(*v).ok(),
        Value::Bool(v) => Some(i64::from(*v)),
        _ => None,
    };
    match ty {
        FieldType::Bool => match value {
            Value::Bool(v) => Ok(vec![u16::from(*v)]),
            _ => Err(bad()),
        },
        FieldType::Bit(n) => match value {
            Value::Bool(v) if n <= 15 => Ok(vec![u16::from(*v) << n]),
            Value::Bool(_) => Err(RegisterDecodeError::BitOutOfRange(n)),
            _ => Err(bad()),
        },
        FieldType::U16 => {
            let v = u16::try_from(as_u64().ok_or_else(bad)?).map_err(|_| bad())?;
            b[..2].copy_from_slice(&v.to_be_bytes());
            Ok(from_be_bytes(&b[..2], order))
        }
        FieldType::I16 => {
            let v = i16::try_from(as_i64().ok_or_else(bad)?).map_err(|_| bad())?;
            b[..2].copy_from_slice(&v.to_be_bytes());
            Ok(from_be_bytes(&b[..2], order))
        }
        FieldType::U32 => {
            let v = u32::try_from(as_u64().ok_or_else(bad)?).map_err(|_| bad())?;
            b[..4].copy_from_slice(&v.to_be_bytes());
            Ok(from_be_bytes(&b[..4], order))
        }
        FieldType::I32 => {
            let v = i32::try_from(as_i64().ok_or_else(bad)?).map_err(|_| bad())?;
            b[..4].copy_from_slice(&v.to_be_bytes());
            Ok(from_be_bytes(&b[..4], order))
        }
        FieldType::F32 => match value {
            Value::F64(v) => {
                let f = *v as f32;
                if f64::from(f).to_bits() != v.to_bits() && !v.is_nan() {
                    return Err(bad());
                }
                b[..4].copy_from_slice(&f.to_be_bytes());
                Ok(from_be_bytes(&b[..4], order))
            }
            _ => Err(bad()),
        },
        FieldType::U64 => {
            b.copy_from_slice(&as_u64().ok_or_else(bad)?.to_be_bytes());
            Ok(from_be_bytes(&b, order))
        }
        FieldType::I64 => {
            b.copy_from_slice(&as_i64().ok_or_else(bad)?.to_be_bytes());
            Ok(from_be_bytes(&b, order))
        }
        FieldType::F64 => match value {
            Value::F64(v) => {
                b.copy_from_slice(&v.to_be_bytes());
                Ok(from_be_bytes(&b, order))
            }
            _ => Err(bad()),
        },
        FieldType::Ascii(_) => match value {
            Value::Text(t) if t.is_ascii() && t.len() <= width * 2 => {
                let mut bytes = t.as_bytes().to_vec();
                bytes.resize(width * 2, 0);
                let words = bytes
                    .chunks_exact(2)
                    .map(|c| {
                        let w = u16::from_be_bytes([c[0], c[1]]);
                        if order.byte_swap() {
                            w.swap_bytes()
                        } else {
                            w
                        }
                    })
                    .collect();
                Ok(words)
            }
            _ => Err(bad()),
        },
    }
}

/// Encodes an engineering value for a numeric type: `raw = (value - offset) / scale`, rounded
/// to the nearest integer for integer types. Used by servers and tests; fails when the raw value
/// does not fit the type.
#[allow(clippy::cast_possible_truncation)]
pub fn encode_engineering(
    value: f64,
    ty: FieldType,
    order: RegisterOrder,
    scale: f64,
    offset: f64,
) -> Result<Vec<u16>, RegisterDecodeError> {
    let raw = (value - offset) / scale;
    let v = match ty {
        FieldType::Bool | FieldType::Bit(_) => Value::Bool(raw != 0.0),
        FieldType::U16 | FieldType::U32 | FieldType::U64 => {
            let r = raw.round();
            if !(0.0..=1.8e19).contains(&r) {
                return Err(RegisterDecodeError::Unrepresentable {
                    ty: ty.name(),
                    value: value.to_string(),
                });
            }
            Value::U64(r as u64)
        }
        FieldType::I16 | FieldType::I32 | FieldType::I64 => {
            let r = raw.round();
            if !(-9.2e18..=9.2e18).contains(&r) {
                return Err(RegisterDecodeError::Unrepresentable {
                    ty: ty.name(),
                    value: value.to_string(),
                });
            }
            Value::I64(r as i64)
        }
        FieldType::F32 => Value::F64(f64::from(raw as f32)),
        FieldType::F64 => Value::F64(raw),
        FieldType::Ascii(_) => {
            return Err(RegisterDecodeError::Unrepresentable {
                ty: ty.name(),
                value: value.to_string(),
            })
        }
    };
    encode(&v, ty, order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_layouts_of_0x11223344() {
        let v = Value::U64(0x1122_3344);
        let cases = [
            (RegisterOrder::ABCD, [0x1122, 0x3344]),
            (RegisterOrder::CDAB, [0x3344, 0x1122]),
            (RegisterOrder::BADC, [0x2211, 0x4433]),
            (RegisterOrder::DCBA, [0x4433, 0x2211]),
        ];
        for (order, words) in cases {
            assert_eq!(encode(&v, FieldType::U32, order).unwrap(), words, "{order}");
            assert_eq!(decode(&words, FieldType::U32, order).unwrap(), v, "{order}");
        }
    }

    #[test]
    fn known_float_and_signed() {
        // 123.456f32 = 0x42F6E979
        let w = [0x42F6, 0xE979];
        let Value::F64(f) = decode(&w, FieldType::F32, RegisterOrder::ABCD).unwrap() else {
            panic!("not a float")
        };
        assert!((f - 123.456).abs() < 1e-4);
        assert_eq!(
            decode(&[0xFFFE], FieldType::I16, RegisterOrder::ABCD).unwrap(),
            Value::I64(-2)
        );
        assert_eq!(
            decode(&[0xFEFF], FieldType::I16, RegisterOrder::BADC).unwrap(),
            Value::I64(-2)
        );
        assert_eq!(
            decode(
                &[0x0001, 0x0000, 0x0000, 0x0000],
                FieldType::U64,
                RegisterOrder::ABCD
            )
            .unwrap(),
            Value::U64(1 << 48)
        );
        // Word swap: the first register on the wire is the least significant.
        assert_eq!(
            decode(
                &[0x0001, 0x0000, 0x0000, 0x0000],
                FieldType::U64,
                RegisterOrder::CDAB
            )
            .unwrap(),
            Value::U64(1)
        );
    }

    #[test]
    fn bits_strings_and_errors() {
        assert_eq!(
            decode(&[0b1000], FieldType::Bit(3), RegisterOrder::ABCD).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            decode(&[0b1000], FieldType::Bit(2), RegisterOrder::ABCD).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(
            decode(&[0x4142, 0x4300], FieldType::Ascii(2), RegisterOrder::ABCD).unwrap(),
            Value::Text("ABC".into())
        );
        assert_eq!(
            decode(&[0x4241, 0x0043], FieldType::Ascii(2), RegisterOrder::BADC).unwrap(),
            Value::Text("ABC".into())
        );
        assert!(matches!(
            decode(&[1], FieldType::U32, RegisterOrder::ABCD),
            Err(RegisterDecodeError::TooShort {
                need: 2,
                got: 1,
                ..
            })
        ));
        assert_eq!(
            decode(&[1], FieldType::Bit(16), RegisterOrder::ABCD),
            Err(RegisterDecodeError::BitOutOfRange(16))
        );
        assert!(encode(&Value::U64(70_000), FieldType::U16, RegisterOrder::ABCD).is_err());
    }

    #[test]
    fn scaling_and_non_finite() {
        assert_eq!(Value::U64(215).to_f64(0.1, -2.0), Some(215.0 * 0.1 - 2.0));
        assert_eq!(Value::F64(f64::NAN).to_f64(1.0, 0.0), None);
        assert_eq!(Value::Text("x".into()).to_f64(1.0, 0.0), None);
        let w = encode_engineering(21.5, FieldType::I16, RegisterOrder::ABCD, 0.1, 0.0).unwrap();
        assert_eq!(w, vec![215]);
    }

    fn order() -> impl Strategy<Value = RegisterOrder> {
        prop::sample::select(RegisterOrder::ALL.to_vec())
    }

    fn typed_value() -> impl Strategy<Value = (FieldType, Value)> {
        prop_oneof![
            any::<bool>().prop_map(|b| (FieldType::Bool, Value::Bool(b))),
            (0u8..16, any::<bool>()).prop_map(|(n, b)| (FieldType::Bit(n), Value::Bool(b))),
            any::<u16>().prop_map(|v| (FieldType::U16, Value::U64(u64::from(v)))),
            any::<i16>().prop_map(|v| (FieldType::I16, Value::I64(i64::from(v)))),
            any::<u32>().prop_map(|v| (FieldType::U32, Value::U64(u64::from(v)))),
            any::<i32>().prop_map(|v| (FieldType::I32, Value::I64(i64::from(v)))),
            any::<u64>().prop_map(|v| (FieldType::U64, Value::U64(v))),
            any::<i64>().prop_map(|v| (FieldType::I64, Value::I64(v))),
            any::<u32>()
                .prop_map(|bits| (FieldType::F32, Value::F64(f64::from(f32::from_bits(bits))))),
            any::<u64>().prop_map(|bits| (FieldType::F64, Value::F64(f64::from_bits(bits)))),
            (1u16..8, "[ -~]{0,16}").prop_map(|(n, s)| {
                let s: String = s.chars().take(usize::from(n) * 2).collect();
                (
                    FieldType::Ascii(n),
                    Value::Text(s.trim_end_matches(' ').to_string()),
                )
            }),
        ]
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            // NaN payloads survive bit-exactly; compare bits.
            (Value::F64(x), Value::F64(y)) => {
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
            }
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip((ty, v) in typed_value(), order in order()) {
            let words = encode(&v, ty, order).unwrap();
            prop_assert_eq!(words.len(), usize::from(ty.registers()));
            let back = decode(&words, ty, order).unwrap();
            prop_assert!(same(&v, &back), "{:?} {} {:?} -> {:?} -> {:?}", ty, order, v, words, back);
        }

        #[test]
        fn decode_encode_round_trip(words in prop::collection::vec(any::<u16>(), 4), order in order()) {
            // Every register pattern decodes, and re-encodes to the same registers.
            for ty in [FieldType::U16, FieldType::I16, FieldType::U32, FieldType::I32,
                       FieldType::U64, FieldType::I64, FieldType::F32, FieldType::F64] {
                let v = decode(&words, ty, order).unwrap();
                let back = encode(&v, ty, order).unwrap();
                let n = usize::from(ty.registers());
                if let Value::F64(f) = v { if f.is_nan() { continue; } }
                prop_assert_eq!(&back[..], &words[..n], "{:?} {}", ty, order);
            }
        }

        #[test]
        fn orders_differ_only_by_permutation(v in any::<u32>()) {
            // The four orders of one value are byte permutations of each other.
            let mut sorted: Vec<Vec<u8>> = RegisterOrder::ALL.iter().map(|o| {
                let w = encode(&Value::U64(u64::from(v)), FieldType::U32, *o).unwrap();
                let mut b: Vec<u8> = w.iter().flat_map(|x| x.to_be_bytes()).collect();
                b.sort_unstable();
                b
            }).collect();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), 1);
        }
    }
}
