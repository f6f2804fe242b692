# Config validation and the input functions shared by the rule files.
import os
from pathlib import Path

from snakemake.utils import validate

from moebius.config import config_hash, dump_yaml, load_config, to_dict
from moebius.masks import get_protocol, list_protocols, official_dir
from moebius.report.names import OURS, build_name


# Fail before anything runs, with the CLI's loader and its one-line messages (types, ranges, names,
# cross-references): `moebius config validate` and this DAG accept exactly the same files. Snakemake
# would extend the Snakefile's `configfile:` (smoke.yaml) with every --configfile, so that full.yaml
# inherited the smoke settings it does not name; the CLI reads only the files it is given, and so
# does this: the command-line files alone when there are any, then any --config key=value.
CONFIG_FILES = [str(f) for f in workflow.overwrite_configfiles] or list(workflow.configfiles)
CFG = load_config(*CONFIG_FILES, overrides=workflow.config_settings.config)
# The resolved config against the JSON schema generated from moebius/config.py (catches a stale schema).
validate(to_dict(CFG), "../schemas/config.schema.json")

P = CFG.paths
BENCHMARKS = sorted(CFG.benchmarks)
MAIN_BENCHMARKS = [b for b in BENCHMARKS if not CFG.benchmarks[b].ood]
OOD_BENCHMARKS = [b for b in BENCHMARKS if CFG.benchmarks[b].ood]
EXPERIMENTS = [f"exp{i}" for i in CFG.ablation.experiments]
LOSS_COMBOS = sorted(CFG.ablation.loss_combinations)
FINETUNE_TARGETS = sorted(CFG.finetune.targets)
# Models scored on every benchmark of Tables 1, 3, 4 and 7 (ours, the teacher, the industrial
# baselines through diffusers, and the classical OpenCV methods).
EVAL_MODELS = list(CFG.eval.models)
DIFFUSION_OURS = OURS


# The CLI reads the same resolved config the schema just validated, through $MOEBIUS_CONFIG (jobs
# inherit it), so that the path, which names the config hash, is not a job parameter; a change of one
# setting re-runs only the jobs whose `cfg` parameter (below) covers it. Content-addressed, so two
# configs never overwrite each other's file.
RESOLVED_CONFIG = f"{P.logs}/config/{config_hash(CFG)}.yaml"
Path(RESOLVED_CONFIG).parent.mkdir(parents=True, exist_ok=True)
if not Path(RESOLVED_CONFIG).exists():
    Path(RESOLVED_CONFIG).write_text(dump_yaml(CFG))
os.environ.update({"MOEBIUS_CONFIG": RESOLVED_CONFIG})  # set here, so cluster jobs that re-parse set it too
MOEBIUS = "moebius"


def section(*names):
    """A hash of the config sections one job reads, used as a `params` entry, so that Snakemake
    re-runs a job when (and only when) one of its own settings changes."""
    return config_hash({n: getattr(CFG, n) for n in names})


# What a sample folder depends on: the sampler, the weights policy, the seed and the baselines' step
# counts, but not the metric settings (so changing eval.bootstrap re-scores without re-sampling).
SAMPLE_SETTINGS = section("sample", "weights", "seed") + config_hash([CFG.eval.flux_steps, CFG.eval.sd35_steps])


def dataset_manifest(dataset, split):
    return f"{P.data}/datasets/{dataset}/{split}/manifest.csv"


def benchmark_dir(benchmark):
    return f"{P.data}/benchmarks/{benchmark}"


def mask_dir(benchmark):
    """The stored set that scores `benchmark`: the imported official one, or its protocol's generated one."""
    if CFG.mask_source(benchmark) == "official":
        return str(official_dir(P.masks, benchmark))
    protocol = get_protocol(CFG.benchmarks[benchmark].mask_protocol)
    return f"{P.masks}/{protocol.name}/v{protocol.version}/{benchmark}"


def vae_run():
    return f"{P.checkpoints}/vae"


def finetuned_run_for_target(model, target):
    return f"{P.checkpoints}/finetune/{model}_{target}"


def finetuned_run(model, benchmark):
    """The run that scores `benchmark` for one of our models (Tab. 1, 3, 4, 6, 7)."""
    return finetuned_run_for_target(model, CFG.benchmarks[benchmark].finetune)


def sample_run(experiment, model, benchmark):
    """Run directory of the model behind a sample folder, or None for models without one."""
    if experiment in ("main", "ood", "cfg_sweep") and model in DIFFUSION_OURS:
        return finetuned_run(model, benchmark)
    if experiment == "ablation_arch":
        return f"{P.checkpoints}/ablation_arch/{model}"
    if experiment == "ablation_loss":
        return f"{P.checkpoints}/ablation_loss/{model.removeprefix('loss_')}"
    return None


def sample_inputs_for(experiment, model, benchmark):
    inputs = {
        "images": f"{benchmark_dir(benchmark)}/manifest.csv",
        "masks": f"{mask_dir(benchmark)}/manifest.csv",
    }
    run = sample_run(experiment, model, benchmark)
    if run is not None:
        inputs["run"] = f"{run}/run.json"
        inputs["vae"] = f"{vae_run()}/run.json"
    return inputs


def sample_inputs(wildcards):
    return sample_inputs_for(wildcards.experiment, wildcards.model, wildcards.benchmark)


def run_options(wildcards):
    run = sample_run(wildcards.experiment, wildcards.model, wildcards.benchmark)
    return "" if run is None else f"--run {run} --vae {vae_run()}"


SUITE_BENCHMARKS = {"main": MAIN_BENCHMARKS, "ood": OOD_BENCHMARKS}


def suite_benchmarks(experiment, model):
    """The benchmarks of an experiment that `model` is sampled on: all of them for ours and the
    industrial / classical baselines; where the paper has its row (and a checkpoint serves it) for the
    academic ones (moebius.eval.baselines: LaMa, MI-GAN, CoModGAN, SD)."""
    from moebius.eval.baselines import benchmarks_for

    return benchmarks_for(CFG, model, SUITE_BENCHMARKS[experiment])


def grid_models(experiment, benchmark):
    """The models sampled on a benchmark of an experiment (the report's qualitative grid columns)."""
    return [m for m in EVAL_MODELS if benchmark in suite_benchmarks(experiment, m)]


def suite_inputs(wildcards):
    inputs = {}
    for b in suite_benchmarks(wildcards.experiment, wildcards.model):
        inputs.update({f"{k}_{b}": v for k, v in sample_inputs_for(wildcards.experiment, wildcards.model, b).items() if k != "vae"})
    if wildcards.model in DIFFUSION_OURS:
        inputs["vae"] = f"{vae_run()}/run.json"
    return inputs


def suite_tasks(experiment, model):
    """`--task` values of `moebius sample-suite`: one per benchmark (run dirs by fine-tuning target)."""
    tasks = []
    for b in suite_benchmarks(experiment, model):
        run = sample_run(experiment, model, b)
        task = f"benchmark={b},images={benchmark_dir(b)},masks={mask_dir(b)},out={P.results}/samples/{experiment}/{model}/{b}"
        tasks.append(task + (f",run={run}" if run else ""))
    return tasks


def suite_score_tasks(experiment, model):
    return [
        f"benchmark={b},samples={P.results}/samples/{experiment}/{model}/{b},images={benchmark_dir(b)},masks={mask_dir(b)}"
        for b in suite_benchmarks(experiment, model)
    ]


def start_tasks(tasks, start):
    """The suite's --task values with their sample folders under samples/start_<start>/."""
    return [t.replace(f"{P.results}/samples/", f"{P.results}/samples/start_{start}/") for t in tasks]


def main_records():
    return [f"{P.results}/records/{e}/{m}.json" for m in EVAL_MODELS for e in ("main", "ood") if suite_benchmarks(e, m)]


def ablation_records():
    arch = [f"{P.results}/records/ablation_arch/{e}/{CFG.ablation.benchmark}.json" for e in EXPERIMENTS]
    loss = [f"{P.results}/records/ablation_loss/loss_{c}/{CFG.ablation.benchmark}.json" for c in LOSS_COMBOS]
    return arch + loss


def sweep_records():
    return [f"{P.results}/records/cfg_sweep/moebius/{b}.json" for b in sorted(CFG.eval.cfg_sweep)]


def efficiency_records():
    return [f"{P.results}/records/efficiency/{m}.json" for m in ["moebius", "pixelhacker", "variants"]]


# Our diffusion models' main tables again from every other sampler start (eval.sampler_starts).
EXTRA_STARTS = [s for s in CFG.eval.sampler_starts if s != CFG.sample.start]


def start_records():
    return [f"{P.results}/records/start_{s}/{e}/{m}.json" for s in EXTRA_STARTS for m in EVAL_MODELS
            if m in DIFFUSION_OURS for e in ("main", "ood") if SUITE_BENCHMARKS[e]]


ALL_RECORDS = main_records() + ablation_records() + sweep_records() + efficiency_records() + start_records()
SOURCES = {m: CFG.model.weights_source(m) for m in DIFFUSION_OURS}  # official | train
# Training runs whose curves the report plots (official weights have none).
TRAIN_RUNS = {f"{e}": f"{P.checkpoints}/ablation_arch/{e}" for e in EXPERIMENTS}
if CFG.model.weights_source("vae") == "train":
    TRAIN_RUNS["vae"] = vae_run()
if CFG.model.weights_source("teacher") == "train":
    TRAIN_RUNS["teacher"] = f"{P.checkpoints}/teacher"
TRAIN_RUNS["distill"] = f"{P.checkpoints}/distill"  # Exp 9 is trained at every scale
for _model, _source in SOURCES.items():
    if _source == "train":
        TRAIN_RUNS.update({f"{_model}_{t}": finetuned_run_for_target(_model, t) for t in FINETUNE_TARGETS})


# ---------------------------------------------------------------------------------- job helpers
ENV = "../envs/moebius.yaml"


def launcher(gpus):
    """The CLI, through torchrun when a run asks for more than one GPU (DDP; world size 1 is plain)."""
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node={gpus} -m moebius.cli"
    return MOEBIUS


def train_resources(gpus):
    return {"gpu": gpus if CFG.scale == "full" else 0, "mem_mb": 64000 if CFG.scale == "full" else 4000}


def gpu_if_full(wildcards=None):
    return 1 if CFG.scale == "full" else 0


def train_data(train_cfg):
    return [dataset_manifest(d, "train") for d in train_cfg.datasets]


def benchmark_source(wildcards):
    bench = CFG.benchmarks[wildcards.benchmark]
    return dataset_manifest(bench.dataset, bench.split)


def kd_flag(wildcards):
    from moebius.models.variants import EXPERIMENTS as TABLE2

    return "--kd" if TABLE2[int(wildcards.exp.removeprefix("exp"))].kd else "--no-kd"


def finetune_inputs(wildcards):
    inputs = {"vae": f"{vae_run()}/run.json"}
    if SOURCES[wildcards.model] == "train":
        # the run a fine-tuning starts from: the distilled student, or the teacher's own run
        inputs["init"] = f"{P.checkpoints}/{'distill' if build_name(wildcards.model) == 'student' else 'teacher'}/run.json"
        inputs["data"] = [dataset_manifest(d, "train") for d in CFG.finetune.targets[wildcards.target].datasets]
    return inputs


def finetune_command(wildcards, input, output):
    kind = build_name(wildcards.model)  # moebius -> student, pixelhacker -> teacher
    out = Path(output[0]).parent
    if SOURCES[wildcards.model] == "official":
        return f"train official --kind {kind} --variant ft_{wildcards.target} --out {out}"
    init = Path(input.init).parent
    vae = Path(input.vae).parent
    return f"train finetune --model {kind} --init {init} --vae {vae} --target {wildcards.target} --out {out}"


def eval_gpu(wildcards):
    return 1 if CFG.scale == "full" and wildcards.model not in ("telea", "navier_stokes") else 0


def parent(path):
    return str(Path(path).parent)
