r"""Keras 3 recurrent models (``.keras`` archives, ``.weights.h5``) without TensorFlow or Keras.

Needs the ``keras`` extra (``h5py``). A ``.keras`` file is a zip of ``config.json`` and
``model.weights.h5``; the weights sit by position as ``layers/<group>/cell/vars/0..2``
(``kernel (d, G n)``, ``recurrent_kernel (n, G n)``, ``bias``), and the group's ``vars`` carries
the layer's name. Conversions to the catalogue (Keras uses ``x @ kernel``: transposed):

* ``LSTM``: gates ``i, f, c, o`` (PyTorch's ``i, f, g, o``), one bias ``(4n,)``: it becomes
  ``b_i*`` and ``b_h* = 0``. Cell ``lstm``.
* ``GRU(reset_after=True)`` (the default): gates ``z, r, h``, bias ``(2, 3n)`` (row 0 input,
  row 1 recurrent): the candidate is ``tanh(x W_h + b_xh + r (h U_h + b_hh))``, PyTorch's GRU.
  Cell ``gru``.
* ``GRU(reset_after=False)``: bias ``(3n,)``, candidate ``tanh(x W_h + (r h) U_h + b_h)``. Cell
  ``gru-reset-before``.
* ``SimpleRNN``: ``activation`` ``tanh`` -> ``rnn``, ``relu`` -> ``rnn-relu``.
* ``Bidirectional(layer, merge_mode="concat")``: forward then backward, outputs concatenated.

Refused, one line each: other activations or recurrent activations, ``go_backwards`` outside
``Bidirectional``, other merge modes below another recurrent layer, layers with weights between
two recurrent layers (the stack would not be direct), and dtypes other than floats.

References:
    [keras-rnn] Keras 3 source, ``keras/src/layers/rnn/{lstm,gru,simple_rnn,bidirectional}.py``
    and ``keras/src/saving/saving_lib.py`` (the archive layout).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..cells import get_cell
from ..errors import WeightsError
from ..tensorfile import MAX_TENSOR_BYTES, READ_ERRORS
from .model import Direction, Layer, Model, NotOneStack, make_params

RECURRENT = ("LSTM", "GRU", "SimpleRNN")
#: Layers that are the identity at inference and may sit between two recurrent layers.
TRANSPARENT = (
    "InputLayer",
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)
MAX_CONFIG_BYTES = 64 * 2**20


def _h5py(path: Path) -> Any:
    try:
        import h5py
    except ImportError:
        raise WeightsError(
            f"{path}: reading Keras files needs h5py: pip install 'gradflow[keras]'"
        ) from None
    return h5py


def _read_archive(path: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            for member, limit in (
                ("config.json", MAX_CONFIG_BYTES),
                ("model.weights.h5", MAX_TENSOR_BYTES),
            ):
                if member not in infos:
                    raise WeightsError(f"{path}: not a Keras 3 archive (no {member} inside)")
                if infos[member].file_size > limit:
                    raise WeightsError(
                        f"{path}: {member} declares {infos[member].file_size} bytes, above the "
                        f"{limit // 2**20} MiB limit; it is not read"
                    )
            config = _parse_config(zf.read("config.json"), path)
            return zf.read("model.weights.h5"), config
    except WeightsError:
        raise
    except READ_ERRORS as exc:
        raise WeightsError(f"{path}: truncated or corrupt .keras archive ({exc})") from None


def _parse_config(data: bytes, where: Path) -> dict[str, Any]:
    try:
        config = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise WeightsError(f"{where}: config.json is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{where}: config.json does not describe a Keras model")
    return config


def _layer_configs(config: dict[str, Any], where: Path) -> list[tuple[str, dict[str, Any]]]:
    """(class_name, config) of the model's layers, in model order."""
    inner = config.get("config", {})
    entries = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(entries, list):
        if config.get("class_name") in (*RECURRENT, "Bidirectional"):
            entries = [config]  # a single layer saved on its own
        else:
            raise WeightsError(f"{where}: config.json lists no layers")
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise WeightsError(f"{where}: config.json has a malformed layer entry")
        out.append((str(entry.get("class_name")), entry["config"]))
    return out


def _groups(h5: Any) -> dict[str, Any]:
    """Layer name -> its h5 group (from the ``vars`` group's ``name`` attribute)."""
    out: dict[str, Any] = {}
    layers = h5.get("layers")
    if layers is None:
        return out
    for key in layers:
        group = layers[key]
        vars_ = group.get("vars")
        name = vars_.attrs.get("name") if vars_ is not None else None
        out[str(name.decode() if isinstance(name, bytes) else name or key)] = group
    return out


def _has_data(group: Any) -> bool:
    found: list[str] = []
    group.visit_links(lambda name: found.append(name) if "vars/" in name else None)
    return bool(found)


def _cell_vars(group: Any, where: str) -> list[np.ndarray]:
    cell = group.get("cell/vars")
    if cell is None:
        raise WeightsError(f"{where}: no cell/vars group with the layer's weights")
    arrays = []
    for k in range(len(cell)):
        ds = cell.get(str(k))
        if ds is None:
            raise WeightsError(f"{where}: cell/vars/{k} is missing")
        if ds.dtype.kind != "f":
            raise WeightsError(f"{where}/cell/vars/{k} has dtype {ds.dtype}; expected floats")
        if int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize > MAX_TENSOR_BYTES:
            raise WeightsError(f"{where}/cell/vars/{k} is above the size limit; it is not read")
        arr = np.asarray(ds[()], dtype=np.float64)
        if not np.isfinite(arr).all():
            raise WeightsError(f"{where}/cell/vars/{k} has non-finite values")
        arrays.append(arr)
    return arrays


def _split(arr: np.ndarray, gates: int) -> list[np.ndarray]:
    """Column blocks of a Keras kernel, transposed to PyTorch's (rows = units)."""
    return [np.ascontiguousarray(b.T) for b in np.split(arr, gates, axis=-1)]


def _convert(
    cls: str, cfg: dict[str, Any], arrays: list[np.ndarray], where: str
) -> tuple[str, dict[str, np.ndarray], bool]:
    """Keras cell variables -> (catalogue cell, canonical params, had a bias)."""
    activation = cfg.get("activation", "tanh")
    recurrent = cfg.get("recurrent_activation", "sigmoid")
    use_bias = bool(cfg.get("use_bias", True))
    if cls != "SimpleRNN" and (activation, recurrent) != ("tanh", "sigmoid"):
        raise WeightsError(
            f"{where}: activation={activation!r}, recurrent_activation={recurrent!r}; only "
            "the defaults 'tanh' and 'sigmoid' have a catalogue cell (describe another cell "
            "in a cell file: gradflow analyze --cell-file)"
        )
    if len(arrays) != 2 + use_bias:
        raise WeightsError(f"{where}: expected {2 + use_bias} weight arrays, found {len(arrays)}")
    kernel, rec = arrays[0], arrays[1]
    if kernel.ndim != 2 or rec.ndim != 2:
        raise WeightsError(f"{where}: kernel and recurrent_kernel must be matrices")
    n = rec.shape[0]
    gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[cls]
    if rec.shape != (n, gates * n) or kernel.shape[1] != gates * n:
        raise WeightsError(
            f"{where}: kernel {kernel.shape} and recurrent_kernel {rec.shape} do not fit a "
            f"{cls} with {n} units ({gates} gates)"
        )
    bias = arrays[2] if use_bias else None
    W, U = _split(kernel, gates), _split(rec, gates)
    zeros = np.zeros(n)
    b: list[np.ndarray]
    if cls == "SimpleRNN":
        if activation not in ("tanh", "relu"):
            raise WeightsError(
                f"{where}: SimpleRNN activation {activation!r} has no catalogue cell (tanh and "
                "relu do; describe another cell in a cell file: gradflow analyze --cell-file)"
            )
        b0 = bias if bias is not None else zeros
        cell = "rnn" if activation == "tanh" else "rnn-relu"
        return cell, {"W_ih": W[0], "W_hh": U[0], "b_ih": b0, "b_hh": zeros}, use_bias
    params: dict[str, np.ndarray] = {}
    if cls == "LSTM":
        b = np.split(bias, 4) if bias is not None else [zeros] * 4
        for k, gate in enumerate("ifgo"):  # Keras i, f, c, o = PyTorch i, f, g, o
            params |= {
                f"W_i{gate}": W[k],
                f"W_h{gate}": U[k],
                f"b_i{gate}": b[k],
                f"b_h{gate}": zeros,
            }
        return "lstm", params, use_bias
    reset_after = bool(cfg.get("reset_after", True))
    if reset_after:
        if bias is not None and bias.shape != (2, 3 * n):
            raise WeightsError(
                f"{where}: GRU(reset_after=True) bias has shape {bias.shape}; expected (2, {3 * n})"
            )
        bx = np.split(bias[0], 3) if bias is not None else [zeros] * 3
        bh = np.split(bias[1], 3) if bias is not None else [zeros] * 3
        for k, gate in enumerate("zrn"):  # Keras z, r, h
            params |= {
                f"W_i{gate}": W[k],
                f"W_h{gate}": U[k],
                f"b_i{gate}": bx[k],
                f"b_h{gate}": bh[k],
            }
        return "gru", params, use_bias
    if bias is not None and bias.shape != (3 * n,):
        raise WeightsError(
            f"{where}: GRU(reset_after=False) bias has shape {bias.shape}; expected ({3 * n},)"
        )
    b = np.split(bias, 3) if bias is not None else [zeros] * 3
    for k, gate in enumerate("zrn"):
        params |= {f"W_x{gate}": W[k], f"W_h{gate}": U[k], f"b_{gate}": b[k]}
    return "gru-reset-before", params, use_bias


def _layer(
    cls: str, cfg: dict[str, Any], group: Any, where: str, source: str, name: str = ""
) -> Layer:
    if cls == "Bidirectional":
        merge = cfg.get("merge_mode", "concat")
        inner = cfg.get("layer", {})
        inner_cls = str(inner.get("class_name"))
        if inner_cls not in RECURRENT:
            raise WeightsError(f"{where}: Bidirectional wraps {inner_cls}, not LSTM/GRU/SimpleRNN")
        back_cfg = cfg.get("backward_layer", inner).get("config", inner.get("config", {}))
        parts = [
            ("forward_layer", inner.get("config", {}), False),
            ("backward_layer", back_cfg, True),
        ]
        dirs = []
        for sub, sub_cfg, rev in parts:
            sg = group.get(sub)
            if sg is None:
                raise WeightsError(f"{where}: the Bidirectional group has no {sub}")
            cell, params, bias = _convert(
                inner_cls, sub_cfg, _cell_vars(sg, f"{where}/{sub}"), f"{where}/{sub}"
            )
            dirs.append((cell, params, bias, rev, f"{where}/{sub}"))
        if merge != "concat":
            raise WeightsError(
                f"{where}: Bidirectional merge_mode={merge!r}; only 'concat' keeps both "
                "directions' outputs (analyse the layers below it with --prefix NAME)"
            )
    else:
        if cfg.get("go_backwards", False):
            raise WeightsError(
                f"{where}: go_backwards=True outside Bidirectional reverses the layer's output "
                "order; not supported (wrap the layer in Bidirectional, or analyse the "
                "layers below it with --prefix NAME)"
            )
        cell, params, bias = _convert(cls, cfg, _cell_vars(group, where), where)
        dirs = [(cell, params, bias, False, where)]
    directions = []
    for cell, params, _, rev, src in dirs:
        w_in = next(p.name for p in get_cell(cell).parameters if p.shape == ("n", "d"))
        n, d = params[w_in].shape
        directions.append(
            Direction(
                rev, make_params(cell, params, d, n, source), sources={k: src for k in params}
            )
        )
    n, d = directions[0].params.hidden_size, directions[0].params.input_size
    return Layer(dirs[0][0], n, d, tuple(directions), bias=dirs[0][2], name=name)


def load_keras(
    path: Path, *, prefix: str | None = None, config: str | os.PathLike[str] | None = None
) -> Model:
    """Read a Keras 3 ``.keras`` archive or ``.weights.h5`` (+ ``config``) into a Model.

    Args:
        path: ``.keras`` or ``.weights.h5``.
        prefix: one recurrent layer's name (otherwise every recurrent layer, as a stack).
        config: a ``config.json`` for a bare ``.weights.h5``; without it, a weights file whose
            recurrent layers all have one class is read in the order of their names
            (``lstm``, ``lstm_1`` ...) with default activations, and a note says so.

    Raises:
        WeightsError: one line naming the file and the layer.
    """
    h5py = _h5py(path)
    notes: list[str] = []
    if path.suffix.lower() == ".keras":
        blob, cfg = _read_archive(path)
        handle: Any = io.BytesIO(blob)
    else:
        handle = path
        cfg = None
        if config is not None:
            cpath = Path(config)
            if not cpath.is_file() or cpath.stat().st_size > MAX_CONFIG_BYTES:
                raise WeightsError(f"{cpath}: not a readable config.json")
            cfg = _parse_config(cpath.read_bytes(), cpath)
    try:
        h5 = h5py.File(handle, "r")
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: truncated or corrupt HDF5 weights ({exc})") from None
    with h5:
        groups = _groups(h5)
        empty = {k for k, g in groups.items() if not _has_data(g)}
        if cfg is not None:
            entries = _layer_configs(cfg, path)
        else:
            entries = _guess_entries(h5, groups, path)
            notes.append(
                "no config: layer order from the weight names, default activations "
                "assumed (pass config= / --config config.json)"
            )
        rec = [(cls, c) for cls, c in entries if cls in (*RECURRENT, "Bidirectional")]
        if prefix is not None:
            rec = [(cls, c) for cls, c in rec if c.get("name") == prefix]
            if not rec:
                names = ", ".join(repr(c.get("name")) for cls, c in entries)
                raise WeightsError(f"{path}: no recurrent layer named {prefix!r} (layers: {names})")
        if not rec:
            other = [
                f"{c.get('name')!r} ({cls})"
                for cls, c in entries
                if any(word in cls.upper() for word in ("RNN", "LSTM", "GRU"))
            ]
            raise WeightsError(
                f"{path}: no LSTM, GRU, SimpleRNN or Bidirectional layer"
                + (
                    f"; {', '.join(other)} {'is' if len(other) == 1 else 'are'} not read "
                    "(a generic RNN wrapper or another recurrent class): rebuild it as "
                    "keras.layers.LSTM, GRU or SimpleRNN with the same weights "
                    "(new.set_weights(old.get_weights())) and save that model"
                    if other
                    else ""
                )
            )
        if prefix is None:
            _check_direct(entries, path)
        layers = []
        for cls, c in rec:
            name = str(c.get("name"))
            if name not in groups:
                raise WeightsError(f"{path}: layer {name!r} has no weights in the file")
            layers.append(_layer(cls, c, groups[name], f"{path}: {name}", str(path), name))
    used = {str(c.get("name")) for _, c in rec}
    unrelated = tuple(sorted(k for k in groups if k not in used and k not in empty))
    label = prefix or ""
    try:
        return Model(tuple(layers), "keras", str(path), label, unrelated, tuple(notes))
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def _check_direct(entries: list[tuple[str, dict[str, Any]]], path: Path) -> None:
    """Only identity layers may sit between two recurrent layers of a stack."""
    idx = [k for k, (cls, _) in enumerate(entries) if cls in (*RECURRENT, "Bidirectional")]
    for a, b in zip(idx, idx[1:], strict=False):
        for cls, c in entries[a + 1 : b]:
            if cls not in TRANSPARENT:
                raise NotOneStack(
                    f"{path}: layer {c.get('name')!r} ({cls}) sits between recurrent layers "
                    f"{entries[a][1].get('name')!r} and {entries[b][1].get('name')!r}; the "
                    "stack is not direct: choose one layer with --prefix NAME",
                    tuple(str(entries[i][1].get("name")) for i in idx),
                )


_SUFFIX = re.compile(r"^(?P<base>.*?)(?:_(?P<k>\d+))?$")


def _guess_entries(h5: Any, groups: dict[str, Any], path: Path) -> list[tuple[str, dict[str, Any]]]:
    classes = {
        "lstm": "LSTM",
        "gru": "GRU",
        "simple_rnn": "SimpleRNN",
        "bidirectional": "Bidirectional",
    }
    found = []
    for name, group in groups.items():
        key = Path(group.name).name
        m = _SUFFIX.match(key)
        assert m is not None
        cls = classes.get(m["base"])
        if cls is None:
            continue
        cfg: dict[str, Any] = {"name": name}
        if cls == "Bidirectional":
            sub = group.get("forward_layer/cell/vars")
            inner_cls = _class_from_shapes(sub) if sub is not None else "?"
            inner = {"class_name": inner_cls, "config": _guess_cfg(inner_cls, sub)}
            cfg |= {"layer": inner, "merge_mode": "concat"}
        else:
            cfg |= _guess_cfg(cls, group.get("cell/vars"))
        found.append((m["base"], int(m["k"] or 0), cls, cfg))
    if len({f[0] for f in found}) > 1:
        raise WeightsError(
            f"{path}: recurrent layers of several classes and no config.json: their order is "
            "unknown; pass config= (--config) or a .keras archive"
        )
    return [(cls, cfg) for _, _, cls, cfg in sorted(found, key=lambda f: f[1])]


def _guess_cfg(cls: str, vars_group: Any) -> dict[str, Any]:
    """use_bias and reset_after from the variables' count and the bias' rank."""
    bias = vars_group.get("2") if vars_group is not None else None
    cfg: dict[str, Any] = {"use_bias": bias is not None}
    if cls == "GRU":
        cfg["reset_after"] = bias is None or len(bias.shape) == 2
    return cfg


def _class_from_shapes(vars_group: Any) -> str:
    rec = vars_group.get("1")
    if rec is None or len(rec.shape) != 2 or rec.shape[0] == 0:
        return "?"
    return {1: "SimpleRNN", 3: "GRU", 4: "LSTM"}.get(rec.shape[1] // rec.shape[0], "?")
