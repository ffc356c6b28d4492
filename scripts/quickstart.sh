#!/usr/bin/env bash
# Runs tollgate on the quickstart config: built-in mock provider, no API keys, no network. Listens on :4000.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -- --config assets/examples/quickstart.yaml "$@"
