"""The baseline jobs of the DAG: a full-scale dry run lists them with a GPU and the paper's benchmarks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# (experiment, model) → the benchmarks its suite samples (where the paper has the method's row).
SUITES = {
    ("main", "lama"): {"places2_test", "places2_256", "celebahq512", "ffhq256"},
    ("main", "migan"): {"places2_test", "places2_256", "ffhq256"},
    ("ood", "migan"): {"lvis"},
    ("main", "comodgan"): {"celebahq512"},
    ("main", "sd15_inpaint"): {"places2_test", "celebahq512", "ffhq256"},
}


def _jobs(stdout: str) -> dict[tuple[str, str], dict]:
    """rule sample_suite blocks of a dry run (with -p): wildcards → {resources, benchmarks of its shell}."""
    jobs = {}
    for block in re.split(r"\n(?=\[[^\n]*\]\nrule )", stdout):
        if "rule sample_suite:" not in block:
            continue
        wc = re.search(r"wildcards: experiment=(\w+), model=(\w+)", block)
        res = re.search(r"resources: ([^\n]*)", block)
        jobs[wc.groups()] = {"resources": res.group(1) if res else "",
                             "benchmarks": set(re.findall(r"--task benchmark=(\w+)", block))}
    return jobs


def test_full_dry_run_lists_the_baseline_jobs_with_a_gpu() -> None:
    targets = [f"results/samples/{e}/{m}/suite.json" for e, m in SUITES]
    snakemake = str(BIN / "snakemake") if (BIN / "snakemake").exists() else "snakemake"
    result = subprocess.run([snakemake, "--nolock", *targets, "-n", "-p", "--forceall",
                             "--configfile", "config/full.yaml"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = _jobs(result.stdout)
    assert set(jobs) == set(SUITES)
    for key, benchmarks in SUITES.items():
        assert re.search(r"\bgpu=1\b", jobs[key]["resources"]), (key, jobs[key]["resources"])
        assert jobs[key]["benchmarks"] == benchmarks, key
