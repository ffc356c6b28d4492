//! The plain-text log line (stdout is not a terminal): the same text as tracing-subscriber's default `Full`
//! format without colours (`2026-11-30T19:17:01.909837Z  INFO span{a=1}: message name=value ...`), written
//! without `core::fmt` where it can be.
//!
//! Why: every proxied call writes one `upstream call finished` line with fifteen fields, and through the default
//! formatter each field cost a `write!` of `{name}={value:?}` and the timestamp a calendar conversion and a
//! `Display` per event: about 12,000 instructions a line (callgrind), the largest piece of tollgate's own
//! per-request work. Here integers and booleans are written directly, strings that need no escaping are copied
//! between quotes, and the date and time up to the second are built once a second per thread.

use std::{
    cell::RefCell,
    fmt::{self, Debug, Write},
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::{field::Field, Event, Level, Subscriber};
use tracing_subscriber::{
    field::Visit,
    fmt::{
        format::{FormatEvent, FormatFields, Writer},
        FmtContext, FormattedFields,
    },
    registry::LookupSpan,
};

/// The event formatter for plain text.
pub struct PlainLine;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_str(level(event.metadata().level()))?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>().filter(|f| !f.is_empty()) {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        let mut fields = Fields { writer: &mut writer, first: true, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default format pads it (to five, right-aligned), with the spaces around it.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    }
}

thread_local! {
    /// The second the cached text names, and `YYYY-MM-DDTHH:MM:SS.` for it.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds), as tracing-subscriber's `SystemTime` timer writes it.
fn write_timestamp(writer: &mut impl Write, now: SystemTime) -> fmt::Result {
    let Ok(since) = now.duration_since(UNIX_EPOCH) else {
        return writer.write_str("<unknown time>");
    };
    let second = since.as_secs();
    let prefix = SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (second, second_text(second));
        }
        cached.1
    });
    // The prefix is ASCII digits and separators by construction.
    writer.write_str(std::str::from_utf8(&prefix).map_err(|_| fmt::Error)?)?;
    let mut micros = [b'0'; 6];
    let mut n = since.subsec_micros();
    for digit in micros.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    writer.write_str(std::str::from_utf8(&micros).map_err(|_| fmt::Error)?)?;
    writer.write_char('Z')
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix second (years 0 to 9999; the proleptic Gregorian calendar).
fn second_text(second: u64) -> [u8; 20] {
    let (days, rest) = (second / 86_400, second % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year.clamp(0, 9999) as u64, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, rest / 3600, 2);
    put(14, rest / 60 % 60, 2);
    put(17, rest % 60, 2);
    out
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes an event's fields as `message name=value ...`, values as their `Debug` text.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

/// One field's text (` name=value`), built on the stack and handed to the line's writer in one call.
///
/// Why: each call into the line's writer goes through `dyn fmt::Write` to a `String` append, which for a field's
/// few bytes costs more than the bytes (callgrind: about 200 instructions per integer field written in four
/// calls, the separator, name, `=` and digits).
struct Piece {
    bytes: [u8; PIECE],
    len: usize,
}

/// Room in a [`Piece`]; a longer field is written to the line piece by piece.
const PIECE: usize = 128;

impl Write for Piece {
    /// Takes all of `s` or none of it (so the bytes so far stay whole UTF-8): an error means it did not fit.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Fields<'_, '_> {
    /// The separator and `name=` before a value (nothing before the message).
    fn name(first: bool, field: &Field, w: &mut dyn Write) -> fmt::Result {
        match (first, field.name()) {
            (true, "message") => Ok(()),
            (false, "message") => w.write_str(" "),
            (true, name) => {
                w.write_str(name)?;
                w.write_str("=")
            }
            (false, name) => {
                w.write_str(" ")?;
                w.write_str(name)?;
                w.write_str("=")
            }
        }
    }

    fn put(&mut self, field: &Field, value: impl Fn(&mut dyn Write) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let first = std::mem::take(&mut self.first);
        let mut piece = Piece { bytes: [0; PIECE], len: 0 };
        let built = Self::name(first, field, &mut piece).and_then(|()| value(&mut piece));
        let text = built.ok().and_then(|()| std::str::from_utf8(&piece.bytes[..piece.len]).ok());
        self.result = match text {
            Some(text) => self.writer.write_str(text),
            // Too long for the piece: straight to the line (formatting again is pure: the same text).
            None => Self::name(first, field, self.writer).and_then(|()| value(self.writer)),
        };
    }
}

impl Visit for Fields<'_, '_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| write_debug_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put(field, |w| write!(w, "{value:?}"));
    }
}

/// A string as `{:?}` writes it: copied between quotes when nothing in it needs escaping.
fn write_debug_str(writer: &mut (impl Write + ?Sized), s: &str) -> fmt::Result {
    if s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') {
        writer.write_str("\"")?;
        writer.write_str(s)?;
        writer.write_str("\"")
    } else {
        write!(writer, "{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing_subscriber::fmt::format;

    use super::*;
    use crate::telemetry::tests::{text, Sink};

    #[test]
    fn timestamps_match_the_calendar() {
        let cases: &[(u64, u32, &str)] = &[
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
            (1_796_066_221, 909_837, "2026-11-30T19:17:01.909837Z"),
            (4_107_542_399, 999_999, "2100-02-28T23:59:59.999999Z"),
            (253_402_300_799, 1, "9999-12-31T23:59:59.000001Z"),
        ];
        for &(secs, micros, want) in cases {
            let mut got = String::new();
            let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(u64::from(micros));
            write_timestamp(&mut got, at).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(got, want, "{secs}");
        }
    }

    #[test]
    fn strings_are_written_as_debug_writes_them() {
        for s in ["", "openai", "a b=c", "quote\"d", "back\\slash", "new\nline", "tab\t", "é", "\u{7f}"] {
            let mut got = String::new();
            write_debug_str(&mut got, s).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(got, format!("{s:?}"));
        }
    }

    /// What the same events and spans look like through `formatter`, timestamps cut off.
    fn lines<E>(formatter: E) -> Vec<String>
    where
        E: for<'w> FormatEvent<tracing_subscriber::Registry, format::DefaultFields> + Send + Sync + 'static,
    {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(false)
            .with_target(false)
            .with_max_level(Level::TRACE)
            .event_format(formatter)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(request_id = %"0a1b", stream = false, prompt_tokens = 10_u64, delta = -3_i64,
                provider = "openai", cost_usd = %"unknown", duration_ms = 5.9_f64, "upstream call finished");
            let outer = tracing::info_span!("request", id = 7_u64);
            let _outer = outer.enter();
            let inner = tracing::debug_span!("call");
            let _inner = inner.enter();
            tracing::warn!(reason = "quote\"d\n", "no answer: {}", 42);
            tracing::error!("plain");
            tracing::debug!(ok = true);
        });
        text(&sink).lines().map(|l| l.get(27..).unwrap_or_default().to_owned()).collect()
    }

    #[test]
    fn lines_read_as_the_default_format_writes_them() {
        let default = format().with_target(false).with_ansi(false);
        let want = lines(default);
        assert_eq!(want.len(), 4);
        assert_eq!(lines(PlainLine), want);
        assert_eq!(
            want[0],
            "  INFO upstream call finished request_id=0a1b stream=false prompt_tokens=10 delta=-3 provider=\"openai\" cost_usd=unknown duration_ms=5.9"
        );
    }
}
