#!/usr/bin/env bash
# Create .venv in the repository and install the pinned stack. Idempotent: a second run only checks
# a stamp (the hash of pyproject.toml + requirements.lock) and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
if ! "$python" -c 'import sys; sys.exit(not ((3, 11, 4) <= sys.version_info[:3] < (3, 12)))'; then
    echo "setup: Python 3.11 (>= 3.11.4) is required (torch 2.14.1 / torchvision 0.29.1 wheels); found $("$python" --version)" >&2
    exit 2
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.moebius-stamp
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && .venv/bin/python -c 'import moebius' 2>/dev/null; then
    echo "setup: environment up to date (.venv)"
    exit 0
fi

echo "setup: installing the pinned stack into .venv (first time: ~4 min, ~6.5 GB)"
# requirements.lock pins every transitive package, so two machines get the same versions.
.venv/bin/pip install --disable-pip-version-check -q -c requirements.lock -e ".[dev]"
echo "$want" > "$stamp"
echo "setup: done"
