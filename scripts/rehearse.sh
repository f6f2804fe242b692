#!/usr/bin/env bash
# The full-scale code paths on a CPU (README, "Rehearsal"): the rehearsal DAG (config/rehearsal.yaml),
# or with --ci the subset CI runs (target rehearsal_ci + config/rehearsal_ci.yaml: one job or more of
# every rule kind but the report). Extra arguments go to snakemake, e.g. `scripts/rehearse.sh --ci -n`.
set -euo pipefail
cd "$(dirname "$0")/.."
target=(all --configfile config/rehearsal.yaml)
need_gb=${MOEBIUS_REHEARSAL_DISK_GB:-55}  # the whole DAG: ~50 GB under rehearsal/ (README, "Rehearsal")
if [ "${1:-}" = "--ci" ]; then
    shift
    target=(rehearsal_ci --configfile config/rehearsal.yaml config/rehearsal_ci.yaml)
    need_gb=${MOEBIUS_REHEARSAL_DISK_GB:-30}  # the CI subset left 28 GB
fi
# Fail now, in one line, rather than an hour in with a full disk. What rehearsal/ already holds counts
# as free (a re-run keeps it); a dry run (-n) needs nothing. MOEBIUS_REHEARSAL_DISK_GB sets the need.
if [[ ! " $* " =~ \ (-n|--dry-run|--dryrun)\  ]]; then
    free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
    held_kb=$( (du -sk rehearsal 2>/dev/null || echo 0) | cut -f1)
    have_gb=$(( (free_kb + held_kb) / 1048576 ))
    if (( have_gb < need_gb )); then
        echo "rehearse: needs ~${need_gb} GB of disk for rehearsal/, ${have_gb} GB available here" \
             "(free + what rehearsal/ holds); free some space and re-run" >&2
        exit 1
    fi
fi
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
unset MOEBIUS_WEIGHTS_DIR  # the rehearsal generates its own weights under rehearsal/weights
# At most two paper-size training processes (11 GB asked each) at once on a 24 GB machine.
snakemake "${target[@]}" --cores "${MOEBIUS_CORES:-2}" --resources mem_mb="${MOEBIUS_MEM_MB:-22000}" "$@"
echo "rehearse: done — rehearsal/results/, logs under rehearsal/logs/"
