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
