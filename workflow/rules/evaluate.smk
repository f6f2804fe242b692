# Sampling (20-step DDIM with LCG guidance) and scoring (FID / LPIPS) for every table, plus profiling.
# Tables 1, 3, 4 and 7 run one process per model over all its benchmarks ("suites": Python and torch
# start-up dominates at smoke scale); the ablations run one process per trained model. Baselines are
# suites too: the industrial and classical ones on every benchmark, the academic ones (LaMa, MI-GAN,
# CoModGAN, SD) where the paper has their row (suite_benchmarks); each loads its published weights at
# full scale (one GPU) and generates same-format stand-ins inside the job at smoke scale. Commands
# carry names (experiment, model, benchmark, start): the CLI finds the folders through
# moebius/layout.py, as these rules do.


rule sample_suite:
    """Inpaint the benchmarks of an experiment (main | ood) a model runs on; PNGs named by image id."""
    input:
        unpack(suite_inputs),
        generated=GENERATED,
    output:
        path(layout.suite_file(CFG, "{experiment}", "{model}")),
    params:
        config=CONFIG,
        cfg=SAMPLE_SETTINGS,
        moebius=MOEBIUS,
    wildcard_constraints:
        experiment="main|ood",
    resources:
        gpu=eval_gpu,
    priority: PRIORITY["sample_suite"]
    log:
        logfile("sample", "{experiment}_{model}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} sample-suite"
        " --experiment {wildcards.experiment} --model {wildcards.model} > {log:q} 2>&1"


rule evaluate_suite:
    """FID (torch-fidelity) and LPIPS of one model on every benchmark of an experiment, as records."""
    input:
        generated=GENERATED,
        suite=path(layout.suite_file(CFG, "{experiment}", "{model}")),
        images=lambda w: [path(layout.benchmark_manifest(CFG, b)) for b in suite_benchmarks(w.experiment, w.model)],
        masks=lambda w: [path(layout.mask_manifest(CFG, b)) for b in suite_benchmarks(w.experiment, w.model)],
    output:
        path(layout.record_file(CFG, "{experiment}", "{model}")),
    params:
        config=CONFIG,
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
    wildcard_constraints:
        experiment="main|ood",
    resources:
        gpu=gpu_if_full,
    log:
        logfile("evaluate", "{experiment}_{model}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} score-suite --experiment {wildcards.experiment}"
        " --model {wildcards.model} > {log:q} 2>&1"


rule sample:
    """Inpaint the ablation benchmark with one trained ablation model, composited with the known region."""
    input:
        unpack(sample_inputs),
        generated=GENERATED,
    output:
        path(layout.sample_done(CFG, "{experiment}", "{model}", "{benchmark}")),
    params:
        config=CONFIG,
        cfg=SAMPLE_SETTINGS,
        moebius=MOEBIUS,
    wildcard_constraints:
        experiment="ablation_arch|ablation_loss",
    resources:
        gpu=eval_gpu,
    priority: PRIORITY["sample"]
    log:
        logfile("sample", "{experiment}_{model}_{benchmark}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} sample --experiment {wildcards.experiment}"
        " --model {wildcards.model} --benchmark {wildcards.benchmark} > {log:q} 2>&1"


rule sample_cfg_sweep:
    """Table 6: Moebius at every classifier-free guidance scale of the sweep (one process)."""
    input:
        unpack(lambda w: sample_inputs_for("cfg_sweep", "moebius", w.benchmark)),
        generated=GENERATED,
    output:
        path(layout.sample_done(CFG, "cfg_sweep", "moebius", "{benchmark}")),
    params:
        config=CONFIG,
        cfg=lambda w: SAMPLE_SETTINGS + config_hash(CFG.eval.cfg_sweep[w.benchmark]),
        moebius=MOEBIUS,
    resources:
        gpu=gpu_if_full,
    priority: PRIORITY["sample_cfg_sweep"]
    log:
        logfile("sample", "cfg_sweep_{benchmark}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} sample --experiment cfg_sweep --model moebius"
        " --benchmark {wildcards.benchmark} > {log:q} 2>&1"


rule evaluate:
    """FID (torch-fidelity) and LPIPS of one ablation model against the paired ground truth, as records."""
    input:
        unpack(score_inputs),
        generated=GENERATED,
    output:
        path(layout.record_file(CFG, "{experiment}", "{model}", "{benchmark}")),
    params:
        config=CONFIG,
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
    wildcard_constraints:
        experiment="ablation_arch|ablation_loss",
    resources:
        gpu=gpu_if_full,
    log:
        logfile("evaluate", "{experiment}_{model}_{benchmark}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} score --experiment {wildcards.experiment}"
        " --model {wildcards.model} --benchmark {wildcards.benchmark} > {log:q} 2>&1"


rule evaluate_cfg_sweep:
    """Table 6: scores of every guidance scale, recorded with settings.cfg_scale."""
    input:
        unpack(lambda w: score_inputs_for("cfg_sweep", "moebius", w.benchmark)),
        generated=GENERATED,
    output:
        path(layout.record_file(CFG, "cfg_sweep", "moebius", "{benchmark}")),
    params:
        config=CONFIG,
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
    resources:
        gpu=gpu_if_full,
    log:
        logfile("evaluate", "cfg_sweep_{benchmark}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} score --experiment cfg_sweep --model moebius"
        " --benchmark {wildcards.benchmark} > {log:q} 2>&1"


rule profile:
    """Latency (ms per denoising step, batch 1 and CFG batch 2, 512x512) with params and MACs (Tab. 1, 3)."""
    input:
        generated=GENERATED,
    output:
        path(layout.record_file(CFG, "efficiency", "{model}")),
    params:
        config=CONFIG,
        cfg=section("profile", "sample"),
        moebius=MOEBIUS,
    wildcard_constraints:
        model="moebius|pixelhacker",
    resources:
        gpu=gpu_if_full,
    priority: PRIORITY["profile"]
    log:
        logfile("profile", "{model}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} profile --model {wildcards.model} --latency"
        " --out {output:q} > {log:q} 2>&1"


rule profile_variants:
    """Table 2's params and GFLOPs (thop MAC convention) of every architecture variant."""
    input:
        generated=GENERATED,
    output:
        path(layout.record_file(CFG, "efficiency", "variants")),
    params:
        config=CONFIG,
        cfg=section("profile"),
        moebius=MOEBIUS,
        models=" ".join(f"--model {e}" for e in EXPERIMENTS),
    priority: PRIORITY["profile_variants"]
    log:
        logfile("profile", "variants.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} profile {params.models} --no-latency --out {output:q} > {log:q} 2>&1"


rule sample_suite_start:
    """Tables 1, 3, 4 and 7 for moebius / pixelhacker from another sampler start (eval.sampler_starts)."""
    input:
        unpack(suite_inputs),
        generated=GENERATED,
    output:
        path(layout.suite_file(CFG, "{experiment}", "{model}", start="{start}")),
    params:
        config=CONFIG,
        cfg=SAMPLE_SETTINGS,
        moebius=MOEBIUS,
    wildcard_constraints:
        experiment="main|ood",
        start="noise|gt_noised",
        model="moebius|pixelhacker",
    resources:
        gpu=eval_gpu,
    priority: PRIORITY["sample_suite_start"]
    log:
        logfile("sample", "start_{start}_{experiment}_{model}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} sample-suite --experiment {wildcards.experiment}"
        " --model {wildcards.model} --start {wildcards.start} > {log:q} 2>&1"


rule evaluate_suite_start:
    """FID / LPIPS of those samples; their records say `variant: start=<start>` (extra table rows)."""
    input:
        generated=GENERATED,
        suite=path(layout.suite_file(CFG, "{experiment}", "{model}", start="{start}")),
        images=lambda w: [path(layout.benchmark_manifest(CFG, b)) for b in suite_benchmarks(w.experiment, w.model)],
        masks=lambda w: [path(layout.mask_manifest(CFG, b)) for b in suite_benchmarks(w.experiment, w.model)],
    output:
        path(layout.record_file(CFG, "{experiment}", "{model}", start="{start}")),
    params:
        config=CONFIG,
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
    wildcard_constraints:
        experiment="main|ood",
        start="noise|gt_noised",
        model="moebius|pixelhacker",
    resources:
        gpu=gpu_if_full,
    log:
        logfile("evaluate", "start_{start}_{experiment}_{model}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} score-suite --experiment {wildcards.experiment}"
        " --model {wildcards.model} --start {wildcards.start} > {log:q} 2>&1"


rule ground_truth_leak:
    """How much ground truth the official inference lets into the hole: gt_noised start, blurred paste-back."""
    input:
        generated=GENERATED,
        masks=[path(layout.mask_manifest(CFG, b)) for b in SUITE_BENCHMARKS["main"]],
    output:
        path(layout.table_file(CFG, "ground_truth_leak")),
    params:
        config=CONFIG,
        cfg=config_hash([CFG.sample, CFG.eval.sampler_starts, {b: CFG.benchmarks[b] for b in SUITE_BENCHMARKS["main"]}]),
        moebius=MOEBIUS,
        masks=" ".join(
            f"--masks {shlex.quote(f'{b}={layout.mask_dir(CFG, b)}')}" for b in SUITE_BENCHMARKS["main"]
        ),
    log:
        logfile("evaluate", "ground_truth_leak.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} leak {params.masks} --out {output:q} > {log:q} 2>&1"


rule results_all:
    """Phase target for `dvc repro results`: every record."""
    input:
        ALL_RECORDS,
