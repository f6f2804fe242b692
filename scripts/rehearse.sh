#!/usr/bin/env bash
# The full-scale code paths on a CPU (README, "Rehearsal"): the rehearsal DAG (config/rehearsal.yaml),
# or with --ci the subset CI runs (target rehearsal_ci + config/rehearsal_ci.yaml: one job or more of
# every rule kind but the report). Extra arguments go to snakemake, e.g. `scripts/rehearse.sh --ci -n`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
unset MOEBIUS_WEIGHTS_DIR  # the rehearsal generates its own weights under rehearsal/weights
target=(all --configfile config/rehearsal.yaml)
if [ "${1:-}" = "--ci" ]; then
    shift
    target=(rehearsal_ci --configfile config/rehearsal.yaml config/rehearsal_ci.yaml)
fi
# At most two paper-size training processes (11 GB asked each) at once on a 24 GB machine.
snakemake "${target[@]}" --cores "${MOEBIUS_CORES:-2}" --resources mem_mb="${MOEBIUS_MEM_MB:-22000}" "$@"
echo "rehearse: done — rehearsal/results/, logs under rehearsal/logs/"
