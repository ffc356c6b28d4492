//! Canonical embeddings: texts in, vectors out, whichever dialect the provider speaks.

/// What an embeddings call asks for, once the caller's OpenAI body is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbedInput {
    pub texts: Vec<String>,
    /// OpenAI's `dimensions` (output size), where the provider can truncate.
    pub dimensions: Option<u32>,
}

/// What the provider answered, before it is rendered as OpenAI's list (floats or base64, as the caller asked).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, when the provider reports them.
    pub prompt_tokens: Option<u64>,
}
