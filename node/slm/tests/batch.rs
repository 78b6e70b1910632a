//! Batched generation with the real SmolLM2-135M-Instruct GGUF (path from MILLWRIGHT_MODEL,
//! default `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the workspace root; the tests fail
//! when it is missing): a batch's logits equal each sequence's own, greedy (and seeded)
//! requests write the same text in a batch as alone, each with its own parameters, and a
//! vocabulary-constrained request inside a batch writes only allowed words.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::llm::Vocabulary;
use millwright_core::{GenParams, LanguageModel, Prompt, StopReason};
use millwright_slm::{Engine, EngineOptions};
use std::path::PathBuf;
use std::sync::Arc;

fn model_path() -> PathBuf {
    match std::env::var("MILLWRIGHT_MODEL") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

fn engine() -> Engine {
    Engine::load(&model_path(), &EngineOptions::default()).expect("load SmolLM2")
}

const SYSTEM: &str = "You are a maintenance assistant for a water plant. Answer in one or two \
short sentences, using only the facts given.";

#[test]
fn batch_logits_equal_each_sequences_own() {
    let e = engine();
    let m = e.model();
    let prompts: Vec<Vec<u32>> = [
        "Pump P-101 bearing temperature",
        "The motor current of pump P-102 rose from 18.2 A to 21.7 A within two hours, and",
        "Vibration",
    ]
    .iter()
    .map(|t| e.tokenizer().encode(t))
    .collect();
    let next = [28u32, 30, 1183];
    // alone: prompt then one token
    let mut alone = Vec::new();
    for (p, &t) in prompts.iter().zip(&next) {
        let mut c = m.new_cache();
        m.forward(p, &mut c).unwrap();
        alone.push(m.forward(&[t], &mut c).unwrap());
    }
    // together: the same caches, one batched step
    let mut caches: Vec<_> = prompts
        .iter()
        .map(|p| {
            let mut c = m.new_cache();
            m.forward(p, &mut c).unwrap();
            c
        })
        .collect();
    let mut refs: Vec<_> = caches.iter_mut().collect();
    let batch = m.forward_batch(&next, &mut refs).unwrap();
    let vocab = m.config().vocab;
    assert_eq!(batch.len(), 3 * vocab);
    for (b, own) in alone.iter().enumerate() {
        let row = &batch[b * vocab..(b + 1) * vocab];
        assert!(
            row.iter().zip(own).all(|(x, y)| x.to_bits() == y.to_bits()),
            "sequence {b}: batched logits differ"
        );
    }
    for (c, p) in caches.iter().zip(&prompts) {
        assert_eq!(c.len(), p.len() + 1);
    }
    // a bad token fails the step and leaves every cache as it was
    let mut refs: Vec<_> = caches.iter_mut().collect();
    assert!(m.forward_batch(&[1, u32::MAX, 2], &mut refs).is_err());
    for (c, p) in caches.iter().zip(&prompts) {
        assert_eq!(c.len(), p.len() + 1);
    }
}

#[test]
fn batched_output_equals_one_at_a_time() {
    let mut e = engine();
    let greedy = GenParams {
        max_tokens: 24,
        ..GenParams::default()
    };
    let questions = [
        "Why is P-101 vibrating?",
        "What was the max bearing temperature on P-101 in the last hour? The readings were 71.3, \
         72.8, 74.1 and 78.4 °C.",
        "Which machines need attention this shift?",
        "Hi",
        "The motor current of pump P-102 rose from 18.2 A to 21.7 A while the discharge pressure \
         fell from 3.1 bar to 2.6 bar and the seal was replaced 41 days ago. What should the \
         technician check first?",
    ];
    let mut reqs: Vec<(Prompt, GenParams)> = questions
        .iter()
        .map(|q| (Prompt::new(SYSTEM, *q), greedy.clone()))
        .collect();
    // other system prompt, own limits, a stop sequence, seeded sampling
    reqs.push((
        Prompt::new("You are a poet.", "Write about pumps."),
        GenParams {
            max_tokens: 7,
            ..greedy.clone()
        },
    ));
    reqs.push((
        Prompt::new(SYSTEM, "List three causes of bearing overheating."),
        GenParams {
            max_tokens: 40,
            stop: vec!["\n".into()],
            ..greedy.clone()
        },
    ));
    reqs.push((
        Prompt::new(SYSTEM, "Why is P-101 vibrating?"),
        GenParams {
            max_tokens: 20,
            temperature: 0.8,
            seed: 7,
            ..greedy.clone()
        },
    ));
    let alone: Vec<_> = reqs
        .iter()
        .map(|(p, g)| e.generate(p, g, &mut |_| {}).unwrap())
        .collect();
    let mut streamed = vec![String::new(); reqs.len()];
    e.clear_cache();
    let together = e.generate_batch(&reqs, &mut |i, s| streamed[i].push_str(s));
    assert_eq!(together.len(), reqs.len());
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        let b = b.as_ref().unwrap();
        println!(
            "{i}: {:?} ({} tokens, {:?})",
            b.text, b.generated_tokens, b.stop_reason
        );
        assert_eq!(a.text, b.text, "request {i}");
        assert_eq!(a.generated_tokens, b.generated_tokens, "request {i}");
        assert_eq!(a.stop_reason, b.stop_reason, "request {i}");
        assert_eq!(a.prompt_tokens, b.prompt_tokens, "request {i}");
        assert_eq!(streamed[i], b.text, "request {i}: the stream is the text");
        assert!(!b.text.is_empty(), "request {i} wrote nothing");
    }
    assert!(together[5].as_ref().unwrap().generated_tokens <= 7);
    assert!(!together[6].as_ref().unwrap().text.contains('\n'));
    // the shared system prompt was computed once and reused by the requests after the first
    let reused = together
        .iter()
        .filter(|c| c.as_ref().unwrap().cached_tokens > 10)
        .count();
    assert!(reused >= 6, "{reused} requests reused the shared prefix");
    // a request that cannot run fails alone
    let mut bad = reqs[..2].to_vec();
    bad.push((Prompt::new(SYSTEM, "x ".repeat(3000)), greedy.clone()));
    let r = e.generate_batch(&bad, &mut |_, _| {});
    assert!(r[2].is_err());
    assert_eq!(r[0].as_ref().unwrap().text, alone[0].text);
    assert_eq!(r[1].as_ref().unwrap().text, alone[1].text);
    assert_eq!(r[0].as_ref().unwrap().stop_reason, alone[0].stop_reason);
    assert!(matches!(
        r[1].as_ref().unwrap().stop_reason,
        StopReason::Eos | StopReason::MaxTokens
    ));
}

#[test]
fn a_constrained_request_in_a_batch_uses_only_allowed_words() {
    let mut e = engine();
    let mut v = Vocabulary::new();
    v.allow_text(
        "the a is are was on of to and or because likely check inspect replace pump P-101 \
         bearing temperature is high at 78.4 °C the cause is worn bearing lubrication \
         regrease it has this that with",
    );
    let prompt = Prompt::new(
        "You are a helpful assistant.",
        "Repeat this sentence exactly: The electric vehicle has a hot battery.",
    );
    let free = GenParams {
        max_tokens: 24,
        ..GenParams::default()
    };
    let constrained = GenParams {
        vocabulary: Some(Arc::new(v.clone())),
        ..free.clone()
    };
    let reqs = vec![
        (prompt.clone(), free.clone()),
        (prompt.clone(), constrained.clone()),
        (
            Prompt::new("You are a helpful assistant.", "Why is P-101 hot?"),
            free,
        ),
        (
            Prompt::new("You are a helpful assistant.", "Why is P-101 hot?"),
            constrained.clone(),
        ),
    ];
    let alone = e.generate(&prompt, &constrained, &mut |_| {}).unwrap();
    let out = e.generate_batch(&reqs, &mut |_, _| {});
    let texts: Vec<String> = out.into_iter().map(|r| r.unwrap().text).collect();
    println!("{texts:#?}");
    assert!(texts[0].to_lowercase().contains("electric vehicle"));
    for t in [&texts[1], &texts[3]] {
        assert!(!t.to_lowercase().contains("electric"), "{t:?}");
        assert!(v.violations(t).is_empty(), "{:?} in {t:?}", v.violations(t));
    }
    assert_eq!(texts[1], alone.text);
}
