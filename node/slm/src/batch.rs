//! Batched generation of the engine: several requests decode together, one forward pass
//! over the shared weights per step ([`crate::Model::forward_batch`]), each with its own KV
//! cache, sampling parameters, vocabulary mask, stop conditions and limits (the same
//! [`crate::decode::Decoder`] a single request uses). A sequence that ends leaves the batch;
//! the others go on.
//!
//! Prefill runs per sequence. The prefix a request shares with another request of the batch
//! (in practice the node's system prompt) is computed once into the engine's prefix cache
//! and copied into each sequence's cache ([`crate::KvCache::fork`]); requests are prefilled
//! in token order so that requests with the same prefix follow each other. Each sequence
//! samples its first token right after its prefill (streaming starts early); the decode
//! loop then runs every live sequence's next token in one step. Because the kernels give a
//! token the same numbers whatever the batch, a greedy request writes the same text alone
//! and in a batch. Memory: one copied cache per live sequence (positions × 2 × layers ×
//! KV width × 4 bytes; about 46 KB per position for SmolLM2-135M).

use crate::decode::{Decoder, Shared};
use crate::engine::{common_prefix, Engine};
use crate::model::KvCache;
use millwright_core::{Completion, GenParams, SlmError};
use std::time::Instant;

/// One request of a batch, already tokenized.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The rendered, tokenized prompt.
    pub tokens: &'a [u32],
    /// How to generate.
    pub params: &'a GenParams,
    /// The text the prompt's end already holds of the answer (read by the vocabulary
    /// automaton first).
    pub prefix: &'a str,
}

/// A sequence still decoding.
struct Live {
    idx: usize,
    dec: Decoder,
    cache: KvCache,
    next: u32,
    prompt_tokens: usize,
    cached: usize,
}

impl Engine {
    /// Generates the tokenized `requests` together (benchmarks and tests; one request runs
    /// the one-sequence path); `on_token(i, text)` streams request `i`'s text. One result
    /// per request, in order.
    pub fn generate_tokens_batch(
        &mut self,
        requests: &[(Vec<u32>, GenParams)],
        on_token: &mut dyn FnMut(usize, &str),
    ) -> Vec<Result<Completion, SlmError>> {
        if let [(tokens, params)] = requests {
            return vec![self.generate_after(tokens, params, "", &mut |s| on_token(0, s))];
        }
        let reqs: Vec<Request<'_>> = requests
            .iter()
            .map(|(t, p)| Request {
                tokens: t,
                params: p,
                prefix: "",
            })
            .collect();
        self.generate_requests(&reqs, on_token)
    }

    /// The batched loop: prefill each request (sharing prefixes), then decode every live
    /// sequence in one step until all have ended.
    pub(crate) fn generate_requests(
        &mut self,
        reqs: &[Request<'_>],
        on_token: &mut dyn FnMut(usize, &str),
    ) -> Vec<Result<Completion, SlmError>> {
        let t0 = Instant::now();
        let mut results: Vec<Option<Result<Completion, SlmError>>> =
            reqs.iter().map(|_| None).collect();
        if reqs.iter().any(|r| r.params.vocabulary.is_some()) {
            self.token_trie();
        }
        let max_ctx = self.cache.max_len();
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by(|&a, &b| {
            let (ta, tb) = (reqs.get(a).map(|r| r.tokens), reqs.get(b).map(|r| r.tokens));
            ta.cmp(&tb).then(a.cmp(&b))
        });
        let mut live: Vec<Live> = Vec::with_capacity(reqs.len());
        let mut mask_stats = None;
        for &i in &order {
            let Some(r) = reqs.get(i) else { continue };
            let shared = reqs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| common_prefix(r.tokens, o.tokens))
                .max()
                .unwrap_or(0);
            match self.prefill(r, shared, max_ctx) {
                Err(e) => results[i] = Some(Err(e)),
                Ok((cache, mut logits, cached)) => {
                    let mut dec = Decoder::new(r.params, r.prefix, t0);
                    let sh = Shared {
                        tokenizer: &self.tokenizer,
                        stop_ids: &self.stop_ids,
                        trie: self.token_trie.get(),
                    };
                    let mut emit = |s: &str| on_token(i, s);
                    match dec.step(&mut logits, cache.len(), max_ctx, &sh, &mut emit) {
                        Ok(next) => live.push(Live {
                            idx: i,
                            dec,
                            cache,
                            next,
                            prompt_tokens: r.tokens.len(),
                            cached,
                        }),
                        Err(reason) => {
                            let (c, m) =
                                dec.finish(reason, (r.tokens.len(), cached), &self.name, &mut emit);
                            mask_stats = m.or(mask_stats);
                            results[i] = Some(Ok(c));
                        }
                    }
                }
            }
        }
        // Decode in prompt order (the order of the batch rows does not change a result).
        live.sort_by_key(|l| l.idx);
        while !live.is_empty() {
            let toks: Vec<u32> = live.iter().map(|l| l.next).collect();
            let mut caches: Vec<&mut KvCache> = live.iter_mut().map(|l| &mut l.cache).collect();
            let step = self.model.forward_batch(&toks, &mut caches);
            drop(caches);
            let mut logits = match step {
                Ok(l) => l,
                Err(e) => {
                    let msg = e.to_string();
                    for l in live.drain(..) {
                        results[l.idx] = Some(Err(SlmError::Inference(msg.clone())));
                    }
                    break;
                }
            };
            let vocab = logits.len() / toks.len();
            let sh = Shared {
                tokenizer: &self.tokenizer,
                stop_ids: &self.stop_ids,
                trie: self.token_trie.get(),
            };
            let mut keep = Vec::with_capacity(live.len());
            for (mut l, row) in live.into_iter().zip(logits.chunks_exact_mut(vocab.max(1))) {
                let idx = l.idx;
                let mut emit = |s: &str| on_token(idx, s);
                match l.dec.step(row, l.cache.len(), max_ctx, &sh, &mut emit) {
                    Ok(next) => {
                        l.next = next;
                        keep.push(l);
                    }
                    Err(reason) => {
                        let counts = (l.prompt_tokens, l.cached);
                        let (c, m) = l.dec.finish(reason, counts, &self.name, &mut emit);
                        mask_stats = m.or(mask_stats);
                        results[idx] = Some(Ok(c));
                    }
                }
            }
            live = keep;
        }
        if let Some(m) = mask_stats {
            self.mask_stats = m;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SlmError::Inference("request was not run".into()))))
            .collect()
    }

    /// Prefills one request: the part it shares with the batch (`shared` tokens) goes
    /// through the engine's prefix cache (computed there once), the rest into a copy of it.
    /// Returns the sequence's cache, the logits of its last prompt token and the positions
    /// taken from the prefix cache.
    fn prefill(
        &mut self,
        r: &Request<'_>,
        shared: usize,
        max_ctx: usize,
    ) -> Result<(KvCache, Vec<f32>, usize), SlmError> {
        let tokens = r.tokens;
        if tokens.is_empty() {
            return Err(SlmError::Inference("empty prompt".into()));
        }
        if tokens.len() >= max_ctx {
            return Err(SlmError::PromptTooLong {
                tokens: tokens.len(),
                context: max_ctx,
            });
        }
        let last = tokens.len() - 1;
        let target = shared.min(last);
        let lcp = common_prefix(self.cache.tokens(), tokens).min(last);
        if lcp < target {
            self.cache.truncate(lcp);
            self.model.forward(&tokens[lcp..target], &mut self.cache)?;
        }
        let cached = lcp.max(target);
        let mut cache = self
            .cache
            .fork(cached, tokens.len() - cached + r.params.max_tokens + 1);
        let logits = self.model.forward(&tokens[cached..], &mut cache)?;
        Ok((cache, logits, cached))
    }
}
