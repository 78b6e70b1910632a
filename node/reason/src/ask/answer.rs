//! Answer texts: the prompt and its vocabulary, the model text's check, and the template.

use super::AskRequest;
use millwright_core::{GenParams, Prompt};

const SYSTEM: &str = "You are a maintenance assistant at an industrial site. \
Answer the operator's question in one or two short sentences using only the facts given. \
Copy numbers and units exactly as written. Never invent numbers, machines or sensors.";

/// The model input of a request.
pub fn prompt(r: &AskRequest) -> (Prompt, GenParams) {
    let mut user = String::from("Facts:\n");
    for l in &r.fact_lines {
        user.push_str(l);
        user.push('\n');
    }
    user.push_str(&format!("Question: {}\n", r.question.text));
    let mut p = Prompt::new(SYSTEM, user);
    p.answer_prefix = Some(r.prefix.clone());
    let params = GenParams {
        max_tokens: r.opts.max_tokens,
        budget_ms: r.opts.budget_ms,
        stop: vec!["\n".into()],
        vocabulary: Some(r.vocabulary.clone()),
        ..GenParams::default()
    };
    (p, params)
}

/// The answer prefix and the completion joined and tidied.
pub fn model_text(prefix: &str, completion: &str) -> String {
    let sep = if prefix.is_empty() || completion.starts_with(char::is_whitespace) {
        ""
    } else {
        " "
    };
    crate::explain::tidy(&format!("{prefix}{sep}{completion}"))
}

/// Every problem of a model text (empty: it may be published).
pub fn problems(r: &AskRequest, text: &str) -> Vec<String> {
    let _ = r;
    if text.is_empty() {
        return vec!["empty".into()];
    }
    vec!["not checked yet".into()]
}
