"""Starts the fake upstream and tollgate as real processes, once per session, for the SDK tests.

Binaries come from TOLLGATE_BIN / FAKE_UPSTREAM_BIN (run.sh sets both), else target/debug/ at the repo root.
"""

import contextlib
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

# Every dialect tollgate speaks upstream -> its provider prefix. Each gets the deployments `<dialect>-<role>`, whose
# fake mode (the upstream model after the prefix) is DIALECT_ROLES[role], all served by the one fake upstream at
# the provider's real paths; `dialect_params` says how each is addressed and authenticated.
DIALECTS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex": "vertex_ai",
    "bedrock": "bedrock",
    "cohere": "cohere",
    "azure": "azure",
}
DIALECT_ROLES = {"chat": "normal", "tools": "tools", "429": "error-429"}
DIALECT_MODELS = {
    f"{dialect}-{role}": f"{prefix}/{mode}"
    for dialect, prefix in DIALECTS.items()
    for role, mode in DIALECT_ROLES.items()
}
# Bedrock picks the embeddings body by the model family in the id; the fake answers any id but `cohere.embed`
# as Titan.
DIALECT_MODELS["bedrock-titan"] = "bedrock/amazon.titan-embed-text-v2:0"
VERTEX_PROJECT = "tollgate-test"
VERTEX_LOCATION = "us-central1"
AZURE_API_VERSION = "2024-10-21"
# The key pair the Bedrock fake verifies SigV4 signatures with (tests/fakes/src/bedrock/sigv4.rs).
AWS_ACCESS_KEY_ID = "AKIDFAKEBEDROCK"
AWS_SECRET_ACCESS_KEY = "fake/bedrock+secret/access/key/0000000000"
# tollgate fetches the Vertex AI token in the background at start-up; until then Vertex deployments answer 503.
VERTEX_TOKEN_SECONDS = 5
PUBLIC_MODELS = [*MODELS, DEAD_MODEL, *MOCK_MODELS, *NATIVE_MODELS, *DIALECT_MODELS]


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


def model_entry(name: str, params: dict) -> str:
    """One `model_list` entry; values are written as JSON, which YAML reads as the same scalars."""
    lines = [f"  - model_name: {name}", "    litellm_params:"]
    lines += [f"      {k}: {json.dumps(v)}" for k, v in params.items()]
    return "\n".join(lines)


def dialect_params(prefix: str, upstream_url: str, vertex_credentials: str) -> dict:
    """The `litellm_params` besides `model` of a `prefix/` deployment served by the fake upstream (each provider
    reads `api_base` as its own base URL, see its `new` in server/src/providers/)."""
    key = {"api_key": UPSTREAM_KEY}
    return {
        "openai": {"api_base": f"{upstream_url}/v1", **key},
        "anthropic": {"api_base": upstream_url, **key},
        "gemini": {"api_base": f"{upstream_url}/v1beta", **key},
        "vertex_ai": {
            "api_base": upstream_url,
            "vertex_project": VERTEX_PROJECT,
            "vertex_location": VERTEX_LOCATION,
            "vertex_credentials": vertex_credentials,
        },
        "bedrock": {
            "api_base": upstream_url,
            "aws_access_key_id": AWS_ACCESS_KEY_ID,
            "aws_secret_access_key": AWS_SECRET_ACCESS_KEY,
            "aws_region_name": "us-east-1",
        },
        "cohere": {"api_base": upstream_url, **key},
        "azure": {"api_base": upstream_url, "api_version": AZURE_API_VERSION, **key},
    }[prefix]


def gateway_config(upstream_url: str, vertex_credentials: str) -> str:
    def params(prefix: str) -> dict:
        return dialect_params(prefix, upstream_url, vertex_credentials)

    openai_upstream = params("openai")
    entries = [
        model_entry(name, {"model": f"openai/{mode}", **openai_upstream, **extra}) for name, (mode, extra) in MODELS.items()
    ]
    dead_base = f"http://127.0.0.1:{dead_port()}/v1"
    entries.append(model_entry(DEAD_MODEL, {"model": "openai/normal", "api_base": dead_base, "api_key": UPSTREAM_KEY, "timeout": 2}))
    entries += [model_entry(name, {"model": model}) for name, model in MOCK_MODELS.items()]
    entries += [
        model_entry(name, {"model": model, **params(model.split("/")[0])})
        for name, model in {**NATIVE_MODELS, **DIALECT_MODELS}.items()
    ]
    # No retries: these tests see each upstream answer as it is (tests/tests/routing.rs covers retries).
    return (
        "model_list:\n"
        + "\n".join(entries)
        + f"\ngeneral_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  num_retries: 0\n"
    )


def write_vertex_credentials(upstream_url: str, workdir: str) -> str:
    """Writes a service-account file whose `token_uri` is the fake's `/token` and whose key is the Gemini
    provider's test key (tollgate signs its token requests with it); returns its path."""
    path = os.path.join(workdir, "vertex-service-account.json")
    credentials = {
        "type": "service_account",
        "project_id": VERTEX_PROJECT,
        "private_key_id": "kid-sdk-tests",
        "private_key": (ROOT / "server/src/providers/gemini/test_key.pem").read_text(),
        "client_email": f"gateway@{VERTEX_PROJECT}.iam.gserviceaccount.com",
        "client_id": "123",
        "token_uri": f"{upstream_url}/token",
    }
    with open(path, "w") as f:
        json.dump(credentials, f)
    return path


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
    config = gateway_config(fake_upstream, write_vertex_credentials(fake_upstream, workdir))
    with running_tollgate(config, workdir, "tollgate") as url:
        yield url


@contextlib.contextmanager
def running_tollgate(config: str, workdir: str, name: str, env: dict | None = None):
    """Runs tollgate on `config` (written to `<workdir>/<name>.yaml`, its log to `<name>.log`, its embedded store
    in `workdir`) with `env` added to the environment; yields its base URL once it is ready, stops it after."""
    config_path = os.path.join(workdir, f"{name}.yaml")
    with open(config_path, "w") as f:
        f.write(config)
    log_path = os.path.join(workdir, f"{name}.log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [binary("TOLLGATE_BIN", "tollgate"), "--config", config_path, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,  # the embedded store (tollgate.db) lands in the test's own directory
            env={**os.environ, **(env or {})},
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


@pytest.fixture(scope="session")
def vertex_ready(gateway):
    """Waits until tollgate has its Vertex AI token (a chat on `vertex-chat` succeeds), at most
    VERTEX_TOKEN_SECONDS; before that, Vertex deployments answer 503 `deployment_not_ready`."""
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=MASTER_KEY, max_retries=0, timeout=10)
    deadline = time.monotonic() + VERTEX_TOKEN_SECONDS
    while True:
        try:
            client.chat.completions.create(model="vertex-chat", messages=[{"role": "user", "content": "hi"}])
            return
        except openai.APIStatusError as e:
            waited_too_long = time.monotonic() > deadline
            if e.code != "deployment_not_ready" or waited_too_long:
                why = f"still not ready after {VERTEX_TOKEN_SECONDS} s" if waited_too_long else "failed"
                pytest.fail(f"vertex-chat {why}: {e.status_code} {e.message}", pytrace=False)
        time.sleep(0.05)


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
