# Shared set-up of the one-gateway benchmarks (auth.sh, logging.sh): sourced, not run, from the repository root,
# with $bench set to the script's name. Builds the release binaries, makes $work, starts the fake upstream on
# CPU 1 (its port in $up_port) and kills what the benchmark starts ($pids) when the script exits.
command -v wrk >/dev/null || { echo "$bench: needs wrk (tests/bench/run.sh installs it)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
echo "building release binaries (cargo build --release -p tollgate -p tollgate-fakes)" >&2
cargo build --release -q -p tollgate -p tollgate-fakes
work="$(mktemp -d "/tmp/tollgate-bench-$bench.XXXXXX")"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port="$(free_port)"
taskset -c 1 "$target/fake-upstream" --host 127.0.0.1 --port "$up_port" --workers 1 >"$work/upstream.log" 2>&1 &
pids+=($!)
