//! What the fake saw: recorded requests and notable events, shared between the server and the test's handle.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use serde_json::Value;

const MAX_RECORDS: usize = 1000;

#[derive(Debug, Default, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    seq: u64,
    requests: VecDeque<Value>,
    events: Vec<String>,
}

impl Recorder {
    /// Records a request and returns its sequence number.
    pub fn request(&self, path: &str, headers: Value, body: Value) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        let seq = inner.seq;
        if inner.requests.len() == MAX_RECORDS {
            inner.requests.pop_front();
        }
        inner.requests.push_back(serde_json::json!({"seq": seq, "path": path, "headers": headers, "body": body}));
        seq
    }

    pub fn event(&self, event: String) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).events.push(event);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).requests.iter().cloned().collect()
    }

    pub fn events(&self) -> Vec<String> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).events.clone()
    }

    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.requests.clear();
        inner.events.clear();
    }
}
