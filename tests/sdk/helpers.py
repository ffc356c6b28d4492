"""Shapes the SDK test files share (conftest.py holds the fixtures and the deployments)."""

HI = [{"role": "user", "content": "hi"}]


def collect_tool_calls(stream):
    """Accumulates streamed `delta.tool_calls` by index, as SDK users do; returns (calls, finish_reason)."""
    calls, finish = {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for tc in choice.delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "type": None, "name": "", "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            entry["type"] = tc.type or entry["type"]
            if tc.function and tc.function.name:
                entry["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
        finish = choice.finish_reason or finish
    return calls, finish
