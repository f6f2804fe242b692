"""The Snakemake DAG: lint-clean, full scale dry-runs, bad configs stop it before anything runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from moebius.config import ConfigError, config_hash, load_config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the project's .venv/bin when run through scripts/test.sh


def venv_bin(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def snakemake(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv_bin("snakemake"), "--nolock", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
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
    # 11 models on main; on ood the 6 that run everywhere plus MAT and MI-GAN (LVIS, Tab. 7)
    assert counts["sample_suite"] == counts["evaluate_suite"] == 19
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


# ---------------------------------------------------------------------------------------------
# The Snakemake path validates exactly as `moebius config validate` does
# ---------------------------------------------------------------------------------------------

SMOKE = "config/smoke.yaml"


@pytest.mark.hostile("snakemake -n --configfile with a negative lr, steps: 0, an unknown mask protocol or a global batch that is no multiple of batch x gpus", "the DAG stops before any job with the CLI's one-line message")
@pytest.mark.parametrize(
    "override",
    [
        {"distill": {"train": {"lr": -1.0e-3}}},
        {"distill": {"train": {"steps": 0}}},
        {"benchmarks": {"places2_large": {"mask_protocol": "mat_lage_512"}}},
        {"finetune": {"targets": {"ffhq": {"gpus": 2}}}},
    ],
)
def test_snakemake_refuses_what_the_cli_refuses_with_the_same_message(tmp_path: Path, override: dict) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    with pytest.raises(ConfigError) as cli_error:
        load_config(SMOKE, bad)
    result = snakemake("distill", "-n", "--configfile", SMOKE, str(bad))
    assert result.returncode != 0
    assert str(cli_error.value) in result.stdout + result.stderr
    assert "Job stats" not in result.stdout


@pytest.mark.hostile("snakemake --configfile with a `{}` file (Snakemake itself refuses an empty one)", "the DAG stops before any job with the CLI's 'config file X is empty' line")
def test_snakemake_refuses_an_empty_config_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    result = snakemake("distill", "-n", "--configfile", str(empty))
    assert result.returncode != 0
    assert "Job stats" not in result.stdout
    assert f"config file {empty} is empty" in result.stdout + result.stderr


@pytest.mark.hostile("snakemake --configfile with lr: 2e-4 (a string to YAML 1.1)", "accepted as the number 2e-4, as the CLI accepts it")
def test_snakemake_accepts_floats_without_a_dot(tmp_path: Path) -> None:
    lr = tmp_path / "lr.yaml"
    lr.write_text("distill:\n  train: {lr: 2e-4}\n")
    assert load_config(SMOKE, lr).distill.train.lr == pytest.approx(2e-4)
    result = snakemake("distill", "-n", "--configfile", SMOKE, str(lr))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Job stats" in result.stdout


def test_snakemake_resolves_a_configfile_as_the_cli_does(tmp_path: Path) -> None:
    # Snakemake would extend the Snakefile's smoke.yaml with --configfile full.yaml (full scale with the
    # smoke checkpoint_every, num_workers, profile repeats, ...); the DAG must use full.yaml alone, like
    # `moebius --config config/full.yaml`. The resolved config lands in <logs>/config/<hash>.yaml.
    full = tmp_path / "full.yaml"
    full.write_text((ROOT / "config" / "full.yaml").read_text() + f"\npaths:\n  logs: {tmp_path / 'logs'}\n")
    result = snakemake("distill", "-n", "--configfile", str(full))
    assert result.returncode == 0, result.stderr[-2000:]
    cli = load_config(full)
    assert [p.name for p in (tmp_path / "logs" / "config").iterdir()] == [f"{config_hash(cli)}.yaml"]
    assert cli.profile.repeats == 10 and cli.masks.stats_n == 2000  # the paper defaults, not smoke's


def test_parsing_the_dag_imports_neither_torch_nor_matplotlib(tmp_path: Path) -> None:
    # Stand-in packages that fail on import, first on the path: the config check and the rule files
    # (everything up to building the distillation DAG) must not need them.
    for name in ("torch", "matplotlib"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} imported while parsing the DAG')\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    result = snakemake("distill", "-n", env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "Job stats" in result.stdout
