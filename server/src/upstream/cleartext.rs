//! Spotting API keys that would cross the network unencrypted: a deployment that sends a key to an `http://`
//! upstream outside this machine. That is a start-up warning, not a refusal: LiteLLM users run vLLM and similar
//! servers on plain HTTP inside clusters, where the network is the trust boundary.

use std::net::IpAddr;

use actix_web::http::Uri;

/// True when a request to `url` carrying a key (`sends_key`) would expose the key on the network.
pub fn key_in_cleartext(url: &Uri, sends_key: bool) -> bool {
    let http = url.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http"));
    sends_key && http && !url.host().is_some_and(is_loopback)
}

/// `localhost` (and `*.localhost`, which RFC 6761 reserves for loopback), 127.0.0.0/8, `::1` and the IPv4-mapped
/// loopback addresses. Names are not resolved: any other name may point anywhere.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_over_plain_http_to_other_hosts_are_flagged() {
        let cases = [
            ("http://vllm.cluster.local:8000/v1/chat/completions", true, true),
            ("http://10.0.0.7:8000/v1/chat/completions", true, true),
            ("HTTP://example.com/v1", true, true),
            ("http://vllm.cluster.local:8000/v1", false, false),
            ("https://api.openai.com/v1/chat/completions", true, false),
            ("http://localhost:11434/v1", true, false),
            ("http://LOCALHOST./v1", true, false),
            ("http://ollama.localhost/v1", true, false),
            ("http://127.0.0.1:8000/v1", true, false),
            ("http://127.8.9.10/v1", true, false),
            ("http://[::1]:8000/v1", true, false),
            ("http://[::ffff:127.0.0.1]:8000/v1", true, false),
            ("http://[::2]:8000/v1", true, true),
            ("http://localhost.example.com/v1", true, true),
            ("http://128.0.0.1/v1", true, true),
        ];
        for (url, sends_key, want) in cases {
            let uri: Uri = url.parse().unwrap_or_else(|e| unreachable!("{url}: {e}"));
            assert_eq!(key_in_cleartext(&uri, sends_key), want, "{url} (key: {sends_key})");
        }
    }
}
