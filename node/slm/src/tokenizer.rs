//! Tokenizers built from GGUF metadata (`tokenizer.ggml.*`), and streaming UTF-8-safe decoding.
//!
//! Two kinds, chosen by `tokenizer.ggml.model`:
//! - `gpt2`: byte-level BPE (tokens + ranked merges) with a pre-tokenizer picked from
//!   `tokenizer.ggml.pre` (GPT-2 style with individually split digits for SmolLM2; the
//!   Llama 3 / Qwen 2 style otherwise). No prefix space is added.
//! - `llama` (SentencePiece, used by Gemma, Llama 2, Mistral, Phi-3): pieces with scores and no
//!   merges; adjacent symbols are merged by best score, unknown characters fall back to
//!   `<0xXX>` byte tokens.
//!
//! Control and user-defined tokens (token types 3 and 4) are matched as whole specials in the
//! text before the ordinary encoding, so a chat template's `<|im_start|>` is one token.
//! This module does no I/O and never panics on any input.

use candle_core::quantized::gguf_file::{Content, Value};
use std::collections::{BinaryHeap, HashMap};

/// Why a tokenizer could not be built from the metadata.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required metadata key is missing or has the wrong type.
    #[error("tokenizer metadata `{key}`: {problem}")]
    Metadata {
        /// The GGUF key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// `tokenizer.ggml.model` names a kind this engine does not implement.
    #[error("unsupported tokenizer model `{0}` (supported: gpt2, llama)")]
    Unsupported(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Byte-level BPE.
    Bpe,
    /// SentencePiece by score.
    Spm,
}

/// How byte-level BPE splits text into words before merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2 regex, every digit its own word (SmolLM2, StarCoder).
    Gpt2Digits,
    /// GPT-2 regex.
    Gpt2,
    /// Llama 3 regex (numbers in groups of up to three).
    Llama3,
    /// Qwen 2 regex (single digits).
    Qwen2,
}

/// A tokenizer built from a GGUF file's metadata.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    kind: Kind,
    pre: PreTokenizer,
    tokens: Vec<String>,
    /// Decoded bytes of each token (specials decode to nothing).
    token_bytes: Vec<Vec<u8>>,
    ids: HashMap<String, u32>,
    merges: HashMap<(String, String), u32>,
    scores: Vec<f32>,
    /// Specials sorted longest first.
    specials: Vec<(String, u32)>,
    special_ids: Vec<bool>,
    byte_tokens: [Option<u32>; 256],
    byte_to_char: [char; 256],
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
    unk: Option<u32>,
}

fn meta_err(key: &str, problem: impl Into<String>) -> TokenizerError {
    TokenizerError::Metadata {
        key: key.to_string(),
        problem: problem.into(),
    }
}

fn get_u32(c: &Content, key: &str) -> Option<u32> {
    c.metadata.get(key).and_then(|v| match v {
        Value::U32(x) => Some(*x),
        Value::I32(x) => u32::try_from(*x).ok(),
        Value::U64(x) => u32::try_from(*x).ok(),
        Value::I64(x) => u32::try_from(*x).ok(),
        Value::U16(x) => Some(u32::from(*x)),
        Value::U8(x) => Some(u32::from(*x)),
        _ => None,
    })
}

fn get_bool(c: &Content, key: &str) -> Option<bool> {
    match c.metadata.get(key) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn get_str<'a>(c: &'a Content, key: &str) -> Option<&'a str> {
    match c.metadata.get(key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn string_array(c: &Content, key: &str) -> Result<Vec<String>, TokenizerError> {
    let v = c
        .metadata
        .get(key)
        .ok_or_else(|| meta_err(key, "missing"))?;
    let Value::Array(items) = v else {
        return Err(meta_err(key, "not an array"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::String(s) => Ok(s.clone()),
            _ => Err(meta_err(key, format!("item {i} is not a string"))),
        })
        .collect()
}

/// GPT-2's reversible byte -> printable char mapping.
fn bytes_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            let c = 256 + n;
            n += 1;
            c
        };
        map[b as usize] = char::from_u32(c).unwrap_or('\u{FFFD}');
    }
    map
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(c: &Content) -> Result<Self, TokenizerError> {
        let model = get_str(c, "tokenizer.ggml.model")
            .ok_or_else(|| meta_err("tokenizer.ggml.model", "missing"))?;
        let kind = match model {
            "gpt2" => Kind::Bpe,
            "llama" => Kind::Spm,
            other => return Err(TokenizerError::Unsupported(other.to_string())),
        };
        let tokens = string_array(c, "tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(meta_err("tokenizer.ggml.tokens", "empty vocabulary"));
        }
        let types: Vec<i64> = match c.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::I32(x) => i64::from(*x),
                    Value::U32(x) => i64::from(*x),
                    Value::I8(x) => i64::from(*x),
                    Value::U8(x) => i64::from(*x),
                    _ => 1,
                })
                .collect(),
            _ => vec![1; tokens.len()],
        };
        let scores: Vec<f32> = match c.metadata.get("tokenizer.ggml.scores") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::F32(x) => *x,
                    Value::F64(x) => *x as f32,
                    _ => 0.0,
                })
                .collect(),
            _ => Vec::new(),
        };
        if kind == Kind::Spm && scores.len() != tokens.len() {
            return Err(meta_err(
                "tokenizer.ggml.scores",
                format!("{} scores for {} tokens", scores.len(), tokens.len()),
            ));
        }
        let mut merges = HashMap::new();
        if kind == Kind::Bpe {
            let list = string_array(c, "tokenizer.ggml.merges")?;
            for (rank, m) in list.iter().enumerate() {
                let Some((a, b)) = m.split_once(' ') else {
                    return Err(meta_err(
                        "tokenizer.ggml.merges",
                        format!("merge {rank} `{m}` has no space"),
                    ));
                };
                merges.insert((a.to_string(), b.to_string()), rank as u32);
            }
        }
        let pre = match get_str(c, "tokenizer.ggml.pre").unwrap_or("default") {
            "smollm" | "starcoder" | "refact" | "default" | "gpt2" => {
                if matches!(get_str(c, "tokenizer.ggml.pre"), Some("gpt2")) {
                    PreTokenizer::Gpt2
                } else {
                    PreTokenizer::Gpt2Digits
                }
            }
            "qwen2" | "deepseek-llm" => PreTokenizer::Qwen2,
            _ => PreTokenizer::Llama3,
        };
        let byte_to_char = bytes_to_unicode();
        let char_to_byte: HashMap<char, u8> = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, c)| (*c, b as u8))
            .collect();
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut specials = Vec::new();
        let mut special_ids = vec![false; tokens.len()];
        let mut byte_tokens = [None; 256];
        let mut token_bytes = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let id = i as u32;
            ids.entry(t.clone()).or_insert(id);
            let ty = types.get(i).copied().unwrap_or(1);
            // 3 = control, 4 = user defined; 6 = byte (spm)
            let is_special = ty == 3 || ty == 4;
            if is_special && !t.is_empty() {
                specials.push((t.clone(), id));
            }
            special_ids[i] = ty == 3;
            let bytes = match kind {
                Kind::Bpe => {
                    if ty == 3 {
                        Vec::new()
                    } else if ty == 4 {
                        t.as_bytes().to_vec()
                    } else {
                        t.chars()
                            .map(|ch| {
                                char_to_byte
                                    .get(&ch)
                                    .copied()
                                    .map(|b| vec![b])
                                    .unwrap_or_else(|| ch.to_string().into_bytes())
                            })
                            .collect::<Vec<_>>()
                            .concat()
                    }
                }
                Kind::Spm => {
                    if ty == 3 {
                        Vec::new()
                    } else if let Some(b) = parse_byte_token(t) {
                        byte_tokens[b as usize] = Some(id);
                        vec![b]
                    } else {
                        t.replace('\u{2581}', " ").into_bytes()
                    }
                }
            };
            token_bytes.push(bytes);
        }
        specials.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
        let bos = get_u32(c, "tokenizer.ggml.bos_token_id");
        let eos = get_u32(c, "tokenizer.ggml.eos_token_id");
        let unk = get_u32(c, "tokenizer.ggml.unknown_token_id");
        let add_bos = get_bool(c, "tokenizer.ggml.add_bos_token").unwrap_or(kind == Kind::Spm);
        let add_space_prefix =
            get_bool(c, "tokenizer.ggml.add_space_prefix").unwrap_or(kind == Kind::Spm);
        Ok(Self {
            kind,
            pre,
            tokens,
            token_bytes,
            ids,
            merges,
            scores,
            specials,
            special_ids,
            byte_tokens,
            byte_to_char,
            bos,
            eos,
            add_bos,
            add_space_prefix,
            unk,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token spelled exactly `text` (e.g. `<|im_end|>`).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The spelling of a token in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Beginning-of-sequence token, if the model uses one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token from the metadata.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether the model expects a BOS token at the start of a prompt.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `id` is a control token (decodes to nothing).
    pub fn is_control(&self, id: u32) -> bool {
        self.special_ids.get(id as usize).copied().unwrap_or(false)
    }

    /// Encodes text; control and user-defined tokens written in the text become single tokens.
    /// No BOS is added (the chat template decides).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        let mut rest = text;
        let mut first = true;
        while !rest.is_empty() {
            // find the earliest special occurrence (longest at that position)
            let mut hit: Option<(usize, usize, u32)> = None;
            for (s, id) in &self.specials {
                if let Some(pos) = rest.find(s.as_str()) {
                    let better = match hit {
                        None => true,
                        Some((p, l, _)) => pos < p || (pos == p && s.len() > l),
                    };
                    if better {
                        hit = Some((pos, s.len(), *id));
                    }
                }
            }
            match hit {
                Some((pos, len, id)) => {
                    if pos > 0 {
                        self.encode_plain(&rest[..pos], first, &mut out);
                    }
                    out.push(id);
                    rest = &rest[pos + len..];
                }
                None => {
                    self.encode_plain(rest, first, &mut out);
                    rest = "";
                }
            }
            first = false;
        }
        out
    }

    fn encode_plain(&self, text: &str, at_start: bool, out: &mut Vec<u32>) {
        match self.kind {
            Kind::Bpe => {
                for word in pre_tokenize(self.pre, text) {
                    self.bpe_word(word, out);
                }
            }
            Kind::Spm => {
                let mut s = String::with_capacity(text.len() + 3);
                if self.add_space_prefix && at_start {
                    s.push('\u{2581}');
                }
                for ch in text.chars() {
                    s.push(if ch == ' ' { '\u{2581}' } else { ch });
                }
                self.spm(&s, out);
            }
        }
    }

    fn bpe_word(&self, word: &str, out: &mut Vec<u32>) {
        let mapped: String = word
            .bytes()
            .map(|b| self.byte_to_char[b as usize])
            .collect();
        if let Some(id) = self.ids.get(&mapped) {
            out.push(*id);
            return;
        }
        let mut parts: Vec<String> = mapped.chars().map(|c| c.to_string()).collect();
        while parts.len() > 1 {
            let mut best: Option<(u32, usize)> = None;
            for i in 0..parts.len() - 1 {
                if let Some(&r) = self.merges.get(&(parts[i].clone(), parts[i + 1].clone())) {
                    if best.is_none_or(|(br, _)| r < br) {
                        best = Some((r, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            let right = parts.remove(i + 1);
            parts[i].push_str(&right);
        }
        for p in parts {
            match self.ids.get(&p) {
                Some(id) => out.push(*id),
                None => {
                    // not in vocab: fall back to single mapped chars, else unk
                    for ch in p.chars() {
                        if let Some(id) = self.ids.get(&ch.to_string()) {
                            out.push(*id);
                        } else if let Some(u) = self.unk {
                            out.push(u);
                        }
                    }
                }
            }
        }
    }

    fn spm(&self, text: &str, out: &mut Vec<u32>) {
        // symbols as a doubly linked list over char ranges
        struct Sym {
            start: usize,
            len: usize,
            prev: Option<usize>,
            next: Option<usize>,
        }
        let mut syms: Vec<Sym> = Vec::new();
        for (i, (start, ch)) in text.char_indices().enumerate() {
            syms.push(Sym {
                start,
                len: ch.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
        }
        let n = syms.len();
        for (i, sym) in syms.iter_mut().enumerate() {
            if i + 1 < n {
                sym.next = Some(i + 1);
            }
        }
        #[derive(PartialEq)]
        struct Cand {
            score: f32,
            left: usize,
            right: usize,
            len: usize,
        }
        impl Eq for Cand {}
        impl PartialOrd for Cand {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Cand {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.score
                    .total_cmp(&o.score)
                    .then_with(|| o.left.cmp(&self.left))
            }
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Cand>, syms: &[Sym], l: usize, r: usize| {
            let start = syms[l].start;
            let len = syms[l].len + syms[r].len;
            if let Some(piece) = text.get(start..start + len) {
                if let Some(&id) = self.ids.get(piece) {
                    heap.push(Cand {
                        score: self.scores.get(id as usize).copied().unwrap_or(0.0),
                        left: l,
                        right: r,
                        len,
                    });
                }
            }
        };
        for i in 0..n.saturating_sub(1) {
            try_add(&mut heap, &syms, i, i + 1);
        }
        while let Some(c) = heap.pop() {
            let (l, r) = (c.left, c.right);
            if syms[l].len == 0
                || syms[r].len == 0
                || syms[l].len + syms[r].len != c.len
                || syms[l].next != Some(r)
            {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if let Some(nx) = syms[r].next {
                syms[nx].prev = Some(l);
            }
            if let Some(p) = syms[l].prev {
                try_add(&mut heap, &syms, p, l);
            }
            if let Some(nx) = syms[l].next {
                try_add(&mut heap, &syms, l, nx);
            }
        }
        let mut cur = if n > 0 { Some(0) } else { None };
        while let Some(i) = cur {
            let s = &syms[i];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        match self.byte_tokens[b as usize] {
                            Some(id) => out.push(id),
                            None => {
                                if let Some(u) = self.unk {
                                    out.push(u);
                                }
                            }
                        }
                    }
                }
            }
            cur = s.next;
        }
    }

    /// The raw bytes a token stands for (control tokens: none).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Decodes ids to text (control tokens are skipped, invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_bytes(id));
        }
        let s = String::from_utf8_lossy(&bytes).into_owned();
        // the encoder added a leading "▁" to the text: take it off again
        if self.kind == Kind::Spm && self.add_space_prefix && s.starts_with(' ') {
            s[1..].to_string()
        } else {
            s
        }
    }
}

fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Turns a stream of token bytes into text that always ends on a whole character.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// A new, empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns the text that is complete so far (may be empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // valid_up_to guarantees a char boundary
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Returns whatever is left (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers (hand-written equivalents of the regexes; no regex dependency)
// ---------------------------------------------------------------------------------------------

fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}
fn is_number(c: char) -> bool {
    c.is_numeric()
}
fn is_other(c: char) -> bool {
    !c.is_whitespace() && !is_letter(c) && !is_number(c)
}

/// Splits text into the words byte-level BPE merges within.
pub fn pre_tokenize(pre: PreTokenizer, text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    match pre {
        PreTokenizer::Gpt2 => gpt2_split(text, &mut out),
        PreTokenizer::Gpt2Digits => {
            // Digits(individual) first, then the GPT-2 regex within each piece.
            let mut start = 0;
            for (i, c) in text.char_indices() {
                if c.is_ascii_digit() {
                    if start < i {
                        gpt2_split(&text[start..i], &mut out);
                    }
                    out.push(&text[i..i + 1]);
                    start = i + 1;
                }
            }
            if start < text.len() {
                gpt2_split(&text[start..], &mut out);
            }
        }
        PreTokenizer::Llama3 => llama3_split(text, 3, &mut out),
        PreTokenizer::Qwen2 => llama3_split(text, 1, &mut out),
    }
    out
}

fn contraction_len(chars: &[(usize, char)], i: usize, case_insensitive: bool) -> usize {
    if chars[i].1 != '\'' {
        return 0;
    }
    let lower = |k: usize| {
        chars.get(i + k).map(|&(_, c)| {
            if case_insensitive {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
    };
    match (lower(1), lower(2)) {
        (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => 3,
        (Some('s' | 't' | 'm' | 'd'), _) => 2,
        _ => 0,
    }
}

fn byte_at(chars: &[(usize, char)], i: usize, text: &str) -> usize {
    chars.get(i).map(|c| c.0).unwrap_or(text.len())
}

fn run_while(chars: &[(usize, char)], mut j: usize, f: impl Fn(char) -> bool) -> usize {
    while j < chars.len() && f(chars[j].1) {
        j += 1;
    }
    j
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2_split<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let mut i = 0;
    while i < n {
        let c = chars[i].1;
        let cl = contraction_len(&chars, i, false);
        let j = if cl > 0 {
            i + cl
        } else {
            let (k, first) = if c == ' ' && i + 1 < n && !chars[i + 1].1.is_whitespace() {
                (i + 1, chars[i + 1].1)
            } else {
                (i, c)
            };
            if is_letter(first) {
                run_while(&chars, k, is_letter)
            } else if is_number(first) {
                run_while(&chars, k, is_number)
            } else if is_other(first) {
                run_while(&chars, k, is_other)
            } else {
                // whitespace run
                let e = run_while(&chars, i, char::is_whitespace);
                if e < n && e - i > 1 {
                    e - 1
                } else {
                    e
                }
            }
        };
        let j = j.max(i + 1);
        out.push(&text[chars[i].0..byte_at(&chars, j, text)]);
        i = j;
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn llama3_split<'a>(text: &'a str, max_digits: usize, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let nl = |c: char| c == '\r' || c == '\n';
    let mut i = 0;
    while i < n {
        let c = chars[i].1;
        let cl = contraction_len(&chars, i, true);
        let j = if cl > 0 {
            i + cl
        } else if is_letter(c) {
            run_while(&chars, i, is_letter)
        } else if !nl(c) && !is_number(c) && i + 1 < n && is_letter(chars[i + 1].1) {
            run_while(&chars, i + 1, is_letter)
        } else if is_number(c) {
            let e = run_while(&chars, i, is_number);
            e.min(i + max_digits)
        } else if is_other(c) || (c == ' ' && i + 1 < n && is_other(chars[i + 1].1)) {
            let k = if c == ' ' { i + 1 } else { i };
            let e = run_while(&chars, k, is_other);
            run_while(&chars, e, nl)
        } else {
            // whitespace: \s*[\r\n]+ first
            let e = run_while(&chars, i, char::is_whitespace);
            let last_nl = (i..e).rev().find(|&k| nl(chars[k].1));
            if let Some(k) = last_nl {
                k + 1
            } else if e < n && e - i > 1 {
                e - 1
            } else {
                e
            }
        };
        let j = j.max(i + 1);
        out.push(&text[chars[i].0..byte_at(&chars, j, text)]);
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_split_matches_regex_semantics() {
        let mut out = Vec::new();
        gpt2_split("Hello world  it's\n\nok!!", &mut out);
        assert_eq!(
            out,
            vec!["Hello", " world", " ", " it", "'s", "\n", "\n", "ok", "!!"]
        );
    }

    #[test]
    fn digits_are_split_individually() {
        let words = pre_tokenize(PreTokenizer::Gpt2Digits, "at 123 rpm");
        assert_eq!(words, vec!["at", " ", "1", "2", "3", " rpm"]);
    }

    #[test]
    fn llama3_split_groups_numbers_by_three() {
        let mut out = Vec::new();
        llama3_split("x 12345\n\n y", 3, &mut out);
        assert_eq!(out, vec!["x", " ", "123", "45", "\n\n", " y"]);
    }

    #[test]
    fn utf8_stream_holds_incomplete_characters() {
        let mut s = Utf8Stream::new();
        let bytes = "°C".as_bytes();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..]), "°C");
        let emoji = "🔥".as_bytes();
        assert_eq!(s.push(&emoji[..2]), "");
        assert_eq!(s.push(&emoji[2..3]), "");
        assert_eq!(s.push(&emoji[3..]), "🔥");
        assert_eq!(s.push(&[0xff, b'a']), "\u{FFFD}a");
        assert_eq!(s.push(&[0xe2]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
