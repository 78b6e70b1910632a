//! Missing, truncated and corrupt model files give `SlmError::ModelFile` naming the file and
//! the problem (never a panic), and `load_best` falls back instead of failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{GenParams, Prompt, SlmError};
use millwright_slm::{load_best, Engine, EngineOptions};
use std::path::{Path, PathBuf};

fn model_path() -> PathBuf {
    match std::env::var("MILLWRIGHT_MODEL") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mw-slm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn load_err(p: &Path) -> String {
    match Engine::load(p, &EngineOptions::default()) {
        Err(SlmError::ModelFile { path, reason }) => {
            assert_eq!(path, p.display().to_string());
            reason
        }
        Err(other) => panic!("expected ModelFile, got {other:?}"),
        Ok(_) => panic!("{} loaded although it is broken", p.display()),
    }
}

fn prefix_of_model(bytes: usize) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::open(model_path()).unwrap();
    let mut buf = vec![0u8; bytes];
    f.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn missing_file() {
    let r = load_err(Path::new("/nonexistent/dir/model.gguf"));
    assert!(r.contains("not found"), "{r}");
}

#[test]
fn truncated_in_the_tensor_data() {
    let p = tmp("trunc-data.gguf");
    std::fs::write(&p, prefix_of_model(40 << 20)).unwrap();
    let r = load_err(&p);
    assert!(r.contains("truncated"), "{r}");
    std::fs::remove_file(&p).ok();
}

#[test]
fn truncated_in_the_header() {
    let p = tmp("trunc-head.gguf");
    std::fs::write(&p, prefix_of_model(100_000)).unwrap();
    let r = load_err(&p);
    assert!(r.contains("truncated"), "{r}");
    std::fs::remove_file(&p).ok();
}

#[test]
fn not_a_gguf_file() {
    let p = tmp("text.gguf");
    std::fs::write(
        &p,
        "this is not a model, just some text that is long enough",
    )
    .unwrap();
    let r = load_err(&p);
    assert!(r.contains("not a GGUF"), "{r}");
    std::fs::remove_file(&p).ok();
}

#[test]
fn corrupt_length_fields_do_not_crash() {
    // overwrite the first metadata key length with a huge value, then the counts
    let mut b = prefix_of_model(2 << 20);
    b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    let p = tmp("corrupt-len.gguf");
    std::fs::write(&p, &b).unwrap();
    let r = load_err(&p);
    assert!(r.contains("corrupt") || r.contains("truncated"), "{r}");
    let mut b = prefix_of_model(2 << 20);
    b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let r = load_err(&p);
    assert!(r.contains("corrupt"), "{r}");
    std::fs::remove_file(&p).ok();
}

#[test]
fn load_best_falls_back_with_the_reason() {
    let p = tmp("fallback-trunc.gguf");
    std::fs::write(&p, prefix_of_model(1 << 20)).unwrap();
    let mut m = load_best(std::slice::from_ref(&p), &EngineOptions::default());
    let err = m
        .generate(&Prompt::new("s", "u"), &GenParams::default(), &mut |_| {})
        .unwrap_err();
    match err {
        SlmError::Unavailable(r) => assert!(
            r.contains("fallback-trunc.gguf") && r.contains("truncated"),
            "{r}"
        ),
        other => panic!("unexpected {other:?}"),
    }
    std::fs::remove_file(&p).ok();
}
