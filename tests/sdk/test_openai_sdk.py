"""The stock `openai` SDK talking to tollgate, which talks to the fake OpenAI upstream (see conftest.py)."""

import json
import re
import time
import urllib.request

import openai
import pytest

from conftest import MASTER_KEY, MODELS, PUBLIC_MODELS, UPSTREAM_KEY
from helpers import HI, collect_tool_calls

FAKE_TEXT = "Hello from fake upstream"


# --- chat ----------------------------------------------------------------------------------------------------


def test_chat_non_streaming(client, upstream_requests):
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=HI)
    assert raw.status_code == 200
    completion = raw.parse()
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == FAKE_TEXT
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 5, 15)
    request_id = raw.headers["x-tollgate-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    assert raw.headers["x-tollgate-deployment"] == "chat#0"
    # The upstream got the upstream key (not the master key) and the same request id.
    (seen,) = upstream_requests()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen["headers"]["x-request-id"] == request_id


def test_two_messages_count_in_prompt_usage(client):
    messages = [{"role": "system", "content": "be brief"}, *HI]
    completion = client.chat.completions.create(model="chat", messages=messages)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (20, 5)


def test_streaming_with_include_usage(client):
    stream = client.chat.completions.create(
        model="chat", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) >= 2
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FAKE_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (10, 5, 15)
    assert all(c.usage is None for c in chunks[:-1]), "usage only on the final chunk"
    assert all(c.choices for c in chunks[:-1]), "only the final chunk has empty choices"
    assert len({c.id for c in chunks}) == 1, "one completion id across the stream"


def test_streaming_without_include_usage_has_no_usage_chunk(client, upstream_requests):
    chunks = list(client.chat.completions.create(model="chat", messages=HI, stream=True))
    assert chunks, "stream is not empty"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FAKE_TEXT
    assert all(c.usage is None for c in chunks), "no chunk carries usage"
    assert all(c.choices for c in chunks), "no empty-choices usage chunk"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The gateway still asked the upstream for usage (and stripped it), so the stripping was exercised.
    (seen,) = upstream_requests()
    assert seen["body"]["stream"] is True
    assert seen["body"]["stream_options"]["include_usage"] is True


def test_streamed_tool_calls(client):
    calls, finish = collect_tool_calls(client.chat.completions.create(model="weather", messages=HI, stream=True))
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"]
    assert calls[0]["type"] == "function"
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


def test_non_streaming_tool_call(client):
    completion = client.chat.completions.create(model="weather", messages=HI)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_unknown_fields_pass_through_and_model_is_rewritten(client, upstream_requests):
    completion = client.chat.completions.create(
        model="passthrough", messages=HI, temperature=0.25, extra_body={"x_custom": {"a": 1}}
    )
    forwarded = json.loads(completion.choices[0].message.content)
    assert forwarded["x_custom"] == {"a": 1}
    assert forwarded["temperature"] == 0.25
    assert forwarded["messages"] == HI
    assert forwarded["model"] == "echo", "the upstream sees its own model name, not the public one"
    # The fake's own record agrees with what it echoed.
    (seen,) = upstream_requests()
    assert seen["body"]["x_custom"] == {"a": 1}
    assert seen["body"]["model"] == "echo"
    assert MASTER_KEY not in json.dumps(seen["headers"]), "the master key never reaches the upstream"


# --- embeddings and models -----------------------------------------------------------------------------------


def test_embeddings(client, upstream_requests):
    result = client.embeddings.create(model="embed", input=["first text", "second"])
    assert [d.index for d in result.data] == [0, 1]
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert all(isinstance(x, float) for d in result.data for x in d.embedding)
    assert result.usage is not None
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens >= result.usage.prompt_tokens
    (seen,) = upstream_requests()
    assert seen["path"] == "/v1/embeddings"
    assert seen["body"]["input"] == ["first text", "second"]
    assert seen["body"]["model"] == "normal"


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert sorted(ids) == sorted(PUBLIC_MODELS), "exactly the configured public model names, once each"
    assert not {mode for mode, _ in MODELS.values()} & (set(ids) - set(MODELS)), "no upstream model names"


def test_models_retrieve(client):
    assert client.models.retrieve("weather").id == "weather"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nope")


def test_mock_provider_streams_and_embeds(client):
    chunks = list(
        client.chat.completions.create(
            model="mock-echo",
            messages=[{"role": "user", "content": "echo me back"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo me back"
    assert chunks[-1].usage.completion_tokens == 3
    # The SDK asks for base64 embeddings by default and decodes them.
    result = client.embeddings.create(model="mock-embed", input="hello")
    vector = result.data[0].embedding
    assert len(vector) == 8
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-4


# --- legacy text completions (`client.completions`) ---------------------------------------------------------


def test_text_completions_from_the_mock(client):
    completion = client.completions.create(model="mock-echo", prompt="echo me back")
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == ("echo me back", "stop")
    # The mock's counts: "echo me back" is 3 tokens; 3 more for the message and 3 for the reply.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 3)
    chunks = list(
        client.completions.create(
            model="mock-echo", prompt="echo me back", stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo me back"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert (chunks[-1].choices, chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == ([], 9, 3)


def test_text_completions_from_an_anthropic_upstream(client, upstream_requests):
    completion = client.completions.create(model="claude-native", prompt="Say hi", max_tokens=20)
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == (FAKE_TEXT, "stop")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (29, 9)
    text = "".join(
        c.choices[0].text for c in client.completions.create(model="claude-native", prompt="Say hi", stream=True)
    )
    assert text == FAKE_TEXT
    whole, streamed = upstream_requests()
    assert whole["path"] == "/v1/messages"
    assert whole["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]
    assert (whole["body"]["max_tokens"], streamed["body"]["stream"]) == (20, True)


# --- errors as SDK exceptions (each error group is called at most 3 times by the whole suite) ----------------


def test_bad_key_is_authentication_error(gateway, upstream_requests):
    bad = openai.OpenAI(base_url=f"{gateway}/v1", api_key="sk-wrong", max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="chat", messages=HI)
    assert e.value.status_code == 401
    assert isinstance(e.value.body, dict) and e.value.message
    assert upstream_requests() == [], "rejected before any upstream call"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nope", messages=HI)
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"


def test_upstream_429_is_rate_limit_error_with_retry_after(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="up-429", messages=HI)
    assert e.value.status_code == 429
    assert e.value.response.headers["retry-after"] == "7"
    assert "fake upstream 429" in e.value.message


def test_upstream_400_is_bad_request_with_its_message(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="up-400", messages=HI)
    assert e.value.status_code == 400
    assert "fake upstream 400: bad request" in e.value.message


def test_upstream_500_is_internal_server_error(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="up-500", messages=HI)
    assert e.value.status_code == 500


def test_unreachable_upstream_is_502(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="up-dead", messages=HI)
    assert e.value.status_code == 502
    assert "sk-fake" not in e.value.message, "no upstream key in the error"


def test_upstream_timeout_is_504(client):
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="up-hang", messages=HI)
    elapsed = time.monotonic() - started
    assert e.value.status_code == 504
    assert 0.9 <= elapsed < 5, f"the deployment's `timeout: 1` applied (took {elapsed:.2f} s)"


def test_mid_stream_reset_raises_in_the_sdk(client):
    started = time.monotonic()
    stream = client.with_options(timeout=5).chat.completions.create(model="broken-stream", messages=HI, stream=True)
    received = []
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(e.value, openai.APITimeoutError), "raised on the error event, not by timing out"
    assert time.monotonic() - started < 5
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text and FAKE_TEXT.startswith(text) and text != FAKE_TEXT, f"part of the answer arrived first: {text!r}"
    assert e.value.message


def test_gateway_healthy_after_errors(client, gateway):
    for model in ["up-400", "up-500", "up-dead"]:
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model=model, messages=HI)
    completion = client.chat.completions.create(model="chat", messages=HI)
    assert completion.choices[0].message.content == FAKE_TEXT
    for path in ["/health/liveliness", "/health/readiness"]:
        with urllib.request.urlopen(f"{gateway}{path}", timeout=5) as r:
            assert r.status == 200, path


# --- an Anthropic upstream behind the OpenAI API -------------------------------------------------------------


def test_openai_sdk_through_an_anthropic_upstream(client, upstream_requests):
    completion = client.chat.completions.create(model="claude-native", messages=[{"role": "system", "content": "terse"}, *HI])
    assert completion.choices[0].message.content == FAKE_TEXT
    assert completion.choices[0].finish_reason == "stop"
    u = completion.usage
    # Anthropic's additive counts become OpenAI's inclusive ones: 21 + 5 cached + 3 written.
    assert (u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.cached_tokens) == (29, 9, 5)
    (seen,) = upstream_requests()
    assert seen["path"] == "/v1/messages"
    assert seen["body"]["system"] == "terse" and seen["body"]["max_tokens"] == 4096


def test_openai_sdk_streams_tool_calls_from_an_anthropic_upstream(client):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    stream = client.chat.completions.create(
        model="claude-tools", messages=HI, tools=tools, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    calls, finish = collect_tool_calls(iter(chunks))
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert chunks[-1].usage.completion_tokens == 9
