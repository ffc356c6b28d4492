#!/usr/bin/env bash
# Issue 15, must-show 7: CPU per request of virtual-key auth with rate limits over master-key auth (in-process
# limiter), and the Redis mode's added latency. Builds release binaries (PROFILE=debug for a quick trial run),
# then runs tests/bench/auth.py, which says what it measures and how. Needs Redis (REDIS_URL, default
# redis://127.0.0.1:6379) and 2 CPUs: the servers are pinned to CPU 1, the Python client runs anywhere.
# Prints a table; writes nothing into docs (figures come from a quiet machine, run by the lead).
#
# Usage: tests/bench/auth.sh [extra auth.py arguments, e.g. --requests 50000 --concurrency 16]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
profile="${PROFILE:-release}"
flag=(--release)
[[ "$profile" == debug ]] && flag=()
echo "building tollgate and fake-upstream ($profile)" >&2
cargo build -q "${flag[@]}" -p tollgate -p tollgate-fakes
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"
exec python3 tests/bench/auth.py --tollgate "$bin/tollgate" --upstream "$bin/fake-upstream" "$@"
