"""Latency client for the hedging section of tests/bench/run.sh (tests/bench/hedging.sh): sends REQUESTS
non-streaming chat completions for MODEL from CONCURRENCY threads (one keep-alive connection each) and prints one
JSON line: the latency percentiles in milliseconds (nearest rank), the failed requests, and how many responses
said they were hedged (`x-tollgate-hedged`) and the calls they took (`x-tollgate-attempts`).

Usage: hedge.py URL AUTH MODEL REQUESTS CONCURRENCY

A response counts as failed unless it is HTTP 200 with a `chat.completion`.
"""

import http.client
import json
import math
import sys
import threading
import time
import urllib.parse


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def main():
    url, auth, model, requests, concurrency = sys.argv[1:6]
    requests, concurrency = int(requests), int(concurrency)
    u = urllib.parse.urlsplit(url)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {auth}"}
    lock = threading.Lock()
    left = [requests]
    latencies, failures, hedged, attempts = [], [], [0], [0]

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            started = time.perf_counter()
            try:
                conn.request("POST", u.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
                with lock:
                    failures.append(repr(e))
                continue
            ms = (time.perf_counter() - started) * 1000.0
            with lock:
                if resp.status != 200 or b'"chat.completion"' not in data:
                    failures.append(f"HTTP {resp.status}: {data[:200]!r}")
                    continue
                latencies.append(ms)
                hedged[0] += resp.getheader("x-tollgate-hedged") == "true"
                attempts[0] += int(resp.getheader("x-tollgate-attempts") or 0)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not latencies:
        sys.exit(f"hedge.py: every request to {model} failed, e.g. {failures[:1]}")
    print(json.dumps({
        "model": model,
        "requests": len(latencies),
        "errors": len(failures),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "hedged": hedged[0],
        "calls": attempts[0],
        "first_error": failures[0] if failures else None,
    }))


if __name__ == "__main__":
    main()
