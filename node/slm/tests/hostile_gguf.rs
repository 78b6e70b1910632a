//! Corrupt GGUF files, written by the test from scratch: alignment 0, huge tensor and block
//! counts, a vocabulary larger than the embedding, truncated tensor data, absurd string and
//! array lengths, arbitrary byte flips. Each gives a clear `ModelFile` error naming the problem
//! (and `load_or_fallback` the template fallback), never a panic, an abort or a huge allocation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{GenParams, Prompt, SlmError};
use millwright_slm::gguf::GgufFile;
use millwright_slm::{load_or_fallback, EngineOptions};
use proptest::prelude::*;
use std::path::PathBuf;

/// A GGUF v3 file under construction.
#[derive(Clone)]
struct Gguf {
    kv: Vec<(String, Vec<u8>)>,
    tensors: Vec<(String, Vec<u64>, u32, u64)>,
    data: Vec<u8>,
    tensor_count: Option<u64>,
}

fn s(out: &mut Vec<u8>, v: &str) {
    out.extend((v.len() as u64).to_le_bytes());
    out.extend(v.as_bytes());
}

impl Gguf {
    /// A tiny llama-shaped file: 2 blocks, 4 tokens, 8-wide F32 embedding.
    fn tiny() -> Self {
        let mut g = Self {
            kv: vec![],
            tensors: vec![],
            data: vec![],
            tensor_count: None,
        };
        g.str_kv("general.architecture", "llama");
        g.u32_kv("general.alignment", 32);
        g.u32_kv("llama.block_count", 2);
        g.u32_kv("llama.context_length", 128);
        g.u32_kv("llama.embedding_length", 8);
        g.u32_kv("llama.attention.head_count", 2);
        g.u32_kv("llama.feed_forward_length", 16);
        g.str_kv("tokenizer.ggml.model", "gpt2");
        g.tokens(4);
        g.tensor("token_embd.weight", &[8, 4]);
        g.tensor("blk.0.attn_norm.weight", &[8]);
        g.tensor("blk.1.attn_norm.weight", &[8]);
        g
    }
    fn raw_kv(&mut self, k: &str, t: u32, v: Vec<u8>) {
        let mut b = t.to_le_bytes().to_vec();
        b.extend(v);
        self.kv.retain(|(x, _)| x != k);
        self.kv.push((k.into(), b));
    }
    fn u32_kv(&mut self, k: &str, v: u32) {
        self.raw_kv(k, 4, v.to_le_bytes().to_vec());
    }
    fn str_kv(&mut self, k: &str, v: &str) {
        let mut b = vec![];
        s(&mut b, v);
        self.raw_kv(k, 8, b);
    }
    fn tokens(&mut self, n: usize) {
        let mut b = 8u32.to_le_bytes().to_vec();
        b.extend((n as u64).to_le_bytes());
        for i in 0..n {
            s(&mut b, &format!("t{i}"));
        }
        self.raw_kv("tokenizer.ggml.tokens", 9, b);
    }
    /// An F32 tensor with ggml dims (innermost first).
    fn tensor(&mut self, name: &str, dims: &[u64]) {
        let n: u64 = dims.iter().product();
        let off = self.data.len() as u64;
        self.data.extend(vec![0u8; (n * 4) as usize]);
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        self.tensors.push((name.into(), dims.to_vec(), 0, off));
    }
    fn bytes(&self) -> Vec<u8> {
        let mut o = b"GGUF".to_vec();
        o.extend(3u32.to_le_bytes());
        o.extend(
            self.tensor_count
                .unwrap_or(self.tensors.len() as u64)
                .to_le_bytes(),
        );
        o.extend((self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            s(&mut o, k);
            o.extend(v);
        }
        for (n, dims, t, off) in &self.tensors {
            s(&mut o, n);
            o.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                o.extend(d.to_le_bytes());
            }
            o.extend(t.to_le_bytes());
            o.extend(off.to_le_bytes());
        }
        while !o.len().is_multiple_of(32) {
            o.push(0);
        }
        o.extend(&self.data);
        o
    }
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mw-hostile-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn open_err(name: &str, bytes: &[u8]) -> String {
    let p = write(name, bytes);
    match GgufFile::open(&p) {
        Ok(_) => panic!("{name}: accepted"),
        Err(e @ SlmError::ModelFile { .. }) => {
            let m = e.to_string();
            assert!(m.contains(name), "error does not name the file: {m}");
            m
        }
        Err(e) => panic!("{name}: not a ModelFile error: {e}"),
    }
}

#[test]
fn the_crafted_file_itself_parses() {
    let p = write("ok.gguf", &Gguf::tiny().bytes());
    let f = GgufFile::open(&p).unwrap();
    assert_eq!(f.content.tensor_infos.len(), 3);
}

#[test]
fn alignment_zero_or_not_a_power_of_two_is_a_clear_error() {
    for (a, name) in [(0, "align0.gguf"), (3, "align3.gguf")] {
        let mut g = Gguf::tiny();
        g.u32_kv("general.alignment", a);
        let m = open_err(name, &g.bytes());
        assert!(m.contains("general.alignment"), "{m}");
    }
}

#[test]
fn huge_counts_are_clear_errors_without_allocating() {
    let mut g = Gguf::tiny();
    g.u32_kv("llama.block_count", u32::MAX);
    let m = open_err("blocks.gguf", &g.bytes());
    assert!(m.contains("block_count"), "{m}");
    let mut g = Gguf::tiny();
    g.u32_kv("llama.block_count", 3);
    let m = open_err("blocks3.gguf", &g.bytes());
    assert!(m.contains("no tensor of block 2"), "{m}");
    let mut g = Gguf::tiny();
    g.tensor_count = Some(u64::MAX / 2);
    let m = open_err("tensors.gguf", &g.bytes());
    assert!(m.contains("cannot fit"), "{m}");
    let mut g = Gguf::tiny();
    g.u32_kv("llama.context_length", u32::MAX);
    assert!(open_err("ctx.gguf", &g.bytes()).contains("context_length"));
    // An array claiming 2^60 strings.
    let mut g = Gguf::tiny();
    let mut b = 8u32.to_le_bytes().to_vec();
    b.extend((1u64 << 60).to_le_bytes());
    g.raw_kv("tokenizer.ggml.tokens", 9, b);
    open_err("array.gguf", &g.bytes());
}

#[test]
fn a_vocabulary_larger_than_the_embedding_is_a_clear_error() {
    let mut g = Gguf::tiny();
    g.tokens(5);
    let m = open_err("vocab.gguf", &g.bytes());
    assert!(m.contains("5 tokens") && m.contains("4 rows"), "{m}");
}

#[test]
fn truncated_tensor_data_and_absurd_strings_are_clear_errors() {
    let b = Gguf::tiny().bytes();
    let m = open_err("cut.gguf", &b[..b.len() - 40]);
    assert!(m.contains("truncated"), "{m}");
    let mut g = Gguf::tiny();
    let mut v = vec![];
    v.extend(u64::MAX.to_le_bytes());
    g.raw_kv("general.name", 8, v);
    let m = open_err("string.gguf", &g.bytes());
    assert!(m.contains("truncated or corrupt header"), "{m}");
}

#[test]
fn a_corrupt_model_gives_the_template_fallback() {
    let mut g = Gguf::tiny();
    g.u32_kv("general.alignment", 0);
    let p = write("fallback.gguf", &g.bytes());
    let mut m = load_or_fallback(&p, &EngineOptions::default());
    assert!(m.name().contains("fallback"), "{}", m.name());
    let e = m
        .generate(&Prompt::new("s", "hi"), &GenParams::default(), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("general.alignment"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Byte flips and cuts anywhere in a valid file: an error or a file, never a panic.
    #[test]
    fn flipped_bytes_never_panic(
        flips in proptest::collection::vec((0usize..2048, any::<u8>()), 1..8),
        cut in proptest::option::of(0usize..2048),
    ) {
        let mut b = Gguf::tiny().bytes();
        for (i, v) in flips {
            let n = b.len();
            b[i % n] = v;
        }
        if let Some(c) = cut {
            b.truncate(c.min(b.len()));
        }
        let p = write(&format!("flip-{}.gguf", std::thread::current().name().unwrap_or("t").len()), &b);
        let _ = GgufFile::open(&p);
    }
}
