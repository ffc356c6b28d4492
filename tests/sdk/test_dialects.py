"""The stock `openai` SDK through every upstream dialect: tollgate translates OpenAI's chat and embeddings to
Anthropic, Gemini, Vertex AI, Bedrock, Cohere and Azure (and passes OpenAI through), each served by its fake at
the provider's real paths. The deployments are `<dialect>-<role>` (conftest.py `DIALECT_MODELS`)."""

import json
import struct
import urllib.request
from dataclasses import dataclass

import openai
import pytest

from conftest import DIALECTS, UPSTREAM_KEY, VERTEX_LOCATION, VERTEX_PROJECT
from helpers import HI, collect_tool_calls

pytestmark = pytest.mark.usefixtures("vertex_ready")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]
# The OpenAI fake's `tools` mode calls one tool; every native fake's calls two (see their module docs).
ONE_CALL = [("get_weather", {"city": "Paris"})]
TWO_CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {})]
VERTEX_MODELS = f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/publishers/google/models"


@dataclass(frozen=True)
class Dialect:
    text: str
    # OpenAI's inclusive usage: (prompt, completion, total, cached, reasoning, cache written).
    usage: tuple[int, int, int, int, int, int]
    tool_calls: list
    # Where the fake received the chat, and the credential header it got: (header, how its value starts).
    chat_path: str
    auth: tuple[str, str]
    # A 429's `retry-after` as the caller sees it.
    retry_after: str | None
    # Embeddings: the deployment (None: the dialect has none), and whether tollgate itself encodes the vectors as
    # the SDK asks (base64) or passes the upstream's answer through (the OpenAI fake always answers floats).
    embed_model: str | None
    embed_encoded_by_gateway: bool


BEARER = ("authorization", f"Bearer {UPSTREAM_KEY}")
UPSTREAM_TEXT = "Hello from fake upstream"
DIALECT_TABLE = {
    # tests/fakes/src/wire.rs: 10 prompt tokens per message, 5 completion; spliced as sent (no details: 0 here).
    "openai": Dialect(UPSTREAM_TEXT, (10, 5, 15, 0, 0, 0), ONE_CALL, "/v1/chat/completions", BEARER, "7", "openai-chat", False),
    # anthropic.rs: input 21 excludes cache read 5 and write 3, so prompt = 21 + 5 + 3 = 29; output 9; total 38.
    "anthropic": Dialect(
        UPSTREAM_TEXT, (29, 9, 38, 5, 0, 3), TWO_CALLS, "/v1/messages", ("x-api-key", UPSTREAM_KEY), "7", None, False
    ),
    # gemini.rs: promptTokenCount 21 includes cached 8; completion = candidates 7 + thoughts 5 = 12; total 33.
    "gemini": Dialect(
        "Hello from fake gemini",
        (21, 12, 33, 8, 5, 0),
        TWO_CALLS,
        "/v1beta/models/normal:generateContent",
        ("x-goog-api-key", UPSTREAM_KEY),
        # Google's RetryInfo `retryDelay: "7s"`.
        "7",
        "gemini-chat",
        True,
    ),
    # The same fake and counts as Gemini, by Vertex AI's path with a token from the fake's /token.
    "vertex": Dialect(
        "Hello from fake gemini",
        (21, 12, 33, 8, 5, 0),
        TWO_CALLS,
        f"{VERTEX_MODELS}/normal:generateContent",
        ("authorization", "Bearer ya29.fake-"),
        "7",
        "vertex-chat",
        True,
    ),
    # bedrock/mod.rs: inputTokens 11 excludes cache read 5 and write 3: prompt 19; output 7; total 26.
    "bedrock": Dialect(
        UPSTREAM_TEXT,
        (19, 7, 26, 5, 0, 3),
        TWO_CALLS,
        "/model/normal/converse",
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDFAKEBEDROCK/"),
        None,
        "bedrock-titan",
        True,
    ),
    # cohere.rs: billed units 13 in / 7 out are the counts (not the 513 / 8 processed); 5 cached; total 20.
    "cohere": Dialect("Hello from fake cohere", (13, 7, 20, 5, 0, 0), TWO_CALLS, "/v2/chat", BEARER, "7", "cohere-chat", True),
    # The OpenAI fake at Azure's deployment path, with Azure's `api-key` header.
    "azure": Dialect(
        UPSTREAM_TEXT,
        (10, 5, 15, 0, 0, 0),
        ONE_CALL,
        # Recorded with its query string, as Azure needs `api-version`.
        "/openai/deployments/normal/chat/completions?api-version=2024-10-21",
        ("api-key", UPSTREAM_KEY),
        "7",
        "azure-chat",
        False,
    ),
}
assert set(DIALECT_TABLE) == set(DIALECTS), "one row per configured dialect"
EMBEDDING_DIALECTS = [d for d, row in DIALECT_TABLE.items() if row.embed_model]


def usage_tuple(u) -> tuple[int, int, int, int, int, int]:
    cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0
    reasoning = u.completion_tokens_details.reasoning_tokens if u.completion_tokens_details else 0
    written = (u.model_extra or {}).get("cache_creation_input_tokens", 0)
    return (u.prompt_tokens, u.completion_tokens, u.total_tokens, cached or 0, reasoning or 0, written)


def tool_calls_of(calls) -> list:
    """(name, parsed arguments) of each call, after checking each has its own id and is a function call."""
    assert all(c["id"] for c in calls) and len({c["id"] for c in calls}) == len(calls), calls
    assert {c["type"] for c in calls} == {"function"}, calls
    return [(c["name"], json.loads(c["arguments"])) for c in calls]


def fake_vector(text: str) -> list[float]:
    """The fakes' embedding of `text` (tests/fakes/src/openai.rs `embed`): FNV-1a of the bytes, then splitmix64
    per dimension, as an integer in [-10000, 10000] over 10 000."""
    mask = (1 << 64) - 1
    seed = 0xCBF2_9CE4_8422_2325
    for b in text.encode():
        seed = ((seed ^ b) * 0x0100_0000_01B3) & mask
    vector = []
    for dim in range(8):
        z = (seed + (dim + 1) * 0x9E37_79B9_7F4A_7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & mask
        z ^= z >> 31
        vector.append(((z % 20_001) - 10_000) / 10_000)
    return vector


def as_f32(values: list[float]) -> list[float]:
    """The values after a trip through OpenAI's base64 format (little-endian float32)."""
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


@pytest.fixture(params=list(DIALECT_TABLE))
def dialect(request):
    return request.param


def test_dialect_chat(client, upstream_requests, dialect):
    row = DIALECT_TABLE[dialect]
    raw = client.chat.completions.with_raw_response.create(model=f"{dialect}-chat", messages=HI)
    completion = raw.parse()
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == row.text
    assert completion.choices[0].finish_reason == "stop"
    assert usage_tuple(completion.usage) == row.usage
    # `<public name>#<index in model_list>`.
    assert raw.headers["x-tollgate-deployment"].startswith(f"{dialect}-chat#")
    (seen,) = upstream_requests()
    assert seen["path"] == row.chat_path
    header, value = row.auth
    assert seen["headers"][header].startswith(value), seen["headers"].get(header)


def test_bedrock_signature_verified_by_the_fake(client, upstream_requests, fake_upstream):
    client.chat.completions.create(model="bedrock-chat", messages=HI)
    (seen,) = upstream_requests()
    with urllib.request.urlopen(f"{fake_upstream}/__fake/events", timeout=5) as r:
        events = json.load(r)
    assert f"sigv4_verified:{seen['seq']}" in events, "the SigV4 signature checks out with the fake's secret key"


def test_dialect_stream_with_usage(client, dialect):
    row = DIALECT_TABLE[dialect]
    stream = client.chat.completions.create(
        model=f"{dialect}-chat", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == row.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert usage_tuple(chunks[-1].usage) == row.usage
    assert all(c.usage is None for c in chunks[:-1]), "usage only on the final chunk"
    assert len({c.id for c in chunks}) == 1, "one completion id across the stream"


def test_dialect_tool_calls(client, dialect):
    completion = client.chat.completions.create(model=f"{dialect}-tools", messages=HI, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [
        {"id": c.id, "type": c.type, "name": c.function.name, "arguments": c.function.arguments}
        for c in choice.message.tool_calls
    ]
    assert tool_calls_of(calls) == DIALECT_TABLE[dialect].tool_calls


def test_dialect_streamed_tool_calls(client, dialect):
    stream = client.chat.completions.create(model=f"{dialect}-tools", messages=HI, tools=TOOLS, stream=True)
    calls, finish = collect_tool_calls(stream)
    assert finish == "tool_calls"
    assert list(calls) == list(range(len(calls))), "indexes from 0, in order"
    assert tool_calls_of(list(calls.values())) == DIALECT_TABLE[dialect].tool_calls


def test_dialect_429_is_rate_limit_error(client, dialect):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model=f"{dialect}-429", messages=HI)
    assert e.value.status_code == 429
    assert e.value.response.headers.get("retry-after") == DIALECT_TABLE[dialect].retry_after
    assert e.value.message


@pytest.mark.parametrize("embed_dialect", EMBEDDING_DIALECTS)
def test_dialect_embeddings_in_the_sdks_default_base64(client, upstream_requests, embed_dialect):
    row = DIALECT_TABLE[embed_dialect]
    # Titan embeds one text per request.
    texts = ["first text"] if embed_dialect == "bedrock" else ["first text", "second"]
    raw = client.embeddings.with_raw_response.create(model=row.embed_model, input=texts)
    wire = [d["embedding"] for d in raw.http_response.json()["data"]]
    result = raw.parse()
    assert [d.index for d in result.data] == list(range(len(texts)))
    vectors = [d.embedding for d in result.data]
    expected = [fake_vector(t) for t in texts]
    if row.embed_encoded_by_gateway:
        assert all(isinstance(w, str) for w in wire), "tollgate answered base64, as the SDK asked"
        assert vectors == [as_f32(v) for v in expected]
    else:
        assert vectors == expected
        (seen,) = upstream_requests()
        assert seen["body"]["encoding_format"] == "base64", "the caller's format went upstream"
