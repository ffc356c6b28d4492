//! Tracing set-up: structured logs to stdout through a non-blocking writer, filtered by `RUST_LOG`
//! (default `info`). Secrets never reach a log: they are [`crate::secret::Secret`]s and sensitive headers.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, EnvFilter};

/// Keep the guard alive for the life of the process: dropping it flushes and stops the log writer.
pub fn init(json: bool) -> WorkerGuard {
    // Not lossy: when stdout cannot keep up, logging waits rather than silently dropping lines.
    // The writer thread flushes whenever its queue runs empty, so under load one write(2) carries many lines.
    let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(stdout);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Why: colour codes cost a third of the per-call log line's formatting, and a log file or collector only
    // stores them as noise; colour only a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt().with_env_filter(filter).with_writer(writer).with_target(false).with_ansi(ansi);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    if let Err(e) = result {
        eprintln!("tollgate: logging already initialised: {e}");
    }
    guard
}
