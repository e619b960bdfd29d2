"""Reports: one offline HTML page and a Markdown twin, with figures and data, from results.

:func:`build_report` turns saved results into a report folder; :func:`run_report` runs the
built-in comparison (or a user's experiment TOML) first, as ``gradflow report`` does.

With ``config`` (``gradflow report --config FILE``) the report shows the user's experiment; if
the file also has a ``[sweep]`` table, that sweep runs too and the report gains its phase
diagram. The claims and the trained networks (:mod:`gradflow.analysis.trained`, the section
"Trained networks") are left out: they belong to the built-in comparison.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from threadpoolctl import ThreadpoolController

from ..analysis.claims import run_claims, submit_claims
from ..analysis.defaults import default_report_config, default_sweep_config
from ..analysis.experiment import ExperimentConfig, read_toml, run_experiment
from ..analysis.run import experiment_threads, submit_experiment
from ..analysis.sweep import (
    SweepConfig,
    init_worker,
    run_sweep,
    stop_workers,
    worker_context,
)
from ..analysis.trained import analyze_trained
from ..cost import forced
from ..plots import FORMATS
from ..results import ExperimentResult
from ..threads import threads_per_worker
from .build import build_report as build_report
from .build import report_context as report_context
from .build import worker_errors
from .summary import cli_lines


class _Progress:
    """One tqdm bar on stderr whose label and total follow the current stage."""

    def __init__(self, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=1,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
            disable=not enabled or not sys.stderr.isatty(),
            bar_format="{desc}: {bar} {n_fmt}/{total_fmt} [{elapsed}]",
        )

    def stage(self, label: str) -> None:
        self.bar.set_description_str(label)
        self.bar.reset(total=1)

    def __call__(self, done: int, total: int) -> None:
        if total != self.bar.total:
            self.bar.reset(total=max(total, 1))
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


#: Modules each worker of the report's pool needs, imported once by the forkserver (workers
#: are forked from it) instead of once per worker: the stages' code and matplotlib.
PRELOAD = [
    "gradflow.analysis.sweep",
    "gradflow.analysis.claims",
    "gradflow.analysis.trained",
    "gradflow.report.build",
]


#: Each worker's process-wide BLAS limit (kept for the worker's life; see _init_worker).
_LIMITS: list[Any] = []


def _init_worker(threads: int, blas: int, force: bool) -> None:
    """The sweep's initializer (signals, ``threads`` as the cap of the thread policy,
    ``--force``), and ``blas`` BLAS threads for the whole worker, not only inside
    :func:`gradflow.engine.analyze`:
    the report's other numerics (certified singular values, path expansions, mean fields, the
    claims' bounds) are small products too, and OpenBLAS's default of one thread per core
    spins beside a busy process (issue 14: the default report used 2.2x the CPU time of one
    thread on a loaded 2-core machine)."""
    init_worker(threads, force)
    _LIMITS.append(ThreadpoolController().limit(limits=blas, user_api="blas"))


def report_threads(config: ExperimentConfig) -> int:
    """BLAS threads for a report on ``config``, applied to the whole run: the experiment's
    (:func:`gradflow.analysis.run.experiment_threads`; the claims, the trained networks and
    the default sweep are smaller)."""
    return experiment_threads(config)


@contextlib.contextmanager
def _worker_pool(jobs: int, blas: int) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` worker processes for the report's stages (:func:`_init_worker`: each worker's
    share of the threads, at most ``blas`` for BLAS, signals, ``--force``); stopped at once on
    an error or Ctrl-C, so no worker outlives the report."""
    ctx = worker_context()
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)  # no effect once this process's server runs
    share = threads_per_worker(jobs)
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(share, min(share, blas), forced()),
    )
    try:
        yield pool
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def _sweep(
    config: SweepConfig | None, jobs: int, bar: _Progress, pool: ProcessPoolExecutor | None
) -> Any:
    """The report's sweep (None without one), its points in a temporary work folder."""
    if config is None:
        return None
    bar.stage("sweep")
    with tempfile.TemporaryDirectory(prefix="gradflow-sweep-") as work:
        return run_sweep(config, work, jobs=jobs, progress=bar, executor=pool)


def run_report(
    out_dir: str | os.PathLike[str] = "reports/latest",
    *,
    config: str | os.PathLike[str] | None = None,
    venue: str = "neurips",
    jobs: int = 2,
    formats: Sequence[str] = FORMATS,
    progress: bool = True,
    cells: str = "classic",
) -> Path:
    """Run the experiments a report shows, then :func:`build_report` into ``out_dir``.

    Args:
        out_dir: the report folder (replaced only once the new report is complete).
        config: an experiment TOML; None runs the built-in comparison
            (:func:`gradflow.analysis.defaults.default_report_config`), the quick claims, the
            default sweep and the analysis of the shipped trained networks.
        venue: figure style. jobs: worker processes; with two or more, the experiment's
            cells, the claims, the trained networks and the sweep's points run on one pool of
            ``jobs`` processes (the same results as with one).
        formats: figure formats. progress: show a progress bar on stderr (on a terminal).
        cells: without ``config``, ``"classic"`` (the 11 cells before 2018) or ``"all"`` (the
            25 catalogue cells, grouped by family; about 40 s more CPU time).

    Returns:
        ``out_dir`` as a Path.
    """

    bar = _Progress(progress)
    try:
        claims: Any = None
        trained: Any = None
        source = None
        if config is None:
            exp_cfg = default_report_config(cells)
            sweep_cfg: SweepConfig | None = default_sweep_config()
        else:
            data = read_toml(config)
            base = {k: v for k, v in data.items() if k != "sweep"}
            exp_cfg = ExperimentConfig.from_dict(base, base_dir=Path(config).parent)
            sweep_cfg = (
                SweepConfig.from_dict(data, base_dir=Path(config).parent)
                if "sweep" in data
                else None
            )
            source = (Path(config).name, Path(config).read_text(encoding="utf-8"))
        blas = report_threads(exp_cfg)
        with contextlib.ExitStack() as stack:
            stack.enter_context(ThreadpoolController().limit(limits=blas, user_api="blas"))
            pool = stack.enter_context(_worker_pool(jobs, blas)) if jobs > 1 else None
            if pool is None:
                bar.stage("experiment")
                experiment = run_experiment(exp_cfg, progress=bar)
                if config is None:
                    bar.stage("claims")
                    claims = run_claims(quick=True, progress=bar)
                    bar.stage("trained networks")
                    trained = analyze_trained()
                sweep = _sweep(sweep_cfg, jobs, bar, None)
            else:
                # Every stage on one pool, all submitted before any is awaited (the claims
                # and the experiment's cells costliest first, the sweep's short points last),
                # so that no worker waits at a stage's end; then the figures on it too.
                with worker_errors():
                    if config is None:
                        finish_claims = submit_claims(pool, quick=True)
                        trained_job = pool.submit(analyze_trained)
                    finish_experiment = submit_experiment(exp_cfg, pool)
                    sweep = _sweep(sweep_cfg, jobs, bar, pool)
                    bar.stage("experiment")
                    experiment = finish_experiment(bar)
                    if config is None:
                        bar.stage("claims and trained networks")
                        claims, trained = finish_claims(False), trained_job.result()
            return build_report(
                experiment,
                sweep,
                claims,
                out_dir,
                venue=venue,
                formats=formats,
                config_source=source,
                progress=bar.stage,
                trained=trained,
                executor=pool,
            )
    finally:
        bar.close()


def summary_lines(out_dir: str | os.PathLike[str], seconds: float) -> list[str]:
    """What ``gradflow report`` prints when it ends: the headline decay rates of the report in
    ``out_dir`` (read from its data files), where it is and how long it took."""

    experiment = ExperimentResult.load(Path(out_dir) / "data" / "experiment.json")
    return cli_lines(experiment, str(Path(out_dir) / "index.html"), seconds)


__all__ = ["build_report", "report_context", "report_threads", "run_report", "summary_lines"]
