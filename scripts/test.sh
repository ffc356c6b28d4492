#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): formatting, lints, Rust unit and
# integration tests (fake providers over real HTTP), and the Python SDK end-to-end tests.
# Installs what it needs (Python venv with the pinned SDKs) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Services the project's later stores use. Under CI a missing service is a failure, never a skip.
if [[ "${CI:-}" == "true" ]]; then
  step "checking CI services"
  for svc in "PostgreSQL 127.0.0.1 5432" "Redis 127.0.0.1 6379"; do
    set -- $svc
    if ! (exec 3<>"/dev/tcp/$2/$3") 2>/dev/null; then
      echo "CI=true and $1 is not reachable at $2:$3" >&2
      exit 1
    fi
  done
fi

step "cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check

step "layering invariants (ARCHITECTURE.md)"
python3 scripts/check_layering.py

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "fuzz harness (tollgate::fuzzing: lints and unit tests; the fuzzing itself is scripts/fuzz.sh)"
cargo clippy -p tollgate --features fuzzing --all-targets -- -D warnings
cargo test -p tollgate --features fuzzing --lib fuzzing::

step "cargo build (binaries for process and SDK tests)"
cargo build --workspace

step "cargo test"
# Process tests run the binary built just above.
TOLLGATE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/tollgate" cargo test --workspace

step "Python SDK end-to-end tests"
bash tests/sdk/run.sh

step "all tests passed"
