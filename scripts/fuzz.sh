#!/usr/bin/env bash
# Fuzzes tollgate's parsers of untrusted input with cargo-fuzz (libFuzzer):
#   request_parser  chat and embeddings request bodies (llm/request.rs), checked against serde_json's reading
#   sse_framer      upstream SSE streams in arbitrary chunks (framing/sse.rs), with the framing invariants
#   config_loader   LiteLLM config.yaml (config/) and the routing table built from it
#   eventstream_framer  upstream AWS eventstreams (Bedrock) in chunks (framing/eventstream.rs), CRCs and lengths
#   journal_file    request log journal files as a crash may leave them (logs/journal.rs frames, logs/codec.rs)
#   upstream_response  upstream HTTP/1.1 responses in chunks, as the http:// client reads them (upstream/plain/)
#   response_peek   upstream response bodies and stream chunks as the relays read usage from them (pipeline/peek/),
#                   checked against serde_json's reading
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     default: 60 s each, every target
#
# Works on stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only -Z flags (coverage instrumentation,
# sanitizers). Installs cargo-fuzz if it is missing. Each target starts from its corpus fuzz/corpus/<target>/
# (committed seed-* files plus what earlier local runs found) with the dictionary fuzz/dict/<target>.dict, and
# runs for the given time; an input slower than FUZZ_TIMEOUT seconds counts as a failure, so a quadratic blow-up
# fails the run as a panic does. Builds keep debug assertions and overflow checks on.
# Exits non-zero if any target crashed, timed out or ran out of memory; the input is saved in
# fuzz/artifacts/<target>/ and named in the summary. Logs: <target dir>/logs/<target>.log.
#
# Environment:
#   FUZZ_TIMEOUT     seconds one input may take (default 5)
#   FUZZ_SANITIZER   none (default) or address; both build on stable. Why none: tollgate's only unsafe code maps the
#                    journal's active file (no parser reads through it), the failures sought are panics, broken properties and slow inputs, and AddressSanitizer runs 6-7
#                    times fewer inputs per second here (request_parser 9,400/s vs 64,500/s). What ASan adds
#                    besides memory checks of dependencies' unsafe code is libFuzzer's memcmp hints for string
#                    compares; the dictionaries in fuzz/dict/ give the strings these parsers compare instead.
#                    Switching rebuilds everything.
#   FUZZ_TARGET_DIR  build directory (default $CARGO_TARGET_DIR/fuzz, else fuzz/target)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(request_parser sse_framer config_loader eventstream_framer journal_file upstream_response response_peek)

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]   (targets: ${ALL_TARGETS[*]})" >&2
  exit 2
fi
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${ALL_TARGETS[@]}")
fi
for t in "${targets[@]}"; do
  if [[ ! -f "fuzz/fuzz_targets/$t.rs" ]]; then
    echo "unknown fuzz target '$t' (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
done

# Inputs as large as a request can be in practice: the gateway's bodies are megabytes, streams and configs less.
max_len() {
  case "$1" in
    request_parser) echo 1048576 ;;
    sse_framer | eventstream_framer | upstream_response | response_peek) echo 262144 ;;
    *) echo 65536 ;;
  esac
}

export RUSTC_BOOTSTRAP=1
timeout_secs="${FUZZ_TIMEOUT:-5}"
sanitizer="${FUZZ_SANITIZER:-none}"
if [[ -n "${FUZZ_TARGET_DIR:-}" ]]; then
  target_dir="$FUZZ_TARGET_DIR"
elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  target_dir="$CARGO_TARGET_DIR/fuzz"
else
  target_dir="$PWD/fuzz/target"
fi
mkdir -p "$target_dir/logs"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

fuzz_opts=(--fuzz-dir fuzz --target-dir "$target_dir" --sanitizer "$sanitizer")
echo "==> building fuzz targets (sanitizer: $sanitizer)"
build_start=$SECONDS
# All targets at once (they share one build); each `cargo fuzz run` below then starts without rebuilding.
if ! cargo fuzz build "${fuzz_opts[@]}" >"$target_dir/logs/build.log" 2>&1; then
  tail -n 40 "$target_dir/logs/build.log" >&2
  echo "fuzz build failed (log: $target_dir/logs/build.log)" >&2
  exit 1
fi
echo "    built in $((SECONDS - build_start)) s"

failed=0
summary=()
for t in "${targets[@]}"; do
  echo "==> fuzzing $t for ${seconds} s"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="$target_dir/logs/$t.log"
  status=ok
  flags=(-max_total_time="$seconds" -timeout="$timeout_secs" -max_len="$(max_len "$t")" -print_final_stats=1)
  if [[ -f "fuzz/dict/$t.dict" ]]; then
    flags+=(-dict="fuzz/dict/$t.dict")
  fi
  if ! cargo fuzz run "${fuzz_opts[@]}" "$t" -- "${flags[@]}" >"$log" 2>&1; then
    status=FAILED
    failed=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
  corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
  line=$(printf '%-15s %-6s runs=%s exec/s=%s cov=%s corpus=%s' \
    "$t" "$status" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${corpus:-?}")
  if [[ "$status" != ok ]]; then
    artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -n 1)
    if grep -q 'panicked at' "$log"; then kind=panic
    elif grep -q 'libFuzzer: timeout' "$log"; then kind="slow input (over ${timeout_secs} s)"
    elif grep -q 'out-of-memory' "$log"; then kind=out-of-memory
    elif grep -q 'AddressSanitizer' "$log"; then kind=AddressSanitizer
    else kind=error; fi
    line+=" ($kind) artifact=${artifact:-none} log=$log"
    grep -m 1 -A 3 'panicked at' "$log" >&2 || tail -n 20 "$log" >&2
  fi
  summary+=("$line")
done

echo
echo "==> fuzz summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
