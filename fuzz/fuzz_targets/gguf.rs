//! Fuzz target: GGUF header, metadata and tensor-table parsing and checks (`GgufFile::open`)
//! of arbitrary bytes, written to a temporary file (the parser reads files).
#![no_main]

use libfuzzer_sys::fuzz_target;
use millwright_slm::gguf::GgufFile;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("millwright-fuzz-{}.gguf", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = GgufFile::open(&path);
    }
});
