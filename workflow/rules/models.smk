# Official checkpoints installed as runs; VAE and teacher (trained at smoke scale), distillation, ablation runs, fine-tuning.
# Training rules start torchrun when a run asks for more than one GPU (see `launcher` in common.smk).
# A re-run job resumes its run folder (the CLI's default), also after a change of settings that do not
# alter results (log_every, checkpoint_every, num_workers, paths: moebius/train/loop.py; not gpus, whose
# world size counts, found by the rehearsal when ablation.gpus changed 2 -> 1). After a change that
# does, the job fails with one line (in its log) naming the folder and the setting: revert
# it, or start the run over by running the job's `moebius train …` command once with `--fresh` (the old
# run moves to <run>.old-<time>, it is not deleted) or by moving the folder away, then re-run Snakemake.
# No rule passes --fresh itself: a slip in the config must not silently restart a days-long run.


if CFG.scale == "rehearsal":

    rule generate_weights:
        """Rehearsal: random-valued files in the official formats and layouts under weights.dir (+ ledger)."""
        output:
            GENERATED,
        params:
            config=CONFIG,
            cfg=section("weights", "seed"),
            moebius=MOEBIUS,
        resources:
            mem_mb=8000,
        priority: PRIORITY["generate_weights"]
        log:
            logfile("weights", "generate.log"),
        conda:
            ENV
        shell:
            "{params.moebius} --config {params.config:q} weights generate --stamp {output:q} > {log:q} 2>&1"


if OFFICIAL_RUNS:

    rule install_official:
        """An official checkpoint (SDXL VAE, PixelHacker, the ft_* students and teachers) installed as a run
        folder: one process, no GPU, no training (model.*_source: official, config/full.yaml)."""
        input:
            GENERATED,
        output:
            run_json(Path(CFG.paths.checkpoints) / "{run}"),
        params:
            config=CONFIG,
            cfg=section("model", "weights"),
            moebius=MOEBIUS,
            kind=lambda w: OFFICIAL_RUNS[w.run][0],
            variant=lambda w: OFFICIAL_RUNS[w.run][1],
            out=lambda w, output: parent(output[0]),
        wildcard_constraints:
            run="|".join(re.escape(r) for r in OFFICIAL_RUNS),
        resources:
            gpu=0,
            mem_mb=INSTALL_MB,
        priority: PRIORITY["install_official"]
        log:
            logfile("train", "install", "{run}.log"),
        conda:
            ENV
        shell:
            "{params.moebius} --config {params.config:q} train official --kind {params.kind} --variant {params.variant}"
            " --out {params.out:q} > {log:q} 2>&1"

    # The training rules below make the same run.json: for an official run the install is the job.
    ruleorder: install_official > vae
    ruleorder: install_official > teacher
    ruleorder: install_official > finetune


rule vae:
    """The VAE trained here (model.vae_source: train; smoke scale)."""
    input:
        generated=GENERATED,
        data=train_data(CFG.vae_train),
    output:
        VAE_RUN,
    params:
        config=CONFIG,
        cfg=section("model", "vae_train", "seed"),
        moebius=MOEBIUS,
        out=lambda w, output: parent(output[0]),
    resources:
        **train_resources(1),
    priority: PRIORITY["vae"]
    log:
        logfile("train", "vae.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} train vae --out {params.out:q} > {log:q} 2>&1"


rule teacher:
    """PixelHacker trained from scratch with the diffusion loss (model.teacher_source: train; smoke scale)."""
    input:
        generated=GENERATED,
        vae=VAE_RUN,
        data=train_data(CFG.teacher_train),
    output:
        TEACHER_RUN,
    params:
        config=CONFIG,
        cfg=section("model", "teacher_train", "masks", "seed"),
        launch=launcher(CFG.teacher_train.gpus),
        vae=lambda w, input: parent(input.vae),
        out=lambda w, output: parent(output[0]),
    threads: train_threads(CFG.teacher_train.gpus)
    resources:
        **train_resources(CFG.teacher_train.gpus, "teacher"),
    priority: PRIORITY["teacher"]
    log:
        logfile("train", "teacher.log"),
    conda:
        ENV
    shell:
        "{params.launch} --config {params.config:q} train teacher --vae {params.vae:q} --out {params.out:q} > {log:q} 2>&1"


rule distill:
    """Exp 9: adaptive multi-granularity distillation of Moebius from the teacher (Sec. 3.3)."""
    input:
        generated=GENERATED,
        vae=VAE_RUN,
        teacher=TEACHER_RUN,
        data=train_data(CFG.distill.train),
    output:
        run_json(layout.run_dir(CFG, "distill")),
    params:
        config=CONFIG,
        cfg=section("model", "distill", "masks", "seed"),
        launch=launcher(CFG.distill.train.gpus),
        vae=lambda w, input: parent(input.vae),
        teacher=lambda w, input: parent(input.teacher),
        out=lambda w, output: parent(output[0]),
    threads: train_threads(CFG.distill.train.gpus)
    resources:
        **train_resources(CFG.distill.train.gpus, "student"),
    priority: PRIORITY["distill"]
    log:
        logfile("train", "distill.log"),
    conda:
        ENV
    shell:
        "{params.launch} --config {params.config:q} train distill --student student --teacher {params.teacher:q}"
        " --vae {params.vae:q} --out {params.out:q} > {log:q} 2>&1"


rule ablation_arch:
    """Table 2: one architecture variant x KD on/off, the 18K-iteration checkpoint at full scale."""
    input:
        generated=GENERATED,
        vae=VAE_RUN,
        teacher=TEACHER_RUN,
        data=train_data(CFG.distill.train),
    output:
        run_json(layout.ablation_arch_run(CFG, "{exp}")),
    params:
        config=CONFIG,
        cfg=section("model", "distill", "ablation", "masks", "seed"),
        launch=launcher(ablation_gpus(CFG)),
        kd=kd_flag,
        steps=CFG.ablation.steps,
        vae=lambda w, input: parent(input.vae),
        teacher=lambda w, input: parent(input.teacher),
        out=lambda w, output: parent(output[0]),
    wildcard_constraints:
        exp="exp[0-9]+",
    threads: train_threads(ablation_gpus(CFG))
    resources:
        **train_resources(ablation_gpus(CFG), lambda w: w.exp),
    priority: PRIORITY["ablation_arch"]
    log:
        logfile("train", "ablation_arch_{exp}.log"),
    conda:
        ENV
    shell:
        "{params.launch} --config {params.config:q} train distill --student {wildcards.exp} {params.kd}"
        " --teacher {params.teacher:q} --vae {params.vae:q} --steps {params.steps} --out {params.out:q} > {log:q} 2>&1"


rule ablation_loss:
    """Table 5: the student distilled with a cumulative subset of the four losses."""
    input:
        generated=GENERATED,
        vae=VAE_RUN,
        teacher=TEACHER_RUN,
        data=train_data(CFG.distill.train),
    output:
        run_json(layout.ablation_loss_run(CFG, "{combo}")),
    params:
        config=CONFIG,
        cfg=section("model", "distill", "ablation", "masks", "seed"),
        launch=launcher(ablation_gpus(CFG)),
        losses=lambda w: ",".join(CFG.ablation.loss_combinations[w.combo]),
        steps=CFG.ablation.steps,
        vae=lambda w, input: parent(input.vae),
        teacher=lambda w, input: parent(input.teacher),
        out=lambda w, output: parent(output[0]),
    threads: train_threads(ablation_gpus(CFG))
    resources:
        **train_resources(ablation_gpus(CFG), "student"),
    priority: PRIORITY["ablation_loss"]
    log:
        logfile("train", "ablation_loss_{combo}.log"),
    conda:
        ENV
    shell:
        "{params.launch} --config {params.config:q} train distill --student student --losses {params.losses}"
        " --teacher {params.teacher:q} --vae {params.vae:q} --steps {params.steps} --out {params.out:q} > {log:q} 2>&1"


rule finetune:
    """Per-benchmark weights (Sec. 4.1) fine-tuned here from the distilled student or the teacher
    (model.*_source: train); the official ft_* checkpoints are installed by `install_official`."""
    input:
        unpack(finetune_inputs),
        generated=GENERATED,
    output:
        run_json(layout.finetune_run(CFG, "{model}", "{target}")),
    params:
        config=CONFIG,
        cfg=section("model", "finetune", "masks", "seed"),
        command=finetune_command,
        launch=lambda w: launcher(CFG.finetune.targets[w.target].gpus),
    wildcard_constraints:
        model="moebius|pixelhacker",
    resources:
        gpu=lambda w: CFG.finetune.targets[w.target].gpus if CFG.scale == "full" else 0,
        mem_mb=lambda w: finetune_mem_mb(w),
    threads: lambda w: train_threads(CFG.finetune.targets[w.target].gpus)
    priority: PRIORITY["finetune"]
    log:
        logfile("train", "finetune_{model}_{target}.log"),
    conda:
        ENV
    shell:
        "{params.launch} --config {params.config:q} {params.command} > {log:q} 2>&1"


rule distill_nokd:
    """The Exp 9 student trained for the same steps as `distill` with L_task only: the KD-off control."""
    input:
        generated=GENERATED,
        vae=VAE_RUN,
        data=train_data(CFG.distill.train),
    output:
        run_json(layout.run_dir(CFG, "distill_nokd")),
    params:
        config=CONFIG,
        cfg=section("model", "distill", "masks", "seed"),
        launch=launcher(CFG.distill.train.gpus),
        vae=lambda w, input: parent(input.vae),
        out=lambda w, output: parent(output[0]),
    threads: train_threads(CFG.distill.train.gpus)
    resources:
        **train_resources(CFG.distill.train.gpus, "student"),
    priority: PRIORITY["distill_nokd"]
    log:
        logfile("train", "distill_nokd.log"),
    conda:
        ENV
    shell:
        "{params.launch} --config {params.config:q} train distill --student student --no-kd --vae {params.vae:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule compare_kd:
    """Validation loss with and without KD for the same steps: the main recipe (distill vs distill_nokd)
    and Table 2's Exp 9 vs Exp 10."""
    input:
        distill=rules.distill.output[0],
        nokd=rules.distill_nokd.output[0],
        exp9=run_json(layout.ablation_arch_run(CFG, "exp9")),
        exp10=run_json(layout.ablation_arch_run(CFG, "exp10")),
        vae=VAE_RUN,
    output:
        path(layout.report_files(CFG)["kd_vs_nokd"]),
    params:
        config=CONFIG,
        cfg=section("distill", "ablation"),
        moebius=MOEBIUS,
        runs=lambda w, input: " ".join(
            f"--run {shlex.quote(f'{name}={parent(input[name])}')}" for name in ("distill", "nokd", "exp9", "exp10")
        ),
        vae=lambda w, input: parent(input.vae),
    log:
        logfile("train", "compare_kd.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} train compare-kd {params.runs} --vae {params.vae:q}"
        " --out {output:q} > {log:q} 2>&1"


rule models_all:
    """Phase target for `dvc repro models`."""
    input:
        [run_json(run) for run in TRAIN_RUNS.values()],
        [run_json(layout.ablation_loss_run(CFG, c)) for c in LOSS_COMBOS],
        [run_json(layout.finetune_run(CFG, m, t)) for m in DIFFUSION_OURS for t in FINETUNE_TARGETS],

