"""Starts the fake upstream and tollgate as real processes for the SDK tests."""

import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import openai
import pytest

MASTER_KEY = "sk-test-master"
UPSTREAM_KEY = "sk-fake-upstream-key-123456"

# public model name -> (fake upstream mode, extra litellm_params)
MODELS = {
    "chat": ("normal", {}),
    "tools": ("tools", {}),
    "echo": ("echo", {}),
    "embed": ("normal", {}),
    "reset": ("reset", {}),
    "up-400": ("error-400", {}),
    "up-429": ("error-429", {}),
    "up-500": ("error-500", {}),
    "up-hang": ("hang", {"timeout": 1}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_entry(name, mode, api_base, extra):
    lines = [
        f"  - model_name: {name}",
        "    litellm_params:",
        f"      model: openai/{mode}",
        f"      api_base: {api_base}",
        f"      api_key: {UPSTREAM_KEY}",
    ]
    lines += [f"      {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines)


def wait_ready(url: str, proc: subprocess.Popen, log_path: str) -> None:
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tollgate exited early:\n{open(log_path).read()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health/readiness", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"tollgate did not become ready:\n{open(log_path).read()[-4000:]}")


@pytest.fixture(scope="session")
def fake_upstream():
    proc = subprocess.Popen(
        [os.environ["FAKE_UPSTREAM_BIN"], "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    yield line.removeprefix("listening on ")
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def gateway(fake_upstream):
    api_base = f"{fake_upstream}/v1"
    entries = [model_entry(n, m, api_base, extra) for n, (m, extra) in MODELS.items()]
    dead = free_port()
    entries.append(model_entry("up-dead", "normal", f"http://127.0.0.1:{dead}/v1", {}))
    entries.append("  - model_name: mock-echo\n    litellm_params:\n      model: mock/echo")
    entries.append("  - model_name: mock-embed\n    litellm_params:\n      model: mock/text-embedding-3-small")
    config = "model_list:\n" + "\n".join(entries) + f"\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    workdir = tempfile.mkdtemp(prefix="tollgate-sdk-")
    config_path = os.path.join(workdir, "config.yaml")
    with open(config_path, "w") as f:
        f.write(config)
    log_path = os.path.join(workdir, "tollgate.log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [os.environ["TOLLGATE_BIN"], "--config", config_path, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


@pytest.fixture
def upstream_requests(fake_upstream):
    """Returns a function listing what the fake upstream received since the test started."""
    import json

    with urllib.request.urlopen(f"{fake_upstream}/__fake/requests") as r:
        seen_before = {req["seq"] for req in json.load(r)}

    def since():
        with urllib.request.urlopen(f"{fake_upstream}/__fake/requests") as r:
            return [req for req in json.load(r) if req["seq"] not in seen_before]

    return since
