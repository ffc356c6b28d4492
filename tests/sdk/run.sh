#!/usr/bin/env bash
# SDK end-to-end tests: the real `openai` Python SDK against tollgate and the fake upstream, over real HTTP.
# Creates the venv (.venv at the repo root) on first use; reinstalls only when requirements.txt changes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

venv="$root/.venv"
stamp="$venv/.requirements-$(sha256sum tests/sdk/requirements.txt | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  touch "$stamp"
fi

target="${CARGO_TARGET_DIR:-$root/target}"
export TOLLGATE_BIN="${TOLLGATE_BIN:-$target/debug/tollgate}"
export FAKE_UPSTREAM_BIN="${FAKE_UPSTREAM_BIN:-$target/debug/fake-upstream}"
for bin in "$TOLLGATE_BIN" "$FAKE_UPSTREAM_BIN"; do
  if [[ ! -x "$bin" ]]; then
    echo "missing $bin: run \`cargo build -p tollgate -p tollgate-fakes\` first" >&2
    exit 1
  fi
done

exec "$venv/bin/python" -m pytest tests/sdk -q -p no:cacheprovider "$@"
