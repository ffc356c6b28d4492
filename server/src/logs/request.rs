//! The request-level record: made once when a proxied request is authenticated, fed by every upstream call's
//! settlement and by the handler's answer, and handed to the [`LogSink`] exactly once, when the last holder lets
//! go of it: for a stream, when its body ends (or its caller leaves), not when its headers are sent.
//!
//! Money: `cost_nanos` sums the calls whose cost is known; when a call's cost is not (an accounting gap),
//! `accounting` names the first gap, so a reader knows the sum is a lower bound, never a silent $0.

use std::sync::{Arc, Mutex};

use super::{LogRecord, LogSink};

/// What one upstream call of the request contributes.
#[derive(Debug, Clone, Default)]
pub struct Attempt<'a> {
    pub model_group: &'a str,
    pub deployment: &'a str,
    pub provider: &'a str,
    pub api_base: &'a str,
    pub streamed: bool,
    /// The call's answer reached the caller (it is the one that served, or broke while serving).
    pub served: bool,
    /// Unix ms of the call's first byte (the response, or a stream's first event).
    pub first_byte_at_ms: Option<i64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_nanos: Option<u64>,
    /// `None` when the cost is exact; else the gap's cause.
    pub gap: Option<&'static str>,
    /// The call broke after its answer started (the caller got an error event).
    pub broken: bool,
    /// The model the answer named, and why its choices stopped.
    pub response_model: Option<&'a str>,
    pub finish_reasons: &'a [Box<str>],
    /// tollgate's own time before this call, in microseconds.
    pub overhead_us: Option<u64>,
}

/// What must happen with the finished record before it is journaled: a budget reservation replaced by the real
/// cost (and the periods it counts in written into the record). Run exactly once, by the record's drop.
pub trait Finish: Send + Sync {
    fn finish(self: Box<Self>, record: &mut LogRecord);
}

pub struct RequestLog {
    record: Mutex<LogRecord>,
    sink: LogSink,
    finish: Mutex<Option<Box<dyn Finish>>>,
    /// The record carries a span (the `otel` callback exports it): its calls report what their answers said.
    traced: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog").finish_non_exhaustive()
    }
}

impl RequestLog {
    pub fn begin(
        sink: LogSink,
        request_id: &str,
        route: &str,
        started_at_ms: i64,
        client_ip: Option<String>,
    ) -> Arc<Self> {
        let record = LogRecord {
            request_id: request_id.to_owned(),
            route: route.to_owned(),
            started_at_ms,
            client_ip,
            accounting: "exact".into(),
            cost_nanos: Some(0),
            ..LogRecord::default()
        };
        Arc::new(RequestLog {
            record: Mutex::new(record),
            sink,
            finish: Mutex::new(None),
            traced: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn edit(&self, f: impl FnOnce(&mut LogRecord)) {
        if let Ok(mut record) = self.record.lock() {
            f(&mut record);
        }
    }

    /// Holds `finish` until the request ends, however it ends (the budget reservation: released and replaced by
    /// the request's real cost when the last holder lets go of this record).
    pub fn hold(&self, finish: Box<dyn Finish>) {
        let mut slot = match self.finish.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Some(finish);
    }

    /// tollgate's span for the request, exported by the `otel` callback.
    pub fn traced(&self, span: crate::trace_context::SpanIds) {
        self.traced.store(true, std::sync::atomic::Ordering::Relaxed);
        self.edit(|r| r.trace = Some(span));
    }

    /// The record carries a span: the answering model and finish reasons are worth taking (only spans use them).
    pub fn is_traced(&self) -> bool {
        self.traced.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The caller's identity (never a key: its hash).
    pub fn caller(
        &self,
        key_hash: Option<String>,
        key_alias: Option<String>,
        team_id: Option<String>,
        user_id: Option<String>,
    ) {
        self.edit(|r| {
            r.key_hash = key_hash;
            r.key_alias = key_alias;
            r.team_id = team_id;
            r.user_id = user_id;
        });
    }

    /// The model group asked for, and the end user (OpenAI's `user`) it was asked for.
    pub fn asked(&self, model_group: &str, end_user: Option<&str>) {
        self.edit(|r| {
            r.model_group = model_group.to_owned();
            r.end_user = end_user.filter(|u| !u.is_empty()).map(str::to_owned);
        });
    }

    pub fn attempt(&self, a: &Attempt<'_>) {
        self.edit(|r| {
            r.prompt_tokens += a.prompt_tokens;
            r.completion_tokens += a.completion_tokens;
            r.cache_read_tokens += a.cache_read_tokens;
            r.cache_write_tokens += a.cache_write_tokens;
            r.reasoning_tokens += a.reasoning_tokens;
            r.streamed |= a.streamed;
            if let Some(cost) = a.cost_nanos {
                r.cost_nanos = Some(r.cost_nanos.unwrap_or(0).saturating_add(cost));
            }
            if let (Some(gap), "exact") = (a.gap, r.accounting.as_str()) {
                r.accounting = gap.to_owned();
            }
            // The call that served names the deployment; until one does, the latest call.
            if a.served || r.first_byte_at_ms.is_none() {
                r.deployment = Some(a.deployment.to_owned());
                r.provider = Some(a.provider.to_owned());
                r.api_base = Some(a.api_base.to_owned());
                if r.model_group.is_empty() {
                    r.model_group = a.model_group.to_owned();
                }
            }
            if a.served {
                r.first_byte_at_ms = a.first_byte_at_ms;
                r.response_model = a.response_model.map(str::to_owned);
                r.overhead_us = a.overhead_us;
                r.finish_reasons = a.finish_reasons.iter().map(|f| f.to_string()).collect();
            }
            if a.broken && r.error_class.is_none() {
                r.error_class = Some("stream_broken".into());
                r.error_message = Some("the upstream stream broke after the response started".into());
            }
        });
    }

    /// The handler's answer: its status and, for an error, its class (`error.code`, else `error.type`) and message
    /// (already free of secrets), the calls made and the fallback group that served.
    pub fn answered(&self, status: u16, error: Option<(String, String)>, attempts: u32, fallback: Option<&str>) {
        self.edit(|r| {
            r.status = status;
            if let Some((class, message)) = error {
                r.error_class = Some(class);
                r.error_message = Some(message);
            }
            r.attempts = attempts;
            r.fallback = fallback.map(str::to_owned);
        });
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let mut record = match self.record.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        record.ended_at_ms = crate::clock::unix_ms();
        let finish = match self.finish.get_mut() {
            Ok(f) => f.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(finish) = finish {
            finish.finish(&mut record);
        }
        self.sink.record(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::journal::Journal;

    #[test]
    fn a_record_sums_its_calls_names_the_one_that_served_and_is_sent_once() {
        let dir = std::env::temp_dir().join(format!("tollgate-request-log-{}", uuid::Uuid::new_v4().simple()));
        let journal = Arc::new(Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}")));
        let sink = LogSink::new(journal.clone());
        let journaled = || {
            let _ = journal.rotate();
            let segments = journal.segments().unwrap_or_default();
            let records: Vec<LogRecord> =
                segments.iter().flat_map(|s| journal.read(s).unwrap_or_default().records).collect();
            segments.iter().for_each(|s| {
                let _ = journal.remove(s);
            });
            records
        };
        let log = RequestLog::begin(sink, "r1", "/v1/chat/completions", 1_000, None);
        log.asked("gpt", Some("end-user-7"));
        let failed = Attempt { model_group: "gpt", deployment: "gpt#0", provider: "openai", ..Attempt::default() };
        log.attempt(&failed);
        let served = Attempt {
            model_group: "gpt",
            deployment: "gpt#1",
            provider: "anthropic",
            served: true,
            streamed: true,
            first_byte_at_ms: Some(1_050),
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_nanos: Some(2_000),
            ..Attempt::default()
        };
        log.attempt(&served);
        let hedge_loser =
            Attempt { deployment: "gpt#2", gap: Some("hedge_cancelled"), cost_nanos: None, ..Attempt::default() };
        log.attempt(&hedge_loser);
        log.answered(200, None, 3, None);
        let clone = log.clone();
        drop(log);
        assert!(journaled().is_empty(), "not while a holder remains (the stream's settlement)");
        drop(clone);
        let records = journaled();
        assert_eq!(records.len(), 1, "exactly once");
        let r = records[0].clone();
        assert_eq!((r.deployment.as_deref(), r.provider.as_deref()), (Some("gpt#1"), Some("anthropic")));
        assert_eq!((r.prompt_tokens, r.completion_tokens, r.cost_nanos), (10, 5, Some(2_000)));
        assert_eq!((r.accounting.as_str(), r.attempts, r.status), ("hedge_cancelled", 3, 200));
        assert_eq!((r.first_byte_at_ms, r.streamed, r.model_group.as_str()), (Some(1_050), true, "gpt"));
        assert_eq!(r.end_user.as_deref(), Some("end-user-7"));
        assert!(r.ended_at_ms >= r.started_at_ms);
        let _ = std::fs::remove_dir_all(dir);
    }
}
