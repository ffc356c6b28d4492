"""Starts the fake upstream and tollgate as real processes, once per session, for the SDK tests.

Binaries come from TOLLGATE_BIN / FAKE_UPSTREAM_BIN (run.sh sets both), else target/debug/ at the repo root.
"""

import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-test-master"
UPSTREAM_KEY = "sk-fake-upstream-key-123456"
STARTUP_SECONDS = 10

# Public model name -> (fake upstream mode, i.e. the upstream model after `openai/`, extra litellm_params).
# Public names differ from the upstream ones, so a test can tell which one the upstream saw. Every error mode
# has a group of its own: a deployment goes into cooldown after more than 3 failures a minute, and no group
# here is called more than 3 times by the whole suite.
MODELS = {
    "chat": ("normal", {}),
    "weather": ("tools", {}),
    "passthrough": ("echo", {}),
    "embed": ("normal", {}),
    "broken-stream": ("reset", {}),
    "up-400": ("error-400", {}),
    "up-429": ("error-429", {}),
    "up-500": ("error-500", {}),
    "up-hang": ("hang", {"timeout": 1}),
    # A scripted tool loop for the Claude Code test (tests/fakes/src/agent.rs).
    "agent": ("agent", {}),
}
# Public model name -> `litellm_params.model` of a native-dialect deployment served by the same fake upstream
# (its Anthropic, Gemini, Cohere and Bedrock endpoints), whose mode is the part after the provider prefix.
NATIVE_MODELS = {
    "claude-native": "anthropic/normal",
    "claude-tools": "anthropic/tools",
    "claude-overloaded": "anthropic/error-529",
    "claude-cut": "anthropic/cut",
}
# Points at a port nobody listens on (see `dead_port`).
DEAD_MODEL = "up-dead"
# tollgate's built-in mock provider, no upstream at all.
MOCK_MODELS = {"mock-echo": "mock/echo", "mock-embed": "mock/text-embedding-3-small"}
PUBLIC_MODELS = [*MODELS, DEAD_MODEL, *MOCK_MODELS, *NATIVE_MODELS]


def binary(env: str, name: str) -> str:
    path = os.environ.get(env) or str(ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "debug" / name)
    if not os.access(path, os.X_OK):
        pytest.exit(f"{path} missing: run `cargo build -p tollgate -p tollgate-fakes` first", returncode=1)
    return path


def free_port() -> int:
    """A port that was free a moment ago (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port() -> int:
    """A port with no listener: connecting to it is refused."""
    return free_port()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(path: str, chars: int = 4000) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError as e:
        return f"(no log: {e})"


def model_entry(name: str, upstream_model: str, api_base: str, extra: dict) -> str:
    lines = [
        f"  - model_name: {name}",
        "    litellm_params:",
        f"      model: openai/{upstream_model}",
        f"      api_base: {api_base}",
        f"      api_key: {UPSTREAM_KEY}",
    ]
    lines += [f"      {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines)


def gateway_config(upstream_url: str) -> str:
    api_base = f"{upstream_url}/v1"
    entries = [model_entry(name, mode, api_base, extra) for name, (mode, extra) in MODELS.items()]
    entries.append(model_entry(DEAD_MODEL, "normal", f"http://127.0.0.1:{dead_port()}/v1", {"timeout": 2}))
    entries += [f"  - model_name: {name}\n    litellm_params:\n      model: {model}" for name, model in MOCK_MODELS.items()]
    entries += [
        f"  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {upstream_url}\n      api_key: {UPSTREAM_KEY}"
        for name, model in NATIVE_MODELS.items()
    ]
    return "model_list:\n" + "\n".join(entries) + f"\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """Config and logs; pytest keeps the last few runs' under /tmp/pytest-of-$USER/."""
    return str(tmp_path_factory.mktemp("tollgate-sdk"))


@pytest.fixture(scope="session")
def fake_upstream(workdir):
    """Base URL of the fake upstream, e.g. http://127.0.0.1:PORT (its API is under /v1)."""
    log_path = os.path.join(workdir, "fake-upstream.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [binary("FAKE_UPSTREAM_BIN", "fake-upstream"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=STARTUP_SECONDS)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.startswith("listening on http://"):
            pytest.fail(f"fake-upstream did not announce its port (first line {line!r}):\n{tail(log_path)}", pytrace=False)
        # Keep draining stdout so that the process never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield line.removeprefix("listening on ")
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def gateway(fake_upstream, workdir):
    """Base URL of tollgate, e.g. http://127.0.0.1:PORT, serving `gateway_config`."""
    config_path = os.path.join(workdir, "config.yaml")
    with open(config_path, "w") as f:
        f.write(gateway_config(fake_upstream))
    log_path = os.path.join(workdir, "tollgate.log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [binary("TOLLGATE_BIN", "tollgate"), "--config", config_path, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        failure = wait_ready(url, proc)
        if failure:
            print(f"--- tail of {log_path} ---\n{tail(log_path)}", file=sys.stderr)
            pytest.fail(f"tollgate {failure} (config {config_path}); log tail:\n{tail(log_path)}", pytrace=False)
        yield url
    finally:
        stop(proc)


def wait_ready(url: str, proc: subprocess.Popen) -> str | None:
    """None once GET /health/readiness answers 200, else what went wrong."""
    deadline = time.monotonic() + STARTUP_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} during startup"
        try:
            with urllib.request.urlopen(f"{url}/health/readiness", timeout=1) as r:
                if r.status == 200:
                    return None
                last = f"status {r.status}"
        except urllib.error.HTTPError as e:
            last = f"status {e.code}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    return f"not ready after {STARTUP_SECONDS} s (last readiness probe: {last})"


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=MASTER_KEY, max_retries=0, timeout=10)


@pytest.fixture
def upstream_requests(fake_upstream):
    """A function listing what the fake upstream received since the test started (oldest first)."""

    def recorded():
        with urllib.request.urlopen(f"{fake_upstream}/__fake/requests", timeout=5) as r:
            return json.load(r)

    seen_before = {req["seq"] for req in recorded()}
    return lambda: [req for req in recorded() if req["seq"] not in seen_before]
