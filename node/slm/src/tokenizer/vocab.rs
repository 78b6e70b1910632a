//! Building a [`Tokenizer`] from a GGUF file's `tokenizer.ggml.*` metadata: the vocabulary,
//! token types (controls, user-defined specials, byte tokens), merges or scores, the
//! pre-tokenizer choice and the BOS/EOS settings. Encoding and decoding live elsewhere.

use super::{Kind, PreTokenizer, Tokenizer, TokenizerError};
use candle_core::quantized::gguf_file::{Content, Value};
use std::collections::HashMap;

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
}

fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
