r"""Weight and input files: PyTorch-named ``.safetensors``/``.npz`` in, checked float64 out.

One concept, the boundary check of one layer's weights and of the inputs (a little over the
usual length: the per-format readers of whole models live in :mod:`gradflow.formats`).

A trained ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` stores its layer-0 parameters as four stacked
tensors, ``weight_ih_l0 (G*n, d)``, ``weight_hh_l0 (G*n, n)``, ``bias_ih_l0 (G*n,)`` and
``bias_hh_l0 (G*n,)``, whose ``G`` row blocks are the gates in PyTorch's order (LSTM ``i, f, g,
o``; GRU ``r, z, n``). :func:`load_weights` reads such a file (or a whole model's
``state_dict`` whose RNN tensors share one prefix such as ``lstm.``), splits the blocks into the
cell's own parameters (``W_ii``, ``W_hf`` ...) and checks everything at the boundary: names,
ranks, shapes, dtypes and finiteness, each failure one line naming the file and the tensor.
Cells PyTorch lacks use their own parameter names in the file.

Pickled checkpoints (``.pt``, ``.pth``, ``.pkl``, ``.bin``, ``.ckpt``) are refused unread:
unpickling runs arbitrary code. Safetensors files are a JSON header plus raw bytes, and ``.npz``
archives are read with ``allow_pickle=False``, so loading runs no code from the file. Files are
listed first and only the tensors the cell needs are read, each size-checked before it is
inflated (:mod:`gradflow.tensorfile`); FIFOs and devices are refused before any open. Whole
models (every layer and direction, Keras and ONNX files) are read by :mod:`gradflow.formats`.

Examples:
    >>> import tempfile, os, numpy as np
    >>> from gradflow.weights import load_weights, save_weights
    >>> rng = np.random.default_rng(0)
    >>> params = {"W_ih": rng.normal(size=(4, 3)), "W_hh": rng.normal(size=(4, 4)),
    ...           "b_ih": np.zeros(4), "b_hh": np.zeros(4)}
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save_weights(path, "rnn", params)
    >>> p = load_weights(path, "rnn")
    >>> p.hidden_size, p.input_size, bool(np.array_equal(p["W_hh"], params["W_hh"]))
    (4, 3, True)

References:
    [pytorch-rnn] PyTorch documentation of ``torch.nn.RNN``, ``torch.nn.LSTM`` and
    ``torch.nn.GRU`` (parameter names, shapes and gate order).
    [safetensors] Hugging Face, safetensors: a simple, safe way to store tensors
    (https://github.com/huggingface/safetensors).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .atomic import atomic_open
from .cells import Cell, Parameter, get_cell
from .errors import InputsError, UsageError, WeightsError
from .tensorfile import READ_ERRORS, check_regular_file, open_tensor_file

#: Suffixes of pickled checkpoints, which are never opened.
PICKLED_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
#: Suffixes :func:`load_weights` reads.
WEIGHT_SUFFIXES = (".safetensors", ".npz")
CONVERT_ADVICE = "convert with `safetensors.torch.save_file(model.state_dict(), 'w.safetensors')`"
# Layer > 0, bidirectional and projection tensors of a PyTorch RNN module.
_TORCH_EXTRA = re.compile(r"^(weight|bias)_(ih|hh|hr)_l\d+(_reverse)?$")
# Safetensors dtype codes with no NumPy dtype (float8 ...) are listed under their own code.
_ST_CODES = ("F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C32")
# NumPy dtype names a weight file may hold (bfloat16 only once ml_dtypes is imported).
_NUMPY_NAMES = frozenset(
    "float64 float32 float16 int64 int32 int16 int8 uint64 uint32 uint16 uint8 bool "
    "complex64 complex128".split()
)


@dataclass(frozen=True, eq=False)
class Params(Mapping[str, np.ndarray]):
    """Checked parameters of one cell: a read-only mapping from parameter name to array.

    Attributes:
        params: float64 arrays keyed by the cell's parameter names (weights ``(n, d)`` or
            ``(n, n)``, biases and vectors ``(n,)``), read-only.
        hidden_size: ``n``.
        input_size: ``d``.
        source: the file they came from, if any.
        cell: the cell's name.
    """

    params: dict[str, np.ndarray]
    hidden_size: int
    input_size: int
    source: str | None = None
    cell: str | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        return self.params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping) or set(self) != set(other):
            return False
        return all(np.array_equal(self[k], np.asarray(other[k])) for k in self)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class _Slot:
    """One tensor in the file: the cell parameters stacked in it as row blocks."""

    tensor: str
    params: tuple[str, ...]
    shape: tuple[str, ...]  # one block's shape in the symbols "n" and "d"

    @property
    def gates(self) -> int:
        return len(self.params)

    def symbolic(self) -> str:
        rows = "G*n" if self.gates > 1 else "n"
        return "(" + ", ".join((rows, *self.shape[1:])) + (",)" if len(self.shape) == 1 else ")")

    def numeric(self, n: int, d: int, p: int | None = None) -> tuple[int, ...]:
        if self.gates == 1:  # one parameter: its own shape (heads blocks and rows included)
            return Parameter(self.params[0], "weight", self.shape).numeric_shape(n, d, p)
        sizes = {"n": n, "d": d, "p": p if p is not None else n}
        return (self.gates * n, *(sizes[s] for s in self.shape[1:]))


def _as_cell(cell: Cell | str) -> Cell:
    return cell if isinstance(cell, Cell) else get_cell(cell)


def _slots(cell: Cell) -> tuple[_Slot, ...]:
    shapes = {p.name: p.shape for p in cell.parameters}
    if cell.torch_layout is None:
        return tuple(_Slot(p.name, (p.name,), p.shape) for p in cell.parameters)
    return tuple(_Slot(t, names, shapes[names[0]]) for t, names in cell.torch_layout)


def to_torch_tensors(cell: Cell | str, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Stack a cell's parameters into the tensors a file holds (PyTorch names and gate order).

    For cells PyTorch lacks, the file names are the parameter names and nothing is stacked.

    Raises:
        WeightsError: a parameter is missing.
    """
    cell = _as_cell(cell)
    missing = [p.name for p in cell.parameters if p.name not in params]
    if missing:
        raise WeightsError(f"{cell.name} parameters lack {', '.join(missing)}")
    out = {}
    for slot in _slots(cell):
        blocks = [np.asarray(params[p]) for p in slot.params]
        out[slot.tensor] = np.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
    return out


def from_torch_tensors(cell: Cell | str, tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Split file tensors (PyTorch names, gates as row blocks) into the cell's parameters.

    Raises:
        WeightsError: a tensor is missing or its rows do not split into the gate blocks.
    """
    cell = _as_cell(cell)
    out: dict[str, np.ndarray] = {}
    for slot in _slots(cell):
        if slot.tensor not in tensors:
            raise WeightsError(f"{cell.name} tensors lack {slot.tensor}")
        arr = np.asarray(tensors[slot.tensor])
        if arr.ndim < 1 or arr.shape[0] % slot.gates:
            raise WeightsError(
                f"{slot.tensor} has shape {arr.shape}; its rows do not split "
                f"into the {slot.gates} gate blocks {', '.join(slot.params)}"
            )
        for name, block in zip(slot.params, np.split(arr, slot.gates, axis=0), strict=True):
            out[name] = np.ascontiguousarray(block)
    return out


# ---- reading -----------------------------------------------------------------------------


def _check_suffix(path: Path, what: str, allowed: tuple[str, ...], err: type[UsageError]) -> str:
    suffix = path.suffix.lower()
    if suffix in PICKLED_SUFFIXES:
        advice = CONVERT_ADVICE if err is WeightsError else "save the array with np.save(path, x)"
        raise err(f"{path}: pickled files are never loaded (unpickling runs code): {advice}")
    if suffix not in allowed:
        raise err(
            f"{path}: unknown {what} file extension {suffix or '(none)'!r}; "
            f"use {' or '.join(allowed)}"
        )
    check_regular_file(path, err)  # FIFOs and devices are refused before any open
    return suffix


def _corrupt(path: Path, exc: BaseException, err: type[UsageError] = WeightsError) -> UsageError:
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    return err(f"{path}: truncated or corrupt file, cannot be read ({detail})")


def _read_safetensors(path: Path) -> Mapping[str, np.ndarray]:
    tf = open_tensor_file(path)
    for key in sorted(tf.names):
        dtype = tf.dtype(key)
        if dtype in _ST_CODES or not _numpy_dtype(dtype):
            raise WeightsError(
                f"{path}: {key} has dtype {dtype}, which NumPy cannot hold; "
                "save it as float32 or float64 (tensor.float())"
            )
        if dtype == "bfloat16":
            try:  # registers bfloat16 with NumPy
                importlib.import_module("ml_dtypes")
            except ImportError:
                raise WeightsError(
                    f"{path}: {key} is BF16, which NumPy reads only with "
                    "ml_dtypes: pip install ml_dtypes"
                ) from None
    return tf.lazy()


def _numpy_dtype(name: str) -> bool:
    return name == "bfloat16" or name in _NUMPY_NAMES


def _open(path: Path, err: type[UsageError]) -> IO[bytes]:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller's with
    except OSError as exc:
        raise err(f"{path}: cannot be opened ({exc.strerror or exc})") from None


def _np_load(fh: IO[bytes], path: Path, err: type[UsageError], pickled: str) -> Any:
    # np.load is given an open file: on a damaged zip it would leak a handle it opened itself
    try:
        return np.load(fh, allow_pickle=False)
    except ValueError as exc:
        if "max_header_size" in str(exc):  # numpy's message also mentions allow_pickle
            raise err(
                f"{path}: the .npy header is longer than NumPy reads safely (10000 bytes); "
                "not a plain array file: save it with np.save(path, x)"
            ) from None
        if "pickle" in str(exc):
            raise err(f"{path}: {pickled}") from None
        raise _corrupt(path, exc, err) from None
    except READ_ERRORS as exc:
        raise _corrupt(path, exc, err) from None


def _read_npz(path: Path) -> Mapping[str, np.ndarray]:
    # Lists members from the zip directory; reads (bounded) only those looked up.
    return open_tensor_file(path).lazy()


def _select(raw: Mapping[str, np.ndarray], cell: Cell, path: Path) -> dict[str, np.ndarray]:
    """The tensors the cell needs, found bare or under one common prefix (``lstm.``)."""
    names = [s.tensor for s in _slots(cell)]
    counts: dict[str, int] = {}
    for key in raw:
        for name in names:
            if key == name or key.endswith("." + name):
                prefix = key[: len(key) - len(name)]
                counts[prefix] = counts.get(prefix, 0) + 1
    complete = sorted(p for p, c in counts.items() if c == len(names))
    if len(complete) > 1:
        shown = ", ".join(repr(p) if p else "(no prefix)" for p in complete)
        raise WeightsError(
            f"{path}: holds {len(complete)} complete sets of {cell.name} "
            f"tensors (prefixes {shown}); save one module's tensors only"
        )
    prefix = complete[0] if complete else max(counts, key=lambda p: (counts[p], p), default="")
    missing = [prefix + n for n in names if prefix + n not in raw]
    if missing:
        found = ", ".join(sorted(raw)[:8]) + (" ..." if len(raw) > 8 else "") or "none"
        raise WeightsError(
            f"{path}: missing tensors {', '.join(missing)} for {cell.name} (found: {found})"
        )
    # With a prefix, the rest of the model's state_dict (e.g. a linear head) is not ours.
    extra = sorted(k for k in raw if k.startswith(prefix) and k[len(prefix) :] not in names)
    layered = [k for k in extra if _TORCH_EXTRA.match(k[len(prefix) :])]
    if layered and cell.torch_layout is not None:
        proj = cell.name == "lstm" and [k[len(prefix) :] for k in layered] == ["weight_hr_l0"]
        advice = (
            "an nn.LSTM(proj_size) layer: load it as the cell lstm-proj"
            if proj
            else "read the whole model with gradflow.formats.load_model"
        )
        raise WeightsError(
            f"{path}: load_weights reads one unidirectional {cell.name} layer without "
            f"projection, and the file also holds {', '.join(layered)}; {advice}"
        )
    if extra:
        raise WeightsError(
            f"{path}: extra tensors {', '.join(extra)} not used by {cell.name} "
            f"(expected exactly {', '.join(names)})"
        )
    return {n: raw[prefix + n] for n in names}


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or dtype.name == "bfloat16"


def _first_nonfinite(arr: np.ndarray) -> str:
    bad = ~np.isfinite(arr)
    index = np.unravel_index(int(np.argmax(bad)), arr.shape)
    where = str(int(index[0])) if len(index) == 1 else str(tuple(int(i) for i in index))
    count = int(bad.sum())
    return f"{count} non-finite value{'s' if count > 1 else ''} (first at index {where})"


def _check(
    tensors: Mapping[str, np.ndarray], cell: Cell, path: Path | str
) -> tuple[int, int, dict[str, np.ndarray]]:
    """Dtype, rank, shape and finiteness of every tensor; returns ``n``, ``d``, float64 copies."""
    slots = _slots(cell)
    arrays: dict[str, np.ndarray] = {}
    for s in slots:
        arr = np.asarray(tensors[s.tensor])
        if not _is_float(arr.dtype):
            raise WeightsError(
                f"{path}: {s.tensor} has dtype {arr.dtype}; weights must be "
                "floating point (float16, bfloat16, float32 or float64)"
            )
        if arr.ndim != len(s.shape):
            raise WeightsError(
                f"{path}: {s.tensor} has rank {arr.ndim} (shape {arr.shape}); "
                f"expected rank {len(s.shape)}, {s.symbolic()}, for {cell.name}"
            )
        arrays[s.tensor] = arr
    square = [s for s in slots if s.shape == ("n", "n")]
    n_from = square[0] if square else slots[0]
    n = arrays[n_from.tensor].shape[1] if square else arrays[n_from.tensor].shape[0] // n_from.gates
    d_from = next((s for s in slots if "d" in s.shape), None)
    if d_from is None:
        raise WeightsError(f"{path}: cell {cell.name} has no input weight to infer d from")
    d = arrays[d_from.tensor].shape[1]
    # a second size (lstm-proj's p) from the first tensor whose rows are p (W_hr)
    p_from = next((s for s in slots if s.shape[:1] == ("p",)), None)
    p = arrays[p_from.tensor].shape[0] if p_from is not None else None
    checks = [(n, "hidden size n", n_from), (d, "input size d", d_from)]
    if p_from is not None and p is not None:
        checks.append((p, "projection size p", p_from))
    for size, symbol, src in checks:
        if size == 0:
            raise WeightsError(
                f"{path}: {src.tensor} has shape {arrays[src.tensor].shape}, "
                f"so the {symbol} is 0; it must be at least 1"
            )
    gates = f" (G={slots[0].gates})" if slots[0].gates > 1 else ""
    for s in slots:
        arr, want = arrays[s.tensor], s.numeric(n, d, p)
        if arr.shape != want:
            with_p = f", p={p}" if p_from is not None else ""
            p_src = f", p from {p_from.tensor}" if p_from is not None else ""
            raise WeightsError(
                f"{path}: {s.tensor} has shape {arr.shape}; expected "
                f"{s.symbolic()} = {want} for {cell.name}{gates} with n={n}, "
                f"d={d}{with_p} (n from {n_from.tensor}, d from {d_from.tensor}{p_src})"
            )
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise WeightsError(f"{path}: {s.tensor} has {_first_nonfinite(arr)}")
        arrays[s.tensor] = arr
    return n, d, arrays


def load_weights(path: str | os.PathLike[str], cell: Cell | str) -> Params:
    """Load and check a cell's weights from ``.safetensors`` or ``.npz``.

    Args:
        path: the file. Torch-layout cells (``rnn``, ``rnn-relu``, ``lstm``, ``gru``) use
            PyTorch's names ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
            ``bias_hh_l0``, bare or under one common prefix (``lstm.weight_ih_l0``, as in a
            model's ``state_dict``; the model's other tensors are then ignored). Other cells
            use their own parameter names. float16/bfloat16/float32 are upcast to float64.
        cell: a :class:`~gradflow.cells.Cell` or a catalogue name.

    Returns:
        :class:`Params`; ``n`` comes from the recurrent weight, ``d`` from the input weight.

    Raises:
        WeightsError: one line naming the file and the tensor: pickled or unknown format,
            missing file, corrupt file, missing/extra tensors, deeper layers, wrong rank or
            shape, non-float dtype, non-finite values, ``n`` or ``d`` of zero.
    """
    cell = _as_cell(cell)
    p = Path(path)
    suffix = _check_suffix(p, "weight", WEIGHT_SUFFIXES, WeightsError)
    raw = _read_safetensors(p) if suffix == ".safetensors" else _read_npz(p)
    n, d, tensors = _check(_select(raw, cell, p), cell, p)
    params = from_torch_tensors(cell, tensors)
    for arr in params.values():
        arr.setflags(write=False)
    return Params(params, n, d, source=str(p), cell=cell.name)


# ---- writing -----------------------------------------------------------------------------


def save_weights(
    path: str | os.PathLike[str],
    cell: Cell | str,
    params: Mapping[str, Any],
    format: str | None = None,
) -> None:
    """Write a cell's parameters as float64 tensors, atomically.

    Args:
        path: target file; ``format`` defaults to its suffix.
        cell: a :class:`~gradflow.cells.Cell` or a catalogue name.
        params: arrays keyed by the cell's parameter names (a dict or :class:`Params`).
        format: ``"safetensors"`` or ``"npz"``.

    Raises:
        WeightsError: the parameters fail the same checks :func:`load_weights` applies, or the
            format is unknown.
    """
    cell = _as_cell(cell)
    p = Path(path)
    fmt = format or p.suffix.lower().lstrip(".")
    if fmt not in ("safetensors", "npz"):
        raise WeightsError(f"{p}: unknown weight format {fmt!r}; use safetensors or npz")
    extra = sorted(set(params) - {q.name for q in cell.parameters})
    if extra:
        raise WeightsError(f"{p}: parameters {', '.join(extra)} are not used by {cell.name}")
    _, _, checked = _check(to_torch_tensors(cell, params), cell, p)
    tensors = {k: np.ascontiguousarray(v) for k, v in checked.items()}
    # One atomic writer for both formats: the same checks and the same file mode.
    with atomic_open(p, "wb") as fh:
        if fmt == "npz":
            np.savez(fh, **tensors)  # type: ignore[arg-type]  # numpy's stub types allow_pickle
        else:
            from safetensors.numpy import save

            fh.write(save(tensors, metadata={"format": "pt", "gradflow_cell": cell.name}))


# ---- inputs ------------------------------------------------------------------------------


def load_inputs(path: str | os.PathLike[str], input_size: int | None = None) -> np.ndarray:
    """Load an input sequence ``(T, B, d)`` from ``.npy`` as float64.

    The one ``.npy`` inputs loader: ``gradflow analyze --inputs`` and an experiment's
    ``inputs.kind = "file"`` both read through it, so both accept the same files: real numbers
    (floating point, or integers, converted exactly where float64 can hold them).

    Args:
        path: a ``.npy`` file of a real (float or integer) array of shape ``(T, B, d)``.
        input_size: the weights' ``d``; the inputs must match it when given.

    Raises:
        InputsError: missing, pickled, truncated or corrupt file; rank other than 3; a zero
            dimension; a dtype that is not real numbers (complex, bool, strings, records);
            non-finite values; ``d`` not the weights' ``d``.
    """
    p = Path(path)
    _check_suffix(p, "input", (".npy",), InputsError)
    with _open(p, InputsError) as fh:
        arr = _np_load(
            fh,
            p,
            InputsError,
            "holds pickled (object) data, which is never loaded; save a float array with np.save",
        )
        if not isinstance(arr, np.ndarray):
            arr.close()
            raise InputsError(f"{p}: is an .npz archive; save the (T, B, d) inputs with np.save")
    if not (_is_float(arr.dtype) or arr.dtype.kind in "iu"):
        raise InputsError(
            f"{p}: inputs have dtype {arr.dtype}; expected real numbers (a float or integer array)"
        )
    if arr.ndim != 3:
        raise InputsError(
            f"{p}: inputs have shape {arr.shape}; expected rank 3, (T, B, d) "
            "= (steps, batch, input size)"
        )
    for axis, what in enumerate(("steps T", "batch B", "input size d")):
        if arr.shape[axis] == 0:
            raise InputsError(f"{p}: inputs have shape {arr.shape}; {what} must be at least 1")
    if input_size is not None and arr.shape[2] != input_size:
        raise InputsError(
            f"{p}: inputs have d={arr.shape[2]} features (shape {arr.shape}) "
            f"but the weights have input size d={input_size}"
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputsError(f"{p}: inputs have {_first_nonfinite(arr)}")
    return arr
