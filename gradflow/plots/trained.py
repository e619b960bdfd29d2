r"""Figures of trained networks, drawn only from a :class:`~gradflow.results.TrainedResult`.

* :func:`plot_trained_norms`: one network's ``log10 ||ds_T/ds_{T-k}||_2`` against the lag at
  initialisation (dashed) and after training (solid), median over the batch with its band;
* :func:`plot_additive_share`: the share ``||S_0||_F / ||P_k||_F`` of the gated networks'
  product that the additive path alone carries, against the lag, at initialisation (dashed)
  and after training (solid) (claim b);
* :func:`plot_training_curves`: the training loss per step of every network against the
  baseline of always predicting the target's mean;
* :func:`plot_stack_stages`: whole-model views of :mod:`gradflow.plots.stack` for a stacked
  network, one row per view, at initialisation and after training side by side;
* :func:`plot_trained_result`: all of them into files (``gradflow plot`` on a trained-models
  result), the figures of the report's "Trained networks" section.
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

from ..errors import UsageError
from ..results import TrainedResult
from ..results.trained import STAGES
from .curves import _axes, _legend, _line
from .data import Band, load_result
from .panels import panel_size, small_multiples
from .save import save_figure
from .stack import (
    plot_cross_layer_reach,
    plot_lag_gradient,
    plot_layer_decay,
    plot_memory_curves,
    plot_tail_fraction,
)
from .style import FORMATS, palette, style

#: The whole-model views of a stacked network (:func:`plot_stack_stages`), one row each.
STACK_VIEWS: tuple[Callable[..., Axes], ...] = (
    plot_layer_decay,
    plot_cross_layer_reach,
    plot_memory_curves,
    plot_lag_gradient,
    plot_tail_fraction,
)
#: Line style per stage.
STAGE_STYLES = {"init": "--", "trained": "-"}
STAGE_LABELS = {"init": "initialisation", "trained": "trained"}


def _trained(result: Any) -> TrainedResult:
    res = load_result(result)
    if not isinstance(res, TrainedResult):
        raise UsageError(f"this figure needs a trained-models result, not {res.kind!r}")
    return res


def plot_trained_norms(
    result: Any, ax: Axes | None = None, *, network: str, view: str = "joint", legend: bool = True
) -> Axes:
    """``network``'s norms at initialisation (dashed) and after training (solid), one view
    (``joint``, or a layer ``l0``, ``l1`` ... of a stack)."""
    res = _trained(result)
    try:
        stages = res.network(network).views[view]
    except KeyError:
        raise UsageError(f"the result has no view {view!r} of network {network!r}") from None
    ax = _axes(ax)
    colours = palette()
    for i, stage in enumerate(s for s in STAGES if s in stages):
        b = stages[stage].norms
        band = Band(np.arange(len(b.median)), b.low, b.median, b.high, b.levels)
        _line(ax, band, colours[i], "", STAGE_LABELS[stage], linestyle=STAGE_STYLES[stage])
    ax.set_xlabel(r"lag $k$")
    ax.set_ylabel(r"$\log_{10}\|\partial s_T/\partial s_{T-k}\|_2$")
    ax.set_title(network if view == "joint" else f"{network} {view}")
    if legend:
        _legend(ax)
    return ax


def plot_additive_share(result: Any, ax: Axes | None = None, *, legend: bool = True) -> Axes:
    """``log10 ||S_0||_F / ||P_k||_F`` against the lag for each gated network: median over the
    claims' sequences with its band, initialisation dashed, trained solid."""
    res = _trained(result)
    if not res.additive_share:
        raise UsageError("the result has no additive shares (run with the claims)")
    ax = _axes(ax)
    colours = palette()
    for i, (name, stages) in enumerate(res.additive_share.items()):
        for stage in (s for s in STAGES if s in stages):
            b = stages[stage]
            band = Band(np.arange(len(b.median)), b.low, b.median, b.high, b.levels)
            label = f"{name}, {STAGE_LABELS[stage]}"
            _line(ax, band, colours[i % len(colours)], "", label, linestyle=STAGE_STYLES[stage])
    ax.set_xlabel(r"lag $k$")
    ax.set_ylabel(r"$\log_{10}\|S_0\|_F / \|P_k\|_F$")
    if legend:
        _legend(ax)
    return ax


def plot_training_curves(result: Any, ax: Axes | None = None) -> Axes:
    """The training loss per optimiser step of every network, and the baseline (dotted)."""
    res = _trained(result)
    ax = _axes(ax)
    colours = palette()
    for i, net in enumerate(res.networks):
        ax.plot(net.training_loss, color=colours[i % len(colours)], linewidth=0.6, label=net.name)
    baseline = res.networks[0].baseline_mse if res.networks else None
    if baseline is not None:
        ax.axhline(baseline, color="0.3", linestyle=":", linewidth=0.9, label="baseline")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (MSE)")
    _legend(ax)
    return ax


def plot_stack_stages(
    result: Any, fig: Figure, views: Sequence[Callable[..., Axes]], *, network: str
) -> list[list[Axes]]:
    """Whole-model views of ``network``'s stack result (each a :mod:`gradflow.plots.stack`
    function), one row per view, one column per stage (initialisation, trained); the two
    panels of a row share their y axis."""
    res = _trained(result)
    stacks = res.network(network).stack
    if not stacks:
        raise UsageError(f"network {network!r} is not a stack")
    stages = [s for s in STAGES if s in stacks]
    grid = fig.subplots(len(views), len(stages), squeeze=False, sharex=True)
    for row, plot in zip(grid, views, strict=True):
        for j, (ax, stage) in enumerate(zip(row, stages, strict=True)):
            plot(stacks[stage], ax)
            if j:
                ax.sharey(row[0])
                ax.set_ylabel("")
                ax.tick_params(labelleft=False)
        lows, highs = zip(*(ax.get_ylim() for ax in row), strict=True)
        row[0].set_ylim(min(lows), max(highs))
    for ax, stage in zip(grid[0], stages, strict=True):
        ax.set_title(STAGE_LABELS[stage])
    for ax in grid[:-1].ravel():
        ax.set_xlabel("")
    return [list(row) for row in grid]


def plot_trained_result(
    result: Any,
    out_dir: str | os.PathLike[str],
    *,
    venue: str = "neurips",
    column: str = "full",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Draw every figure of a trained-models result into ``out_dir``; returns the files.

    ``trained_norms`` (one panel per network, :func:`plot_trained_norms`),
    ``trained_training`` (:func:`plot_training_curves`), with claims
    ``trained_additive_share`` (:func:`plot_additive_share`) and, for a stacked network,
    ``trained_stack`` (:func:`plot_stack_stages` with :data:`STACK_VIEWS`): the figures of the
    report's "Trained networks" section, under the same stems."""
    res = _trained(result)
    names = [n.name for n in res.networks]
    stack = next((n.name for n in res.networks if n.stack), None)
    figures: list[tuple[str, int, Callable[[Figure], Any]]] = [
        (
            "trained_norms",
            len(names),
            lambda f: small_multiples(
                f,
                names,
                lambda ax, name, first: plot_trained_norms(res, ax, network=name, legend=first),
            ),
        ),
        ("trained_training", 1, lambda f: plot_training_curves(res, f.add_subplot())),
    ]
    if res.additive_share:
        figures.append(
            ("trained_additive_share", 1, lambda f: plot_additive_share(res, f.add_subplot()))
        )
    if stack is not None:
        figures.append(
            (
                "trained_stack",
                3 * len(STACK_VIEWS),  # rows of small multiples: three panel widths a row
                lambda f: plot_stack_stages(res, f, STACK_VIEWS, network=stack),
            )
        )
    written: list[Path] = []
    for stem, panels, draw in figures:
        rc = style(venue, column)
        if panels > 1:
            rc["figure.figsize"] = panel_size(rc["figure.figsize"][0], panels)
        with mpl.rc_context(cast(Any, rc)):
            fig = Figure()
            draw(fig)
            written += save_figure(fig, Path(out_dir) / stem, formats)
    return written
