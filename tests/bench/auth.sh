#!/usr/bin/env bash
# Benchmark (issue 15, must-show 7): what a virtual key with rate limits and a budget costs per request over the
# master key, in-process and with Redis. Prints a Markdown table; writes no doc.
#
# One fake upstream and, in turn, one tollgate per mode, both pinned to CPU 1 (release build, one worker, the
# default log level and request log, as shipped); wrk runs on CPU 0. Modes:
#   master     the master key: no key lookup after start-up, no limits, no budget (the baseline)
#   key        a virtual key with rpm_limit, tpm_limit, max_parallel_requests and max_budget + budget_duration, all
#              far above the load (nothing is refused; every request is admitted, reserves its maximum cost and
#              settles its real cost); in-process limiter and budget ledger
#   key+redis  the same key with `router_settings.redis_url`: one Lua call per admission and per settlement, the
#              budget leased from Redis in chunks
# For each: CPU µs per request at concurrency 50 (the tollgate process's user+system time, all threads, over the
# requests served, after a warm-up that also fills the key cache), then latency at concurrency 1 (wrk's p50 and
# p99). "added" is the difference to master; for key+redis the latency is also compared with key (the Redis round
# trips on the request path).
#
# Usage: tests/bench/auth.sh [seconds per measurement, default 10] (ROUNDS=N, default 2; REDIS_URL)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${1:-10}"
rounds="${ROUNDS:-2}"
redis="${REDIS_URL:-redis://127.0.0.1:6379}"
bench=auth
# shellcheck source=tests/bench/pinned.sh
source tests/bench/pinned.sh
master=sk-bench-auth-master
export BODY='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
key_json='{"rpm_limit": 1000000000, "tpm_limit": 1000000000000, "max_parallel_requests": 1000000, "max_budget": 1000000, "budget_duration": "30d"}'
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# wrk's latency percentile line ("50%  254.00us") in µs.
percentile_us() {
  awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1e6}}' "$2"
}
declare -A cpu p50 p99 rps
measure() { # mode round
  local mode=$1 round=$2 port pid t0 t1 reqs extra="" auth=$master
  port="$(free_port)"
  [[ $mode == key+redis ]] && extra="router_settings:
  redis_url: $redis
tollgate:
  redis_key_prefix: \"bench-auth-$$-$round:\""
  printf 'model_list:\n  - model_name: bench\n    litellm_params: {model: openai/normal, api_base: http://127.0.0.1:%s/v1, api_key: sk-bench, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}\ngeneral_settings: {master_key: %s}\n%s\n' \
    "$up_port" "$master" "$extra" >"$work/$mode.yaml"
  rm -rf "$work/$mode.db"* "$work/$mode.dir"
  mkdir -p "$work/$mode.dir"
  (cd "$work/$mode.dir" && exec env -u RUST_LOG DATABASE_URL="sqlite://$work/$mode.db?mode=rwc" taskset -c 1 \
    "$target/tollgate" --config "$work/$mode.yaml" --host 127.0.0.1 --port "$port" --workers 1 >"$work/$mode.log" 2>&1) &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/readiness" >/dev/null && break; sleep 0.1; done
  if [[ $mode != master ]]; then
    auth=$(curl -sf -H "Authorization: Bearer $master" -d "$key_json" "http://127.0.0.1:$port/key/generate" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  fi
  local url="http://127.0.0.1:$port/v1/chat/completions"
  AUTH=$auth taskset -c 0 wrk -t1 -c50 -d2s -s tests/bench/post.lua "$url" >/dev/null
  t0=$(cpu_ticks "$pid")
  AUTH=$auth taskset -c 0 wrk -t1 -c50 -d"${duration}s" -s tests/bench/post.lua "$url" >"$work/$mode-c50.wrk"
  t1=$(cpu_ticks "$pid")
  AUTH=$auth taskset -c 0 wrk -t1 -c1 -d"${duration}s" --latency -s tests/bench/post.lua "$url" >"$work/$mode-c1.wrk"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  if grep -q "Non-2xx" "$work/$mode-c50.wrk" "$work/$mode-c1.wrk"; then
    echo "auth.sh: $mode answered errors (see $work)" >&2
    exit 1
  fi
  reqs=$(grep -o '[0-9]* requests in' "$work/$mode-c50.wrk" | awk '{print $1}')
  cpu[$mode]+="$(python3 -c "print(($t1 - $t0) * 1e6 / $(getconf CLK_TCK) / $reqs)") "
  rps[$mode]+="$(awk '/Requests\/sec/ {print $2}' "$work/$mode-c50.wrk") "
  p50[$mode]+="$(percentile_us 50% "$work/$mode-c1.wrk") "
  p99[$mode]+="$(percentile_us 99% "$work/$mode-c1.wrk") "
  echo "round $round $mode: cpu ${cpu[$mode]}, p50 ${p50[$mode]}" >&2
}
for round in $(seq 1 "$rounds"); do
  for mode in master key key+redis; do measure "$mode" "$round"; done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- server entity migration Cargo.lock || echo ' (dirty)')"
echo
echo "tests/bench/auth.sh at $commit: $rounds round(s), ${duration} s per measurement, medians over rounds"
echo
echo "| mode | RPS c=50 | CPU µs/request c=50 | added CPU µs over master | p50 µs c=1 | p99 µs c=1 | added p50 µs |"
echo "|---|---|---|---|---|---|---|"
base_cpu=$(echo "${cpu[master]}" | median)
for mode in master key key+redis; do
  c=$(echo "${cpu[$mode]}" | median)
  p=$(echo "${p50[$mode]}" | median)
  ref=master
  [[ $mode == key+redis ]] && ref=key
  rp=$(echo "${p50[$ref]}" | median)
  printf '| %s | %.0f | %.1f | %+.1f | %.0f | %.0f | %+.0f (over %s) |\n' "$mode" "$(echo "${rps[$mode]}" | median)" "$c" \
    "$(python3 -c "print($c - $base_cpu)")" "$p" "$(echo "${p99[$mode]}" | median)" "$(python3 -c "print($p - $rp)")" "$ref"
done
echo
echo "targets (issue 15): a virtual key with limits and a budget adds ≤ 5 CPU µs per request in-process"
echo "raw wrk output and logs in $work" >&2
