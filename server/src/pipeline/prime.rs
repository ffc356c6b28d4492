//! The first event of an upstream body, read before the caller sees anything. Until it arrives a failure (the
//! time to first token ran out, the body ended or broke) is still the call's, which routing can retry elsewhere;
//! after it the response belongs to the caller. Also the limits on the rest of the body: a deadline for a whole
//! (non-streaming) answer, an idle limit between stream chunks (`relay::idle_limited`).
//!
//! Contract: holds back only what arrived before the first event (keep-alive comments, a partial event), never
//! more; reads no clock but the runtime's timers.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use actix_rt::time::{Instant, Sleep};
use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};

use super::relay::UpstreamBody;

/// Why a body gave no first event.
#[derive(Debug, PartialEq, Eq)]
pub enum NoFirstEvent {
    /// The deadline passed first.
    TimedOut,
    /// The body ended first (`awc` also reports a connection closed early this way).
    Ended,
    /// Reading the body failed.
    Broke(String),
}

/// Reads `body` until its first event arrives, or `deadline`. For an event stream (`text/event-stream`) that is
/// the first byte that is not part of an SSE comment (`: keep-alive`) or a blank line: a server that only sends
/// keep-alives has not started answering. For any other body it is the first byte. Returns the body with what
/// was read put back in front.
pub async fn first_event(
    mut body: UpstreamBody,
    event_stream: bool,
    deadline: Instant,
) -> Result<UpstreamBody, NoFirstEvent> {
    let mut held: Vec<Bytes> = Vec::new();
    let mut scan = CommentScan::default();
    loop {
        let next = match actix_rt::time::timeout(deadline.saturating_duration_since(Instant::now()), body.next()).await
        {
            Err(_) => return Err(NoFirstEvent::TimedOut),
            Ok(next) => next,
        };
        match next {
            None => return Err(NoFirstEvent::Ended),
            Some(Err(e)) => return Err(NoFirstEvent::Broke(e)),
            Some(Ok(chunk)) => {
                let started = if event_stream { scan.finds_event(&chunk) } else { !chunk.is_empty() };
                held.push(chunk);
                if started {
                    return Ok(stream::iter(held.into_iter().map(Ok)).chain(body).boxed_local());
                }
            }
        }
    }
}

/// Where an SSE scan stands between chunks: a comment may be split across them.
#[derive(Debug, Default)]
struct CommentScan {
    /// Inside a comment line (it began with `:`); otherwise at the start of a line.
    in_comment: bool,
}

impl CommentScan {
    /// Whether `chunk` carries a byte of an event (anything but comments and line ends).
    fn finds_event(&mut self, chunk: &[u8]) -> bool {
        for &b in chunk {
            match (self.in_comment, b) {
                (_, b'\n' | b'\r') => self.in_comment = false,
                (true, _) => {}
                (false, b':') => self.in_comment = true,
                (false, _) => return true,
            }
        }
        false
    }
}

/// Ends `body` with an error once `deadline` passes: the whole of a non-streaming answer must arrive in time
/// (LiteLLM's `timeout` is the "maximum time for the complete response"), however steadily it trickles.
pub fn deadline_limited(body: UpstreamBody, deadline: Instant, limit_secs: f64) -> UpstreamBody {
    Box::pin(DeadlineLimited { body, deadline, timer: None, limit_secs, over: false })
}

struct DeadlineLimited {
    body: UpstreamBody,
    deadline: Instant,
    /// Armed on the first wait: a body that arrives whole with its first byte never touches the timer wheel.
    timer: Option<Pin<Box<Sleep>>>,
    limit_secs: f64,
    over: bool,
}

impl Stream for DeadlineLimited {
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.over {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = this.body.as_mut().poll_next(cx) {
            this.over = item.is_none();
            return Poll::Ready(item);
        }
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| Box::pin(actix_rt::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                this.over = true;
                Poll::Ready(Some(Err(format!("the response did not complete within {}s", this.limit_secs))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn comments_and_blank_lines_are_not_an_event() {
        // (chunks in order, index of the first chunk carrying an event)
        let cases: &[(&[&str], Option<usize>)] = &[
            (&["data: {}\n\n"], Some(0)),
            (&[": keep-alive\n\n", "data: x\n\n"], Some(1)),
            (&[": keep-al", "ive\n\n", "\n", "event: message_start\n"], Some(3)),
            (&[": a\r\n:b\r\n\r\n"], None),
            (&["\n\n", ":", "data"], None),
            (&["\n\n", ":", "\ndata"], Some(2)),
            (&["d"], Some(0)),
            (&[""], None),
        ];
        for (chunks, want) in cases {
            let mut scan = CommentScan::default();
            let got = chunks.iter().position(|c| scan.finds_event(c.as_bytes()));
            assert_eq!(got, *want, "{chunks:?}");
        }
    }

    fn body(items: Vec<Result<&'static str, &'static str>>, then_pending: bool) -> UpstreamBody {
        let items =
            stream::iter(items.into_iter().map(|i| i.map(|s: &str| Bytes::from(s.to_owned())).map_err(str::to_owned)));
        if then_pending {
            items.chain(stream::pending()).boxed_local()
        } else {
            items.boxed_local()
        }
    }

    async fn prime(b: UpstreamBody, event_stream: bool, ms: u64) -> Result<Vec<String>, NoFirstEvent> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let primed = first_event(b, event_stream, deadline).await?;
        let all: Vec<_> = primed.take_while(|r| std::future::ready(r.is_ok())).collect().await;
        Ok(all.into_iter().map(|r| String::from_utf8_lossy(&r.unwrap_or_default()).into_owned()).collect())
    }

    #[actix_rt::test]
    async fn the_first_event_is_awaited_and_put_back_in_front() {
        let got = prime(body(vec![Ok(": ping\n\n"), Ok("data: 1\n\n"), Ok("data: 2\n\n")], false), true, 1000).await;
        assert_eq!(got, Ok(vec![": ping\n\n".into(), "data: 1\n\n".into(), "data: 2\n\n".into()]));
        let got = prime(body(vec![Ok("{\"id\""), Ok(":1}")], false), false, 1000).await;
        assert_eq!(got, Ok(vec!["{\"id\"".into(), ":1}".into()]));
    }

    #[actix_rt::test]
    async fn no_first_event_says_why() {
        let cases: Vec<(UpstreamBody, bool, NoFirstEvent)> = vec![
            (body(vec![Ok(": ping\n\n")], true), true, NoFirstEvent::TimedOut),
            (body(vec![], true), false, NoFirstEvent::TimedOut),
            (body(vec![Ok(": ping\n\n")], false), true, NoFirstEvent::Ended),
            (body(vec![Ok("")], false), false, NoFirstEvent::Ended),
            (body(vec![Err("reset")], false), false, NoFirstEvent::Broke("reset".into())),
        ];
        for (b, event_stream, want) in cases {
            assert_eq!(prime(b, event_stream, 50).await, Err(want));
        }
    }

    #[actix_rt::test]
    async fn a_whole_answer_must_complete_by_its_deadline() {
        let slow = stream::iter(0..100)
            .then(|_| async {
                actix_rt::time::sleep(Duration::from_millis(20)).await;
                Ok(Bytes::from_static(b"x"))
            })
            .boxed_local();
        let started = std::time::Instant::now();
        let items: Vec<_> = deadline_limited(slow, Instant::now() + Duration::from_millis(150), 0.15).collect().await;
        assert!(items.last().is_some_and(|r| r.as_ref().is_err_and(|e| e.contains("within 0.15s"))), "{items:?}");
        assert!(items.len() < 20, "cut at the deadline, not at the end: {}", items.len());
        assert!(started.elapsed() < Duration::from_secs(1));
        let quick = body(vec![Ok("a"), Ok("b")], false);
        let items: Vec<_> = deadline_limited(quick, Instant::now() + Duration::from_millis(150), 0.15).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok));
    }
}
