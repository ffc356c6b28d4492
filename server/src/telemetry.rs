//! Tracing set-up: structured logs to stdout through a non-blocking writer, filtered by `RUST_LOG`
//! (default `info`). Secrets never reach a log: they are [`crate::secret::Secret`]s and sensitive headers.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, EnvFilter};

/// Keep the guard alive for the life of the process: dropping it flushes and stops the log writer.
pub fn init(json: bool) -> WorkerGuard {
    // Not lossy: when stdout cannot keep up, logging waits rather than silently dropping lines.
    let (writer, guard) =
        tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(std::io::stdout());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(writer).with_target(false);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    if let Err(e) = result {
        eprintln!("tollgate: logging already initialised: {e}");
    }
    guard
}
