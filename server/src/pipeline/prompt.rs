//! The request's prompt as routing's rules read it ([`Prompt`]): its byte length at once; its canonical form
//! (tokens, images, tools) only when a rule asks, once per request however many groups and retries ask again.

use std::cell::{Cell, OnceCell};

use crate::{
    llm::{
        chat::Chat,
        tokens::{self, Encoding},
        Inbound,
    },
    providers::inbound,
    routing::rules::{Caps, Prompt},
};

#[derive(Debug)]
pub struct RequestPrompt<'a> {
    inbound: &'a Inbound<'a>,
    /// The request body's length: every token of its text is at least one of these bytes, and the JSON around
    /// each message outweighs OpenAI's per-message overhead.
    bytes: u64,
    /// `None` when the body has no canonical form (its call will fail with that error itself).
    chat: OnceCell<Option<Chat>>,
    tokens: [Cell<Option<u64>>; 2],
}

impl<'a> RequestPrompt<'a> {
    pub fn new(inbound: &'a Inbound<'a>, body_bytes: usize) -> Self {
        Self { inbound, bytes: body_bytes as u64, chat: OnceCell::new(), tokens: Default::default() }
    }

    fn chat(&self) -> Option<&Chat> {
        self.chat.get_or_init(|| inbound::canonical(self.inbound).ok()).as_ref()
    }
}

impl Prompt for RequestPrompt<'_> {
    fn upper_bound(&self) -> u64 {
        self.bytes
    }

    fn tokens(&self, encoding: Encoding) -> u64 {
        let cell = &self.tokens[encoding as usize];
        if let Some(n) = cell.get() {
            return n;
        }
        let n = self.chat().map_or(0, |chat| tokens::chat_tokens(chat, encoding));
        cell.set(Some(n));
        n
    }

    fn needs(&self) -> Caps {
        self.chat().map_or_else(Caps::default, |chat| Caps {
            vision: tokens::has_images(chat),
            tools: !chat.tools.is_empty(),
            long_context: false,
        })
    }
}
