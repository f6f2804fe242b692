# Tables 1-7 (+ efficiency) as CSV beside the paper's numbers, plots, and results/report.md.
TABLES = [
    "table1_headline",
    "table2_architecture_ablation",
    "table3_natural",
    "table4_portrait",
    "table5_loss_ablation",
    "table6_cfg_sweep",
    "table7_ood",
    "efficiency",
]
REPORT_OUTPUTS = [
    f"{P.results}/report.md",
    f"{P.results}/metrics.json",
    f"{P.results}/training/kd_vs_nokd.csv",
    f"{P.results}/tables/ground_truth_leak.csv",
    *[f"{P.results}/tables/{t}.csv" for t in TABLES],
]


rule report:
    """Everything a reviewer reads, built only from result records and results/reference/."""
    input:
        records=ALL_RECORDS,
        reference=[f"{P.results}/reference/{f.name}" for f in sorted(Path("results/reference").glob("*.csv"))],
        curves=[f"{run}/run.json" for run in TRAIN_RUNS.values()],
        mask_stats=rules.mask_stats.output.stats,
    output:
        report=f"{P.results}/report.md",
        metrics=f"{P.results}/metrics.json",
        tables=[f"{P.results}/tables/{t}.csv" for t in TABLES],
    params:
        moebius=MOEBIUS,
        records=lambda w, input: " ".join(f"--records {r}" for r in input.records),
        curves=" ".join(f"--train-metrics {name}={run}/train_metrics.csv" for name, run in TRAIN_RUNS.items()),
        reference=lambda w, input: parent(input.reference[0]),
        tables=lambda w, output: parent(output.tables[0]),
        plots=f"{P.results}/plots",
    log:
        f"{P.logs}/report.log",
    conda:
        ENV
    shell:
        "{params.moebius} report {params.records} {params.curves} --mask-stats {input.mask_stats}"
        " --reference {params.reference} --tables-dir {params.tables} --plots-dir {params.plots}"
        " --report {output.report} --metrics-json {output.metrics} > {log} 2>&1"
