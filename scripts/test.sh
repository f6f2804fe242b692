#!/usr/bin/env bash
# One command: set everything up, then run the test suite (slow tests included; `-m "not slow"` skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec pytest "$@"
