//! What the fake saw: recorded requests and notable events, shared (one `Arc<Mutex<..>>`) between every server
//! worker, the `/__fake/*` endpoints and a test's [`crate::FakeUpstream`] handle. It also holds the switches:
//! a request for model `switch-<name>` behaves as the mode the switch `<name>` is set to (`normal` until set), so
//! a test can flip a deployment between failing and healthy while the gateway keeps its config.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Instant,
};

use serde_json::Value;

/// At most this many requests and events are kept (the oldest go first), so a benchmark run stays bounded.
const MAX_RECORDS: usize = 1000;

#[derive(Debug, Default, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Last sequence number handed out; never reset, so numbers stay unique across clears.
    seq: u64,
    requests: VecDeque<Value>,
    events: VecDeque<String>,
    /// Switch name → the mode name its `switch-<name>` requests get.
    switches: HashMap<String, String>,
}

/// Milliseconds on the process's monotonic clock, shared by every fake: `at_ms` of recorded requests.
pub fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `{"seq","at_ms","path","headers","body"}` (`at_ms`: [`clock_ms`] on arrival) and returns the
    /// request's sequence number (from 1).
    pub fn request(&self, path: &str, headers: Value, body: Value) -> u64 {
        let at_ms = clock_ms();
        let mut inner = self.lock();
        inner.seq += 1;
        let seq = inner.seq;
        if inner.requests.len() >= MAX_RECORDS {
            inner.requests.pop_front();
        }
        inner
            .requests
            .push_back(serde_json::json!({"seq": seq, "at_ms": at_ms, "path": path, "headers": headers, "body": body}));
        seq
    }

    /// Records a notable event such as `stream_dropped:<seq>`.
    pub fn event(&self, event: String) {
        let mut inner = self.lock();
        if inner.events.len() >= MAX_RECORDS {
            inner.events.pop_front();
        }
        inner.events.push_back(event);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.lock().requests.iter().cloned().collect()
    }

    pub fn events(&self) -> Vec<String> {
        self.lock().events.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    pub fn clear_events(&self) {
        self.lock().events.clear();
    }

    /// Sets switch `name`: requests for model `switch-<name>` now behave as model `mode` does.
    pub fn set_switch(&self, name: &str, mode: &str) {
        self.lock().switches.insert(name.to_owned(), mode.to_owned());
    }

    /// The model name whose mode a request for `model` gets: the switch's mode for `switch-<name>` (`normal` while
    /// the switch is unset), else `model` itself.
    pub fn mode_of(&self, model: &str) -> String {
        match model.strip_prefix("switch-") {
            Some(name) => self.lock().switches.get(name).cloned().unwrap_or_else(|| "normal".to_owned()),
            None => model.to_owned(),
        }
    }

    /// Forgets requests and events (sequence numbers keep counting).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.requests.clear();
        inner.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_thousand_and_counts_on_after_clear() {
        let rec = Recorder::default();
        for _ in 0..MAX_RECORDS + 5 {
            rec.request("/p", Value::Null, Value::Null);
            rec.event("e".to_owned());
        }
        let requests = rec.requests();
        assert_eq!(requests.len(), MAX_RECORDS);
        assert_eq!(requests[0]["seq"], 6);
        let at = |i: usize| requests[i]["at_ms"].as_u64();
        assert!(
            at(0).is_some() && at(0) <= at(MAX_RECORDS - 1),
            "arrival times on one monotonic clock: {}",
            requests[0]
        );
        assert_eq!(rec.events().len(), MAX_RECORDS);
        rec.clear();
        assert!(rec.requests().is_empty() && rec.events().is_empty());
        assert_eq!(rec.request("/p", Value::Null, Value::Null), MAX_RECORDS as u64 + 6);
    }

    #[test]
    fn switches_pick_the_mode_of_switch_models() {
        let rec = Recorder::default();
        assert_eq!(rec.mode_of("error-500"), "error-500", "other models are their own mode");
        assert_eq!(rec.mode_of("switch-a"), "normal", "unset");
        rec.set_switch("a", "rate-limited-2");
        assert_eq!(rec.mode_of("switch-a"), "rate-limited-2");
        assert_eq!(rec.mode_of("switch-b"), "normal", "each switch is its own");
        rec.clone().set_switch("a", "delay-10");
        assert_eq!(rec.mode_of("switch-a"), "delay-10", "clones share the switches");
        let before = clock_ms();
        rec.request("/p", Value::Null, Value::Null);
        assert!(rec.requests().last().and_then(|r| r["at_ms"].as_u64()).is_some_and(|at| at >= before));
    }
}
