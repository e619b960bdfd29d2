r"""A whole recurrent model as data: layers of catalogue cells, each in one or two directions.

Every reader in :mod:`gradflow.formats` (PyTorch state_dicts, Keras 3, ONNX) returns a
:class:`Model`: a tuple of :class:`Layer` objects, each holding one :class:`Direction` per time
direction (forward first, then reverse). A direction's ``params`` are exactly what
:func:`gradflow.engine.analyze` takes for one layer today: a :class:`~gradflow.weights.Params`
keyed by the catalogue cell's own parameter names (``W_ii``, ``W_hf`` ... in PyTorch's gate
meaning), float64 and read-only, whatever layout and gate order the file used.

Conventions (the contract for the stack engine):

* Layer ``l+1``'s input at step ``t`` is layer ``l``'s output at step ``t``: its ``h_t``, or
  ``[h_t^fwd; h_t^rev]`` (forward first) for a bidirectional layer, so
  ``input_size[l+1] = output_size[l] = (proj_size or hidden_size) * len(directions)``.
* A reverse direction reads the sequence from ``t = T-1`` down to ``0``; its own step
  ``u`` sees input ``x_{T-1-u}``.
* ``proj_size > 0`` (PyTorch ``nn.LSTM(proj_size=p)``): the layer's cell is ``lstm-proj``,
  whose recurrent weights are ``(n, p)`` and whose output is ``h_t = W_hr (o_t * tanh(c_t))``;
  ``W_hr`` ``(p, n)`` is among the ``params`` and also kept as ``projection``.
* ``bias=False``: the file has no biases; ``params`` hold zeros for them (the function is the
  same) and the layer records ``bias=False``.

Examples:
    >>> import numpy as np
    >>> from gradflow.formats.model import single_layer_model
    >>> rng = np.random.default_rng(0)
    >>> p = {"W_ih": rng.normal(size=(4, 3)), "W_hh": rng.normal(size=(4, 4)),
    ...      "b_ih": np.zeros(4), "b_hh": np.zeros(4)}
    >>> m = single_layer_model("rnn", p)
    >>> (m.input_size, m.output_size, m.layers[0].directions[0].name)
    (3, 4, 'forward')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..cells import get_cell
from ..errors import WeightsError
from ..weights import Params


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


class NotOneStack(WeightsError):
    """A file's recurrent layers do not form one direct stack: one must be chosen by name.

    ``names`` lists the candidates (ONNX node names, Keras layer names), so that ``inspect``
    can describe each of them with its own ``--prefix``.
    """

    def __init__(self, message: str, names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.names = names


@dataclass(frozen=True, eq=False)
class Direction:
    """One time direction of one layer.

    Attributes:
        reverse: ``True`` for the reverse direction of a bidirectional layer.
        params: the cell's parameters (canonical names, float64, read-only).
        projection: ``W_hr`` ``(p, n)`` of a projected LSTM (``lstm-proj``, also
            ``params["W_hr"]``), else ``None``.
        sources: parameter name (or ``"projection"``) -> the file tensor it came from, as
            errors and ``inspect`` name it.
    """

    reverse: bool
    params: Params
    projection: np.ndarray | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "reverse" if self.reverse else "forward"


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: a catalogue cell, its sizes, and one or two directions.

    Attributes:
        cell: catalogue name (``lstm``, ``gru``, ``gru-reset-before`` ...).
        hidden_size: ``n``.
        input_size: ``d``.
        directions: forward, then reverse if bidirectional; a reverse-only layer (ONNX
            ``direction="reverse"``) has the reverse direction alone.
        proj_size: ``p`` of a projected LSTM (cell ``lstm-proj``), 0 if none.
        bias: ``False`` when the file had no biases (``params`` then hold zeros).
        name: where the layer sits in the file (Keras layer or ONNX node name, or the
            PyTorch tensor suffix such as ``l1``), for listings.

    Raises:
        WeightsError: a parameter of the wrong shape or with non-finite values, directions
            out of order, or a projection on a cell other than ``lstm-proj`` (one line naming
            the tensor).
    """

    cell: str
    hidden_size: int
    input_size: int
    directions: tuple[Direction, ...]
    proj_size: int = 0
    bias: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        cell = get_cell(self.cell)
        if [d.reverse for d in self.directions] not in ([False], [True], [False, True]):
            raise WeightsError(
                f"layer of {self.cell}: directions must be (forward,), (reverse,) or "
                "(forward, reverse)"
            )
        n, d, p = self.hidden_size, self.input_size, self.proj_size
        if n < 1 or d < 1 or p < 0:
            raise WeightsError(f"layer of {self.cell}: sizes n={n}, d={d}, p={p} must be >= 1")
        if bool(p) != cell.has_second_size:
            raise WeightsError(
                f"proj_size={p} is only defined for lstm-proj, not {self.cell}"
                if p
                else f"layer of {self.cell}: the cell needs proj_size (its h has p units)"
            )
        for direction in self.directions:
            src = direction.sources
            for param in cell.parameters:
                want = param.numeric_shape(n, d, p or None)
                if param.name not in direction.params:
                    raise WeightsError(f"{direction.name} {self.cell} lacks {param.name}")
                arr = np.asarray(direction.params[param.name])
                where = src.get(param.name, param.name)
                if arr.shape != want:
                    raise WeightsError(
                        f"{where}: {param.name} has shape {_shape_text(arr.shape)}; expected "
                        f"{_shape_text(want)} for {self.cell} with n={n}, d={d}"
                        + (f", proj_size={p}" if p else "")
                    )
                if not np.isfinite(arr).all():
                    raise WeightsError(f"{where}: {param.name} has non-finite values")
            if bool(p) != (direction.projection is not None):
                raise WeightsError(
                    f"{direction.name} {self.cell}: projection given without proj_size or "
                    "proj_size without projection"
                )
            if direction.projection is not None:
                proj = direction.projection
                where = src.get("projection", "projection")
                if proj.shape != (p, n):
                    raise WeightsError(
                        f"{where}: projection has shape {_shape_text(proj.shape)}; expected "
                        f"(p, n) = ({p}, {n})"
                    )
                if not np.isfinite(proj).all():
                    raise WeightsError(f"{where}: projection has non-finite values")

    @property
    def bidirectional(self) -> bool:
        return len(self.directions) == 2

    @property
    def output_size(self) -> int:
        """Size of the layer's output at one step (both directions concatenated)."""
        return (self.proj_size or self.hidden_size) * len(self.directions)


@dataclass(frozen=True, eq=False)
class Model:
    """A stack of layers read from one file.

    Attributes:
        layers: bottom first.
        format: ``pytorch``, ``keras``, ``onnx`` or ``gradflow`` (built in Python).
        source: the file, if any.
        prefix: the state_dict prefix (or Keras layer / ONNX node names) the model came from.
        unrelated: tensors in the file that are not part of the model.
        notes: what the reader had to assume (e.g. an ``nn.RNN``'s nonlinearity).

    A layer whose input size is not the output size of the layer below is kept (``inspect``
    lists the file as it is; :attr:`stacked` counts the bottom layers that do stack), and
    :meth:`check_stack` refuses it when it is to be analysed (``select``), so that the layers
    below it can still be analysed (``--layers K``).

    Raises:
        WeightsError: no layers.
    """

    layers: tuple[Layer, ...]
    format: str = "gradflow"
    source: str | None = None
    prefix: str = ""
    unrelated: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.layers:
            raise WeightsError(f"{self.source or 'model'}: no recurrent layers")

    @property
    def stacked(self) -> int:
        """How many bottom layers stack (each reads the output size of the one below)."""
        for k in range(1, len(self.layers)):
            if self.layers[k].input_size != self.layers[k - 1].output_size:
                return k
        return len(self.layers)

    def check_stack(self, upto: int | None = None) -> None:
        """Refuse, in one line naming the tensor, the first of the bottom ``upto`` layers (all
        by default) whose input size is not the output size of the layer below.

        Raises:
            WeightsError: the layers do not stack (with the ``--layers K`` that analyses the
                layers below it).
        """
        k = self.stacked
        if k >= (len(self.layers) if upto is None else upto):
            return
        below, layer = self.layers[k - 1], self.layers[k]
        first = layer.directions[0]
        tensor = next(
            (
                first.sources[p.name]
                for p in get_cell(layer.cell).parameters
                if p.shape == ("n", "d") and p.name in first.sources
            ),
            f"layer {k} input weight",
        )
        dirs = len(below.directions)
        where = f"{self.source}: " if self.source else ""
        raise WeightsError(
            f"{where}{tensor}: layer {k} has input size {layer.input_size}, but layer {k - 1} "
            f"outputs {below.output_size} (= {below.proj_size or below.hidden_size} x "
            f"{dirs} direction{'s' if dirs > 1 else ''}); the layers do not stack: check "
            f"the file, or analyse the layers below with --layers {k}"
        )

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    @property
    def bidirectional(self) -> bool:
        return any(layer.bidirectional for layer in self.layers)


def make_params(
    cell: str, params: Mapping[str, Any], input_size: int, hidden_size: int, source: str | None
) -> Params:
    """Float64, contiguous, read-only copies wrapped as :class:`Params`."""
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        arr = np.ascontiguousarray(np.asarray(value, dtype=np.float64))
        arr.setflags(write=False)
        out[name] = arr
    return Params(out, hidden_size, input_size, source=source, cell=cell)


def single_layer_model(cell: str, params: Mapping[str, Any], *, source: str | None = None) -> Model:
    """A one-layer, forward-only :class:`Model` from a cell's parameters (sizes inferred).

    Raises:
        WeightsError: a parameter is missing or misshapen.
    """
    spec = get_cell(cell)
    missing = [p.name for p in spec.parameters if p.name not in params]
    if missing:
        raise WeightsError(f"{cell} parameters lack {', '.join(missing)}")
    w_in = next(p for p in spec.parameters if p.shape == ("n", "d"))
    n, d = np.shape(params[w_in.name])
    p = make_params(cell, params, int(d), int(n), source)
    return Model((Layer(cell, int(n), int(d), (Direction(False, p),)),), source=source)
