#!/usr/bin/env bash
# Profile (issue 12): instructions per proxied request, counted by `valgrind --tool=callgrind`, and where they go.
# Unlike CPU time on a shared 2-vCPU VM (about ±10% between runs), the count repeats within about 1% for the same
# binary and load, so it shows what a change to the request path removed. It is not time: `rep movsb` and
# `rep stosb` count once per byte, and the kernel's share (about half of the CPU time per request,
# docs/benchmarks.md Notes) is not seen.
#
# One fake upstream and one tollgate (release build, one worker, master key, the default log level and request
# log, as shipped), tollgate under callgrind with instrumentation off until 200 warm-up requests are done; then
# N small non-streaming chat completions from 10 keep-alive connections (Python's http.client), then the counts
# are dumped. Prints instructions per request and the top functions by inclusive count (per request); the raw
# profile stays in the printed directory for `callgrind_annotate`. Before tollgate, the same requests go through
# `bare-proxy` (run.sh's "actix-web floor": actix-web forwarding the body's bytes, nothing else) under callgrind,
# and its count is printed beside tollgate's: what the stack costs, against which tollgate's own work shows.
#
# Usage: tests/bench/instructions.sh [requests, default 3000]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
requests="${1:-3000}"
[[ "$requests" =~ ^[1-9][0-9]*$ ]] || { echo "requests is a positive count" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-$root/target}/release"
echo "building release binaries (cargo build --release -p tollgate -p tollgate-fakes)" >&2
cargo build --release -q -p tollgate -p tollgate-fakes
work="$(mktemp -d /tmp/tollgate-instructions.XXXXXX)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port="$(free_port)"
port="$(free_port)"
"$target/fake-upstream" --host 127.0.0.1 --port "$up_port" --workers 1 >"$work/upstream.log" 2>&1 &
pids+=($!)
printf 'model_list:\n  - model_name: bench\n    litellm_params: {model: openai/normal, api_base: http://127.0.0.1:%s/v1, api_key: sk-bench}\ngeneral_settings: {master_key: sk-bench-instructions}\n' \
  "$up_port" >"$work/config.yaml"
# send PORT CONNECTIONS REQUESTS-PER-CONNECTION MODEL [KEY]: small chat completions, each answer checked.
send() {
  python3 - "$@" <<'PY'
import http.client, sys, threading
port, connections, each = (int(a) for a in sys.argv[1:4])
model, key = sys.argv[4], (sys.argv[5] if len(sys.argv) > 5 else "")
body = '{"model":"%s","messages":[{"role":"user","content":"hi"}]}' % model
headers = {"Content-Type": "application/json"}
if key:
    headers["Authorization"] = "Bearer " + key
def run():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(each):
        c.request("POST", "/v1/chat/completions", body=body, headers=headers)
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
threads = [threading.Thread(target=run) for _ in range(connections)]
[t.start() for t in threads]
[t.join() for t in threads]
PY
}
measured=$((requests / 10 * 10))
# profile NAME PORT PID MODEL [KEY]: 200 warm-up requests uncounted, then the measured ones; sets `profile` to the
# dump and `total` to its instruction count.
profile() {
  local name=$1 port=$2 pid=$3
  shift 3
  send "$port" 1 200 "$@"
  callgrind_control -i on "$pid" >/dev/null
  send "$port" 10 $((requests / 10)) "$@"
  # tollgate's request log writer turns (journal, SQLite batch) run on an interval: let the last one happen.
  sleep 2
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  profile="$(ls "$work/$name.out".* | head -1)"
  total="$(callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
}
wait_ready() { # url
  for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "timed out waiting for $1" >&2
  exit 1
}

# The floor first: bare-proxy (tests/fakes/src/bin/bare_proxy.rs), the least an actix-web proxy can do, so that
# tollgate's count below reads as the stack's share plus tollgate's own work.
bare_port="$(free_port)"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/bare.out" "$target/bare-proxy" \
  --host 127.0.0.1 --port "$bare_port" --upstream "127.0.0.1:$up_port" >"$work/bare.log" 2>"$work/bare-valgrind.log" &
bare_pid=$!
pids+=("$bare_pid")
wait_ready "http://127.0.0.1:$bare_port/"
profile bare "$bare_port" "$bare_pid" normal
floor="$total"
kill "$bare_pid"

env -u RUST_LOG DATABASE_URL="sqlite://$work/tollgate.db?mode=rwc" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$work/callgrind.out" "$target/tollgate" --config "$work/config.yaml" --host 127.0.0.1 \
  --port "$port" --workers 1 >"$work/tollgate.log" 2>"$work/valgrind.log" &
pid=$!
pids+=("$pid")
wait_ready "http://127.0.0.1:$port/health/readiness"
profile callgrind "$port" "$pid" bench sk-bench-instructions
echo "commit $(git rev-parse --short HEAD)$([[ -n "$(git status --porcelain)" ]] && echo ' (uncommitted changes)')"
echo "requests measured: $measured; instructions: $total; per request: $((total / measured))"
echo "the actix-web floor (bare-proxy, the same requests): $((floor / measured)) per request"
echo
echo "top functions by inclusive instructions per request:"
callgrind_annotate --inclusive=yes "$profile" 2>/dev/null | awk -v n="$measured" '
  /^ *[0-9,]+ \(/ {
    v = $1; gsub(",", "", v); line = $0
    sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", line); sub(/ \[[^]]*\]$/, "", line); sub(/^\?\?\?:/, "", line)
    printf "%10d  %s\n", v / n, substr(line, 1, 160) }' |
  grep -v -E 'tokio::runtime|std::|core::ops::function|start_thread|clone3|LocalKey|LocalSet|Scoped' | awk 'NR <= 60'
echo
echo "profile: $profile (callgrind_annotate --inclusive=yes --tree=calling $profile)"
