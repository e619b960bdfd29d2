r"""Load a whole model from any supported file, and describe what a file holds (``inspect``).

======================  =================================================  ===============
suffix                  what it holds                                      needs
======================  =================================================  ===============
``.safetensors``        a PyTorch ``state_dict`` (``nn.LSTM`` ...)          core
``.npz``                the same tensors via ``np.savez``                  core
``.keras``              a Keras 3 model archive (config + weights)          ``[keras]``
``.weights.h5`` /.h5    Keras 3 weights (+ ``config=`` a config.json)       ``[keras]``
``.onnx``               ONNX ``LSTM``/``GRU``/``RNN`` operators             ``[onnx]``
======================  =================================================  ===============

Examples:
    >>> import os, tempfile, numpy as np
    >>> from safetensors.numpy import save_file
    >>> rng = np.random.default_rng(0)
    >>> n, d = 2, 3  # a 2-layer nn.LSTM(3, 2, num_layers=2, bias=False) and a linear head
    >>> sd = {"rnn.weight_ih_l0": rng.normal(size=(4 * n, d)),
    ...       "rnn.weight_hh_l0": rng.normal(size=(4 * n, n)),
    ...       "rnn.weight_ih_l1": rng.normal(size=(4 * n, n)),
    ...       "rnn.weight_hh_l1": rng.normal(size=(4 * n, n)), "head.weight": np.ones((1, n))}
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save_file(sd, path)
    >>> m = load_model(path)
    >>> [(layer.cell, layer.hidden_size, layer.input_size, layer.bias) for layer in m.layers]
    [('lstm', 2, 3, False), ('lstm', 2, 2, False)]
    >>> m.unrelated
    ('head.weight',)
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from ..tensorfile import check_regular_file, open_tensor_file
from ..weights import CONVERT_ADVICE, PICKLED_SUFFIXES
from . import pytorch
from .model import Model, NotOneStack
from .tensors import TensorSet

#: What h5py, protobuf and malformed configs raise on structures the readers do not expect.
_MALFORMED = (
    AttributeError,
    TypeError,
    KeyError,
    ValueError,
    IndexError,
    OSError,
    RuntimeError,
    RecursionError,
    UnicodeError,
    OverflowError,
)
MODEL_SUFFIXES = (".safetensors", ".npz", ".keras", ".h5", ".onnx")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PICKLED_SUFFIXES:
        raise WeightsError(
            f"{path}: pickled files are never loaded (unpickling runs code): {CONVERT_ADVICE}"
        )
    if suffix not in MODEL_SUFFIXES:
        raise WeightsError(
            f"{path}: unknown weight file extension {suffix or '(none)'!r}; use "
            + ", ".join(MODEL_SUFFIXES)
        )
    check_regular_file(path)
    return {".safetensors": "pytorch", ".npz": "pytorch", ".onnx": "onnx"}.get(suffix, "keras")


def load_model(
    path: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    nonlinearity: str | None = None,
    config: str | os.PathLike[str] | None = None,
) -> Model:
    """Read a whole recurrent model (every layer and direction) from a weight file.

    Args:
        path: ``.safetensors``/``.npz`` (PyTorch ``state_dict``), ``.keras``/``.weights.h5``
            (Keras 3) or ``.onnx``.
        prefix: which module when the file holds several (``"encoder.rnn"``; a PyTorch
            prefix, a Keras layer name or an ONNX node name).
        nonlinearity: ``"relu"`` for ``nn.RNN(nonlinearity='relu')``, which a state_dict cannot
            tell from tanh.
        config: the Keras ``config.json`` that goes with a bare ``.weights.h5``.

    Returns:
        A validated :class:`~gradflow.formats.model.Model`.

    Raises:
        WeightsError: one line naming the file and the tensor or attribute.
    """
    p = Path(path)
    kind = _kind(p)
    if kind == "pytorch":
        ts = TensorSet.from_file(open_tensor_file(p))
        pytorch.resolve_parametrizations(ts)
        cand = pytorch.choose(ts, pytorch.find_candidates(ts), prefix)
        return pytorch.build_model(ts, cand, nonlinearity)
    if nonlinearity is not None:
        raise WeightsError(f"{p}: nonlinearity= applies to PyTorch state_dicts only")
    try:
        if kind == "keras":
            from .keras import load_keras

            return load_keras(p, prefix=prefix, config=config)
        from .onnx import load_onnx

        return load_onnx(p, prefix=prefix)
    except WeightsError:
        raise
    except _MALFORMED as exc:
        # A structure the reader did not expect (a dataset where a group belongs, a string
        # where a list belongs): the file is malformed, whatever the library's wording.
        detail = " ".join(str(exc).split())[:120]
        raise WeightsError(f"{p}: malformed {kind} file ({type(exc).__name__}: {detail})") from None


def model_from_state_dict(
    tensors: Any, *, prefix: str | None = None, nonlinearity: str | None = None
) -> Model:
    """The same as :func:`load_model` for an in-memory mapping of NumPy arrays."""
    ts = TensorSet.from_mapping(tensors)
    pytorch.resolve_parametrizations(ts)
    cand = pytorch.choose(ts, pytorch.find_candidates(ts), prefix)
    return pytorch.build_model(ts, cand, nonlinearity)


# ---- inspect ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerInfo:
    """One layer as ``inspect`` lists it."""

    index: int
    cell: str
    directions: tuple[str, ...]
    hidden_size: int
    input_size: int
    proj_size: int
    bias: bool
    name: str = ""

    def __str__(self) -> str:
        extra = (f", proj_size={self.proj_size}" if self.proj_size else "") + (
            "" if self.bias else ", bias=False"
        )
        named = f" ({self.name})" if self.name else ""
        return (
            f"layer {self.index}{named}: {self.cell} {'+'.join(self.directions)}, "
            f"n={self.hidden_size}, d={self.input_size}{extra}"
        )


@dataclass(frozen=True)
class ModuleInfo:
    """One recurrent module (a stack) in the file, and the command that analyses it."""

    prefix: str
    module: str
    layers: tuple[LayerInfo, ...]
    command: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class WeightsDescription:
    """What a weight file holds: format, modules (layers, directions, cell, sizes), the rest.

    ``str()`` gives the text ``gradflow inspect FILE`` prints.
    """

    path: str
    format: str
    modules: tuple[ModuleInfo, ...]
    unrelated: tuple[tuple[str, tuple[int, ...]], ...]

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.format}, {len(self.modules)} recurrent module(s)"]
        for m in self.modules:
            where = f" under prefix {m.prefix!r}" if m.prefix else ""
            lines.append(f"  {m.module}{where}, {len(m.layers)} layer(s)")
            lines += [f"    {layer}" for layer in m.layers]
            lines += [f"    note: {note}" for note in m.notes]
            lines.append(f"    analyse: {m.command}")
        if self.unrelated:
            lines.append(f"  unrelated tensors ({len(self.unrelated)}):")
            lines += [f"    {name} {shape}" for name, shape in self.unrelated]
        return "\n".join(lines)


def analyze_command(
    path: str,
    cell: str | None,
    layers: int,
    bidirectional: bool,
    prefix: str | None,
    nonlinearity: str | None = None,
    first: int | None = None,
) -> str:
    """The ``gradflow analyze`` command line for one module of a file (``first``: only the
    bottom layers, ``--layers first``, where the layers above do not stack)."""
    parts = ["gradflow analyze", "--weights", shlex.quote(path)]
    if prefix is not None:
        parts += ["--prefix", shlex.quote(prefix)]
    if cell is not None:  # a stack of several cells takes them from the file
        parts += ["--cell", cell]
    if nonlinearity:
        parts += ["--nonlinearity", nonlinearity]
    if first is not None:
        parts += ["--layers", str(first)]
    elif layers > 1:
        parts += ["--layers", "all"]
    if bidirectional:
        parts += ["--direction", "both"]
    parts += ["--inputs", "INPUTS.npy", "--output", "result.json"]
    return " ".join(parts)


def describe_weights(path: str | os.PathLike[str], prefix: str | None = None) -> WeightsDescription:
    """List what a weight file holds, and how to analyse each recurrent module in it.

    For PyTorch files only names and shapes are read (no tensor data); Keras and ONNX files
    are loaded (they are small and their structure lives in the graph).

    Raises:
        WeightsError: unreadable file, or a module that cannot be understood (one line).
    """
    p = Path(path)
    kind = _kind(p)
    if kind != "pytorch":
        try:
            model = load_model(p, prefix=prefix)
        except NotOneStack as exc:  # each candidate with its own --prefix
            models = [(name, load_model(p, prefix=name)) for name in exc.names]
            rest = set.intersection(*(set(_unrelated_from(m)) for _, m in models))
            return WeightsDescription(
                str(p),
                kind,
                tuple(_module_from_model(m, str(p), name) for name, m in models),
                tuple(sorted(u for u in rest if u[0] not in exc.names)),
            )
        return WeightsDescription(
            str(p), kind, (_module_from_model(model, str(p), prefix),), _unrelated_from(model)
        )
    ts = TensorSet.from_file(open_tensor_file(p))
    pytorch.resolve_parametrizations(ts)
    cands = pytorch.find_candidates(ts)
    several = len(cands) > 1  # then every command needs its --prefix
    if prefix is not None or not cands:
        cands = [pytorch.choose(ts, cands, prefix)]
    modules = []
    used: set[str] = set()
    for c in sorted(cands, key=lambda c: c.prefix):
        used |= set(c.tensors)
        dirs = ("forward", "reverse") if c.bidirectional else ("forward",)
        cell = "lstm-proj" if c.proj_size else c.cell  # nn.LSTM(proj_size): the catalogue cell
        width = (c.proj_size or c.hidden_size) * len(dirs)  # what each layer outputs
        reads = [_input_size(ts, c, k, c.input_size if k == 0 else width) for k in range(c.layers)]
        layers = tuple(
            LayerInfo(k, cell, dirs, c.hidden_size, reads[k], c.proj_size, c.bias)
            for k in range(c.layers)
        )
        notes = [pytorch.RNN_NOTE.format("tanh")] if c.cell == "rnn" else []
        stacked = next((k for k in range(1, c.layers) if reads[k] != width), c.layers)
        if stacked < c.layers:  # what `analyze` refuses, said here with the file's own sizes
            notes.append(
                f"{c.tensor('weight', 'ih', stacked, False)}: layer {stacked} reads "
                f"{reads[stacked]} inputs, but layer {stacked - 1} outputs {width}; the layers "
                f"do not stack: the command analyses the bottom {stacked} "
                f"layer{'s' if stacked > 1 else ''}"
            )
        cmd = analyze_command(
            str(p),
            cell,
            c.layers,
            c.bidirectional,
            c.prefix if several else None,
            first=None if stacked == c.layers else stacked,
        )
        modules.append(ModuleInfo(c.prefix, c.module, layers, cmd, tuple(notes)))
    unrelated = tuple((n, ts.shapes[n]) for n in sorted(set(ts.names()) - used))
    return WeightsDescription(
        str(p), f"pytorch state_dict ({p.suffix[1:]})", tuple(modules), unrelated
    )


def _input_size(ts: TensorSet, c: pytorch.Candidate, k: int, expected: int) -> int:
    """Layer ``k``'s input size from its own ``weight_ih`` in the file (``expected`` if absent)."""
    shape = ts.shapes.get(c.tensor("weight", "ih", k, False))
    return int(shape[1]) if shape is not None and len(shape) == 2 else expected


def _module_from_model(model: Model, path: str, prefix: str | None) -> ModuleInfo:
    layers = tuple(
        LayerInfo(
            k,
            layer.cell,
            tuple(d.name for d in layer.directions),
            layer.hidden_size,
            layer.input_size,
            layer.proj_size,
            layer.bias,
            layer.name,
        )
        for k, layer in enumerate(model.layers)
    )
    cells = sorted({layer.cell for layer in model.layers})
    cell = cells[0] if len(cells) == 1 else None
    k, notes = model.stacked, model.notes
    if k < len(model.layers):  # what `analyze` refuses, said here with the file's own sizes
        notes += (
            f"layer {k} reads {model.layers[k].input_size} inputs, but layer {k - 1} outputs "
            f"{model.layers[k - 1].output_size}; the layers do not stack: the command analyses "
            f"the bottom {k} layer{'s' if k > 1 else ''}",
        )
    cmd = analyze_command(
        path,
        cell,
        len(model.layers),
        any(layer.bidirectional for layer in model.layers[:k]),
        prefix,
        first=None if k == len(model.layers) else k,
    )
    return ModuleInfo(model.prefix, f"{model.format} {'/'.join(cells)}", layers, cmd, notes)


def _unrelated_from(model: Model) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((name, ()) for name in model.unrelated)
