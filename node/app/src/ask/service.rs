//! The ask service: one MQTT 5 client task of the node for operator questions.
//!
//! It subscribes to `<root>/<site>/ask` and `<root>/<site>/ask/+`. The operator is the last
//! topic level of `ask/<operator>` (a broker ACL `pattern write <root>/<site>/ask/%u` binds it
//! to the authenticated user), on plain `ask` the MQTT 5 user property `operator`, else
//! `anonymous`. Each message is checked in this order, and the first failure is answered with
//! an error answer (where an id exists to answer to) and counted by reason: payload
//! ([`AskPayload::parse`]), operator name, response topic, duplicate open id, the operator's
//! rate, `max_open`. A good question goes, with the assets the ACL lets its operator see, to
//! the analytics thread's input channel (never blocking it: a full channel is `busy`).
//!
//! The analytics answers at once ([`FromAnalytics::Answer`]) or hands back an
//! [`AskRequest`] that needs the model: its prompt goes to the model's queue
//! ([`ModelHandle::generate`], at most [`MODEL_SLOTS`] questions at once so explanations keep
//! their room) and the completion back to [`AskRequest::finish`]; no model, or no completion
//! within `answer_timeout_s`, gives the template answer; a full model queue is `busy`.
//!
//! Every answer goes to `<root>/<site>/answers/<id>` (QoS 1) and, when the question set one, to
//! its MQTT 5 response topic with its correlation data. Partial text is not streamed: the
//! model's text is only published after the grounding check.

use super::config::AskSection;
use super::limits::RateLimiter;
use super::{AnswerPort, AskStatus, FromAnalytics, Reason};
use crate::analytics::Questions;
use millwright_analytics::AskRequest;
use millwright_core::ask::{Answer, AskPayload, AskPayloadError, Question};
use millwright_core::SlmError;
use millwright_mqtt::{Backoff, ConnectOptions};
use millwright_slm::ModelHandle;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Questions that may be with the model at once; the rest wait for a slot (within their
/// answer timeout). The model's queue is sized for the explanations plus these.
pub const MODEL_SLOTS: usize = 4;
/// Longest operator name, in characters.
pub const MAX_OPERATOR_CHARS: usize = 64;

/// What the service needs.
pub struct AskSetup {
    /// The broker (the node's `[mqtt]` connection under its own client id); MQTT 5 is used
    /// whatever its `protocol` says.
    pub conn: ConnectOptions,
    /// `<topic_root>/<site>`.
    pub prefix: String,
    /// `<topic_root>`: response topics under it (other than answers) are refused.
    pub topic_root: String,
    /// `[ask]`.
    pub section: AskSection,
    /// The asset tags the ACL resolves against, asked per question: `[[assets]]` and every
    /// asset in the local store (see [`known_assets`]).
    pub assets: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    /// "Now" of a question (ns since the epoch; the demo's is plant time).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// The model, if any.
    pub model: Option<ModelHandle>,
    /// Counters.
    pub status: Arc<AskStatus>,
}

/// `configured` (the `[[assets]]` tags) and, after them, every other asset of the store.
pub fn known_assets(
    configured: Vec<String>,
    store: Arc<std::sync::Mutex<millwright_store::Store>>,
) -> Arc<dyn Fn() -> Vec<String> + Send + Sync> {
    Arc::new(move || {
        let mut all = configured.clone();
        if let Ok(s) = store.lock() {
            for id in s.sensors() {
                if !all.iter().any(|a| *a == *id.asset) {
                    all.push(id.asset.to_string());
                }
            }
        }
        all
    })
}

/// Where to answer besides `answers/<id>`: an MQTT 5 response topic and correlation data.
type Reply = Option<(String, PublishProperties)>;

struct Open {
    received: Instant,
    deadline: Instant,
    reply: Reply,
    with_model: bool,
}

/// The ask client's options, with the broker host `host`.
fn client_options(setup: &AskSetup, host: &str) -> anyhow::Result<rumqttc::v5::MqttOptions> {
    let mut conn = setup.conn.clone();
    conn.host = host.to_string();
    let mut opts = conn.v5_options()?;
    opts.set_clean_start(true);
    Ok(opts.into_inner())
}

/// Starts the ask client task; returns the analytics' sender of answers and the task.
pub fn spawn(
    setup: AskSetup,
    questions: Questions,
) -> anyhow::Result<(AnswerPort, JoinHandle<()>)> {
    let (client, eventloop) = AsyncClient::new(client_options(&setup, &setup.conn.host)?, 1024);
    let (tx, rx) = mpsc::channel(setup.section.max_open * 2 + 16);
    let port = AnswerPort {
        tx,
        status: setup.status.clone(),
    };
    let svc = Service {
        limiter: RateLimiter::new(setup.section.rate_per_min, setup.section.burst),
        backoff: Backoff::new(&setup.conn),
        ask_topic: format!("{}/ask", setup.prefix),
        slots: Arc::new(tokio::sync::Semaphore::new(MODEL_SLOTS)),
        setup,
        client,
        questions,
        open: HashMap::new(),
        avg_latency_s: 1.0,
    };
    Ok((port, tokio::spawn(svc.run(eventloop, rx))))
}

struct Service {
    setup: AskSetup,
    client: AsyncClient,
    questions: Questions,
    limiter: RateLimiter,
    backoff: Backoff,
    ask_topic: String,
    open: HashMap<String, Open>,
    slots: Arc<tokio::sync::Semaphore>,
    avg_latency_s: f64,
}

impl Service {
    async fn run(mut self, mut el: EventLoop, mut from_analytics: mpsc::Receiver<FromAnalytics>) {
        let (done_tx, mut done) = mpsc::unbounded_channel::<Answer>();
        let mut sweep = tokio::time::interval(Duration::from_millis(250));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (host, port) = el.options.broker_address();
        let mut connecting = true;
        // Connection attempts since the last success (which checked address to try).
        let mut attempt = 0usize;
        loop {
            // Every (re)connect passes the node's egress check first; a refusal opens no socket.
            if connecting {
                match millwright_mqtt::check_egress_async(&host, port).await {
                    Ok(a) => {
                        // Connect to what was checked (rumqttc would resolve the name again).
                        let tls = self.setup.conn.tls.is_some();
                        let h = millwright_mqtt::connect_host(&host, &a, attempt, tls);
                        attempt += 1;
                        if el.options.broker_address().0 != h {
                            match client_options(&self.setup, &h) {
                                Ok(o) => el.options = o,
                                Err(e) => {
                                    tracing::warn!(error = %e, "ask service: options for the checked address")
                                }
                            }
                        }
                    }
                    Err(why) => {
                        self.setup.status.connected.store(0, Ordering::Relaxed);
                        let d = self.backoff.next_delay();
                        tracing::warn!(reason = %why, retry_in_ms = d.as_millis() as u64, "ask service: egress refused");
                        tokio::time::sleep(d).await;
                        continue;
                    }
                }
                connecting = false;
            }
            tokio::select! {
                ev = el.poll() => match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) => self.on_message(p),
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        self.backoff.reset();
                        attempt = 0;
                        self.setup.status.connected.store(1, Ordering::Relaxed);
                        tracing::info!(topic = %self.ask_topic, "ask service connected (MQTT 5); subscribing");
                        let filters = [
                            Filter::new(self.ask_topic.clone(), QoS::AtLeastOnce),
                            Filter::new(format!("{}/+", self.ask_topic), QoS::AtLeastOnce),
                        ];
                        if let Err(e) = self.client.try_subscribe_many(filters) {
                            tracing::error!(error = %e, "ask subscription could not be queued");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        connecting = true;
                        self.setup.status.connected.store(0, Ordering::Relaxed);
                        let d = self.backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "ask service: broker connection");
                        tokio::time::sleep(d).await;
                    }
                },
                Some(m) = from_analytics.recv() => match m {
                    FromAnalytics::Answer(a) => self.publish_open(*a),
                    FromAnalytics::Ask(req) => self.ask_model(*req, &done_tx),
                },
                Some(a) = done.recv() => self.publish_open(a),
                _ = sweep.tick() => self.sweep(),
            }
        }
    }

    /// A message on an ask topic.
    fn on_message(&mut self, p: Publish) {
        let st = self.setup.status.clone();
        st.questions.fetch_add(1, Ordering::Relaxed);
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let props = p.properties.unwrap_or_default();
        // A response topic the node must not publish on is never used, not even for errors.
        let mut bad_reply = None;
        let reply: Reply = match props.response_topic.clone() {
            Some(t) => match self.response_topic_ok(&t) {
                Ok(()) => Some((
                    t,
                    PublishProperties {
                        correlation_data: props.correlation_data.clone(),
                        ..Default::default()
                    },
                )),
                Err(why) => {
                    bad_reply = Some(why);
                    None
                }
            },
            None => None,
        };
        let max = self.setup.section.max_question_chars;
        let payload = match AskPayload::parse(&p.payload, max) {
            Ok(q) => q,
            Err((id, e)) => {
                let reason = match e {
                    AskPayloadError::NotJson(_) => Reason::NotJson,
                    AskPayloadError::NoId => Reason::NoId,
                    AskPayloadError::BadId(_) => Reason::BadId,
                    AskPayloadError::EmptyQuestion => Reason::EmptyQuestion,
                    AskPayloadError::TooLong { .. } => Reason::TooLong,
                };
                tracing::warn!(%topic, reason = reason.as_str(), error = %e, "malformed question");
                return self.reject(id, reason, e.to_string(), None, reply);
            }
        };
        let id = payload.id.clone();
        let from_topic = topic
            .strip_prefix(&self.ask_topic)
            .and_then(|r| r.strip_prefix('/'));
        let operator = match from_topic {
            Some(op) => op.to_string(),
            None => props
                .user_properties
                .iter()
                .find(|(k, _)| k == "operator")
                .map_or_else(|| "anonymous".to_string(), |(_, v)| v.clone()),
        };
        if operator.is_empty()
            || operator.chars().count() > MAX_OPERATOR_CHARS
            || operator
                .chars()
                .any(|c| c.is_control() || "/+#".contains(c))
        {
            let text = format!(
                "the operator name must be 1–{MAX_OPERATOR_CHARS} characters without '/', '+', '#' or control characters"
            );
            return self.reject(Some(id), Reason::BadOperator, text, None, reply);
        }
        if let Some(why) = bad_reply {
            // Answered on answers/<id> only: the response topic is the problem.
            return self.reject(Some(id), Reason::BadResponseTopic, why, None, None);
        }
        if self.open.contains_key(&id) {
            let text = format!("a question with id {id:?} is still open; use a new id");
            return self.reject(Some(id), Reason::DuplicateId, text, None, reply);
        }
        let now = Instant::now();
        if let Err(wait) = self.limiter.take(&operator, now) {
            let text = format!("too many questions from {operator}; ask again in {wait} s");
            return self.reject(Some(id), Reason::RateLimited, text, Some(wait), reply);
        }
        if self.open.len() >= self.setup.section.max_open {
            return self.busy(id, reply);
        }
        let q = Question {
            id: id.clone(),
            text: payload.question.trim().to_string(),
            asset: payload.asset,
            visible_assets: self
                .setup
                .section
                .visible_assets(&operator, &(self.setup.assets)()),
            operator: operator.clone(),
            received_ns: (self.setup.clock)(),
        };
        if !self.questions.ask(q) {
            return self.busy(id, reply);
        }
        tracing::info!(%id, %operator, "question");
        self.open.insert(
            id,
            Open {
                received: now,
                deadline: now + Duration::from_secs(self.setup.section.answer_timeout_s),
                reply,
                with_model: false,
            },
        );
        self.gauge();
    }

    /// Response topics the node publishes on: no wildcards, not `$…`, and under the node's
    /// topic root only its answers.
    fn response_topic_ok(&self, t: &str) -> Result<(), String> {
        let answers = format!("{}/answers/", self.setup.prefix);
        let root = format!("{}/", self.setup.topic_root);
        if t.is_empty() || t.contains(['+', '#', '\0']) || t.starts_with('$') {
            Err(format!(
                "response topic {t:?} is not a topic the node publishes on (no wildcards, not $…)"
            ))
        } else if (t.starts_with(&root) || t == self.setup.topic_root) && !t.starts_with(&answers) {
            Err(format!(
                "response topic {t:?} is one of the node's own topics; use one outside {root} or under {answers}"
            ))
        } else {
            Ok(())
        }
    }

    fn busy(&mut self, id: String, reply: Reply) {
        let wait = self.retry_after();
        let text = format!("the node is busy answering other questions; ask again in {wait} s");
        self.reject(Some(id), Reason::Busy, text, Some(wait), reply);
    }

    /// Seconds until a question probably finds room: the open questions' share of the model.
    fn retry_after(&self) -> u64 {
        let per_slot = (self.open.len() as f64 + 1.0) / MODEL_SLOTS as f64;
        ((self.avg_latency_s * per_slot).ceil() as u64)
            .clamp(1, self.setup.section.answer_timeout_s)
    }

    /// Counts `reason` and answers it where an id exists.
    fn reject(
        &mut self,
        id: Option<String>,
        reason: Reason,
        text: String,
        retry_after_s: Option<u64>,
        reply: Reply,
    ) {
        self.setup.status.reject(reason);
        let Some(id) = id else {
            tracing::warn!(
                reason = reason.as_str(),
                "question without a usable id: not answered"
            );
            return;
        };
        let mut a = Answer::error(id, reason.as_str(), text);
        a.retry_after_s = retry_after_s;
        self.publish(a, None, &reply);
    }

    /// The model part of a question, on the model's queue; the answer comes back on `done`.
    fn ask_model(&mut self, req: AskRequest, done: &mpsc::UnboundedSender<Answer>) {
        let Some(open) = self.open.get_mut(&req.question.id) else {
            self.setup
                .status
                .late_answers
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(model) = self.setup.model.clone() else {
            return self.publish_open(req.template());
        };
        open.with_model = true;
        let deadline = tokio::time::Instant::from_std(open.deadline);
        let (slots, done, status) = (self.slots.clone(), done.clone(), self.setup.status.clone());
        tokio::spawn(async move {
            // The slot is held until the model is done with the job (also after the answer
            // timed out), so abandoned jobs never pile up in the model's queue.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (prompt, params) = req.prompt();
            tokio::spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                if tx.is_closed() {
                    return; // timed out while waiting for a slot: not queued at all
                }
                let _ = tx.send(model.generate(prompt, params).await);
            });
            let run = async { rx.await.ok() };
            let answer = match tokio::time::timeout_at(deadline, run).await {
                Ok(Some(Err(SlmError::Busy(_)))) => {
                    let mut a = Answer::error(
                        req.question.id.clone(),
                        Reason::Busy.as_str(),
                        "the model is busy; ask again in a few seconds",
                    );
                    a.retry_after_s = Some(5);
                    status.reject(Reason::Busy);
                    a
                }
                Ok(Some(r)) => req.finish(r),
                Ok(None) => req.template(),
                Err(_) => {
                    status.model_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(id = %req.question.id, "model answer not ready in time; the template answers");
                    req.template()
                }
            };
            let _ = done.send(answer);
        });
    }

    /// Publishes the answer of an open question (dropped when it already timed out).
    fn publish_open(&mut self, a: Answer) {
        let Some(open) = self.open.remove(&a.id) else {
            self.setup
                .status
                .late_answers
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(id = %a.id, "answer after its question timed out: not published");
            return;
        };
        let took = open.received.elapsed().as_secs_f64();
        self.avg_latency_s = 0.8 * self.avg_latency_s + 0.2 * took;
        self.publish(a, Some(open.received), &open.reply);
        self.gauge();
    }

    /// Questions with no answer from analytics in time get a `timeout` error answer.
    fn sweep(&mut self) {
        let now = Instant::now();
        // A model answer has its own deadline (then the template); this is the safety net.
        let grace = |o: &Open| {
            if o.with_model {
                Duration::from_secs(5)
            } else {
                Duration::ZERO
            }
        };
        let expired: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| now >= o.deadline + grace(o))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(o) = self.open.remove(&id) {
                self.setup.status.reject(Reason::Timeout);
                let text = format!(
                    "no answer within {} s; ask again later",
                    self.setup.section.answer_timeout_s
                );
                tracing::warn!(%id, "question timed out");
                self.publish(
                    Answer::error(id, Reason::Timeout.as_str(), text),
                    Some(o.received),
                    &o.reply,
                );
            }
        }
        self.gauge();
    }

    fn gauge(&self) {
        self.setup
            .status
            .open
            .store(self.open.len() as u64, Ordering::Relaxed);
    }

    /// Publishes on `answers/<id>` and the response topic (QoS 1, not retained).
    fn publish(&self, mut a: Answer, received: Option<Instant>, reply: &Reply) {
        a.latency_ms = received.map_or(0, |r| r.elapsed().as_millis() as u64);
        let json = match serde_json::to_vec(&a) {
            Ok(j) => j,
            Err(e) => return tracing::error!(error = %e, "answer could not be serialised"),
        };
        let topic = format!("{}/answers/{}", self.setup.prefix, a.id);
        if let Err(e) = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, json.clone())
        {
            tracing::warn!(id = %a.id, error = %e, "answer could not be queued");
        }
        if let Some((rt, props)) = reply {
            if let Err(e) = self.client.try_publish_with_properties(
                rt.clone(),
                QoS::AtLeastOnce,
                false,
                json,
                props.clone(),
            ) {
                tracing::warn!(id = %a.id, error = %e, "answer to the response topic could not be queued");
            }
        }
        self.setup.status.answered(a.source);
    }
}
