"""After a smoke run, changing one config value re-runs only what depends on it (Snakemake decides).

Every job reads the resolved config, which each run rewrites when it starts (workflow/rules/config.smk):
the file alone must re-run nothing; each job's `cfg` parameter (the hash of its own sections) decides,
and a job that re-runs reads the new settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def planned_jobs(*configfiles: Path, target: str = "all", cwd: Path = ROOT) -> dict[str, int]:
    args = [str(BIN / "snakemake"), target, "-n", "--nolock", "--configfile", *map(str, configfiles)]
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=_env())
    assert out.returncode == 0, out.stderr[-2000:]
    if "Job stats" not in out.stdout:
        return {}
    table = out.stdout.split("Job stats:", 1)[1]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    counts.pop("total", None)
    return counts


def _env() -> dict[str, str]:
    """This checkout's package and the interpreter's scripts first (the jobs run `moebius`)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "PATH": os.pathsep.join((str(BIN), os.environ.get("PATH", "")))}


@pytest.fixture(scope="module")
def finished_smoke_run() -> None:
    """A finished, up-to-date smoke run. Locally its absence skips; CI runs the reproduction before the
    tests, so there (``CI=true``) a missing or stale run is a failure, never a silent skip."""
    if not (ROOT / "results" / "report.md").exists() or planned_jobs(ROOT / "config" / "smoke.yaml"):
        why = "needs a finished, up-to-date smoke run (bash scripts/reproduce.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI: {why}; the reproduction step did not leave one")
        pytest.skip(why)


def test_smoke_run_went_through_the_fork_server(finished_smoke_run) -> None:
    """The reproduction's jobs ran as children of the run's fork server (moebius/forkserver.py), not each
    importing torch again: a setting that made the server refuse every job would only show as a slow DAG."""
    log = (ROOT / "logs" / "forkserver.log").read_text()
    assert log.count("forkserver: pid ") >= 100, log[-2000:]


def test_metric_setting_rescores_without_resampling(finished_smoke_run, tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("eval:\n  bootstrap: 150\n")
    jobs = planned_jobs(ROOT / "config" / "smoke.yaml", override)
    assert set(jobs) == {"evaluate", "evaluate_suite", "evaluate_suite_start", "evaluate_cfg_sweep", "report",
                         "all"}, jobs


def test_sampler_setting_resamples_but_does_not_retrain(finished_smoke_run, tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("sample:\n  start: gt_noised\n")
    jobs = planned_jobs(ROOT / "config" / "smoke.yaml", override)
    assert {"sample", "sample_cfg_sweep", "evaluate", "report"} <= set(jobs), jobs
    assert not {"vae", "teacher", "distill", "ablation_arch", "finetune", "mask_set"} & set(jobs), jobs


@pytest.mark.slow
def test_a_setting_reruns_its_jobs_with_the_new_value(tmp_path: Path) -> None:
    # A real run of one mask set's jobs in a copy of the workflow, then the plan after config changes.
    for name in ("Snakefile", "workflow", "config"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "results" / "reference", tmp_path / "results" / "reference")
    smoke = tmp_path / "config" / "smoke.yaml"
    target = "masks/lama_thick_256/v1/ffhq256/manifest.csv"

    def run(*configfiles: Path) -> None:
        args = [str(BIN / "snakemake"), target, "--nolock", "--cores", "1", "--configfile", *map(str, configfiles)]
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env())
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

    run(smoke)
    assert planned_jobs(smoke, target=target, cwd=tmp_path) == {}
    # The run's jobs went through its fork server (workflow/rules/config.smk), which ended with the run.
    served = (tmp_path / "logs" / "forkserver.log").read_text()
    assert served.count("forkserver: pid ") >= 3 and "refused" not in served, served  # dataset, images, masks
    assert served.rstrip().endswith("forkserver: stopped"), served
    override = tmp_path / "override.yaml"

    def after(text: str) -> set[str]:
        override.write_text(text)
        return set(planned_jobs(smoke, override, target=target, cwd=tmp_path))

    assert after("eval:\n  bootstrap: 150\n") == set()  # no job of this target reads eval
    assert after("data:\n  n_test: 9\n") == {"smoke_dataset", "benchmark_images", "mask_set"}
    # The changed setting reaches the job that re-runs: the config file is rewritten as the run starts.
    assert after("masks:\n  seed: 7\n") == {"mask_set"}
    run(smoke, override)
    seeds = (tmp_path / target).read_text().splitlines()[1].split(",")[1]
    assert seeds == "7"
    assert planned_jobs(smoke, override, target=target, cwd=tmp_path) == {}
