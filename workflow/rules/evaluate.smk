# Sampling (20-step DDIM with LCG guidance) and scoring (FID / LPIPS) for every table, plus profiling.


rule sample:
    """Inpaint one benchmark with one model; PNGs named by image id, composited with the known region."""
    input:
        unpack(sample_inputs),
    output:
        f"{P.results}/samples/{{experiment}}/{{model}}/{{benchmark}}/meta.json",
    params:
        cfg=section("sample", "eval", "weights", "seed"),
        moebius=MOEBIUS,
        run=run_options,
        images=lambda w, input: parent(input.images),
        masks=lambda w, input: parent(input.masks),
        out=lambda w, output: parent(output[0]),
    wildcard_constraints:
        experiment="main|ood|ablation_arch|ablation_loss",
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
    """Table 6: Moebius at one classifier-free guidance scale."""
    input:
        unpack(lambda w: sample_inputs_for("cfg_sweep", "moebius", w.benchmark)),
    output:
        f"{P.results}/samples/cfg_sweep/moebius/{{benchmark}}/g{{scale}}/meta.json",
    params:
        cfg=section("sample", "eval", "weights", "seed"),
        moebius=MOEBIUS,
        run=lambda w, input: f"--run {parent(input.run)} --vae {parent(input.vae)}",
        images=lambda w, input: parent(input.images),
        masks=lambda w, input: parent(input.masks),
        out=lambda w, output: parent(output[0]),
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/sample/cfg_sweep_{{benchmark}}_g{{scale}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} sample --model moebius {params.run} --benchmark {wildcards.benchmark}"
        " --guidance {wildcards.scale} --images {params.images} --masks {params.masks} --out {params.out}"
        " > {log} 2>&1"


rule evaluate:
    """FID (torch-fidelity) and LPIPS against the paired ground truth, as result records."""
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
        experiment="main|ood|ablation_arch|ablation_loss",
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
    """Table 6: scores of one guidance scale, recorded with settings.cfg_scale."""
    input:
        samples=f"{P.results}/samples/cfg_sweep/moebius/{{benchmark}}/g{{scale}}/meta.json",
        images=lambda w: f"{benchmark_dir(w.benchmark)}/manifest.csv",
        masks=lambda w: f"{mask_dir(w.benchmark)}/manifest.csv",
    output:
        f"{P.results}/records/cfg_sweep/moebius/{{benchmark}}_g{{scale}}.json",
    params:
        cfg=section("eval", "weights", "seed"),
        moebius=MOEBIUS,
        samples=lambda w, input: parent(input.samples),
        images=lambda w, input: parent(input.images),
        masks=lambda w, input: parent(input.masks),
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/evaluate/cfg_sweep_{{benchmark}}_g{{scale}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} evaluate --samples {params.samples} --images {params.images} --masks {params.masks}"
        " --model moebius --benchmark {wildcards.benchmark} --experiment cfg_sweep"
        " --setting cfg_scale={wildcards.scale} --out {output} > {log} 2>&1"


rule profile:
    """Params, thop-convention MACs and ms per denoising step at batch 1, 512x512 (Tab. 1-3)."""
    output:
        f"{P.results}/records/efficiency/{{model}}/efficiency.json",
    params:
        cfg=section("profile", "sample"),
        moebius=MOEBIUS,
        latency=lambda w: "--latency" if w.model in DIFFUSION_OURS else "--no-latency",
    resources:
        gpu=gpu_if_full,
    log:
        f"{P.logs}/profile/{{model}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} profile --model {wildcards.model} {params.latency} --out {output} > {log} 2>&1"


rule results_all:
    """Phase target for `dvc repro results`: every record."""
    input:
        ALL_RECORDS,
