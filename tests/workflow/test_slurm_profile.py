"""The SLURM profile (workflow/profiles/slurm) at full scale: what each job would ask the cluster for.

The tests run Snakemake with ``--workflow-profile workflow/profiles/slurm`` on a copy of the workflow
in a temp dir (the repository is never written), with stand-in SLURM commands first on PATH: each
appends its arguments to a log, ``sbatch`` then refuses (exit 1), the query commands answer nothing.
So nothing can be submitted, even on a machine where the real commands exist.

- The dry run of the whole DAG (``all -n -p``) prints every job's resources and shell command:
  training jobs ask for the GPUs of config/full.yaml and start that many torchrun processes, every
  rule listed in the profile's ``set-resources`` gets those values, downloads go to the CPU partition,
  and the official checkpoints are installed by one process each without GPU (not by a training job:
  with ``model.student_source: train``, the students' fine-tunes are). It submits nothing (the plugin only asks ``scontrol`` for the cluster's array limit).
- A real run of three ready jobs (their inputs touched) goes through the SLURM executor plugin up to
  ``sbatch``: the recorded command lines are what a cluster would receive (``--gpus``, ``-p``, ``--mem``,
  ``-t``, ``--cpus-per-task``).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from test_workflow import ROOT, snakemake_in, workflow_copy

PROFILE = "workflow/profiles/slurm"
SLURM_COMMANDS = ("sbatch", "srun", "sinfo", "squeue", "sacct", "sacctmgr", "sshare", "scontrol", "scancel")


def full_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "full.yaml").read_text(encoding="utf-8"))


def profile() -> dict:
    return yaml.safe_load((ROOT / PROFILE / "config.yaml").read_text(encoding="utf-8"))


def fake_slurm(where: Path) -> Path:
    """Stand-ins for the SLURM commands in ``where/bin``; every call appends a line to ``where/calls.log``."""
    bin_dir, log = where / "bin", where / "calls.log"
    bin_dir.mkdir(parents=True)
    for name in SLURM_COMMANDS:
        refuse = 'echo "stand-in sbatch: nothing submitted" >&2; exit 1' if name == "sbatch" else "exit 0"
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> {shlex.quote(str(log))}\n{refuse}\n', encoding="utf-8")
        script.chmod(0o755)
    return bin_dir


def calls(where: Path) -> list[str]:
    log = where / "calls.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def parse_resources(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(", "))


def planned_jobs(output: str) -> list[dict]:
    """Every job of a dry run's printout: rule, wildcards, resources and shell command."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:\n)", output):
        head = re.match(r"rule (\w+):\n", block)
        if not head:
            continue
        job = {"rule": head.group(1), "wildcards": "", "resources": {}, "shell": ""}
        for line in block.splitlines()[1:]:
            key, _, value = line.strip().partition(": ")
            if key == "wildcards":
                job["wildcards"] = value
            elif key == "resources":
                job["resources"] = parse_resources(value)
            elif key == "Shell command":
                job["shell"] = value
        jobs.append(job)
    return jobs


def print_resources(jobs: list[dict]) -> None:
    """One line per rule and set of requested resources (``pytest -s`` shows it)."""
    shown = ("slurm_partition", "gpu", "mem_mb", "runtime", "cpus_per_task")
    lines = sorted({
        f"{j['rule']:<22} " + " ".join(f"{k}={j['resources'].get(k, '-')}" for k in shown)
        + (f"  [{j['wildcards']}]" if j["rule"] == "finetune" else "")
        for j in jobs
    })
    print("\n".join(["requested per job (SLURM profile, config/full.yaml):", *lines]))


@pytest.fixture
def slurm_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workflow copy in ``tmp_path/wf`` and the stand-in SLURM commands first on PATH."""
    monkeypatch.setenv("PATH", f"{fake_slurm(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "wf").mkdir()
    return workflow_copy(tmp_path / "wf")


def dry_run(slurm_path: Path, *config: str) -> list[dict]:
    """The full DAG's jobs (config/full.yaml, then ``--config`` overrides) under the SLURM profile."""
    overrides = ["--config", *config] if config else []
    result = snakemake_in(slurm_path, "all", "-n", "-p", "--configfile", "config/full.yaml", *overrides,
                          "--workflow-profile", PROFILE)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Using workflow specific profile workflow/profiles/slurm" in result.stdout + result.stderr
    jobs = planned_jobs(result.stdout)
    print_resources(jobs)
    return jobs


def by_rule(jobs: list[dict]) -> dict[str, list[dict]]:
    rules: dict[str, list[dict]] = {}
    for job in jobs:
        rules.setdefault(job["rule"], []).append(job)
    return rules


def test_dry_run_requests_the_recipes_gpus_and_the_profiles_resources(slurm_path: Path, tmp_path: Path) -> None:
    jobs = by_rule(dry_run(slurm_path))
    assert not [c for c in calls(tmp_path) if c.startswith(("sbatch", "srun"))]  # nothing submitted
    cfg, prof = full_config(), profile()
    assert prof["executor"] == "slurm"

    # the profile's set-resources name rules of the workflow and reach every job of theirs; finetune,
    # teacher and vae run at full scale only where trained here (the next test)
    listed = snakemake_in(slurm_path, "--list-rules", "--configfile", "config/full.yaml").stdout.split()
    for rule, wanted in prof["set-resources"].items():
        assert rule in listed, f"set-resources names {rule}, which is not a rule of the workflow"
        assert rule in jobs or rule in ("finetune", "teacher", "vae"), f"{rule} is not run by the full DAG"
        for job in jobs.get(rule, []):
            for key, value in wanted.items():
                assert job["resources"][key] == str(value), (rule, key, job["resources"])

    # GPUs from config/full.yaml, and as many torchrun processes
    distill_gpus = cfg["distill"]["train"]["gpus"]
    for rule in ("distill", "distill_nokd", "ablation_arch", "ablation_loss"):
        for job in jobs[rule]:
            assert job["resources"]["gpu"] == str(distill_gpus) == "8", (rule, job["resources"])
            assert job["shell"].startswith(f"torchrun --standalone --nproc_per_node={distill_gpus} -m moebius.cli "), job

    # official checkpoints (the VAE, the teacher, the six ft_*) are installed, not trained: one plain
    # process each, no GPU, the CPU partition, minutes
    assert {"finetune", "teacher", "vae"}.isdisjoint(jobs)
    installs = {job["wildcards"]: job for job in jobs["install_official"]}
    assert sorted(installs) == sorted(["run=vae", "run=teacher"] + [
        f"run=finetune/{m}_{t}" for m in ("moebius", "pixelhacker") for t in ("celebahq", "ffhq", "places2")])
    for wildcards, job in installs.items():
        assert job["resources"]["gpu"] == "0", job
        assert job["resources"]["slurm_partition"] == "cpu" and int(job["resources"]["runtime"]) <= 60, job
        run = wildcards.removeprefix("run=")
        assert re.fullmatch(rf"moebius --config \S+ train official --kind \w+ --variant \w+ --out checkpoints/{run} > .*",
                            job["shell"]), job

    # every job started through torchrun is a days-long training run: the profile must size it, the
    # default-resources' runtime (minutes) would end it early
    for job in (j for rule_jobs in jobs.values() for j in rule_jobs):
        if job["shell"].startswith("torchrun "):
            assert job["rule"] in prof["set-resources"], f"{job['rule']} runs torchrun but has no set-resources"
            assert int(job["resources"]["runtime"]) >= 24 * 60, job
            assert job["resources"]["slurm_partition"] == prof["default-resources"]["slurm_partition"]

    # downloads: the CPU partition, no GPU
    assert jobs["fetch_dataset"]
    for job in jobs["fetch_dataset"]:
        assert job["resources"]["slurm_partition"] == "cpu"
        assert job["resources"].get("gpu", "0") == "0"


def test_students_finetuned_here_ask_for_their_targets_gpus(slurm_path: Path) -> None:
    # model.student_source: train: Moebius is fine-tuned per benchmark from the distilled student
    # (through torchrun, the target's GPUs, the profile's finetune sizes); PixelHacker's ft_* stay installs.
    jobs = by_rule(dry_run(slurm_path, "model={student_source: train}"))
    targets = full_config()["finetune"]["targets"]
    assert {t: targets[t]["gpus"] for t in targets} == {"places2": 4, "celebahq": 2, "ffhq": 4}
    assert sorted(j["wildcards"] for j in jobs["finetune"]) == [f"model=moebius, target={t}" for t in sorted(targets)]
    for job in jobs["finetune"]:
        gpus = targets[re.search(r"target=(\w+)", job["wildcards"]).group(1)]["gpus"]
        assert job["resources"]["gpu"] == str(gpus), job
        assert f"torchrun --standalone --nproc_per_node={gpus} -m moebius.cli " in job["shell"], job
        assert " train finetune --model student --init checkpoints/distill " in job["shell"], job
        for key, value in profile()["set-resources"]["finetune"].items():
            assert job["resources"][key] == str(value), (key, job["resources"])
    assert sorted(j["wildcards"] for j in jobs["install_official"]) == sorted(
        ["run=vae", "run=teacher"] + [f"run=finetune/pixelhacker_{t}" for t in targets])


def test_sbatch_receives_the_gpus_partition_memory_and_time(slurm_path: Path, tmp_path: Path) -> None:
    # The inputs of distill exist (oldest first) and the ft_celebahq student's install needs none, so those
    # jobs and one download are ready at once; the stand-in sbatch records each submission and refuses it.
    ready = ["data/datasets/places365/train/manifest.csv", "data/datasets/celebahq/train/manifest.csv",
             "data/datasets/ffhq/train/manifest.csv", "checkpoints/vae/run.json", "checkpoints/teacher/run.json"]
    for i, rel in enumerate(ready):
        path = slurm_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (1e9 + i, 1e9 + i))
    targets = ["checkpoints/distill/run.json", "checkpoints/finetune/moebius_celebahq/run.json",
               "data/datasets/ffhq/val/manifest.csv"]
    result = snakemake_in(slurm_path, *targets, "--configfile", "config/full.yaml", "--workflow-profile", PROFILE,
                          "--retries", "0", "--latency-wait", "1", "--slurm-init-seconds-before-status-checks", "1",
                          "--seconds-between-status-checks", "1")
    assert result.returncode != 0  # every submission refused
    assert "stand-in sbatch: nothing submitted" in result.stdout + result.stderr
    sbatch = {re.search(r"--comment (\S+)", c).group(1): c for c in calls(tmp_path) if c.startswith("sbatch ")}
    install_job = "rule_install_official_wildcards_finetune_moebius_celebahq"
    print("\n".join(f"{k}: {re.sub(r' --wrap=.*', '', v)}" for k, v in sorted(sbatch.items())))
    assert sorted(sbatch) == ["rule_distill", "rule_fetch_dataset_wildcards_ffhq_val", install_job]

    def options(line: str) -> str:
        return line.split(" --wrap=", 1)[0]

    prof = profile()["set-resources"]
    distill = options(sbatch["rule_distill"])
    for option in ("-p gpu", f"-t {prof['distill']['runtime']}", f"--mem {prof['distill']['mem_mb']}",
                   f"--cpus-per-task={prof['distill']['cpus_per_task']}", "--gpus=8"):
        assert f" {option}" in distill, (option, distill)
    install = options(sbatch[install_job])  # the official ft_celebahq student: copied, not trained
    for option in ("-p cpu", f"-t {prof['install_official']['runtime']}", f"--mem {prof['install_official']['mem_mb']}"):
        assert f" {option}" in install, (option, install)
    assert "--gpus" not in install
    fetch = options(sbatch["rule_fetch_dataset_wildcards_ffhq_val"])
    assert " -p cpu" in fetch and f" -t {prof['fetch_dataset']['runtime']}" in fetch
    assert "--gpus" not in fetch
    assert not (slurm_path / "checkpoints" / "distill" / "run.json").exists()  # nothing ran
