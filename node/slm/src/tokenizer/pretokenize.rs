//! Pre-tokenizers for byte-level BPE: hand-written equivalents of the GPT-2 and Llama 3 /
//! Qwen 2 split regexes (no regex dependency), splitting text into the words BPE merges
//! within.

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
}
