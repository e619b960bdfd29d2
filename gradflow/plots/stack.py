r"""Figures of a whole model, drawn only from a :class:`~gradflow.results.StackResult`.

Four views of a stack (docs/stacks.md defines every quantity):

* :func:`plot_layer_decay`: each layer's own chain ``log10 ||ds^l_T/ds^l_{T-k}||_2`` against
  the lag (each direction of a bidirectional layer in its own time);
* :func:`plot_cross_layer_reach`: ``log10 ||ds^L_T/ds^l_{T-k}||_2`` for every layer ``l``,
  how much of the top layer's state at ``T`` reaches layer ``l``'s state ``k`` steps back
  (unidirectional stacks);
* :func:`plot_memory_curves`: input sensitivity by lag, ``log10 ||dS_T/dx_{T-k}||_2`` of the
  joint state and of each layer (for a bidirectional stack, where these Jacobians are not
  recorded, the gradient ``log10 ||dL/dx_{T-k}||``);
* :func:`plot_lag_gradient` and :func:`plot_tail_fraction`: the weight gradient split by lag
  (Pascanu et al. 2013, sec. 2), ``log10 ||G_k||`` per parameter tensor, and the fraction of
  ``||dL/dθ||`` from lags beyond ``k``.

Each curve is the median over the batch with its 10-90 % band (many tensors: one colour
per layer, no band); exact zeros (``-inf`` in
log10, e.g. a cross-layer block at lag 0) are not drawn. :func:`plot_stack_result` writes
every figure a stack result supports (``gradflow plot RESULT.json``).

References:
    [pascanu2013] Pascanu, Mikolov and Bengio, On the difficulty of training recurrent
    neural networks, ICML 2013.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import UsageError
from ..results import StackResult
from .curves import _axes, _legend, _line
from .data import Band, _quantiles, load_result
from .save import save_figure
from .style import FORMATS, MARKERS, palette, style

#: More curves than this: one colour per layer, and the legend names the layers.
_MAX_LEGEND = 8


def _stack(result: Any) -> StackResult:
    res = load_result(result)
    if not isinstance(res, StackResult):
        raise UsageError(f"this figure needs a stack analysis result, not {res.kind!r}")
    return res


def batch_band(values: np.ndarray, x: np.ndarray | None = None) -> Band:
    """Median and 10-90 % band over the batch (last axis) of ``(lags, B)``; non-finite
    values (exact zeros in log10) are left out, a lag with none finite is NaN."""
    rows = np.where(np.isfinite(values), values, np.nan)
    low, median, high = _quantiles(rows, axis=1)
    return Band(np.arange(len(rows)) if x is None else x, low, median, high)


def layer_text(name: str) -> str:
    """A legend's words for a layer name: ``l0`` -> ``layer 0``, ``l1_reverse`` -> ``layer 1
    reverse`` (in a serif font ``l0`` reads as ``10``); other names as they are."""
    head, dot, tail = name.partition(".")
    if len(head) > 1 and head[0] == "l" and head[1:].split("_")[0].isdigit():
        head = "layer " + head[1:].replace("_", " ")
    return head + (" " + tail if dot else "")


def _curves(
    ax: Axes, curves: Sequence[tuple[str, np.ndarray]], ylabel: str, xlabel: str = r"lag $k$"
) -> Axes:
    """One median line with its band per curve. Many curves (the tensors of a deep model)
    share one colour per layer (the label's text before ``.``), and the legend names layers."""
    colours, markers = palette(), MARKERS
    groups = list(dict.fromkeys(label.split(".")[0] for label, _ in curves))
    by_group = len(curves) > _MAX_LEGEND and len(groups) < len(curves)
    for i, (label, values) in enumerate(curves):
        band = batch_band(values)
        if by_group:
            colour, marker = colours[groups.index(label.split(".")[0]) % len(colours)], ""
        else:
            colour, marker = colours[i % len(colours)], markers[i % len(markers)]
        _line(ax, band, colour, marker, label, fill=not by_group)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if by_group:
        handles = [
            Line2D([], [], color=cast(Any, colours[j % len(colours)])) for j in range(len(groups))
        ]
        ax.legend(handles, groups, loc="best", handlelength=2.2)
    elif len(curves) <= _MAX_LEGEND:
        _legend(ax)
    legend = ax.get_legend()
    if legend is not None:  # the lines keep the result's names; the legend spells them out
        for text in legend.get_texts():
            text.set_text(layer_text(text.get_text()))
    return ax


def plot_layer_decay(result: Any, ax: Axes | None = None) -> Axes:
    r"""Each layer's own chain ``log10 ||ds^l_T/ds^l_{T-k}||_2`` against the lag ``k``."""
    res = _stack(result)
    if res.layer_log10_spectral_norm is None:
        raise UsageError("the result has no per-layer chains")
    curves = list(zip(res.layer_names, res.layer_log10_spectral_norm, strict=True))
    return _curves(_axes(ax), curves, r"$\log_{10}\|\partial s^l_T/\partial s^l_{T-k}\|_2$")


def plot_cross_layer_reach(result: Any, ax: Axes | None = None) -> Axes:
    r"""``log10 ||ds^L_T/ds^l_{T-k}||_2`` for every layer ``l``: the top row of the joint
    product, how far the top layer's state reaches into each layer below."""
    res = _stack(result)
    if res.cross_log10_spectral_norm is None:
        raise UsageError(
            "the result has no cross-layer blocks (a bidirectional stack has no joint product)"
        )
    curves = list(zip(res.layer_names, res.cross_log10_spectral_norm, strict=True))
    return _curves(_axes(ax), curves, r"$\log_{10}\|\partial s^L_T/\partial s^l_{T-k}\|_2$")


def plot_memory_curves(result: Any, ax: Axes | None = None) -> Axes:
    r"""Input sensitivity by lag: ``log10 ||dS_T/dx_{T-k}||_2`` (joint state, then each
    layer); a bidirectional stack shows ``log10 ||dL/dx_{T-k}||`` instead."""
    res = _stack(result)
    if res.log10_input_spectral_norm is not None:
        curves = [("joint", res.log10_input_spectral_norm)]
        if res.layer_log10_input_spectral_norm is not None and len(res.layers) > 1:
            curves += list(zip(res.layer_names, res.layer_log10_input_spectral_norm, strict=True))
        ylabel = r"$\log_{10}\|\partial s_T/\partial x_{T-k}\|_2$"
    elif res.log10_input_gradient_norm is not None:
        curves = [(f"loss: {res.gradient_loss}", res.log10_input_gradient_norm)]
        ylabel = r"$\log_{10}\|\partial L/\partial x_{T-k}\|_2$"
    else:
        raise UsageError("the result has no input sensitivities")
    return _curves(_axes(ax), curves, ylabel)


def plot_lag_gradient(result: Any, ax: Axes | None = None) -> Axes:
    r"""``log10 ||G_k||`` per parameter tensor: the part of ``dL/dθ`` that travelled ``k``
    steps [pascanu2013]."""
    res = _stack(result)
    if not res.log10_lag_gradient_norm:
        raise UsageError("the result has no lag split of the gradient (gradient='last')")
    curves = sorted(res.log10_lag_gradient_norm.items())
    return _curves(_axes(ax), curves, r"$\log_{10}\|G_k\|$")


def plot_tail_fraction(result: Any, ax: Axes | None = None) -> Axes:
    r"""``||sum_{j>k} G_j|| / ||dL/dθ||`` per parameter tensor: how much of the weight
    gradient comes from lags beyond ``k`` [pascanu2013]."""
    res = _stack(result)
    if not res.lag_tail_fraction:
        raise UsageError("the result has no lag split of the gradient (gradient='last')")
    curves = sorted(res.lag_tail_fraction.items())
    ax = _curves(_axes(ax), curves, r"fraction of $\|\partial L/\partial\theta\|$ beyond $k$")
    ax.set_ylim(-0.03, 1.03)
    return ax


#: The plot functions of a stack result, by name.
STACK_PLOTS: dict[str, Callable[..., Axes]] = {
    "plot_layer_decay": plot_layer_decay,
    "plot_cross_layer_reach": plot_cross_layer_reach,
    "plot_memory_curves": plot_memory_curves,
    "plot_lag_gradient": plot_lag_gradient,
    "plot_tail_fraction": plot_tail_fraction,
}


def stack_figure_set(result: Any) -> list[tuple[str, Callable[..., Axes]]]:
    """The figures a stack result supports: ``(file stem, plot function)``."""
    res = _stack(result)
    out: list[tuple[str, Callable[..., Axes]]] = []
    if res.layer_log10_spectral_norm is not None:
        out.append(("layer_decay", plot_layer_decay))
    if res.cross_log10_spectral_norm is not None and len(res.layers) > 1:
        out.append(("cross_layer_reach", plot_cross_layer_reach))
    if res.log10_input_spectral_norm is not None or res.log10_input_gradient_norm is not None:
        out.append(("memory_curves", plot_memory_curves))
    if res.log10_lag_gradient_norm:
        out.append(("lag_gradient", plot_lag_gradient))
    if res.lag_tail_fraction:
        out.append(("tail_fraction", plot_tail_fraction))
    return out


def plot_stack_result(
    result: Any,
    out_dir: str | os.PathLike[str],
    *,
    venue: str = "neurips",
    column: str = "full",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Draw every figure a stack result supports into ``out_dir``; returns the files."""
    res = _stack(result)
    written: list[Path] = []
    for stem, plot in stack_figure_set(res):
        with mpl.rc_context(cast(Any, style(venue, column))):
            fig = Figure()
            plot(res, fig.add_subplot())
            written += save_figure(fig, Path(out_dir) / stem, formats)
    return written
