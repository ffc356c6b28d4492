//! Request-level Prometheus metrics, fed by each finished request's [`LogRecord`] (the same record the request log
//! stores, so the two always agree) and rendered by `GET /metrics`.
//!
//! Labels stay bounded: `route` is one of tollgate's paths, `model_group` a configured group (a request that
//! reached no deployment is `none`, so a caller's made-up model names never become series), `status` an HTTP status,
//! `class` a failed request's error class: tollgate's own codes (`rpm_limit_exceeded`, `budget_exceeded`,
//! `upstream_timeout`, ...) or an upstream's, at most [`MAX_CLASSES`] per series (the rest count as `other`).

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex,
    },
};

use super::LogRecord;

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Distinct error classes one series counts by name; later ones count as `other` (an upstream's codes are its own).
pub const MAX_CLASSES: usize = 32;

/// Upper bounds (seconds) of the gateway overhead's buckets: tollgate's own time is tens of microseconds unless
/// retries or a queue add to it.
pub const OVERHEAD_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64; 14],
    buckets: [AtomicU64; 14],
    count: AtomicU64,
    /// Sum in microseconds (integer atomics; rendered in seconds).
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::over(&BUCKETS)
    }
}

impl Histogram {
    fn over(bounds: &'static [f64; 14]) -> Self {
        Histogram { bounds, buckets: Default::default(), count: AtomicU64::new(0), sum_micros: AtomicU64::new(0) }
    }

    fn observe(&self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((seconds.max(0.0) * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counters of one (route, model group).
#[derive(Debug)]
struct Series {
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// Failed requests by error class.
    by_class: Mutex<BTreeMap<String, u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    spend_nanos: AtomicU64,
    /// Calls beyond the first (retries, fallbacks and hedges).
    extra_attempts: AtomicU64,
    fallbacks: AtomicU64,
    duration: Histogram,
    first_byte: Histogram,
    /// tollgate's own time before the served call (`x-tollgate-overhead-ms`).
    overhead: Histogram,
    /// The rest of the request: from the served call's start to the end of the answer.
    upstream: Histogram,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            by_status: Mutex::default(),
            by_class: Mutex::default(),
            prompt_tokens: AtomicU64::default(),
            completion_tokens: AtomicU64::default(),
            spend_nanos: AtomicU64::default(),
            extra_attempts: AtomicU64::default(),
            fallbacks: AtomicU64::default(),
            duration: Histogram::default(),
            first_byte: Histogram::default(),
            overhead: Histogram::over(&OVERHEAD_BUCKETS),
            upstream: Histogram::default(),
        }
    }
}

#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// Route → model group → series: looked up by `&str`, so a request allocates nothing once its series exists.
    series: Mutex<BTreeMap<String, BTreeMap<String, std::sync::Arc<Series>>>>,
}

/// Label values escape backslash, double quote and newline (the exposition format's rules).
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', r#"\""#).replace('\n', r"\n")
}

impl RequestMetrics {
    pub fn observe(&self, r: &LogRecord) {
        let group = if r.deployment.is_some() { r.model_group.as_str() } else { "none" };
        let series = match self.series.lock() {
            Ok(mut map) => match map.get(r.route.as_str()).and_then(|groups| groups.get(group)) {
                Some(series) => series.clone(),
                None => map.entry(r.route.clone()).or_default().entry(group.to_owned()).or_default().clone(),
            },
            Err(_) => return,
        };
        if let Ok(mut by_status) = series.by_status.lock() {
            *by_status.entry(r.status).or_default() += 1;
        }
        if let Some(class) = r.error_class.as_deref() {
            if let Ok(mut by_class) = series.by_class.lock() {
                let known = by_class.len();
                match by_class.get_mut(class) {
                    Some(n) => *n += 1,
                    None if known < MAX_CLASSES => {
                        by_class.insert(class.to_owned(), 1);
                    }
                    None => *by_class.entry("other".to_owned()).or_default() += 1,
                }
            }
        }
        series.prompt_tokens.fetch_add(r.prompt_tokens, Relaxed);
        series.completion_tokens.fetch_add(r.completion_tokens, Relaxed);
        series.spend_nanos.fetch_add(r.cost_nanos.unwrap_or(0), Relaxed);
        series.extra_attempts.fetch_add(u64::from(r.attempts.saturating_sub(1)), Relaxed);
        series.fallbacks.fetch_add(u64::from(r.fallback.is_some()), Relaxed);
        series.duration.observe((r.ended_at_ms - r.started_at_ms).max(0) as f64 / 1000.0);
        if let Some(first) = r.first_byte_at_ms {
            series.first_byte.observe((first - r.started_at_ms).max(0) as f64 / 1000.0);
        }
        if let Some(overhead_us) = r.overhead_us {
            let overhead = overhead_us as f64 / 1e6;
            series.overhead.observe(overhead);
            let total = (r.ended_at_ms - r.started_at_ms).max(0) as f64 / 1000.0;
            series.upstream.observe((total - overhead).max(0.0));
        }
    }

    /// The families in Prometheus' text format (0.0.4).
    pub fn render(&self, out: &mut String) {
        // Each series with its route and model group labels, written once.
        let series: Vec<(String, std::sync::Arc<Series>)> = match self.series.lock() {
            Ok(map) => map
                .iter()
                .flat_map(|(route, groups)| {
                    groups.iter().map(move |(group, s)| {
                        (format!("route=\"{}\",model_group=\"{}\"", escape(route), escape(group)), s.clone())
                    })
                })
                .collect(),
            Err(_) => return,
        };
        split_counter(
            out,
            &series,
            ("tollgate_requests_total", "Proxied requests answered, by route, model group and status."),
            "status",
            |s| &s.by_status,
        );
        split_counter(
            out,
            &series,
            (
                "tollgate_request_errors_total",
                "Failed requests by error class (rate limits, budgets, upstream failures, ...), by route and model group.",
            ),
            "class",
            |s| &s.by_class,
        );
        type Read = fn(&Series) -> f64;
        let counters: [(&str, &str, Read); 5] = [
            ("tollgate_request_prompt_tokens_total", "Prompt tokens of answered requests (all their calls).", |s| {
                s.prompt_tokens.load(Relaxed) as f64
            }),
            (
                "tollgate_request_completion_tokens_total",
                "Completion tokens of answered requests (all their calls).",
                |s| s.completion_tokens.load(Relaxed) as f64,
            ),
            ("tollgate_request_spend_usd_total", "Cost of requests in US dollars (calls whose cost is known).", |s| {
                s.spend_nanos.load(Relaxed) as f64 / 1e9
            }),
            (
                "tollgate_request_retries_total",
                "Upstream calls beyond each request's first (retries, fallbacks, hedges).",
                |s| s.extra_attempts.load(Relaxed) as f64,
            ),
            ("tollgate_request_fallbacks_total", "Requests served by a fallback model group.", |s| {
                s.fallbacks.load(Relaxed) as f64
            }),
        ];
        for (name, help, read) in counters {
            family(out, name, "counter", help);
            for (labels, s) in &series {
                let _ = writeln!(out, "{name}{{{labels}}} {}", read(s));
            }
        }
        type Pick = fn(&Series) -> &Histogram;
        let histograms: [(&str, &str, Pick); 4] = [
            ("tollgate_request_duration_seconds", "Time from a request's arrival to the end of its answer.", |s| {
                &s.duration
            }),
            (
                "tollgate_request_first_byte_seconds",
                "Time from a request's arrival to its first byte from upstream (a stream's first event).",
                |s| &s.first_byte,
            ),
            (
                "tollgate_request_overhead_seconds",
                "tollgate's own time before the call that served went upstream (x-tollgate-overhead-ms).",
                |s| &s.overhead,
            ),
            (
                "tollgate_request_upstream_seconds",
                "Time from the serving call's start to the end of the answer (duration less overhead).",
                |s| &s.upstream,
            ),
        ];
        for (name, help, pick) in histograms {
            family(out, name, "histogram", help);
            for (labels, s) in &series {
                pick(s).render(out, name, labels);
            }
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A counter family whose series split by one more label (`status`, `class`): `counts` picks a series' counts by
/// that label's value.
fn split_counter<K: std::fmt::Display>(
    out: &mut String,
    series: &[(String, std::sync::Arc<Series>)],
    (name, help): (&str, &str),
    label: &str,
    counts: fn(&Series) -> &Mutex<BTreeMap<K, u64>>,
) {
    family(out, name, "counter", help);
    for (labels, s) in series {
        if let Ok(counts) = counts(s).lock() {
            for (value, n) in counts.iter() {
                let _ = writeln!(out, "{name}{{{labels},{label}=\"{}\"}} {n}", escape(&value.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_bounded_labels_and_renders_cumulative_buckets() {
        let m = RequestMetrics::default();
        let ok = LogRecord {
            route: "/v1/chat/completions".into(),
            model_group: "gpt".into(),
            deployment: Some("gpt#0".into()),
            status: 200,
            started_at_ms: 0,
            first_byte_at_ms: Some(20),
            ended_at_ms: 300,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_nanos: Some(1_500),
            attempts: 2,
            overhead_us: Some(400),
            ..LogRecord::default()
        };
        m.observe(&ok);
        m.observe(&ok);
        let made_up = LogRecord {
            model_group: "made-up-model-123".into(),
            status: 404,
            error_class: Some("model_not_found".into()),
            ..LogRecord::default()
        };
        m.observe(&LogRecord { route: "/v1/chat/completions".into(), ..made_up });
        let mut out = String::new();
        m.render(&mut out);
        let has = |line: &str| out.lines().any(|l| l == line);
        assert!(
            has(r#"tollgate_requests_total{route="/v1/chat/completions",model_group="gpt",status="200"} 2"#),
            "{out}"
        );
        assert!(
            has(r#"tollgate_requests_total{route="/v1/chat/completions",model_group="none",status="404"} 1"#),
            "{out}"
        );
        assert!(!out.contains("made-up"), "a caller's model name is never a label");
        assert!(has(r#"tollgate_request_prompt_tokens_total{route="/v1/chat/completions",model_group="gpt"} 20"#));
        assert!(has(r#"tollgate_request_retries_total{route="/v1/chat/completions",model_group="gpt"} 2"#));
        assert!(has(
            r#"tollgate_request_duration_seconds_bucket{route="/v1/chat/completions",model_group="gpt",le="0.25"} 0"#
        ));
        assert!(has(
            r#"tollgate_request_duration_seconds_bucket{route="/v1/chat/completions",model_group="gpt",le="0.5"} 2"#
        ));
        assert!(has(r#"tollgate_request_duration_seconds_count{route="/v1/chat/completions",model_group="gpt"} 2"#));
        assert!(
            has(r#"tollgate_request_first_byte_seconds_sum{route="/v1/chat/completions",model_group="gpt"} 0.04"#),
            "{out}"
        );
        // (line): 400 µs of overhead falls in the 0.5 ms bucket, not the 0.25 ms one; the upstream part is the rest.
        let lines = [
            r#"tollgate_request_overhead_seconds_bucket{route="/v1/chat/completions",model_group="gpt",le="0.00025"} 0"#,
            r#"tollgate_request_overhead_seconds_bucket{route="/v1/chat/completions",model_group="gpt",le="0.0005"} 2"#,
            r#"tollgate_request_overhead_seconds_sum{route="/v1/chat/completions",model_group="gpt"} 0.0008"#,
            r#"tollgate_request_upstream_seconds_sum{route="/v1/chat/completions",model_group="gpt"} 0.5992"#,
            r#"tollgate_request_upstream_seconds_count{route="/v1/chat/completions",model_group="gpt"} 2"#,
        ];
        for line in lines {
            assert!(has(line), "{line}\n{out}");
        }
        assert!(!out
            .contains(r#"tollgate_request_overhead_seconds_count{route="/v1/chat/completions",model_group="none"} 1"#));
    }
}
