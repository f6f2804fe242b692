# Stored, seeded mask sets (255 = hole), one per benchmark, and their hole-ratio statistics.
from moebius.masks.registry import list_protocols


rule mask_set:
    """The benchmark's masks: one explicit RNG per (protocol, version, seed, image id)."""
    input:
        images=lambda w: path(layout.benchmark_manifest(CFG, w.benchmark)),
    output:
        path(layout.mask_set_dir(CFG, "{protocol}", "{version}", "{benchmark}") / layout.MANIFEST),
    wildcard_constraints:
        protocol="|".join(list_protocols()),  # not "official": imported sets come from official_mask_set
    params:
        config=CONFIG,
        cfg=lambda w: section("masks") + config_hash(CFG.benchmarks[w.benchmark]),
        moebius=MOEBIUS,
        images=lambda w, input: parent(input.images),
        out=lambda w, output: parent(output[0]),
    priority: PRIORITY["mask_set"]
    log:
        logfile("masks", "{protocol}_v{version}_{benchmark}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} masks generate --benchmark {wildcards.benchmark}"
        " --images {params.images:q} --out {params.out:q} > {log:q} 2>&1"


rule official_mask_set:
    """The authors' published masks of a benchmark (Moebius README), imported as a stored set (255 = hole)."""
    input:
        images=lambda w: path(layout.benchmark_manifest(CFG, w.benchmark)),
        archive=lambda w: CFG.masks.official.archives[w.benchmark],
    output:
        path(layout.official_mask_dir(CFG, "{benchmark}") / layout.MANIFEST),
    params:
        config=CONFIG,
        cfg=lambda w: config_hash([CFG.masks.official.polarity, CFG.masks.official.pairing]),
        moebius=MOEBIUS,
        images=lambda w, input: parent(input.images),
        out=lambda w, output: parent(output[0]),
    priority: PRIORITY["official_mask_set"]
    log:
        logfile("masks", "official_{benchmark}.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} masks import {input.archive:q} --benchmark {wildcards.benchmark}"
        " --images {params.images:q} --out {params.out:q} > {log:q} 2>&1"


MASK_STATS = {k: path(v) for k, v in layout.mask_stats(CFG).items()}


rule mask_stats:
    """Hole-ratio statistics per protocol (fresh draws) and per stored set, with a histogram."""
    input:
        sets=[path(layout.mask_manifest(CFG, b)) for b in BENCHMARKS],
    output:
        **MASK_STATS,
    params:
        config=CONFIG,
        cfg=section("masks"),
        moebius=MOEBIUS,
        sets=lambda w, input: " ".join(f"--set {shlex.quote(parent(m))}" for m in input.sets),
    log:
        logfile("masks", "stats.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} masks stats {params.sets} --out-csv {output.stats:q}"
        " --sets-csv {output.sets:q} --plot {output.plot:q} > {log:q} 2>&1"


rule masks_all:
    """Phase target for `dvc repro masks`."""
    input:
        rules.mask_stats.output,
