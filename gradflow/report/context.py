"""What a report shows, as plain data for the HTML and Markdown templates.

A cell's equations and Jacobian come from the :class:`~gradflow.results.CellCard` its summary
carries: nothing is read from a cell file or derived again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import plots
from .._version import __version__
from ..citations import text
from ..errors import GradflowError
from ..results import ClaimsResult, ExperimentResult, SweepResult
from .claims_figure import CLIPPING_STEM
from .html import card_math, slug
from .lyapunov import CITATIONS as _LYAPUNOV_CITATIONS
from .lyapunov import lyapunov_context
from .models import CITATIONS as _TRAINED_CITATIONS
from .science import lyapunov_cell, meanfield_cell, science_context
from .summary import (
    NEUTRAL_TOL,
    decay_interval_text,
    measured_rows,
    regime,
    summary_sentences,
)

_INIT_CITATIONS = {
    "torch": "paszke2019",
    "orthogonal": "saxe2014",
    "identity": "le2015irnn",
    "forget_bias": "jozefowicz2015",
    "chrono_tmax": "tallec2018chrono",
}
_CLAIM_CITATIONS = (
    "poole2016",
    "pascanu2013",
    "hochreiter1997",
    "gers2000forget",
    "jozefowicz2015",
    "cho2014",
    "srivastava2015highway",
    "efron1993",
)


def citation_keys(
    experiment: ExperimentResult,
    sweep: SweepResult | None,
    claims: ClaimsResult | None,
    cells: Sequence[Any],
) -> list[str]:
    """The citation keys of every cell and method a report uses, each once, in order."""
    keys = [k for c in cells for k in getattr(c, "citations", ())]
    summaries = experiment.cells.values()
    if any(s.pascanu for s in summaries):
        keys.append("pascanu2013")
    if any(s.meanfield or s.annealed for s in summaries) or sweep is not None:
        keys.append("poole2016")
    if any(s.annealed for s in summaries):
        keys += ["chen2018minimalrnn", "gilboa2019"]
    if any(s.singular_values_certified for s in summaries):
        keys += ["stewart1997graded", "demmel1992jacobi"]
    if any(s.lyapunov_exponents is not None for s in summaries):
        keys.append("benettin1980")
    if any(s.lyapunov is not None for s in summaries):  # the "Lyapunov diagnostics" section
        keys += list(_LYAPUNOV_CITATIONS)
    init = experiment.config.get("init") or {}
    if init.get("scheme") in _INIT_CITATIONS:
        keys.append(_INIT_CITATIONS[init["scheme"]])
    keys += [_INIT_CITATIONS[k] for k in ("forget_bias", "chrono_tmax") if init.get(k)]
    if claims is not None:
        keys += list(_CLAIM_CITATIONS)
    keys.append("okabeito2008")  # the figures' palette
    return list(dict.fromkeys(keys))


def _references(keys: Sequence[str], cells: Sequence[Any]) -> list[str]:
    """One line per reference; a user cell without citation keys contributes its text."""
    lines = []
    for key in keys:
        try:
            lines.append(text(key))
        except GradflowError:  # an unknown key in a user cell must not sink the report
            continue
    lines += [
        f"{c.name}: {c.reference}"
        for c in cells
        if getattr(c, "reference", "") and not getattr(c, "citations", ())
    ]
    return lines


def report_context(
    experiment: ExperimentResult,
    sweep: SweepResult | None,
    claims: ClaimsResult | None,
    figures: list[dict[str, Any]],
    data_files: list[str],
    config_source: tuple[str, str] | None = None,
    trained: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the HTML and Markdown templates show, as plain data.

    ``trained`` is the "Trained networks" section (:func:`gradflow.report.models.
    trained_context`), or None to leave it out.

    A cell's equations and Jacobian come from the :class:`~gradflow.results.CellCard` its
    summary carries: nothing is read from a cell file or derived again.
    """
    names = plots.cell_order(experiment.cells)
    first = experiment.cells[names[0]]
    cells, rows, cards = [], [], []
    for i, name in enumerate(names):
        s = experiment.cells[name]
        anchor = f"cell-{i + 1}-{slug(name)}"
        card = s.card
        entry: dict[str, Any] = {
            "name": name,
            "anchor": anchor,
            "missing": "" if card is not None else "the result carries no equations for it",
            "math": None,
            "latex": None,
            "description": (card.description if card else "") or "user-defined cell",
            "reference": card.reference if card else "",
            "state": list(card.state) if card else [],
            "sizes": f"n = {s.hidden_size}, d = {s.input_size}, T = {s.steps}",
        }
        if card is not None:
            cards.append(card)
            entry["math"] = card_math(card)
            entry["latex"] = {
                "equations": [tuple(tex.split(" = ", 1)) for _, tex in card.equations],
                "jacobian": [
                    (label, [tuple(tex.split(" = ", 1)) for _, tex in lines])
                    for label, lines in card.jacobian
                ],
            }
        cells.append(entry)
        rate = s.decay_rate
        final = s.log10_norm_final.get("full")
        rows.append(
            {
                "name": name,
                "anchor": anchor,
                "median": rate.median,
                "low": rate.low,
                "high": rate.high,
                "ci_low": rate.runs.low if rate.runs is not None else None,
                "ci_high": rate.runs.high if rate.runs is not None else None,
                "window": "\u2013".join(str(k) for k in rate.window),
                "final": float(s.log10_spectral_norm.median[-1]),
                "final_low": final.low if final is not None else None,
                "final_high": final.high if final is not None else None,
                "regime": regime(rate.median),
                "pascanu": s.pascanu.holds if s.pascanu else None,
                # the annealed growth rate (schema 3); older results: the tanh RNN's slope
                "meanfield": (
                    meanfield_cell(s)["rate"]
                    if s.annealed or not s.meanfield
                    else s.meanfield.predicted_slope
                ),
                "meanfield_warn": bool(meanfield_cell(s)["warnings"]),
                "lyapunov": lyapunov_cell(s),
            }
        )
    configs = []
    if config_source is not None:
        configs.append((f"experiment configuration ({config_source[0]})", config_source[1], "toml"))
    configs.append(
        (
            "experiment configuration (resolved)",
            json.dumps(dict(experiment.config), indent=2, sort_keys=True),
            "json",
        )
    )
    sweep_ctx = None
    if sweep is not None:
        configs.append(
            (
                "sweep configuration",
                json.dumps(dict(sweep.config), indent=2, sort_keys=True),
                "json",
            )
        )
        counts: dict[str, int] = {}
        for p in sweep.points:
            counts[p.regime] = counts.get(p.regime, 0) + 1
        sweep_ctx = {
            "name": sweep.name,
            "n_points": len(sweep.points),
            "axes": [(a, [_short(v) for v in vals]) for a, vals in sweep.axes.items()],
            "counts": sorted(counts.items()),
            "figure": "phase_diagram" if any(f["id"] == "phase_diagram" for f in figures) else None,
        }
    claim_rows = None
    if claims is not None:
        claim_rows = [
            {**c.to_dict(), "measured": measured_rows(c.measured, c.intervals)}
            for c in claims.claims
        ]
    band = first.log10_spectral_norm
    headline = next((f for f in figures if f["id"] == "headline"), None)
    claims_figure = next((f for f in figures if f["id"] == CLIPPING_STEM), None)
    return {
        "title": experiment.name,
        "summary": summary_sentences(experiment),
        "headline": headline,
        "neutral_tol": f"{NEUTRAL_TOL:g}",
        "version": __version__,
        "result_version": experiment.gradflow_version,
        "seeds": list(experiment.seeds),
        "runs_text": f"{first.runs} runs per cell",
        "band_text": band.label,
        "cells": cells,
        "decay_rows": rows,
        "decay_ci": decay_interval_text(experiment),
        "science": science_context(experiment),
        "lyapunov": lyapunov_context(experiment),
        "claims": claim_rows,
        "claims_figure": claims_figure,
        "claims_figure_number": 2 if headline else 1,
        "sweep": sweep_ctx,
        "figures": [f for f in figures if f["id"] not in ("headline", CLIPPING_STEM)],
        "first_figure": (2 if headline else 1) + (1 if claims_figure else 0),
        "references": _references(
            list(
                dict.fromkeys(
                    citation_keys(experiment, sweep, claims, cards)
                    + (list(_TRAINED_CITATIONS) if trained else [])
                )
            ),
            cards,
        ),
        "trained": trained,
        "configs": configs,
        "data_files": data_files,
    }


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
