#!/usr/bin/env bash
# One command: set everything up, then run the test suite (`-m slow -n 0`: the slow tests, one at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# Two worker processes by default (pytest-xdist; a test file stays on one worker, so its module
# fixtures run once), one per core here. MOEBIUS_TEST_WORKERS=0 runs in this process. CI runs the
# slow tests (paper-size models, torchrun ranks) with -n 0, one at a time, as they were measured.
exec pytest -n "${MOEBIUS_TEST_WORKERS:-2}" --dist loadfile "$@"
