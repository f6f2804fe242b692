"""The sampling and scoring jobs of the workflow, named by ``(experiment, model, benchmark)``.

``moebius sample | sample-suite | score | score-suite`` (and ``evaluate``, the same scoring with every
folder given) call these. The folders come from ``moebius.layout`` (DESIGN.md's contracts: the
benchmark's images, the mask set that scores it, the model's run, the sample folder, the record
file), the same functions the Snakemake rules build their inputs and outputs from; so the command
line carries names, never a list of paths. Explicit folders (``sample --images/--masks/--run/--out``,
``evaluate --samples/...``) override them for work outside the workflow.

``start`` (``noise`` | ``gt_noised``) samples our diffusion models from another sampler start than
``sample.start`` (``eval.sampler_starts``: the main tables again); those folders and records live under
``start_<start>/`` (``moebius.layout``), and the samples' ``meta.json`` says which start made them.

A CFG sweep (Table 6) is one process per benchmark: the model is loaded once, one sample folder per
guidance scale (``g<scale>/``) and ``sweep.json`` listing them, written last; scoring reads the
folders back through ``read_sweep`` and records each with ``settings.cfg_scale``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moebius import layout
from moebius.atomic import write_json
from moebius.config import Config
from moebius.errors import EvalError
from moebius.eval.inpaint import inpaint_benchmark, read_sweep
from moebius.eval.metrics import evaluate_samples
from moebius.records import write_records


def sweep_scales(cfg: Config, benchmark: str) -> tuple[float, ...]:
    """Table 6's guidance scales for ``benchmark`` (``eval.cfg_sweep``)."""
    if benchmark not in cfg.eval.cfg_sweep:
        raise EvalError(f"benchmark {benchmark!r} has no CFG sweep in eval.cfg_sweep "
                        f"(configured: {', '.join(cfg.eval.cfg_sweep) or 'none'})")
    return tuple(cfg.eval.cfg_sweep[benchmark])


def sample(
    cfg: Config,
    experiment: str | None,
    model: str,
    benchmark: str,
    *,
    guidances: tuple[float, ...] = (),
    images: Path | None = None,
    masks: Path | None = None,
    run: Path | None = None,
    vae: Path | None = None,
    out: Path | None = None,
    start: str | None = None,
) -> Path:
    """Inpaint ``benchmark`` with ``model`` into its sample folder; returns the folder.

    Folders not given follow from the names (``moebius.layout``); without ``experiment``, ``out`` must be
    given and ``run``/``vae`` are whatever is passed (a baseline needs neither). ``guidances``: none =
    the benchmark domain's default (Table 6's scales for ``cfg_sweep``); several, or ``cfg_sweep``, make a
    sweep."""
    cfg.benchmark(benchmark)  # a typo is one line with a hint, before any folder is built from it
    if experiment is None:
        if out is None:
            raise EvalError("sampling needs --experiment (the folders follow from it) or an explicit --out")
    else:
        run = run if run is not None else layout.sample_run(cfg, experiment, model, benchmark)
        vae = vae if vae is not None else layout.sample_vae(cfg, experiment, model, benchmark)
        out = out if out is not None else layout.sample_dir(cfg, experiment, model, benchmark, start)
    images = images if images is not None else layout.benchmark_dir(cfg, benchmark)
    masks = masks if masks is not None else layout.mask_dir(cfg, benchmark)
    if experiment == "cfg_sweep" and not guidances:
        guidances = sweep_scales(cfg, benchmark)
    if experiment != "cfg_sweep" and len(guidances) <= 1:
        inpaint_benchmark(cfg, model, run, vae, benchmark, images, masks, out,
                          guidance=guidances[0] if guidances else None, start=start)
        return out
    folders = [f"g{g}" for g in guidances]
    for guidance, folder in zip(guidances, folders):  # one process for the sweep: the model is loaded once
        inpaint_benchmark(cfg, model, run, vae, benchmark, images, masks, out / folder, guidance=guidance,
                          start=start)
    write_json(out / layout.SWEEP, {"guidance": list(guidances), "folders": folders})
    return out


def sample_suite(cfg: Config, experiment: str, model: str, benchmarks: tuple[str, ...] = (),
                 start: str | None = None) -> Path:
    """``sample`` for every benchmark of a suite that ``model`` runs on (or the ``benchmarks`` given) in one
    process (the imports and the weights are paid once), then ``suite.json`` listing the folders;
    returns its path."""
    names = _suite_names(cfg, experiment, model, benchmarks)
    folders = {b: str(sample(cfg, experiment, model, b, start=start)) for b in names}
    out = layout.suite_file(cfg, experiment, model, start)
    write_json(out, {"experiment": experiment, "model": model, "start": start, "samples": folders})
    return out


def score(
    cfg: Config,
    experiment: str,
    model: str,
    benchmark: str,
    *,
    samples: Path | None = None,
    images: Path | None = None,
    masks: Path | None = None,
    out: Path | None = None,
    settings: dict[str, Any] | None = None,
) -> list[dict]:
    """FID / LPIPS (+ per-hole-ratio bins, bootstrap CIs) of one sample folder as records, written to
    ``out`` (default: the layout's record file); a ``cfg_sweep`` folder gives records per scale."""
    records = _score(cfg, experiment, model, benchmark, samples=samples, images=images, masks=masks,
                     settings=settings)
    write_records(out if out is not None else layout.record_file(cfg, experiment, model, benchmark), records)
    return records


def score_suite(cfg: Config, experiment: str, model: str, benchmarks: tuple[str, ...] = (),
                start: str | None = None) -> Path:
    """``score`` for every benchmark of a suite in one process, as one record file; returns its path."""
    records = [rec for b in _suite_names(cfg, experiment, model, benchmarks)
               for rec in _score(cfg, experiment, model, b, samples=layout.sample_dir(cfg, experiment, model, b, start))]
    out = layout.record_file(cfg, experiment, model, start=start)
    write_records(out, records)
    return out


def _score(cfg: Config, experiment: str, model: str, benchmark: str, *, samples: Path | None = None,
           images: Path | None = None, masks: Path | None = None,
           settings: dict[str, Any] | None = None) -> list[dict]:
    cfg.benchmark(benchmark)
    samples = samples if samples is not None else layout.sample_dir(cfg, experiment, model, benchmark)
    images = images if images is not None else layout.benchmark_dir(cfg, benchmark)
    masks = masks if masks is not None else layout.mask_dir(cfg, benchmark)
    extra = {**(settings or {}), "experiment": experiment}  # the experiment is the command's, not a setting's
    if experiment != "cfg_sweep":
        return evaluate_samples(cfg, samples, images, masks, model=model, benchmark=benchmark, settings=extra)
    records = []
    for guidance, folder in read_sweep(samples):
        records += evaluate_samples(cfg, folder, images, masks, model=model, benchmark=benchmark,
                                    settings={**extra, "cfg_scale": guidance})
    return records


def _suite_names(cfg: Config, experiment: str, model: str, benchmarks: tuple[str, ...]) -> list[str]:
    """The benchmarks of the suite that ``model`` runs on, or those given (each must be one of them: a
    suite's folders and records are those of its own benchmarks)."""
    suite = layout.suite_benchmarks(cfg, experiment, model)
    for b in benchmarks:
        if b not in suite:
            cfg.benchmark(b)  # an unknown name: the config's one-line hint
            raise EvalError(f"benchmark {b!r} is not in the {experiment} suite of {model} "
                            f"({', '.join(suite) or 'empty'})")
    names = list(dict.fromkeys(benchmarks)) or suite
    if not names:
        raise EvalError(f"{model} runs on no benchmark of the {experiment} suite in this config")
    return names
