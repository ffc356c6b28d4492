"""The stock `openai` SDK talking to tollgate, which talks to the fake OpenAI upstream."""

import json

import openai
import pytest

from conftest import MASTER_KEY, MODELS

HI = [{"role": "user", "content": "hi"}]


def test_chat_non_streaming(client):
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=HI)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from fake upstream"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (10, 5, 15)
    assert len(raw.headers["x-tollgate-request-id"]) == 32
    assert raw.headers["x-tollgate-deployment"] == "chat#0"


def test_streaming_with_final_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="chat", messages=HI, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake upstream"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (10, 5, 15)
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage_has_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="chat", messages=HI, stream=True))
    assert chunks, "stream is not empty"
    assert all(c.choices for c in chunks), "no empty-choices usage chunk"
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from fake upstream"


def test_streamed_tool_calls_are_parsed_by_the_sdk(client):
    calls = {}
    finish = None
    for chunk in client.chat.completions.create(model="tools", messages=HI, stream=True):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for tc in choice.delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            if tc.function and tc.function.name:
                entry["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"] == "call_fake_1"
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


def test_non_streaming_tool_call(client):
    completion = client.chat.completions.create(model="tools", messages=HI)
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})


def test_unknown_fields_pass_through_to_the_upstream(client, upstream_requests):
    completion = client.chat.completions.create(model="echo", messages=HI, extra_body={"x_custom": {"a": 1}}, temperature=0.25)
    forwarded = json.loads(completion.choices[0].message.content)
    assert forwarded["x_custom"] == {"a": 1}
    assert forwarded["temperature"] == 0.25
    assert forwarded["model"] == "echo", "the upstream sees its own model name"
    (seen,) = upstream_requests()
    assert seen["headers"]["authorization"] == "Bearer sk-fake-upstream-key-123456"


def test_embeddings(client):
    result = client.embeddings.create(model="embed", input=["first text", "second"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.usage.prompt_tokens > 0


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert ids == list(MODELS) + ["up-dead", "mock-echo", "mock-embed"]


def test_models_retrieve(client):
    assert client.models.retrieve("tools").id == "tools"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nope")


def test_mock_provider_streams_and_embeds(client):
    chunks = list(client.chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "echo me back"}], stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo me back"
    assert chunks[-1].usage.completion_tokens == 3
    # The SDK asks for base64 embeddings by default and decodes them.
    result = client.embeddings.create(model="mock-embed", input="hello")
    vector = result.data[0].embedding
    assert len(vector) == 8
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-4


def test_bad_key_is_authentication_error(gateway):
    bad = openai.OpenAI(base_url=f"{gateway}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="chat", messages=HI)
    assert e.value.status_code == 401


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nope", messages=HI)
    assert e.value.code == "model_not_found"


def test_upstream_429_is_rate_limit_error_with_retry_after(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="up-429", messages=HI)
    assert e.value.response.headers["retry-after"] == "7"
    assert "fake upstream 429" in e.value.message


def test_upstream_400_is_bad_request_with_its_message(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="up-400", messages=HI)
    assert "fake upstream 400" in e.value.message


def test_upstream_500_is_internal_server_error(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="up-500", messages=HI)
    assert e.value.status_code == 500


def test_unreachable_upstream_is_502(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="up-dead", messages=HI)
    assert e.value.status_code == 502
    assert "up-dead#" in e.value.message
    assert "sk-fake" not in e.value.message


def test_upstream_timeout_is_504(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="up-hang", messages=HI)
    assert e.value.status_code == 504


def test_mid_stream_reset_raises_in_the_sdk(client):
    stream = client.chat.completions.create(model="reset", messages=HI, stream=True)
    received = []
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            received.append(chunk)
    assert received, "chunks before the break arrived"
    assert "broke mid-response" in str(e.value)


def test_gateway_healthy_after_errors(client):
    for model in ["up-400", "up-500", "up-dead"]:
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model=model, messages=HI)
    completion = client.chat.completions.create(model="chat", messages=HI)
    assert completion.choices[0].message.content == "Hello from fake upstream"
