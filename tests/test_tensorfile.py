"""Reader safety (issue 13): zip bombs, FIFOs and devices, size bounds; each refused or bounded.

The zip bomb here is real: a member of 64 MiB of zeros deflated to about 64 kB. Memory is
measured with tracemalloc (NumPy and zlib buffers are traced); the bound asserted is a quarter
of what inflating the member would take, so the test fails if the member is ever read.
"""

from __future__ import annotations

import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import gradflow.tensorfile as tensorfile
from gradflow.errors import InputsError, WeightsError
from gradflow.tensorfile import open_tensor_file
from gradflow.weights import load_inputs, load_weights, save_weights

BOMB = 64 * 2**20  # bytes of zeros in the bomb member


def _params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "W_ih": rng.normal(size=(4, 3)),
        "W_hh": rng.normal(size=(4, 4)),
        "b_ih": rng.normal(size=4),
        "b_hh": rng.normal(size=4),
    }


def _npy_bytes(shape: tuple[int, ...]) -> tuple[bytes, int]:
    """A .npy header for a float64 zero array of ``shape``, and its data length."""
    import io

    buf = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue(), int(np.prod(shape)) * 8


def _bomb_npz(path: Path, member: str) -> None:
    """A valid rnn weight file plus a 64 MiB-of-zeros member, deflated."""
    save_weights(path, "rnn", _params())
    header, nbytes = _npy_bytes((nbytes_rows := BOMB // 8,))
    assert nbytes_rows * 8 == BOMB
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(member + ".npy", "w", force_zip64=True) as fh:
            fh.write(header)
            chunk = bytes(2**20)
            for _ in range(BOMB // len(chunk)):
                fh.write(chunk)


def test_zip_bomb_unused_member_is_never_inflated(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    _bomb_npz(path, "unused_member")
    assert path.stat().st_size < 2**20  # the bomb is small on disk
    tracemalloc.start()
    try:
        tf = open_tensor_file(path)
        assert tf.shape("unused_member") == (BOMB // 8,)  # listed from its header alone
        p = load_weights_with_extra_ok(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BOMB // 4, peak  # bound: a quarter of the inflated member
    assert np.array_equal(p["W_hh"], _params()["W_hh"])


def load_weights_with_extra_ok(path: Path) -> dict[str, np.ndarray]:
    """Read the rnn tensors by name through the lazy mapping (the extra member stays unread)."""
    lazy = open_tensor_file(path).lazy()
    return {"W_hh": lazy["weight_hh_l0"]}


def test_zip_bomb_used_member_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.npz"
    _bomb_npz(path, "weight_big")
    monkeypatch.setattr(tensorfile, "MAX_TENSOR_BYTES", BOMB // 2)
    tracemalloc.start()
    try:
        with pytest.raises(WeightsError, match=r"weight_big declares \d+ bytes uncompressed"):
            open_tensor_file(path).read("weight_big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BOMB // 4, peak


def test_load_weights_refuses_extra_bomb_member_without_reading_it(tmp_path: Path) -> None:
    # load_weights names unknown tensors rather than reading them: the bomb is listed, not read
    path = tmp_path / "w.npz"
    _bomb_npz(path, "bomb")
    tracemalloc.start()
    try:
        with pytest.raises(WeightsError, match="extra tensors bomb not used by rnn"):
            load_weights(path, "rnn")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BOMB // 4, peak


def test_npy_header_claiming_more_than_the_member_holds(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    header, _ = _npy_bytes((10**12,))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("weight_hh_l0.npy", header + bytes(64))
    with pytest.raises(WeightsError, match=r"claims shape \(1000000000000,\).*archive is corrupt"):
        open_tensor_file(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_up_front(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer appears: the check must come first.
    for name, call, err in (
        ("w.safetensors", lambda p: load_weights(p, "rnn"), WeightsError),
        ("w.npz", lambda p: load_weights(p, "rnn"), WeightsError),
        ("x.npy", load_inputs, InputsError),
    ):
        fifo = tmp_path / name
        os.mkfifo(fifo)
        with pytest.raises(err, match="not a regular file"):
            call(fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_device_is_refused_up_front(tmp_path: Path) -> None:
    for name, call, err in (
        ("w.npz", lambda p: load_weights(p, "rnn"), WeightsError),
        ("x.npy", load_inputs, InputsError),
    ):
        link = tmp_path / name
        link.symlink_to("/dev/zero")
        with pytest.raises(err, match="not a regular file"):
            call(link)


def test_file_size_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(path, "rnn", _params())
    monkeypatch.setattr(tensorfile, "MAX_FILE_BYTES", 100)
    with pytest.raises(WeightsError, match=r"bytes is above the 0 GiB limit"):
        load_weights(path, "rnn")


def test_symlink_loop_is_not_called_missing(tmp_path: Path) -> None:
    loop = tmp_path / "w.npz"
    loop.symlink_to(tmp_path / "w.npz")
    with pytest.raises(WeightsError, match="cannot be read"):
        load_weights(loop, "rnn")


def test_huge_npy_header_is_not_called_pickled(tmp_path: Path) -> None:
    # issue 13: a 60 kB .npy header was reported as "pickled data"
    path = tmp_path / "x.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (1, 1, 1), "pad": "x" * 60_000}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_2_0(fh, header)  # type: ignore[arg-type]
        fh.write(bytes(8))
    with pytest.raises(InputsError) as info:
        load_inputs(path)
    assert "header is longer than NumPy reads safely" in str(info.value)
    assert "pickle" not in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_every_reader_checks_its_file_with_the_one_helper(tmp_path: Path) -> None:
    # Weights, results, configs and cell files share tensorfile.check_regular_file: the same
    # three refusals, each one line naming the file, with the reader's error class and words.
    from gradflow.analysis.config import read_toml
    from gradflow.cells.spec import load_cell_file
    from gradflow.errors import ConfigError, EquationError, UsageError
    from gradflow.results import load_result

    readers = (
        (lambda p: load_weights(p, "rnn"), WeightsError, ".npz", "file", ""),
        (load_result, UsageError, ".json", "file", " (a result must be a JSON file)"),
        (read_toml, ConfigError, ".toml", "config file", " (a config must be a TOML file)"),
        (load_cell_file, EquationError, ".toml", "cell file", " (a cell file must be a TOML file)"),
    )
    for read, err, suffix, what, note in readers:
        missing, fifo, loop = (tmp_path / f"{name}{suffix}" for name in ("missing", "f", "loop"))
        if not fifo.exists():
            os.mkfifo(fifo)
            loop.symlink_to(loop)
        with pytest.raises(err) as info:
            read(missing)
        assert str(info.value) == f"{missing}: no such {what}"
        with pytest.raises(err) as info:
            read(fifo)  # never blocks: refused before it is opened
        assert str(info.value) == f"{fifo}: not a regular file{note}"
        with pytest.raises(err) as info:
            read(loop)  # a symlink loop is unreadable, not missing
        read_words = "cannot be read" if what == "file" else f"cannot read the {what}"
        assert str(info.value).startswith(f"{loop}: {read_words} (")
        assert "\n" not in str(info.value) and issubclass(err, UsageError)
