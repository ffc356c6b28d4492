//! Token usage of one call, in one canonical shape whatever the dialect reported.
//!
//! Canonical means OpenAI's inclusive accounting: `prompt_tokens` counts every input token, cache reads and cache
//! writes included, and `completion_tokens` counts every output token, reasoning included. Dialects whose counts
//! are additive (Anthropic's `input_tokens` excludes both kinds of cache tokens) convert with
//! [`Usage::from_additive`], so pricing never has to know which provider spoke.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every input token, cache reads and writes included.
    pub prompt_tokens: u64,
    /// Every output token, reasoning included.
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache (a part of `prompt_tokens`).
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache (a part of `prompt_tokens`).
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning (a part of `completion_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// From counts where cache reads and writes are reported beside, not inside, the input count (Anthropic).
    pub fn from_additive(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Self {
        Self {
            prompt_tokens: input.saturating_add(cache_read).saturating_add(cache_write),
            completion_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            reasoning_tokens: 0,
        }
    }

    /// Input tokens billed at the plain input price.
    pub fn uncached_prompt_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_sub(self.cache_read_tokens).saturating_sub(self.cache_write_tokens)
    }

    /// Output tokens billed at the plain output price.
    pub fn visible_completion_tokens(&self) -> u64 {
        self.completion_tokens.saturating_sub(self.reasoning_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additive_counts_become_inclusive() {
        let u = Usage::from_additive(100, 2000, 300, 50);
        assert_eq!((u.prompt_tokens, u.uncached_prompt_tokens()), (2400, 100));
        assert_eq!((u.cache_read_tokens, u.cache_write_tokens, u.completion_tokens), (2000, 300, 50));
        // Reports that claim more cached than total tokens never underflow.
        let odd = Usage {
            prompt_tokens: 10,
            cache_read_tokens: 50,
            completion_tokens: 1,
            reasoning_tokens: 9,
            ..Usage::default()
        };
        assert_eq!((odd.uncached_prompt_tokens(), odd.visible_completion_tokens()), (0, 0));
    }
}
