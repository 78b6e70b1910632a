//! The per-sequence half of the generation loop ([`Decoder`]): vocabulary mask, sampling,
//! stop tokens and stop sequences, token/time/context limits, streaming with hold-back, and
//! the final [`Completion`]. It never runs the model: the engine feeds it the logits of each
//! step (one sequence, or one row of a batched step) and runs the token it returns, so a
//! request behaves the same alone and inside a batch.

use crate::constrain::{apply_mask, trailing_word_len, Constraint, TokenTrie, WordState};
use crate::engine::MaskStats;
use crate::sampler::Sampler;
use crate::tokenizer::{Tokenizer, Utf8Stream};
use millwright_core::{Completion, GenParams, StopReason};
use std::time::{Duration, Instant};

/// What every sequence of an engine shares: the tokenizer, the end-of-turn tokens and the
/// token trie (present whenever a sequence has a vocabulary).
pub(crate) struct Shared<'a> {
    pub(crate) tokenizer: &'a Tokenizer,
    pub(crate) stop_ids: &'a [u32],
    pub(crate) trie: Option<&'a TokenTrie>,
}

/// The state of one sequence being generated.
pub(crate) struct Decoder {
    t0: Instant,
    max_tokens: usize,
    budget: Option<Duration>,
    constraint: Option<Constraint>,
    start: WordState,
    cstate: WordState,
    allowed: Vec<u32>,
    stack: Vec<(u32, WordState)>,
    kept: Vec<(u32, f32)>,
    mask: MaskStats,
    allowed_sum: usize,
    sampler: Sampler,
    generated: Vec<u32>,
    utf8: Utf8Stream,
    text: String,
    emitted: usize,
    ttft_ms: Option<f64>,
    stops: Vec<String>,
}

impl Decoder {
    /// A sequence for `params` whose answer starts with `prefix` (read by the vocabulary
    /// automaton first), timed from `t0`.
    pub(crate) fn new(params: &GenParams, prefix: &str, t0: Instant) -> Self {
        let constraint = params.vocabulary.as_deref().map(Constraint::new);
        let start = constraint
            .as_ref()
            .and_then(|c| c.feed(WordState::Boundary, prefix.as_bytes()))
            .unwrap_or(WordState::Boundary);
        Self {
            t0,
            max_tokens: params.max_tokens,
            budget: params.budget_ms.map(Duration::from_millis),
            constraint,
            start,
            cstate: start,
            allowed: Vec::new(),
            stack: Vec::new(),
            kept: Vec::new(),
            mask: MaskStats::default(),
            allowed_sum: 0,
            sampler: Sampler::new(params),
            generated: Vec::new(),
            utf8: Utf8Stream::new(),
            text: String::new(),
            emitted: 0,
            ttft_ms: None,
            stops: params
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
        }
    }

    fn over_budget(&self) -> bool {
        self.budget.is_some_and(|b| self.t0.elapsed() >= b)
    }

    /// One step on the logits of the last position (`cache_len` positions held, at most
    /// `max_ctx`): the token to run next, or why the sequence ends.
    pub(crate) fn step(
        &mut self,
        logits: &mut [f32],
        cache_len: usize,
        max_ctx: usize,
        sh: &Shared<'_>,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<u32, StopReason> {
        if self.generated.len() >= self.max_tokens {
            return Err(StopReason::MaxTokens);
        }
        if self.over_budget() {
            return Err(StopReason::Budget);
        }
        if let (Some(c), Some(trie)) = (&self.constraint, sh.trie) {
            let tm = Instant::now();
            trie.allowed(c, self.cstate, &mut self.allowed, &mut self.stack);
            let ends: &[u32] = if c.can_end(self.cstate) {
                sh.stop_ids
            } else {
                &[]
            };
            apply_mask(logits, &self.allowed, ends, &mut self.kept);
            self.mask.steps += 1;
            self.allowed_sum += self.allowed.len();
            self.mask.total_ms += tm.elapsed().as_secs_f64() * 1000.0;
            if self.kept.is_empty() {
                // Nothing can follow (cannot happen with byte tokens): end here.
                return Err(StopReason::Eos);
            }
        }
        let tok = self.sampler.sample(logits, &self.generated);
        if self.ttft_ms.is_none() {
            self.ttft_ms = Some(self.t0.elapsed().as_secs_f64() * 1000.0);
        }
        if sh.stop_ids.contains(&tok) {
            return Err(StopReason::Eos);
        }
        self.generated.push(tok);
        let bytes = sh.tokenizer.token_bytes(tok);
        if let Some(c) = &self.constraint {
            self.cstate = c.feed(self.cstate, bytes).unwrap_or(WordState::Boundary);
        }
        let piece = self.utf8.push(bytes);
        if !piece.is_empty() {
            self.text.push_str(&piece);
            if let Some(cut) = find_stop(&self.text, &self.stops, self.emitted) {
                self.text.truncate(cut);
                if cut > self.emitted {
                    on_token(&self.text[self.emitted..]);
                }
                self.emitted = self.text.len();
                return Err(StopReason::StopSequence);
            }
            let mut safe = safe_len(&self.text, &self.stops);
            if self.constraint.is_some() {
                // an unfinished word may still be cut: hold it back
                safe = safe.min(self.text.len() - trailing_word_len(&self.text));
            }
            if safe > self.emitted {
                on_token(&self.text[self.emitted..safe]);
                self.emitted = safe;
            }
        }
        if self.generated.len() >= self.max_tokens || cache_len >= max_ctx {
            return Err(StopReason::MaxTokens);
        }
        if self.over_budget() {
            return Err(StopReason::Budget);
        }
        Ok(tok)
    }

    /// Ends the sequence for `reason`: flushes held-back text, drops an unfinished word under
    /// a vocabulary, streams the rest and returns the completion with the mask's cost (when
    /// constrained).
    pub(crate) fn finish(
        mut self,
        reason: StopReason,
        counts: (usize, usize),
        model: &str,
        on_token: &mut dyn FnMut(&str),
    ) -> (Completion, Option<MaskStats>) {
        if reason != StopReason::StopSequence {
            let rest = self.utf8.finish();
            self.text.push_str(&rest);
            if let Some(cut) = find_stop(&self.text, &self.stops, self.emitted) {
                self.text.truncate(cut);
            }
        }
        let mut mask = None;
        if let Some(c) = &self.constraint {
            if !c
                .feed(self.start, self.text.as_bytes())
                .is_some_and(|s| c.can_end(s))
            {
                // stopped inside a word: drop the unfinished word
                let cut = self
                    .text
                    .len()
                    .saturating_sub(trailing_word_len(&self.text));
                self.text
                    .truncate(cut.max(self.emitted.min(self.text.len())));
            }
            self.mask.mean_allowed = self.allowed_sum as f64 / self.mask.steps.max(1) as f64;
            mask = Some(self.mask);
        }
        if self.text.len() > self.emitted {
            on_token(&self.text[self.emitted..]);
        }
        let total_ms = self.t0.elapsed().as_secs_f64() * 1000.0;
        let (prompt_tokens, cached_tokens) = counts;
        let c = Completion {
            text: self.text,
            prompt_tokens,
            cached_tokens,
            generated_tokens: self.generated.len(),
            stop_reason: reason,
            ttft_ms: self.ttft_ms.unwrap_or(total_ms),
            total_ms,
            model: model.to_string(),
        };
        (c, mask)
    }
}

/// Byte offset of the earliest stop sequence that ends after `emitted` (searched from a little
/// before it, since a stop may start in text that was held back).
pub(crate) fn find_stop<S: AsRef<str>>(text: &str, stops: &[S], emitted: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for s in stops {
        let s = s.as_ref();
        let mut from = emitted.saturating_sub(s.len());
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        if let Some(p) = text[from..].find(s) {
            let at = from + p;
            best = Some(best.map_or(at, |b| b.min(at)));
        }
    }
    best
}

/// How much of `text` can be shown: everything except a tail that could still become a stop
/// sequence.
pub(crate) fn safe_len<S: AsRef<str>>(text: &str, stops: &[S]) -> usize {
    let mut hold = 0;
    for s in stops {
        let s = s.as_ref();
        for k in (1..s.len()).rev() {
            if k <= hold {
                break;
            }
            if s.is_char_boundary(k) && text.ends_with(&s[..k]) {
                hold = k;
                break;
            }
        }
    }
    text.len() - hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_holdback_and_find() {
        assert_eq!(safe_len("abc\nUs", &["\nUser:"]), 3);
        assert_eq!(safe_len("abc", &["\nUser:"]), 3);
        assert_eq!(find_stop("abc\nUser: x", &["\nUser:"], 3), Some(3));
        assert_eq!(find_stop("a°C END", &["END"], 0), Some(5));
    }
}
