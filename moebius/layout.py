"""Every on-disk path of the contracts between phases (DESIGN.md, "Contracts between phases").

One owner for where things live: the Snakemake rules (``workflow/rules/common.smk``) build their
inputs and outputs here, and the CLI resolves ``(experiment, model, benchmark)`` to folders here, so
a rule's output and the folder its command writes cannot drift apart. Every function is a pure
function of a ``Config`` (its ``paths`` and, where the place depends on a setting, that setting) and
names; nothing touches the disk and nothing imports torch (Snakemake calls this while it parses).

Functions that only format a path accept Snakemake wildcards as names (``benchmark_dir(cfg,
"{benchmark}")``); those that look a name up in the config (``mask_dir``, ``sample_run``) need a
real one.
"""

from __future__ import annotations

from pathlib import Path

from moebius.config import Config, config_hash
from moebius.errors import UnknownNameError
from moebius.report.names import OURS, SCORED_EXPERIMENTS, SUITE_EXPERIMENTS

# File names inside the contract folders. Copied from their writers (they import torch or cv2);
# tests/test_layout.py keeps each copy equal to its owner.
MANIFEST = "manifest.csv"  # Copied from moebius.data.manifest.MANIFEST_NAME (= moebius.masks.store.MANIFEST)
RUN_JSON = "run.json"  # Copied from moebius.train.state.RUN_JSON: written last, marks a finished run
TRAIN_METRICS = "train_metrics.csv"  # Copied from moebius.train.state.METRICS_CSV
META = "meta.json"  # Copied from moebius.eval.inpaint.META: written last, marks a finished sample folder
SWEEP = "sweep.json"  # Copied from moebius.eval.inpaint.SWEEP: a CFG sweep's folder list
SUITE = "suite.json"  # a suite's sample folders, written last by `moebius sample-suite`

# What is sampled and scored, by experiment (the vocabulary is moebius.report.names'). Suites run one
# process per model over all benchmarks of the experiment; the others one per (model, benchmark).
EXPERIMENTS = SCORED_EXPERIMENTS
SINGLE_EXPERIMENTS = tuple(e for e in EXPERIMENTS if e not in SUITE_EXPERIMENTS)
# Our two diffusion models: scored from run folders (fine-tuned per benchmark family).
DIFFUSION_OURS = OURS
# Runs under <checkpoints>/ with a fixed name (the ablations and fine-tunes are named by parameters).
NAMED_RUNS = ("vae", "teacher", "distill", "distill_nokd")


def _experiment(name: str) -> str:
    if name not in EXPERIMENTS:
        raise UnknownNameError.of("experiment", name, EXPERIMENTS)
    return name


# ------------------------------------------------------------------------------------------ config
def config_dir(cfg: Config) -> Path:
    return Path(cfg.paths.logs) / "config"


def resolved_config(cfg: Config) -> Path:
    """The resolved config every job reads (``moebius --config <this>``), written when a Snakemake run
    starts (the ``onstart`` hook of ``workflow/rules/config.smk``), never by a rule.

    A fixed name, not the hash: the file is an input of every job, and an input path that changed
    with every setting would re-run every job (Snakemake's input trigger) instead of the few whose
    own section changed."""
    return config_dir(cfg) / "resolved.yaml"


def config_archive(cfg: Config) -> Path:
    """The same config under its hash, kept for tracing a record (``config_hash`` in every record)."""
    return config_dir(cfg) / f"{config_hash(cfg)}.yaml"


# -------------------------------------------------------------------------------------------- data
def raw_dir(cfg: Config) -> Path:
    """Downloaded archives (resumable, checksummed)."""
    return Path(cfg.paths.data) / "raw"


def rehearsal_sources(cfg: Config) -> Path:
    """The rehearsal's generated archives (publishers' layouts, ``moebius.rehearsal.sources``), served on
    127.0.0.1 to the real downloader; ``sources.json`` in it is what the fetches check against."""
    return Path(cfg.paths.data) / "rehearsal_sources"


def generated_weights(cfg: Config) -> Path:
    """The stamp a rehearsal's weight generation leaves when every file is written: at the weights
    root beside the ledger (``GENERATED.json``), which an interrupted generation keeps."""
    from moebius.weights import weights_root

    return weights_root(cfg.weights.dir) / "GENERATED.done"


def datasets_root(cfg: Config) -> Path:
    return Path(cfg.paths.data) / "datasets"


def dataset_dir(cfg: Config, dataset: str, split: str) -> Path:
    """``<data>/datasets/<dataset>/<split>/``: ``<id>.png`` + ``manifest.csv``."""
    return datasets_root(cfg) / dataset / split


def dataset_manifest(cfg: Config, dataset: str, split: str) -> Path:
    return dataset_dir(cfg, dataset, split) / MANIFEST


def train_manifests(cfg: Config, datasets: tuple[str, ...] | list[str]) -> list[Path]:
    """The ``train`` splits a training run streams from."""
    return [dataset_manifest(cfg, d, "train") for d in datasets]


def benchmark_dir(cfg: Config, benchmark: str) -> Path:
    """``<data>/benchmarks/<benchmark>/``: the selected, preprocessed images + ``manifest.csv``."""
    return Path(cfg.paths.data) / "benchmarks" / benchmark


def benchmark_manifest(cfg: Config, benchmark: str) -> Path:
    return benchmark_dir(cfg, benchmark) / MANIFEST


def benchmark_source(cfg: Config, benchmark: str) -> Path:
    """The dataset split a benchmark is cut from (its manifest)."""
    bench = cfg.benchmark(benchmark)
    return dataset_manifest(cfg, bench.dataset, bench.split)


# ------------------------------------------------------------------------------------------- masks
def mask_set_dir(cfg: Config, protocol: str, version: int | str, benchmark: str) -> Path:
    """A generated set: ``<masks>/<protocol>/v<version>/<benchmark>/`` (255 = hole)."""
    return Path(cfg.paths.masks) / protocol / f"v{version}" / benchmark


def official_mask_dir(cfg: Config, benchmark: str) -> Path:
    """An imported set of the authors' masks: ``<masks>/official/v<version>/<benchmark>/``."""
    from moebius.masks.official import official_dir  # the import layout's version is owned there

    return official_dir(cfg.paths.masks, benchmark)


def mask_dir(cfg: Config, benchmark: str) -> Path:
    """The stored set that scores ``benchmark``: the imported official one (``masks.source`` or the
    benchmark's ``mask_source``), else its protocol's generated one."""
    if cfg.mask_source(benchmark) == "official":
        return official_mask_dir(cfg, benchmark)
    from moebius.masks.registry import get_protocol

    protocol = get_protocol(cfg.benchmark(benchmark).mask_protocol)
    return mask_set_dir(cfg, protocol.name, protocol.version, benchmark)


def mask_manifest(cfg: Config, benchmark: str) -> Path:
    return mask_dir(cfg, benchmark) / MANIFEST


def mask_stats(cfg: Config) -> dict[str, Path]:
    """``moebius masks stats``: fresh-draw statistics, stored-set statistics, the histogram."""
    results = Path(cfg.paths.results)
    return {
        "stats": results / "masks" / "hole_ratio_stats.csv",
        "sets": results / "masks" / "stored_sets.csv",
        "plot": plot_file(cfg, "mask_hole_ratios"),
    }


# -------------------------------------------------------------------------------------------- runs
def run_dir(cfg: Config, name: str) -> Path:
    """``<checkpoints>/<name>/`` for vae | teacher | distill | distill_nokd."""
    if name not in NAMED_RUNS:
        raise UnknownNameError.of("run", name, NAMED_RUNS)
    return Path(cfg.paths.checkpoints) / name


def ablation_arch_run(cfg: Config, exp: str) -> Path:
    """Table 2: ``<checkpoints>/ablation_arch/exp<N>/``."""
    return Path(cfg.paths.checkpoints) / "ablation_arch" / exp


def ablation_loss_run(cfg: Config, combo: str) -> Path:
    """Table 5: ``<checkpoints>/ablation_loss/<combo>/`` (scored as model ``loss_<combo>``)."""
    return Path(cfg.paths.checkpoints) / "ablation_loss" / combo


def finetune_run(cfg: Config, model: str, target: str) -> Path:
    """Per-benchmark-family weights: ``<checkpoints>/finetune/<model>_<target>/``."""
    return Path(cfg.paths.checkpoints) / "finetune" / f"{model}_{target}"


def run_file(run: Path | str) -> Path:
    """A run folder's ``run.json`` (its presence marks a finished run)."""
    return Path(run) / RUN_JSON


def train_metrics(run: Path | str) -> Path:
    return Path(run) / TRAIN_METRICS


def sample_run(cfg: Config, experiment: str, model: str, benchmark: str) -> Path | None:
    """Run folder of the model behind a sample folder, or None for a model without one (baselines).

    Tables 1, 3, 4, 6, 7 score our models with the weights fine-tuned for the benchmark's family."""
    if _experiment(experiment) in ("main", "ood", "cfg_sweep") and model in DIFFUSION_OURS:
        return finetune_run(cfg, model, cfg.benchmark(benchmark).finetune)
    if experiment == "ablation_arch":
        return ablation_arch_run(cfg, model)
    if experiment == "ablation_loss":
        return ablation_loss_run(cfg, model.removeprefix("loss_"))
    return None


def sample_vae(cfg: Config, experiment: str, model: str, benchmark: str) -> Path | None:
    """The VAE run a sample folder's model decodes with (None where the model has no run)."""
    return run_dir(cfg, "vae") if sample_run(cfg, experiment, model, benchmark) is not None else None


# ----------------------------------------------------------------------------------------- samples
def suite_benchmarks(cfg: Config, experiment: str, model: str | None = None) -> list[str]:
    """The benchmarks of a suite: ``main`` = every in-distribution one, ``ood`` = the zero-shot ones;
    with ``model``, those it is sampled on (``moebius.eval.baselines.benchmarks_for``: the academic
    baselines only where the paper has their row)."""
    if experiment not in SUITE_EXPERIMENTS:
        raise UnknownNameError.of("suite experiment", experiment, SUITE_EXPERIMENTS)
    ood = experiment == "ood"
    names = [b for b in sorted(cfg.benchmarks) if cfg.benchmarks[b].ood == ood]
    if model is None:
        return names
    from moebius.eval.baselines import benchmarks_for  # torch-free: the baselines table, not their code

    return benchmarks_for(cfg, model, names)


def _start_dir(start: str | None) -> str:
    """Samples and records from a sampler start other than ``sample.start`` (``eval.sampler_starts``)
    live under ``start_<start>/``; None is the config's own start."""
    return "" if start is None else f"start_{start}"


def samples_root(cfg: Config, experiment: str, start: str | None = None) -> Path:
    return Path(cfg.paths.results) / "samples" / _start_dir(start) / experiment


def sample_dir(cfg: Config, experiment: str, model: str, benchmark: str, start: str | None = None) -> Path:
    """``<results>/samples/[start_<s>/]<experiment>/<model>/<benchmark>/``: ``<id>.png`` composites +
    ``meta.json`` (a CFG sweep: ``g<scale>/`` folders + ``sweep.json``)."""
    return samples_root(cfg, experiment, start) / model / benchmark


def sample_done(cfg: Config, experiment: str, model: str, benchmark: str, start: str | None = None) -> Path:
    """The file written last in a sample folder: ``sweep.json`` for a CFG sweep, else ``meta.json``."""
    done = SWEEP if experiment == "cfg_sweep" else META
    return sample_dir(cfg, experiment, model, benchmark, start) / done


def suite_file(cfg: Config, experiment: str, model: str, start: str | None = None) -> Path:
    """``<results>/samples/[start_<s>/]<experiment>/<model>/suite.json``, written after its sample folders."""
    return samples_root(cfg, experiment, start) / model / SUITE


# ----------------------------------------------------------------------------------------- records
def record_file(cfg: Config, experiment: str, model: str, benchmark: str | None = None,
                start: str | None = None) -> Path:
    """Result records: ``<results>/records/[start_<s>/]<experiment>/<model>.json`` for a suite or a
    profile (``experiment="efficiency"``), ``…/<experiment>/<model>/<benchmark>.json`` for one benchmark."""
    base = Path(cfg.paths.results) / "records" / _start_dir(start) / experiment
    return base / f"{model}.json" if benchmark is None else base / model / f"{benchmark}.json"


# ------------------------------------------------------------------------------------------ report
def table_file(cfg: Config, name: str) -> Path:
    return Path(cfg.paths.results) / "tables" / f"{name}.csv"


def plot_file(cfg: Config, name: str) -> Path:
    return Path(cfg.paths.results) / "plots" / f"{name}.png"


def report_files(cfg: Config) -> dict[str, Path]:
    """What a reviewer opens: the Markdown report, the offline page, its thumbnails, the DVC metrics,
    and the KD comparison."""
    results = Path(cfg.paths.results)
    return {
        "report": results / "report.md",
        "html": results / "index.html",
        "thumbs": results / "thumbs",
        "metrics": results / "metrics.json",
        "kd_vs_nokd": results / "training" / "kd_vs_nokd.csv",
    }


REFERENCE_DIR = Path("results") / "reference"  # in git, beside the smoke results


def reference_dir(cfg: Config) -> Path:
    """The paper's reported numbers: the files in git, wherever ``paths.results`` puts a run's results
    (a rehearsal's or a cluster's results folder holds no copy of them)."""
    return REFERENCE_DIR


def log_file(cfg: Config, *parts: str) -> Path:
    """``<logs>/<parts…>``: where a job's stdout and stderr go."""
    return Path(cfg.paths.logs).joinpath(*parts)
