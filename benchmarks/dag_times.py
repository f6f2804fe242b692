"""Where a workflow run spent its time: wall time and per-rule job-seconds from a Snakemake log (issue 15).

Reads the log Snakemake writes for every run (``.snakemake/log/<timestamp>.snakemake.log``): each job's
start is the timestamp above its ``rule …:`` block, its end the timestamp above ``Finished jobid: N``
(Snakemake prints them at one-second resolution). Appends one row per rule plus a ``TOTAL`` row (the
run's wall time from the first job's start to the last job's end, and the sum of job-seconds, which on
``--cores 2`` is about twice the wall time when both cores are busy) to ``--out``.

    .venv/bin/python benchmarks/dag_times.py .snakemake/log/<run>.snakemake.log --label "smoke, fork server"
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

from provenance import REPO, commit_label, write_csv

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_DONE = re.compile(r"^Finished jobid: (\d+)\b")


def job_times(log_text: str) -> tuple[dict[str, list[float]], float]:
    """({rule: [seconds of each finished job]}, wall seconds from the first start to the last finish)."""
    stamp = rule = None
    started: dict[str, tuple[str, dt.datetime]] = {}
    per_rule: dict[str, list[float]] = defaultdict(list)
    first = last = None
    for line in log_text.splitlines():
        if m := _STAMP.match(line):
            stamp = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule is not None and stamp is not None:
            started[m.group(1)] = (rule, stamp)
            first = first or stamp
        elif (m := _DONE.match(line)) and m.group(1) in started and stamp is not None:
            name, start = started.pop(m.group(1))
            per_rule[name].append((stamp - start).total_seconds())
            last = stamp
    if first is None or last is None:
        raise SystemExit("dag_times: no finished job in this log (was it a dry run?)")
    return dict(per_rule), (last - first).total_seconds()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="a .snakemake/log/*.snakemake.log of a finished run")
    parser.add_argument("--label", required=True, help="what the run was (scale, options, machine load)")
    parser.add_argument("--commit", default=None, help="the commit the run measured (default: this checkout's)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "dag_cpu.csv")
    args = parser.parse_args(argv)
    per_rule, wall = job_times(args.log.read_text(encoding="utf-8"))
    common = {"label": args.label, "log": args.log.name, "commit": args.commit or commit_label("workflow", "Snakefile")}
    rows = [{"rule": r, "jobs": len(t), "job_seconds": sum(t), "mean_s": round(sum(t) / len(t), 1), "max_s": max(t),
             **common} for r, t in sorted(per_rule.items(), key=lambda kv: -sum(kv[1]))]
    rows.append({"rule": "TOTAL", "jobs": sum(len(t) for t in per_rule.values()),
                 "job_seconds": sum(map(sum, per_rule.values())), "wall_s": wall, **common})
    df = pd.DataFrame(rows)
    write_csv(df, args.out, text_columns=("commit",))
    print(df.to_string(index=False), file=sys.stderr)


if __name__ == "__main__":
    main()
