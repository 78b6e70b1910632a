//! Operator questions, the analytics' side: the facts the machine owns (profiles, incidents,
//! cards, events) of the assets the operator may see are handed to
//! [`millwright_reason::ask::prepare`]; what needs no model is answered at once
//! ([`Output::Answer`]), the rest goes out as [`Output::Ask`] for the model (or its template).
//!
//! Only the glue lives here: understanding, evidence, texts and checks are in
//! `millwright-reason` (`ask/`). Nothing here reads facts of an asset outside
//! `Question::visible_assets`.

use crate::{Analytics, Output};
use millwright_core::{History, Question};
use millwright_reason::ask::{prepare, AssetContext};

impl Analytics {
    /// Understands the question, reads the facts (history and this machine's events,
    /// incidents and cards of the visible assets only) and pushes [`Output::Answer`] when no
    /// model is needed (refusal, no data) or [`Output::Ask`] for the model.
    pub fn on_question(&mut self, q: Question, history: &dyn History, out: &mut Vec<Output>) {
        let mut assets = Vec::new();
        for asset in &q.visible_assets {
            let profile = self.profile(asset);
            if profile.is_none() && history.signals_of(asset).is_empty() {
                continue; // neither monitored nor in the store: as if it did not exist
            }
            assets.push(AssetContext {
                asset: asset.clone(),
                profile,
                incidents: self.incidents.of_asset(asset),
                cards: self
                    .cards
                    .iter()
                    .filter(|c| c.asset == *asset)
                    .cloned()
                    .collect(),
                events: self
                    .events
                    .iter()
                    .filter(|e| *e.sensor.asset == **asset)
                    .cloned()
                    .collect(),
            });
        }
        match prepare(&q, &assets, history, &self.opts.ask) {
            Ok(req) => out.push(Output::Ask(Box::new(req))),
            Err(answer) => out.push(Output::Answer(answer)),
        }
    }
}
