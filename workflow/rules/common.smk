# Config validation and the input functions shared by the rule files. Every path comes from
# moebius/layout.py, the module the CLI resolves the same names with. Parsing writes nothing and
# imports neither torch nor matplotlib: the resolved config is written when a run starts (config.smk).
import re
import shlex
from pathlib import Path

from snakemake.utils import validate

from moebius import layout
from moebius.config import TABLE2_KD, ablation_gpus, config_hash, load_config, to_dict, write_resolved
from moebius.report.names import build_name


# Fail before anything runs, with the CLI's loader and its one-line messages (types, ranges, names,
# cross-references): `moebius config validate` and this DAG accept exactly the same files. Snakemake
# would extend the Snakefile's `configfile:` (smoke.yaml) with every --configfile, so that full.yaml
# inherited the smoke settings it does not name; the CLI reads only the files it is given, and so
# does this: the command-line files alone when there are any, then any --config key=value.
CONFIG_FILES = [str(f) for f in workflow.overwrite_configfiles] or list(workflow.configfiles)
CONFIG_OVERRIDES = dict(workflow.config_settings.config or {})
CFG = load_config(*CONFIG_FILES, overrides=CONFIG_OVERRIDES)
# The resolved config against the JSON schema generated from moebius/config.py (catches a stale schema).
validate(to_dict(CFG), "../schemas/config.schema.json")

BENCHMARKS = sorted(CFG.benchmarks)
EXPERIMENTS = [f"exp{i}" for i in CFG.ablation.experiments]
LOSS_COMBOS = sorted(CFG.ablation.loss_combinations)
FINETUNE_TARGETS = sorted(CFG.finetune.targets)
# Models scored on every benchmark of Tables 1, 3, 4 and 7 (ours, the teacher, the industrial
# baselines through diffusers, and the classical OpenCV methods).
EVAL_MODELS = list(CFG.eval.models)
DIFFUSION_OURS = layout.DIFFUSION_OURS
SUITE_BENCHMARKS = {e: layout.suite_benchmarks(CFG, e) for e in layout.SUITE_EXPERIMENTS}
SUITES = [e for e in layout.SUITE_EXPERIMENTS if SUITE_BENCHMARKS[e]]
MOEBIUS = "moebius"


def path(p):
    """A layout path as the string Snakemake matches files by."""
    return str(p)


# ------------------------------------------------------------------------------ the resolved config
# Every job runs `moebius --config {params.config}`: the config this DAG was built from, written as one
# file when the run starts (`onstart`, config.smk), never while parsing. Its path is the same for every
# setting, so a job re-runs when, and only when, its own `cfg` parameter (the hash of the sections it
# reads, `section`) changes. Not an input: see config.smk for why.
CONFIG = path(layout.resolved_config(CFG))
CONFIG_HASH = config_hash(CFG)


def section(*names):
    """A hash of the config sections one job reads, used as a `params` entry, so that Snakemake
    re-runs a job when (and only when) one of its own settings changes."""
    return config_hash({n: getattr(CFG, n) for n in names})


# What a sample folder depends on: the sampler, the weights policy, the seed and the baselines' step
# counts, but not the metric settings (so changing eval.bootstrap re-scores without re-sampling).
SAMPLE_SETTINGS = section("sample", "weights", "seed") + config_hash([CFG.eval.flux_steps, CFG.eval.sd35_steps])


def run_json(run):
    return path(layout.run_file(run))


def sample_inputs_for(experiment, model, benchmark):
    """What one sample folder reads: the benchmark's images and mask set, and the model's run + VAE."""
    inputs = {
        "images": path(layout.benchmark_manifest(CFG, benchmark)),
        "masks": path(layout.mask_manifest(CFG, benchmark)),
    }
    run = layout.sample_run(CFG, experiment, model, benchmark)
    if run is not None:
        inputs["run"] = run_json(run)
        inputs["vae"] = VAE_RUN
    return inputs


def sample_inputs(wildcards):
    return sample_inputs_for(wildcards.experiment, wildcards.model, wildcards.benchmark)


def suite_benchmarks(experiment, model):
    """The benchmarks of an experiment that `model` is sampled on: all of them for ours and the
    industrial / classical baselines; where the paper has its row (and a checkpoint serves it) for the
    academic ones (moebius.eval.baselines: LaMa, MI-GAN, CoModGAN, SD)."""
    return layout.suite_benchmarks(CFG, experiment, model)


def grid_models(experiment, benchmark):
    """The models sampled on a benchmark of an experiment (the report's qualitative grid columns)."""
    return [m for m in EVAL_MODELS if benchmark in suite_benchmarks(experiment, m)]


def suite_inputs(wildcards):
    inputs = {}
    for b in suite_benchmarks(wildcards.experiment, wildcards.model):
        sample = sample_inputs_for(wildcards.experiment, wildcards.model, b)
        inputs.update({f"{k}_{b}": v for k, v in sample.items()})
    return inputs


def score_inputs_for(experiment, model, benchmark):
    """What one scoring job reads: the finished sample folder, the ground truth and the mask set."""
    return {
        "samples": path(layout.sample_done(CFG, experiment, model, benchmark)),
        "images": path(layout.benchmark_manifest(CFG, benchmark)),
        "masks": path(layout.mask_manifest(CFG, benchmark)),
    }


def score_inputs(wildcards):
    return score_inputs_for(wildcards.experiment, wildcards.model, wildcards.benchmark)


def record(experiment, model, benchmark=None, start=None):
    return path(layout.record_file(CFG, experiment, model, benchmark, start))


def main_records():
    return [record(e, m) for m in EVAL_MODELS for e in SUITES if suite_benchmarks(e, m)]


def ablation_records():
    arch = [record("ablation_arch", e, CFG.ablation.benchmark) for e in EXPERIMENTS]
    loss = [record("ablation_loss", f"loss_{c}", CFG.ablation.benchmark) for c in LOSS_COMBOS]
    return arch + loss


def sweep_records():
    return [record("cfg_sweep", "moebius", b) for b in sorted(CFG.eval.cfg_sweep)]


def efficiency_records():
    return [record("efficiency", m) for m in ["moebius", "pixelhacker", "variants"]]


# Our diffusion models' main tables again from every other sampler start (eval.sampler_starts).
EXTRA_STARTS = [s for s in CFG.eval.sampler_starts if s != CFG.sample.start]


def start_records():
    return [record(e, m, start=s) for s in EXTRA_STARTS for m in EVAL_MODELS if m in DIFFUSION_OURS for e in SUITES]


ALL_RECORDS = main_records() + ablation_records() + sweep_records() + efficiency_records() + start_records()
# Runs that are trained here or installed from an official checkpoint, as model.*_source says:
# name -> (run folder, `train official --kind`, `--variant`). One decision, two views below.
TRAINED_OR_OFFICIAL = {
    "vae": (layout.run_dir(CFG, "vae"), "vae", "pretrained"),
    "teacher": (layout.run_dir(CFG, "teacher"), "teacher", "pretrained"),
    **{f"{m}_{t}": (layout.finetune_run(CFG, m, t), build_name(m), f"ft_{t}") for m in DIFFUSION_OURS for t in FINETUNE_TARGETS},
}
_OFFICIAL = {n for n, (_, kind, _) in TRAINED_OR_OFFICIAL.items() if CFG.model.weights_source(kind) == "official"}
# The official ones (config/full.yaml: all but the distilled students), keyed by the run folder relative
# to paths.checkpoints (vae, finetune/moebius_ffhq, ...): each is one `install_official` job, a single
# process without GPU, in place of the training rule (vae, teacher or finetune) that makes the same run.json.
OFFICIAL_RUNS = {
    run.relative_to(CFG.paths.checkpoints).as_posix(): (kind, variant)
    for n, (run, kind, variant) in TRAINED_OR_OFFICIAL.items() if n in _OFFICIAL
}
# Training runs whose curves the report plots (official weights have none); Exp 9 is trained at every scale.
TRAIN_RUNS = {e: layout.ablation_arch_run(CFG, e) for e in EXPERIMENTS}
TRAIN_RUNS["distill"] = layout.run_dir(CFG, "distill")
TRAIN_RUNS.update({n: run for n, (run, _, _) in TRAINED_OR_OFFICIAL.items() if n not in _OFFICIAL})
# The VAE's and the teacher's run.json, trained (rules vae / teacher) or installed (install_official):
# inputs name the file, not `rules.vae.output`, which would tie the input to the training rule.
VAE_RUN = run_json(TRAINED_OR_OFFICIAL["vae"][0])
TEACHER_RUN = run_json(TRAINED_OR_OFFICIAL["teacher"][0])


# ---------------------------------------------------------------------------------- job helpers
ENV = "../envs/moebius.yaml"


def launcher(gpus):
    """The CLI, through torchrun when a run asks for more than one GPU (DDP; world size 1 is plain)."""
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node={gpus} -m moebius.cli"
    return MOEBIUS


# Memory a training job asks for: a GPU node's share at full scale; at rehearsal scale what one CPU
# process holds, which grows with the model trained (README, "Resources"): the frozen teacher, VAE and
# E-LatentLPIPS with the runtime (~5 GB), plus ~18 bytes per trained parameter (fp32 weights, gradients,
# Muon momentum, bf16 autocast copies) and 4 more for DDP's gradient buckets with two or more ranks.
# Measured 8.5-13.6 GB a process for 226-515 M parameters. A flat 11 GB let two of the largest Table 2
# runs start together on a 24 GB machine, and the kernel killed one.
TRAIN_MB = {"full": 64000, "rehearsal": 11000, "smoke": 4000}  # rehearsal: a model we cannot size (the VAE)
REHEARSAL_BASE_MB = 5000
REHEARSAL_BYTES_PER_PARAM = {"single": 18, "ddp": 22}


# Which ready job starts first (Snakemake `priority:`, higher first; the rest 0). Longest remaining path
# to the end of the DAG first, as measured on the smoke DAG (benchmarks/results/dag_cpu.csv): the inputs
# and the vae -> teacher -> distill -> finetune chain that most jobs wait on, then the long jobs
# (paper-size profiling, sampling suites, training runs), the short ones (scoring, tables) last. The
# work is the same; what changes is the tail, where one long job ran alone while the other core idled.
PRIORITY = {
    "smoke_dataset": 100, "rehearsal_sources": 100, "fetch_dataset": 100, "benchmark_images": 100,
    "mask_set": 100, "official_mask_set": 100, "generate_weights": 100, "install_official": 95,
    "vae": 90, "teacher": 80, "distill": 70, "finetune": 60,
    "profile": 50, "sample_suite": 40, "sample_suite_start": 40, "sample_cfg_sweep": 40,
    "distill_nokd": 30, "ablation_arch": 30, "ablation_loss": 30, "profile_variants": 30, "sample": 20,
}


def rehearsal_train_mb(model, ranks):
    """MB one rehearsal training process of ``model`` (a build name) holds, from its parameter count."""
    from moebius.models.registry import parameter_count  # imports torch: only at rehearsal scale

    per_param = REHEARSAL_BYTES_PER_PARAM["ddp" if ranks > 1 else "single"]
    return int(REHEARSAL_BASE_MB + per_param * parameter_count(model, CFG.model.preset) / 1e6)
# An install (`install_official`) holds one model and its file: 7.3 GB peak measured for PixelHacker's
# 3.4 GB file at rehearsal scale (README, "Resources").
INSTALL_MB = 8000


def train_resources(gpus, model=None):
    """``gpu`` and ``mem_mb`` of a training job; ``model`` (a build name, or a function of the wildcards
    that gives one) sizes the memory at rehearsal scale."""
    per_process = 1 if CFG.scale == "full" else max(1, gpus)  # on a CPU every rank is a process here
    gpu = gpus if CFG.scale == "full" else 0
    if CFG.scale != "rehearsal" or model is None:
        return {"gpu": gpu, "mem_mb": TRAIN_MB[CFG.scale] * per_process}

    def mem_mb(wildcards):
        name = model(wildcards) if callable(model) else model
        return rehearsal_train_mb(name, per_process) * per_process

    return {"gpu": gpu, "mem_mb": mem_mb}


def finetune_mem_mb(wildcards):
    """A fine-tune's memory: its target's GPUs, and the model fine-tuned (moebius / pixelhacker)."""
    mem = train_resources(CFG.finetune.targets[wildcards.target].gpus, build_name(wildcards.model))["mem_mb"]
    return mem(wildcards) if callable(mem) else mem


def train_threads(gpus):
    """Cores a training job takes: on a CPU, one per torchrun process (so --cores bounds the ranks)."""
    return 1 if CFG.scale == "full" else max(1, gpus)


# The rehearsal's generated weight files, an input of every job that reads a weight file.
GENERATED = [path(layout.generated_weights(CFG))] if CFG.scale == "rehearsal" else []


def gpu_if_full(wildcards=None):
    return 1 if CFG.scale == "full" else 0


def train_data(train_cfg):
    return [path(m) for m in layout.train_manifests(CFG, train_cfg.datasets)]


def kd_flag(wildcards):
    """Table 2's training switch of one experiment, from the torch-free copy in moebius.config."""
    return "--kd" if int(wildcards.exp.removeprefix("exp")) in TABLE2_KD else "--no-kd"


def finetune_inputs(wildcards):
    init = layout.run_dir(CFG, "distill" if build_name(wildcards.model) == "student" else "teacher")
    return {"vae": VAE_RUN, "init": run_json(init),
            "data": train_data(CFG.finetune.targets[wildcards.target])}


def finetune_command(wildcards, input, output):
    kind = build_name(wildcards.model)  # moebius -> student, pixelhacker -> teacher
    init, vae, out = (shlex.quote(parent(p)) for p in (input.init, input.vae, output[0]))
    return f"train finetune --model {kind} --init {init} --vae {vae} --target {wildcards.target} --out {out}"


def eval_gpu(wildcards):
    return 1 if CFG.scale == "full" and wildcards.model not in ("telea", "navier_stokes") else 0


def parent(p):
    return str(Path(p).parent)


def grid_spec(experiment, benchmark):
    """`moebius report --grid`'s comma-separated spec (moebius.report.qualitative.parse_grid): its paths
    come from the config's `paths`, which must then hold no comma."""
    return (
        f"experiment={experiment},benchmark={benchmark},images={layout.benchmark_dir(CFG, benchmark)},"
        f"masks={layout.mask_dir(CFG, benchmark)},samples={layout.samples_root(CFG, experiment)},"
        f"models={'+'.join(grid_models(experiment, benchmark))}"
    )


def logfile(*parts):
    return path(layout.log_file(CFG, *parts))

