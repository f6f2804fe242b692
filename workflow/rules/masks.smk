# Stored, seeded mask sets (255 = hole), one per benchmark, and their hole-ratio statistics.


rule mask_set:
    """The benchmark's masks: one explicit RNG per (protocol, version, seed, image id)."""
    input:
        lambda w: f"{benchmark_dir(w.benchmark)}/manifest.csv",
    output:
        f"{P.masks}/{{protocol}}/v{{version}}/{{benchmark}}/manifest.csv",
    wildcard_constraints:
        protocol="|".join(list_protocols()),  # not "official": imported sets come from official_mask_set
    params:
        cfg=lambda w: section("masks") + config_hash(CFG.benchmarks[w.benchmark]),
        moebius=MOEBIUS,
        images=lambda w, input: parent(input[0]),
        out=lambda w, output: parent(output[0]),
    log:
        f"{P.logs}/masks/{{protocol}}_v{{version}}_{{benchmark}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} masks generate --benchmark {wildcards.benchmark} --images {params.images}"
        " --out {params.out} > {log} 2>&1"


rule official_mask_set:
    """The authors' published masks of a benchmark (Moebius README), imported as a stored set (255 = hole)."""
    input:
        images=lambda w: f"{benchmark_dir(w.benchmark)}/manifest.csv",
        archive=lambda w: CFG.masks.official.archives[w.benchmark],
    output:
        f"{official_dir(P.masks, '{benchmark}')}/manifest.csv",
    params:
        cfg=lambda w: config_hash([CFG.masks.official.polarity, CFG.masks.official.pairing]),
        moebius=MOEBIUS,
        images=lambda w, input: parent(input.images),
        out=lambda w, output: parent(output[0]),
    log:
        f"{P.logs}/masks/official_{{benchmark}}.log",
    conda:
        ENV
    shell:
        "{params.moebius} masks import {input.archive} --benchmark {wildcards.benchmark} --images {params.images}"
        " --out {params.out} > {log} 2>&1"


rule mask_stats:
    """Hole-ratio statistics per protocol (fresh draws) and per stored set, with a histogram."""
    input:
        [f"{mask_dir(b)}/manifest.csv" for b in BENCHMARKS],
    output:
        stats=f"{P.results}/masks/hole_ratio_stats.csv",
        sets=f"{P.results}/masks/stored_sets.csv",
        plot=f"{P.results}/plots/mask_hole_ratios.png",
    params:
        cfg=section("masks"),
        moebius=MOEBIUS,
        sets=lambda w, input: " ".join(f"--set {parent(m)}" for m in input),
    log:
        f"{P.logs}/masks/stats.log",
    conda:
        ENV
    shell:
        "{params.moebius} masks stats {params.sets} --out-csv {output.stats} --sets-csv {output.sets}"
        " --plot {output.plot} > {log} 2>&1"


rule masks_all:
    """Phase target for `dvc repro masks`."""
    input:
        rules.mask_stats.output,
