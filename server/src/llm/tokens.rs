//! Prompt token counts with OpenAI's BPE tokenizers (tiktoken's `cl100k_base` and `o200k_base`, whose
//! vocabularies the `tiktoken-rs` crate compiles in): OpenAI's own count for its models, an approximation for every
//! other provider's (their tokenizers differ, typically by 10–30% on English text), documented as such in
//! docs/routing.md. Routing uses the count to compare a prompt with context windows.
//!
//! Contract: CPU only (no I/O); callers count only when the byte length, an upper bound, cannot decide.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use super::chat::{Chat, Part};

/// Tokens OpenAI adds per chat message (its role and separators), and to prime the reply.
const PER_MESSAGE: u64 = 3;
const REPLY_PRIMING: u64 = 3;

/// Which OpenAI tokenizer approximates a deployment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// gpt-4, gpt-3.5, and the approximation for every non-OpenAI model.
    #[default]
    Cl100k,
    /// gpt-4o, gpt-4.1, gpt-5, o1, o3, o4.
    O200k,
}

impl Encoding {
    /// The encoding for an upstream model name (a provider prefix is ignored).
    pub fn for_model(model: &str) -> Self {
        let m = model.rsplit('/').next().unwrap_or(model);
        let o200k = ["gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4", "gpt-oss"];
        if o200k.iter().any(|p| m.starts_with(p)) {
            Self::O200k
        } else {
            Self::Cl100k
        }
    }
}

/// The tokenizer, built on first use (tens of milliseconds: it parses its vocabulary).
fn bpe(encoding: Encoding) -> Option<&'static CoreBPE> {
    static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();
    static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
    match encoding {
        Encoding::Cl100k => CL100K.get_or_init(|| tiktoken_rs::cl100k_base().ok()),
        Encoding::O200k => O200K.get_or_init(|| tiktoken_rs::o200k_base().ok()),
    }
    .as_ref()
}

/// Builds `encoding`'s tokenizer now, so the first request that needs a count does not pay for it.
pub fn warm(encoding: Encoding) {
    let _ = bpe(encoding);
}

/// Tokens of `text`; its byte length (an upper bound) if the vocabulary could not be loaded.
pub fn count(encoding: Encoding, text: &str) -> u64 {
    match bpe(encoding) {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => text.len() as u64,
    }
}

/// A chat's prompt tokens as OpenAI counts them: each message's text plus its overhead, the tools' names,
/// descriptions and schemas, and the reply's priming. Images are not counted (their cost depends on the provider's
/// tiling), so a prompt that is mostly images is undercounted.
pub fn chat_tokens(chat: &Chat, encoding: Encoding) -> u64 {
    let mut n = REPLY_PRIMING;
    for system in &chat.system {
        n += PER_MESSAGE + count(encoding, system);
    }
    for message in &chat.messages {
        n += PER_MESSAGE + message.parts.iter().map(|p| part_tokens(p, encoding)).sum::<u64>();
    }
    for tool in &chat.tools {
        n += count(encoding, &tool.name)
            + tool.description.as_deref().map_or(0, |d| count(encoding, d))
            + count(encoding, &tool.parameters.to_string());
    }
    n
}

fn part_tokens(part: &Part, encoding: Encoding) -> u64 {
    match part {
        Part::Text(text) | Part::Reasoning { text, .. } => count(encoding, text),
        Part::Image(_) => 0,
        Part::ToolCall(call) => count(encoding, &call.name) + count(encoding, &call.arguments),
        Part::ToolResult(result) => result.content.iter().map(|p| part_tokens(p, encoding)).sum(),
    }
}

/// Whether a chat carries images (in messages or tool results).
pub fn has_images(chat: &Chat) -> bool {
    fn image(part: &Part) -> bool {
        match part {
            Part::Image(_) => true,
            Part::ToolResult(r) => r.content.iter().any(image),
            Part::Text(_) | Part::Reasoning { .. } | Part::ToolCall(_) => false,
        }
    }
    chat.messages.iter().any(|m| m.parts.iter().any(image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::chat::{Message, Role};

    #[test]
    fn counts_match_openais_tokenizers() {
        // Reference counts from OpenAI's tiktoken.
        let cases = [
            (Encoding::Cl100k, "hello world", 2),
            (Encoding::Cl100k, "tiktoken is great!", 6),
            (Encoding::O200k, "hello world", 2),
            (Encoding::Cl100k, "", 0),
        ];
        for (encoding, text, want) in cases {
            assert_eq!(count(encoding, text), want, "{encoding:?} {text:?}");
        }
    }

    #[test]
    fn the_byte_length_bounds_the_count() {
        let samples = [
            "plain English words and sentences, the common case",
            "日本語のテキストはマルチバイトです",
            "emoji 🎉🎉🎉 and symbols ∑∫√",
            "      many      spaces      ",
            "a",
            "{\"json\": [1, 2, 3], \"nested\": {\"k\": null}}",
            "x".repeat(10_000).as_str(),
        ]
        .map(str::to_owned);
        for text in &samples {
            for encoding in [Encoding::Cl100k, Encoding::O200k] {
                let tokens = count(encoding, text);
                assert!(tokens <= text.len() as u64, "{encoding:?}: {tokens} tokens > {} bytes", text.len());
            }
        }
    }

    #[test]
    fn a_chat_counts_its_messages_and_overheads() {
        let chat = Chat {
            system: vec!["be brief".into()],
            messages: vec![Message { role: Role::User, parts: vec![Part::Text("hello world".into())] }],
            ..Chat::default()
        };
        // priming 3 + (3 + "be brief" 2) + (3 + "hello world" 2)
        assert_eq!(chat_tokens(&chat, Encoding::Cl100k), 13);
        assert!(!has_images(&chat));
    }
}
