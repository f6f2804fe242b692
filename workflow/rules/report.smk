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
GRIDS = [(e, b) for e in ("main", "ood") for b in SUITE_BENCHMARKS[e]]
REPORT_OUTPUTS = [
    f"{P.results}/report.md",
    f"{P.results}/index.html",
    f"{P.results}/metrics.json",
    f"{P.results}/training/kd_vs_nokd.csv",
    f"{P.results}/tables/ground_truth_leak.csv",
    *[f"{P.results}/tables/{t}.csv" for t in TABLES],
]


rule report:
    """Everything a reviewer reads, built only from result records, results/reference/ and the samples."""
    input:
        records=ALL_RECORDS,
        reference=[f"{P.results}/reference/{f.name}" for f in sorted(Path("results/reference").glob("*.csv"))],
        curves=[f"{run}/run.json" for run in TRAIN_RUNS.values()],
        mask_stats=rules.mask_stats.output.stats,
        samples=[f"{P.results}/samples/{e}/{m}/suite.json" for e in ("main", "ood") for m in EVAL_MODELS if suite_benchmarks(e, m)],
        images=[f"{benchmark_dir(b)}/manifest.csv" for _, b in GRIDS],
        masks=[f"{mask_dir(b)}/manifest.csv" for _, b in GRIDS],
    output:
        report=report(f"{P.results}/report.md", caption="../report/report_md.rst", category="1. Report"),
        html=report(f"{P.results}/index.html", caption="../report/index_html.rst", category="1. Report"),
        thumbs=directory(f"{P.results}/thumbs"),
        metrics=f"{P.results}/metrics.json",
        tables=report(
            [f"{P.results}/tables/{t}.csv" for t in TABLES], caption="../report/tables.rst", category="2. Tables"
        ),
        table_plots=report(
            [f"{P.results}/plots/{p}.png" for p in TABLE_PLOTS],
            caption="../report/plots.rst",
            category="3. Figures",
            subcategory="Paper tables",
        ),
        mask_plot=report(
            f"{P.results}/plots/mask_hole_ratio.png",
            caption="../report/masks.rst",
            category="3. Figures",
            subcategory="Masks",
        ),
        curves=report(
            [f"{P.results}/plots/train_{name}.png" for name in TRAIN_RUNS],
            caption="../report/training.rst",
            category="3. Figures",
            subcategory="Training curves",
        ),
        grids=report(
            [f"{P.results}/plots/qualitative_{e}_{b}.png" for e, b in GRIDS],
            caption="../report/qualitative.rst",
            category="4. Qualitative",
        ),
    params:
        moebius=MOEBIUS,
        records=lambda w, input: " ".join(f"--records {r}" for r in input.records),
        curves=" ".join(f"--train-metrics {name}={run}/train_metrics.csv" for name, run in TRAIN_RUNS.items()),
        reference=lambda w, input: parent(input.reference[0]),
        tables=lambda w, output: parent(output.tables[0]),
        plots=lambda w, output: parent(output.table_plots[0]),
        grids=" ".join(
            f"--grid experiment={e},benchmark={b},images={benchmark_dir(b)},masks={mask_dir(b)},"
            f"samples={P.results}/samples/{e},models={'+'.join(grid_models(e, b))}"
            for e, b in GRIDS
        ),
    log:
        f"{P.logs}/report.log",
    conda:
        ENV
    shell:
        "{params.moebius} report {params.records} {params.curves} --mask-stats {input.mask_stats}"
        " --reference {params.reference} --tables-dir {params.tables} --plots-dir {params.plots}"
        " --report {output.report} --metrics-json {output.metrics}"
        " --html {output.html} --thumbs-dir {output.thumbs} {params.grids} > {log} 2>&1"
