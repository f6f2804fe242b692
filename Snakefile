# moebius-repro: regenerate every table of the Moebius paper. This file only wires.
#   smoke (default):  snakemake all --cores 2
#   full:             snakemake all --configfile config/full.yaml --workflow-profile workflow/profiles/slurm
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/smoke.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/masks.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        REPORT_OUTPUTS,
    default_target: True


if CFG.scale == "rehearsal":

    rule rehearsal_ci:
        """CI's rehearsal: one job or more of every rule kind but `report` (which needs the whole DAG),
        on the full-scale code; read with config/rehearsal_ci.yaml. tests/test_workflow.py checks the
        coverage. The comments name the rule kinds each target brings in."""
        input:
            # install_official (VAE, teacher), distill, distill_nokd (one process each with rehearsal_ci.yaml), ablation_arch,
            # generate_weights, rehearsal_sources, fetch_dataset of the training sets
            rules.compare_kd.output,
            # every benchmark's fetch_dataset, benchmark_images and mask_set
            rules.ground_truth_leak.output,
            *MASK_STATS.values(),
            record("efficiency", "moebius"),  # profile
            record("efficiency", "variants"),  # profile_variants
            record("ablation_loss", "loss_c", CFG.ablation.benchmark),  # ablation_loss, sample, evaluate
            # install_official (ft_celebahq), sample_cfg_sweep, evaluate_cfg_sweep
            *[record("cfg_sweep", "moebius", b) for b in sorted(CFG.eval.cfg_sweep)[:1]],
            record("ood", "migan"),  # sample_suite, evaluate_suite (a TorchScript baseline)
            # sample_suite_start, evaluate_suite_start: our student from the other sampler start
            *[record("ood", "moebius", start=s) for s in EXTRA_STARTS],
