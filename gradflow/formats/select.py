"""Which layers and directions of a loaded :class:`~gradflow.formats.model.Model` to analyse,
as the stack engine's layers (``gradflow analyze --layers K --direction D``).

A model read from a file is a stack of :class:`~gradflow.formats.model.Layer` objects with one
or two directions each; :func:`gradflow.stack.analyze_stack` takes a list of
:class:`gradflow.stack.Layer` (one direction) or ``(forward, reverse)`` pairs. :func:`select`
turns one into the other, and refuses in one line what the stack engine cannot analyse;
:func:`analyze_model` does both steps and returns one typed result.

Examples:
    >>> import numpy as np
    >>> from gradflow.formats.model import single_layer_model
    >>> rng = np.random.default_rng(0)
    >>> p = {"W_ih": rng.normal(size=(4, 3)), "W_hh": rng.normal(size=(4, 4)),
    ...      "b_ih": np.zeros(4), "b_hh": np.zeros(4)}
    >>> [(la.cell, la.direction) for la in select(single_layer_model("rnn", p))]
    [('rnn', 'forward')]
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..results.stack import StackResult
from ..stack import Depth, analyze_stack
from ..stack import Layer as StackLayer
from .model import Model

DIRECTIONS = ("forward", "reverse", "both")


def parse_layers(value: str | int | None, available: int) -> int:
    """``--layers``: ``all`` (or None) for every layer, else the bottom ``K`` layers.

    Raises:
        UsageError: not ``all`` or a whole number in ``1..available`` (one line).
    """
    if value is None or value == "all":
        return available
    try:
        k = int(value)
    except ValueError:
        raise UsageError(f"--layers must be 'all' or a number of layers, not {value!r}") from None
    if not 1 <= k <= available:
        raise UsageError(
            f"--layers {k}: the model has {available} layer{'s' if available > 1 else ''}; "
            f"choose 1 to {available} or 'all'"
        )
    return k


def check_cell(model: Model, cell: str, nonlinearity: str | None = None) -> None:
    """Refuse, in one line, a cell name (``--cell``) that is not every layer's cell.

    ``rnn`` with ``nonlinearity="relu"`` names ``nn.RNN(nonlinearity='relu')``, which is
    ``rnn-relu``; ``lstm`` also names an ``nn.LSTM(proj_size=p)`` (``lstm-proj``).

    Raises:
        UsageError: the model's layers are of another cell (each layer's cell is listed).
    """
    named = "rnn-relu" if cell == "rnn" and nonlinearity == "relu" else cell
    held_cells = {layer.cell for layer in model.layers}
    if named == "lstm" and held_cells == {"lstm-proj"}:  # an nn.LSTM, with proj_size
        return
    if held_cells != {named}:
        held = ", ".join(f"layer {k}: {layer.cell}" for k, layer in enumerate(model.layers))
        where = f"{model.source}: " if model.source else ""
        raise UsageError(
            f"{where}--cell {cell} does not match the file ({held}); leave --cell out to take "
            "the cells from the file"
        )


def select(
    model: Model, *, layers: str | int | None = None, direction: str | None = None
) -> list[Depth]:
    """The stack engine's layers for the bottom ``layers`` layers in ``direction``.

    Args:
        model: a loaded model (:func:`gradflow.formats.load_model`).
        layers: ``"all"``/None (every layer) or ``K`` (the bottom ``K``: the layers above need
            the ones below, never the other way round).
        direction: None (every direction the file holds), ``"forward"``, ``"reverse"`` (one
            direction of each layer) or ``"both"`` (a bidirectional model as it is).

    Returns:
        One entry per depth: a :class:`gradflow.stack.Layer`, or a ``(forward, reverse)``
        pair for a bidirectional layer.

    Raises:
        UsageError: an unknown direction, a direction the model does not have, or one
            direction of a stacked bidirectional layer (the layer above reads both).
        WeightsError: a chosen layer does not read the output size of the layer below.
    """
    if direction is not None and direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r}; choose forward, reverse or both")
    chosen = model.layers[: parse_layers(layers, len(model.layers))]
    model.check_stack(len(chosen))
    if direction == "both" and not any(layer.bidirectional for layer in chosen):
        raise UsageError("--direction both: the model has no bidirectional layer")
    if direction in ("forward", "reverse"):
        for k, layer in enumerate(chosen):
            if direction not in [d.name for d in layer.directions]:
                raise UsageError(
                    f"--direction {direction}: layer {k} has no {direction} direction "
                    f"(it has {'+'.join(d.name for d in layer.directions)})"
                )
            if layer.bidirectional and k < len(chosen) - 1:
                raise UsageError(
                    f"--direction {direction}: layer {k + 1} reads both directions of "
                    f"bidirectional layer {k}; use --direction both, or --layers {k + 1}"
                )
    out: list[Depth] = []
    for layer in chosen:
        dirs = [d for d in layer.directions if direction in (None, "both") or d.name == direction]
        pair = [StackLayer(layer.cell, d.params, d.name) for d in dirs]
        out.append(pair[0] if len(pair) == 1 else (pair[0], pair[1]))
    return out


def single_forward_layer(depths: list[Depth]) -> StackLayer | None:
    """The one forward layer of a one-layer, forward-only selection (analysed by
    :func:`gradflow.engine.analyze`, the ``analyze`` contract exactly), else None."""
    if len(depths) == 1 and isinstance(depths[0], StackLayer):
        return depths[0] if depths[0].direction == "forward" else None
    return None


def analyze_model(
    model: Model,
    inputs: Any,
    *,
    layers: str | int | None = None,
    direction: str | None = None,
    **options: Any,
) -> StackResult:
    """Analyse a loaded model as one stack: :func:`select`, then
    :func:`gradflow.stack.analyze_stack` (``options``: its keyword arguments).

    Examples:
        >>> import numpy as np
        >>> from gradflow.formats.model import single_layer_model
        >>> rng = np.random.default_rng(0)
        >>> p = {"W_ih": rng.normal(size=(4, 3)), "W_hh": rng.normal(size=(4, 4)) / 4,
        ...      "b_ih": np.zeros(4), "b_hh": np.zeros(4)}
        >>> res = analyze_model(single_layer_model("rnn", p), rng.normal(size=(6, 2, 3)))
        >>> res.kind, res.log10_spectral_norm.shape
        ('stack_analysis', (7, 2))
    """
    return analyze_stack(select(model, layers=layers, direction=direction), inputs, **options)
