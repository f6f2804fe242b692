# Datasets (DVC-tracked) and the benchmark image sets cut from them.

if CFG.data.source == "smoke":

    rule smoke_dataset:
        """Tiny deterministic datasets from photographs shipped in installed packages."""
        output:
            train=path(layout.dataset_manifest(CFG, "{dataset}", "train")),
            test=path(layout.dataset_manifest(CFG, "{dataset}", "test")),
        params:
            config=CONFIG,
            cfg=section("data", "seed"),
            moebius=MOEBIUS,
            out_root=lambda w, output: str(Path(output.train).parents[2]),
        wildcard_constraints:
            dataset="smoke_[a-z_]+",
        priority: PRIORITY["smoke_dataset"]
        log:
            logfile("data", "{dataset}.log"),
        conda:
            ENV
        shell:
            "{params.moebius} --config {params.config:q} data smoke --dataset {wildcards.dataset}"
            " --out-root {params.out_root:q} > {log:q} 2>&1"

else:
    # The rehearsal's record of its generated archives: rehearsal_sources writes it, every fetch reads it.
    REHEARSAL_SOURCES = [path(layout.rehearsal_sources(CFG) / "sources.json")] if CFG.data.source == "rehearsal" else []

    if REHEARSAL_SOURCES:

        rule rehearsal_sources:
            """The rehearsal's small archives in the publishers' layouts (served to fetch_dataset on 127.0.0.1)."""
            output:
                REHEARSAL_SOURCES,
            params:
                config=CONFIG,
                cfg=section("data", "seed"),
                moebius=MOEBIUS,
                out=lambda w, output: parent(output[0]),
            priority: PRIORITY["rehearsal_sources"]
            log:
                logfile("data", "rehearsal_sources.log"),
            conda:
                ENV
            shell:
                "{params.moebius} --config {params.config:q} data rehearsal-sources --out {params.out:q} > {log:q} 2>&1"

    rule fetch_dataset:
        """Download (resumable, checksummed), extract safely and lay out one split of a real dataset."""
        input:
            sources=REHEARSAL_SOURCES,
        output:
            path(layout.dataset_manifest(CFG, "{dataset}", "{split}")),
        params:
            config=CONFIG,
            cfg=section("data", "seed"),
            moebius=MOEBIUS,
            raw=path(layout.raw_dir(CFG)),
            out_root=lambda w, output: str(Path(output[0]).parents[2]),
            sources=lambda w, input: f"--sources {shlex.quote(parent(input.sources[0]))}" if input.sources else "",
        resources:
            runtime=24 * 60,
            mem_mb=16000,
        priority: PRIORITY["fetch_dataset"]
        log:
            logfile("data", "{dataset}_{split}.log"),
        conda:
            ENV
        shell:
            "{params.moebius} --config {params.config:q} data fetch --dataset {wildcards.dataset}"
            " --split {wildcards.split} --raw-dir {params.raw:q} --out-root {params.out_root:q} {params.sources}"
            " > {log:q} 2>&1"


rule benchmark_images:
    """A benchmark's images: selected by rule, preprocessed as its protocol says (MAT crop / MI-GAN resize)."""
    input:
        source=lambda w: path(layout.benchmark_source(CFG, w.benchmark)),
    output:
        path(layout.benchmark_manifest(CFG, "{benchmark}")),
    params:
        config=CONFIG,
        cfg=lambda w: config_hash(CFG.benchmarks[w.benchmark]),
        moebius=MOEBIUS,
        dataset_dir=lambda w, input: parent(input.source),
        out=lambda w, output: parent(output[0]),
    priority: PRIORITY["benchmark_images"]
    log:
        logfile("data", "benchmark_{benchmark}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} data benchmark --benchmark {wildcards.benchmark}"
        " --dataset-dir {params.dataset_dir:q} --out {params.out:q} > {log:q} 2>&1"


rule data_all:
    """Phase target for `dvc repro data`: every dataset split and benchmark image set."""
    input:
        [path(layout.benchmark_manifest(CFG, b)) for b in BENCHMARKS],
        train_data(CFG.distill.train),
