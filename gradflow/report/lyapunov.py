r"""The report's "Lyapunov diagnostics" subsection and ``data/lyapunov.csv``, from the
:class:`~gradflow.results.lyapunov.LyapunovSummary` each experiment cell carries.

Nothing is recomputed: the table, the sentences and the CSV are read off the summaries
(:func:`gradflow.analysis.lyapunov.experiment_lyapunov` made them).

References:
    [benettin1980], [kaplan1979], [eckmann1985], [flyvbjerg1989].
"""

from __future__ import annotations

import math
from typing import Any

from .. import plots
from ..results import ExperimentResult
from ..results.lyapunov import LyapunovSummary
from .summary import NEUTRAL_TOL

#: The references the subsection cites (the report's reference list must hold them).
CITATIONS = ("benettin1980", "kaplan1979", "eckmann1985", "flyvbjerg1989")
#: Exponents shown in the table (every exponent is in ``data/lyapunov.csv``).
SHOWN = 3
#: What the table shows for an exponent at the rounding level of its steps.
UNRESOLVED = "unresolved"
#: Columns of ``data/lyapunov.csv``; the exponents and their standard errors follow as
#: ``lambda_<i>``, ``lambda_<i>_stderr``, ``lambda_<i>_resolved`` for ``i = 1..p`` of the
#: largest ``p``.
CSV_COLUMNS = (
    "cell",
    "state_size",
    "exponents_computed",
    "units",
    "kaplan_yorke",
    "kaplan_yorke_stderr",
    "kaplan_yorke_lower_bound",
    "entropy_rate_decades",
    "entropy_rate_nats",
    "entropy_rate_lower_bound",
    "exponent_sum",
    "log10_det_mean",
    "det_residual",
    "det_tol",
    "det_passes",
    "singular_steps",
    "sequences",
    "steps",
    "transient",
    "blocks",
    "block_steps",
)


def _summaries(experiment: ExperimentResult) -> dict[str, LyapunovSummary]:
    cells = experiment.cells
    return {n: cells[n].lyapunov for n in plots.cell_order(cells) if cells[n].lyapunov}  # type: ignore[misc]


def _rate(value: float, se: float | None = None) -> str:
    """``-0.0715 ± 0.0015`` (a minus sign, not a hyphen); ``-∞`` for an annihilated direction."""
    if math.isinf(value):
        return "\u2212\u221e" if value < 0 else "+\u221e"
    text = f"{value:+.4f}".replace("-", "\u2212")
    return text + (f" \u00b1 {se:.2g}" if se is not None and math.isfinite(se) else "")


def _check(s: LyapunovSummary) -> tuple[str, bool | None]:
    """The determinant check in words, and whether it passes (None: does not apply)."""
    if not s.complete:
        return f"n/a ({s.count} of m = {s.state_size} exponents)", None
    if s.singular_steps:
        total = s.steps * s.sequences
        return f"n/a (det J_t = 0 at {s.singular_steps} of {total} steps: both sides −∞)", None
    return ("passes" if s.det_passes else "fails"), s.det_passes


def lyapunov_row(name: str, s: LyapunovSummary) -> dict[str, Any]:
    """One row of the subsection's table, as text."""
    ok = s.resolved_mask
    shown = [
        _rate(float(v), float(e)) if ok[i] or math.isinf(v) else UNRESOLVED
        for i, (v, e) in enumerate(zip(s.exponents[:SHOWN], s.stderr[:SHOWN], strict=True))
    ]
    shown += ["\u2013"] * (SHOWN - len(shown))
    dky = f"{s.kaplan_yorke:.3g}"
    if s.kaplan_yorke_stderr is not None and s.kaplan_yorke_stderr > 0:
        dky += f" \u00b1 {s.kaplan_yorke_stderr:.2g}"
    if s.kaplan_yorke_lower_bound:
        dky = "\u2265 " + dky
    if s.entropy_rate > 0:
        entropy = f"{s.entropy_rate:.3g} ({s.entropy_rate_nats:.3g} nats)"
    else:
        entropy = "0"
    if s.entropy_rate_lower_bound:
        entropy = "\u2265 " + entropy
    check, passes = _check(s)
    return {
        "name": name,
        "exponents": shown,
        "kaplan_yorke": dky,
        "entropy": entropy,
        "sum": "\u2013" if s.exponent_sum is None else _rate(s.exponent_sum).replace("+", ""),
        "det": (
            "\u2212\u221e"
            if s.complete and s.singular_steps
            else ("\u2013" if s.log10_det_mean is None else _rate(s.log10_det_mean))
        ),
        "residual": (
            "\u2013" if s.det_residual is None else f"{s.det_residual:.1e}".replace("-", "\u2212")
        ),
        "check": check,
        "passes": passes,
    }


def lyapunov_sentences(summaries: dict[str, LyapunovSummary]) -> list[str]:
    """What the numbers mean for gradient flow, from the data: one paragraph each."""
    s0 = next(iter(summaries.values()))
    contracting = [n for n, s in summaries.items() if s.exponents[0] < 0]
    positive = [n for n, s in summaries.items() if s.exponents[0] >= 0]
    out = [
        "Every exponent of each cell, by forward QR re-orthonormalisation of its Jacobians "
        f"(Benettin et al. 1980) on the first sequence of each of the first "
        f"{s0.sequences} seeds ({s0.steps} steps after a transient of {s0.transient}), in "
        f"decades per step, ± one standard error by batch means over {s0.blocks} blocks of "
        f"{s0.block_steps} steps per sequence (Flyvbjerg & Petersen 1989). D_KY: the "
        "Kaplan–Yorke dimension (Kaplan & Yorke 1979); entropy rate: the sum of the positive "
        "exponents, Pesin's upper bound on the Kolmogorov–Sinai entropy (Eckmann & Ruelle "
        "1985). λ_1 here and the decay-rate table's (every run, along the backward chain) "
        "estimate the same number."
    ]
    if contracting:
        out.append(
            f"{_names(contracting)}: every exponent is negative, so D_KY = 0 and the entropy "
            "rate is 0: the forward map contracts every direction of the state. The Jacobian "
            "product ∂s_T/∂s_{T−k} then shrinks geometrically, and λ_1 is the long-lag slope "
            "of log10 of its norm (the dotted slope line of the norm-vs-lag figure): gradients "
            "vanish at that rate, and no direction of the state escapes it."
        )
    if positive:
        slow = [n for n in positive if summaries[n].exponents[0] < NEUTRAL_TOL]
        tail = (
            f" ({_names(slow)}: below +{NEUTRAL_TOL:g} decades per step, neutral in the "
            "decay-rate table)"
            if slow
            else ""
        )
        out.append(
            f"{_names(positive)}: λ_1 ≥ 0, so nearby trajectories do not converge (D_KY > 0 "
            "and a positive entropy rate where λ_1 > 0): the Jacobian product grows at long "
            f"lags at the rate λ_1, and gradients do not vanish{tail}."
        )
    tol = f"{s0.det_tol:.0e}".replace("e-0", "e-")
    out.append(
        "Check: with all m exponents, their sum equals the time average of log10|det J_t| "
        "(per step, Σ_i log|R_t[i,i]| = log|det J_t|, since the QR frame is orthogonal). The "
        f"check passes when the two agree to {tol} decades per step: far above rounding (each "
        "side carries a relative error of about m u κ(J_t) in |det J_t|, u the unit roundoff) "
        "and far below the exponents' standard errors. Where some J_t is singular (a dead "
        "ReLU unit) both sides are −∞ and the check does not apply."
    )
    return out


def _names(names: list[str]) -> str:
    return ", ".join(names)


def lyapunov_context(experiment: ExperimentResult) -> dict[str, Any] | None:
    """The subsection as plain data (rows and sentences), or None when no cell carries
    Lyapunov diagnostics."""
    summaries = _summaries(experiment)
    if not summaries:
        return None
    return {
        "rows": [lyapunov_row(n, s) for n, s in summaries.items()],
        "sentences": lyapunov_sentences(summaries),
        "shown": SHOWN,
        "any_fails": any(
            s.det_passes is False for s in summaries.values() if s.complete and not s.singular_steps
        ),
    }


def lyapunov_rows(experiment: ExperimentResult) -> list[list[Any]]:
    """``data/lyapunov.csv``: a header, then one row per cell with Lyapunov diagnostics (empty
    but for the header when none has); ``-inf`` is written as ``-inf``."""
    summaries = _summaries(experiment)
    p = max((s.count for s in summaries.values()), default=0)
    header: list[Any] = list(CSV_COLUMNS)
    for i in range(1, p + 1):
        header += [f"lambda_{i}", f"lambda_{i}_stderr", f"lambda_{i}_resolved"]
    rows: list[list[Any]] = [header]
    for name, s in summaries.items():
        row: list[Any] = [
            name,
            s.state_size,
            s.count,
            s.units,
            s.kaplan_yorke,
            s.kaplan_yorke_stderr,
            s.kaplan_yorke_lower_bound,
            s.entropy_rate,
            s.entropy_rate_nats,
            s.entropy_rate_lower_bound,
            s.exponent_sum,
            s.log10_det_mean,
            s.det_residual,
            s.det_tol,
            s.det_passes,
            s.singular_steps,
            s.sequences,
            s.steps,
            s.transient,
            s.blocks,
            s.block_steps,
        ]
        ok = s.resolved_mask
        for i in range(p):
            if i < s.count:
                se = float(s.stderr[i])
                row += [float(s.exponents[i]), se if math.isfinite(se) else None, bool(ok[i])]
            else:
                row += [None, None, None]
        rows.append(row)
    return rows
