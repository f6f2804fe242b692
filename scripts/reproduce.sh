#!/usr/bin/env bash
# One command: set everything up, then run the whole DAG at smoke scale (tables, plots, report).
# Extra arguments go to snakemake, e.g. `scripts/reproduce.sh --configfile config/full.yaml -n`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake all --cores "${MOEBIUS_CORES:-2}" "$@"
echo "reproduce: done — see results/report.md and results/tables/"
