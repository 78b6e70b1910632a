//! Tests with the real SmolLM2-135M-Instruct GGUF (path from MILLWRIGHT_MODEL, default
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the workspace root): tokenizer ids and
//! round-trips, deterministic greedy output, prefix-cache equivalence, stop sequences, the
//! wall-clock budget, the bounded cache and the queue's busy answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{GenParams, LanguageModel, Prompt, SlmError, StopReason};
use millwright_slm::{Engine, EngineOptions, ModelHandle, Utf8Stream};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

fn model_path() -> PathBuf {
    match std::env::var("MILLWRIGHT_MODEL") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

fn engine() -> &'static Mutex<Engine> {
    static E: OnceLock<Mutex<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        Mutex::new(Engine::load(&model_path(), &EngineOptions::default()).expect("load SmolLM2"))
    })
}

const SYSTEM: &str = "You are a maintenance assistant for a water treatment plant. Answer in one or two short sentences.";

fn greedy(max_tokens: usize) -> GenParams {
    GenParams {
        max_tokens,
        ..GenParams::default()
    }
}

#[test]
fn tokenizer_matches_known_ids() {
    let e = engine().lock().unwrap();
    let t = e.tokenizer();
    assert_eq!(t.encode("Hello world"), vec![19556, 905]);
    // specials are single tokens, and no space is inserted after them
    let ids = t.encode("<|im_start|>user\nHi<|im_end|>\n");
    assert_eq!(ids[0], 1);
    assert_eq!(t.decode(&ids[1..2]), "user");
    assert!(ids.contains(&2));
    // digits one by one
    let ids = t.encode("2024");
    assert_eq!(ids.len(), 4);
    assert_eq!(t.decode(&ids[..1]), "2");
}

#[test]
fn tokenizer_round_trips_units_digits_whitespace_emoji() {
    let e = engine().lock().unwrap();
    let t = e.tokenizer();
    for text in [
        "Bearing at 71.3 °C, vibration 4.8 mm/s, flow 42.5 m³/h, runout 12 µm.",
        "line 1\nline 2\n\n\tindented\t tab  two  spaces",
        "Pump 🔥 overheating 🚨 – check seal ✔",
        "  leading and trailing  ",
    ] {
        let ids = t.encode(text);
        assert_eq!(t.decode(&ids), text, "round trip of {text:?} via {ids:?}");
    }
}

#[test]
fn streamed_decoding_never_splits_characters() {
    let e = engine().lock().unwrap();
    let t = e.tokenizer();
    let text = "Temp 80 °C 🔥 µm";
    let ids = t.encode(text);
    let mut s = Utf8Stream::new();
    let mut out = String::new();
    let mut held_back = false;
    for id in ids {
        let piece = s.push(t.token_bytes(id));
        if piece.is_empty() {
            held_back = true;
        }
        out.push_str(&piece);
    }
    out.push_str(&s.finish());
    assert_eq!(out, text);
    assert!(
        held_back,
        "expected at least one token that ends inside a character"
    );
}

#[test]
fn greedy_answer_is_sensible_and_stable() {
    let mut e = engine().lock().unwrap();
    let p = Prompt::new(SYSTEM, "What is the capital of France?");
    e.clear_cache();
    let a = e.generate(&p, &greedy(24), &mut |_| {}).unwrap();
    e.clear_cache();
    let b = e.generate(&p, &greedy(24), &mut |_| {}).unwrap();
    assert!(a.text.contains("Paris"), "answer: {:?}", a.text);
    assert_eq!(a.text, b.text);
    assert_eq!(a.cached_tokens, 0);
    assert!(a.generated_tokens > 0 && a.prompt_tokens > 20);
    // warm runs (prompt served from the cache) are stable too; they may differ from the cold
    // run in rare near-ties because a 1-token step and a whole prompt use different kernels
    let c = e.generate(&p, &greedy(24), &mut |_| {}).unwrap();
    let d = e.generate(&p, &greedy(24), &mut |_| {}).unwrap();
    assert!(
        c.cached_tokens > 20,
        "warm run should reuse the prompt: {}",
        c.cached_tokens
    );
    assert_eq!(c.text, d.text);
    assert!(c.text.contains("Paris"), "answer: {:?}", c.text);
}

#[test]
fn cached_prefix_gives_the_same_logits_as_a_full_recompute() {
    let e = engine().lock().unwrap();
    let p = Prompt::new(
        SYSTEM,
        "The pump P-101 bearing reads 82 °C. What should I check?",
    );
    let ids = e.encode_prompt(&p);
    let prefix = e.tokenizer().encode(&e.template().render_system_prefix(&p));
    assert!(ids.starts_with(&prefix) && prefix.len() > 10);
    let m = e.model();
    let mut full = m.new_cache();
    let l_full = m.forward(&ids, &mut full).unwrap();
    let mut cached = m.new_cache();
    m.forward(&prefix, &mut cached).unwrap();
    let keep = cached.clone();
    let l_cached = m.forward(&ids[prefix.len()..], &mut cached).unwrap();
    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0
    };
    assert_eq!(argmax(&l_full), argmax(&l_cached));
    // The kernels compute each token the same way alone or in a batch: not close, equal.
    let max_diff = l_full
        .iter()
        .zip(&l_cached)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(max_diff, 0.0, "logits differ by {max_diff}");
    // the kept prefix serves another question the same way
    let mut again = keep.clone();
    let l_again = m.forward(&ids[prefix.len()..], &mut again).unwrap();
    assert_eq!(l_again, l_cached);
    assert_eq!(keep.len(), prefix.len());
}

#[test]
fn engine_warms_and_reuses_the_system_prefix() {
    let mut e = engine().lock().unwrap();
    e.clear_cache();
    let p1 = Prompt::new(SYSTEM, "Why does a pump cavitate?");
    let n = e.warm_prefix(&p1).unwrap();
    assert!(n > 10);
    let c1 = e.generate(&p1, &greedy(8), &mut |_| {}).unwrap();
    assert!(c1.cached_tokens >= n, "{} < {n}", c1.cached_tokens);
    let p2 = Prompt::new(SYSTEM, "What does a high motor current mean?");
    let c2 = e.generate(&p2, &greedy(8), &mut |_| {}).unwrap();
    assert!(c2.cached_tokens >= n);
    // same answer as a cold engine state
    e.clear_cache();
    let cold = e.generate(&p2, &greedy(8), &mut |_| {}).unwrap();
    assert_eq!(cold.text, c2.text);
    assert_eq!(cold.cached_tokens, 0);
}

#[test]
fn stop_sequence_cuts_the_answer_and_the_stream() {
    let mut e = engine().lock().unwrap();
    let p = Prompt::new(SYSTEM, "List three checks for an overheating pump bearing.");
    let full = e.generate(&p, &greedy(60), &mut |_| {}).unwrap();
    let words: Vec<&str> = full.text.split_whitespace().collect();
    assert!(words.len() > 6, "answer too short to test: {:?}", full.text);
    let stop = format!(" {}", words[4]);
    let at = full.text.find(&stop).unwrap();
    let mut streamed = String::new();
    let params = GenParams {
        stop: vec![stop.clone()],
        ..greedy(60)
    };
    let cut = e
        .generate(&p, &params, &mut |s| streamed.push_str(s))
        .unwrap();
    assert_eq!(cut.stop_reason, StopReason::StopSequence);
    assert_eq!(cut.text, full.text[..at]);
    assert_eq!(streamed, cut.text);
}

#[test]
fn answer_prefix_is_continued_not_repeated() {
    let mut e = engine().lock().unwrap();
    let mut p = Prompt::new(SYSTEM, "What is the capital of France?");
    p.answer_prefix = Some("The capital of France is".into());
    let c = e.generate(&p, &greedy(6), &mut |_| {}).unwrap();
    assert!(c.text.contains("Paris"), "{:?}", c.text);
    assert!(!c.text.contains("capital of France is"));
}

#[test]
fn wall_clock_budget_stops_generation() {
    let mut e = engine().lock().unwrap();
    let p = Prompt::new(
        SYSTEM,
        "Write a long numbered list of pump maintenance tasks.",
    );
    let params = GenParams {
        budget_ms: Some(300),
        max_tokens: 5000,
        stop: vec![],
        ..GenParams::default()
    };
    let c = e.generate(&p, &params, &mut |_| {}).unwrap();
    // either the budget ended it or the model finished first; it must not run to 5000 tokens
    assert!(
        matches!(c.stop_reason, StopReason::Budget | StopReason::Eos),
        "{:?}",
        c.stop_reason
    );
    assert!(c.total_ms < 3000.0, "took {} ms", c.total_ms);
    let zero = GenParams {
        budget_ms: Some(0),
        ..greedy(50)
    };
    let c = e.generate(&p, &zero, &mut |_| {}).unwrap();
    assert_eq!(c.stop_reason, StopReason::Budget);
    assert_eq!(c.generated_tokens, 0);
}

#[test]
fn cache_is_bounded_by_the_context() {
    let mut e = Engine::load(
        &model_path(),
        &EngineOptions {
            max_context: 64,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let long = Prompt::new(SYSTEM, "pump ".repeat(80));
    match e.generate(&long, &greedy(5), &mut |_| {}) {
        Err(SlmError::PromptTooLong {
            tokens,
            context: 64,
        }) => assert!(tokens > 64),
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    let p = Prompt::new("Be long.", "Write a long story about a pump.");
    let c = e
        .generate(
            &p,
            &GenParams {
                repeat_penalty: 1.3,
                ..greedy(500)
            },
            &mut |_| {},
        )
        .unwrap();
    assert!(
        c.prompt_tokens + c.generated_tokens <= 65,
        "{} + {}",
        c.prompt_tokens,
        c.generated_tokens
    );
    assert!(e.cached_tokens() <= 64);
    let m = e.model();
    let mut cache = m.new_cache();
    m.forward(&vec![100u32; 64], &mut cache).unwrap();
    assert!(matches!(
        m.forward(&[100], &mut cache),
        Err(SlmError::PromptTooLong { .. })
    ));
    assert_eq!(cache.len(), 64);
    // 30 layers x (k + v) x 3 kv heads x 64 dims x 64 positions x 4 bytes
    assert!(
        cache.memory_bytes() <= 30 * 2 * 192 * 64 * 4,
        "{}",
        cache.memory_bytes()
    );
}

#[test]
fn full_queue_answers_busy() {
    let e = Engine::load(&model_path(), &EngineOptions::default()).unwrap();
    let handle = ModelHandle::spawn(Box::new(e), 1).unwrap();
    let p = Prompt::new(
        SYSTEM,
        "Write a long numbered list of pump maintenance tasks.",
    );
    let params = GenParams {
        max_tokens: 60,
        ..GenParams::default()
    };
    // The first request runs (its job says so when it starts), the second waits in the queue
    // of one, the third is refused at once. Jobs, not timed sleeps, so a slow machine cannot
    // reorder them (and two waiting generation requests would run as one batch).
    let (started_tx, started) = std::sync::mpsc::channel();
    let (done_tx, done) = std::sync::mpsc::channel();
    let (p1, q1, d1) = (p.clone(), params.clone(), done_tx.clone());
    handle
        .try_run(Box::new(move |m: &mut dyn LanguageModel| {
            let _ = started_tx.send(());
            let _ = d1.send(m.generate(&p1, &q1, &mut |_| {}));
        }))
        .unwrap();
    started
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    let (p2, q2) = (p.clone(), params.clone());
    handle
        .try_run(Box::new(move |m: &mut dyn LanguageModel| {
            let _ = done_tx.send(m.generate(&p2, &q2, &mut |_| {}));
        }))
        .unwrap();
    let third = handle.generate_blocking(p.clone(), params.clone(), None);
    assert!(matches!(third, Err(SlmError::Busy(1))), "{third:?}");
    let wait = std::time::Duration::from_secs(300);
    let a = done.recv_timeout(wait).unwrap().unwrap();
    let b = done.recv_timeout(wait).unwrap().unwrap();
    assert!(a.generated_tokens > 0 && b.generated_tokens > 0);
    assert!(
        b.cached_tokens > 0,
        "the second request reuses the first one's prompt"
    );
    // the async path through a tokio runtime
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let c = rt
        .block_on(handle.generate(
            Prompt::new(SYSTEM, "What is the capital of France?"),
            GenParams {
                max_tokens: 12,
                ..GenParams::default()
            },
        ))
        .unwrap();
    assert!(c.text.contains("Paris"), "{:?}", c.text);
}
