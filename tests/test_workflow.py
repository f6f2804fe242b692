"""The Snakemake DAG: lint-clean, full scale dry-runs, bad configs stop it before anything runs."""

from __future__ import annotations

import os
import re
import shutil
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
    assert counts["distill"] == 1 and "finetune" not in counts
    assert counts["install_official"] == 8  # the official VAE, teacher and six ft_* checkpoints
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
    # the only differences between the scales are where the data and the weights come from: smoke
    # trains the VAE, teacher and fine-tunes that full scale installs (install_official runs in CI's rehearsal)
    assert set(smoke) - {"smoke_dataset", "vae", "teacher", "finetune"} == set(full) - {"fetch_dataset", "install_official"}


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


# ---------------------------------------------------------------------------------------------
# The resolved config is a job's output; parsing the DAG writes nothing
# ---------------------------------------------------------------------------------------------


def workflow_copy(dest: Path) -> Path:
    """The workflow's own files (Snakefile, rules, configs, the paper's numbers) in ``dest``; the
    package is imported from this checkout."""
    for name in ("Snakefile", "workflow", "config"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    shutil.copytree(ROOT / "results" / "reference", dest / "results" / "reference")
    return dest


def snakemake_in(where: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
           "PATH": os.pathsep.join((str(BIN), os.environ.get("PATH", "")))}
    return subprocess.run([venv_bin("snakemake"), "--nolock", *args], cwd=where, capture_output=True, text=True,
                          timeout=600, env=env)


def files_of(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` but Snakemake's own state (.snakemake/), with its size and mtime."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file() and ".snakemake" not in p.relative_to(root).parts}


@pytest.mark.hostile("`snakemake -n` (smoke and full scale) and `snakemake --lint` on a fresh copy of the workflow",
                     "no file created or changed: the resolved config is a job's output, not a parse-time write")
def test_dry_runs_and_lint_write_nothing(tmp_path: Path) -> None:
    copy = workflow_copy(tmp_path)
    before = files_of(copy)
    for args in (("all", "-n"), ("all", "-n", "--configfile", "config/full.yaml"), ("--lint",)):
        result = snakemake_in(copy, *args)
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert files_of(copy) == before


def test_a_run_writes_the_config_it_was_planned_with(tmp_path: Path) -> None:
    # Snakemake would extend the Snakefile's smoke.yaml with --configfile full.yaml (full scale with the
    # smoke checkpoint_every, num_workers, profile repeats, ...); the DAG must use full.yaml alone, like
    # `moebius --config config/full.yaml`, then Snakemake's --config overrides. The file is written when
    # a run starts (here: one job, its output touched), under a fixed name and under the config's hash.
    # (Snakemake reads a nested --config value with YAML's BaseLoader, all strings: only top-level scalars
    # pass the config's type checks that way; a --configfile carries the rest.)
    copy = workflow_copy(tmp_path)
    target = copy / "data" / "datasets" / "places365" / "train" / "manifest.csv"
    target.parent.mkdir(parents=True)
    target.touch()
    result = snakemake_in(copy, str(target.relative_to(copy)), "--cores", "1", "--touch", "--forceall",
                          "--configfile", "config/full.yaml", "--config", "seed=5")
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    cli = load_config(copy / "config" / "full.yaml", overrides={"seed": 5})
    assert load_config(copy / "logs" / "config" / "resolved.yaml") == cli
    assert sorted(p.name for p in (copy / "logs" / "config").iterdir()) == sorted(
        ["resolved.yaml", f"{config_hash(cli)}.yaml"]
    )
    assert cli.profile.repeats == 10 and cli.masks.stats_n == 2000  # the paper defaults, not smoke's


def test_every_job_reads_the_resolved_config() -> None:
    result = snakemake("all", "-n", "-p", "--forceall")
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [c for c in re.findall(r"^Shell command: (.+)$", result.stdout, flags=re.M) if c != "None"]
    assert len(commands) > 100
    for command in commands:
        assert re.match(r"^(moebius|torchrun .* -m moebius\.cli) --config logs/config/resolved\.yaml ", command), command
        assert "--task" not in command  # names, not comma-separated path lists


def test_table2_kd_flags_equal_the_variants() -> None:
    # kd_flag (common.smk) reads the torch-free copy in moebius.config while the DAG is parsed.
    from moebius.config import TABLE2_KD
    from moebius.models.variants import EXPERIMENTS

    assert TABLE2_KD == tuple(k for k, e in sorted(EXPERIMENTS.items()) if e.kd)
    flags = snakemake("all", "-n", "-p", "--forceall").stdout
    for exp, e in EXPERIMENTS.items():
        line = re.search(rf"train distill --student exp{exp} (--kd|--no-kd) ", flags)
        assert line and line.group(1) == ("--kd" if e.kd else "--no-kd"), exp


def test_parsing_the_dag_imports_neither_torch_nor_matplotlib(tmp_path: Path) -> None:
    # Stand-in packages that fail on import, first on the path: the config check and the rule files
    # (everything up to every job's shell command, -p, so that every params function runs) must not need them.
    for name in ("torch", "matplotlib"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} imported while parsing the DAG')\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    result = snakemake("all", "-n", "-p", "--forceall", env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "Job stats" in result.stdout


def test_rehearsal_dry_run_is_the_full_dag_plus_its_sources_and_weights() -> None:
    full = job_counts(snakemake("all", "-n", "--forceall", "--configfile", "config/full.yaml").stdout)
    result = snakemake("all", "-n", "--forceall", "-p", "--configfile", "config/rehearsal.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    rehearsal = job_counts(result.stdout)
    # every full-scale job, the same number of times, plus the two that make what the cluster downloads
    extra = {"rehearsal_sources": 1, "generate_weights": 1, "total": 2}
    assert {k: v - extra.get(k, 0) for k, v in rehearsal.items() if k not in ("rehearsal_sources", "generate_weights")} == full
    # the real fetch, pointed at the generated archives; the distillation through torchrun (2 gloo ranks)
    shells = snakemake("rehearsal/data/datasets/places365/train/manifest.csv", "rehearsal/checkpoints/distill/run.json",
                       "rehearsal/checkpoints/ablation_arch/exp1/run.json", "-n", "--forceall", "-p", "--configfile", "config/rehearsal.yaml").stdout
    assert "data fetch --dataset places365 --split train --raw-dir rehearsal/data/raw --out-root rehearsal/data/" \
           "datasets --sources rehearsal/data/rehearsal_sources" in shells
    assert "torchrun --standalone --nproc_per_node=2 -m moebius.cli --config" in shells
    # the ablation runs in one process (ablation.gpus: 1), accumulating the same global batch
    assert re.search(r"Shell command: moebius --config \S+ train distill .*--out rehearsal/checkpoints/ablation_arch/exp1",
                     shells)
    assert "weights generate --stamp rehearsal/weights/GENERATED.done" in shells


def test_rehearsal_training_memory_grows_with_the_model_trained() -> None:
    """The rehearsal's mem_mb asks cover the peaks measured on a 24 GB machine, where a flat 11 GB let
    two of the largest Table 2 runs start together (the kernel killed one)."""
    out = snakemake("rehearsal/checkpoints/ablation_arch/exp1/run.json", "rehearsal/checkpoints/ablation_arch/exp9/run.json",
                    "rehearsal/checkpoints/distill/run.json", "-n", "--forceall", "--configfile", "config/rehearsal.yaml").stdout
    asks = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        rule, mem = re.match(r"(?:local)?rule (\w+):", block), re.search(r"mem_mb=(\d+)", block)
        wildcards = re.search(r"wildcards: exp=(\w+)", block)
        if rule and mem:
            asks[wildcards.group(1) if wildcards else rule.group(1)] = int(mem.group(1))
    # measured peaks: 13.6 GB for a 515 M-parameter variant (exp13; exp1 has 526 M), 8.7 GB for the
    # student's 226 M, 9.9 GB a rank for the distillation's two torchrun ranks
    assert asks["exp1"] >= 13_600 and 8_700 <= asks["exp9"] < asks["exp1"]
    assert 2 * asks["exp1"] > 22_000  # scripts/rehearse.sh's --resources mem_mb: never two of them at once
    assert 2 * 9_900 <= asks["distill"] <= 22_000


def test_ci_rehearsal_subset_keeps_every_rule_kind() -> None:
    """.ci/run's rehearsal (target rehearsal_ci): every rule kind of the rehearsal DAG but the report."""
    full = job_counts(snakemake("all", "-n", "--forceall", "--configfile", "config/rehearsal.yaml").stdout)
    result = snakemake("rehearsal_ci", "-n", "--forceall", "-p", "--configfile", "config/rehearsal.yaml",
                       "config/rehearsal_ci.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    subset = job_counts(result.stdout)
    assert set(subset) - {"rehearsal_ci"} == set(full) - {"all", "report"}  # every other rule kind at least once
    assert subset["total"] < full["total"] / 2
    # the distillation pair in one process each (the rehearsal itself launches it through torchrun)
    assert re.search(r"command: moebius --config \S+ train distill --student student .*--out rehearsal/checkpoints/distill ",
                     result.stdout)
    # the official checkpoints are installed by one plain process each, also CelebA-HQ's (whose
    # training would take 2 ranks); torchrun runs in the full rehearsal and in tests/train's DDP test
    installs = re.findall(r"command: (.*) train official --kind \w+ --variant (\w+) ", result.stdout)
    assert {v for _, v in installs} >= {"pretrained", "ft_celebahq"}
    assert {launch for launch, _ in installs} == {"moebius --config rehearsal/logs/config/resolved.yaml"}
    assert "torchrun" not in result.stdout


def test_rehearse_stops_in_one_line_without_the_disk_it_needs() -> None:
    # scripts/rehearse.sh checks the disk before the setup and before any job starts
    result = subprocess.run(["bash", str(ROOT / "scripts" / "rehearse.sh"), "--ci"], capture_output=True, text=True,
                            env={**os.environ, "MOEBIUS_REHEARSAL_DISK_GB": "1000000"}, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("rehearse: needs ~1000000 GB of disk for rehearsal/, ")
    assert len(result.stderr.splitlines()) == 1 and not result.stdout


@pytest.mark.parametrize("configfile", ["config/smoke.yaml", "config/rehearsal.yaml", "config/full.yaml"])
def test_a_job_never_waits_behind_the_jobs_that_consume_it(configfile: str) -> None:
    """Scheduling priorities (common.smk PRIORITY) fall along every edge of the rule graph, and the
    chain that most of the DAG waits on comes first: vae > teacher > distill > finetune > the suites."""
    jobs = snakemake("all", "-n", "--forceall", "--configfile", configfile)
    graph = snakemake("all", "--rulegraph", "--forceall", "--configfile", configfile)
    assert jobs.returncode == 0 and graph.returncode == 0, (jobs.stderr + graph.stderr)[-2000:]
    priority: dict[str, int] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", jobs.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule:
            found = re.search(r"^\s+priority: (\d+)$", block, flags=re.M)
            priority[rule.group(1)] = int(found.group(1)) if found else 0
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', graph.stdout, flags=re.M))
    edges = [(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", graph.stdout, flags=re.M)]
    assert len(edges) > 20 and set(names.values()) <= set(priority)
    behind = [(a, b) for a, b in edges if priority[a] < priority[b]]
    assert not behind, f"a rule with lower priority than a rule that consumes its output: {behind}"
    chain = [r for r in ("install_official", "vae", "teacher", "distill", "finetune", "sample_suite", "evaluate_suite")
             if r in priority]
    assert [priority[r] for r in chain] == sorted((priority[r] for r in chain), reverse=True)
    assert priority["vae" if "vae" in priority else "install_official"] > priority["profile"] > priority["evaluate_suite"]
