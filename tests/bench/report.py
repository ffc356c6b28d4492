"""Parses the outputs of tests/bench/run.sh (OUTDIR/round<R>/<target>-c<N>.txt from wrk, stream-<target>-<conn>.txt
from stream.py, plus .cpu files) and prints the tables (medians over the rounds; streaming percentiles over every
request of every round); writes them, the machine, the commit, the method and the verdicts against the targets to
DOCFILE as markdown. A `## Notes` section already in DOCFILE is kept as it is.

Also the hedging table, from OUTDIR/hedging.json (tests/bench/hedging.sh), when run.sh ran that section.

Usage: report.py OUTDIR [DOCFILE]
Environment (run.sh sets it): LAYOUT, DURATION, WARMUP, ROUNDS, STREAMS, STREAM_PIECES; COMMIT and COMMIT_DIRTY
(the tree the binaries were built from; without them, git is asked now); LOG_LINES and LOG_BYTES (tollgate's log).
"""

import datetime
import json
import os
import re
import statistics
import subprocess
import sys

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
# "floor" only in runs since it was added; "tollgate-sysalloc" only when run.sh measured it (ALLOC=1).
TARGETS = ["direct", "nginx", "floor", "tollgate", "tollgate-sysalloc"]
NAMES = {"floor": "actix-web floor", "tollgate-sysalloc": "tollgate (system malloc)"}
STREAM_TARGETS = ["direct", "nginx", "tollgate"]
CONNECTIONS = ["reused", "fresh"]
# Targets for tollgate, at concurrency 50.
MAX_ADDED_P50_MS = 0.1
MAX_ADDED_P99_MS = 0.5
MIN_RPS_VS_NGINX = 0.8
# Streams: a stream that takes this long from a fast upstream has met the 40 ms stall of Nagle's algorithm + a
# delayed ACK (issue 12); through tollgate on a reused connection at most this share of streams may.
STALL_MS = 30.0
MAX_STALLED = 0.01
# Translating a stream across dialects (OpenAI in, Anthropic out) may cost at most this much CPU per request more
# than passing the same stream through.
MAX_TRANSLATION_US = 50.0
# Hedging (issue 14, must-show 7): with one of two upstreams stalling, hedged p99 below this multiple of the
# healthy upstream's p50 (both through tollgate).
MAX_HEDGED_P99_RATIO = 2.0
# A measurement during which other processes (or the hypervisor) took more than this share of the machine's CPU
# (the estimate itself wanders by a few percent on a quiet machine: tick accounting)
# is flagged as unreliable.
BUSY = 0.10

LAYOUTS = {
    "shared": "wrk and the streaming client on CPU 0; the fake upstream **and** the server under test (nginx or "
    "tollgate) share CPU 1. The load generator never competes with what it measures, and every cycle the proxy "
    "spends is taken from the upstream, so a proxy's per-request cost shows directly as lost throughput next to "
    "nginx's.",
    "split": "wrk, the streaming client and the fake upstream on CPU 0; the proxy alone on CPU 1, as when a gateway "
    "has its own host. CPU 0 (wrk + upstream) caps throughput near the direct figure, so c=50 shows whether a "
    "proxy with a core of its own keeps up with it.",
}


def parse(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        lat[pct] = float(m.group(1)) * UNITS[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    cpu_us = other = None
    cpu_file = path[: -len(".txt")] + ".cpu"
    if os.path.exists(cpu_file):
        fields = list(map(int, open(cpu_file).read().split()))
        ticks, hz = fields[:2]
        cpu_us = ticks / hz * 1e6 / max(requests, 1)
        if len(fields) >= 4 and fields[3] > 0:
            other = max(0.0, fields[2] / fields[3])
    return {
        "rps": rps,
        "p50": lat["50"],
        "p99": lat["99"],
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
        "cpu_us": cpu_us,
        "other": other,
    }


def median_of_rounds(rounds, name):
    runs = [parse(os.path.join(r, name)) for r in rounds]
    merged = {k: statistics.median(run[k] for run in runs) for k in ("rps", "p50", "p99")}
    cpus = [run["cpu_us"] for run in runs if run["cpu_us"] is not None]
    merged["cpu_us"] = statistics.median(cpus) if cpus else None
    merged["errors"] = sum(run["errors"] for run in runs)
    others = [run["other"] for run in runs if run["other"] is not None]
    merged["other"] = statistics.median(others) if others else None
    merged["other_max"] = max(others) if others else None
    return merged


def rounds_of(out):
    return sorted(os.path.join(out, d) for d in os.listdir(out) if re.fullmatch(r"round\d+", d)) or [out]


def build(out):
    rounds = rounds_of(out)
    concurrencies = sorted(
        {int(m.group(1)) for f in os.listdir(rounds[0]) if (m := re.fullmatch(r"direct-c(\d+)\.txt", f))}
    )
    targets = [t for t in TARGETS if os.path.exists(os.path.join(rounds[0], f"{t}-c{concurrencies[0]}.txt"))]
    header = ["target", "concurrency", "RPS", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "RPS vs nginx",
              "CPU µs/req", "other CPU", "errors"]
    rows, verdicts, errors, nginx_ref, busiest, alloc = [], [], 0, "", 0.0, []
    for c in concurrencies:
        r = {t: median_of_rounds(rounds, f"{t}-c{c}.txt") for t in targets}
        for t in targets:
            a50 = r[t]["p50"] - r["direct"]["p50"]
            a99 = r[t]["p99"] - r["direct"]["p99"]
            ratio = r[t]["rps"] / r["nginx"]["rps"]
            errors += r[t]["errors"]
            rows.append([NAMES.get(t, t), str(c), f"{r[t]['rps']:,.0f}", f"{r[t]['p50']:.3f}", f"{r[t]['p99']:.3f}",
                         "" if t == "direct" else f"{a50:+.3f}", "" if t == "direct" else f"{a99:+.3f}",
                         f"{ratio:.2f}", "" if r[t]["cpu_us"] is None else f"{r[t]['cpu_us']:.1f}",
                         "" if r[t]["other"] is None else f"{r[t]['other']:.0%}", str(r[t]["errors"])])
            busiest = max(busiest, r[t]["other_max"] or 0.0)
            if c == 50 and t == "nginx":
                nginx_ref = f"for reference, nginx at concurrency 50: added p50 {a50:+.3f} ms, added p99 {a99:+.3f} ms"
            if c == 50 and t == "tollgate":
                verdicts = [
                    (f"added p50 ≤ {MAX_ADDED_P50_MS} ms at concurrency 50", f"{a50:+.3f} ms", a50 <= MAX_ADDED_P50_MS),
                    (f"added p99 ≤ {MAX_ADDED_P99_MS} ms at concurrency 50", f"{a99:+.3f} ms", a99 <= MAX_ADDED_P99_MS),
                    (f"RPS ≥ {MIN_RPS_VS_NGINX:.0%} of nginx proxy_pass at concurrency 50", f"{ratio:.0%}",
                     ratio >= MIN_RPS_VS_NGINX),
                ]
        if "tollgate-sysalloc" in r:
            m, g = r["tollgate"], r["tollgate-sysalloc"]
            cpu = (m["cpu_us"] / g["cpu_us"] - 1) if m["cpu_us"] and g["cpu_us"] else None
            alloc.append((c, m["rps"] / g["rps"], m["cpu_us"], g["cpu_us"], cpu))
    return header, rows, verdicts, errors, nginx_ref, busiest, alloc


def percentile(values, pct):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * pct // 100) - 1)]


def parse_stream(path):
    """(first_ms list, total_ms list, connections, other CPU share or None) of one stream.py measurement."""
    first, total, connections = [], [], 0
    for line in open(path):
        if line.startswith("# connections"):
            connections = int(line.split()[-1])
        elif line.strip():
            a, b = line.split()
            first.append(float(a))
            total.append(float(b))
    other = None
    cpu_file = path[: -len(".txt")] + ".cpu"
    if os.path.exists(cpu_file):
        fields = list(map(int, open(cpu_file).read().split()))
        if len(fields) >= 4 and fields[3] > 0:
            other = max(0.0, fields[2] / fields[3])
    return first, total, connections, other


def build_streams(out):
    """The streaming table (percentiles over the requests of all rounds), its verdict and the busiest round."""
    rounds = rounds_of(out)
    if not os.path.exists(os.path.join(rounds[0], "stream-direct-reused.txt")):
        return None, None, None, 0.0, []
    header = ["target", "connection", "first chunk p50 ms", "first chunk p90 ms", "total p50 ms", "total p90 ms",
              "added total p50 ms", f"total ≥ {STALL_MS:g} ms", "requests", "connections", "other CPU"]
    rows, busiest, problems, med, stalled = [], 0.0, [], {}, {}
    for conn in CONNECTIONS:
        for t in STREAM_TARGETS:
            first, total, connections, others = [], [], [], []
            for rd in rounds:
                f, tt, n, other = parse_stream(os.path.join(rd, f"stream-{t}-{conn}.txt"))
                first += f
                total += tt
                connections.append(n)
                if other is not None:
                    others.append(other)
            med[t, conn] = statistics.median(total)
            stalled[t, conn] = sum(x >= STALL_MS for x in total) / len(total)
            busiest = max([busiest] + others)
            if conn == "reused" and max(connections) > 1:
                problems.append(f"{t} closed the reused connection: {max(connections)} connections in one round")
            rows.append([t, conn, f"{statistics.median(first):.2f}", f"{percentile(first, 90):.2f}",
                         f"{med[t, conn]:.2f}", f"{percentile(total, 90):.2f}",
                         "" if t == "direct" else f"{med[t, conn] - med['direct', conn]:+.2f}",
                         f"{stalled[t, conn]:.0%}", str(len(total)),
                         str(sum(connections)), "" if not others else f"{statistics.median(others):.0%}"])
    verdict = (f"streams on a reused connection taking ≥ {STALL_MS:g} ms (the 40 ms stall) ≤ {MAX_STALLED:.0%}",
               f"{stalled['tollgate', 'reused']:.0%} (nginx {stalled['nginx', 'reused']:.0%}); total p50 "
               f"{med['tollgate', 'reused']:.2f} ms, nginx {med['nginx', 'reused']:.2f} ms",
               stalled["tollgate", "reused"] <= MAX_STALLED)
    return header, rows, verdict, busiest, problems


def build_translation(out):
    """The translated-stream table and its verdict, or Nones when run.sh did not measure it (TRANSLATE=0)."""
    rounds = rounds_of(out)
    if not os.path.exists(os.path.join(rounds[0], "translate-passthrough.txt")):
        return None, None, None, 0
    header = ["tollgate stream (c=50)", "RPS", "p50 ms", "p99 ms", "CPU µs/req", "other CPU", "errors"]
    r = {k: median_of_rounds(rounds, f"translate-{k}.txt") for k in ("passthrough", "anthropic")}
    names = {"passthrough": "OpenAI → OpenAI (pass-through)", "anthropic": "OpenAI in → Anthropic out (translated)"}
    rows = [[names[k], f"{v['rps']:,.0f}", f"{v['p50']:.3f}", f"{v['p99']:.3f}",
             "" if v["cpu_us"] is None else f"{v['cpu_us']:.1f}", "" if v["other"] is None else f"{v['other']:.0%}",
             str(v["errors"])] for k, v in r.items()]
    verdict = None
    if r["passthrough"]["cpu_us"] is not None and r["anthropic"]["cpu_us"] is not None:
        extra = r["anthropic"]["cpu_us"] - r["passthrough"]["cpu_us"]
        verdict = (f"translating a stream (OpenAI in, Anthropic out) costs ≤ {MAX_TRANSLATION_US:g} CPU µs per request "
                   "beyond pass-through", f"{extra:+.1f} µs", extra <= MAX_TRANSLATION_US)
    busiest = max(v["other_max"] or 0.0 for v in r.values())
    errors = sum(v["errors"] for v in r.values())
    return header, rows, verdict, (busiest, errors)


def alloc_text(alloc):
    """Sentences on mimalloc against the system allocator, or a note that it was not measured."""
    if not alloc:
        return ["Not measured in this run (`ALLOC=0`): no figure for mimalloc against the system allocator."]
    lines = []
    for i, (c, ratio, cpu_m, cpu_s, cpu) in enumerate(alloc):
        cpu_part = "" if cpu is None else f", at {cpu_m:.1f} against {cpu_s:.1f} CPU µs per request ({cpu:+.0%})"
        if i == 0:
            lines.append(f"At concurrency {c}, tollgate with mimalloc (the default build) served {ratio:.2f}× the "
                         "requests per second of the same code built with the system allocator "
                         f"(`--no-default-features`){cpu_part}.")
        else:
            lines.append(f"At concurrency {c}: {ratio:.2f}×{cpu_part}.")
    return lines


def build_hedging(out):
    """The hedging table (tests/bench/hedging.sh's JSON lines), its verdict and its failed requests; Nones when
    run.sh did not run it (HEDGE=0)."""
    path = os.path.join(out, "hedging.json")
    if not os.path.exists(path):
        return None, None, None, 0
    results = [json.loads(line) for line in open(path) if line.strip()]
    healthy = next(r for r in results if r["model"] == "healthy")["p50_ms"]
    header = ["group", "requests", "p50 ms", "p90 ms", "p99 ms", "p99 / healthy p50", "hedged", "calls per request",
              "errors"]
    names = {"healthy": "healthy upstream alone", "plain": "both, no hedging"}
    rows, ratios = [], []
    for r in results:
        name = names.get(r["model"], r["model"].replace("hedged-", "both, hedge_after_ms "))
        ratio = r["p99_ms"] / healthy
        if r["model"].startswith("hedged-"):
            ratios.append((r["model"].removeprefix("hedged-"), ratio))
        rows.append([name, str(r["requests"]), f"{r['p50_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{r['p99_ms']:.1f}",
                     f"{ratio:.2f}×", f"{r['hedged'] / r['requests']:.0%}", f"{r['calls'] / r['requests']:.2f}",
                     str(r["errors"])])
    value = ", ".join(f"hedge_after_ms {ms}: {ratio:.2f}×" for ms, ratio in ratios)
    verdict = (f"one of two upstreams stalling: hedged p99 < {MAX_HEDGED_P99_RATIO:g}× the healthy upstream's p50 "
               "(at one of the measured delays)", value, any(ratio < MAX_HEDGED_P99_RATIO for _, ratio in ratios))
    return header, rows, verdict, sum(r["errors"] for r in results)


def text_table(header, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def commit():
    """(short sha, dirty): what run.sh recorded before building, else what git says now."""
    if "COMMIT" in os.environ:
        return os.environ["COMMIT"], os.environ.get("COMMIT_DIRTY") == "1"
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") or "unknown", bool(git("status", "--porcelain"))


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    kernel = os.uname().release
    now = datetime.datetime.now(datetime.timezone.utc)
    return cpu, nproc, kernel, now


def main():
    out = sys.argv[1]
    doc = sys.argv[2] if len(sys.argv) > 2 else ""
    layout = os.environ.get("LAYOUT", "shared")
    duration = os.environ.get("DURATION", "10")
    warmup = os.environ.get("WARMUP", "2")
    rounds = int(os.environ.get("ROUNDS", "3"))
    per_measurement = f"{warmup} s warm-up, then {duration} s" + (
        f"; {rounds} interleaved rounds, medians shown" if rounds > 1 else ""
    )
    header, rows, verdicts, errors, nginx_ref, busiest, alloc = build(out)
    s_header, s_rows, s_verdict, s_busiest, s_problems = build_streams(out)
    busiest = max(busiest, s_busiest)
    if s_verdict:
        verdicts.append(s_verdict)
    t_header, t_rows, t_verdict, t_stats = build_translation(out)
    if t_rows:
        busiest = max(busiest, t_stats[0])
        errors += t_stats[1]
    if t_verdict:
        verdicts.append(t_verdict)
    h_header, h_rows, h_verdict, h_errors = build_hedging(out)
    errors += h_errors
    if h_verdict:
        verdicts.append(h_verdict)
    rev, dirty = commit()
    if dirty:
        rev += " + uncommitted changes"
    dirty_warning = "built from a tree with uncommitted changes: these figures belong to no commit"

    verdict_text = [f"{name}: {value} — {'met' if ok else 'NOT met'}" for name, value, ok in verdicts]
    if nginx_ref:
        verdict_text.append(f"({nginx_ref})")
    verdict_text += alloc_text(alloc)
    if dirty:
        verdict_text.append(f"WARNING: {dirty_warning}")
    verdict_text += [f"WARNING: {p}; the reused-connection figures are not what they claim" for p in s_problems]
    if busiest > BUSY:
        verdict_text.append(f"WARNING: other work used up to {busiest:.0%} of the machine's CPU during a measurement; "
                            "figures are unreliable, run again on a quiet machine")
    if errors:
        verdict_text.append(f"WARNING: {errors} failed requests (non-2xx or socket errors); figures are not valid")
    print(f"commit {rev}")
    print(text_table(header, rows))
    print()
    if s_rows:
        print(text_table(s_header, s_rows))
        print()
    if t_rows:
        print(text_table(t_header, t_rows))
        print()
    if h_rows:
        print(text_table(h_header, h_rows))
        print()
    print("\n".join(verdict_text))
    if not doc:
        return

    cpu, nproc, kernel, now = machine()
    notes = ""
    if os.path.exists(doc):
        old = open(doc).read()
        if "\n## Notes" in old:
            notes = "\n" + old[old.index("\n## Notes") + 1 :]
    verdict_md = "\n".join(
        f"- {name}: {value} — {'met' if ok else '**not met**'}" for name, value, ok in verdicts
    )
    if nginx_ref:
        verdict_md += f"\n- ({nginx_ref})"
    if dirty:
        verdict_md += f"\n- **Warning: {dirty_warning}.**"
    for p in s_problems:
        verdict_md += f"\n- **Warning: {p}; the reused-connection figures are not what they claim.**"
    if busiest > BUSY:
        verdict_md += (f"\n- **Other work used up to {busiest:.0%} of the machine's CPU during a measurement: these "
                       "figures are unreliable; run again on a quiet machine.**")
    if errors:
        verdict_md += f"\n- **{errors} requests failed (non-2xx or socket errors): these figures are not valid.**"
    streams = int(os.environ.get("STREAMS", "0"))
    pieces = os.environ.get("STREAM_PIECES", "20")
    if s_rows:
        streaming_md = f"""{streams} sequential streaming requests per target and connection kind in each round, after 5
unmeasured ones; percentiles over all {len(rounds_of(out)) * streams} requests of the rounds.

{md_table(s_header, s_rows)}"""
    else:
        streaming_md = "Not measured in this run (`STREAMS=0`)."
    if t_rows:
        translation_md = f"""The same {pieces}-piece stream through tollgate at concurrency 50 (wrk reads each chunked body to its end):
passed through from the OpenAI fake's `stream-{pieces}`, and translated from the Anthropic fake's `stream-{pieces}`
(named events: `message_start`, {pieces} `content_block_delta`s, `message_delta`, `message_stop`) into OpenAI
chunks by the canonical path (SSE framer, Anthropic decoder, OpenAI chunk encoder, accounting on the canonical
events). The difference in CPU µs per request is what translation costs.

{md_table(t_header, t_rows)}"""
    else:
        translation_md = "Not measured in this run (`TRANSLATE=0`)."
    if h_rows:
        hedging_md = f"""Two fake upstreams behind one model group (simple-shuffle, equal weights): one answers in ~20 ms
(`delay-20`), the other stalls for 2 s (`delay-2000`). p99 / healthy p50 compares each group's p99 with the p50
of the healthy upstream alone, both through tollgate.

{md_table(h_header, h_rows)}"""
    else:
        hedging_md = "Not measured in this run (`HEDGE=0`)."
    log_lines, log_bytes = int(os.environ.get("LOG_LINES", "0")), int(os.environ.get("LOG_BYTES", "0"))
    log_md = (f" In this run it wrote {log_lines:,} such lines ({log_bytes / log_lines:.0f} bytes each on average)."
              if log_lines else "")
    with open(doc, "w") as f:
        f.write(f"""# Benchmarks

Written by `tests/bench/run.sh`; do not edit the figures by hand, run it again.

- Date: {now:%Y-%m-%d %H:%M} UTC
- Commit: `{rev}` (the tree the measured binaries were built from)
- Machine: {nproc} CPUs (`nproc`), {cpu}, Linux {kernel}

## Targets (tollgate, concurrency 50; streams)

{verdict_md}

## Results

| | |
|---|---|
| layout | `{layout}`: {LAYOUTS.get(layout, "")} |
| per measurement | {per_measurement} |

{md_table(header, rows)}

## Allocator

{" ".join(alloc_text(alloc))}

## Streaming

{streaming_md}

## Translated streams

{translation_md}

## Hedging

{hedging_md}

## Method

One small non-streaming chat completion (`POST /v1/chat/completions`, ~60-byte JSON body, ~330-byte JSON reply)
against the fake OpenAI upstream (`fake-upstream`, release build, `--workers 1`), measured in one run through:

- **direct**: wrk straight to the fake upstream (`"model":"normal"`);
- **nginx**: through nginx `proxy_pass` (1 worker process, `upstream` block with `keepalive 64`,
  `proxy_http_version 1.1`, `Connection ""`, access log off): the floor any reverse proxy is measured against;
- **actix-web floor**: `bare-proxy` (`tests/fakes/src/bin/bare_proxy.rs`, release build, one worker), the least a
  proxy on tollgate's required stack can do: an actix-web handler that takes the body as bytes, writes it to the
  upstream over a kept-alive connection and returns the answer's status, content type and body; no JSON, no
  log, no auth, no routing, no deadlines. What tollgate costs beyond this row is tollgate's own work, not
  actix-web's;
- **tollgate**: through tollgate as shipped (release build, default features, `--workers 1`, master-key auth,
  `"model":"bench"` routed to `openai/normal`; the body is parsed and rewritten for the upstream, usage read from
  the response, request id, stats and cost recorded). It runs at its default log level (`RUST_LOG` unset, i.e.
  `info`), so the figures include the per-call `upstream call finished` log line, written to stdout redirected
  to a file, as a deployment's stdout goes to a log collector.{log_md}
- **tollgate (system malloc)**: the same code built with `--no-default-features`, i.e. without the `mimalloc`
  feature and so with the system allocator (glibc malloc), run the same way (`ALLOC=0` skips it).

Load: `wrk -t1 -c1` and `wrk -t1 -c50` with `--latency` and a Lua script that sets the method, body and headers
(`tests/bench/post.lua`). Every process is pinned with `taskset` (layout above) so nothing migrates between the two
cores; the default `shared` layout gives wrk a core of its own, so the load generator (which drives the fake
upstream at about twice the rate either proxy reaches) is never what saturates, and makes the proxy pay for its CPU
out of the upstream's core, which turns per-request cost into a throughput ratio against nginx. In trials it also
repeated better than `split` (`LAYOUT=split`), where wrk and the upstream share a core. Each target gets its own
warm-up at each concurrency before it is measured; with several rounds the targets are interleaved, so a slow
spell on the VM hits all of them rather than one. Before measuring, one request through each target must return
HTTP 200 with a `chat.completion` (and a streamed one must arrive whole), tollgate must have written its per-call
log line, and the run aborts if any server dies.

Streams: `tests/bench/stream.py` (Python's `http.client`, pinned with wrk's core) sends sequential
`"stream":true` requests to the fake's `stream-{pieces}` mode: a role chunk, {pieces} content chunks, a finish
chunk and `[DONE]`, each event in its own write, back to back (a fast upstream that flushes every token). The
fake sets `TCP_NODELAY`, as real LLM servers do; nginx streams through a second `server` block with
`proxy_buffering off` (its `tcp_nodelay` is on by default); tollgate routes `"model":"bench-stream"` to it. Each
target is measured over one **reused** keep-alive connection (what the OpenAI SDKs do) and over a **fresh**
connection per request. "first chunk" is the time from sending the request (including the connect, on a fresh
connection) to the first bytes of the body; "total" to the end of the body; every response is checked to be the
whole stream. "total ≥ {STALL_MS:g} ms" is the share of streams that took that long: from this upstream, only a stall
does. "connections" counts the TCP connections the measured requests used (one per round when reused).
The reused case is the one that regresses: a server that writes each event as it comes without `TCP_NODELAY`
holds the second small write back until the client ACKs the first (Nagle's algorithm), and on an established
connection the client delays that ACK by up to 40 ms (issue 12); a fresh connection ACKs at once at first, and
so hides it.

Hedging: `tests/bench/hedging.sh` (also `tests/bench/run.sh hedging` on its own, which prints and writes no doc)
starts two more fake upstreams and one tollgate, unpinned, with four model groups: the healthy upstream alone
(its p50 is "the healthy latency"), both upstreams without hedging, and both with
`router_settings.hedge_after_ms` at each delay of `HEDGE_AFTER_MS` (default 10 and 50 ms). `tests/bench/hedge.py`
sends 400 non-streaming requests per group from 20 threads, each on its own keep-alive connection, after 20
unmeasured ones; percentiles are nearest-rank over the measured requests. "hedged" is the share of responses with
`x-tollgate-hedged: true`, "calls per request" the mean `x-tollgate-attempts`: what the tail latency cost in
upstream calls. A delay below the healthy latency hedges nearly every call (about two calls per request); a
delay above it hedges only the calls to the stalling upstream, and its p99 is about the delay plus the healthy
latency.

Columns: "added" is the target's latency minus the direct latency at the same concurrency (or connection kind);
"RPS vs nginx" is throughput relative to nginx at the same concurrency; "CPU µs/req" is the user+system CPU time the
server under test (the fake upstream for direct, the nginx worker or tollgate otherwise, all threads, the log
writer's included) spent per request during the measurement, from `/proc/<pid>/stat` (10 ms ticks, so about ±2% at
these request counts): the least noisy figure, and the one to compare proxies by; "other CPU" is the share of the
machine's CPU time (both cores, over the measurement's wall time) used by neither the benchmark (wrk, the streaming
client, servers) nor its helpers, i.e. other work or hypervisor steal, from `/proc/stat` (median over rounds; above
{BUSY:.0%} in any round the run is flagged); "errors" counts non-2xx responses and socket errors.

Caveats: this is a 2-vCPU VM and runs vary by roughly 10%; compare figures within one run. At concurrency 50 the
shared CPU is saturated, so p50/p99 there are queueing time (50 requests in flight ÷ throughput) and "added"
latency restates the throughput gap (see nginx's own added latency under Targets): the latency targets assume a
proxy with spare CPU, which this layout does not give it. Concurrency 1 shows per-request latency without
queueing. A default run (3 rounds of 10 s, `ALLOC=1`, 200 streams) takes about 8 minutes once built.
{notes}""")


if __name__ == "__main__":
    main()
