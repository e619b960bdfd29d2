"""Weight and input files: round trips, every bad input refused with its message, fuzzing.

Reference layouts: PyTorch's documentation of ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (row blocks
``i, f, g, o`` and ``r, z, n``) and the files in ``tests/data`` that torch itself wrote.
Round trips are exact (float64 written and read back bit for bit).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from gradflow.cells import get_cell
from gradflow.errors import InputsError, WeightsError
from gradflow.weights import (
    Params,
    from_torch_tensors,
    load_inputs,
    load_weights,
    save_weights,
    to_torch_tensors,
)

DATA = Path(__file__).parent / "data"
DOCS = Path(__file__).parent.parent / "docs" / "bad-inputs.md"
N, D = 4, 3


def random_params(cell: str, n: int = N, d: int = D, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p.name: rng.normal(size=p.numeric_shape(n, d)) for p in get_cell(cell).parameters}


def torch_tensors(cell: str = "lstm", n: int = N, d: int = D) -> dict[str, np.ndarray]:
    return to_torch_tensors(cell, random_params(cell, n, d))


# ---- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm-peephole"])
def test_round_trip_is_exact(cell: str, fmt: str, tmp_path: Path) -> None:
    params = random_params(cell, n=5, d=2)
    path = tmp_path / f"w.{fmt}"
    save_weights(path, cell, params)
    loaded = load_weights(path, cell)
    assert (loaded.hidden_size, loaded.input_size, loaded.cell) == (5, 2, cell)
    assert loaded.source == str(path)
    assert set(loaded) == set(params)
    for name, value in params.items():
        assert loaded[name].dtype == np.float64
        assert np.array_equal(loaded[name], value), name  # bit-exact float64 round trip
    assert loaded == params
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind


@pytest.mark.parametrize(("cell", "gates"), [("rnn", ""), ("lstm", "ifgo"), ("gru", "rzn")])
def test_file_uses_pytorch_names_and_gate_order(cell: str, gates: str, tmp_path: Path) -> None:
    params = random_params(cell)
    save_weights(tmp_path / "w.safetensors", cell, params)
    raw = load_file(tmp_path / "w.safetensors")
    assert sorted(raw) == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
    if not gates:
        assert np.array_equal(raw["weight_hh_l0"], params["W_hh"])
        return
    # PyTorch docs: weight_hh_l0 = [W_h<gate> for gate in order] stacked by rows
    for k, gate in enumerate(gates):
        assert np.array_equal(raw["weight_hh_l0"][k * N : (k + 1) * N], params[f"W_h{gate}"])
        assert np.array_equal(raw["weight_ih_l0"][k * N : (k + 1) * N], params[f"W_i{gate}"])
        assert np.array_equal(raw["bias_hh_l0"][k * N : (k + 1) * N], params[f"b_h{gate}"])
    assert from_torch_tensors(cell, raw).keys() == params.keys()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reads_files_torch_wrote(cell: str) -> None:
    # tests/data/ref_*.safetensors were written by safetensors.torch.save_file(module.state_dict())
    raw = load_file(DATA / f"ref_{cell}_vanishing.safetensors")
    p = load_weights(DATA / f"ref_{cell}_vanishing.safetensors", cell)
    assert (p.hidden_size, p.input_size) == (4, 3)
    assert np.array_equal(to_torch_tensors(cell, p)["weight_hh_l0"], raw["weight_hh_l0"])


def test_params_are_read_only_and_frozen(tmp_path: Path) -> None:
    save_weights(tmp_path / "w.npz", "rnn", random_params("rnn"))
    p = load_weights(tmp_path / "w.npz", "rnn")
    assert isinstance(p, Params) and len(p) == 4
    with pytest.raises(ValueError, match="read-only"):
        p["W_hh"][0, 0] = 1.0
    with pytest.raises(AttributeError):
        p.hidden_size = 3  # type: ignore[misc]


def test_state_dict_prefix_is_accepted(tmp_path: Path) -> None:
    tensors = {f"lstm.{k}": v for k, v in torch_tensors().items()}
    tensors |= {"fc.weight": np.ones((2, N)), "fc.bias": np.zeros(2)}  # the rest of the model
    save_file(tensors, tmp_path / "model.safetensors")
    p = load_weights(tmp_path / "model.safetensors", "lstm")
    assert np.array_equal(p["W_hf"], tensors["lstm.weight_hh_l0"][N : 2 * N])


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_is_upcast(dtype: type, tmp_path: Path) -> None:
    tensors = {k: (v * 8).round().astype(dtype) / 8 for k, v in torch_tensors("gru").items()}
    save_file(tensors, tmp_path / "w.safetensors")
    p = load_weights(tmp_path / "w.safetensors", "gru")
    assert p["W_hz"].dtype == np.float64
    # multiples of 1/8 below 2048 are exact in float16, so the upcast is exact
    assert np.array_equal(p["W_hz"], tensors["weight_hh_l0"][N : 2 * N].astype(np.float64))


def write_raw_safetensors(path: Path, tensors: dict[str, tuple[str, tuple, bytes]]) -> None:
    """The safetensors layout by hand: u64 header length, JSON header, raw bytes."""
    header, data = {}, b""
    for name, (dtype, shape, blob) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [len(data), len(data) + len(blob)],
        }
        data += blob
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def bf16_file(path: Path) -> dict[str, np.ndarray]:
    """An rnn file in bfloat16; values are multiples of 1/8, exact in bfloat16."""
    exact = {k: (v * 8).round() / 8 for k, v in torch_tensors("rnn").items()}
    write_raw_safetensors(
        path,
        {
            k: (
                "BF16",
                v.shape,
                (v.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes(),
            )
            for k, v in exact.items()
        },
    )
    return exact


def test_bfloat16_is_upcast_with_ml_dtypes(tmp_path: Path) -> None:
    pytest.importorskip("ml_dtypes")
    exact = bf16_file(tmp_path / "w.safetensors")
    p = load_weights(tmp_path / "w.safetensors", "rnn")
    assert np.array_equal(p["W_hh"], exact["weight_hh_l0"])


def test_bfloat16_without_ml_dtypes_says_how_to_install(tmp_path: Path) -> None:
    try:
        import ml_dtypes  # noqa: F401

        pytest.skip("ml_dtypes is installed")
    except ImportError:
        pass
    bf16_file(tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match=r"bias_hh_l0 is BF16.*pip install ml_dtypes"):
        load_weights(tmp_path / "w.safetensors", "rnn")


# ---- bad inputs: each case writes a file and returns the call that must fail ------------------


def _save(name: str, tensors: dict[str, np.ndarray]) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        path = tmp / name
        if name.endswith(".npz"):
            np.savez(path, **tensors)
        else:
            save_file(tensors, path)
        return path

    return write


def _replace(cell: str, **changes: np.ndarray) -> dict[str, np.ndarray]:
    tensors = torch_tensors(cell)
    tensors.update(changes)
    return {k: v for k, v in tensors.items() if v is not None}


def _bytes(name: str, data: bytes | Callable[[Path], bytes]) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data(tmp) if callable(data) else data)
        return path

    return write


def _truncated(name: str) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        good = tmp / ("good" + Path(name).suffix)
        save_weights(good, "lstm", random_params("lstm"))
        data = good.read_bytes()
        good.unlink()
        return _bytes(name, data[: len(data) // 2])(tmp)

    return write


class Evil:
    """Unpickling this creates a marker file: proof that nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def _pickled(name: str) -> Callable[[Path], Path]:
    return _bytes(name, lambda tmp: pickle.dumps(Evil(tmp / "UNPICKLED")))


def _object_npz(tmp: Path) -> Path:
    path = tmp / "w.npz"
    np.savez(path, **_replace("lstm", bias_hh_l0=np.array([{"a": 1}], dtype=object)))
    return path


def _npy_as_npz(tmp: Path) -> Path:
    np.save(tmp / "w.npy", np.zeros((4, 3)))
    return (tmp / "w.npy").rename(tmp / "w.npz")


nan_bias = np.arange(16.0)
nan_bias[[5, 7]] = np.nan
nan_bias[9] = np.inf
two_sets = {f"{p}.{k}": v for p in ("enc", "dec") for k, v in torch_tensors().items()}

#: (label, cell, writer, expected message fragment, message includes library detail)
WEIGHT_CASES: list[tuple[str, str, Callable[[Path], Path], str, bool]] = [
    (
        "file does not exist",
        "lstm",
        lambda tmp: tmp / "missing.safetensors",
        "missing.safetensors: no such file",
        False,
    ),
    (
        "a directory",
        "lstm",
        lambda tmp: (tmp / "dir.npz").mkdir() or tmp / "dir.npz",
        "not a regular file",
        False,
    ),
    (
        "pickled PyTorch checkpoint `.pt`",
        "lstm",
        _pickled("model.pt"),
        "pickled files are never loaded",
        False,
    ),
    (
        "pickled `.pth` / `.pkl` / `.bin` / `.ckpt`",
        "lstm",
        _pickled("model.ckpt"),
        "safetensors.torch.save_file(model.state_dict(), 'w.safetensors')",
        False,
    ),
    (
        "unknown extension `.h5`",
        "lstm",
        _bytes("w.h5", b"\x89HDF"),
        "unknown weight file extension '.h5'; use .safetensors or .npz",
        False,
    ),
    (
        "pickle renamed to `.npz`",
        "lstm",
        _pickled("w.npz"),
        "it holds pickled data, which is never loaded",
        False,
    ),
    (
        "random bytes as `.safetensors`",
        "lstm",
        _bytes("w.safetensors", b"not a tensor file"),
        "truncated or corrupt file",
        True,
    ),
    (
        "truncated `.safetensors` (half the bytes)",
        "lstm",
        _truncated("w.safetensors"),
        "truncated or corrupt file",
        True,
    ),
    (
        "truncated `.npz` (half the bytes)",
        "lstm",
        _truncated("w.npz"),
        "truncated or corrupt file",
        True,
    ),
    ("empty `.npz` file", "lstm", _bytes("w.npz", b""), "truncated or corrupt file", True),
    (
        "`.npz` with an object array",
        "lstm",
        _object_npz,
        "bias_hh_l0 is an object array, which needs pickle and is never loaded",
        False,
    ),
    (
        "a single `.npy` array renamed `.npz`",
        "lstm",
        _npy_as_npz,
        "holds a single array, not an .npz archive",
        False,
    ),
    (
        "missing tensors",
        "lstm",
        _save("w.npz", _replace("lstm", bias_ih_l0=None, bias_hh_l0=None)),
        "missing tensors bias_ih_l0, bias_hh_l0 for lstm",
        False,
    ),
    (
        "extra tensors",
        "gru",
        _save("w.npz", _replace("gru", extra_scale=np.ones(3))),
        "extra tensors extra_scale not used by gru",
        False,
    ),
    (
        "two-layer LSTM",
        "lstm",
        _save(
            "w.safetensors",
            torch_tensors() | {"weight_ih_l1": np.ones((16, 4)), "weight_hh_l1": np.ones((16, 4))},
        ),
        "load_weights reads one unidirectional lstm layer without projection, and the file also "
        "holds weight_hh_l1, weight_ih_l1; read the whole model with gradflow.formats.load_model",
        False,
    ),
    (
        "bidirectional GRU",
        "gru",
        _save("w.npz", torch_tensors("gru") | {"weight_ih_l0_reverse": np.ones((12, 3))}),
        "the file also holds weight_ih_l0_reverse",
        False,
    ),
    (
        "LSTM with projection (`proj_size`)",
        "lstm",
        _save("w.npz", torch_tensors() | {"weight_hr_l0": np.ones((2, 4))}),
        "the file also holds weight_hr_l0; an nn.LSTM(proj_size) layer: load it as the cell "
        "lstm-proj",
        False,
    ),
    (
        "two prefixed sets in one state_dict",
        "lstm",
        _save("w.safetensors", two_sets),
        "holds 2 complete sets of lstm tensors (prefixes 'dec.', 'enc.')",
        False,
    ),
    (
        "wrong shape of `weight_hh_l0`",
        "lstm",
        _save("w.npz", _replace("lstm", weight_hh_l0=np.ones((12, 4)))),
        "weight_hh_l0 has shape (12, 4); expected (G*n, n) = (16, 4) for lstm (G=4) with n=4",
        False,
    ),
    (
        "wrong rows of `weight_ih_l0`",
        "rnn",
        _save("w.npz", _replace("rnn", weight_ih_l0=np.ones((5, 3)))),
        "weight_ih_l0 has shape (5, 3); expected (n, d) = (4, 3) for rnn with n=4, d=3",
        False,
    ),
    (
        "wrong rank of a bias",
        "gru",
        _save("w.npz", _replace("gru", bias_ih_l0=np.ones((12, 1)))),
        "bias_ih_l0 has rank 2 (shape (12, 1)); expected rank 1, (G*n,), for gru",
        False,
    ),
    (
        "integer tensor",
        "rnn",
        _save("w.safetensors", _replace("rnn", weight_hh_l0=np.ones((4, 4), dtype=np.int64))),
        "weight_hh_l0 has dtype int64; weights must be floating point",
        False,
    ),
    (
        "boolean tensor",
        "rnn",
        _save("w.npz", _replace("rnn", bias_ih_l0=np.ones(4, dtype=bool))),
        "bias_ih_l0 has dtype bool; weights must be floating point",
        False,
    ),
    (
        "complex tensor",
        "rnn",
        _save("w.npz", _replace("rnn", bias_hh_l0=np.ones(4, complex))),
        "bias_hh_l0 has dtype complex128; weights must be floating point",
        False,
    ),
    (
        "float8 tensor",
        "rnn",
        lambda tmp: (
            write_raw_safetensors(
                tmp / "w.safetensors", {"weight_hh_l0": ("F8_E4M3", (4, 4), bytes(16))}
            )
            or tmp / "w.safetensors"
        ),
        "weight_hh_l0 has dtype F8_E4M3, which NumPy cannot hold; save it as float32",
        False,
    ),
    (
        "NaN and inf values",
        "lstm",
        _save("w.safetensors", _replace("lstm", bias_hh_l0=nan_bias)),
        "bias_hh_l0 has 3 non-finite values (first at index 5)",
        False,
    ),
    (
        "hidden size n = 0",
        "rnn",
        _save(
            "w.npz",
            {
                "weight_ih_l0": np.ones((0, 3)),
                "weight_hh_l0": np.ones((0, 0)),
                "bias_ih_l0": np.ones(0),
                "bias_hh_l0": np.ones(0),
            },
        ),
        "weight_hh_l0 has shape (0, 0), so the hidden size n is 0; it must be at least 1",
        False,
    ),
    (
        "input size d = 0",
        "lstm",
        _save("w.npz", _replace("lstm", weight_ih_l0=np.ones((16, 0)))),
        "weight_ih_l0 has shape (16, 0), so the input size d is 0",
        False,
    ),
    (
        "peephole file missing a peephole vector",
        "lstm-peephole",
        _save("w.npz", {k: v for k, v in random_params("lstm-peephole").items() if k != "p_o"}),
        "missing tensors p_o for lstm-peephole",
        False,
    ),
]


def _message(call: Callable[[], object], err: type[Exception], tmp: Path) -> str:
    with pytest.raises(err) as info:
        call()
    text = str(info.value)
    assert "\n" not in text  # one line
    return text.replace(f"{tmp}{os.sep}", "")


def weight_messages(tmp: Path) -> list[tuple[str, str, bool]]:
    out = []
    for k, (label, cell, write, _, detail) in enumerate(WEIGHT_CASES):
        case_dir = tmp / f"w{k}"
        case_dir.mkdir(parents=True)
        path = write(case_dir)
        msg = _message(lambda p=path, c=cell: load_weights(p, c), WeightsError, case_dir)
        assert not (case_dir / "UNPICKLED").exists()  # nothing was unpickled
        out.append((label, msg, detail))
    return out


@pytest.mark.parametrize(
    ("label", "cell", "write", "expected", "detail"), WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES]
)
def test_bad_weight_file(
    label: str,
    cell: str,
    write: Callable[[Path], Path],
    expected: str,
    detail: bool,
    tmp_path: Path,
) -> None:
    path = write(tmp_path)
    msg = _message(lambda: load_weights(path, cell), WeightsError, tmp_path)
    assert expected in msg
    assert msg.startswith(path.name + ":")  # every message names the file
    assert not (tmp_path / "UNPICKLED").exists()  # the pickle payload never ran


def test_save_weights_refuses_bad_params_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    good = random_params("lstm")
    save_weights(path, "lstm", good)
    before = path.read_bytes()
    bad = dict(good, b_hf=np.full(N, np.nan))
    with pytest.raises(WeightsError, match="bias_hh_l0 has 4 non-finite values"):
        save_weights(path, "lstm", bad)
    with pytest.raises(WeightsError, match="parameters W_extra are not used by lstm"):
        save_weights(path, "lstm", dict(good, W_extra=np.ones(2)))
    with pytest.raises(WeightsError, match="lstm parameters lack b_ho"):
        save_weights(path, "lstm", {k: v for k, v in good.items() if k != "b_ho"})
    with pytest.raises(WeightsError, match="unknown weight format 'h5'"):
        save_weights(tmp_path / "w.h5", "lstm", good)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]


def test_save_weights_explicit_format(tmp_path: Path) -> None:
    save_weights(tmp_path / "weights.data", "gru", random_params("gru"), format="npz")
    assert sorted(np.load(tmp_path / "weights.data").files) == [
        "bias_hh_l0",
        "bias_ih_l0",
        "weight_hh_l0",
        "weight_ih_l0",
    ]


# ---- inputs ---------------------------------------------------------------------------------


def test_load_inputs_casts_float32(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(6, 2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got = load_inputs(tmp_path / "x.npy", input_size=3)
    assert got.dtype == np.float64 and np.array_equal(got, x.astype(np.float64))


def _npy(array: np.ndarray) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        np.save(tmp / "x.npy", array, allow_pickle=True)
        return tmp / "x.npy"

    return write


def _truncated_npy(tmp: Path) -> Path:
    np.save(tmp / "x.npy", np.ones((10, 2, 3)))
    data = (tmp / "x.npy").read_bytes()
    (tmp / "x.npy").write_bytes(data[: len(data) - 100])
    return tmp / "x.npy"


x_nan = np.zeros((5, 2, 3))
x_nan[3, 0, 1] = np.nan

#: (label, writer, input_size, expected message fragment)
INPUT_CASES: list[tuple[str, Callable[[Path], Path], int | None, str]] = [
    ("file does not exist", lambda tmp: tmp / "x.npy", None, "x.npy: no such file"),
    (
        "`.npz` instead of `.npy`",
        lambda tmp: tmp / "x.npz",
        None,
        "unknown input file extension '.npz'; use .npy",
    ),
    ("pickled `.pkl`", _pickled("x.pkl"), None, "pickled files are never loaded"),
    (
        "object array",
        _npy(np.array([[[{"a": 1}]]], dtype=object)),
        None,
        "holds pickled (object) data, which is never loaded",
    ),
    ("truncated `.npy`", _truncated_npy, None, "x.npy: truncated or corrupt file"),
    (
        "rank 2 instead of (T, B, d)",
        _npy(np.zeros((5, 3))),
        None,
        "inputs have shape (5, 3); expected rank 3, (T, B, d)",
    ),
    (
        "complex dtype",
        _npy(np.zeros((5, 2, 3), dtype=np.complex128)),
        None,
        "inputs have dtype complex128; expected real numbers (a float or integer array)",
    ),
    (
        "zero steps",
        _npy(np.zeros((0, 2, 3))),
        None,
        "inputs have shape (0, 2, 3); steps T must be at least 1",
    ),
    ("zero batch", _npy(np.zeros((5, 0, 3))), None, "batch B must be at least 1"),
    (
        "d differs from the weights'",
        _npy(np.zeros((5, 2, 4))),
        3,
        "inputs have d=4 features (shape (5, 2, 4)) but the weights have input size d=3",
    ),
    ("NaN value", _npy(x_nan), None, "inputs have 1 non-finite value (first at index (3, 0, 1))"),
]


def input_messages(tmp: Path) -> list[tuple[str, str, bool]]:
    out = []
    for k, (label, write, d, _) in enumerate(INPUT_CASES):
        case_dir = tmp / f"x{k}"
        case_dir.mkdir(parents=True)
        path = write(case_dir)
        msg = _message(lambda p=path, d=d: load_inputs(p, input_size=d), InputsError, case_dir)
        out.append((label, msg, "truncated" in label))
    return out


@pytest.mark.parametrize(
    ("label", "write", "input_size", "expected"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES]
)
def test_bad_inputs_file(
    label: str, write: Callable[[Path], Path], input_size: int | None, expected: str, tmp_path: Path
) -> None:
    path = write(tmp_path)
    msg = _message(lambda: load_inputs(path, input_size=input_size), InputsError, tmp_path)
    assert expected in msg
    assert not (tmp_path / "UNPICKLED").exists()


# ---- the documented table matches what users see ----------------------------------------------


def docs_section(tmp: Path) -> str:
    """The "Weight and input files" section of docs/bad-inputs.md, from the cases above."""
    lines = [
        "## Weight and input files",
        "",
        "Every row was tried by `tests/test_weights.py`, which checks this table against "
        "the messages (`load_weights` raises `WeightsError`, `load_inputs` raises "
        "`InputsError`; the CLI prints the message on one line and exits with code 2). "
        "Text in parentheses after 'cannot be read' comes from the reading library and "
        "may differ between its versions.",
        "",
    ]
    for title, rows in (
        ("load_weights", weight_messages(tmp)),
        ("load_inputs", input_messages(tmp)),
    ):
        lines += [f"| {title}: bad input | message |", "| --- | --- |"]
        lines += [f"| {label} | `` {msg.replace('|', '/')} `` |" for label, msg, _ in rows]
        lines.append("")
    return "\n".join(lines)


def test_docs_table_matches_messages(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented, table = {}, ""
    for line in text.splitlines():
        if line.endswith(": bad input | message |"):
            table = line[2:].split(":")[0]
        elif line.startswith("| ") and line.endswith(" `` |"):
            label, _, msg = line[2:-5].partition(" | `` ")
            documented[table, label] = msg
    for table, rows in (
        ("load_weights", weight_messages(tmp_path / "w")),
        ("load_inputs", input_messages(tmp_path / "x")),
    ):
        for label, msg, detail in rows:
            assert (table, label) in documented, f"docs/bad-inputs.md lacks {table}: {label!r}"
            if detail:  # the reader's own wording may change between library versions
                assert documented[table, label].split(" (")[0] == msg.split(" (")[0], label
            else:
                assert documented[table, label] == msg, label


# ---- fuzzing: damaged files raise WeightsError and nothing else -------------------------------

FUZZ_EXAMPLES = 200


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_fuzz_damaged_files_raise_only_weights_error(suffix: str, tmp_path: Path) -> None:
    good = tmp_path / f"good{suffix}"
    save_weights(good, "lstm", random_params("lstm"))
    valid = good.read_bytes()
    target = tmp_path / f"fuzz{suffix}"
    ran = {"examples": 0, "loaded": 0}

    damaged = st.one_of(
        st.binary(max_size=2 * len(valid)),  # random bytes
        st.integers(0, len(valid) - 1).map(lambda k: valid[:k]),  # truncated
        st.binary(min_size=1, max_size=64).map(lambda b: valid[:8] + b),  # right start, garbage
        st.lists(
            st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)),  # bytes flipped
            min_size=1,
            max_size=8,
        ).map(lambda flips: bytes(_flip(bytearray(valid), flips))),
    )

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=damaged)
    def check(data: bytes) -> None:
        ran["examples"] += 1
        target.write_bytes(data)
        try:
            load_weights(target, "lstm")
            ran["loaded"] += 1  # a flip inside the float data can leave a valid file
        except WeightsError as exc:
            assert "\n" not in str(exc)

    check()
    print(f"fuzz {suffix}: {ran['examples']} examples, {ran['loaded']} still valid")
    assert 100 <= ran["examples"] <= FUZZ_EXAMPLES + 50  # bounded run


def _flip(data: bytearray, flips: list[tuple[int, int]]) -> bytearray:
    for pos, value in flips:
        data[pos] = value
    return data


# ---- one loader, one writer (issue 10) --------------------------------------------------------


def test_integer_inputs_load_as_in_an_experiment_file(tmp_path: Path) -> None:
    # Regression: `analyze --inputs` refused integer inputs that `inputs.kind = "file"`
    # accepted (two loaders); both go through load_inputs now.
    from gradflow.analysis.experiment import ExperimentConfig, experiment_inputs

    x = np.arange(24, dtype=np.int32).reshape(4, 2, 3) - 12
    np.save(tmp_path / "x.npy", x)
    loaded = load_inputs(tmp_path / "x.npy", input_size=3)
    assert loaded.dtype == np.float64 and np.array_equal(loaded, x)  # exact: |x| < 2**53
    cfg = ExperimentConfig.from_dict(
        {
            "cells": ["rnn"],
            "hidden_size": 2,
            "input_size": 3,
            "steps": 4,
            "batch": 2,
            "inputs": {"kind": "file", "path": str(tmp_path / "x.npy")},
        }  # fmt: skip
    )
    np.testing.assert_array_equal(experiment_inputs(cfg, 0), loaded)
    np.save(tmp_path / "c.npy", x.astype(np.complex128))
    bad = cfg.replace(inputs=cfg.inputs.__class__("file", path=str(tmp_path / "c.npy")))
    with pytest.raises(InputsError, match="expected real numbers"):  # the same rule in both
        experiment_inputs(bad, 0)
    with pytest.raises(InputsError, match="expected real numbers"):
        load_inputs(tmp_path / "c.npy")


def test_both_weight_formats_get_the_same_file_mode(tmp_path: Path) -> None:
    # Regression: .safetensors were written 0600 (mkstemp) and .npz 0666 & ~umask.
    import os

    umask = os.umask(0o022)
    try:
        for suffix in (".safetensors", ".npz"):
            save_weights(tmp_path / f"w{suffix}", "gru", random_params("gru"))
            assert (tmp_path / f"w{suffix}").stat().st_mode & 0o777 == 0o644, suffix
    finally:
        os.umask(umask)
