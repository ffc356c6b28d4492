#!/usr/bin/env bash
# SDK end-to-end tests: the real `openai` Python SDK against tollgate and the fake upstream, over real HTTP.
#
# Usage: tests/sdk/run.sh [pytest args...]   (build first: cargo build -p tollgate -p tollgate-fakes)
# Environment:
#   TOLLGATE_BIN       the gateway binary       (default ${CARGO_TARGET_DIR:-target}/debug/tollgate)
#   FAKE_UPSTREAM_BIN  the fake upstream binary (default ${CARGO_TARGET_DIR:-target}/debug/fake-upstream)
# Paths are relative to the repository root. The venv is .venv at the repository root, made on first use;
# pip runs again only when requirements.txt changes (a stamp file named after its hash marks an installed set).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

target="${CARGO_TARGET_DIR:-target}"
export TOLLGATE_BIN="${TOLLGATE_BIN:-$target/debug/tollgate}"
export FAKE_UPSTREAM_BIN="${FAKE_UPSTREAM_BIN:-$target/debug/fake-upstream}"
missing=0
for bin in "$TOLLGATE_BIN" "$FAKE_UPSTREAM_BIN"; do
  if [[ ! -x "$bin" ]]; then
    echo "tests/sdk: missing binary $bin" >&2
    missing=1
  fi
done
if (( missing )); then
  echo "tests/sdk: run \`cargo build -p tollgate -p tollgate-fakes\` first (or set TOLLGATE_BIN / FAKE_UPSTREAM_BIN)" >&2
  exit 1
fi
# Absolute paths, so the tests do not depend on their working directory.
TOLLGATE_BIN="$(cd "$(dirname "$TOLLGATE_BIN")" && pwd)/$(basename "$TOLLGATE_BIN")"
FAKE_UPSTREAM_BIN="$(cd "$(dirname "$FAKE_UPSTREAM_BIN")" && pwd)/$(basename "$FAKE_UPSTREAM_BIN")"

venv="$root/.venv"
stamp="$venv/.sdk-requirements-$(sha256sum tests/sdk/requirements.txt | cut -c1-16)"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if [[ ! -f "$stamp" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  rm -f "$venv"/.sdk-requirements-*
  touch "$stamp"
fi

# The real Claude Code CLI, pinned; npm's cache and the install live under .cache/ and are reused between runs.
claude_version="2.1.332"
claude_dir="$root/.cache/claude-code-$claude_version"
export CLAUDE_CODE_BIN="$claude_dir/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
if [[ ! -x "$CLAUDE_CODE_BIN" ]]; then
  command -v npm >/dev/null || { echo "tests/sdk: npm is needed to install Claude Code" >&2; exit 1; }
  npm install --prefix "$claude_dir" --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$claude_version"
fi

# exec: pytest's exit code is this script's.
exec "$venv/bin/python" -m pytest tests/sdk -q -p no:cacheprovider "$@"
