"""`GET /metrics` read by the official Prometheus Python client's text-format parser: it parses, and its request
counters move by exactly the requests sent (issue 16, must-show 4)."""

import time
import urllib.request

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import MASTER_KEY
from helpers import HI


def scrape(gateway: str) -> dict:
    """Every sample as {(name, frozenset(labels)): value}; the parser raises on anything malformed."""
    req = urllib.request.Request(f"{gateway}/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def total(samples: dict, name: str, **labels) -> float:
    # `class` is a Python keyword: passed as `class_`.
    want = {(k.rstrip("_"), v) for k, v in labels.items()}
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def test_metrics_parse_and_count_the_requests_sent(client, gateway):
    before = scrape(gateway)
    for i in range(6):
        stream = i % 2 == 0
        if stream:
            for _ in client.chat.completions.create(model="chat", messages=HI, stream=True):
                pass
        else:
            client.chat.completions.create(model="chat", messages=HI)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HI)
    route = "/v1/chat/completions"
    deadline = time.monotonic() + 5
    while True:
        after = scrape(gateway)
        ok = total(after, "tollgate_requests_total", route=route, model_group="chat", status="200") - total(
            before, "tollgate_requests_total", route=route, model_group="chat", status="200"
        )
        missing = total(after, "tollgate_requests_total", route=route, model_group="none", status="404") - total(
            before, "tollgate_requests_total", route=route, model_group="none", status="404"
        )
        if (ok, missing) == (6, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (ok, missing) == (6, 1)
    prompt = total(after, "tollgate_request_prompt_tokens_total", route=route, model_group="chat") - total(
        before, "tollgate_request_prompt_tokens_total", route=route, model_group="chat"
    )
    assert prompt == 6 * 10, "the fake reports 10 prompt tokens per message"
    count = total(after, "tollgate_request_duration_seconds_count", route=route, model_group="chat") - total(
        before, "tollgate_request_duration_seconds_count", route=route, model_group="chat"
    )
    assert count == 6
    # Every answered request's overhead and upstream time are observed once (their own histograms).
    for family in ("tollgate_request_overhead_seconds_count", "tollgate_request_upstream_seconds_count"):
        moved = total(after, family, route=route, model_group="chat") - total(before, family, route=route, model_group="chat")
        assert moved == 6, family
    errors = "tollgate_request_errors_total"
    not_found = total(after, errors, route=route, class_="model_not_found") - total(before, errors, route=route, class_="model_not_found")
    assert not_found == 1, "the refused request counts once, by its class"
    assert total(after, "tollgate_request_log_lost_total") == 0
