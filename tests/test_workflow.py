"""The Snakemake DAG: lint-clean, full scale dry-runs, bad configs stop it before anything runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the project's .venv/bin when run through scripts/test.sh


def venv_bin(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def snakemake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv_bin("snakemake"), "--nolock", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_lint_is_clean() -> None:
    result = snakemake("--lint")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Congratulations" in result.stdout + result.stderr


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_full_scale_dry_run_lists_the_whole_dag_with_gpu_resources() -> None:
    result = snakemake("all", "-n", "--forceall", "--configfile", "config/full.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    counts = job_counts(result.stdout)
    assert counts["fetch_dataset"] >= 6  # real downloads, not smoke data
    assert "smoke_dataset" not in counts
    assert counts["ablation_arch"] == 15 and counts["ablation_loss"] == 4
    assert counts["distill"] == 1 and counts["finetune"] == 6
    assert counts["sample_cfg_sweep"] == 2  # one process per benchmark, all 7 scales
    assert counts["sample_suite"] == counts["evaluate_suite"] == 12  # 6 models x (main, ood)
    assert counts["sample"] == counts["evaluate"] == 19  # 15 + 4 ablation runs
    assert counts["profile"] == 2 and counts["profile_variants"] == 1
    # the distillation asks for 8 GPUs and runs through torchrun
    assert re.search(r"rule distill:.*?resources:[^\n]*gpu=8", result.stdout, flags=re.S)
    assert "torchrun --standalone --nproc_per_node=8" in snakemake(
        "distill", "-n", "--forceall", "-p", "--configfile", "config/full.yaml"
    ).stdout


def test_smoke_dry_run_has_every_rule_of_the_full_dag() -> None:
    smoke = job_counts(snakemake("all", "-n", "--forceall").stdout)
    full = job_counts(snakemake("all", "-n", "--forceall", "--configfile", "config/full.yaml").stdout)
    # the only difference between the scales is where the data comes from
    assert set(smoke) - {"smoke_dataset"} == set(full) - {"fetch_dataset"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("sampel:\n  steps: 3\n", "sampel"),
        ("sample:\n  steps: twenty\n", "twenty"),
    ],
)
def test_bad_config_stops_the_workflow_before_any_job(tmp_path: Path, override: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    result = snakemake("all", "-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Job stats" not in result.stdout
