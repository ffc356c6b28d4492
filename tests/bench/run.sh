#!/usr/bin/env bash
# Benchmark: tollgate's overhead against calling the fake upstream directly and against nginx proxy_pass, in one
# run, at concurrency 1 and 50. Prints one table and writes docs/benchmarks.md. Not a test: it never fails on the
# figures, only when a server cannot be started, fails the sanity check, or dies mid-run.
#
# Usage: tests/bench/run.sh [seconds per measurement, default 10]
# Environment:
#   LAYOUT=shared|split  CPU pinning (default shared, see below)
#   WARMUP=N             seconds of warm-up before each measurement (default 2)
#   ROUNDS=N             measure every target N times, interleaved, and report the medians (default 3;
#                        a run takes about ROUNDS x 75 s plus the build)
#   DOC=path             where the markdown goes (default docs/benchmarks.md; DOC= to skip writing it)
#
# CPU layouts (this box has 2 cores; the figures only repeat if nothing migrates):
#  shared (default): wrk on CPU 0; the fake upstream and the server under test (nginx or tollgate) share CPU 1.
#          The load generator never competes with what it measures, and every cycle the proxy spends is taken
#          from the upstream, so a proxy's cost shows as lost throughput next to nginx's.
#  split:  wrk and the fake upstream on CPU 0, the proxy alone on CPU 1, as when a gateway has its own host.
#          CPU 0 (wrk + upstream) caps throughput near the direct figure, so c=50 shows whether a proxy with a
#          core of its own keeps up; in trials it varied more between runs than shared, hence not the default.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export DURATION="${1:-10}"
export WARMUP="${WARMUP:-2}"
export ROUNDS="${ROUNDS:-3}"
export LAYOUT="${LAYOUT:-shared}"
DOC="${DOC-docs/benchmarks.md}"
case "$LAYOUT" in
  shared) cpu_load=0 cpu_upstream=1 cpu_proxy=1 ;;
  split) cpu_load=0 cpu_upstream=0 cpu_proxy=1 ;;
  *) echo "unknown LAYOUT=$LAYOUT (shared or split)" >&2; exit 2 ;;
esac
[[ "$DURATION" =~ ^[1-9][0-9]*$ && "$WARMUP" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[1-9][0-9]*$ ]] ||
  { echo "DURATION and WARMUP are whole seconds, ROUNDS a positive count" >&2; exit 2; }

# --- tools ---------------------------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v taskset >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  echo "installing ${need[*]} (apt)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if (($(nproc) < 2)); then
  echo "needs at least 2 CPUs for the pinning layout (have $(nproc))" >&2
  exit 2
fi

echo "building release binaries (cargo build --release -p tollgate -p tollgate-fakes)" >&2
cargo build --release -q -p tollgate -p tollgate-fakes
target="${CARGO_TARGET_DIR:-$root/target}/release"

# --- processes -----------------------------------------------------------------------------------------------
work="$(mktemp -d /tmp/tollgate-bench.XXXXXX)"
out="$work/out"
mkdir -p "$out"
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -f "$work/nginx.pid" ]]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  pids=()
}
trap stop_all EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

die() {
  echo "bench: $*" >&2
  local f
  for f in upstream.out tollgate.log nginx-error.log; do
    [[ -s "$work/$f" ]] && { echo "--- last lines of $work/$f" >&2; tail -5 "$work/$f" >&2; }
  done
  exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  local _
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "timed out waiting for $1"
}

start_upstream() {
  taskset -c "$cpu_upstream" "$target/fake-upstream" --host 127.0.0.1 --port 0 --workers 1 >"$work/upstream.out" 2>&1 &
  upstream_pid=$!
  pids+=("$upstream_pid")
  local _
  for _ in $(seq 1 100); do grep -q "^listening on " "$work/upstream.out" 2>/dev/null && break; sleep 0.05; done
  upstream="$(sed -n 's/^listening on //p' "$work/upstream.out" | head -1)"
  [[ -n "$upstream" ]] || die "fake-upstream did not print 'listening on ...'"
}

start_nginx() {
  nginx_port="$(free_port)"
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  fastcgi_temp_path $work/nginx-fastcgi;
  uwsgi_temp_path $work/nginx-uwsgi;
  scgi_temp_path $work/nginx-scgi;
  upstream upstream { server ${upstream#http://}; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  taskset -c "$cpu_proxy" "$NGINX" -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log" ||
    die "nginx did not start"
  wait_http "http://127.0.0.1:$nginx_port/"
  nginx_pid="$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)" # the one worker does the proxying
  [[ -n "$nginx_pid" ]] || die "no nginx worker process"
}

start_tollgate() {
  tollgate_port="$(free_port)"
  cat >"$work/tollgate.yaml" <<CONF
model_list:
  - model_name: bench
    litellm_params:
      model: openai/normal
      api_base: $upstream/v1
      api_key: sk-bench
general_settings:
  master_key: sk-bench-master
CONF
  RUST_LOG=warn taskset -c "$cpu_proxy" "$target/tollgate" --config "$work/tollgate.yaml" --host 127.0.0.1 \
    --port "$tollgate_port" --workers 1 >"$work/tollgate.log" 2>&1 &
  tollgate_pid=$!
  pids+=("$tollgate_pid")
  wait_http "http://127.0.0.1:$tollgate_port/health/readiness"
}

body_direct='{"model":"normal","messages":[{"role":"user","content":"hi"}]}'
body_gateway='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'

sanity() { # name url body auth
  local check auth=()
  [[ -n "$4" ]] && auth=(-H "Authorization: Bearer $4")
  check="$(curl -s -m 5 -w '\n%{http_code}' "$2" "${auth[@]}" -H 'Content-Type: application/json' -d "$3" || true)"
  if [[ "${check##*$'\n'}" != 200 || "$check" != *'"chat.completion"'* ]]; then
    die "sanity check failed: POST $2 via $1 did not return HTTP 200 with a chat.completion; got:
${check:0:500}"
  fi
}

# user+system CPU ticks (all threads) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy ticks of the whole machine (user nice system irq softirq steal, all CPUs).
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# CPU ticks of this benchmark: its servers (all nginx processes included) plus the finished children of this shell
# (wrk, curl, ...) as bash's `times` counts them. `times` must run in this shell, not in a $(...) subshell.
own_ticks() {
  local p sum=0 hz
  hz="$(getconf CLK_TCK)"
  for p in "$upstream_pid" "$tollgate_pid" $(cat "$work/nginx.pid" 2>/dev/null) $(pgrep -P "$(cat "$work/nginx.pid")"); do
    [[ -r "/proc/$p/stat" ]] && sum=$((sum + $(cpu_ticks "$p")))
  done
  times >"$work/times"
  echo $((sum + $(awk -v hz="$hz" 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%d", t * hz }' "$work/times")))
}
alive() { kill -0 "$upstream_pid" 2>/dev/null && kill -0 "$nginx_pid" 2>/dev/null && kill -0 "$tollgate_pid" 2>/dev/null; }

wrk_run() { # url body auth concurrency seconds
  BODY="$2" AUTH="$3" taskset -c "$cpu_load" wrk -t1 -c"$4" -d"$5s" --latency -s tests/bench/post.lua "$1"
}

# --- run -----------------------------------------------------------------------------------------------------
start_upstream
start_nginx
start_tollgate
sanity direct "$upstream/v1/chat/completions" "$body_direct" ""
sanity nginx "http://127.0.0.1:$nginx_port/v1/chat/completions" "$body_direct" ""
sanity tollgate "http://127.0.0.1:$tollgate_port/v1/chat/completions" "$body_gateway" sk-bench-master
echo "layout $LAYOUT: wrk on CPU $cpu_load, fake-upstream on CPU $cpu_upstream, nginx/tollgate on CPU $cpu_proxy" >&2

for round in $(seq 1 "$ROUNDS"); do
  dir="$out/round$round"
  mkdir -p "$dir"
  for c in 1 50; do
    for t in direct nginx tollgate; do
      case $t in
        direct) url="$upstream/v1/chat/completions" body="$body_direct" auth="" pid="$upstream_pid" ;;
        nginx) url="http://127.0.0.1:$nginx_port/v1/chat/completions" body="$body_direct" auth="" pid="$nginx_pid" ;;
        tollgate)
          url="http://127.0.0.1:$tollgate_port/v1/chat/completions" body="$body_gateway" auth="sk-bench-master"
          pid="$tollgate_pid"
          ;;
      esac
      if ((WARMUP > 0)); then wrk_run "$url" "$body" "$auth" "$c" "$WARMUP" >"$dir/$t-c$c.warmup.txt"; fi
      echo "round $round/$ROUNDS: measuring $t at concurrency $c for ${DURATION}s" >&2
      own_ticks >"$work/own"
      own_before="$(cat "$work/own")" machine_before="$(machine_ticks)" before="$(cpu_ticks "$pid")"
      wrk_run "$url" "$body" "$auth" "$c" "$DURATION" >"$dir/$t-c$c.txt"
      own_ticks >"$work/own"
      # server-under-test ticks, clock rate, and ticks that neither this benchmark nor its servers used (other
      # work on the machine, or the hypervisor's steal), out of the measurement's CPU capacity
      echo "$(($(cpu_ticks "$pid") - before)) $(getconf CLK_TCK)" \
        "$(($(machine_ticks) - machine_before - ($(cat "$work/own") - own_before))) $((DURATION * $(getconf CLK_TCK) * $(nproc)))" \
        >"$dir/$t-c$c.cpu"
      alive || die "a server died while measuring $t at concurrency $c"
    done
  done
done
stop_all

echo >&2
python3 tests/bench/report.py "$out" "$DOC"
echo >&2
[[ -n "$DOC" ]] && echo "written to $DOC" >&2
echo "raw wrk output and server logs in $work" >&2
