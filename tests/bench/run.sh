#!/usr/bin/env bash
# Benchmark: tollgate's overhead against calling the fake upstream directly and against nginx proxy_pass, in one
# run, at concurrency 1 and 50. Prints tables and writes docs/benchmarks.md. Not a test: it never fails on
# numbers. Usage: tests/bench/run.sh [seconds per measurement, default 10]
#
# Two CPU layouts, both measured (LAYOUTS="shared split" by default):
#  shared: wrk on CPU 0; the fake upstream and the proxy under test share CPU 1, so every cycle the proxy spends
#          is taken from the upstream and shows as lost throughput (the strict measure of per-request cost);
#  split:  wrk and the upstream on CPU 0, the proxy alone on CPU 1, as when a gateway runs on its own host.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export DURATION="${1:-10}"
export LAYOUTS="${LAYOUTS:-shared split}"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
if ((${#need[@]})); then
  echo "installing ${need[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

cargo build --release -q -p tollgate -p tollgate-fakes
target="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d /tmp/tollgate-bench.XXXXXX)"
out="$work/out"
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -f "$work/nginx.pid" ]]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  pids=()
  rm -f "$work/nginx.pid" "$work/upstream.out"
}
trap stop_all EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

start_upstream() { # cpu
  taskset -c "$1" "$target/fake-upstream" --host 127.0.0.1 --port 0 --workers 1 >"$work/upstream.out" 2>&1 &
  upstream_pid=$!
  pids+=($upstream_pid)
  for _ in $(seq 1 100); do grep -q "listening on" "$work/upstream.out" 2>/dev/null && break; sleep 0.05; done
  upstream="$(sed -n 's/^listening on //p' "$work/upstream.out")"
}

start_nginx() { # cpu
  nginx_port="$(free_port)"
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
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
  upstream fake { server ${upstream#http://}; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  taskset -c "$1" "$NGINX" -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log"
  wait_http "http://127.0.0.1:$nginx_port/v1/models"
  nginx_pid="$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)" # the worker does the proxying
}

start_tollgate() { # cpu
  tollgate_port="$(free_port)"
  cat >"$work/tollgate.yaml" <<CONF
model_list:
  - model_name: bench
    litellm_params:
      model: openai/normal
      api_base: $upstream/v1
      api_key: sk-bench-upstream
general_settings:
  master_key: sk-bench-master
CONF
  RUST_LOG=warn taskset -c "$1" "$target/tollgate" --config "$work/tollgate.yaml" --host 127.0.0.1 \
    --port "$tollgate_port" --workers 1 >"$work/tollgate.log" 2>&1 &
  tollgate_pid=$!
  pids+=($tollgate_pid)
  wait_http "http://127.0.0.1:$tollgate_port/health/readiness"
}

body_direct='{"model":"normal","messages":[{"role":"user","content":"hi"}]}'
body_gateway='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'

# user+system CPU ticks (all threads) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wrk_run() { # cpu url body auth concurrency seconds
  BODY="$3" AUTH="$4" taskset -c "$1" wrk -t1 -c"$5" -d"$6s" --latency -s tests/bench/post.lua "$2"
}

measure_layout() { # layout
  local layout="$1" cpu_load cpu_upstream cpu_proxy
  case "$layout" in
    shared) cpu_load=0 cpu_upstream=1 cpu_proxy=1 ;;
    split) cpu_load=0 cpu_upstream=0 cpu_proxy=1 ;;
    *) echo "unknown layout $layout (shared or split)" >&2; exit 2 ;;
  esac
  mkdir -p "$out/$layout"
  start_upstream "$cpu_upstream"
  start_nginx "$cpu_proxy"
  start_tollgate "$cpu_proxy"
  local check
  check="$(curl -s -w ' %{http_code}' "http://127.0.0.1:$tollgate_port/v1/chat/completions" \
    -H 'Authorization: Bearer sk-bench-master' -H 'Content-Type: application/json' -d "$body_gateway")"
  if [[ "$check" != *'"chat.completion"'*' 200' ]]; then
    echo "sanity check through tollgate failed: $check" >&2
    exit 1
  fi
  local c t url body auth pid before
  for c in 1 50; do
    for t in direct nginx tollgate; do
      case $t in
        direct) url="$upstream/v1/chat/completions" body="$body_direct" auth="" pid="$upstream_pid" ;;
        nginx) url="http://127.0.0.1:$nginx_port/v1/chat/completions" body="$body_direct" auth="" pid="$nginx_pid" ;;
        tollgate) url="http://127.0.0.1:$tollgate_port/v1/chat/completions" body="$body_gateway" auth="sk-bench-master" pid="$tollgate_pid" ;;
      esac
      wrk_run "$cpu_load" "$url" "$body" "$auth" "$c" 2 >/dev/null # warm-up
      echo "[$layout] measuring $t at concurrency $c for ${DURATION}s" >&2
      before="$(cpu_ticks "$pid")"
      wrk_run "$cpu_load" "$url" "$body" "$auth" "$c" "$DURATION" >"$out/$layout/$t-c$c.txt"
      echo "$(($(cpu_ticks "$pid") - before)) $(getconf CLK_TCK)" >"$out/$layout/$t-c$c.cpu"
    done
  done
  stop_all
}

for layout in $LAYOUTS; do
  measure_layout "$layout"
done

python3 tests/bench/report.py "$out" docs/benchmarks.md
echo
echo "written to docs/benchmarks.md (raw wrk output in $out)"
