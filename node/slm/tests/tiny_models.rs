//! Tiny generated GGUF files (random weights, real tensor names and metadata) for the
//! architectures without a real file here: qwen2 (q/k/v biases, byte-level BPE, ChatML),
//! phi3 (fused qkv and gate_up, SentencePiece vocabulary, Phi-3 template), gemma3 (q/k norms,
//! post norms, sliding window) and llama. Each loads, runs a forward pass, keeps the
//! prefix-cache equivalence and generates through the public API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use millwright_core::{GenParams, LanguageModel, Prompt};
use millwright_slm::{ChatTemplate, Engine, EngineOptions};
use std::path::PathBuf;

const H: usize = 64;
const HEADS: usize = 4;
const KV: usize = 2;
const HD: usize = 16;
const FF: usize = 128;
const LAYERS: usize = 2;

fn bytes_to_unicode() -> Vec<char> {
    let mut n = 0;
    (0..256u32)
        .map(|b| {
            if (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b) {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(256 + n - 1).unwrap()
            }
        })
        .collect()
}

fn strs(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

/// (tokens, types, scores, merges) for a byte-level BPE or SentencePiece vocabulary.
fn vocab(spm: bool, specials: &[&str]) -> (Vec<String>, Vec<i32>, Vec<f32>, Vec<String>) {
    let mut toks: Vec<String> = Vec::new();
    let mut types = Vec::new();
    let mut merges = Vec::new();
    for s in specials {
        toks.push(s.to_string());
        types.push(3);
    }
    if spm {
        for b in 0..256 {
            toks.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for p in [
            "\u{2581}",
            "a",
            "e",
            "p",
            "u",
            "m",
            "\u{2581}p",
            "pu",
            "um",
            "mp",
            "\u{2581}pump",
        ] {
            toks.push(p.to_string());
            types.push(1);
        }
    } else {
        for c in bytes_to_unicode() {
            toks.push(c.to_string());
            types.push(1);
        }
        for (a, b) in [("p", "u"), ("pu", "m"), ("pum", "p"), ("Ġ", "pump")] {
            merges.push(format!("{a} {b}"));
            toks.push(format!("{a}{b}"));
            types.push(1);
        }
    }
    let scores = (0..toks.len()).map(|i| -(i as f32)).collect();
    (toks, types, scores, merges)
}

fn q(shape: (usize, usize), dtype: GgmlDType) -> QTensor {
    let t = Tensor::randn(0f32, 0.1, shape, &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

fn ones(n: usize) -> QTensor {
    QTensor::quantize(
        &Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap()
}

fn write_tiny(arch: &str) -> PathBuf {
    let spm = matches!(arch, "phi3" | "gemma3");
    let specials: &[&str] = match arch {
        "qwen2" => &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "phi3" => &[
            "<unk>",
            "<s>",
            "</s>",
            "<|system|>",
            "<|user|>",
            "<|assistant|>",
            "<|end|>",
        ],
        "gemma3" => &[
            "<pad>",
            "<eos>",
            "<bos>",
            "<start_of_turn>",
            "<end_of_turn>",
        ],
        _ => &[
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ],
    };
    let (toks, types, scores, merges) = vocab(spm, specials);
    let n_vocab = toks.len();
    let hd = if arch == "gemma3" { 32 } else { HD };
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(format!("tiny-{arch}"))),
        (format!("{arch}.block_count"), Value::U32(LAYERS as u32)),
        (format!("{arch}.embedding_length"), Value::U32(H as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(FF as u32)),
        (
            format!("{arch}.attention.head_count"),
            Value::U32(HEADS as u32),
        ),
        (
            format!("{arch}.attention.head_count_kv"),
            Value::U32(KV as u32),
        ),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        ),
        (format!("{arch}.context_length"), Value::U32(256)),
        (format!("{arch}.rope.freq_base"), Value::F32(10000.0)),
        (
            "tokenizer.ggml.model".into(),
            Value::String(if spm { "llama" } else { "gpt2" }.into()),
        ),
        ("tokenizer.ggml.tokens".into(), strs(&toks)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.iter().map(|t| Value::I32(*t)).collect()),
        ),
        (
            "tokenizer.ggml.eos_token_id".into(),
            Value::U32(if arch == "gemma3" { 1 } else { 2 }),
        ),
    ];
    if spm {
        meta.push((
            "tokenizer.ggml.scores".into(),
            Value::Array(scores.iter().map(|s| Value::F32(*s)).collect()),
        ));
        meta.push((
            "tokenizer.ggml.add_space_prefix".into(),
            Value::Bool(arch != "gemma3"),
        ));
        meta.push((
            "tokenizer.ggml.bos_token_id".into(),
            Value::U32(if arch == "gemma3" { 2 } else { 1 }),
        ));
    } else {
        meta.push(("tokenizer.ggml.merges".into(), strs(&merges)));
        meta.push((
            "tokenizer.ggml.pre".into(),
            Value::String(
                if arch == "qwen2" {
                    "qwen2"
                } else {
                    "llama-bpe"
                }
                .into(),
            ),
        ));
    }
    if arch == "gemma3" {
        meta.push(("gemma3.attention.key_length".into(), Value::U32(hd as u32)));
        meta.push((
            "gemma3.attention.value_length".into(),
            Value::U32(hd as u32),
        ));
        meta.push(("gemma3.attention.sliding_window".into(), Value::U32(4)));
        meta.push(("gemma3.block_count".into(), Value::U32(6)));
    }
    let layers = if arch == "gemma3" { 6 } else { LAYERS };
    let (qd, kvd) = (HEADS * hd, KV * hd);
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), q((n_vocab, H), GgmlDType::Q8_0)),
        ("output_norm.weight".into(), ones(H)),
    ];
    if arch == "phi3" || arch == "llama" {
        tensors.push(("output.weight".into(), q((n_vocab, H), GgmlDType::Q4_1)));
    }
    for i in 0..layers {
        let p = |s: &str| format!("blk.{i}.{s}");
        tensors.push((p("attn_norm.weight"), ones(H)));
        tensors.push((p("ffn_norm.weight"), ones(H)));
        if arch == "phi3" {
            tensors.push((p("attn_qkv.weight"), q((qd + 2 * kvd, H), GgmlDType::Q4_1)));
            tensors.push((p("ffn_up.weight"), q((2 * FF, H), GgmlDType::Q8_0)));
        } else {
            tensors.push((p("attn_q.weight"), q((qd, H), GgmlDType::Q4_1)));
            tensors.push((p("attn_k.weight"), q((kvd, H), GgmlDType::Q4_1)));
            // llama: v in another type than q/k (as in Q4_K_M files), so the fused q|k|v
            // projection holds matrices of two block types side by side
            let v_type = if arch == "llama" {
                GgmlDType::Q8_0
            } else {
                GgmlDType::Q4_1
            };
            tensors.push((p("attn_v.weight"), q((kvd, H), v_type)));
            tensors.push((p("ffn_gate.weight"), q((FF, H), GgmlDType::Q8_0)));
            tensors.push((p("ffn_up.weight"), q((FF, H), GgmlDType::F16)));
        }
        if arch == "qwen2" {
            for (n, len) in [
                ("attn_q.bias", qd),
                ("attn_k.bias", kvd),
                ("attn_v.bias", kvd),
            ] {
                let b = Tensor::randn(0f32, 0.5, len, &Device::Cpu).unwrap();
                tensors.push((p(n), QTensor::quantize(&b, GgmlDType::F32).unwrap()));
            }
        }
        if arch == "gemma3" {
            tensors.push((p("attn_q_norm.weight"), ones(hd)));
            tensors.push((p("attn_k_norm.weight"), ones(hd)));
            tensors.push((p("post_attention_norm.weight"), ones(H)));
            tensors.push((p("post_ffw_norm.weight"), ones(H)));
        }
        tensors.push((p("attn_output.weight"), q((H, qd), GgmlDType::Q8_0)));
        tensors.push((p("ffn_down.weight"), q((H, FF), GgmlDType::Q8_0)));
    }
    let path = std::env::temp_dir().join(format!("mw-slm-tiny-{arch}-{}.gguf", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &meta_refs, &t_refs).unwrap();
    path
}

fn exercise(arch: &str, expect: ChatTemplate) {
    let path = write_tiny(arch);
    let mut logits_by_format = Vec::new();
    for fmt in [
        millwright_slm::WeightFormat::Auto,
        millwright_slm::WeightFormat::Q8_0,
        millwright_slm::WeightFormat::Native,
        millwright_slm::WeightFormat::F32,
    ] {
        let mut e = Engine::load(
            &path,
            &EngineOptions {
                weight_format: fmt,
                ..EngineOptions::default()
            },
        )
        .unwrap();
        assert_eq!(e.template(), expect);
        let t = e.tokenizer().clone();
        let text = "pump a pump";
        assert_eq!(t.decode(&t.encode(text)), text, "{arch} round trip");
        let p = Prompt::new("sys", "pump up");
        let ids = e.encode_prompt(&p);
        let m = e.model().clone();
        let mut full = m.new_cache();
        let lf = m.forward(&ids, &mut full).unwrap();
        assert_eq!(lf.len(), m.config().vocab);
        assert!(
            lf.iter().all(|x| x.is_finite()),
            "{arch}: non-finite logits"
        );
        logits_by_format.push((fmt, lf.clone()));
        let mut c = m.new_cache();
        m.forward(&ids[..3], &mut c).unwrap();
        m.forward(&ids[3..5], &mut c).unwrap();
        let lc = m.forward(&ids[5..], &mut c).unwrap();
        let diff = lf
            .iter()
            .zip(&lc)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-3,
            "{arch}/{fmt:?}: cached forward differs by {diff}"
        );
        let out = e
            .generate(
                &p,
                &GenParams {
                    max_tokens: 6,
                    ..GenParams::default()
                },
                &mut |_| {},
            )
            .unwrap();
        assert!(out.generated_tokens > 0 || out.stop_reason == millwright_core::StopReason::Eos);
        // a sequence longer than gemma's window of 4 still runs
        let long = t.encode(&"pump ".repeat(12));
        let mut c2 = m.new_cache();
        let l2 = m.forward(&long, &mut c2).unwrap();
        assert!(l2.iter().all(|x| x.is_finite()));
    }
    std::fs::remove_file(&path).ok();
    // Every format computes the same model: the quantized paths stay near the f32 weights
    // (a misplaced block or column would be far off).
    let (_, reference) = logits_by_format.last().unwrap();
    let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
    for (fmt, l) in &logits_by_format {
        let diff = l
            .iter()
            .zip(reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{arch}/{fmt:?}: max |logit - f32 logit| = {diff} (max |logit| {scale})");
        assert!(
            diff <= 0.05 * scale,
            "{arch}/{fmt:?}: logits differ from f32 by {diff}"
        );
    }
}

#[test]
fn tiny_qwen2_loads_and_runs() {
    exercise("qwen2", ChatTemplate::ChatMl);
}

#[test]
fn tiny_phi3_loads_and_runs() {
    exercise("phi3", ChatTemplate::Phi3);
}

#[test]
fn tiny_gemma3_loads_and_runs() {
    exercise("gemma3", ChatTemplate::Gemma);
}

#[test]
fn tiny_llama_loads_and_runs() {
    exercise("llama", ChatTemplate::Llama3);
}

#[test]
fn qwen2_biases_are_applied() {
    // the same file with biases zeroed must give different logits
    let path = write_tiny("qwen2");
    let e = Engine::load(&path, &EngineOptions::default()).unwrap();
    let ids = e.tokenizer().encode("pump");
    let m = e.model();
    let l1 = m.forward(&ids, &mut m.new_cache()).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let mut tensors = Vec::new();
    for name in content.tensor_infos.keys() {
        let t = content.tensor(&mut f, name, &Device::Cpu).unwrap();
        let t = if name.ends_with(".bias") {
            let n = t.shape().elem_count();
            QTensor::quantize(
                &Tensor::zeros(n, candle_core::DType::F32, &Device::Cpu).unwrap(),
                GgmlDType::F32,
            )
            .unwrap()
        } else {
            t
        };
        tensors.push((name.clone(), t));
    }
    let zpath = path.with_extension("zero.gguf");
    let mut out = std::fs::File::create(&zpath).unwrap();
    let meta: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut out, &meta, &ts).unwrap();
    let z = Engine::load(&zpath, &EngineOptions::default()).unwrap();
    let l2 = z.model().forward(&ids, &mut z.model().new_cache()).unwrap();
    assert_ne!(l1, l2);
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(&zpath).ok();
}
