# Sampling (20-step DDIM with LCG guidance) and scoring (FID / LPIPS) for every table, plus profiling.
# Tables 1, 3, 4 and 7 run one process per model over all its benchmarks ("suites": Python and torch
# start-up dominates at smoke scale); the ablations run one process per trained model. Baselines are
# suites too: the industrial and classical ones on every benchmark, the academic ones (LaMa, MI-GAN,
# CoModGAN, SD) where the paper has their row (suite_benchmarks); each loads its published weights at
# full scale (one GPU) and generates same-format stand-ins inside the job at smoke scale.


rule sample_suite:
    """Inpaint the benchmarks of an experiment (main | ood) a model runs on; PNGs named by image id."""
    input:
        unpack(suite_inputs),
    output:
        f"{P.results}/samples/{{experiment}}/{{model}}/suite.json",
    params:
        cfg=SAMPLE_SETTINGS,
        moebius=MOEBIUS,
        vae=lambda w, input: f"--vae {parent(input.vae)}" if "vae" in input.keys() else "",
        tasks=lambda w: " ".join(f"--task {t}" for t in suite_tasks(w.experiment, w.model)),
    wildcard_constraints:
        experiment="main|ood",
    resources:
        gpu=eval_gpu,
    log:
        f"{P.logs}/sample/{{experiment}}_{{model}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} sample-suite --model {wildcards.model} {params.vae} {params.tasks} --out {output} > {log} 2>&1"


rule evaluate_suite:
    """FID (torch-fidelity) and LPIPS of one model on every benchmark of an experiment, as records."""
    input:
        suite=f"{P.results}/samples/{{experiment}}/{{model}}/suite.json",
        images=lambda w: [f"{benchmark_dir(b)}/manifest.csv" for b in suite_benchmarks(w.experiment, w.model)],
        masks=lambda w: [f"{mask_dir(b)}/manifest.csv" for b in suite_benchmarks(w.experiment, w.model)],
    output:
        f"{P.results}/records/{{experiment}}/{{model}}.json",
    params:
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
        tasks=lambda w: " ".join(f"--task {t}" for t in suite_score_tasks(w.experiment, w.model)),
    wildcard_constraints:
        experiment="main|ood",
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/evaluate/{{experiment}}_{{model}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} evaluate-suite --model {wildcards.model} --experiment {wildcards.experiment}"
        " {params.tasks} --out {output} > {log} 2>&1"


rule sample:
    """Inpaint the ablation benchmark with one trained ablation model, composited with the known region."""
    input:
        unpack(sample_inputs),
    output:
        f"{P.results}/samples/{{experiment}}/{{model}}/{{benchmark}}/meta.json",
    params:
        cfg=SAMPLE_SETTINGS,
        moebius=MOEBIUS,
        run=run_options,
        images=lambda w, input: parent(input.images),
        masks=lambda w, input: parent(input.masks),
        out=lambda w, output: parent(output[0]),
    wildcard_constraints:
        experiment="ablation_arch|ablation_loss",
    resources:
        gpu=eval_gpu,
    log:
        f"{P.logs}/sample/{{experiment}}_{{model}}_{{benchmark}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} sample --model {wildcards.model} {params.run} --benchmark {wildcards.benchmark}"
        " --images {params.images} --masks {params.masks} --out {params.out} > {log} 2>&1"


rule sample_cfg_sweep:
    """Table 6: Moebius at every classifier-free guidance scale of the sweep (one process)."""
    input:
        unpack(lambda w: sample_inputs_for("cfg_sweep", "moebius", w.benchmark)),
    output:
        f"{P.results}/samples/cfg_sweep/moebius/{{benchmark}}/sweep.json",
    params:
        cfg=SAMPLE_SETTINGS,
        moebius=MOEBIUS,
        run=lambda w, input: f"--run {parent(input.run)} --vae {parent(input.vae)}",
        guidance=lambda w: " ".join(f"--guidance {g}" for g in CFG.eval.cfg_sweep[w.benchmark]),
        images=lambda w, input: parent(input.images),
        masks=lambda w, input: parent(input.masks),
        out=lambda w, output: parent(output[0]),
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/sample/cfg_sweep_{{benchmark}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} sample --model moebius {params.run} --benchmark {wildcards.benchmark} {params.guidance}"
        " --images {params.images} --masks {params.masks} --out {params.out} > {log} 2>&1"


rule evaluate:
    """FID (torch-fidelity) and LPIPS of one ablation model against the paired ground truth, as records."""
    input:
        samples=f"{P.results}/samples/{{experiment}}/{{model}}/{{benchmark}}/meta.json",
        images=lambda w: f"{benchmark_dir(w.benchmark)}/manifest.csv",
        masks=lambda w: f"{mask_dir(w.benchmark)}/manifest.csv",
    output:
        f"{P.results}/records/{{experiment}}/{{model}}/{{benchmark}}.json",
    params:
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
        samples=lambda w, input: parent(input.samples),
        images=lambda w, input: parent(input.images),
        masks=lambda w, input: parent(input.masks),
    wildcard_constraints:
        experiment="ablation_arch|ablation_loss",
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/evaluate/{{experiment}}_{{model}}_{{benchmark}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} evaluate --samples {params.samples} --images {params.images} --masks {params.masks}"
        " --model {wildcards.model} --benchmark {wildcards.benchmark} --experiment {wildcards.experiment}"
        " --out {output} > {log} 2>&1"


rule evaluate_cfg_sweep:
    """Table 6: scores of every guidance scale, recorded with settings.cfg_scale."""
    input:
        samples=f"{P.results}/samples/cfg_sweep/moebius/{{benchmark}}/sweep.json",
        images=lambda w: f"{benchmark_dir(w.benchmark)}/manifest.csv",
        masks=lambda w: f"{mask_dir(w.benchmark)}/manifest.csv",
    output:
        f"{P.results}/records/cfg_sweep/moebius/{{benchmark}}.json",
    params:
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
        samples=lambda w, input: parent(input.samples),
        images=lambda w, input: parent(input.images),
        masks=lambda w, input: parent(input.masks),
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/evaluate/cfg_sweep_{{benchmark}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} evaluate --samples {params.samples} --images {params.images} --masks {params.masks}"
        " --model moebius --benchmark {wildcards.benchmark} --experiment cfg_sweep --out {output} > {log} 2>&1"


rule profile:
    """Latency (ms per denoising step, batch 1 and CFG batch 2, 512x512) with params and MACs (Tab. 1, 3)."""
    output:
        f"{P.results}/records/efficiency/{{model}}.json",
    params:
        cfg=section("profile", "sample"),
        moebius=MOEBIUS,
    wildcard_constraints:
        model="moebius|pixelhacker",
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/profile/{{model}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} profile --model {wildcards.model} --latency --out {output} > {log} 2>&1"


rule profile_variants:
    """Table 2's params and GFLOPs (thop MAC convention) of every architecture variant."""
    output:
        f"{P.results}/records/efficiency/variants.json",
    params:
        cfg=section("profile"),
        moebius=MOEBIUS,
        models=" ".join(f"--model {e}" for e in EXPERIMENTS),
    log:
        f"{P.logs}/profile/variants.log",
    conda:
        ENV
    shell:
        "{params.moebius} profile {params.models} --no-latency --out {output} > {log} 2>&1"


rule sample_suite_start:
    """Tables 1, 3, 4 and 7 for moebius / pixelhacker from another sampler start (eval.sampler_starts)."""
    input:
        unpack(suite_inputs),
    output:
        f"{P.results}/samples/start_{{start}}/{{experiment}}/{{model}}/suite.json",
    params:
        cfg=SAMPLE_SETTINGS,
        moebius=MOEBIUS,
        vae=lambda w, input: f"--vae {parent(input.vae)}" if "vae" in input.keys() else "",
        tasks=lambda w: " ".join(f"--task {t}" for t in start_tasks(suite_tasks(w.experiment, w.model), w.start)),
    wildcard_constraints:
        experiment="main|ood",
        start="noise|gt_noised",
        model="moebius|pixelhacker",
    resources:
        gpu=eval_gpu,
    log:
        f"{P.logs}/sample/start_{{start}}_{{experiment}}_{{model}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} sample-suite --model {wildcards.model} --start {wildcards.start} {params.vae} {params.tasks}"
        " --out {output} > {log} 2>&1"


rule evaluate_suite_start:
    """FID / LPIPS of those samples; their records say `variant: start=<start>` (extra table rows)."""
    input:
        suite=f"{P.results}/samples/start_{{start}}/{{experiment}}/{{model}}/suite.json",
        images=lambda w: [f"{benchmark_dir(b)}/manifest.csv" for b in SUITE_BENCHMARKS[w.experiment]],
        masks=lambda w: [f"{mask_dir(b)}/manifest.csv" for b in SUITE_BENCHMARKS[w.experiment]],
    output:
        f"{P.results}/records/start_{{start}}/{{experiment}}/{{model}}.json",
    params:
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
        tasks=lambda w: " ".join(f"--task {t}" for t in start_tasks(suite_score_tasks(w.experiment, w.model), w.start)),
    wildcard_constraints:
        experiment="main|ood",
        start="noise|gt_noised",
        model="moebius|pixelhacker",
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/evaluate/start_{{start}}_{{experiment}}_{{model}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} evaluate-suite --model {wildcards.model} --experiment {wildcards.experiment}"
        " {params.tasks} --out {output} > {log} 2>&1"


rule ground_truth_leak:
    """How much ground truth the official inference lets into the hole: gt_noised start, blurred paste-back."""
    input:
        masks=[f"{mask_dir(b)}/manifest.csv" for b in MAIN_BENCHMARKS],
    output:
        f"{P.results}/tables/ground_truth_leak.csv",
    params:
        cfg=config_hash([CFG.sample, CFG.eval.sampler_starts, {b: CFG.benchmarks[b] for b in MAIN_BENCHMARKS}]),
        moebius=MOEBIUS,
        masks=" ".join(f"--masks {b}={mask_dir(b)}" for b in MAIN_BENCHMARKS),
    log:
        f"{P.logs}/evaluate/ground_truth_leak.log",
    conda:
        ENV
    shell:
        "{params.moebius} leak {params.masks} --out {output} > {log} 2>&1"


rule results_all:
    """Phase target for `dvc repro results`: every record."""
    input:
        ALL_RECORDS,
