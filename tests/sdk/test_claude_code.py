"""The real Claude Code CLI against tollgate's `/v1/messages`, backed by an OpenAI-dialect fake (`agent` mode in
tests/fakes/src/agent.rs): the model asks for one `Read` tool call, Claude Code runs it and sends the result back,
and the final answer is the fake's. run.sh installs the pinned CLI (CLAUDE_CODE_BIN)."""

import json
import os
import subprocess

import pytest

from conftest import MASTER_KEY

SECRET = "ZEBRA-4711"


@pytest.fixture
def claude_code():
    path = os.environ.get("CLAUDE_CODE_BIN", "")
    if not os.access(path, os.X_OK):
        pytest.fail(f"Claude Code binary missing at {path!r}: tests/sdk/run.sh installs it", pytrace=False)
    return path


def test_claude_code_finishes_a_tool_loop_through_tollgate(gateway, claude_code, tmp_path, upstream_requests):
    note = tmp_path / "note.txt"
    note.write_text(f"the secret word is {SECRET}\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=gateway,
        ANTHROPIC_API_KEY=MASTER_KEY,
        ANTHROPIC_MODEL="agent",
        ANTHROPIC_SMALL_FAST_MODEL="agent",
        ANTHROPIC_DEFAULT_HAIKU_MODEL="agent",
        ANTHROPIC_DEFAULT_SONNET_MODEL="agent",
        ANTHROPIC_DEFAULT_OPUS_MODEL="agent",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    prompt = f"Read the file {note} and tell me the secret word in it."
    proc = subprocess.run(
        [claude_code, "-p", prompt, "--model", "agent", "--output-format", "json", "--max-turns", "4", "--allowedTools", "Read"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output (exit {proc.returncode}); stderr:\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert result["is_error"] is False, result
    assert result["result"] == f"The secret word is {SECRET}.", result
    # The loop went through the OpenAI-dialect upstream: a Read call, then a turn carrying its result.
    chats = [r["body"] for r in upstream_requests() if r["path"].endswith("/chat/completions") and r["body"].get("model") == "agent"]
    assert any(m.get("role") == "tool" and SECRET in json.dumps(m) for c in chats for m in c["messages"]), chats[-1:]
