"""The data folder of a report: the results as compact JSON and CSV tables.

Every file is a function of the results' data alone, so two runs with one seed write the same
bytes; timings go to the report's ``run.json`` (:func:`run_metadata`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..results import ClaimsResult, ExperimentResult, Result, SweepResult, dumps
from .lyapunov import lyapunov_rows

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


def write_tables(
    experiment: ExperimentResult,
    sweep: SweepResult | None,
    claims: ClaimsResult | None,
    data_dir: Path,
) -> list[Path]:
    """The result JSON and CSV tables (decay rates, claims, path shares, Lyapunov diagnostics,
    sweep points) in
    ``data_dir``.

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
            ]
        )
    atomic_write(data_dir / "decay_rates.csv", _csv(rows))
    written.append(data_dir / "decay_rates.csv")
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
