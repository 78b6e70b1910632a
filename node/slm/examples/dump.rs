//! Prints a GGUF file's metadata (arrays abbreviated) and tensor list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use candle_core::quantized::gguf_file::{Content, Value};
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let c = Content::read(&mut f).unwrap();
    let mut keys: Vec<_> = c.metadata.keys().collect();
    keys.sort();
    for k in keys {
        let v = &c.metadata[k];
        match v {
            Value::Array(a) => {
                println!("{k} = array[{}] first={:?}", a.len(), &a[..a.len().min(12)])
            }
            Value::String(s) => println!("{k} = {:?}", &s[..s.len().min(3000)]),
            _ => println!("{k} = {v:?}"),
        }
    }
    let mut t: Vec<_> = c.tensor_infos.iter().collect();
    t.sort_by_key(|(_, i)| i.offset);
    for (n, i) in t.iter().take(20) {
        println!("{n} {:?} {:?} {}", i.ggml_dtype, i.shape, i.offset);
    }
    println!("tensors: {} data_offset {}", t.len(), c.tensor_data_offset);
}
