r"""The gradient-clipping figure of the claims (claim f), drawn only from a
:class:`~gradflow.results.Clipping`.

Left: ``log10 ||dL/dθ||`` of every sequence, one column of points per weight draw, against the
clip threshold (dashed): the points above it are clipped. Right: the long-lag share of the
batch update, ``||sum_{j>k} G_j|| / ||dL/dθ||``, against ``k``: unclipped, clipped per batch
(dashed: the same curve, clipping rescales) and clipped per sequence, median over draws with
the 10-90 % band.

References:
    [pascanu2013] Pascanu, Mikolov and Bengio, On the difficulty of training recurrent
    neural networks, ICML 2013, sec. 3.2.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..results import Clipping
from .curves import _line
from .data import Band, _quantiles
from .style import MARKERS, palette


def _band(x: np.ndarray, values: np.ndarray) -> Band:
    low, median, high = _quantiles(values.T, axis=1)
    return Band(x, low, median, high)


def plot_clipping_norms(data: Clipping, ax: Axes) -> Axes:
    """Per-sequence ``log10 ||dL/dθ||`` by draw, and the threshold."""
    colour = palette()[0]
    D, B = data.log10_gradient_norm.shape
    jitter = np.linspace(-0.2, 0.2, B)
    for d in range(D):
        ax.plot(d + 1 + jitter, data.log10_gradient_norm[d], "o", ms=2.5, color=colour, lw=0)
    ax.axhline(
        np.log10(data.threshold),
        color="black",
        ls="--",
        lw=0.8,
        label=f"clip threshold c = {data.threshold:g}",
    )
    ax.set_xlabel("weight draw")
    ax.set_ylabel(r"$\log_{10}\|dL/d\theta\|$ per sequence")
    ax.legend(fontsize="small", loc="upper right")
    return ax


def plot_clipping_shares(data: Clipping, ax: Axes) -> Axes:
    """The long-lag share of the batch update against ``k``: unclipped, clipped per batch and
    clipped per sequence (median over draws and 10-90 % band)."""
    colours = palette()
    curves = (
        ("unclipped", data.tail_share, colours[0], MARKERS[0]),
        ("clipped per sequence", data.tail_share_clipped_sequence, colours[2], MARKERS[2]),
    )
    for label, values, colour, marker in curves:
        _line(ax, _band(data.lags, values), colour, marker, label)
    ax.plot(
        data.lags,
        np.median(data.tail_share_clipped_batch, axis=0),
        color="black",
        ls="--",
        lw=0.8,
        label="clipped per batch",
    )
    ax.set_xlabel(r"lag $k$")
    ax.set_ylabel(r"share of $\|dL/d\theta\|$ from lags $> k$")
    ax.legend(fontsize="small")
    return ax


def plot_clipping(data: Clipping, fig: Figure) -> Figure:
    """Both panels on ``fig``."""
    left, right = fig.subplots(1, 2)
    plot_clipping_norms(data, left)
    plot_clipping_shares(data, right)
    return fig
