r"""What a report says about spectra, paths, mean field and Lyapunov exponents, from the data.

Every sentence is built from numbers the experiment result carries (its cell summaries'
certified singular values, :class:`~gradflow.results.diagnostics.PathTerms`,
:class:`~gradflow.results.diagnostics.AnnealedGrowth` and Lyapunov exponents); nothing is
recomputed. The definitions are in ``docs/theory.md`` (sections 7 and 8) and
``docs/figures.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..results import CellSummary, ExperimentResult
from .summary import two_stage


def _share(value: float) -> str:
    """A share as a percentage (``45%``, ``3.2%``, ``100%``) or, below 0.1 %, in scientific
    notation."""
    if not math.isfinite(value):
        return "n/a"
    if value >= 0.995:  # .2g would print 100 % as 1e+02%
        return f"{100 * value:.0f}%"
    return f"{100 * value:.2g}%" if value >= 1e-3 else f"{value:.1e}"


def certified_counts(experiment: ExperimentResult) -> dict[int, tuple[int, int]]:
    """``{lag: (certified, total)}`` singular values over every cell and run; empty for a
    result that predates certification."""
    out: dict[int, list[int]] = {}
    for s in experiment.cells.values():
        for lag, mask in s.singular_values_certified.items():
            row = out.setdefault(int(lag), [0, 0])
            row[0] += int(np.sum(mask))
            row[1] += int(np.size(mask))
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def singular_value_sentence(experiment: ExperimentResult) -> str | None:
    """How many singular values were certified at each lag, and how they were computed."""
    counts = certified_counts(experiment)
    if not counts:
        return None
    parts = [f"{c} of {t} ({100 * c / t:.1f}%) at lag {k}" for k, (c, t) in counts.items() if t]
    method = next(iter(experiment.cells.values())).singular_values_method.replace(" & ", " and ")
    return (
        "Singular values: every value of the product is computed to high relative accuracy "
        f"by {method}; certified: {', '.join(parts)}. Values that are not certified are left "
        "out of the figure (the data files keep them, with a certified flag)."
    )


def _runs(n: int) -> str:
    return f"{n} sequence{'s' if n != 1 else ''}"


def share_text(interval: Mapping[str, Any]) -> str:
    """``47% [38%, 55%]``: a log10 share's median and interval (:func:`_share` each)."""
    lo, est, hi = (_share(10.0 ** float(interval[k])) for k in ("low", "estimate", "high"))
    return f"{est} [{lo}, {hi}]"


def path_sentences(experiment: ExperimentResult) -> list[str]:
    """For each cell with a path expansion, how much of the full product travels through the
    additive path alone (``||S_0|| / ||P_k||``, median over every run with its bootstrap
    interval where the result has it) and which ``j`` carries the most, by lag."""
    out = []
    for name, s in experiment.cells.items():
        terms = s.path_terms
        if terms is None:
            continue
        peaks = ", ".join(f"j = {j} at lag {k}" for k, j in terms.peak_j())
        ivs = terms.additive_share_interval
        if ivs:
            first = next(iter(ivs.values()))
            draws = first["draws"]
            seeds = s.runs // s.batch if s.batch else 0
            kind = (
                "95 % two-stage bootstrap interval: the weight draws, then the sequences "
                "within each"
                if two_stage(first)
                else "95 % bootstrap interval of the weight draws"
                if first.get("groups")
                else "95 % bootstrap interval"
            )
            over = (
                f"median over {_runs(int(draws))} ({seeds} weight draws x {s.batch} "
                f"sequence{'s' if s.batch != 1 else ''}) [{kind}]"
                if seeds * s.batch == draws
                else f"median over {_runs(int(draws))} [{kind}]"
            )
            shares = ", ".join(f"{share_text(iv)} at lag {k}" for k, iv in sorted(ivs.items()))
            out.append(
                f"{name}: the additive path alone (S_0, no factor through a weight matrix) "
                f"carries {shares} of the full product's Frobenius norm ({over}); the largest "
                f"term S_j has {peaks} (the expansion of {_runs(terms.runs)})."
            )
            continue
        shares = ", ".join(f"{_share(v)} at lag {k}" for k, v in terms.median_share())
        out.append(
            f"{name}: the additive path alone (S_0, no factor through a weight matrix) carries "
            f"{shares} of the full product's Frobenius norm; the largest term S_j has {peaks} "
            f"(median over {_runs(terms.runs)})."
        )
    return out


def meanfield_cell(s: CellSummary) -> dict[str, Any]:
    """The mean-field column of one cell: the tied-weight (per-unit trajectory) growth rate
    where the experiment computed one (cells with sigmoid gates), otherwise the annealed
    growth rate, with the annealed rate's standard error and the warnings (``rate`` None
    where the theory does not apply or was not computed; ``kind`` says which rate it is)."""
    a = s.annealed
    if a is None:
        return {"rate": None, "stderr": None, "warnings": [], "applies": None, "kind": None}
    tied = a.tied_growth_rate
    return {
        "rate": tied if tied is not None else a.growth_rate,
        "stderr": None if tied is not None else a.stderr,
        "warnings": list(a.warnings),
        "applies": a.applies,
        "kind": "tied" if tied is not None else "annealed",
    }


def lyapunov_cell(s: CellSummary) -> dict[str, Any]:
    """The largest Lyapunov exponent of one cell (decades per step) and its standard error."""
    lyap = s.largest_lyapunov()
    if lyap is None:
        return {"value": None, "stderr": None, "text": "\u2013"}
    se = f" \u00b1 {lyap[1]:.2g}" if math.isfinite(lyap[1]) else ""
    return {"value": lyap[0], "stderr": lyap[1], "text": f"{lyap[0]:+.4g}{se}"}


def meanfield_notes(experiment: ExperimentResult) -> list[str]:
    """The footnotes of the mean-field column: its assumptions once, then each distinct
    warning with the cells it applies to."""
    cells = [s for s in experiment.cells.values() if s.annealed is not None]
    if not cells:
        return []
    notes = [
        "Mean field: the annealed growth rate of E||ds_T/ds_{T-k}||_F^2, in decades per step "
        "of the Frobenius norm, from the cell's own SymPy equations (population dynamics, "
        f"docs/theory.md section 8). Assumptions: {cells[0].annealed.assumptions}."  # type: ignore[union-attr]
    ]
    by_warning: dict[str, list[str]] = {}
    for s in cells:
        for w in s.annealed.warnings:  # type: ignore[union-attr]
            by_warning.setdefault(w, []).append(s.cell)
    for w, names in by_warning.items():
        notes.append(f"Warning ({', '.join(names)}): {w}.")
    return notes


def state_free_sentences(experiment: ExperimentResult) -> list[str]:
    """For each cell whose Jacobian does not depend on the state: what its chain is, and where
    its interesting gradient flow is."""
    return [
        f"{name}: its state Jacobian does not depend on the state (only on the inputs), so its "
        "single-layer chain is exactly the product of its gates; its interesting gradient flow "
        "is in the multi-layer and parameter-sensitivity views (docs/stacks.md)."
        for name, s in experiment.cells.items()
        if s.state_free is True
    ]


def science_context(experiment: ExperimentResult) -> dict[str, Any]:
    """The report's text on spectra, paths, mean field and Lyapunov exponents."""
    sv = singular_value_sentence(experiment)
    return {
        "singular_values": sv,
        "paths": state_free_sentences(experiment) + path_sentences(experiment),
        "meanfield_notes": meanfield_notes(experiment),
        "has_annealed": any(s.annealed is not None for s in experiment.cells.values()),
        "has_lyapunov": any(s.largest_lyapunov() is not None for s in experiment.cells.values()),
    }
