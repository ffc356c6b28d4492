//! The fake's behaviours and how a request's `model` name selects one (unknown names mean [`Mode::Normal`]).

/// The most content pieces `stream-<N>` sends; larger N means `Normal`.
const MAX_PIECES: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// "Hello from fake upstream", streamed as four content pieces when asked.
    Normal,
    /// A `get_weather` tool call; streamed as a header delta plus three argument fragments.
    Tools,
    /// HTTP `status` with an OpenAI error body.
    Error(u16),
    /// `rate-limited-<secs>`: HTTP 429 with `retry-after: <secs>`.
    RateLimited(u64),
    /// Waits this many milliseconds, then answers like `Normal`.
    Delay(u64),
    /// Never answers.
    Hang,
    /// HTTP 503 headers and the first bytes of an error body, then nothing more (the body never ends).
    StalledError,
    /// Streams a `tick ` chunk every 50 ms for a minute; records `stream_dropped:<seq>` if cut.
    SlowStream,
    /// Streams two chunks, then nothing more; records `stream_dropped:<seq>` if cut.
    Stall,
    /// Breaks the connection part-way through the body.
    Reset,
    /// Answers with the raw request body as the message content.
    Echo,
    /// HTTP 400 `context_length_exceeded`, OpenAI's (and Azure's) context-window overflow.
    ContextLength,
    /// HTTP 400 `content_filter`: Azure OpenAI's refusal of a prompt its content filter blocked.
    ContentFilter,
    /// Streams the role chunk and one content chunk, then ends the body (no finish, no `[DONE]`).
    Cut,
    /// As `Cut`, then half of the next chunk's JSON line, and the body ends.
    CutJson,
    /// HTTP 200 headers (an event stream when streaming, JSON otherwise), then no body byte ever; records
    /// `stream_dropped:<seq>` when cut: a first-token (or whole-answer) timeout.
    NoFirstChunk,
    /// HTTP 200 headers and a body that ends at once, empty.
    EmptyBody,
    /// HTTP 200 event-stream headers, then only `: keep-alive` comments, one every 50 ms for a minute, never an
    /// event; records `stream_dropped:<seq>` when cut.
    KeepaliveOnly,
    /// `late-first-<ms>`: HTTP 200 headers at once, then, this many milliseconds later, the `Normal` answer
    /// (streamed or whole): a server that answers its headers before it has generated anything.
    LateFirst(u64),
    /// The `Normal` whole answer, sent in 20 pieces 100 ms apart (2 s in all); records `stream_dropped:<seq>`
    /// when cut.
    Trickle,
    /// Like `Normal` but with this many content pieces (`w0 `, `w1 `, …), streamed one write per event, back to
    /// back: a long stream from a fast upstream that flushes every event, for the benchmark's streaming section.
    Pieces(u32),
}

impl Mode {
    pub(crate) fn from_model(model: &str) -> Mode {
        if let Some(status) = model.strip_prefix("error-").and_then(|s| s.parse().ok()) {
            return Mode::Error(status);
        }
        if let Some(secs) = model.strip_prefix("rate-limited-").and_then(|s| s.parse().ok()) {
            return Mode::RateLimited(secs);
        }
        if let Some(ms) = model.strip_prefix("delay-").and_then(|s| s.parse().ok()) {
            return Mode::Delay(ms);
        }
        if let Some(ms) = model.strip_prefix("late-first-").and_then(|s| s.parse().ok()) {
            return Mode::LateFirst(ms);
        }
        if let Some(n) =
            model.strip_prefix("stream-").and_then(|s| s.parse().ok()).filter(|n| (1..=MAX_PIECES).contains(n))
        {
            return Mode::Pieces(n);
        }
        match model {
            "tools" => Mode::Tools,
            "hang" => Mode::Hang,
            "stalled-error" => Mode::StalledError,
            "slow-stream" => Mode::SlowStream,
            "stall" => Mode::Stall,
            "reset" => Mode::Reset,
            "echo" => Mode::Echo,
            "context-length" => Mode::ContextLength,
            "content-filter" => Mode::ContentFilter,
            "cut" => Mode::Cut,
            "cut-json" => Mode::CutJson,
            "no-first-chunk" => Mode::NoFirstChunk,
            "empty-body" => Mode::EmptyBody,
            "keepalive-only" => Mode::KeepaliveOnly,
            "trickle" => Mode::Trickle,
            _ => Mode::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn modes_by_model_name() {
        let cases = [
            ("normal", Mode::Normal),
            ("gpt-4o", Mode::Normal),
            ("", Mode::Normal),
            ("error-abc", Mode::Normal),
            ("delay-", Mode::Normal),
            ("tools", Mode::Tools),
            ("error-429", Mode::Error(429)),
            ("rate-limited-2", Mode::RateLimited(2)),
            ("delay-300", Mode::Delay(300)),
            ("hang", Mode::Hang),
            ("stalled-error", Mode::StalledError),
            ("slow-stream", Mode::SlowStream),
            ("stall", Mode::Stall),
            ("reset", Mode::Reset),
            ("echo", Mode::Echo),
            ("context-length", Mode::ContextLength),
            ("content-filter", Mode::ContentFilter),
            ("cut", Mode::Cut),
            ("cut-json", Mode::CutJson),
            ("no-first-chunk", Mode::NoFirstChunk),
            ("empty-body", Mode::EmptyBody),
            ("keepalive-only", Mode::KeepaliveOnly),
            ("trickle", Mode::Trickle),
            ("late-first-300", Mode::LateFirst(300)),
            ("late-first-", Mode::Normal),
            ("stream-20", Mode::Pieces(20)),
            ("stream-1", Mode::Pieces(1)),
            ("stream-0", Mode::Normal),
            ("stream-100001", Mode::Normal),
            ("stream-x", Mode::Normal),
        ];
        for (name, want) in cases {
            assert_eq!(Mode::from_model(name), want, "{name}");
        }
    }
}
