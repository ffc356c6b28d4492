//! `GET /metrics`: the live per-deployment statistics in Prometheus' text format (version 0.0.4).
//!
//! Labels are bounded by the config (model group, deployment id, provider); no caller-supplied value ever becomes
//! a label. Counters restart from zero when a reload rebuilds the routing table (noted in ARCHITECTURE.md).

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::{
    clock,
    error::ApiError,
    logs::callback::CallbackStats,
    pipeline::auth,
    routing::stats::{AccountingGap, DeploymentStats},
};

pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::authenticate(req.headers(), state.master_key.as_ref()).inspect_err(super::request_id::log_error(&req))?;
    let body = render(&state);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}

/// Emits one sample: extra labels (`,kind="x"` or empty) and the value.
type Sink<'a> = &'a mut dyn FnMut(&str, f64);

/// One metric family: its help line, type, and how to read its samples from a deployment's stats.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&DeploymentStats, u64, Sink<'_>),
}

fn count(counter: &AtomicU64) -> f64 {
    counter.load(Relaxed) as f64
}

const FAMILIES: &[Family] = &[
    Family {
        name: "tollgate_deployment_requests_total",
        kind: "counter",
        help: "Upstream calls started.",
        samples: |s, _, emit| emit("", count(&s.requests)),
    },
    Family {
        name: "tollgate_deployment_failures_total",
        kind: "counter",
        help: "Upstream calls that failed, at any point.",
        samples: |s, _, emit| emit("", count(&s.failures)),
    },
    Family {
        name: "tollgate_deployment_in_flight",
        kind: "gauge",
        help: "Upstream calls running now.",
        samples: |s, _, emit| emit("", count(&s.in_flight)),
    },
    Family {
        name: "tollgate_deployment_tokens_total",
        kind: "counter",
        help:
            "Tokens reported by the upstream, by kind; cache and reasoning tokens are parts of prompt and completion.",
        samples: |s, _, emit| {
            emit(",kind=\"prompt\"", count(&s.prompt_tokens));
            emit(",kind=\"completion\"", count(&s.completion_tokens));
            emit(",kind=\"cache_read\"", count(&s.cache_read_tokens));
            emit(",kind=\"cache_write\"", count(&s.cache_write_tokens));
            emit(",kind=\"reasoning\"", count(&s.reasoning_tokens));
        },
    },
    Family {
        name: "tollgate_deployment_spend_usd_total",
        kind: "counter",
        help: "Cost of priced calls in US dollars.",
        samples: |s, _, emit| emit("", count(&s.spend_nanos) / 1e9),
    },
    Family {
        name: "tollgate_deployment_accounting_gaps_total",
        kind: "counter",
        help: "Calls whose cost could not be counted exactly, by cause.",
        samples: |s, _, emit| {
            for gap in AccountingGap::ALL {
                emit(&format!(",cause=\"{}\"", gap.as_str()), s.gaps(gap) as f64);
            }
        },
    },
    Family {
        name: "tollgate_deployment_latency_ewma_seconds",
        kind: "gauge",
        help: "Moving average of time to first byte (a stream's first event) of successful calls (0 before the first).",
        samples: |s, _, emit| emit("", s.latency().unwrap_or(0.0)),
    },
    Family {
        name: "tollgate_deployment_latency_samples_total",
        kind: "counter",
        help: "Successful calls whose time to first byte is in the moving average.",
        samples: |s, _, emit| emit("", count(&s.latency_samples)),
    },
    Family {
        name: "tollgate_deployment_minute_requests",
        kind: "gauge",
        help: "Upstream calls started in the current minute, counted against the deployment's rpm.",
        samples: |s, now, emit| emit("", s.minute_usage(now).0 as f64),
    },
    Family {
        name: "tollgate_deployment_minute_tokens",
        kind: "gauge",
        help: "Tokens used in the current minute, counted against the deployment's tpm.",
        samples: |s, now, emit| emit("", s.minute_usage(now).1 as f64),
    },
    Family {
        name: "tollgate_deployment_cooling_down",
        kind: "gauge",
        help: "1 while the deployment sits out after failures.",
        samples: |s, now, emit| emit("", f64::from(u8::from(s.is_cooling_down(now)))),
    },
    Family {
        name: "tollgate_deployment_health_check_healthy",
        kind: "gauge",
        help: "1 when the deployment's latest health check succeeded, 0 when it failed (absent before the first).",
        samples: |s, _, emit| {
            if let Some(c) = s.health.load().as_deref() {
                emit("", f64::from(u8::from(c.healthy)));
            }
        },
    },
    Family {
        name: "tollgate_deployment_health_check_latency_seconds",
        kind: "gauge",
        help: "Duration of the deployment's latest health check (absent before the first).",
        samples: |s, _, emit| {
            if let Some(c) = s.health.load().as_deref() {
                emit("", c.latency.as_secs_f64());
            }
        },
    },
    Family {
        name: "tollgate_deployment_health_check_timestamp_seconds",
        kind: "gauge",
        help: "Unix time the deployment's latest health check ended (absent before the first).",
        samples: |s, _, emit| {
            if let Some(c) = s.health.load().as_deref() {
                emit("", c.checked_at_unix_ms as f64 / 1000.0);
            }
        },
    },
    Family {
        name: "tollgate_deployment_dropped_failure_reports_total",
        kind: "counter",
        help: "Failure reports lost because the deployment worker's mailbox was full.",
        samples: |s, _, emit| emit("", count(&s.dropped_reports)),
    },
];

fn render(state: &AppState) -> String {
    let table = state.table.load();
    let now = clock::monotonic_ms();
    let mut out = String::with_capacity(4096);
    let _ = writeln!(out, "# HELP tollgate_in_flight_requests Requests being served, streams included.");
    let _ = writeln!(out, "# TYPE tollgate_in_flight_requests gauge");
    let _ = writeln!(out, "tollgate_in_flight_requests {}", state.lifecycle.in_flight());
    let _ =
        writeln!(out, "# HELP tollgate_key_store_lookups_total Store queries for virtual keys the cache did not hold.");
    let _ = writeln!(out, "# TYPE tollgate_key_store_lookups_total counter");
    let _ = writeln!(out, "tollgate_key_store_lookups_total {}", state.keys.lookups());
    state.logs.metrics().render(&mut out);
    let log = state.logs.stats();
    for (name, kind, help, value) in [
        (
            "tollgate_request_log_records_total",
            "counter",
            "Request log records appended to the journal.",
            log.accepted.load(Relaxed),
        ),
        (
            "tollgate_request_log_written_total",
            "counter",
            "Request log records written to the store.",
            log.written.load(Relaxed),
        ),
        (
            "tollgate_request_log_lost_total",
            "counter",
            "Request log records the journal could not take (its disk failed).",
            log.lost.load(Relaxed),
        ),
        (
            "tollgate_request_log_unreadable_total",
            "counter",
            "Journal lines that were not a record (torn by a crash).",
            log.unreadable.load(Relaxed),
        ),
        (
            "tollgate_request_log_journal_bytes",
            "gauge",
            "Bytes in the request log's journal, waiting for the store or a callback.",
            state.logs.journal().size(),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    let budgets = state.budgets.stats();
    for (name, help, counters) in [
        (
            "tollgate_soft_budget_crossed_total",
            "Soft budgets crossed (once per budget and period, per replica).",
            &budgets.soft_crossed,
        ),
        ("tollgate_budget_exceeded_total", "Requests refused by a budget.", &budgets.refused),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (kind, n) in crate::budgets::BudgetKind::ALL.iter().zip(counters.iter()) {
            let _ = writeln!(out, "{name}{{entity_kind=\"{}\"}} {}", kind.tag(), n.load(Relaxed));
        }
    }
    let _ = writeln!(
        out,
        "# HELP tollgate_budget_unpriced_reservations_total Budgeted requests to a model group without a price \
         (reserved $0).\n# TYPE tollgate_budget_unpriced_reservations_total counter\n\
         tollgate_budget_unpriced_reservations_total {}",
        budgets.unpriced.load(Relaxed)
    );
    render_callbacks(&mut out, state.logs.callbacks(), log.accepted.load(Relaxed));
    // Each deployment's labels, escaped once for all families.
    let deployments: Vec<_> = table
        .deployments()
        .map(|d| {
            let labels = format!(
                "model_group=\"{}\",deployment=\"{}\",provider=\"{}\"",
                escape(&d.model_group),
                escape(&d.id),
                escape(d.provider.name())
            );
            (labels, &d.stats)
        })
        .collect();
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (labels, stats) in &deployments {
            (family.samples)(stats, now, &mut |extra, value| {
                let _ = writeln!(out, "{}{{{labels}{extra}}} {value}", family.name);
            });
        }
    }
    out
}

/// One series per configured callback (the label is the callback's name from the config).
fn render_callbacks(out: &mut String, callbacks: &[std::sync::Arc<CallbackStats>], journaled: u64) {
    if callbacks.is_empty() {
        return;
    }
    type Read = fn(&CallbackStats, u64) -> u64;
    let families: [(&str, &str, &str, Read); 4] = [
        ("tollgate_callback_delivered_total", "counter", "Request log records a callback's receiver took.", |c, _| {
            c.delivered.load(Relaxed)
        }),
        (
            "tollgate_callback_dropped_total",
            "counter",
            "Request log records in batches a callback's receiver rejected (4xx other than 429); logged.",
            |c, _| c.dropped.load(Relaxed),
        ),
        (
            "tollgate_callback_failures_total",
            "counter",
            "Callback sends that failed (5xx, 429, unreachable, no answer in time) and are retried with backoff.",
            |c, _| c.failures.load(Relaxed),
        ),
        (
            "tollgate_callback_lag_records",
            "gauge",
            "Request log records journaled that a callback has not passed yet.",
            |c, journaled| c.lag(journaled),
        ),
    ];
    for (name, kind, help, read) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for c in callbacks {
            let _ = writeln!(out, "{name}{{callback=\"{}\"}} {}", escape(&c.name), read(c, journaled));
        }
    }
}

/// Label values escape backslash, double quote and newline (the exposition format's rules).
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', r#"\""#).replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), r"x\ny");
        assert_eq!(escape("gpt-4o#0"), "gpt-4o#0");
    }
}
