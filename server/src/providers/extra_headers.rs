//! A deployment's `extra_headers`, as every native provider sends them: each value marked sensitive (it may hold a
//! credential), and the longer ones kept for scrubbing from upstream error messages.

use actix_web::http::header::{HeaderName, HeaderValue};

use crate::{
    config::{ConfigError, DeploymentConfig},
    secret::Secret,
};

/// Header values shorter than this are not scrubbed from error messages: they are not secrets (`X-Title: app`),
/// and replacing short strings everywhere would garble the message.
pub const MIN_SCRUBBED_LEN: usize = 8;

/// The deployment's extra headers, ready to send, and appends the values worth scrubbing to `scrubbed`.
pub fn sensitive(
    d: &DeploymentConfig,
    scrubbed: &mut Vec<Secret>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut out = Vec::with_capacity(d.extra_headers.len());
    for (name, value) in &d.extra_headers {
        let bad = || {
            ConfigError::invalid(
                format!("{}.litellm_params.extra_headers", d.path),
                format!("header `{name}` is not a valid HTTP header"),
            )
        };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let mut v = HeaderValue::from_str(value.expose()).map_err(|_| bad())?;
        v.set_sensitive(true);
        out.push((n, v));
        if value.expose().len() >= MIN_SCRUBBED_LEN {
            scrubbed.push(value.clone());
        }
    }
    Ok(out)
}
