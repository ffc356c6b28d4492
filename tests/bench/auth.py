#!/usr/bin/env python3
"""Benchmark section for issue 15 (must-show 7): what virtual-key auth with rate limits costs per request.

Runnable on its own (tests/bench/auth.sh builds the binaries and calls it). One fake upstream and, in turn, one
tollgate per mode, each pinned to the same CPU, each with one worker and the default log level:

  master     the master key (no store lookup after start-up, no limits): the baseline
  key        a virtual key with rpm_limit, tpm_limit and max_parallel_requests (all far above the load, so nothing
             is refused), in-process limiter
  key+redis  the same key, limits shared through Redis (one Lua script call per request, one per settlement)

For each mode: `--requests` chat completions over `--concurrency` keep-alive connections, after a warm-up that
also fills the key cache. CPU per request is the tollgate process's user+system time (/proc/<pid>/stat, all
threads) over the measured requests; "added" is the difference to `master`. Latency is measured separately, one
connection, one request at a time: the median and p99 of `--latency-requests` requests; for key+redis the added
median over `key` is the Redis round trip(s) on the request path.

It prints a table and never fails on the figures; only a server that does not start or a request that does not
answer 200 stops it. The figures of a loaded or shared machine mean little: the lead runs it on a quiet one.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}]})
MASTER = "sk-bench-master-0001"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"bench: tollgate exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health/readiness")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("bench: tollgate did not become ready")


def call(conn, key, body=BODY):
    conn.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"bench: HTTP {r.status}: {data[:300]!r}")


def load(port, key, total, concurrency):
    per = total // concurrency
    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(per):
            call(c, key)
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * concurrency


def latencies(port, key, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call(c, key)
        out.append((time.perf_counter() - start) * 1e6)
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99) - 1]


def run_mode(args, mode, upstream, work):
    port = free_port()
    redis = ""
    if mode == "key+redis":
        redis = f"router_settings:\n  redis_url: {args.redis}\ntollgate:\n  redis_key_prefix: \"bench-{uuid.uuid4().hex}:\"\n"
    config = os.path.join(work, f"{mode}.yaml")
    with open(config, "w") as f:
        f.write(f"""model_list:
  - model_name: bench
    litellm_params: {{model: openai/normal, api_base: "{upstream}/v1", api_key: sk-bench}}
general_settings:
  master_key: {MASTER}
{redis}""")
    env = dict(os.environ, DATABASE_URL=f"sqlite://{work}/{mode}.db?mode=rwc")
    env.pop("RUST_LOG", None)
    log = open(os.path.join(work, f"{mode}.log"), "w")
    cmd = ["taskset", "-c", args.cpu, args.tollgate, "--config", config, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:
        wait_ready(port, proc)
        key = MASTER
        if mode != "master":
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            limits = {"rpm_limit": 10**9, "tpm_limit": 10**12, "max_parallel_requests": 10**6}
            c.request("POST", "/key/generate", json.dumps(limits), {"Authorization": f"Bearer {MASTER}"})
            r = c.getresponse()
            key = json.loads(r.read())["key"]
        load(port, key, args.concurrency * 20, args.concurrency)  # warm-up: caches, connections, pools
        before, start = cpu_seconds(proc.pid), time.perf_counter()
        done = load(port, key, args.requests, args.concurrency)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(proc.pid) - before
        p50, p99 = latencies(port, key, args.latency_requests)
        return {"mode": mode, "requests": done, "rps": done / elapsed, "cpu_us": cpu / done * 1e6, "p50_us": p50, "p99_us": p99}
    finally:
        proc.terminate()
        proc.wait(timeout=40)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tollgate", required=True)
    p.add_argument("--upstream", required=True, help="the fake-upstream binary")
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--latency-requests", type=int, default=2000)
    p.add_argument("--cpu", default="1", help="CPU the servers are pinned to (taskset -c)")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="tollgate-bench-auth.")
    up_out = open(os.path.join(work, "upstream.out"), "w+")
    upstream_proc = subprocess.Popen(["taskset", "-c", args.cpu, args.upstream, "--host", "127.0.0.1", "--port", "0", "--workers", "1"], stdout=up_out, stderr=subprocess.STDOUT)
    try:
        upstream = None
        for _ in range(200):
            up_out.seek(0)
            for line in up_out.read().splitlines():
                if line.startswith("listening on "):
                    upstream = line.split("listening on ", 1)[1].strip()
            if upstream:
                break
            time.sleep(0.05)
        if not upstream:
            sys.exit("bench: fake-upstream did not print 'listening on ...'")
        rows = [run_mode(args, mode, upstream, work) for mode in ("master", "key", "key+redis")]
    finally:
        upstream_proc.terminate()
        upstream_proc.wait(timeout=10)
    base = rows[0]
    key = rows[1]
    print(f"| mode | requests | req/s | CPU µs/request | added CPU µs over master | p50 µs | p99 µs | added p50 µs |")
    print(f"|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = key if r["mode"] == "key+redis" else base
        print(f"| {r['mode']} | {r['requests']} | {r['rps']:.0f} | {r['cpu_us']:.1f} | {r['cpu_us'] - base['cpu_us']:+.1f} | "
              f"{r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['p50_us'] - ref['p50_us']:+.0f} (over {ref['mode']}) |")
    print(f"\nlogs and configs: {work}")


if __name__ == "__main__":
    main()
