//! Reads a request body into memory with a size limit and a deadline. Oversized bodies are refused by
//! `Content-Length` before a byte of them is read; memory grows with the bytes that actually arrive, never with
//! what the caller declared.
//!
//! Takes any byte stream, so this stage knows nothing of actix: `http/` hands it the payload.

use std::{fmt::Display, future::Future, task::Poll, time::Duration};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::error::ApiError;

/// Room reserved up front at most; a declared length beyond it is believed only as the bytes arrive.
const INITIAL_CAPACITY: usize = 16 * 1024;

pub async fn read<E: Display>(
    payload: impl Stream<Item = Result<Bytes, E>> + Unpin,
    content_length: Option<usize>,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    if content_length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let capacity = content_length.unwrap_or(1024).min(limit).min(INITIAL_CAPACITY);
    let mut collecting = std::pin::pin!(collect(payload, capacity, limit));
    // Most bodies have arrived whole with their headers: reading those never touches the timer wheel.
    if let Poll::Ready(result) = std::future::poll_fn(|cx| Poll::Ready(collecting.as_mut().poll(cx))).await {
        return result;
    }
    match actix_rt::time::timeout(deadline, collecting).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::BodyTimeout { secs: deadline.as_secs_f64() }),
    }
}

async fn collect<E: Display>(
    mut payload: impl Stream<Item = Result<Bytes, E>> + Unpin,
    capacity: usize,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::with_capacity(capacity);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadBody(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    type Chunk = Result<Bytes, String>;

    #[actix_rt::test]
    async fn limits_size_and_time_and_trusts_no_declared_length() {
        let second = Duration::from_secs(1);
        let body = || stream::iter(vec![Ok::<_, String>(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"cd"))]);
        assert_eq!(read(body(), Some(4), 10, second).await.ok(), Some(Bytes::from_static(b"abcd")));
        assert!(matches!(read(body(), Some(11), 10, second).await, Err(ApiError::PayloadTooLarge { .. })));
        assert!(matches!(read(body(), None, 3, second).await, Err(ApiError::PayloadTooLarge { .. })));
        // A caller that declares 1 GB and sends 4 bytes costs 4 bytes (plus the fixed initial room), not 1 GB.
        let got = read(body(), Some(1 << 30), 2 << 30, second).await.ok();
        assert!(got.is_some_and(|b| b.len() == 4));
        // A caller that stops sending is cut off at the deadline.
        let stalled = stream::iter(vec![Ok::<_, String>(Bytes::from_static(b"a"))]).chain(stream::pending::<Chunk>());
        let started = std::time::Instant::now();
        let result = read(stalled, Some(10), 10, Duration::from_millis(100)).await;
        assert!(matches!(result, Err(ApiError::BodyTimeout { .. })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let broken = stream::iter(vec![Err::<Bytes, _>("reset".to_owned())]);
        assert!(matches!(read(broken, None, 10, second).await, Err(ApiError::BadBody(_))));
    }
}
