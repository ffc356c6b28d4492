#!/usr/bin/env bash
# Benchmark (issue 16, must-show 7): the CPU cost of the request log. Runs tollgate (release, one worker, pinned to
# CPU 1 with the fake upstream) twice per round against the same upstream: as shipped (every request journaled and
# written to the SQLite store) and with `general_settings.disable_spend_logs: true` (metrics only). wrk (CPU 0) sends
# small non-streaming chat completions at concurrency 50; CPU µs per request is the tollgate process's user+system
# time over the requests served. Prints figures; writes no doc.
#
# Usage: tests/bench/logging.sh [seconds per measurement, default 10] (ROUNDS=N, default 2)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${1:-10}"
rounds="${ROUNDS:-2}"
bench=logging
# shellcheck source=tests/bench/pinned.sh
source tests/bench/pinned.sh
export BODY='{"model":"bench","messages":[{"role":"user","content":"hi"}]}' AUTH=sk-bench-logging-master
measure() { # name extra-general-settings
  local port pid t0 t1 reqs rps
  port="$(free_port)"
  printf 'model_list:\n  - model_name: bench\n    litellm_params: {model: openai/normal, api_base: http://127.0.0.1:%s/v1, api_key: sk-bench}\ngeneral_settings: {master_key: %s%s}\n' \
    "$up_port" "$AUTH" "$2" >"$work/$1.yaml"
  rm -rf "$work/$1.db"*
  env -u RUST_LOG DATABASE_URL="sqlite://$work/$1.db?mode=rwc" taskset -c 1 "$target/tollgate" --config "$work/$1.yaml" \
    --host 127.0.0.1 --port "$port" --workers 1 >"$work/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/readiness" >/dev/null && break; sleep 0.1; done
  taskset -c 0 wrk -t1 -c50 -d2s -s tests/bench/post.lua "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  taskset -c 0 wrk -t1 -c50 -d"${duration}s" -s tests/bench/post.lua "http://127.0.0.1:$port/v1/chat/completions" >"$work/$1.wrk"
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  reqs=$(grep -o '[0-9]* requests in' "$work/$1.wrk" | awk '{print $1}')
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.wrk")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local ticks; ticks=$(getconf CLK_TCK)
  printf '%-22s RPS %10s   CPU µs/request %6.1f\n' "$1" "$rps" "$(python3 -c "print(($t1 - $t0) * 1e6 / $ticks / $reqs)")"
}
for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds"
  measure logging-on ""
  measure logging-off ", disable_spend_logs: true"
done
echo "target (issue 16): logging on adds ≤ 5 CPU µs per request over logging off"
