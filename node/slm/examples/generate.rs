//! Generates an answer with a GGUF model: `generate MODEL "question" [format]`. For manual checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use millwright_core::{GenParams, LanguageModel, Prompt};
use millwright_slm::{Engine, EngineOptions, WeightFormat};
use std::io::Write;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let fmt = a
        .get(3)
        .and_then(|s| WeightFormat::parse(s))
        .unwrap_or_default();
    let mut e = Engine::load(
        a[1].as_ref(),
        &EngineOptions {
            weight_format: fmt,
            ..Default::default()
        },
    )
    .unwrap();
    println!(
        "loaded {} in {:.0} ms, template {:?}",
        e.name(),
        e.load_ms(),
        e.template()
    );
    let p = Prompt::new(
        "You are a concise maintenance assistant for industrial machines.",
        a[2].clone(),
    );
    let ids = e.encode_prompt(&p);
    println!("prompt tokens: {}", ids.len());
    if a.get(4).map(String::as_str) == Some("raw") {
        let mut ids: Vec<u32> = e.tokenizer().bos().into_iter().collect();
        ids.extend(e.tokenizer().encode(&a[2]));
        println!("raw ids: {ids:?}");
        let c = e
            .generate_tokens(
                &ids,
                &GenParams {
                    max_tokens: 30,
                    ..Default::default()
                },
                &mut |s| {
                    print!("{s}");
                    std::io::stdout().flush().unwrap();
                },
            )
            .unwrap();
        println!("\n{:?}", c.stop_reason);
        return;
    }
    let c = e
        .generate(
            &p,
            &GenParams {
                max_tokens: 100,
                ..Default::default()
            },
            &mut |s| {
                print!("{s}");
                std::io::stdout().flush().unwrap();
            },
        )
        .unwrap();
    println!(
        "\n{:?} gen={} ttft={:.0}ms total={:.0}ms tok/s={:.1}",
        c.stop_reason,
        c.generated_tokens,
        c.ttft_ms,
        c.total_ms,
        (c.generated_tokens as f64 - 1.0) / ((c.total_ms - c.ttft_ms) / 1000.0)
    );
}
