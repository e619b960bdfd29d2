"""Every entry point refuses bad input with one line and a non-zero exit, no traceback.

The table ``CASES`` is the "Command line" section of docs/bad-inputs.md; the last test checks
that the document lists each row with the message it really gets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gradflow.cells import get_cell
from gradflow.cli import cli
from gradflow.weights import save_weights

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md"


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    cell = get_cell("lstm")
    params = {p.name: rng.standard_normal(p.numeric_shape(4, 3)) / 2 for p in cell.parameters}
    save_weights(tmp_path / "w.safetensors", cell, params)
    np.save(tmp_path / "x.npy", rng.standard_normal((6, 2, 3)))
    np.save(tmp_path / "x2d.npy", rng.standard_normal((6, 3)))
    nan = rng.standard_normal((6, 2, 3))
    nan[2, 1, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "d5.npy", rng.standard_normal((6, 2, 5)))
    huge = {
        "W_ih": np.zeros((3, 1)),
        "W_hh": 1e200 * np.eye(3),
        "b_ih": np.ones(3),
        "b_hh": np.zeros(3),
    }
    save_weights(tmp_path / "huge.npz", get_cell("rnn-relu"), huge)
    np.save(tmp_path / "z.npy", np.zeros((5, 1, 1)))
    (tmp_path / "bad.toml").write_text('name = "e"\ncells = ["rnn"]\nhiden_size = 8\n')
    return tmp_path


# (description, argv with {d} for the folder, exit code, message)
CASES = [
    ("unknown cell name", ["derive", "lstmm"], 2, "unknown cell 'lstmm'; did you mean 'lstm'?"),
    (
        "cell given twice",
        ["derive", "rnn", "--cell-file", "{d}/c.toml"],
        2,
        "give either a cell name or --cell-file, not both",
    ),
    (
        "weights for another cell",
        [
            "analyze",
            "--cell",
            "gru",
            "--weights",
            "{d}/w.safetensors",
            "--inputs",
            "{d}/x.npy",
            "--output",
            "{d}/o.json",
        ],
        2,
        "has shape (16, 3); expected (G*n, d) = (12, 3) for gru",
    ),
    (
        "inputs of rank 2",
        [
            "analyze",
            "--cell",
            "lstm",
            "--weights",
            "{d}/w.safetensors",
            "--inputs",
            "{d}/x2d.npy",
            "--output",
            "{d}/o.json",
        ],
        2,
        "(T, B, d)",
    ),
    (
        "inputs with NaN",
        [
            "analyze",
            "--cell",
            "lstm",
            "--weights",
            "{d}/w.safetensors",
            "--inputs",
            "{d}/nan.npy",
            "--output",
            "{d}/o.json",
        ],
        2,
        "non-finite",
    ),
    (
        "inputs of the wrong size d",
        [
            "analyze",
            "--cell",
            "lstm",
            "--weights",
            "{d}/w.safetensors",
            "--inputs",
            "{d}/d5.npy",
            "--output",
            "{d}/o.json",
        ],
        2,
        "inputs have d=5 features (shape (6, 2, 5)) but the weights have input size d=3",
    ),
    (
        "singular-value lag out of range",
        [
            "analyze",
            "--cell",
            "lstm",
            "--weights",
            "{d}/w.safetensors",
            "--inputs",
            "{d}/x.npy",
            "--output",
            "{d}/o.json",
            "--singular-lags",
            "99",
        ],
        2,
        "singular_lags must lie in 1..6; got [99]",
    ),
    (
        "rollout that overflows",
        [
            "analyze",
            "--cell",
            "rnn-relu",
            "--weights",
            "{d}/huge.npz",
            "--inputs",
            "{d}/z.npy",
            "--output",
            "{d}/o.json",
        ],
        1,
        "produced NaN or inf at step 3, sequence 0",
    ),
    (
        "GPU backend without CuPy or a GPU",
        [
            "analyze",
            "--cell",
            "lstm",
            "--weights",
            "{d}/w.safetensors",
            "--inputs",
            "{d}/x.npy",
            "--output",
            "{d}/o.json",
            "--backend",
            "cupy",
        ],
        1,
        "backend 'cupy' needs CuPy and a CUDA GPU",
    ),
    ("config with an unknown key", ["run", "{d}/bad.toml"], 2, "unknown key 'hiden_size'"),
    ("result file that is not JSON", ["plot", "{d}/x.npy"], 1, "not valid JSON"),
]


@pytest.mark.parametrize(("what", "argv", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_no_output(files, what, argv, code, message):
    if what == "GPU backend without CuPy or a GPU":
        from gradflow.backend import cupy_available

        if cupy_available():
            pytest.skip("CuPy and a GPU are available here")
    (files / "c.toml").write_text("")
    args = [a.format(d=files) for a in argv]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert message in lines[0]
    assert "Traceback" not in res.output
    assert not (files / "o.json").exists()  # never a partial output file


def test_debug_shows_the_traceback(files):
    res = CliRunner().invoke(cli, ["--debug", "derive", "lstmm"])
    assert res.exit_code != 0
    assert res.exception is not None and type(res.exception).__name__ == "CellError"


def test_docs_list_every_case_with_its_message():
    text = DOCS.read_text("utf-8")
    section = text.split("## Command line", 1)[1]
    for what, _, code, message in CASES:
        assert f"| {what} |" in section, what
        assert message in section, message
        assert f"| {code} |" in section
