#!/usr/bin/env bash
# One command: set everything up, then run the whole DAG at smoke scale (tables, plots, report).
# Extra arguments go to snakemake, e.g. `scripts/reproduce.sh --configfile config/full.yaml -n`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# Snakemake runs one job per core; one thread per job avoids oversubscribing the cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
snakemake all --cores "${MOEBIUS_CORES:-2}" "$@"
echo "reproduce: done — see results/report.md and results/tables/"
