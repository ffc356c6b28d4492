//! Reads a request body into memory with a size limit, rejecting oversized bodies by `Content-Length` before
//! reading a byte of them.

use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::ApiError;

pub async fn read(mut payload: web::Payload, content_length: Option<usize>, limit: usize) -> Result<Bytes, ApiError> {
    if content_length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(content_length.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadBody(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
