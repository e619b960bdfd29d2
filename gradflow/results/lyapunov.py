r"""Lyapunov diagnostics of one experiment cell, as typed data (:class:`LyapunovSummary`).

The numbers of :func:`gradflow.analysis.lyapunov.experiment_lyapunov`: every exponent with its
batch-means standard error, the Kaplan-Yorke dimension with its standard error, the entropy
rate, and the determinant identity ``sum_i lambda_i = mean_t log10 |det J_t|`` as a check of
the whole computation. Rates are in decades per step (``lambda_i / ln 10``), the unit of every
rate in gradflow. Read back from JSON with validation; nothing is recomputed.

A direction the Jacobian product annihilates exactly (a ReLU unit dead at some step, so
``det J_t = 0``) has the exponent ``-inf``; JSON has no ``-inf``, so such an exponent is saved
as ``null`` and read back as ``-inf`` (no exponent is ever NaN or ``+inf``: the Jacobians are
checked finite).

References:
    [benettin1980], [kaplan1979], [eckmann1985], [flyvbjerg1989].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Where, as_array, as_bool, as_float, as_int, as_list, as_str, get, mapping


@dataclass(frozen=True, eq=False)
class LyapunovSummary:
    r"""The Lyapunov spectrum of one cell with error bars, and what follows from it.

    Attributes:
        exponents: ``(p,)`` the exponents ``lambda_1 >= ... >= lambda_p`` in decades per step
            (mean over the sequences used); ``-inf`` for a direction the product annihilates.
        stderr: ``(p,)`` their batch-means standard errors (NaN where the exponent is
            ``-inf``): the spread of the ``sequences x blocks`` block estimates over the
            square root of their number.
        state_size: ``m``, the length of the state; ``p = m`` unless the state was too large
            for the full spectrum (:data:`gradflow.analysis.lyapunov.FULL_SPECTRUM_MAX`).
        kaplan_yorke: the Kaplan-Yorke dimension ``D_KY`` (0 when ``lambda_1 < 0``).
        kaplan_yorke_stderr: its standard error over the block estimates.
        kaplan_yorke_lower_bound: True when ``D_KY`` is only a lower bound (``p < m`` and every
            partial sum of the ``p`` exponents is ``>= 0``).
        entropy_rate: the sum of the positive exponents (Pesin's upper bound on the
            Kolmogorov-Sinai entropy), decades per step.
        entropy_rate_nats: the same in nats per step (``ln 10`` times).
        entropy_rate_lower_bound: True when ``p < m`` and ``lambda_p > 0`` (more positive
            exponents may follow).
        exponent_sum: ``sum_i lambda_i`` (None when ``p < m``; ``-inf`` when singular).
        log10_det_mean: the time average of ``log10 |det J_t|`` over the same steps and
            sequences (None when ``p < m`` or when some ``J_t`` is singular).
        det_residual: ``exponent_sum - log10_det_mean`` (None where either is missing).
        det_tol: the tolerance of the determinant check, decades per step.
        det_passes: ``|det_residual| <= det_tol`` (None where the check does not apply).
        singular_steps: steps (over all sequences used) with ``det J_t = 0`` exactly.
        sequences: sequences used (the first of each seed).
        steps: steps used per sequence (after the transient). transient: steps discarded.
        blocks: blocks per sequence. block_steps: steps per block.
        method: how the numbers were computed, in words.
        resolved: ``(p,)`` False for an exponent whose QR diagonal fell to the rounding level
            of its step at some step (a direction the Jacobian annihilates, up to rounding):
            its value is rounding noise, not a rate (all True in files without the field).
    """

    exponents: np.ndarray
    stderr: np.ndarray
    state_size: int
    kaplan_yorke: float
    kaplan_yorke_stderr: float | None
    kaplan_yorke_lower_bound: bool
    entropy_rate: float
    entropy_rate_nats: float
    entropy_rate_lower_bound: bool
    exponent_sum: float | None
    log10_det_mean: float | None
    det_residual: float | None
    det_tol: float
    det_passes: bool | None
    singular_steps: int
    sequences: int
    steps: int
    transient: int
    blocks: int
    block_steps: int
    method: str = ""
    units: str = "decades per step"
    resolved: np.ndarray | None = None

    @property
    def count(self) -> int:
        """``p``, the number of exponents."""
        return int(self.exponents.shape[0])

    @property
    def complete(self) -> bool:
        """Whether every exponent was computed (``p = m``)."""
        return self.count == self.state_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``-inf`` exponents (and sums) become ``null`` (module docstring)."""
        return {
            "quantity": "Lyapunov exponents of s_t = F(s_{t-1}, x_t) (forward QR)",
            "units": self.units,
            "exponents": [_finite_or_none(v) for v in self.exponents],
            "stderr": [_finite_or_none(v) for v in self.stderr],
            "state_size": self.state_size,
            "kaplan_yorke": self.kaplan_yorke,
            "kaplan_yorke_stderr": self.kaplan_yorke_stderr,
            "kaplan_yorke_lower_bound": self.kaplan_yorke_lower_bound,
            "entropy_rate": self.entropy_rate,
            "entropy_rate_nats": self.entropy_rate_nats,
            "entropy_rate_lower_bound": self.entropy_rate_lower_bound,
            "exponent_sum": self.exponent_sum,
            "log10_det_mean": self.log10_det_mean,
            "det_residual": self.det_residual,
            "det_tol": self.det_tol,
            "det_passes": self.det_passes,
            "singular_steps": self.singular_steps,
            "sequences": self.sequences,
            "steps": self.steps,
            "transient": self.transient,
            "blocks": self.blocks,
            "block_steps": self.block_steps,
            "method": self.method,
            "resolved": [bool(v) for v in self.resolved_mask],
        }

    @property
    def resolved_mask(self) -> np.ndarray:
        """``(p,)`` True where the exponent is resolved (:attr:`resolved`)."""
        r = self.resolved
        return np.ones(self.exponents.shape, dtype=bool) if r is None else np.asarray(r, bool)

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> LyapunovSummary:
        d = mapping(data, where)

        def num(key: str) -> float | None:
            return as_float(d.get(key), where.at(key))

        def need(key: str) -> float:
            v = as_float(get(d, key, where), where.at(key))
            if v is None:
                raise where.at(key).fail("expected a finite number")
            return v

        def count(key: str) -> int:
            return as_int(get(d, key, where), where.at(key))

        exps = as_array(get(d, "exponents", where), where.at("exponents"), 1)
        se = as_array(get(d, "stderr", where), where.at("stderr"), 1)
        if se.shape != exps.shape or exps.size == 0:
            raise where.at("stderr").fail("expected one standard error per exponent")
        m = as_int(get(d, "state_size", where), where.at("state_size"), 1)
        if exps.size > m:
            raise where.at("exponents").fail(f"expected at most state_size = {m} exponents")
        res = d.get("resolved")
        resolved = None
        if res is not None:
            resolved = np.array(
                [as_bool(v, where.at("resolved")) for v in as_list(res, where.at("resolved"))],
                dtype=bool,
            )
            if resolved.shape != exps.shape:
                raise where.at("resolved").fail("expected one flag per exponent")
        passes = d.get("det_passes")
        total = num("exponent_sum")
        singular = count("singular_steps")
        if total is None and singular and exps.size == m:
            total = -math.inf  # a singular J_t: the sum is -inf, saved as null
        return cls(
            exponents=np.where(np.isnan(exps), -np.inf, exps),  # null: -inf (docstring)
            stderr=se,
            state_size=m,
            kaplan_yorke=need("kaplan_yorke"),
            kaplan_yorke_stderr=num("kaplan_yorke_stderr"),
            kaplan_yorke_lower_bound=as_bool(
                get(d, "kaplan_yorke_lower_bound", where), where.at("kaplan_yorke_lower_bound")
            ),
            entropy_rate=need("entropy_rate"),
            entropy_rate_nats=need("entropy_rate_nats"),
            entropy_rate_lower_bound=as_bool(
                get(d, "entropy_rate_lower_bound", where), where.at("entropy_rate_lower_bound")
            ),
            exponent_sum=total,
            log10_det_mean=num("log10_det_mean"),
            det_residual=num("det_residual"),
            det_tol=need("det_tol"),
            det_passes=None if passes is None else as_bool(passes, where.at("det_passes")),
            singular_steps=singular,
            sequences=count("sequences"),
            steps=count("steps"),
            transient=count("transient"),
            blocks=count("blocks"),
            block_steps=count("block_steps"),
            method=as_str(d.get("method") or "", where.at("method")),
            units=as_str(d.get("units") or "decades per step", where.at("units")),
            resolved=resolved,
        )


def _finite_or_none(value: Any) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None
