//! Log capture for in-process gateways: the settlement's `upstream call finished` line is where a call's outcome and
//! token counts become visible, so tests read it back by request id (the `x-tollgate-request-id` header).

use std::{
    io,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use serde_json::Value;

type Buffer = Arc<Mutex<Vec<u8>>>;

/// Installs (once per test binary) a global subscriber writing tollgate's own events as JSON lines into memory.
/// [`crate::Gateway::start`] calls it, so every in-process gateway's calls can be looked up.
pub(crate) fn capture() -> &'static Buffer {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        // A second subscriber (another harness in the same binary set one) is not an error worth failing on.
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("tollgate=info")
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buffer
    })
}

/// Everything the in-process gateways of this test binary logged so far (JSON lines).
pub fn captured() -> String {
    String::from_utf8_lossy(&capture().lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

struct Sink(Buffer);

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The fields of the `upstream call finished` event whose `field` is `value` (`outcome`, `prompt_tokens`,
/// `completion_tokens`, `cost_usd`, ...): look calls up by `request_id` (the `x-tollgate-request-id` header), or
/// by a `model_group` no other test uses. The settlement runs when the relay is dropped, just after the last byte
/// is sent, so this waits up to 5 s for it; the test fails if it never comes.
pub fn finished_call(field: &str, value: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&capture().lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
        let found = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|event| event["fields"].clone())
            .find(|f| f["message"] == "upstream call finished" && f[field] == value);
        if let Some(fields) = found {
            return fields;
        }
        assert!(Instant::now() < deadline, "no `upstream call finished` line with {field} = {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `upstream call finished` lines of request `request_id` (the `x-tollgate-request-id` header), oldest
/// first, once there are at least `count` of them (a cancelled call settles when its future is dropped, just
/// after the response): waits up to 5 s, then fails the test.
pub fn finished_calls(request_id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&capture().lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
        let found: Vec<Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|event| event["fields"].clone())
            .filter(|f| f["message"] == "upstream call finished" && f["request_id"] == request_id)
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} `upstream call finished` lines for {request_id}",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many captured log lines (of every in-process gateway in this test binary) contain `text`.
pub fn count_lines(text: &str) -> usize {
    let buffer = capture().lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&buffer).lines().filter(|l| l.contains(text)).count()
}
