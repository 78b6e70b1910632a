//! Opening and checking GGUF files: header, metadata, tensor table and file size.
//!
//! Every problem becomes [`SlmError::ModelFile`] naming the file and what is wrong (missing,
//! not GGUF, truncated, tensor outside the file, missing key), so the node can log it and fall
//! back instead of crashing. Tensor data is read later by the model loader.

use candle_core::quantized::gguf_file::{Content, Value};
use millwright_core::SlmError;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An opened, checked GGUF file.
pub struct GgufFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Parsed header, metadata and tensor table.
    pub content: Content,
    /// Open handle for reading tensor data.
    pub reader: BufReader<File>,
    /// File size in bytes.
    pub size: u64,
}

/// Builds a `ModelFile` error for `path`.
pub fn file_error(path: &Path, reason: impl Into<String>) -> SlmError {
    SlmError::ModelFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl GgufFile {
    /// Opens `path`, parses the header and checks that every tensor lies inside the file.
    pub fn open(path: &Path) -> Result<Self, SlmError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => file_error(path, "file not found"),
            _ => file_error(path, format!("cannot open: {e}")),
        })?;
        let size = file
            .metadata()
            .map_err(|e| file_error(path, format!("cannot stat: {e}")))?
            .len();
        if size < 24 {
            return Err(file_error(
                path,
                format!("truncated: {size} bytes is smaller than a GGUF header"),
            ));
        }
        let mut reader = BufReader::with_capacity(1 << 20, file);
        // Walk the header with every length checked against the file size first: a corrupt
        // length field must not make the parser try to allocate exabytes (which aborts).
        precheck(&mut reader, size).map_err(|e| file_error(path, e))?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| file_error(path, format!("cannot seek: {e}")))?;
        let content = Content::read(&mut reader).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("failed to fill whole buffer") || msg.contains("UnexpectedEof") {
                file_error(
                    path,
                    format!("truncated or corrupt header/metadata ({msg})"),
                )
            } else {
                file_error(path, format!("not a valid GGUF file: {msg}"))
            }
        })?;
        check_metadata(&content).map_err(|e| file_error(path, e))?;
        let mut end_needed = content.tensor_data_offset;
        let mut worst: Option<String> = None;
        for (name, info) in &content.tensor_infos {
            let elems = info.shape.elem_count();
            let bs = info.ggml_dtype.block_size();
            if bs == 0 || elems % bs != 0 {
                return Err(file_error(
                    path,
                    format!("tensor {name}: {elems} elements not a multiple of block size {bs}"),
                ));
            }
            let bytes = (elems / bs * info.ggml_dtype.type_size()) as u64;
            let end = content
                .tensor_data_offset
                .saturating_add(info.offset)
                .saturating_add(bytes);
            if end > end_needed {
                end_needed = end;
                worst = Some(name.clone());
            }
        }
        if end_needed > size {
            return Err(file_error(
                path,
                format!(
                    "truncated: {size} bytes but tensor data (e.g. `{}`) extends to byte {end_needed}",
                    worst.unwrap_or_default()
                ),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
            reader,
            size,
        })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// A string metadata value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer metadata value of any width.
    pub fn get_usize(&self, key: &str) -> Option<usize> {
        match self.get(key)? {
            Value::U8(x) => Some(usize::from(*x)),
            Value::U16(x) => Some(usize::from(*x)),
            Value::U32(x) => usize::try_from(*x).ok(),
            Value::U64(x) => usize::try_from(*x).ok(),
            Value::I32(x) => usize::try_from(*x).ok(),
            Value::I64(x) => usize::try_from(*x).ok(),
            _ => None,
        }
    }

    /// A float metadata value.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        match self.get(key)? {
            Value::F32(x) => Some(*x),
            Value::F64(x) => Some(*x as f32),
            _ => None,
        }
    }

    /// A required integer, or a `ModelFile` error naming the key.
    pub fn req_usize(&self, key: &str) -> Result<usize, SlmError> {
        self.get_usize(key).ok_or_else(|| {
            file_error(
                &self.path,
                format!("metadata `{key}` missing or not an integer"),
            )
        })
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<String, SlmError> {
        self.get_str("general.architecture")
            .map(str::to_string)
            .ok_or_else(|| file_error(&self.path, "metadata `general.architecture` missing"))
    }
}

/// Largest context length a model file may claim.
const MAX_CONTEXT: u64 = 1 << 24;

/// Metadata values the loader sizes things by, checked against the tensor table: a block count
/// beyond the tensors, a vocabulary larger than the embedding, an absurd context length.
fn check_metadata(c: &Content) -> Result<(), String> {
    let int = |k: &str| -> Option<u64> {
        match c.metadata.get(k)? {
            Value::U8(x) => Some(u64::from(*x)),
            Value::U16(x) => Some(u64::from(*x)),
            Value::U32(x) => Some(u64::from(*x)),
            Value::U64(x) => Some(*x),
            Value::I32(x) => u64::try_from(*x).ok(),
            Value::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        }
    };
    let arch = match c.metadata.get("general.architecture") {
        Some(Value::String(a)) => a.as_str(),
        _ => "",
    };
    let n_tensors = c.tensor_infos.len() as u64;
    if let Some(n) = int(&format!("{arch}.block_count")) {
        if n == 0 || n > n_tensors {
            return Err(format!(
                "corrupt metadata: {arch}.block_count = {n} but the file has {n_tensors} tensors"
            ));
        }
        if let Some(i) = (0..n).find(|i| {
            let p = format!("blk.{i}.");
            !c.tensor_infos.keys().any(|k| k.starts_with(&p))
        }) {
            return Err(format!(
                "corrupt metadata: {arch}.block_count = {n} but there is no tensor of block {i}"
            ));
        }
    }
    if let Some(n) = int(&format!("{arch}.context_length")) {
        if n == 0 || n > MAX_CONTEXT {
            return Err(format!(
                "corrupt metadata: {arch}.context_length = {n} (must be 1..={MAX_CONTEXT})"
            ));
        }
    }
    if let Some(Value::Array(tokens)) = c.metadata.get("tokenizer.ggml.tokens") {
        if tokens.is_empty() {
            return Err("corrupt metadata: tokenizer.ggml.tokens is empty".into());
        }
        if let Some(emb) = c.tensor_infos.get("token_embd.weight") {
            let rows = emb.shape.dims().first().copied().unwrap_or(0);
            if tokens.len() > rows {
                return Err(format!(
                    "corrupt metadata: {} tokens in tokenizer.ggml.tokens but token_embd.weight has {rows} rows",
                    tokens.len()
                ));
            }
        }
    }
    Ok(())
}

/// Reads a GGUF header without allocating from untrusted lengths; returns what is wrong.
fn precheck<R: Read + Seek>(r: &mut R, size: u64) -> Result<(), String> {
    struct Cur<'a, R> {
        r: &'a mut R,
        pos: u64,
        size: u64,
    }
    impl<R: Read + Seek> Cur<'_, R> {
        fn need(&self, n: u64, what: &str) -> Result<(), String> {
            if self.pos.saturating_add(n) > self.size {
                Err(format!(
                    "truncated or corrupt header: {what} needs {n} bytes at offset {} but the file has {} bytes",
                    self.pos, self.size
                ))
            } else {
                Ok(())
            }
        }
        fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
            self.need(N as u64, what)?;
            let mut b = [0u8; N];
            self.r
                .read_exact(&mut b)
                .map_err(|e| format!("{what}: {e}"))?;
            self.pos += N as u64;
            Ok(b)
        }
        fn u32(&mut self, what: &str) -> Result<u32, String> {
            self.bytes::<4>(what).map(u32::from_le_bytes)
        }
        fn u64(&mut self, what: &str) -> Result<u64, String> {
            self.bytes::<8>(what).map(u64::from_le_bytes)
        }
        fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
            self.need(n, what)?;
            let off = i64::try_from(n).map_err(|_| format!("{what}: length {n} too large"))?;
            self.r
                .seek_relative(off)
                .map_err(|e| format!("{what}: {e}"))?;
            self.pos += n;
            Ok(())
        }
        fn string(&mut self, v1: bool, what: &str) -> Result<(), String> {
            let len = self.len(v1, what)?;
            self.skip(len, what)
        }
        fn len(&mut self, v1: bool, what: &str) -> Result<u64, String> {
            if v1 {
                self.u32(what).map(u64::from)
            } else {
                self.u64(what)
            }
        }
        /// A metadata key: read when short (the keys the checks look at), else skipped.
        fn key(&mut self, v1: bool, what: &str) -> Result<Option<Vec<u8>>, String> {
            let len = self.len(v1, what)?;
            if len > 64 {
                return self.skip(len, what).map(|()| None);
            }
            self.need(len, what)?;
            let mut b = vec![0u8; len as usize];
            self.r
                .read_exact(&mut b)
                .map_err(|e| format!("{what}: {e}"))?;
            self.pos += len;
            Ok(Some(b))
        }
    }
    let mut c = Cur { r, pos: 0, size };
    let magic = c.bytes::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(format!("not a GGUF file (magic bytes {magic:02x?})"));
    }
    let version = c.u32("version")?;
    if !(1..=3).contains(&version) {
        return Err(format!("unsupported GGUF version {version}"));
    }
    let v1 = version == 1;
    let count = |c: &mut Cur<'_, R>, what: &str| -> Result<u64, String> {
        if v1 {
            c.u32(what).map(u64::from)
        } else {
            c.u64(what)
        }
    };
    let n_tensors = count(&mut c, "tensor count")?;
    let n_kv = count(&mut c, "metadata count")?;
    // every entry takes at least 8 bytes: counts beyond that are corrupt
    if n_tensors.saturating_add(n_kv).saturating_mul(8) > size {
        return Err(format!(
            "corrupt header: {n_tensors} tensors and {n_kv} metadata entries cannot fit in {size} bytes"
        ));
    }
    fn fixed(t: u32) -> Option<u64> {
        match t {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        }
    }
    for i in 0..n_kv {
        let what = format!("metadata entry {i}");
        let key = c.key(v1, &what)?;
        let t = c.u32(&what)?;
        if key.as_deref() == Some(b"general.alignment".as_slice()) {
            // The parser rounds the data offset up to it: 0 would divide by zero.
            let a = match t {
                4 => u64::from(c.u32(&what)?),
                10 => c.u64(&what)?,
                _ => {
                    return Err(format!(
                        "corrupt header: general.alignment has value type {t}"
                    ))
                }
            };
            if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                return Err(format!(
                    "corrupt metadata: general.alignment = {a} (must be a power of two up to 1 MiB)"
                ));
            }
            continue;
        }
        match t {
            8 => c.string(v1, &what)?,
            9 => {
                let et = c.u32(&what)?;
                let n = count(&mut c, &what)?;
                if let Some(sz) = fixed(et) {
                    c.skip(n.saturating_mul(sz), &what)?;
                } else if et == 8 {
                    c.need(n.saturating_mul(8), &what)?;
                    for _ in 0..n {
                        c.string(v1, &what)?;
                    }
                } else {
                    return Err(format!(
                        "corrupt header: {what} has array element type {et}"
                    ));
                }
            }
            t => match fixed(t) {
                Some(sz) => c.skip(sz, &what)?,
                None => return Err(format!("corrupt header: {what} has value type {t}")),
            },
        }
    }
    for i in 0..n_tensors {
        let what = format!("tensor info {i}");
        c.string(v1, &what)?;
        let nd = c.u32(&what)?;
        if nd > 8 {
            return Err(format!("corrupt header: {what} has {nd} dimensions"));
        }
        let mut elems: u64 = 1;
        for _ in 0..nd {
            let d = if v1 {
                u64::from(c.u32(&what)?)
            } else {
                c.u64(&what)?
            };
            elems = elems.saturating_mul(d);
        }
        if elems > size.saturating_mul(4) {
            return Err(format!("corrupt header: {what} claims {elems} elements"));
        }
        let _dtype = c.u32(&what)?;
        let _offset = c.u64(&what)?;
    }
    Ok(())
}
