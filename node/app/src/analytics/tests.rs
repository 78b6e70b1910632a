//! Tests of the analytics driver: a slow model never delays detection, the tap counts what it
//! drops, the driver ends when the tap closes.

use super::*;
use millwright_core::{
    Completion, GenParams, LanguageModel, Prompt, Reading, SlmError, StopReason,
};
use millwright_store::StoreConfig;
use std::sync::mpsc::{channel, Sender};

const S: i64 = 1_000_000_000;

const PROFILE: &str = r#"
name = "test-machine"
[defaults]
learn_n = 30
close_after_s = 5
[[signals]]
name = "temp_c"
unit = "°C"
normal = [20.0, 80.0]
limits = { max = 90.0 }
noise_floor = 0.1
detect.level = { shift_z = 5.0, spike_z = 9.0 }
detect.gap = { after_s = 15 }
"#;

/// A model that takes `delay` per call, then answers a grounded text.
struct Slow {
    delay: Duration,
}

impl LanguageModel for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn generate(
        &mut self,
        _: &Prompt,
        _: &GenParams,
        _: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError> {
        std::thread::sleep(self.delay);
        Ok(Completion {
            // only words of the request's vocabulary (function words and the facts)
            text: "The temp reading rose far above its usual level. Check it soon.".into(),
            prompt_tokens: 0,
            cached_tokens: 0,
            generated_tokens: 20,
            stop_reason: StopReason::Eos,
            ttft_ms: 0.0,
            total_ms: self.delay.as_secs_f64() * 1e3,
            model: "slow".into(),
        })
    }
}

/// What the driver delivered, with when.
enum Seen {
    Opened(String, Instant),
    Alert(Box<ExplanationCard>, Instant),
    Report(String),
}

struct Collect(Sender<Seen>);

impl Deliver for Collect {
    fn opened(&mut self, ev: &Anomaly) {
        let _ = self
            .0
            .send(Seen::Opened(ev.sensor.asset.to_string(), Instant::now()));
    }
    fn alert(&mut self, card: &ExplanationCard) {
        let _ = self
            .0
            .send(Seen::Alert(Box::new(card.clone()), Instant::now()));
    }
    fn report(&mut self, r: &MaintenanceReport, _: &str) {
        let _ = self.0.send(Seen::Report(r.asset.clone()));
    }
    fn site_report(&mut self, _: &str) {}
}

struct Rig {
    tap: Tap,
    requests: Requests,
    store: Arc<Mutex<Store>>,
    seen: Receiver<Seen>,
    status: Arc<AnalyticsStatus>,
    thread: std::thread::JoinHandle<()>,
    t0: i64,
}

fn rig(model: Option<ModelHandle>) -> Rig {
    let profile = Profile::from_toml_str(PROFILE, "test").unwrap();
    let machine = Analytics::new(
        millwright_analytics::Options::new("t"),
        vec![("A".into(), profile.clone()), ("B".into(), profile)],
    );
    let status = Arc::new(AnalyticsStatus::default());
    let (tap, inbox) = super::channel(status.clone());
    let requests = inbox.requests();
    let store = Arc::new(Mutex::new(Store::new(StoreConfig::default())));
    let (tx, seen) = channel();
    let driver = Driver::new(
        inbox,
        machine,
        Box::new(SharedStore(store.clone())),
        model,
        Collect(tx),
        DriverOptions {
            tick: None,
            drain: Duration::from_secs(30),
        },
    );
    let thread = std::thread::spawn(move || {
        driver.run();
    });
    Rig {
        tap,
        requests,
        store,
        seen,
        status,
        thread,
        t0: crate::time_ns() - 100 * S,
    }
}

impl Rig {
    /// Sends one reading a second of `asset` over `[from_s, to_s)`, through the store and the
    /// tap as the pipeline does.
    fn feed(&self, asset: &str, from_s: i64, to_s: i64, v: impl Fn(i64) -> f64) {
        for t in from_s..to_s {
            let r = Reading::new(
                SensorId::new(asset, "temp_c"),
                self.t0 + t * S,
                v(t),
                Unit::new("°C"),
            );
            self.store.lock().unwrap().insert(std::slice::from_ref(&r));
            self.tap.send(vec![r]);
        }
    }

    fn next(&self, within: Duration) -> Option<Seen> {
        self.seen.recv_timeout(within).ok()
    }
}

fn normal(t: i64) -> f64 {
    50.0 + 0.3 * ((t as f64) * 1.7).sin()
}

#[test]
fn a_slow_model_does_not_delay_detection_of_a_second_anomaly() {
    // The model takes 10 s per call; its queue holds nothing beyond the call it is on.
    // "At once" below is under 3 s: a third of one model call, with room for a loaded machine.
    let model = ModelHandle::spawn(
        Box::new(Slow {
            delay: Duration::from_secs(10),
        }),
        0,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let rig = rig(Some(model));
    rig.feed("A", 0, 60, normal);
    rig.feed("B", 0, 60, normal);
    // A opens: its explanation goes to the model.
    let sent_a = Instant::now();
    rig.feed("A", 60, 63, |_| 95.0);
    let Some(Seen::Opened(asset, at)) = rig.next(Duration::from_secs(5)) else {
        panic!("A not detected");
    };
    assert_eq!(asset, "A");
    assert!(at - sent_a < Duration::from_secs(3), "{:?}", at - sent_a);
    // While the model writes A's explanation, B opens: detected at once, explained by the
    // template at once.
    std::thread::sleep(Duration::from_millis(300));
    let sent_b = Instant::now();
    rig.feed("B", 60, 63, |_| 95.0);
    let Some(Seen::Opened(asset, at)) = rig.next(Duration::from_secs(5)) else {
        panic!("B not detected");
    };
    assert_eq!(asset, "B");
    let latency = at - sent_b;
    assert!(
        latency < Duration::from_secs(3),
        "detection latency {latency:?}"
    );
    let Some(Seen::Alert(card, at)) = rig.next(Duration::from_secs(5)) else {
        panic!("no alert for B");
    };
    assert_eq!(card.asset, "B");
    assert_eq!(card.source, millwright_core::anomaly::TextSource::Fallback);
    assert_eq!(card.attempts, 0, "the model was never asked");
    assert!(at - sent_b < Duration::from_secs(3), "{:?}", at - sent_b);
    assert_eq!(
        rig.status.explanations_queue_full.load(Ordering::Relaxed),
        1
    );
    assert_eq!(rig.status.machine(|c| &c.anomalies), 2);
    // A's alert arrives after its own turn with the model.
    let Some(Seen::Alert(card, at)) = rig.next(Duration::from_secs(25)) else {
        panic!("no alert for A");
    };
    assert_eq!(card.asset, "A");
    assert_eq!(card.model, "slow");
    assert!(at - sent_a >= Duration::from_secs(9), "{:?}", at - sent_a);
    assert_eq!(rig.status.machine(|c| &c.explanations_model), 1);
    // Closing the tap ends the driver.
    drop(rig.tap);
    rig.thread.join().unwrap();
}

#[test]
fn without_a_model_the_template_explains_and_requests_are_answered() {
    let rig = rig(None);
    rig.feed("A", 0, 60, normal);
    rig.feed("A", 60, 63, |_| 95.0);
    assert!(matches!(
        rig.next(Duration::from_secs(5)),
        Some(Seen::Opened(a, _)) if a == "A"
    ));
    let Some(Seen::Alert(card, _)) = rig.next(Duration::from_secs(5)) else {
        panic!("no alert");
    };
    assert_eq!(card.source, millwright_core::anomaly::TextSource::Fallback);
    assert_eq!(
        rig.status.explanations_queue_full.load(Ordering::Relaxed),
        0
    );
    assert!(rig.requests.request("A".into()));
    assert!(matches!(
        rig.next(Duration::from_secs(5)),
        Some(Seen::Report(a)) if a == "A"
    ));
    drop(rig.tap);
    rig.thread.join().unwrap();
    assert!(!rig.requests.request("A".into()), "the driver has stopped");
}

#[test]
fn the_tap_counts_batches_it_drops() {
    let status = Arc::new(AnalyticsStatus::default());
    let (tap, inbox) = super::channel(status.clone());
    for _ in 0..INPUT_CAPACITY + 3 {
        tap.send(Vec::new());
    }
    assert_eq!(status.dropped_batches.load(Ordering::Relaxed), 3);
    drop(inbox);
    tap.send(Vec::new());
    assert_eq!(status.dropped_batches.load(Ordering::Relaxed), 4);
}
