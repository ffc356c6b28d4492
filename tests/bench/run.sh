#!/usr/bin/env bash
# Benchmark: tollgate's overhead against calling the fake upstream directly and against nginx proxy_pass, in one
# run, at concurrency 1 and 50; the same for tollgate built with the system allocator instead of mimalloc; and a
# streaming section (time to first chunk and to the end of a 20-piece stream, on a reused and on a fresh client
# connection); and a hedging section (tests/bench/hedging.sh: p50/p99 of a group with one stalling upstream, with
# and without hedge_after_ms). Prints the tables and writes docs/benchmarks.md. Not a test: it never fails on the figures, only
# when a server cannot be started, fails the sanity check, or dies mid-run.
#
# tollgate runs as shipped: default log level (no RUST_LOG), so it writes its per-call log line, to a file as a
# deployment's stdout goes to a log collector.
#
# Usage: tests/bench/run.sh [seconds per measurement, default 10]
#        tests/bench/run.sh hedging   (only the hedging section, tests/bench/hedging.sh; prints, writes no doc)
# Environment:
#   LAYOUT=shared|split  CPU pinning (default shared, see below)
#   WARMUP=N             seconds of warm-up before each measurement (default 2)
#   ROUNDS=N             measure every target N times, interleaved, and report the medians (default 3)
#   ALLOC=1|0            also build tollgate with the system allocator (--no-default-features) and measure it as
#                        a fourth target (default 1)
#   STREAMS=N            streaming requests per target and connection kind in each round (default 200; 0 skips
#                        the streaming section)
#   TRANSLATE=1|0        also measure streams translated across dialects (OpenAI in, Anthropic out) against the
#                        same streams passed through (default 1)
#   DOC=path             where the markdown goes (default docs/benchmarks.md; DOC= to skip writing it)
#   HEDGE=1|0            also run the hedging section (tests/bench/hedging.sh, ~30 s; its HEDGE_* variables apply)
# A default run takes about 8 minutes on the 2-vCPU VM once the binaries are built (per round 8 wrk measurements
# of WARMUP + DURATION seconds and ~15 s of streams, plus the bookkeeping between them), and a few minutes more to
# build the two tollgate variants after a change to the server; the hedging section adds about 30 s.
#
# CPU layouts (this box has 2 cores; the figures only repeat if nothing migrates):
#  shared (default): wrk and the streaming client on CPU 0; the fake upstream and the server under test (nginx
#          or tollgate) share CPU 1. The load generator never competes with what it measures, and every cycle the
#          proxy spends is taken from the upstream, so a proxy's cost shows as lost throughput next to nginx's.
#  split:  wrk, the streaming client and the fake upstream on CPU 0, the proxy alone on CPU 1, as when a gateway
#          has its own host. CPU 0 (wrk + upstream) caps throughput near the direct figure, so c=50 shows whether
#          a proxy with a core of its own keeps up; in trials it varied more between runs than shared, hence not
#          the default.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if [[ "${1:-}" == hedging ]]; then
  exec tests/bench/hedging.sh
fi
export DURATION="${1:-10}"
export WARMUP="${WARMUP:-2}"
export ROUNDS="${ROUNDS:-3}"
export LAYOUT="${LAYOUT:-shared}"
export ALLOC="${ALLOC:-1}"
export STREAMS="${STREAMS:-200}"
export TRANSLATE="${TRANSLATE:-1}"
export HEDGE="${HEDGE:-1}"
export STREAM_PIECES=20
DOC="${DOC-docs/benchmarks.md}"
case "$LAYOUT" in
  shared) cpu_load=0 cpu_upstream=1 cpu_proxy=1 ;;
  split) cpu_load=0 cpu_upstream=0 cpu_proxy=1 ;;
  *) echo "unknown LAYOUT=$LAYOUT (shared or split)" >&2; exit 2 ;;
esac
[[ "$DURATION" =~ ^[1-9][0-9]*$ && "$WARMUP" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[1-9][0-9]*$ && "$ALLOC" =~ ^[01]$ &&
  "$STREAMS" =~ ^[0-9]+$ ]] ||
  { echo "DURATION and WARMUP are whole seconds, ROUNDS a positive count, ALLOC 0 or 1, STREAMS a count" >&2; exit 2; }

# --- what is measured: the commit, and whether the tree differs from it -----------------------------------------
# Taken before building, from the tree the binaries are built from. The doc this script writes is its output, not
# its input, so a changed DOC does not count as a change.
export COMMIT COMMIT_DIRTY=0
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
doc_rel="$(if [[ -n "$DOC" ]]; then realpath -m --relative-to="$root" "$DOC"; fi)"
if [[ "$COMMIT" != unknown && -n "$(git status --porcelain | awk -v doc="$doc_rel" 'substr($0, 4) != doc')" ]]; then
  COMMIT_DIRTY=1
  echo "WARNING: the tree has uncommitted changes; the figures will belong to no commit (git status)" >&2
fi

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

work="$(mktemp -d /tmp/tollgate-bench.XXXXXX)"
out="$work/out"
mkdir -p "$out"
target="${CARGO_TARGET_DIR:-$root/target}/release"
if ((ALLOC)); then
  # Same target dir: only the tollgate crate is built twice (dependencies are shared), and the default build
  # below puts the mimalloc binary back in place.
  echo "building tollgate with the system allocator (cargo build --release -p tollgate --no-default-features)" >&2
  cargo build --release -q -p tollgate --no-default-features
  cp "$target/tollgate" "$work/tollgate-sysalloc"
fi
echo "building release binaries (cargo build --release -p tollgate -p tollgate-fakes)" >&2
cargo build --release -q -p tollgate -p tollgate-fakes
if ((ALLOC)) && command -v nm >/dev/null; then
  mimalloc_symbols() { nm "$1" | grep -c mi_malloc || true; } # grep -c reads to the end: no SIGPIPE for nm
  (($(mimalloc_symbols "$target/tollgate") > 0)) || { echo "bench: $target/tollgate has no mimalloc" >&2; exit 1; }
  (($(mimalloc_symbols "$work/tollgate-sysalloc") == 0)) ||
    { echo "bench: the --no-default-features build still has mimalloc" >&2; exit 1; }
fi

# --- processes -----------------------------------------------------------------------------------------------
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
  for f in upstream.out bare.out tollgate.err tollgate.log tollgate-sysalloc.err tollgate-sysalloc.log nginx-error.log; do
    [[ -s "$work/$f" ]] && { echo "--- last lines of $work/$f" >&2; tail -5 "$work/$f" >&2; }
  done
  exit 1
}

# free_port, wait_http, start_upstream, start_nginx
source "$root/tests/bench/servers.sh"

start_tollgate() { # name binary; sets started_port and started_pid
  started_port="$(free_port)"
  cat >"$work/tollgate.yaml" <<CONF
model_list:
  - model_name: bench
    litellm_params:
      model: openai/normal
      api_base: $upstream/v1
      api_key: sk-bench
  - model_name: bench-stream
    litellm_params:
      model: openai/stream-$STREAM_PIECES
      api_base: $upstream/v1
      api_key: sk-bench
  - model_name: bench-stream-anthropic
    litellm_params:
      model: anthropic/stream-$STREAM_PIECES
      api_base: $upstream
      api_key: sk-bench
general_settings:
  master_key: sk-bench-master
CONF
  # As shipped: the default log level (RUST_LOG unset), stdout to a file.
  env -u RUST_LOG DATABASE_URL="sqlite://$work/tollgate.db?mode=rwc" taskset -c "$cpu_proxy" "$2" --config "$work/tollgate.yaml" --host 127.0.0.1 \
    --port "$started_port" --workers 1 >"$work/$1.log" 2>"$work/$1.err" &
  started_pid=$!
  pids+=("$started_pid")
  wait_http "http://127.0.0.1:$started_port/health/readiness"
}

body_direct='{"model":"normal","messages":[{"role":"user","content":"hi"}]}'
body_gateway='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'

# Sets url, body (for wrk), model (for streams), auth and pid (the server under test) for TARGET.
point_at() { # target [stream]
  local gateway="" port
  case $1 in
    direct)
      url="$upstream/v1/chat/completions" pid="$upstream_pid"
      ;;
    nginx)
      if [[ -n "${2:-}" ]]; then port="$nginx_stream_port"; else port="$nginx_port"; fi
      url="http://127.0.0.1:$port/v1/chat/completions" pid="$nginx_pid"
      ;;
    floor) url="$bare/v1/chat/completions" pid="$bare_pid" ;;
    tollgate) url="http://127.0.0.1:$tollgate_port/v1/chat/completions" pid="$tollgate_pid" gateway=1 ;;
    tollgate-sysalloc) url="http://127.0.0.1:$sysalloc_port/v1/chat/completions" pid="$sysalloc_pid" gateway=1 ;;
  esac
  if [[ -n "$gateway" ]]; then
    body="$body_gateway" model=bench-stream auth=sk-bench-master
  else
    body="$body_direct" model="stream-$STREAM_PIECES" auth=""
  fi
}

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
  for p in "$upstream_pid" "$bare_pid" "$tollgate_pid" ${sysalloc_pid:-} $(cat "$work/nginx.pid" 2>/dev/null) \
    $(pgrep -P "$(cat "$work/nginx.pid")"); do
    [[ -r "/proc/$p/stat" ]] && sum=$((sum + $(cpu_ticks "$p")))
  done
  times >"$work/times"
  echo $((sum + $(awk -v hz="$hz" 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%d", t * hz }' "$work/times")))
}
alive() {
  local p
  for p in "$upstream_pid" "$nginx_pid" "$bare_pid" "$tollgate_pid" ${sysalloc_pid:-}; do kill -0 "$p" 2>/dev/null || return 1; done
}

# Runs "$@" (one measurement) and writes FILE.cpu: the ticks the server PID used meanwhile, the clock rate, and the
# ticks that neither this benchmark nor its servers used (other work on the machine, or the hypervisor's steal)
# out of the measurement's CPU capacity.
measured() { # file pid command...
  local file="$1" pid="$2" own_before machine_before machine_after before after started elapsed_ticks hz
  shift 2
  hz="$(getconf CLK_TCK)"
  started="$(date +%s%N)" # the window spans every reading, so that the capacity covers the machine's ticks
  own_ticks >"$work/own"
  own_before="$(cat "$work/own")" machine_before="$(machine_ticks)" before="$(cpu_ticks "$pid")"
  "$@" >"$file" || return 1
  after="$(cpu_ticks "$pid")"
  own_ticks >"$work/own"
  machine_after="$(machine_ticks)"
  elapsed_ticks=$((($(date +%s%N) - started) * hz / 1000000000))
  echo "$((after - before)) $hz" \
    "$((machine_after - machine_before - ($(cat "$work/own") - own_before))) $((elapsed_ticks * $(nproc)))" \
    >"${file%.txt}.cpu"
}

wrk_run() { # url body auth concurrency seconds
  BODY="$2" AUTH="$3" taskset -c "$cpu_load" wrk -t1 -c"$4" -d"$5s" --latency -s tests/bench/post.lua "$1"
}
stream_run() { # url model auth reused|fresh outfile
  taskset -c "$cpu_load" python3 tests/bench/stream.py "$1" "$2" "$3" "$4" "$STREAMS" 5 "$STREAM_PIECES" "$5"
}

# --- run -----------------------------------------------------------------------------------------------------
start_upstream
start_nginx
start_bare
start_tollgate tollgate "$target/tollgate"
tollgate_port="$started_port" tollgate_pid="$started_pid"
targets=(direct nginx floor tollgate)
if ((ALLOC)); then
  start_tollgate tollgate-sysalloc "$work/tollgate-sysalloc"
  sysalloc_port="$started_port" sysalloc_pid="$started_pid"
  targets+=(tollgate-sysalloc)
fi
for t in "${targets[@]}"; do
  point_at "$t"
  sanity "$t" "$url" "$body" "$auth"
done
sleep 0.5 # the log writer is a background thread
grep -q "upstream call finished" "$work/tollgate.log" ||
  die "tollgate wrote no 'upstream call finished' line to stdout: not the default log level?"
if ((STREAMS)); then
  for t in direct nginx tollgate; do
    point_at "$t" stream
    STREAMS=1 stream_run "$url" "$model" "$auth" fresh - >/dev/null ||
      die "streaming sanity check failed via $t"
  done
fi
# The translation section: the same 20-piece stream through tollgate, passed through from the OpenAI fake and
# translated from the Anthropic fake into OpenAI chunks, at concurrency 50 (wrk reads each chunked body to its end).
stream_body() { echo "{\"model\":\"$1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"; }
if ((TRANSLATE)); then
  for m in bench-stream bench-stream-anthropic; do
    check="$(curl -s -m 5 "http://127.0.0.1:$tollgate_port/v1/chat/completions" -H "Authorization: Bearer sk-bench-master" \
      -H 'Content-Type: application/json' -d "$(stream_body "$m")" || true)"
    [[ "$check" == *"data: [DONE]"* && "$check" == *"w$((STREAM_PIECES - 1)) "* ]] ||
      die "translated-stream sanity check failed for $m: ${check:0:300}"
  done
fi
echo "layout $LAYOUT: wrk and the streaming client on CPU $cpu_load, fake-upstream on CPU $cpu_upstream," \
  "nginx/tollgate on CPU $cpu_proxy" >&2

for round in $(seq 1 "$ROUNDS"); do
  dir="$out/round$round"
  mkdir -p "$dir"
  for c in 1 50; do
    for t in "${targets[@]}"; do
      point_at "$t"
      if ((WARMUP > 0)); then wrk_run "$url" "$body" "$auth" "$c" "$WARMUP" >"$dir/$t-c$c.warmup.txt"; fi
      echo "round $round/$ROUNDS: measuring $t at concurrency $c for ${DURATION}s" >&2
      measured "$dir/$t-c$c.txt" "$pid" wrk_run "$url" "$body" "$auth" "$c" "$DURATION"
      alive || die "a server died while measuring $t at concurrency $c"
    done
  done
  if ((TRANSLATE)); then
    for kind in passthrough anthropic; do
      m=bench-stream
      [[ $kind == anthropic ]] && m=bench-stream-anthropic
      url="http://127.0.0.1:$tollgate_port/v1/chat/completions"
      if ((WARMUP > 0)); then wrk_run "$url" "$(stream_body "$m")" sk-bench-master 50 "$WARMUP" >/dev/null; fi
      echo "round $round/$ROUNDS: measuring tollgate streams ($kind) at concurrency 50 for ${DURATION}s" >&2
      measured "$dir/translate-$kind.txt" "$tollgate_pid" wrk_run "$url" "$(stream_body "$m")" sk-bench-master 50 \
        "$DURATION"
      alive || die "a server died while measuring translated streams ($kind)"
    done
  fi
  ((STREAMS)) || continue
  for conn in reused fresh; do
    for t in direct nginx tollgate; do
      point_at "$t" stream
      echo "round $round/$ROUNDS: $STREAMS streams via $t, $conn connection" >&2
      measured "$dir/stream-$t-$conn.txt" "$pid" stream_run "$url" "$model" "$auth" "$conn" - ||
        die "streaming via $t ($conn connection) failed"
      alive || die "a server died while streaming via $t"
    done
  done
done
sleep 0.5 # let the log writer catch up before measuring the log
log_lines="$(grep -c "upstream call finished" "$work/tollgate.log" || true)"
export LOG_LINES="$log_lines" LOG_BYTES="$(stat -c %s "$work/tollgate.log")"
stop_all
if ((HEDGE)); then
  # Its own servers (two fakes, one tollgate), after the others stopped; the binaries are the ones just built.
  HEDGE_BUILD=0 HEDGE_OUT="$out/hedging.json" tests/bench/hedging.sh || die "the hedging section failed"
fi

echo >&2
python3 tests/bench/report.py "$out" "$DOC"
echo >&2
[[ -n "$DOC" ]] && echo "written to $DOC" >&2
echo "raw wrk output and server logs in $work" >&2
