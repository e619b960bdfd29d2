"""The data folder of a report: the results as compact JSON and CSV tables.

Every file is a function of the results' data alone, so two runs with one seed write the same
bytes; timings go to the report's ``run.json`` (:func:`run_metadata`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..results import (
    CellSummary,
    ClaimsResult,
    ExperimentResult,
    Result,
    SweepResult,
    dumps,
)
from .lyapunov import lyapunov_rows
from .summary import rate_ratio

#: The interval columns of ``claims.csv``, named as in
#: :meth:`gradflow.analysis.uncertainty.Interval.to_dict` (less its ``estimate``).
INTERVAL_COLUMNS = ("low", "high", "level", "statistic", "draws", "resamples")


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


#: Columns of ``claims.csv``: one row per measured number of a claim.
CLAIM_COLUMNS = (
    "id",
    "quantity",
    "estimate",
    *INTERVAL_COLUMNS,
    "holds",
    "title",
    "conditions",
)


def claim_rows(claims: ClaimsResult) -> list[list[Any]]:
    """``claims.csv``: a header, then one row per measured number of each claim, in the order
    the claim measured them: its estimate and, where the claim has one, its bootstrap interval
    over weight draws (``low``, ``high``, ``level``, ``statistic``, ``draws``, ``resamples``;
    empty for an exact or counted number), with the claim's verdict and conditions. Every
    number of the report's claims table is a row here (``quantity`` is the table's key)."""
    rows: list[list[Any]] = [list(CLAIM_COLUMNS)]
    for c in claims.claims:
        for key, value in c.measured.items():
            iv = c.intervals.get(key, {})
            rows.append(
                [
                    c.id,
                    key,
                    value,
                    *(iv.get(col) for col in INTERVAL_COLUMNS),
                    c.holds,
                    c.title,
                    c.conditions,
                ]
            )
    return rows


def path_share_rows(experiment: ExperimentResult) -> list[list[Any]]:
    """``path_shares.csv``: a header, then per cell and lag the additive path's share
    ``||S_0||_F / ||P_k||_F`` of the full product over every run, the median with its
    bootstrap interval, in log10 and as a fraction (the report's "Paths and spectra" text)."""
    rows: list[list[Any]] = [
        [
            "cell",
            "lag",
            "log10_share",
            "log10_low",
            "log10_high",
            "share",
            "share_low",
            "share_high",
            *INTERVAL_COLUMNS[2:],
            "groups",
        ]
    ]
    for name, s in experiment.cells.items():
        ivs = s.path_terms.additive_share_interval if s.path_terms is not None else {}
        for lag, iv in sorted(ivs.items()):
            logs = [float(iv[k]) for k in ("estimate", "low", "high")]
            rows.append(
                [
                    name,
                    lag,
                    *logs,
                    *(10.0**v for v in logs),
                    *(iv.get(c) for c in INTERVAL_COLUMNS[2:]),
                    iv.get("groups"),
                ]
            )
    return rows


#: The interval columns ``decay_rates.csv`` gains with schema-4 results (empty for older
#: ones): the 95 % two-stage bootstrap interval of the median rate and how it was made, and
#: the median log10 norms at ``k = T`` the summary quotes with their intervals; and the RNN's
#: median rate over the cell's (how many times more slowly gradients fade than in the RNN,
#: :func:`~gradflow.report.summary.rate_ratio`) with its interval, where both vanish.
DECAY_INTERVAL_COLUMNS = (
    "median_ci_low",
    "median_ci_high",
    "ci_level",
    "ci_resamples",
    "ci_runs",
    "ci_draws",
    "log10_norm_at_T_ci_low",
    "log10_norm_at_T_ci_high",
    "log10_additive_norm_at_T",
    "log10_additive_norm_at_T_ci_low",
    "log10_additive_norm_at_T_ci_high",
    "rnn_rate_ratio",
    "rnn_rate_ratio_ci_low",
    "rnn_rate_ratio_ci_high",
)


def decay_interval_cells(s: CellSummary, rnn: CellSummary | None) -> list[Any]:
    """The :data:`DECAY_INTERVAL_COLUMNS` of one cell (None where the result has no value);
    ``rnn`` is the experiment's vanilla RNN, if it has one."""
    iv = s.decay_rate.interval or {}
    full = s.log10_norm_final.get("full")
    add = s.log10_norm_final.get("additive")
    ratio = rate_ratio(rnn.decay_rate, s.decay_rate) if rnn is not None and s is not rnn else None
    return [
        iv.get("low"),
        iv.get("high"),
        iv.get("level"),
        iv.get("resamples"),
        iv.get("draws"),
        iv.get("groups"),
        full.low if full else None,
        full.high if full else None,
        float(add.interval["estimate"]) if add and add.interval else None,
        add.low if add else None,
        add.high if add else None,
        *((ratio.estimate, ratio.low, ratio.high) if ratio is not None else (None,) * 3),
    ]


def decay_run_rows(experiment: ExperimentResult) -> list[list[Any]]:
    """``decay_rates_runs.csv``: a header, then one row per run of each cell that carries
    per-run values (schema version 4): the weight draw (its seed), the sequence within the
    draw, the run's decay rate and its log10 norms at ``k = T`` (full product; additive path
    where the cell has one). Empty values: no finite value (a product exactly zero). Every
    interval of the decay table and the summary can be recomputed from these rows
    (:func:`gradflow.analysis.uncertainty.run_interval` of a cell's values grouped by seed)."""
    rows: list[list[Any]] = [
        [
            "cell",
            "run",
            "seed",
            "sequence",
            "decay_rate",
            "log10_norm_at_T",
            "log10_additive_norm_at_T",
        ]
    ]
    for name, s in experiment.cells.items():
        runs = s.decay_rate.runs
        if runs is None:
            continue
        full = s.log10_norm_final.get("full")
        add = s.log10_norm_final.get("additive")
        seen: dict[int, int] = {}
        for i, (rate, draw) in enumerate(zip(runs.values, runs.draws, strict=True)):
            seq = seen.get(int(draw), 0)
            seen[int(draw)] = seq + 1
            rows.append(
                [
                    name,
                    i,
                    int(draw),
                    seq,
                    _value(rate),
                    _value(full.values[i]) if full is not None else None,
                    _value(add.values[i]) if add is not None else None,
                ]
            )
    return rows


def _value(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def write_tables(
    experiment: ExperimentResult,
    sweep: SweepResult | None,
    claims: ClaimsResult | None,
    data_dir: Path,
) -> list[Path]:
    """The result JSON and CSV tables (decay rates, every run's rate and norm, claims, path
    shares, Lyapunov diagnostics, sweep points) in ``data_dir``.

    Every file is a function of the results' data alone: two runs with one seed write the same
    bytes (timings go to the report's ``run.json``, see :func:`run_metadata`)."""
    written = []
    for name, result in (("experiment", experiment), ("sweep", sweep), ("claims", claims)):
        if result is not None:  # compact: strict JSON without indentation, in the run order
            atomic_write(
                data_dir / f"{name}.json", dumps(result.to_dict(), compact=True), parents=True
            )
            written.append(data_dir / f"{name}.json")
    band = next(iter(experiment.cells.values())).decay_rate
    low, high = (f"q{round(band.levels[0] * 100)}", f"q{round(band.levels[2] * 100)}")
    rows: list[list[Any]] = [
        [
            "cell",
            "median",
            low,
            high,
            "window_start",
            "window_end",
            "units",
            "log10_norm_at_T",
            "pascanu_holds",
            "meanfield_predicted_slope",
            "meanfield_annealed_growth_rate",
            "meanfield_annealed_stderr",
            "meanfield_tied_growth_rate",
            "meanfield_warnings",
            "lyapunov_largest",
            "lyapunov_largest_stderr",
            *DECAY_INTERVAL_COLUMNS,
        ]
    ]
    for name, s in experiment.cells.items():
        r = s.decay_rate
        rows.append(
            [
                name,
                r.median,
                r.low,
                r.high,
                *r.window,
                r.units,
                float(s.log10_spectral_norm.median[-1]),
                s.pascanu.holds if s.pascanu else None,
                s.meanfield.predicted_slope if s.meanfield else None,
                s.annealed.growth_rate if s.annealed else None,
                s.annealed.stderr if s.annealed else None,
                s.annealed.tied_growth_rate if s.annealed else None,
                " | ".join(s.annealed.warnings) if s.annealed else None,
                *(s.largest_lyapunov() or (None, None)),
                *decay_interval_cells(s, experiment.cells.get("rnn")),
            ]
        )
    atomic_write(data_dir / "decay_rates.csv", _csv(rows))
    written.append(data_dir / "decay_rates.csv")
    per_run = decay_run_rows(experiment)
    if len(per_run) > 1:
        atomic_write(data_dir / "decay_rates_runs.csv", _csv(per_run))
        written.append(data_dir / "decay_rates_runs.csv")
    if claims is not None:
        atomic_write(data_dir / "claims.csv", _csv(claim_rows(claims)))
        written.append(data_dir / "claims.csv")
    lyap = lyapunov_rows(experiment)
    if len(lyap) > 1:
        atomic_write(data_dir / "lyapunov.csv", _csv(lyap))
        written.append(data_dir / "lyapunov.csv")
    shares = path_share_rows(experiment)
    if len(shares) > 1:
        atomic_write(data_dir / "path_shares.csv", _csv(shares))
        written.append(data_dir / "path_shares.csv")
    if sweep is not None:
        axes = list(sweep.axes)
        rows = [[*axes, "decay_rate", "log10_norm_final", "regime"]]
        for p in sweep.points:
            rows.append(
                [*(p.params.get(a) for a in axes), p.decay_rate, p.log10_norm_final, p.regime]
            )
        atomic_write(data_dir / "sweep_points.csv", _csv(rows))
        written.append(data_dir / "sweep_points.csv")
    return written


def run_metadata(*results: Result | None) -> dict[str, Any]:
    """The volatile metadata (timings) of each result, by kind, for the report's ``run.json``."""
    return {r.kind: dict(r.run) for r in results if r is not None and r.run}
