"""The stock `anthropic` SDK talking to tollgate's `/v1/messages`, backed by an OpenAI-dialect fake (translated
both ways) and by the Anthropic fake (the caller's bytes passed through). See conftest.py for the models."""

import anthropic
import pytest

from conftest import MASTER_KEY

FAKE_TEXT = "Hello from fake upstream"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def claude(gateway):
    return anthropic.Anthropic(base_url=gateway, api_key=MASTER_KEY, max_retries=0, timeout=10)


# --- OpenAI-dialect upstream ----------------------------------------------------------------------------------


def test_text_from_an_openai_upstream(claude, upstream_requests):
    message = claude.messages.create(model="chat", max_tokens=100, system="be brief", messages=HI)
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == FAKE_TEXT
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 5)
    (seen,) = upstream_requests()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["messages"][0] == {"role": "system", "content": "be brief"}


def test_streamed_text_from_an_openai_upstream(claude):
    with claude.messages.stream(model="chat", max_tokens=100, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == FAKE_TEXT
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_from_an_openai_upstream(claude, streamed):
    kwargs = dict(model="weather", max_tokens=100, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "Paris?"}])
    if streamed:
        with claude.messages.stream(**kwargs) as stream:
            message = stream.get_final_message()
    else:
        message = claude.messages.create(**kwargs)
    assert message.stop_reason == "tool_use"
    (tool,) = [b for b in message.content if b.type == "tool_use"]
    assert (tool.name, tool.input) == ("get_weather", {"city": "Paris"})
    assert tool.id


@pytest.mark.parametrize(
    "model, error",
    [("up-429", anthropic.RateLimitError), ("up-400", anthropic.BadRequestError), ("no-such-model", anthropic.NotFoundError)],
)
def test_errors_raise_the_matching_sdk_exception(claude, model, error):
    with pytest.raises(error) as raised:
        claude.messages.create(model=model, max_tokens=10, messages=HI)
    assert raised.value.body["type"] == "error"


def test_a_wrong_key_is_an_authentication_error(gateway):
    bad = anthropic.Anthropic(base_url=gateway, api_key="sk-wrong", max_retries=0, timeout=10)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="chat", max_tokens=10, messages=HI)


def test_a_broken_upstream_stream_raises_in_the_sdk(claude):
    with pytest.raises(anthropic.APIError):
        with claude.messages.stream(model="broken-stream", max_tokens=10, messages=HI) as stream:
            for _ in stream:
                pass


# --- Anthropic upstream: the caller's bytes pass through, usage read on the side -----------------------------


def test_text_passes_through_from_an_anthropic_upstream(claude, upstream_requests):
    message = claude.messages.create(model="claude-native", max_tokens=100, messages=HI)
    assert message.content[0].text == FAKE_TEXT
    assert message.stop_reason == "end_turn"
    u = message.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (21, 9, 5, 3)
    (seen,) = upstream_requests()
    assert seen["path"] == "/v1/messages"
    assert seen["body"]["model"] == "normal", "only the model is replaced"
    assert seen["headers"]["x-api-key"] == "sk-fake-upstream-key-123456"


def test_streamed_tools_pass_through_from_an_anthropic_upstream(claude):
    with claude.messages.stream(model="claude-tools", max_tokens=100, tools=[WEATHER_TOOL], messages=HI) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    tools = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
    assert tools == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (21, 9)


def test_an_overloaded_anthropic_upstream_is_a_retryable_503(claude):
    with pytest.raises(anthropic.APIStatusError) as raised:
        claude.messages.create(model="claude-overloaded", max_tokens=10, messages=HI)
    assert raised.value.status_code == 503
    assert raised.value.body["error"]["type"] == "overloaded_error"


def test_a_cut_anthropic_stream_ends_with_an_error_event(claude):
    with pytest.raises(anthropic.APIError):
        with claude.messages.stream(model="claude-cut", max_tokens=10, messages=HI) as stream:
            for _ in stream:
                pass
