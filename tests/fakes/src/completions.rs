//! The fake's OpenAI legacy text completions (`POST /v1/completions`), what `text-completion-openai/` deployments
//! call. The `model` picks the behaviour as for chat: `error-<N>`, `delay-<ms>` and `hang` as there; any other
//! model answers "Hello from fake upstream" for each prompt (`prompt` a string or an array of strings: one choice
//! each), `finish_reason` `stop`. Streams answer as for one prompt: the text in 4 pieces, a chunk with the finish
//! reason, the usage chunk (empty `choices`) only if `stream_options.include_usage`, and `data: [DONE]`. Usage:
//! 10 prompt tokens per prompt, 5 completion tokens per choice. Ids are `cmpl-fake-<seq>`.
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::Value;

use crate::{
    mode::Mode,
    openai::{bad_request, error_hang_or_delay, headers_json, CONTENT_PIECES},
    record::Recorder,
    sse,
    wire::{TextChoice, TextCompletion, Usage, CREATED, FINGERPRINT},
};

const PROMPT_TOKENS: u64 = 10;
const COMPLETION_TOKENS: u64 = 5;

pub(crate) async fn completions(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let parsed = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let seq = rec.request(req.path(), headers_json(&req), parsed.clone());
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    if let Some(early) = error_hang_or_delay(Mode::from_model(&model)).await {
        return early;
    }
    let prompts = match &parsed["prompt"] {
        Value::String(_) => 1,
        Value::Array(items) if !items.is_empty() => items.len(),
        _ => return bad_request("'prompt' must be a string or an array"),
    } as u64;
    let usage = Usage {
        prompt_tokens: PROMPT_TOKENS * prompts,
        completion_tokens: COMPLETION_TOKENS * prompts,
        total_tokens: (PROMPT_TOKENS + COMPLETION_TOKENS) * prompts,
    };
    let id = format!("cmpl-fake-{seq}");
    let object = |choices, usage| TextCompletion {
        id: &id,
        object: "text_completion",
        created: CREATED,
        model: &model,
        system_fingerprint: FINGERPRINT,
        choices,
        usage,
    };
    if parsed["stream"].as_bool() != Some(true) {
        let text = CONTENT_PIECES.concat();
        let choices = (0..prompts as usize)
            .map(|index| TextChoice { text: &text, index, logprobs: None, finish_reason: Some("stop") })
            .collect();
        return HttpResponse::Ok().json(object(choices, Some(Some(usage))));
    }
    let include_usage = parsed["stream_options"]["include_usage"].as_bool() == Some(true);
    let event = |completion: &TextCompletion<'_>| {
        let mut out = b"data: ".to_vec();
        // Serialising these plain structs cannot fail.
        let _ = serde_json::to_writer(&mut out, completion);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    };
    let chunk = |text, finish_reason| {
        let choice = TextChoice { text, index: 0, logprobs: None, finish_reason };
        event(&object(vec![choice], include_usage.then_some(None)))
    };
    let mut events: Vec<Bytes> = CONTENT_PIECES.iter().map(|piece| chunk(piece, None)).collect();
    events.push(chunk("", Some("stop")));
    if include_usage {
        events.push(event(&object(Vec::new(), Some(Some(usage)))));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    sse::sse(events)
}
