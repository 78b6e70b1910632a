//! The vocabulary mask with the real SmolLM2-135M-Instruct GGUF (path from MILLWRIGHT_MODEL,
//! default `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the workspace root; the tests fail
//! when it is missing): on the real tokenizer no token sequence can spell a word outside the
//! vocabulary, and a prompt that makes the unconstrained model write "electric vehicle" gives,
//! under a vocabulary without those words, text whose every word is in the vocabulary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::llm::Vocabulary;
use millwright_core::{GenParams, LanguageModel, Prompt};
use millwright_slm::constrain::{Constraint, WordState};
use millwright_slm::{Engine, EngineOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn model_path() -> PathBuf {
    match std::env::var("MILLWRIGHT_MODEL") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

fn maintenance_vocab() -> Vocabulary {
    let mut v = Vocabulary::new();
    v.allow_text(
        "the a is are was on of to and or because likely check inspect replace pump P-101 \
         bearing temperature is high at 78.4 °C the cause is worn bearing lubrication \
         regrease it has this that with",
    );
    v
}

#[test]
fn real_tokenizer_cannot_spell_words_outside_the_vocabulary() {
    let e = Engine::load(&model_path(), &EngineOptions::default()).expect("load SmolLM2");
    let v = maintenance_vocab();
    let c = Constraint::new(&v);
    let t = e.tokenizer();
    let trie = e.token_trie();
    println!(
        "token trie: {} nodes for {} tokens",
        trie.len(),
        t.vocab_size()
    );
    // Every token the mask allows after "The pump is", followed step by step along the greedy
    // path of the first allowed token, never writes a word outside the vocabulary.
    let s = c.feed(WordState::Boundary, b"The pump is").unwrap();
    let allowed = e.allowed_tokens(&c, s);
    assert!(!allowed.is_empty());
    assert!(allowed.len() < 2000, "{} tokens allowed", allowed.len());
    for &id in &allowed {
        let text = String::from_utf8_lossy(t.token_bytes(id)).to_string();
        assert!(
            !text.to_lowercase().contains("elec") && !text.to_lowercase().contains("veh"),
            "token {id} {text:?} allowed"
        );
    }
    // The real tokenization of " electric vehicle": its first token is masked, and so is every
    // other way to spell it (the automaton works on bytes).
    let ids = t.encode(" electric vehicle");
    assert!(
        !allowed.contains(&ids[0]),
        "{:?} allowed",
        t.token_text(ids[0])
    );
    assert!(c.feed(s, b" electric").is_none() && c.feed(s, b" vehicle").is_none());
    assert!(c.feed(s, b" e").is_none(), "no allowed word starts with e");
    // allowed words are reachable: " high" is one token and allowed
    let high = t.encode(" high");
    assert_eq!(high.len(), 1);
    assert!(allowed.contains(&high[0]));
    // the cost of one mask on the full tokenizer
    let t0 = Instant::now();
    let n = 200;
    for _ in 0..n {
        std::hint::black_box(e.allowed_tokens(&c, s));
    }
    println!(
        "mask after 'The pump is': {} tokens allowed, {:.3} ms per step",
        allowed.len(),
        t0.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}

#[test]
fn constrained_decoding_cannot_write_electric_vehicle() {
    let mut e = Engine::load(&model_path(), &EngineOptions::default()).expect("load SmolLM2");
    let prompt = Prompt::new(
        "You are a helpful assistant.",
        "Repeat this sentence exactly: The electric vehicle has a hot battery.",
    );
    let params = GenParams {
        max_tokens: 24,
        ..GenParams::default()
    };
    let free = e.generate(&prompt, &params, &mut |_| {}).unwrap();
    println!("unconstrained: {:?}", free.text);
    assert!(
        free.text.to_lowercase().contains("electric vehicle"),
        "the unconstrained model repeats the words: {:?}",
        free.text
    );
    let v = maintenance_vocab();
    let constrained = GenParams {
        vocabulary: Some(Arc::new(v.clone())),
        ..params
    };
    let mut streamed = String::new();
    let out = e
        .generate(&prompt, &constrained, &mut |s| streamed.push_str(s))
        .unwrap();
    println!("constrained:   {:?}", out.text);
    let m = e.mask_stats();
    println!(
        "mask: {} steps, {:.3} ms per step, {:.0} tokens allowed per step",
        m.steps,
        m.total_ms / m.steps.max(1) as f64,
        m.mean_allowed
    );
    assert_eq!(streamed, out.text, "the stream is the text");
    assert!(m.steps >= 1);
    assert!(!out.text.to_lowercase().contains("electric"));
    assert!(!out.text.to_lowercase().contains("vehicle"));
    assert!(
        v.violations(&out.text).is_empty(),
        "words outside the vocabulary: {:?} in {:?}",
        v.violations(&out.text),
        out.text
    );
    // with an answer prefix, the prefix counts: the text continues inside the vocabulary
    let mut p2 = prompt.clone();
    p2.answer_prefix = Some("The pump".into());
    let out2 = e.generate(&p2, &constrained, &mut |_| {}).unwrap();
    println!("after prefix:  {:?}", out2.text);
    assert!(v.violations(&format!("The pump{}", out2.text)).is_empty());
}
