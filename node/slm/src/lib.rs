//! On-device language model engine: GGUF loading, tokenizer from GGUF metadata, chat
//! templates, a forward pass with an explicit KV cache, the generation loop, model choice by
//! RAM, and a bounded request queue on a dedicated thread.
//!
//! How the rest of the node uses it:
//! ```no_run
//! use millwright_slm::{load_best, EngineOptions, ModelHandle};
//! use millwright_core::{GenParams, Prompt};
//! # async fn demo() -> Result<(), millwright_core::SlmError> {
//! let model = load_best(&["models/SmolLM2-135M-Instruct.Q4_1.gguf".into()], &EngineOptions::default());
//! let handle = ModelHandle::spawn(model, 4)?;          // bounded queue, own OS thread
//! let answer = handle.generate(Prompt::new("You are a maintenance assistant.", "Why is P-101 hot?"),
//!                              GenParams::default()).await?;
//! println!("{}", answer.text);
//! # Ok(()) }
//! ```
//! Nothing here reads configuration (files or environment variables) or touches the network;
//! everything comes in through [`EngineOptions`], and model files are only read from the
//! paths given. The one thing read from the system is the available RAM, for the model
//! choice ([`select`]), and the CPU's features, for the kernel set ([`kernels`]).

pub mod batch;
pub mod bench;
pub mod constrain;
mod decode;
pub mod engine;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod pool;
pub mod priority;
pub mod sampler;
pub mod select;
pub mod service;
pub mod template;
pub mod tokenizer;

pub use engine::{set_kernel_threads, Engine, EngineOptions, MaskStats};
pub use kernels::{Isa, KernelCap};
pub use model::{Hyperparams, KvCache, Model, WeightFormat};
pub use select::{choose_model, load_best, load_or_fallback, mem_available_bytes, Fallback};
pub use service::{ModelHandle, TokenSink};
pub use template::ChatTemplate;
pub use tokenizer::{Tokenizer, Utf8Stream};
