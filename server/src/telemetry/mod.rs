//! Tracing set-up: structured logs to stdout, filtered by `RUST_LOG` (default `info`). Secrets never reach a log:
//! they are [`crate::secret::Secret`]s and sensitive headers.
//!
//! Lines go through [`BatchedStdout`]: appended to a shared buffer under a short lock, written out by one flusher
//! thread every [`FLUSH_INTERVAL`]. Why not `tracing_appender::non_blocking`: its writer thread blocks on a
//! channel, so under steady load nearly every line costs a futex wake-up, a context switch and a `write(2)`
//! (measured at about 15% of the proxy's CPU per request); here a burst of lines costs one `write(2)` and no
//! wake-ups. Nothing is dropped: past [`MAX_BUFFERED`] bytes the logging thread writes the buffer out itself.

use std::{
    fmt::Debug,
    io::{self, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    },
    thread,
    time::Duration,
};

mod plain;

use tracing::field::Field;
use tracing_subscriber::{
    field::MakeExt,
    fmt::{self, format, MakeWriter},
    EnvFilter,
};

/// How long a line may wait in the buffer before it reaches stdout.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Buffered bytes past which the thread that logs writes the buffer out at once.
pub const MAX_BUFFERED: usize = 1024 * 1024;

/// Keep it alive for the life of the process: dropping it stops the flusher and writes out what is buffered.
pub struct LogGuard {
    shared: Arc<Shared>,
    flusher: Option<thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.shared.flush();
    }
}

/// `level`: the config's `litellm_settings.log_level` as a filter directive; `RUST_LOG` wins when set, else `info`.
pub fn init(json: bool, level: Option<&str>) -> LogGuard {
    let (writer, guard) = BatchedStdout::start();
    // An empty `RUST_LOG` counts as unset (EnvFilter would read it as "errors only").
    let from_env =
        std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).map(|_| EnvFilter::try_from_default_env());
    let filter = match from_env {
        Some(Ok(filter)) => filter,
        _ => EnvFilter::new(level.unwrap_or("info")),
    };
    // Why: colour codes cost a third of the per-call log line's formatting, and a log file or collector only
    // stores them as noise; colour only a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt::fmt().with_env_filter(filter).with_writer(writer).with_target(false).with_ansi(ansi);
    let result = match (json, ansi) {
        (true, _) => builder.json().try_init(),
        (false, true) => builder.try_init(),
        // The default format's text without its styling layer (which costs even with colours off): spans' fields
        // through `plain_field`, each event through `plain::PlainLine`.
        (false, false) => {
            builder.fmt_fields(format::debug_fn(plain_field).delimited(" ")).event_format(plain::PlainLine).try_init()
        }
    };
    if let Err(e) = result {
        eprintln!("tollgate: logging already initialised: {e}");
    }
    guard
}

fn plain_field(writer: &mut format::Writer<'_>, field: &Field, value: &dyn Debug) -> std::fmt::Result {
    match field.name() {
        "message" => write!(writer, "{value:?}"),
        name => write!(writer, "{name}={value:?}"),
    }
}

struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Held while writing out, so batches leave in the order they were taken.
    out: Mutex<Box<dyn Write + Send>>,
    stop: AtomicBool,
    wake: Condvar,
    idle: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a buffer of whole lines; keep using it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Takes what is buffered and writes it out, in order with other flushes.
    fn flush(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut *lock(&self.buffer));
        if !batch.is_empty() {
            // Nowhere to report a failed write to stdout; the next batch tries again.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
        }
    }
}

/// The `MakeWriter` the subscriber formats each event into (one `write` per event).
#[derive(Clone)]
pub struct BatchedStdout {
    shared: Arc<Shared>,
}

impl BatchedStdout {
    pub fn start() -> (Self, LogGuard) {
        Self::start_to(Box::new(io::stdout()), FLUSH_INTERVAL)
    }

    /// Like [`BatchedStdout::start`], writing to `out` every `interval`.
    pub fn start_to(out: Box<dyn Write + Send>, interval: Duration) -> (Self, LogGuard) {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
            out: Mutex::new(out),
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
            idle: Mutex::new(()),
        });
        let flusher = {
            let shared = shared.clone();
            thread::Builder::new().name("tollgate-log".into()).spawn(move || {
                while !shared.stop.load(Ordering::Acquire) {
                    let idle = lock(&shared.idle);
                    drop(shared.wake.wait_timeout(idle, interval));
                    shared.flush();
                }
            })
        };
        let flusher = match flusher {
            Ok(handle) => Some(handle),
            Err(e) => {
                // Without the thread every write flushes at once: slower, never lossy.
                eprintln!("tollgate: cannot start the log flusher thread ({e}); writing logs unbuffered");
                shared.stop.store(true, Ordering::Release);
                None
            }
        };
        (Self { shared: shared.clone() }, LogGuard { shared, flusher })
    }
}

/// What one event is written into.
pub struct LineSink<'a>(&'a Shared);

impl Write for LineSink<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let full = {
            let mut buffer = lock(&self.0.buffer);
            buffer.extend_from_slice(line);
            buffer.len() >= MAX_BUFFERED
        };
        if full || self.0.stop.load(Ordering::Acquire) {
            self.0.flush();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` (and a subscriber's writer) whose bytes the test can read; `plain::tests` uses it too.
    #[derive(Clone, Default)]
    pub(super) struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    pub(super) fn text(sink: &Sink) -> String {
        String::from_utf8_lossy(&lock(&sink.0)).into_owned()
    }

    #[test]
    fn lines_wait_for_a_batch_and_nothing_is_lost() {
        let sink = Sink::default();
        // An interval no test outlasts: only the size limit and the guard write anything out.
        let (writer, guard) = BatchedStdout::start_to(Box::new(sink.clone()), Duration::from_secs(3600));
        for i in 0..3 {
            let _ = writer.make_writer().write_all(format!("line {i}\n").as_bytes());
        }
        assert_eq!(text(&sink), "", "a line does not cost a write of its own");
        // Past the limit the logging thread writes out at once, in order.
        let _ = writer.make_writer().write_all(&vec![b'x'; MAX_BUFFERED]);
        assert!(text(&sink).starts_with("line 0\nline 1\nline 2\nxxx"));
        assert_eq!(lock(&sink.0).len(), 21 + MAX_BUFFERED);
        // What is buffered when the guard drops is written out.
        let _ = writer.make_writer().write_all(b"last\n");
        drop(guard);
        assert!(text(&sink).ends_with("xlast\n"));
    }

    #[test]
    fn the_flusher_writes_on_its_interval() {
        let sink = Sink::default();
        let (writer, _guard) = BatchedStdout::start_to(Box::new(sink.clone()), Duration::from_millis(10));
        let _ = writer.make_writer().write_all(b"hello\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while text(&sink).is_empty() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(text(&sink), "hello\n");
    }
}
