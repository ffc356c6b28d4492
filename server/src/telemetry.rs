//! Tracing set-up: structured logs to stdout through a non-blocking writer, filtered by `RUST_LOG`
//! (default `info`). Secrets never reach a log: they are [`crate::secret::Secret`]s and sensitive headers.

use std::fmt::Debug;

use tracing::field::Field;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{
    field::MakeExt,
    fmt::{self, format},
    EnvFilter,
};

fn plain_field(writer: &mut format::Writer<'_>, field: &Field, value: &dyn Debug) -> std::fmt::Result {
    match field.name() {
        "message" => write!(writer, "{value:?}"),
        name => write!(writer, "{name}={value:?}"),
    }
}

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
    let builder = fmt::fmt().with_env_filter(filter).with_writer(writer).with_target(false).with_ansi(ansi);
    let result = match (json, ansi) {
        (true, _) => builder.json().try_init(),
        (false, true) => builder.try_init(),
        // The same `name=value` text as the default field formatter, without its styling layer (which costs even
        // with colours off, and the per-call line has fifteen fields).
        (false, false) => builder.fmt_fields(format::debug_fn(plain_field).delimited(" ")).try_init(),
    };
    if let Err(e) = result {
        eprintln!("tollgate: logging already initialised: {e}");
    }
    guard
}
