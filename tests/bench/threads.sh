#!/usr/bin/env bash
# Profile (issue 12): where tollgate's CPU time goes, by thread, against nginx's, in tests/bench/run.sh's `shared`
# layout (wrk on CPU 0; the fake upstream and the server under test on CPU 1). Prints user and system CPU µs per
# request of each tollgate thread (HTTP worker, the request log's SQLite thread, the main thread that runs the log
# writer's turns, ...), of nginx's worker and of the fake upstream behind each, from /proc/<pid>/task/*/stat
# before and after one wrk run at concurrency 50.
#
# Why beside run.sh: run.sh gives a process's total; this splits it, which instruction counts
# (tests/bench/instructions.sh) cannot: the SQLite row is about a sixth of tollgate's instructions but a far
# smaller share of its time, and the kernel's half is invisible to callgrind. Figures vary by about 10% between
# runs on a shared VM; compare threads within one run.
#
# Usage: tests/bench/threads.sh [seconds, default 10]
set -euo pipefail
export LC_ALL=C
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
seconds="${1:-10}"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "seconds is a positive count" >&2; exit 2; }
for tool in wrk nginx taskset; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk nginx util-linux)" >&2; exit 1; }
done
target="${CARGO_TARGET_DIR:-$root/target}/release"
echo "building release binaries (cargo build --release -p tollgate -p tollgate-fakes)" >&2
cargo build --release -q -p tollgate -p tollgate-fakes
work="$(mktemp -d /tmp/tollgate-threads.XXXXXX)"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
die() { echo "threads: $*" >&2; exit 1; }
# run.sh's `shared` layout, and its fake upstream and nginx (servers.sh).
cpu_upstream=1 cpu_proxy=1
NGINX="$(command -v nginx)"
source "$root/tests/bench/servers.sh"
hz="$(getconf CLK_TCK)"

# "tid process/thread utime stime" (clock ticks) for every thread of each pid given.
threads() {
  local pid task process
  for pid in "$@"; do
    process="$(basename "$(readlink "/proc/$pid/exe")")"
    for task in /proc/"$pid"/task/*; do
      # The name is in parentheses and may hold spaces: take the fields after its closing one.
      awk -v tid="$(basename "$task")" -v name="$process/$(tr ' ' '_' <"$task/comm")" \
        '{ sub(/^.*\) /, ""); print tid, name, $12, $13 }' "$task/stat" 2>/dev/null || true
    done
  done | sort
}

# measure LABEL URL BODY AUTH PID...: warm up, then one wrk run; prints each thread's µs per request.
measure() {
  local label=$1 url=$2 body=$3 auth=$4
  shift 4
  BODY="$body" AUTH="$auth" taskset -c 0 wrk -t1 -c50 -d2s -s tests/bench/post.lua "$url" >/dev/null
  threads "$@" >"$work/before"
  BODY="$body" AUTH="$auth" taskset -c 0 wrk -t1 -c50 -d"${seconds}s" -s tests/bench/post.lua "$url" >"$work/wrk.out"
  threads "$@" >"$work/after"
  local requests errors
  requests="$(awk '/requests in/ {print $1}' "$work/wrk.out")"
  errors="$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")"
  [[ -z "$errors" ]] || { echo "$label: $errors answers were not 2xx" >&2; exit 1; }
  echo
  echo "$label: $requests requests in ${seconds}s, concurrency 50"
  printf '  %-40s %10s %10s\n' "thread" "user µs" "system µs"
  join "$work/before" "$work/after" | awk -v n="$requests" -v hz="$hz" '{
      u = ($6 - $3) * 1e6 / hz / n; s = ($7 - $4) * 1e6 / hz / n
      if (u + s > 0) printf "  %-40s %10.1f %10.1f\n", $2, u, s }'
  join -v2 "$work/before" "$work/after" | awk -v n="$requests" -v hz="$hz" '{
      u = $3 * 1e6 / hz / n; s = $4 * 1e6 / hz / n
      if (u + s > 0) printf "  %-40s %10.1f %10.1f (started during the run)\n", $2, u, s }'
}

start_upstream
port="$(free_port)"
printf 'model_list:\n  - model_name: bench\n    litellm_params: {model: openai/normal, api_base: %s/v1, api_key: sk-bench}\ngeneral_settings: {master_key: sk-bench-threads}\n' \
  "$upstream" >"$work/config.yaml"
# As shipped, as run.sh runs it: default log level, stdout to a file.
env -u RUST_LOG DATABASE_URL="sqlite://$work/tollgate.db?mode=rwc" taskset -c "$cpu_proxy" "$target/tollgate" \
  --config "$work/config.yaml" --host 127.0.0.1 --port "$port" --workers 1 >"$work/tollgate.log" 2>&1 &
tollgate_pid=$!
pids+=("$tollgate_pid")
wait_http "http://127.0.0.1:$port/health/readiness"
measure "tollgate" "http://127.0.0.1:$port/v1/chat/completions" \
  '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' sk-bench-threads "$tollgate_pid" "$upstream_pid"
kill "$tollgate_pid"

start_nginx
measure "nginx proxy_pass" "http://127.0.0.1:$nginx_port/v1/chat/completions" \
  '{"model":"normal","messages":[{"role":"user","content":"hi"}]}' "" "$nginx_pid" "$upstream_pid"
echo
echo "commit $(git rev-parse --short HEAD)$([[ -n "$(git status --porcelain)" ]] && echo ' (uncommitted changes)'); raw files in $work"
