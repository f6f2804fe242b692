# Run hooks: the resolved config every job reads, and the fork server that spares the jobs their imports.
#
# The resolved config (`moebius --config {params.config}`) is written when a run starts, by the same
# package function as `moebius config resolve`, atomically, never while the DAG is parsed (so
# `snakemake -n` and `--lint` write nothing; remote cluster jobs run with --no-hooks and only read it).
# Beside it, a copy under the config's hash: the config_hash of every record, for tracing a number.
#
# Why a start hook and not a rule whose output every job declares as an input: Snakemake (9.27) would
# re-run that rule after any change of settings, and while planning, a job downstream of a job that
# must re-run is only re-examined through its non-ancient inputs; with the config as an ancient()
# input, a job whose own `cfg` parameter changed in the same step was then silently left out of the
# plan (tests/test_incremental.py shows both: what re-runs, and that it reads the new settings).
#
# The fork server (moebius/forkserver.py) runs for local runs only: cluster jobs run on other nodes and
# start their own processes. Jobs find it through $MOEBIUS_FORKSERVER; without it they run as before.
from moebius import forkserver

FORKSERVER = []


onstart:
    write_resolved(CONFIG_FILES, CONFIG_OVERRIDES, [CONFIG, path(layout.config_archive(CFG))], expect_hash=CONFIG_HASH)
    if workflow.local_exec and not workflow.remote_exec:
        FORKSERVER.append(forkserver.start(log=logfile("forkserver.log")))


onsuccess:
    for server in filter(None, FORKSERVER):
        server.stop()


onerror:
    for server in filter(None, FORKSERVER):
        server.stop()
