"""The figure of the claims section: gradient clipping of an exploding LSTM (claim f).

Drawn from the :class:`~gradflow.results.Clipping` the claims result carries; nothing is
recomputed.
"""

from __future__ import annotations

from ..plots.clipping import plot_clipping
from ..results import ClaimsResult
from .figures import ReportFigure

#: File stem of the clipping figure; the report shows it in the claims section.
CLIPPING_STEM = "clipping"


def claims_figures(claims: ClaimsResult | None) -> list[ReportFigure]:
    """The clipping figure when the claims carry its data (schema 3), else nothing."""
    data = claims.clipping if claims is not None else None
    if data is None:
        return []
    return [
        ReportFigure(
            CLIPPING_STEM,
            "Gradient clipping of an exploding LSTM",
            f"An LSTM with Gaussian weights of gain sigma_w = {data.sigma_w:g} (n = "
            f"{data.hidden_size}, T = {data.steps}, loss sum h_T), {data.draws} weight draws of "
            f"{data.batch} sequences. Left: log10 ||dL/dθ|| of each sequence against the clip "
            f"threshold c = {data.threshold:g} (dashed); points above it are clipped. Right: the "
            "share of the batch update's norm that comes from lags beyond k, "
            "||sum_(j>k) G_j|| / ||dL/dθ||, unclipped and clipped per sequence (median over "
            "draws, 10-90 % band) and clipped per batch (dashed; it coincides with the unclipped "
            "curve: clipping by global norm rescales the update).",
            lambda f: plot_clipping(data, f),
            panels=2,
        )
    ]
