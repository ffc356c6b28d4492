//! What the fake saw: recorded requests and notable events, shared (one `Arc<Mutex<..>>`) between every server
//! worker, the `/__fake/*` endpoints and a test's [`crate::FakeUpstream`] handle.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
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
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `{"seq","at_ms","path","headers","body"}` and returns the request's sequence number (from 1).
    /// `at_ms` is the wall-clock arrival in milliseconds since the Unix epoch, for tests of the spacing of calls.
    pub fn request(&self, path: &str, headers: Value, body: Value) -> u64 {
        let at_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
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
        assert!(requests[0]["at_ms"].as_u64().is_some_and(|ms| ms > 1_600_000_000_000), "{}", requests[0]);
        assert_eq!(rec.events().len(), MAX_RECORDS);
        rec.clear();
        assert!(rec.requests().is_empty() && rec.events().is_empty());
        assert_eq!(rec.request("/p", Value::Null, Value::Null), MAX_RECORDS as u64 + 6);
    }
}
