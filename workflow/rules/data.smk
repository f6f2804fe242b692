# Datasets (DVC-tracked) and the benchmark image sets cut from them.

if CFG.data.source == "smoke":

    rule smoke_dataset:
        """Tiny deterministic datasets from photographs shipped in installed packages."""
        output:
            train=f"{P.data}/datasets/{{dataset}}/train/manifest.csv",
            test=f"{P.data}/datasets/{{dataset}}/test/manifest.csv",
        params:
            cfg=section("data", "seed"),
            moebius=MOEBIUS,
            out_root=lambda w, output: str(Path(output.train).parents[2]),
        wildcard_constraints:
            dataset="smoke_[a-z_]+",
        log:
            f"{P.logs}/data/{{dataset}}.log",
        conda:
            ENV
        shell:
            "{params.moebius} data smoke --dataset {wildcards.dataset} --out-root {params.out_root} > {log} 2>&1"

else:

    rule fetch_dataset:
        """Download (resumable, checksummed), extract safely and lay out one split of a real dataset."""
        output:
            f"{P.data}/datasets/{{dataset}}/{{split}}/manifest.csv",
        params:
            cfg=section("data", "seed"),
            moebius=MOEBIUS,
            raw=f"{P.data}/raw",
            out_root=f"{P.data}/datasets",
        resources:
            runtime=24 * 60,
            mem_mb=16000,
        log:
            f"{P.logs}/data/{{dataset}}_{{split}}.log",
        conda:
            ENV
        shell:
            "{params.moebius} data fetch --dataset {wildcards.dataset} --split {wildcards.split}"
            " --raw-dir {params.raw} --out-root {params.out_root} > {log} 2>&1"


rule benchmark_images:
    """A benchmark's images: selected by rule, preprocessed as its protocol says (MAT crop / MI-GAN resize)."""
    input:
        benchmark_source,
    output:
        f"{P.data}/benchmarks/{{benchmark}}/manifest.csv",
    params:
        cfg=lambda w: config_hash(CFG.benchmarks[w.benchmark]),
        moebius=MOEBIUS,
        dataset_dir=lambda w, input: parent(input[0]),
        out=lambda w, output: parent(output[0]),
    log:
        f"{P.logs}/data/benchmark_{{benchmark}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} data benchmark --benchmark {wildcards.benchmark} --dataset-dir {params.dataset_dir}"
        " --out {params.out} > {log} 2>&1"


rule data_all:
    """Phase target for `dvc repro data`: every dataset split and benchmark image set."""
    input:
        [f"{P.data}/benchmarks/{b}/manifest.csv" for b in BENCHMARKS],
        train_data(CFG.distill.train),
