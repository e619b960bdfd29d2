"""Every entry point refuses bad input with one line and a non-zero exit, no traceback.

The table ``CASES`` is the "Command line" section of docs/bad-inputs.md; the last test checks
that the document lists each row with the message it really gets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gradflow.cells import get_cell
from gradflow.cli import cli
from gradflow.weights import save_weights

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md"
BASELINE = Path(__file__).resolve().parent / "baseline" / "data"


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
        "--cell gru does not match the file (layer 0: lstm)",
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
    ("result file that is not JSON", ["plot", "{d}/x.npy"], 2, "not valid JSON"),
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


# ---- output files and result files (docs/bad-inputs.md, "Output files and result files") ------

ANALYZE = ["analyze", "--cell", "lstm", "--weights", "{d}/w.safetensors", "--inputs", "{d}/x.npy"]
RUN = ["run", "{d}/ok.toml"]


def _deep(d: Path) -> None:
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)


def _bigint(d: Path) -> None:
    (d / "bigint.json").write_text('{"kind": "sweep", "x": ' + "9" * 100_000 + "}")


def _edited(d: Path) -> None:
    data = json.loads((BASELINE / "experiment.json").read_text("utf-8"))
    del data["cells"]["rnn"]["decay_rate"]["median"]
    (d / "edited.json").write_text(json.dumps(data))


def _edited_sweep(d: Path) -> None:
    (d / "edited-sweep.json").write_text(
        '{"kind": "sweep", "axes": {"sigma_w": [1, 2]}, "points": [{"params": {"sigma_w": 1}}]}'
    )


def _fifo(d: Path) -> None:
    import os

    os.mkfifo(d / "fifo.json")


def _device(d: Path) -> None:
    import os
    import stat

    try:
        os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")


# (description, setup, argv, exit code, message, path that must stay as it was)
OUTPUT_CASES = [
    (
        "analyze --output equal to --inputs",
        None,
        [*ANALYZE, "--output", "{d}/x.npy"],
        1,
        "is also an input of this run",
        "x.npy",
    ),
    (
        "analyze --output equal to --weights",
        None,
        [*ANALYZE, "--output", "{d}/w.safetensors"],
        1,
        "is also an input of this run",
        "w.safetensors",
    ),
    (
        "output over a FIFO",
        _fifo,
        [*ANALYZE, "--output", "{d}/fifo.json"],
        1,
        "is a FIFO; refusing to write over it",
        None,
    ),
    # A private copy of /dev/null: code with the old bug replaces only this one.
    ("output over a device", _device, [*RUN, "--out", "{d}/null"], 1, "is a device", None),
    (
        "output in a folder that does not exist",
        None,
        [*RUN, "--out", "{d}/nonexistent/dir/x.json"],
        1,
        "the folder",
        None,
    ),
    (
        "output below a file",
        None,
        [*RUN, "--out", "{d}/x.npy/x.json"],
        1,
        "is not a folder",
        "x.npy",
    ),
    ("output name with a NUL", None, [*RUN, "--out", "{d}/a\0b.json"], 1, "NUL character", None),
    (
        "config name that is a path",
        None,
        ["run", "{d}/path-name.toml"],
        2,
        "name is a name, not a path",
        None,
    ),
    ("result JSON nested 100,000 deep", _deep, ["plot", "{d}/deep.json"], 2, "nested too", None),
    (
        "result JSON with a 100,000-digit integer",
        _bigint,
        ["plot", "{d}/bigint.json"],
        2,
        "not a usable JSON value",
        None,
    ),
    (
        "hand-edited experiment result",
        _edited,
        ["plot", "{d}/edited.json"],
        2,
        "not a valid experiment result: cells.rnn.decay_rate: missing key 'median'",
        None,
    ),
    (
        "hand-edited sweep result",
        _edited_sweep,
        ["plot", "{d}/edited-sweep.json"],
        2,
        "not a valid sweep result: points.0: missing key 'regime'",
        None,
    ),
]


@pytest.mark.parametrize(
    ("what", "setup", "argv", "code", "message", "keep"),
    OUTPUT_CASES,
    ids=[c[0] for c in OUTPUT_CASES],
)
def test_outputs_go_only_where_asked(files, what, setup, argv, code, message, keep):
    (files / "ok.toml").write_text(
        'name = "ok"\ncells = ["rnn"]\nhidden_size = 2\ninput_size = 1\nsteps = 4\nbatch = 1\n'
        "seeds = 1\n"
    )
    (files / "path-name.toml").write_text('name = "../../outside/x"\ncells = ["rnn"]\n')
    if setup is not None:
        setup(files)
    before = (files / keep).read_bytes() if keep else None
    res = CliRunner().invoke(cli, [a.format(d=files) for a in argv])
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert message in lines[0]
    assert "Traceback" not in res.output
    if keep:
        assert (files / keep).read_bytes() == before  # the input is untouched
    assert not (files / "nonexistent").exists()  # no folder made silently
    assert not list(files.glob(".*.tmp"))  # no temporary file left behind


def test_docs_list_every_output_case():
    section = DOCS.read_text("utf-8").split("## Output files and result files", 1)[1]
    for what, _, _, code, message, _ in OUTPUT_CASES:
        assert f"| {what} | {code} |" in section, what
        assert message in section, message


def test_read_only_folder_is_one_line(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    cfg = tmp_path / "ok.toml"
    cfg.write_text('name = "ok"\ncells = ["rnn"]\nhidden_size = 2\nsteps = 4\nbatch = 1\n')
    res = CliRunner().invoke(cli, ["run", str(cfg), "--out", str(ro / "x.json"), "-q"])
    assert res.exit_code == 1 and "cannot write (Permission denied)" in res.output


# ---- command-line polish (issue 12 item 4) ---------------------------------------------------


def test_debug_works_anywhere_on_the_command_line():
    # Regression: `gradflow derive lstmm --debug` was "No such option: --debug".
    res = CliRunner().invoke(cli, ["derive", "lstmm", "--debug"])
    assert res.exception is not None and type(res.exception).__name__ == "CellError"
    plain = CliRunner().invoke(cli, ["derive", "lstmm"])
    assert plain.exit_code == 2 and "Traceback" not in plain.output


def test_cell_names_are_case_insensitive(files):
    # Regression: `--cell LSTM` found nothing.
    upper = CliRunner().invoke(cli, ["derive", "LSTM"])
    lower = CliRunner().invoke(cli, ["derive", "lstm"])
    assert upper.exit_code == 0 and upper.output == lower.output
    res = CliRunner().invoke(
        cli,
        [
            "analyze",
            "--cell",
            "LSTM",
            "--weights",
            str(files / "w.safetensors"),
            "--inputs",
            str(files / "x.npy"),
            "--output",
            str(files / "o.json"),
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    data = json.loads((files / "o.json").read_text())
    assert data["cell"] == "lstm" and "seconds" not in data["meta"]  # timings live apart
    assert json.loads((files / "o.run.json").read_text())["seconds"] > 0


def test_ctrl_c_exits_130_with_one_line(monkeypatch):
    # Regression: Ctrl-C printed "Aborted!" and exited 1.
    import gradflow.symbolic.jacobian as jacobian

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jacobian, "state_jacobian", interrupted)
    res = CliRunner().invoke(cli, ["derive", "rnn"])
    assert res.exit_code == 130
    assert res.output.strip() == "interrupted"
