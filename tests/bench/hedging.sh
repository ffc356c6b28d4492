#!/usr/bin/env bash
# The hedging section of the benchmark (issue 14, must-show 7): two fake upstreams behind one model group with
# simple-shuffle, one answering in ~20 ms (`delay-20`) and one stalling for 2 s (`delay-2000`). Measured in one
# run through tollgate: the healthy deployment alone (the healthy latency), the group without hedging, and the
# group with `router_settings.hedge_after_ms` at each delay of HEDGE_AFTER_MS. Prints p50/p90/p99 and p99 over the
# healthy p50. Not a test: it fails only when a server cannot be started or requests fail.
#
# Usage: tests/bench/run.sh hedging   (or this script directly; run.sh also runs it as a section of a full run)
# Environment:
#   HEDGE_REQUESTS=N     requests per group (default 400)
#   HEDGE_CONCURRENCY=N  client threads, each on its own keep-alive connection (default 20)
#   HEDGE_AFTER_MS="a b" the hedge delays to measure, one group each (default "10 50")
#   HEDGE_OUT=file       also write the JSON lines (one per group) there (run.sh's report reads them)
#   HEDGE_BUILD=0        use the release binaries already built (run.sh has just built them)
# Takes about 30 s once built: the group without hedging waits out its stalls (half of 400 requests × 2 s ÷ 20).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
requests="${HEDGE_REQUESTS:-400}"
concurrency="${HEDGE_CONCURRENCY:-20}"
read -r -a delays <<<"${HEDGE_AFTER_MS:-10 50}"
[[ "$requests" =~ ^[1-9][0-9]*$ && "$concurrency" =~ ^[1-9][0-9]*$ && ${#delays[@]} -gt 0 ]] ||
  { echo "HEDGE_REQUESTS and HEDGE_CONCURRENCY are positive counts, HEDGE_AFTER_MS at least one delay" >&2; exit 2; }
for d in "${delays[@]}"; do
  [[ "$d" =~ ^[1-9][0-9]*$ ]] || { echo "HEDGE_AFTER_MS: $d is not a positive number of milliseconds" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }

target="${CARGO_TARGET_DIR:-$root/target}/release"
if [[ "${HEDGE_BUILD:-1}" == 1 ]]; then
  echo "building release binaries (cargo build --release -p tollgate -p tollgate-fakes)" >&2
  cargo build --release -q -p tollgate -p tollgate-fakes
fi
work="$(mktemp -d /tmp/tollgate-hedging.XXXXXX)"
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT
die() {
  echo "hedging bench: $*" >&2
  local f
  for f in "$work"/*.out "$work"/tollgate.err; do
    [[ -s "$f" ]] && { echo "--- last lines of $f" >&2; tail -5 "$f" >&2; }
  done
  exit 1
}

start_fake() { # name; sets fake_url
  "$target/fake-upstream" --host 127.0.0.1 --port 0 --workers 1 >"$work/$1.out" 2>&1 &
  pids+=($!)
  local _
  for _ in $(seq 1 100); do grep -q "^listening on " "$work/$1.out" 2>/dev/null && break; sleep 0.05; done
  fake_url="$(sed -n 's/^listening on //p' "$work/$1.out" | head -1)"
  [[ -n "$fake_url" ]] || die "fake-upstream $1 did not print 'listening on ...'"
}
start_fake fast
fast="$fake_url"
start_fake stalling
stalling="$fake_url"

deployment() { # group upstream-model url
  printf '  - model_name: %s\n    litellm_params: {model: openai/%s, api_base: %s/v1, api_key: sk-bench}\n' "$1" "$2" "$3"
}
{
  echo "model_list:"
  deployment healthy delay-20 "$fast"
  for g in plain "${delays[@]/#/hedged-}"; do
    deployment "$g" delay-20 "$fast"
    deployment "$g" delay-2000 "$stalling"
  done
  echo "router_settings:"
  echo "  routing_strategy: simple-shuffle"
  # A stalled call is slow, not failed: nothing cools down, so the stalling deployment keeps its share.
  echo "  hedge_after_ms: {$(for d in "${delays[@]}"; do printf 'hedged-%s: %s, ' "$d" "$d"; done | sed 's/, $//')}"
  echo "general_settings:"
  echo "  master_key: sk-bench-master"
} >"$work/tollgate.yaml"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
env -u RUST_LOG "$target/tollgate" --config "$work/tollgate.yaml" --host 127.0.0.1 --port "$port" --workers 1 \
  >"$work/tollgate.log" 2>"$work/tollgate.err" &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health/readiness" && break; sleep 0.1; done
url="http://127.0.0.1:$port/v1/chat/completions"

results="$work/hedging.json"
: >"$results"
for g in healthy plain "${delays[@]/#/hedged-}"; do
  python3 tests/bench/hedge.py "$url" sk-bench-master "$g" 20 "$concurrency" >/dev/null || die "warm-up of $g failed"
  echo "hedging: $requests requests to group $g, $concurrency at a time" >&2
  python3 tests/bench/hedge.py "$url" sk-bench-master "$g" "$requests" "$concurrency" >>"$results" ||
    die "measuring $g failed"
done
[[ -n "${HEDGE_OUT:-}" ]] && cp "$results" "$HEDGE_OUT"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
healthy = next(r for r in rows if r["model"] == "healthy")["p50_ms"]
print(f"{'group':<12} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p99/healthy':>11} {'hedged':>7} {'calls/req':>9}")
for r in rows:
    print(f"{r['model']:<12} {r['requests']:>8} {r['errors']:>6} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} "
          f"{r['p99_ms'] / healthy:>10.2f}x {r['hedged'] / r['requests']:>7.0%} {r['calls'] / r['requests']:>9.2f}")
if any(r["errors"] for r in rows):
    print("WARNING: some requests failed; figures are not valid")
PY
echo "raw results and server logs in $work" >&2
