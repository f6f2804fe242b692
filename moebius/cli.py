"""`moebius …`: the command line the Snakemake rules call.

Each command parses its options, loads the config, and calls one package function. The workflow's
sampling and scoring jobs are named by (experiment, model, benchmark) and find their folders through
`moebius.layout`, as the rules do; other output paths are explicit arguments. A user error (bad config, corrupt image, wrong checksum, missing weights, …) is
printed as one line `moebius: error: …` with exit status 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click

from moebius import layout
from moebius.config import (
    Config,
    OfficialMasksConfig,
    SampleConfig,
    config_hash,
    dump_yaml,
    json_schema,
    literal_choices,
    load_config,
)
from moebius.errors import ConfigError, MoebiusError
# Choices come from the registries (or the config's checked copies of those that import torch); both
# modules below import nothing heavy, so `--help` stays fast.
from moebius.report.names import OFFICIAL_KINDS, OURS, SCORED_EXPERIMENTS, SUITE_EXPERIMENTS, build_name
from moebius.weights import OFFICIAL_VARIANTS

DEFAULT_CONFIG = "config/smoke.yaml"

PathArg = click.Path(path_type=Path)
ExistingPath = click.Path(path_type=Path, exists=True)


def _cfg(ctx: click.Context) -> Config:
    return ctx.obj["config"]


def _call(target: str) -> Callable[..., Any]:
    """Import `module:function` only when the command runs (torch imports are slow)."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--config",
    "config_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"YAML config file(s), merged in order (later wins). Default: {DEFAULT_CONFIG}. Workflow jobs pass "
    "the resolved config the DAG was built from (<paths.logs>/config/resolved.yaml).",
)
@click.pass_context
def cli(ctx: click.Context, config_files: tuple[Path, ...]) -> None:
    """Reproduce the Moebius paper's tables (see README.md)."""
    ctx.ensure_object(dict)
    files = config_files or (Path(DEFAULT_CONFIG),)
    ctx.obj["config_files"] = files
    ctx.obj["config"] = load_config(*files)


# ------------------------------------------------------------------------------------------ config
@cli.group()
def config() -> None:
    """Inspect and validate the configuration."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the resolved config as YAML."""
    click.echo(dump_yaml(_cfg(ctx)), nl=False)


@config.command("hash")
@click.pass_context
def config_hash_cmd(ctx: click.Context) -> None:
    """Print the config hash recorded in every result."""
    click.echo(config_hash(_cfg(ctx)))


@config.command("schema")
@click.option("--out", type=PathArg, default=None, help="Write the schema here instead of stdout.")
def config_schema(out: Path | None) -> None:
    """Print (or write) the JSON schema generated from moebius/config.py."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        from moebius.atomic import write_text

        write_text(out, text)


@config.command("resolve")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one setting after the files (dotted key, YAML value: sample.steps=3).")
@click.option("--expect-hash", default=None, help="Refuse unless the resolved config has this hash.")
@click.option("--out", "outs", type=PathArg, multiple=True, required=True, help="Write the resolved YAML here (repeatable).")
@click.pass_context
def config_resolve(ctx: click.Context, sets: tuple[str, ...], expect_hash: str | None, outs: tuple[Path, ...]) -> None:
    """Merge the --config files and --set overrides into one resolved YAML file, written atomically (the
    workflow's first job: every other job reads it with --config)."""
    _call("moebius.config:write_resolved")(ctx.obj["config_files"], _call("moebius.keyvalue:overrides")(sets),
                                           list(outs), expect_hash=expect_hash)


@config.command("validate")
@click.pass_context
def config_validate(ctx: click.Context) -> None:
    """Validate the config files (types, ranges, names, cross-references: `load_config`, as Snakemake
    does); prints OK and the hash."""
    click.echo(f"OK {config_hash(_cfg(ctx))}")


# -------------------------------------------------------------------------------------------- data
@cli.group()
def data() -> None:
    """Datasets and benchmark image sets."""


@data.command("smoke")
@click.option("--dataset", required=True, help="smoke_natural | smoke_portrait | smoke_ood_natural | smoke_ood_portrait")
@click.option("--out-root", type=PathArg, required=True, help="Parent folder; writes <out-root>/<dataset>/<split>/.")
@click.pass_context
def data_smoke(ctx: click.Context, dataset: str, out_root: Path) -> None:
    """Make a smoke dataset from photographs shipped in installed packages."""
    cfg = _cfg(ctx)
    _call("moebius.data.smoke:make_smoke_dataset")(
        dataset, out_root, n_train=cfg.data.n_train, n_test=cfg.data.n_test, size=cfg.data.image_size, seed=cfg.seed
    )


@data.command("fetch")
@click.option("--dataset", required=True, help="places365 | celebahq | ffhq | lvis | deepfakeface")
@click.option("--split", required=True)
@click.option("--raw-dir", type=PathArg, required=True, help="Where archives are downloaded (resumable).")
@click.option("--out-root", type=PathArg, required=True, help="Writes <out-root>/<dataset>/<split>/.")
@click.option("--sources", type=ExistingPath, default=None,
              help="data.source rehearsal: the generated archives (`data rehearsal-sources`), served on 127.0.0.1.")
@click.pass_context
def data_fetch(ctx: click.Context, dataset: str, split: str, raw_dir: Path, out_root: Path,
               sources: Path | None) -> None:
    """Download, verify and extract a real dataset split (full scale; rehearsal: from its generated sources)."""
    cfg = _cfg(ctx)
    if (cfg.data.source == "rehearsal") != (sources is not None):
        raise ConfigError(f"data fetch: --sources goes with data.source rehearsal, and only there "
                          f"(data.source is {cfg.data.source!r})")
    kwargs = {"seed": cfg.seed, "ffhq_validation": cfg.data.ffhq_validation}
    if sources is None:
        _call("moebius.data.registry:fetch_dataset")(dataset, raw_dir=raw_dir, out_dir=out_root / dataset / split,
                                                      split=split, **kwargs)
    else:
        _call("moebius.rehearsal.sources:fetch_rehearsal_dataset")(dataset, raw_dir, out_root / dataset / split,
                                                                    split, sources, **kwargs)


@data.command("rehearsal-sources")
@click.option("--out", type=PathArg, required=True, help="Folder of the generated archives and sources.json.")
@click.pass_context
def data_rehearsal_sources(ctx: click.Context, out: Path) -> None:
    """Write small archives in the publishers' layouts for the rehearsal (data.rehearsal_images per split)."""
    cfg = _cfg(ctx)
    written = _call("moebius.rehearsal.sources:write_sources")(out, n_images=cfg.data.rehearsal_images,
                                                               seed=cfg.seed, datasets=cfg.data.datasets)
    click.echo(f"wrote {len(written)} archives to {out}")


@data.command("download")
@click.argument("url")
@click.option("--dest", type=PathArg, required=True, help="Final file; a partial download waits in DEST.part.")
@click.option("--sha256", default=None, help="Expected sha256; a mismatch deletes the bytes and fails.")
def data_download(url: str, dest: Path, sha256: str | None) -> None:
    """Download one file: resumable, checksummed, atomic."""
    _call("moebius.data.download:download")(url, dest, sha256=sha256)


@data.command("extract")
@click.argument("archive", type=ExistingPath)
@click.option("--dest", type=PathArg, required=True)
@click.option("--max-size", type=click.IntRange(min=0), default=None, help="Refuse archives unpacking to more bytes.")
@click.option("--max-ratio", type=click.FloatRange(min=1.0), default=None,
              help="Refuse archives expanding more than this many times (default 20; a zip bomb: ~1000).")
def data_extract(archive: Path, dest: Path, max_size: int | None, max_ratio: float | None) -> None:
    """Extract a .tar/.zip safely: files and folders only (no links, devices, absolute or `..` names), size-capped."""
    limits = {"max_ratio": max_ratio} if max_ratio is not None else {}
    _call("moebius.data.download:extract")(archive, dest, max_total=max_size, **limits)


@data.command("verify")
@click.argument("dirs", nargs=-1, required=True, type=PathArg)
def data_verify(dirs: tuple[Path, ...]) -> None:
    """Check every image of each DIR against its manifest.csv (sha256); one line per problem, exit 2 if any."""
    n, problems = _call("moebius.data.manifest:verify_dirs")(dirs)
    for line in problems:
        click.echo(f"moebius: error: {line}", err=True)
    if problems:
        sys.exit(2)
    click.echo(f"ok: {n} images")


@data.command("benchmark")
@click.option("--benchmark", required=True)
@click.option("--dataset-dir", type=ExistingPath, required=True, help="<data>/datasets/<dataset>/<split>")
@click.option("--out", type=PathArg, required=True)
@click.pass_context
def data_benchmark(ctx: click.Context, benchmark: str, dataset_dir: Path, out: Path) -> None:
    """Select and preprocess a benchmark's images (MAT crop / MI-GAN resize)."""
    _call("moebius.data.benchmarks:prepare_configured")(_cfg(ctx), benchmark, dataset_dir, out)


# ------------------------------------------------------------------------------------------- masks
@cli.group()
def masks() -> None:
    """Mask protocols: stored, seeded sets and their statistics."""


@masks.command("generate")
@click.option("--benchmark", required=True)
@click.option("--images", type=ExistingPath, required=True, help="The benchmark's image folder (manifest.csv).")
@click.option("--out", type=PathArg, required=True)
@click.pass_context
def masks_generate(ctx: click.Context, benchmark: str, images: Path, out: Path) -> None:
    """Write the benchmark's mask set (255 = hole) and its manifest."""
    _call("moebius.masks.store:write_benchmark_masks")(_cfg(ctx), benchmark, images, out)


# Copied from moebius.data.registry.OFFICIAL_MASKS_URL (kept here so `--help` imports nothing; a test
# keeps the two equal).
OFFICIAL_MASKS_URL = "https://drive.google.com/drive/folders/13J91fdQt2RnHp4j-VzdtSrHRHPA1OxJ5?usp=sharing"


@masks.command(
    "import",
    help="Import the authors' published evaluation masks of one benchmark (SOURCE: the archive or folder as "
    "downloaded) as a stored set, 255 = hole.\n\n\b\nDownload (Moebius README, 'Evaluation Resources'):\n"
    f"{OFFICIAL_MASKS_URL}\n\nRefused when the count, the size or the names of the masks do not match the "
    "benchmark's images.",
)
@click.argument("source", type=ExistingPath)
@click.option("--benchmark", required=True)
@click.option("--images", type=ExistingPath, default=None,
              help="The benchmark's image folder. Default: <paths.data>/benchmarks/<benchmark> (moebius.layout).")
@click.option("--out", type=PathArg, default=None, help="Default: <paths.masks>/official/v1/<benchmark>.")
@click.option("--polarity", type=click.Choice(literal_choices(OfficialMasksConfig, "polarity")), default=None,
              help="How to read the files: 255_hole as the official pipeline does, 255_known (MAT) inverts. "
              "Default: masks.official.polarity.")
@click.option("--pairing", type=click.Choice(literal_choices(OfficialMasksConfig, "pairing")), default=None,
              help="stem: a file's name is an image id or the original image's name; sorted: the i-th file "
              "with the i-th image by name (the official script). Default: masks.official.pairing.")
@click.pass_context
def masks_import(ctx: click.Context, source: Path, benchmark: str, images: Path | None, out: Path | None,
                 polarity: str | None, pairing: str | None) -> None:
    cfg = _cfg(ctx)
    cfg.benchmark(benchmark)  # a typo is a one-line error with a hint
    summary = _call("moebius.masks.official:import_official_masks")(
        source, benchmark, images or layout.benchmark_dir(cfg, benchmark), out or layout.official_mask_dir(cfg, benchmark),
        polarity=polarity or cfg.masks.official.polarity, pairing=pairing or cfg.masks.official.pairing,
    )
    click.echo(f"imported {summary['n']} official masks of {benchmark} ({summary['size']} px) into {summary['dir']}: "
               f"mean hole ratio {summary['mean_hole_ratio']:.3f} with 255 read as "
               f"{'hole' if summary['source_polarity'] == '255_hole' else 'known (inverted)'}; "
               f"source sha256 {summary['source_sha256'][:12]}..., manifest sha256 {summary['manifest_sha256'][:12]}...")


@masks.command("stats")
@click.option("--set", "mask_dirs", multiple=True, type=ExistingPath, help="Stored mask sets to summarise.")
@click.option("--out-csv", type=PathArg, required=True, help="Per-protocol statistics of fresh draws.")
@click.option("--sets-csv", type=PathArg, required=True, help="Statistics of the stored sets.")
@click.option("--plot", type=PathArg, required=True, help="Hole-ratio histogram (PNG).")
@click.pass_context
def masks_stats(ctx: click.Context, mask_dirs: tuple[Path, ...], out_csv: Path, sets_csv: Path, plot: Path) -> None:
    """Hole-ratio statistics per protocol (mean, quartiles, 10% bins, share in [0.4, 0.5])."""
    cfg = _cfg(ctx)
    _call("moebius.masks.stats:write_stats")(list(mask_dirs), cfg.masks.stats_n, cfg.masks.seed, out_csv, sets_csv, plot)


# ---------------------------------------------------------------------------------------- training
@cli.group()
def train() -> None:
    """Train the VAE / teacher (smoke scale), or prepare official weights (full scale)."""


def _control(resume: bool, fresh: bool):
    """The ``RunControl`` of a train command's --resume/--fresh (imported when a run starts, not for --help)."""
    return _call("moebius.train:RunControl")(resume=resume, fresh=fresh)


@train.command("vae")
@click.option("--out", type=PathArg, required=True)
@click.option(
    "--resume/--no-resume", default=True,
    help="Continue from the last checkpoint in --out if its settings match; --no-resume: --out must hold no run.",
)
@click.option("--fresh", is_flag=True, help="Move an earlier run in --out aside to OUT.old-<time> and start over.")
@click.pass_context
def train_vae(ctx: click.Context, out: Path, resume: bool, fresh: bool) -> None:
    """Train the tiny VAE (smoke) or install the official SDXL VAE (full)."""
    _call("moebius.train:train_vae")(_cfg(ctx), out, _control(resume, fresh))  # official or trained: decided inside


@train.command("teacher")
@click.option("--vae", "vae_dir", type=ExistingPath, required=True)
@click.option("--out", type=PathArg, required=True)
@click.option("--resume/--no-resume", default=True)
@click.option("--fresh", is_flag=True, help="Move an earlier run in --out aside to OUT.old-<time> and start over.")
@click.pass_context
def train_teacher(ctx: click.Context, vae_dir: Path, out: Path, resume: bool, fresh: bool) -> None:
    """Train the teacher from scratch (smoke) or install the official PixelHacker (full)."""
    _call("moebius.train:train_teacher")(_cfg(ctx), vae_dir, out, _control(resume, fresh))  # official or trained: decided inside


@train.command("official")
@click.option("--kind", type=click.Choice(OFFICIAL_KINDS), required=True)
@click.option("--variant", type=click.Choice(OFFICIAL_VARIANTS), required=True)
@click.option("--out", type=PathArg, required=True)
@click.pass_context
def train_official(ctx: click.Context, kind: str, variant: str, out: Path) -> None:
    """Install an official checkpoint (HF hustvl/*) from the weights directory as a run directory."""
    _call("moebius.train:prepare_official")(_cfg(ctx), kind, variant, out)


@train.command("distill")
@click.option("--student", default="student", help="student | exp1 … exp15")
@click.option("--teacher", "teacher_dir", type=PathArg, default=None, help="Teacher run dir (needed with --kd).")
@click.option("--vae", "vae_dir", type=ExistingPath, required=True)
@click.option("--out", type=PathArg, required=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Override distill.train.steps.")
@click.option("--losses", default=None, help="Comma-separated subset of c_kd,f_kd,task,perceptual.")
@click.option("--kd/--no-kd", default=True, help="--no-kd trains with L_task only (Table 2 KD-off rows).")
@click.option("--resume/--no-resume", default=True)
@click.option("--fresh", is_flag=True, help="Move an earlier run in --out aside to OUT.old-<time> and start over.")
@click.pass_context
def train_distill(
    ctx: click.Context, student: str, teacher_dir: Path | None, vae_dir: Path, out: Path, steps: int | None,
    losses: str | None, kd: bool, resume: bool, fresh: bool,
) -> None:
    """Adaptive multi-granularity distillation (Sec. 3.3) of a student from the teacher."""
    loss_tuple = tuple(s.strip() for s in losses.split(",")) if losses else None
    if kd and teacher_dir is None:
        raise click.UsageError("--teacher is required unless --no-kd")
    _call("moebius.train:distill")(
        _cfg(ctx), student, teacher_dir, vae_dir, out, steps=steps, losses=loss_tuple, kd=kd,
        control=_control(resume, fresh),
    )


@train.command("finetune")
@click.option("--model", type=click.Choice([build_name(key) for key in OURS]), required=True)
@click.option("--init", "init_dir", type=ExistingPath, required=True)
@click.option("--vae", "vae_dir", type=ExistingPath, required=True)
@click.option("--target", required=True, help="A key of finetune.targets (places2 | celebahq | ffhq).")
@click.option("--out", type=PathArg, required=True)
@click.option("--resume/--no-resume", default=True)
@click.option("--fresh", is_flag=True, help="Move an earlier run in --out aside to OUT.old-<time> and start over.")
@click.pass_context
def train_finetune(
    ctx: click.Context, model: str, init_dir: Path, vae_dir: Path, target: str, out: Path, resume: bool, fresh: bool
) -> None:
    """Fine-tune a model on one benchmark family (Sec. 4.1)."""
    _call("moebius.train:finetune")(_cfg(ctx), model, init_dir, vae_dir, target, out, _control(resume, fresh))


@train.command("compare-kd")
@click.option("--run", "runs", multiple=True, required=True, help="NAME=RUN_DIR, e.g. exp9=checkpoints/ablation/exp9")
@click.option("--vae", "vae_dir", type=ExistingPath, required=True)
@click.option("--out", type=PathArg, required=True)
@click.pass_context
def train_compare_kd(ctx: click.Context, runs: tuple[str, ...], vae_dir: Path, out: Path) -> None:
    """Validation loss of runs trained with and without KD for the same steps (CSV)."""
    parsed = {name: Path(path) for name, path in _call("moebius.keyvalue:parse_pairs")(runs, "--run", form="NAME=RUN_DIR").items()}
    _call("moebius.train:compare_kd")(_cfg(ctx), parsed, vae_dir, out)


# -------------------------------------------------------------------------------------- evaluation
EXPERIMENT_CHOICES = click.Choice(SCORED_EXPERIMENTS)
SUITE_CHOICES = click.Choice(SUITE_EXPERIMENTS)
START_CHOICES = click.Choice(literal_choices(SampleConfig, "start"))


@cli.command("sample")
@click.option("--experiment", type=EXPERIMENT_CHOICES, default=None,
              help="Names the folders (moebius.layout): images, mask set, run, VAE and --out follow from it.")
@click.option("--model", "model_key", required=True, help="moebius | pixelhacker | flux_fill | sd35_inpaint | telea | …")
@click.option("--benchmark", required=True)
@click.option(
    "--guidance", "guidances", type=click.FloatRange(min=0.0), multiple=True,
    help="CFG scale(s) (default: by the benchmark's domain; cfg_sweep: eval.cfg_sweep). Several make a sweep.",
)
@click.option("--start", type=START_CHOICES, default=None,
              help="Sampler start for moebius / pixelhacker (default: sample.start); with --experiment, the folder "
              "is under samples/start_<start>/.")
@click.option("--images", type=ExistingPath, default=None, help="Override: the benchmark's image folder.")
@click.option("--masks", "masks_dir", type=ExistingPath, default=None, help="Override: the mask set.")
@click.option("--run", "run_dir", type=PathArg, default=None, help="Override: run dir of a trained/official model.")
@click.option("--vae", "vae_dir", type=PathArg, default=None, help="Override: the VAE run.")
@click.option("--out", type=PathArg, default=None, help="Override: sample folder (a sweep: OUT/g<scale>/ + sweep.json).")
@click.pass_context
def sample(
    ctx: click.Context, experiment: str | None, model_key: str, benchmark: str, guidances: tuple[float, ...],
    start: str | None, images: Path | None, masks_dir: Path | None, run_dir: Path | None, vae_dir: Path | None,
    out: Path | None,
) -> None:
    """Inpaint a benchmark: 20-step DDIM with LCG guidance, composited with the known region."""
    _call("moebius.eval.jobs:sample")(
        _cfg(ctx), experiment, model_key, benchmark, guidances=guidances, images=images, masks=masks_dir,
        run=run_dir, vae=vae_dir, out=out, start=start,
    )


@cli.command("sample-suite")
@click.option("--experiment", type=SUITE_CHOICES, required=True)
@click.option("--model", "model_key", required=True)
@click.option("--benchmark", "benchmarks", multiple=True, help="Only these benchmarks of the suite (default: all).")
@click.option("--start", type=START_CHOICES, default=None,
              help="Sampler start for moebius / pixelhacker (default: sample.start; eval.sampler_starts); "
              "folders under samples/start_<start>/.")
@click.pass_context
def sample_suite(ctx: click.Context, experiment: str, model_key: str, benchmarks: tuple[str, ...], start: str | None) -> None:
    """`sample` for the benchmarks of a suite that a model runs on, in one process (the imports are paid
    once); suite.json, written last, lists the folders."""
    _call("moebius.eval.jobs:sample_suite")(_cfg(ctx), experiment, model_key, benchmarks, start)


@cli.command("score")
@click.option("--experiment", type=EXPERIMENT_CHOICES, required=True)
@click.option("--model", "model_key", required=True)
@click.option("--benchmark", required=True)
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="Recorded in the records' settings.")
@click.pass_context
def score(ctx: click.Context, experiment: str, model_key: str, benchmark: str, settings: tuple[str, ...]) -> None:
    """FID / LPIPS (+ per-hole-ratio bins, bootstrap CIs) of a sample folder as result records; every
    folder follows from the names (moebius.layout)."""
    extra = _call("moebius.keyvalue:parse_pairs")(settings, "--setting", typed=True)
    _call("moebius.eval.jobs:score")(_cfg(ctx), experiment, model_key, benchmark, settings=extra)


@cli.command("score-suite")
@click.option("--experiment", type=SUITE_CHOICES, required=True)
@click.option("--model", "model_key", required=True)
@click.option("--benchmark", "benchmarks", multiple=True, help="Only these benchmarks of the suite (default: all).")
@click.option("--start", type=START_CHOICES, default=None,
              help="Score the samples of this other sampler start (records under records/start_<start>/).")
@click.pass_context
def score_suite(ctx: click.Context, experiment: str, model_key: str, benchmarks: tuple[str, ...], start: str | None) -> None:
    """`score` for the benchmarks of a suite in one process, as one record file."""
    _call("moebius.eval.jobs:score_suite")(_cfg(ctx), experiment, model_key, benchmarks, start)


@cli.command("evaluate")
@click.option("--samples", type=ExistingPath, required=True, help="Sample folder (for cfg_sweep: the folder holding sweep.json).")
@click.option("--images", type=ExistingPath, required=True, help="Ground truth (the benchmark's images).")
@click.option("--masks", "masks_dir", type=ExistingPath, required=True)
@click.option("--model", "model_key", required=True)
@click.option("--benchmark", required=True)
@click.option("--experiment", type=EXPERIMENT_CHOICES, required=True)
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="Recorded in the records' settings.")
@click.option("--out", type=PathArg, required=True, help="Records JSON.")
@click.pass_context
def evaluate(
    ctx: click.Context, samples: Path, images: Path, masks_dir: Path, model_key: str, benchmark: str,
    experiment: str, settings: tuple[str, ...], out: Path,
) -> None:
    """`score` with every folder given: any sample folder, scored against any images and masks."""
    extra = _call("moebius.keyvalue:parse_pairs")(settings, "--setting", typed=True)
    _call("moebius.eval.jobs:score")(
        _cfg(ctx), experiment, model_key, benchmark, samples=samples, images=images, masks=masks_dir, out=out,
        settings=extra,
    )


@cli.command("leak")
@click.option("--masks", "mask_specs", multiple=True,
              help="BENCHMARK=MASK_DIR: also the paste-back leak over that mask set (repeatable).")
@click.option("--max-masks", type=click.IntRange(min=1), default=256, help="Masks read per set.")
@click.option("--out", type=PathArg, required=True, help="CSV (results/tables/ground_truth_leak.csv).")
@click.pass_context
def leak(ctx: click.Context, mask_specs: tuple[str, ...], max_masks: int, out: Path) -> None:
    """How much ground truth the official inference lets into the hole (gt_noised start, blurred paste-back)."""
    masks = {name: Path(path) for name, path in _call("moebius.keyvalue:parse_pairs")(mask_specs, "--masks", form="BENCHMARK=MASK_DIR").items()}
    _call("moebius.eval.leak:write_leak_table")(_cfg(ctx), out, masks, max_masks)


@cli.command("profile")
@click.option("--model", "model_keys", multiple=True, required=True, help="moebius | pixelhacker | exp1 … exp15 (repeatable)")
@click.option("--latency/--no-latency", default=True, help="Also time ms per step (params and MACs always).")
@click.option("--out", type=PathArg, required=True, help="Records JSON (params, GMACs, ms/step, total).")
@click.pass_context
def profile(ctx: click.Context, model_keys: tuple[str, ...], latency: bool, out: Path) -> None:
    """Params, compute (thop MACs and torch FLOPs) and ms per denoising step at batch 1."""
    from moebius.records import write_records

    cfg = _cfg(ctx)
    profile_model = _call("moebius.eval.profile:profile_model")
    records = [rec for key in model_keys for rec in profile_model(cfg, key, cfg.profile.preset, timing=latency)]
    write_records(out, records)


# ------------------------------------------------------------------------------------------ report
@cli.command("report")
@click.option("--records", "record_files", multiple=True, type=ExistingPath, required=True)
@click.option("--reference", type=ExistingPath, default=Path("results/reference"))
@click.option("--train-metrics", multiple=True, help="NAME=PATH to a train_metrics.csv, for training curves.")
@click.option("--mask-stats", type=PathArg, default=None)
@click.option("--tables-dir", type=PathArg, required=True)
@click.option("--plots-dir", type=PathArg, required=True)
@click.option("--report", "report_md", type=PathArg, required=True)
@click.option("--metrics-json", type=PathArg, required=True)
@click.option("--html", "html_out", type=PathArg, default=None, help="Also write the offline web page here.")
@click.option("--thumbs-dir", type=PathArg, default=None, help="Grid thumbnails (default: thumbs/ beside --html).")
@click.option(
    "--grid", "grid_specs", multiple=True,
    help="A qualitative grid: experiment=E,benchmark=B,images=DIR,masks=DIR,samples=DIR,models=M1+M2 (repeatable).",
)
@click.option("--grid-images", type=click.IntRange(1, 32), default=4, help="Images (rows) per qualitative grid.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, help="Processes that draw the figures.")
def report(
    record_files: tuple[Path, ...], reference: Path, train_metrics: tuple[str, ...], mask_stats: Path | None,
    tables_dir: Path, plots_dir: Path, report_md: Path, metrics_json: Path, html_out: Path | None,
    thumbs_dir: Path | None, grid_specs: tuple[str, ...], grid_images: int, workers: int,
) -> None:
    """Tables 1-7 + efficiency (CSV), plots, results/report.md and metrics.json, from records only.

    With --html, also the web page (tables, figures, qualitative grids of --grid, provenance)."""
    from moebius.records import read_records

    if grid_specs and html_out is None:
        raise click.UsageError("--grid needs --html (the grids' thumbnails are for the page)")
    parse_grid = _call("moebius.report.qualitative:parse_grid")
    grid_list = [parse_grid(g) for g in grid_specs]  # malformed specs fail before any work
    records = read_records(record_files)
    tables = _call("moebius.report.tables:build_tables")(records, reference, tables_dir)
    curves = {name: Path(path) for name, path in _call("moebius.keyvalue:parse_pairs")(train_metrics, "--train-metrics", form="NAME=PATH").items()}
    plots = _call("moebius.report.plots:make_plots")(tables_dir, plots_dir, curves, mask_stats, workers)
    grids = []
    if html_out is not None:
        thumbs = thumbs_dir if thumbs_dir is not None else html_out.parent / "thumbs"
        grids = _call("moebius.report.qualitative:make_grids")(grid_list, thumbs, plots_dir, grid_images, workers)
    figures = plots + [figure for _, figure in grids]
    _call("moebius.report.page:write_report")(tables, figures, records, report_md, metrics_json)
    if html_out is not None:
        _call("moebius.report.html:write_html")(html_out, tables, figures, records, grids, report_md)


@cli.command("trace")
@click.argument("table_csv", type=ExistingPath)
@click.argument("row", type=click.IntRange(min=0))
def trace(table_csv: Path, row: int) -> None:
    """Show the record (value, config hash, data version, commit, file) behind one table row."""
    info = _call("moebius.report.trace:trace")(table_csv, row)
    click.echo(json.dumps(info, indent=2, default=str))


# ------------------------------------------------------------------------------------- your photo
@cli.command("inpaint")
@click.argument("image", type=PathArg)
@click.option("--mask", type=PathArg, default=None, help="Mask image of IMAGE's size (or give --box).")
@click.option("--box", default=None, help="x,y,w,h: a rectangular hole in IMAGE's pixels, instead of --mask.")
@click.option("--polarity", type=click.Choice(literal_choices(OfficialMasksConfig, "polarity")), default=None,
              help="Which colour of --mask is the hole; default: the smaller region is (with a warning).")
@click.option("--model", "model_key", default="moebius", help="moebius | pixelhacker | a baseline (telea, mat, …).")
@click.option("--weights", default="official", help="'official' (moebius.weights) or a training run folder.")
@click.option("--vae", "vae_dir", type=PathArg, default=None, help="VAE run folder (default: the run's run.json vae_dir).")
@click.option("--variant", type=click.Choice(OFFICIAL_VARIANTS), default="ft_places2",
              help="Which official checkpoint (and MAT's domain).")
@click.option("--fit", type=click.Choice(["pad", "resize"]), default="pad",
              help="pad: keep the aspect ratio, extend the edges; resize: stretch to the model's size.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Denoising steps (default: the config's).")
@click.option("--guidance", type=click.FloatRange(min=0.0), default=None, help="CFG scale (default: by domain).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Default: sample.seed.")
@click.option("--out", type=PathArg, required=True, help="Output PNG (IMAGE's size); what was done goes to OUT.png.json beside it.")
@click.pass_context
def inpaint(ctx: click.Context, image: Path, out: Path, **options: Any) -> None:
    """Inpaint your own photo (any size) with the benchmarks' models, sampler and paste-back."""
    record = _call("moebius.eval.photo:inpaint_photo")(_cfg(ctx), image, out, **options)
    click.echo(f"wrote {out} ({record['fit']['mode']}: {record['fit']['image'][0]}x{record['fit']['image'][1]} via "
               f"{record['fit']['model_input'][0]}x{record['fit']['model_input'][1]}; record: {out}.json)")


# ----------------------------------------------------------------------------------------- weights
@cli.group()
def weights() -> None:
    """External weight files: where each comes from and whether it is present."""


@weights.command("list")
@click.pass_context
def weights_list(ctx: click.Context) -> None:
    """List every external weight file, its source, licence and local status."""
    from moebius import weights as registry

    for entry in registry.list_weights():
        try:
            status = f"present  {registry.resolve_weight(entry.key, _cfg(ctx).weights.dir)}"
        except registry.MissingWeightError:
            status = f"missing  (put it at {registry.weights_root(_cfg(ctx).weights.dir) / entry.path})"
        click.echo(f"{entry.key:32s} {status}\n{'':32s} source: {entry.source} · licence: {entry.licence}")


@weights.command("check")
@click.argument("key")
@click.pass_context
def weights_check(ctx: click.Context, key: str) -> None:
    """Resolve one weight file; a missing file is a one-line error saying how to get it."""
    from moebius.weights import resolve_weight

    click.echo(resolve_weight(key, _cfg(ctx).weights.dir))


@weights.command("generate")
@click.option("--key", "keys", multiple=True, help="Only these (default: every file that can be generated).")
@click.option("--stamp", type=PathArg, default=None, help="Touched when every file is written (the DAG's output).")
@click.pass_context
def weights_generate(ctx: click.Context, keys: tuple[str, ...], stamp: Path | None) -> None:
    """Rehearsal: random-valued files in the official formats under weights.dir, with their GENERATED.json ledger."""
    cfg = _cfg(ctx)
    written = _call("moebius.rehearsal.weights:write_configured_weights")(cfg, keys or None, stamp)
    click.echo(f"generated {len(written)} weight files under {_call('moebius.weights:weights_root')(cfg.weights.dir)}")


@weights.command("convert-mat")
@click.argument("pkl", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=PathArg, required=True, help="The safetensors file to write (e.g. weights/mat/Places_512.safetensors).")
@click.option("--mat-repo", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A clone of github.com/fenglinglwb/MAT (the pickle's classes import its torch_utils/dnnlib).")
def weights_convert_mat(pkl: Path, out: Path, mat_repo: Path) -> None:
    """Convert an official MAT checkpoint (.pkl, code-carrying) to safetensors in an isolated subprocess."""
    summary = _call("moebius.eval.mat_convert:convert_mat_pickle")(pkl, out, mat_repo)
    click.echo(f"wrote {summary['out']} ({summary['tensors']} tensors, {summary['parameters']:,} parameters, "
               f"sha256 {summary['sha256']})")


@weights.command("export-gan")
@click.argument("key")
@click.option("--migan-repo", type=ExistingPath, required=True, help="A clone of github.com/Picsart-AI-Research/MI-GAN.")
@click.option("--state-dict", type=ExistingPath, required=True, help="The published .pt state dict (e.g. migan_256_ffhq.pt).")
@click.option("--out", type=PathArg, default=None, help="Where to write (default: the registry's path).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Trace on (default: cuda if present).")
@click.pass_context
def weights_export_gan(ctx: click.Context, key: str, migan_repo: Path, state_dict: Path, out: Path | None,
                       device: str | None) -> None:
    """Trace a MI-GAN / CoModGAN state dict to the TorchScript file the baselines load."""
    export = _call("moebius.eval.baseline_torchscript:export_gan")
    click.echo(export(key, migan_repo, state_dict, out, _cfg(ctx).weights.dir, device))


# OS errors that mean "the machine or the path cannot take this", not a bug: one line, exit 2.
_OS_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "not a directory",  # an output path runs through a file
    errno.EEXIST: "exists and is not a directory",  # mkdir(exist_ok=True) where a file is
    errno.EISDIR: "is a directory",  # a folder given where a file is read or written
}


def os_error_line(exc: OSError) -> str | None:
    """``disk full: /path`` for an OS error a user can fix, or None for anything else."""
    what = _OS_ERRORS.get(exc.errno or -1)
    if what is None:
        return None
    where = exc.filename if exc.filename is not None else "(path not reported)"
    return f"{what}: {where}"


class _StderrNow(logging.StreamHandler):
    """A handler that writes to ``sys.stderr`` as it is when a line is logged, not as it was when the
    handler was made: a caller that swaps stderr between two ``main()`` calls in one process (a test
    runner, an embedding tool) gets every line, never a write to a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 - logging.StreamHandler's attribute, looked up per record
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ / setStream assign it; stderr is read live
        pass


def _show_notices() -> None:
    """The package's log lines (a resumed run, a checkpoint fallback, a run moved aside) go to stderr as
    ``moebius: …``; other libraries' logging is left alone."""
    logger = logging.getLogger("moebius")
    if not any(isinstance(h, _StderrNow) for h in logger.handlers):
        handler = _StderrNow()
        handler.setFormatter(logging.Formatter("moebius: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main() -> None:
    """Entry point: inside a local workflow run, the command runs in a child of the run's fork server
    (`moebius.forkserver`: libraries imported once); otherwise, or when the server cannot take it, here."""
    from moebius import forkserver

    code = forkserver.forward(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    run()


def run() -> None:
    """The command of ``sys.argv``: user errors (``MoebiusError``, disk full, permissions) become one line
    and exit 2."""
    _show_notices()
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("moebius: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MoebiusError as exc:
        click.echo(f"moebius: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        line = os_error_line(exc)
        if line is None:
            raise
        click.echo(f"moebius: error: {line}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
