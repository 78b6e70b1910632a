//! Fuzz target: Modbus register decoding (every type and register order) of arbitrary words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use millwright_ingest::modbus::decode::{decode, FieldType, RegisterOrder};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let words: Vec<u16> = rest
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    let ty = match sel % 11 {
        0 => FieldType::Bool,
        1 => FieldType::Bit(sel / 11),
        2 => FieldType::U16,
        3 => FieldType::I16,
        4 => FieldType::U32,
        5 => FieldType::I32,
        6 => FieldType::U64,
        7 => FieldType::I64,
        8 => FieldType::F32,
        9 => FieldType::F64,
        _ => FieldType::Ascii(u16::from(sel / 11)),
    };
    for order in RegisterOrder::ALL {
        if let Ok(v) = decode(&words, ty, order) {
            let _ = v.to_f64(1.5, -2.0);
        }
    }
});
