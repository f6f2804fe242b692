#!/usr/bin/env bash
# Run one phase of the Snakemake DAG (called by the stages of dvc.yaml).
# The scale comes from $MOEBIUS_CONFIG (default config/smoke.yaml), e.g.
#   MOEBIUS_CONFIG=config/full.yaml dvc repro
# MOEBIUS_CONFIG is this script's own variable: it only chooses the --configfile given to Snakemake.
# The `moebius` CLI does not read it; every job gets its config as `moebius --config <resolved file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# The stage's deps are this checkout's moebius/: run that code, whichever checkout .venv was installed from.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
target=${1:?usage: scripts/phase.sh data_all|masks_all|models_all|all}
exec snakemake "$target" --configfile "${MOEBIUS_CONFIG:-config/smoke.yaml}" --cores "${MOEBIUS_CORES:-2}"
