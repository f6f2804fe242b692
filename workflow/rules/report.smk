# Tables 1-7 (+ efficiency) as CSV beside the paper's numbers, plots, results/report.md, and the offline
# web page results/index.html with qualitative grids. Outputs flagged report() make up Snakemake's own
# report: `snakemake --report report.html` after a run (captions in workflow/report/).
report: "../report/workflow.rst"


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
# Figures drawn from the tables (moebius.report.plots.make_plots), the mask statistics and every curve.
TABLE_PLOTS = ["cfg_sweep", "efficiency", "table2_architecture_ablation", "table5_loss_ablation"]
# Qualitative grids: every model of Tables 1/3/4/7 sampled on a benchmark (grid_models), on the same
# images and masks, one grid per benchmark.
GRIDS = [(e, b) for e in SUITES for b in SUITE_BENCHMARKS[e]]
REPORT = {k: path(v) for k, v in layout.report_files(CFG).items()}
REPORT_OUTPUTS = [
    REPORT["report"],
    REPORT["html"],
    REPORT["metrics"],
    REPORT["kd_vs_nokd"],
    path(layout.table_file(CFG, "ground_truth_leak")),
    *[path(layout.table_file(CFG, t)) for t in TABLES],
]


rule report:
    """Everything a reviewer reads, built only from result records, results/reference/ and the samples."""
    input:
        records=ALL_RECORDS,
        # The paper's numbers: the files in git (results/reference/), whatever paths.results says.
        reference=[path(f) for f in sorted(layout.reference_dir(CFG).glob("*.csv"))],
        curves=[run_json(run) for run in TRAIN_RUNS.values()],
        mask_stats=rules.mask_stats.output.stats,
        samples=[path(layout.suite_file(CFG, e, m)) for e in SUITES for m in EVAL_MODELS if suite_benchmarks(e, m)],
        images=[path(layout.benchmark_manifest(CFG, b)) for _, b in GRIDS],
        masks=[path(layout.mask_manifest(CFG, b)) for _, b in GRIDS],
    output:
        report=report(REPORT["report"], caption="../report/report_md.rst", category="1. Report"),
        html=report(REPORT["html"], caption="../report/index_html.rst", category="1. Report"),
        thumbs=directory(REPORT["thumbs"]),
        metrics=REPORT["metrics"],
        tables=report(
            [path(layout.table_file(CFG, t)) for t in TABLES], caption="../report/tables.rst", category="2. Tables"
        ),
        table_plots=report(
            [path(layout.plot_file(CFG, p)) for p in TABLE_PLOTS],
            caption="../report/plots.rst",
            category="3. Figures",
            subcategory="Paper tables",
        ),
        mask_plot=report(
            path(layout.plot_file(CFG, "mask_hole_ratio")),
            caption="../report/masks.rst",
            category="3. Figures",
            subcategory="Masks",
        ),
        curves=report(
            [path(layout.plot_file(CFG, f"train_{name}")) for name in TRAIN_RUNS],
            caption="../report/training.rst",
            category="3. Figures",
            subcategory="Training curves",
        ),
        grids=report(
            [path(layout.plot_file(CFG, f"qualitative_{e}_{b}")) for e, b in GRIDS],
            caption="../report/qualitative.rst",
            category="4. Qualitative",
        ),
    params:
        config=CONFIG,
        moebius=MOEBIUS,
        records=lambda w, input: " ".join(f"--records {shlex.quote(r)}" for r in input.records),
        curves=" ".join(
            f"--train-metrics {shlex.quote(f'{name}={layout.train_metrics(run)}')}" for name, run in TRAIN_RUNS.items()
        ),
        reference=lambda w, input: parent(input.reference[0]),
        tables=lambda w, output: parent(output.tables[0]),
        plots=lambda w, output: parent(output.table_plots[0]),
        # `report --grid` is a comma-separated spec (moebius.report.qualitative.parse_grid): these paths
        # come from the config's `paths`, which must then hold no comma.
        grids=lambda w: " ".join(f"--grid {shlex.quote(grid_spec(e, b))}" for e, b in GRIDS),
    # The last job of the DAG: ~40 figures drawn in two processes (matplotlib draws on one core). With
    # two threads it runs outside the fork server (moebius/forkserver.py); it imports no torch.
    threads: 2
    log:
        logfile("report.log"),
    conda:
        ENV
    shell:
        "{params.moebius} --config {params.config:q} report {params.records} {params.curves}"
        " --mask-stats {input.mask_stats:q} --reference {params.reference:q} --tables-dir {params.tables:q}"
        " --plots-dir {params.plots:q} --report {output.report:q} --metrics-json {output.metrics:q}"
        " --html {output.html:q} --thumbs-dir {output.thumbs:q} {params.grids} --workers {threads} > {log:q} 2>&1"
