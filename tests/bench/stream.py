"""Streaming latency client for tests/bench/run.sh: sends sequential streaming chat completions and writes, per
request, the time to the first body bytes (the first SSE event) and to the end of the body, in milliseconds.

Usage: stream.py URL MODEL AUTH reused|fresh REQUESTS WARMUP PIECES OUTFILE

- reused: one keep-alive connection for every request (what the OpenAI SDKs and every HTTP client pool do);
- fresh: a new TCP connection for every request, closed after it (the clock includes the connect).

Each response must be HTTP 200 `text/event-stream` with PIECES content pieces, a finish reason and `[DONE]`,
else the script exits 1 naming the failure. OUTFILE gets one `first_ms total_ms` line per measured request and a
last line `# connections N` (how many TCP connections the measured requests used; 1 for reused unless the server
closed the connection). OUTFILE `-` means stdout.
"""

import http.client
import json
import sys
import time
import urllib.parse


def one(conn, path, body, headers, pieces):
    """One request on `conn`; returns (first_ms, total_ms, local port)."""
    started = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    first = None
    raw = bytearray()
    while True:
        data = resp.read1(65536)
        if not data:
            break
        if first is None:
            first = time.perf_counter()
        raw += data
    ended = time.perf_counter()
    port = conn.sock.getsockname()[1] if conn.sock else None
    if resp.status != 200 or not resp.getheader("content-type", "").startswith("text/event-stream"):
        sys.exit(f"stream.py: {path} answered HTTP {resp.status} {resp.getheader('content-type')}: {bytes(raw[:300])!r}")
    text = raw.decode("utf-8", "replace")
    events = [e[len("data: ") :] for e in text.split("\n\n") if e.startswith("data: ")]
    content = finished = 0
    for e in events[:-1]:
        chunk = json.loads(e)
        for choice in chunk.get("choices", []):
            content += "content" in choice["delta"] and bool(choice["delta"]["content"])
            finished += choice.get("finish_reason") is not None
    if not events or events[-1] != "[DONE]" or content != pieces or finished != 1:
        sys.exit(f"stream.py: expected {pieces} content pieces, a finish reason and [DONE]; got {content} pieces, "
                 f"{finished} finish reasons, last event {events[-1:]!r}")
    return (first - started) * 1000.0, (ended - started) * 1000.0, port


def main():
    url, model, auth, mode, requests, warmup, pieces, outfile = sys.argv[1:9]
    requests, warmup, pieces = int(requests), int(warmup), int(pieces)
    if mode not in ("reused", "fresh"):
        sys.exit(f"stream.py: mode is reused or fresh, not {mode}")
    u = urllib.parse.urlsplit(url)
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30) if mode == "reused" else None
    times, ports = [], set()
    for i in range(warmup + requests):
        c = conn or http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        first, total, port = one(c, u.path, body, headers, pieces)
        if conn is None:
            c.close()
        if i >= warmup:
            times.append((first, total))
            ports.add(port)
    if conn is not None:
        conn.close()
    f = sys.stdout if outfile == "-" else open(outfile, "w")
    f.writelines(f"{a:.3f} {b:.3f}\n" for a, b in times)
    f.write(f"# connections {len(ports)}\n")
    f.close()


if __name__ == "__main__":
    main()
