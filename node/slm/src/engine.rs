//! The candle engine: a loaded model + tokenizer + chat template behind [`LanguageModel`],
//! with the one generation loop of the node (sampling, stop sequences, token and time limits,
//! streaming) and automatic reuse of the longest cached prompt prefix.
//!
//! The engine keeps one KV cache. A new request reuses the longest common token prefix with
//! what the cache holds (in practice: the node's fixed system prompt, computed once), then
//! computes only the rest. The cache never holds more than the configured context.
//! Generation is synchronous and CPU-bound: call it from a dedicated thread
//! ([`crate::ModelHandle`]), never from an async task.
//!
//! A request with a vocabulary ([`GenParams::vocabulary`]) is decoded under the token mask of
//! [`crate::constrain`]: before each sampling step every token that would leave the vocabulary
//! gets −∞; the answer prefix is fed to the automaton first; a text that stops inside a word
//! (token or time limit) loses that unfinished word. The token trie is built on the first
//! constrained request and kept with the model.
//!
//! The per-sequence loop (mask, sampling, stops, limits, streaming) is [`crate::decode`]'s;
//! several requests decode together with [`LanguageModel::generate_batch`] (see
//! [`crate::batch`]).

use crate::constrain::{Constraint, TokenTrie, WordState};
use crate::decode::{Decoder, Shared};
use crate::gguf::GgufFile;
use crate::kernels::KernelCap;
use crate::model::{KvCache, Model, WeightFormat};
use crate::template::ChatTemplate;
use crate::tokenizer::Tokenizer;
use millwright_core::{Completion, GenParams, LanguageModel, Prompt, SlmError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What the vocabulary mask cost in the last constrained request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MaskStats {
    /// Sampling steps that were masked.
    pub steps: usize,
    /// Total time spent computing and applying the masks (ms).
    pub total_ms: f64,
    /// Allowed tokens per step, mean.
    pub mean_allowed: f64,
}

/// How to load a model. Everything the engine can be configured with comes in here (the
/// caller reads configuration; this crate reads no environment variables).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// In-memory weight format.
    pub weight_format: WeightFormat,
    /// Most positions (prompt + answer) a request may use; bounds the KV cache.
    pub max_context: usize,
    /// Worker threads for the matrix kernels and attention (process-wide, takes effect only
    /// if set before the first model runs; `None`: all cores).
    pub threads: Option<usize>,
    /// The most capable kernel set the model may use (`Auto`: the best the CPU has).
    pub kernels: KernelCap,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            weight_format: WeightFormat::Auto,
            max_context: 2048,
            threads: None,
            kernels: KernelCap::Auto,
        }
    }
}

/// Sets the number of kernel threads for the whole process. Must run before the first model
/// is loaded; later calls have no effect (the kernel thread pool is created once).
///
/// This sizes the own pool ([`crate::pool`]) only. candle-core sizes its thread pools once,
/// from `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS` or else the physical cores in the
/// process's CPU mask (`candle_core::utils::get_num_threads`), and offers no other way to set
/// them; the quantized product even uses a pool of its own, so running candle inside a
/// rayon pool of our size would not bound it. Setting the variable from here would be a
/// `set_var` while other threads run (unsound on glibc), so the engine does not. With the
/// default weight format a model of Q4_0, Q4_1, Q8_0, Q4_K, Q6_K or simple-type weights runs
/// every matrix product, attention and norm of the forward pass on the own pool; candle then
/// only converts and dequantizes at load time. Candle's threads matter for matrices left to
/// its kernels (other K-quants, `WeightFormat::Native`/`F32`); bound those with the process's
/// CPU mask (`taskset`) or the variables above, set before the process starts.
pub fn set_kernel_threads(n: usize) {
    crate::pool::set_threads(n);
}

/// A language model running on the CPU from a GGUF file.
pub struct Engine {
    pub(crate) model: Arc<Model>,
    pub(crate) tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    pub(crate) name: String,
    path: PathBuf,
    pub(crate) cache: KvCache,
    pub(crate) stop_ids: Vec<u32>,
    load_ms: f64,
    pub(crate) token_trie: OnceLock<TokenTrie>,
    pub(crate) mask_stats: MaskStats,
}

impl Engine {
    /// Loads the GGUF at `path`: checks the file, builds the tokenizer from its metadata,
    /// picks the chat template and loads the weights.
    pub fn load(path: &Path, opts: &EngineOptions) -> Result<Self, SlmError> {
        let t0 = Instant::now();
        if let Some(n) = opts.threads {
            set_kernel_threads(n);
        }
        let mut f = GgufFile::open(path)?;
        let tokenizer = Tokenizer::from_gguf(&f.content)
            .map_err(|e| crate::gguf::file_error(path, e.to_string()))?;
        let arch = f.architecture()?;
        let template = ChatTemplate::detect(f.get_str("tokenizer.chat_template"), &arch);
        let base = f
            .get_str("general.name")
            .map(str::to_string)
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let model = Model::load(&mut f, opts.weight_format, opts.max_context, opts.kernels)?;
        if tokenizer.vocab_size() > model.config().vocab + 1024 {
            return Err(crate::gguf::file_error(
                path,
                format!(
                    "tokenizer has {} tokens but the embedding only {} rows",
                    tokenizer.vocab_size(),
                    model.config().vocab
                ),
            ));
        }
        let mut stop_ids: Vec<u32> = template
            .end_of_turn()
            .iter()
            .filter_map(|s| tokenizer.token_id(s))
            .collect();
        if let Some(e) = tokenizer.eos() {
            stop_ids.push(e);
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let file = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{base} ({file}, {})", opts.weight_format.name());
        let cache = model.new_cache();
        Ok(Self {
            model: Arc::new(model),
            tokenizer: Arc::new(tokenizer),
            template,
            name,
            path: path.to_path_buf(),
            cache,
            stop_ids,
            load_ms: t0.elapsed().as_secs_f64() * 1000.0,
            token_trie: OnceLock::new(),
            mask_stats: MaskStats::default(),
        })
    }

    /// The model (shared, immutable).
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// The chat template in use.
    pub fn template(&self) -> ChatTemplate {
        self.template
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Milliseconds the load took.
    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Positions currently held by the engine's prefix cache.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// The prefix tree of the tokens (built on first use, then kept).
    pub fn token_trie(&self) -> &TokenTrie {
        self.token_trie
            .get_or_init(|| TokenTrie::of_tokenizer(&self.tokenizer))
    }

    /// What the vocabulary mask cost in the last constrained request.
    pub fn mask_stats(&self) -> MaskStats {
        self.mask_stats
    }

    /// The tokens allowed in state `s` of `c`, plus the end-of-turn tokens when the text may
    /// end there (sorted).
    pub fn allowed_tokens(&self, c: &Constraint, s: WordState) -> Vec<u32> {
        let (mut out, mut stack) = (Vec::new(), Vec::new());
        self.token_trie().allowed(c, s, &mut out, &mut stack);
        if c.can_end(s) {
            out.extend_from_slice(&self.stop_ids);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets the cached prefix.
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }

    /// Token ids of a rendered prompt (with BOS when the template wants one).
    pub fn encode_prompt(&self, prompt: &Prompt) -> Vec<u32> {
        self.encode_text(&self.template.render(prompt))
    }

    fn encode_text(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        if self.template.wants_bos() || self.tokenizer.add_bos() {
            if let Some(b) = self.tokenizer.bos() {
                if !text.starts_with(self.tokenizer.token_text(b).unwrap_or("\u{0}")) {
                    ids.push(b);
                }
            }
        }
        ids.extend(self.tokenizer.encode(text));
        ids
    }

    /// Computes the prompt's leading system message into the prefix cache now, so that the
    /// first request pays no more than later ones. Returns the cached token count.
    pub fn warm_prefix(&mut self, prompt: &Prompt) -> Result<usize, SlmError> {
        let text = self.template.render_system_prefix(prompt);
        if text.is_empty() {
            return Ok(self.cache.len());
        }
        let ids = self.encode_text(&text);
        let lcp = common_prefix(self.cache.tokens(), &ids);
        self.cache.truncate(lcp);
        if lcp < ids.len() {
            self.model.forward(&ids[lcp..], &mut self.cache)?;
        }
        Ok(self.cache.len())
    }

    /// Generates from already tokenized input (used by benchmarks and tests).
    pub fn generate_tokens(
        &mut self,
        tokens: &[u32],
        params: &GenParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError> {
        self.generate_after(tokens, params, "", on_token)
    }

    /// Generates from tokenized input whose last `prefix` text is the answer's start (the
    /// vocabulary automaton reads it first).
    pub(crate) fn generate_after(
        &mut self,
        tokens: &[u32],
        params: &GenParams,
        prefix: &str,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError> {
        let t0 = Instant::now();
        let mut dec = Decoder::new(params, prefix, t0);
        if params.vocabulary.is_some() {
            self.token_trie();
        }
        let max_ctx = self.cache.max_len();
        if tokens.is_empty() {
            return Err(SlmError::Inference("empty prompt".into()));
        }
        if tokens.len() >= max_ctx {
            return Err(SlmError::PromptTooLong {
                tokens: tokens.len(),
                context: max_ctx,
            });
        }
        let lcp = common_prefix(self.cache.tokens(), tokens).min(tokens.len() - 1);
        self.cache.truncate(lcp);
        let mut logits = self.model.forward(&tokens[lcp..], &mut self.cache)?;
        let sh = Shared {
            tokenizer: &self.tokenizer,
            stop_ids: &self.stop_ids,
            trie: self.token_trie.get(),
        };
        let reason = loop {
            match dec.step(&mut logits, self.cache.len(), max_ctx, &sh, on_token) {
                Ok(tok) => logits = self.model.forward(&[tok], &mut self.cache)?,
                Err(reason) => break reason,
            }
        };
        let (c, mask) = dec.finish(reason, (tokens.len(), lcp), &self.name, on_token);
        if let Some(m) = mask {
            self.mask_stats = m;
        }
        Ok(c)
    }
}

impl LanguageModel for Engine {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate(
        &mut self,
        prompt: &Prompt,
        params: &GenParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError> {
        let tokens = self.encode_prompt(prompt);
        let prefix = prompt.answer_prefix.as_deref().unwrap_or("");
        self.generate_after(&tokens, params, prefix, on_token)
    }

    fn generate_batch(
        &mut self,
        requests: &[(Prompt, GenParams)],
        on_token: &mut dyn FnMut(usize, &str),
    ) -> Vec<Result<Completion, SlmError>> {
        if let [(prompt, params)] = requests {
            return vec![self.generate(prompt, params, &mut |s| on_token(0, s))];
        }
        let tokens: Vec<Vec<u32>> = requests
            .iter()
            .map(|(p, _)| self.encode_prompt(p))
            .collect();
        let reqs: Vec<crate::batch::Request<'_>> = requests
            .iter()
            .zip(&tokens)
            .map(|((p, g), t)| crate::batch::Request {
                tokens: t,
                params: g,
                prefix: p.answer_prefix.as_deref().unwrap_or(""),
            })
            .collect();
        self.generate_requests(&reqs, on_token)
    }
}

/// Length of the common prefix of two token lists.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
