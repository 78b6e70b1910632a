//! Chat templates: turn a [`Prompt`] into the exact text a model family was trained on.
//!
//! The family is chosen from GGUF metadata (`tokenizer.chat_template` markers first, then
//! `general.architecture`). Templates are written out by hand rather than by a Jinja engine:
//! the four families the node supports are ChatML (SmolLM2, Qwen 2), Gemma turns, Llama 3 and
//! Phi-3. Nothing here tokenizes or does I/O.

use millwright_core::{Prompt, Role};

/// A chat template family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n…<|im_end|>\n` (SmolLM2, Qwen 2).
    ChatMl,
    /// `<start_of_turn>user\n…<end_of_turn>\n` (Gemma; system text is folded into the first user turn).
    Gemma,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (Llama 3).
    Llama3,
    /// `<|system|>\n…<|end|>\n` (Phi-3).
    Phi3,
}

impl ChatTemplate {
    /// Picks the template from the GGUF's `tokenizer.chat_template` text (if any) and architecture.
    pub fn detect(chat_template: Option<&str>, architecture: &str) -> Self {
        if let Some(t) = chat_template {
            if t.contains("<|im_start|>") {
                return Self::ChatMl;
            }
            if t.contains("<start_of_turn>") {
                return Self::Gemma;
            }
            if t.contains("<|start_header_id|>") {
                return Self::Llama3;
            }
            if t.contains("<|assistant|>") || t.contains("<|end|>") {
                return Self::Phi3;
            }
        }
        match architecture {
            "gemma" | "gemma2" | "gemma3" => Self::Gemma,
            "phi3" => Self::Phi3,
            "llama" => Self::Llama3,
            _ => Self::ChatMl,
        }
    }

    /// Strings that end the assistant's turn in this template.
    pub fn end_of_turn(&self) -> &'static [&'static str] {
        match self {
            Self::ChatMl => &["<|im_end|>", "<|endoftext|>"],
            Self::Gemma => &["<end_of_turn>", "<eos>"],
            Self::Llama3 => &["<|eot_id|>", "<|end_of_text|>"],
            Self::Phi3 => &["<|end|>", "<|endoftext|>"],
        }
    }

    /// Whether the rendered text should start with the tokenizer's BOS token.
    pub fn wants_bos(&self) -> bool {
        matches!(self, Self::Gemma | Self::Llama3)
    }

    /// Renders the whole prompt, ending with the assistant turn opener and the answer prefix.
    pub fn render(&self, prompt: &Prompt) -> String {
        let mut s = String::new();
        let mut pending_system: Option<&str> = None;
        for m in &prompt.messages {
            match self {
                Self::ChatMl => {
                    s.push_str("<|im_start|>");
                    s.push_str(role_name(m.role));
                    s.push('\n');
                    s.push_str(&m.content);
                    s.push_str("<|im_end|>\n");
                }
                Self::Gemma => {
                    if m.role == Role::System {
                        pending_system = Some(&m.content);
                        continue;
                    }
                    s.push_str("<start_of_turn>");
                    s.push_str(if m.role == Role::Assistant {
                        "model"
                    } else {
                        "user"
                    });
                    s.push('\n');
                    if let Some(sys) = pending_system.take() {
                        s.push_str(sys);
                        s.push_str("\n\n");
                    }
                    s.push_str(&m.content);
                    s.push_str("<end_of_turn>\n");
                }
                Self::Llama3 => {
                    s.push_str("<|start_header_id|>");
                    s.push_str(role_name(m.role));
                    s.push_str("<|end_header_id|>\n\n");
                    s.push_str(m.content.trim());
                    s.push_str("<|eot_id|>");
                }
                Self::Phi3 => {
                    s.push_str("<|");
                    s.push_str(role_name(m.role));
                    s.push_str("|>\n");
                    s.push_str(&m.content);
                    s.push_str("<|end|>\n");
                }
            }
        }
        if let Some(sys) = pending_system {
            // a Gemma prompt with only a system message
            s.push_str("<start_of_turn>user\n");
            s.push_str(sys);
            s.push_str("<end_of_turn>\n");
        }
        match self {
            Self::ChatMl => s.push_str("<|im_start|>assistant\n"),
            Self::Gemma => s.push_str("<start_of_turn>model\n"),
            Self::Llama3 => s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n"),
            Self::Phi3 => s.push_str("<|assistant|>\n"),
        }
        if let Some(p) = &prompt.answer_prefix {
            s.push_str(p);
        }
        s
    }

    /// The rendered text of the prompt's leading system message alone: the cacheable prefix.
    /// Empty when the prompt does not start with a system message.
    pub fn render_system_prefix(&self, prompt: &Prompt) -> String {
        let Some(first) = prompt.messages.first() else {
            return String::new();
        };
        if first.role != Role::System {
            return String::new();
        }
        match self {
            Self::ChatMl => format!("<|im_start|>system\n{}<|im_end|>\n", first.content),
            Self::Gemma => format!("<start_of_turn>user\n{}\n\n", first.content),
            Self::Llama3 => format!(
                "<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>",
                first.content.trim()
            ),
            Self::Phi3 => format!("<|system|>\n{}<|end|>\n", first.content),
        }
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders_turns_and_prefix() {
        let mut p = Prompt::new("Be brief.", "Why hot?");
        p.answer_prefix = Some("Cause:".into());
        let t = ChatTemplate::ChatMl.render(&p);
        assert_eq!(
            t,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhy hot?<|im_end|>\n<|im_start|>assistant\nCause:"
        );
        assert!(t.starts_with(&ChatTemplate::ChatMl.render_system_prefix(&p)));
    }

    #[test]
    fn gemma_folds_system_into_user_turn() {
        let p = Prompt::new("Be brief.", "Why hot?");
        let t = ChatTemplate::Gemma.render(&p);
        assert_eq!(
            t,
            "<start_of_turn>user\nBe brief.\n\nWhy hot?<end_of_turn>\n<start_of_turn>model\n"
        );
        assert!(t.starts_with(&ChatTemplate::Gemma.render_system_prefix(&p)));
    }

    #[test]
    fn detection_prefers_template_text() {
        assert_eq!(
            ChatTemplate::detect(Some("{{'<|im_start|>'}}"), "llama"),
            ChatTemplate::ChatMl
        );
        assert_eq!(ChatTemplate::detect(None, "gemma3"), ChatTemplate::Gemma);
        assert_eq!(ChatTemplate::detect(None, "phi3"), ChatTemplate::Phi3);
        assert_eq!(
            ChatTemplate::detect(Some("<|start_header_id|>"), "llama"),
            ChatTemplate::Llama3
        );
    }
}
