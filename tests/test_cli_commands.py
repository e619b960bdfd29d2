"""What the commands print: derive in text, LaTeX and MathML; inspect on every weights format."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradflow.cli import cli

FORMATS = Path(__file__).resolve().parent / "data" / "formats"
MATHML = "{http://www.w3.org/1998/Math/MathML}"


def run(*argv: str) -> str:
    result = CliRunner().invoke(cli, list(argv))
    assert result.exit_code == 0, result.output
    return result.output


def test_derive_mathml_is_one_complete_xml_math_element_with_its_left_hand_side():
    out = run("derive", "lstm", "--mathml").strip()
    root = ET.fromstring(out)  # an XML parser: named entities such as &InvisibleTimes; fail
    assert root.tag == f"{MATHML}math" and root.get("display") == "block"
    text = "".join(root.itertext())
    assert "\u2202" in text  # the partial-derivative left-hand side
    annotation = root.find(f".//{MATHML}annotation")
    assert annotation is not None and annotation.get("encoding") == "application/x-tex"


def test_derive_explicit_prints_one_short_entry_per_line():
    lines = run("derive", "lstm", "--explicit", "2").splitlines()
    assert lines[0].startswith("J[1,1] = ")
    # 2 units: a 4 x 4 Jacobian; the last line counts the zero entries
    entries = [ln for ln in lines if ln.startswith("J[")]
    zeros = int(lines[-1].split(";")[1].split()[0])
    assert len(entries) + zeros == 16
    assert all(ln.count("J[") == 1 for ln in entries)  # one entry a line, not one row a line


def test_derive_equations_in_text_mode_is_text_and_latex_on_request():
    text = run("derive", "lstm", "--equations")
    assert "\\" not in text.split("\n\n")[0] and "sigmoid" in text
    latex = run("derive", "lstm", "--equations", "--latex")
    assert "\\operatorname" in latex or "\\sigma" in latex or "\\tanh" in latex


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("keras_lstm_stack.keras", ["keras lstm, 2 layer(s)", "n=4, d=3", "n=3, d=4", "head"]),
        ("onnx_lstm_bi.onnx", ["onnx", "lstm", "reverse"]),
        ("onnx_gru_lbr0.onnx", ["gru-reset-before"]),
    ],
)
def test_inspect_describes_the_file_and_the_command_that_analyses_it(name, expect):
    out = run("inspect", str(FORMATS / name))
    for piece in expect:
        assert piece in out, (piece, out)
    assert "gradflow analyze --weights" in out


def test_inspect_refuses_a_missing_file_in_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.fixture
def lstm_files(tmp_path):
    import numpy as np

    from gradflow.cells import get_cell
    from gradflow.weights import save_weights

    rng = np.random.default_rng(0)
    cell = get_cell("lstm")
    params = {p.name: rng.standard_normal(p.numeric_shape(4, 3)) / 2 for p in cell.parameters}
    save_weights(tmp_path / "w.safetensors", cell, params)
    np.save(tmp_path / "x.npy", rng.standard_normal((6, 2, 3)))
    return tmp_path


def _analyze(tmp: Path, *pre: str) -> tuple[int, str]:
    argv = [*pre, "analyze", "--cell", "lstm", "--weights", str(tmp / "w.safetensors")]
    argv += ["--inputs", str(tmp / "x.npy"), "--output", str(tmp / "out.json")]
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, result.output


def test_threads_option_sets_the_blas_threads_of_the_run(lstm_files):
    import json

    code, out = _analyze(lstm_files, "--threads", "2")
    assert code == 0, out
    assert json.loads((lstm_files / "out.json").read_text())["meta"]["threads"] == 2
    code, out = _analyze(lstm_files)  # the next invocation falls back to the size rule
    assert code == 0, out
    assert json.loads((lstm_files / "out.json").read_text())["meta"]["threads"] == 1


def test_force_lifts_the_cost_limit(lstm_files, monkeypatch):
    import gradflow.cost

    monkeypatch.setattr(gradflow.cost, "MAX_FLOPS", 10.0)  # this tiny run is now "too big"
    code, out = _analyze(lstm_files)
    assert code == 2 and "--force" in out and len(out.strip().splitlines()) == 1
    assert not (lstm_files / "out.json").exists()
    code, out = _analyze(lstm_files, "--force")
    assert code == 0, out
    assert (lstm_files / "out.json").is_file()
    assert not gradflow.cost.forced() or _analyze(lstm_files)[0] == 2  # reset per invocation


def test_sweep_workers_share_the_cores_and_inherit_force():
    from gradflow import cost, threads
    from gradflow.analysis.sweep import init_worker

    try:
        init_worker(threads.threads_per_worker(2), True)
        assert threads.blas_threads(4096) == max(1, threads.cores() // 2)
        assert threads.blas_threads(64) == 1  # a cap: small states keep one thread
        assert cost.forced()
    finally:
        threads.set_worker_share(None)
        cost.set_force(False)


def test_long_double_weights_are_one_line_without_warnings(tmp_path):
    import warnings

    import numpy as np

    n, d = 3, 2
    big = np.full((n, d), np.longdouble("1e400"))  # overflows float64
    zeros = {k: np.zeros(s, dtype=np.longdouble) for k, s in (("weight_hh_l0", (n, n)),)}
    bias = {k: np.zeros(n, dtype=np.longdouble) for k in ("bias_ih_l0", "bias_hh_l0")}
    np.savez(tmp_path / "w.npz", weight_ih_l0=big, **zeros, **bias)
    np.save(tmp_path / "x.npy", np.ones((4, 2, d)))
    argv = ["analyze", "--cell", "rnn", "--weights", str(tmp_path / "w.npz")]
    argv += ["--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "o.json")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning before the error fails the test
        result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "weights must be floating point" in result.output
    assert not (tmp_path / "o.json").exists()


def test_claims_command_runs_the_quick_or_full_claims_and_saves_them(tmp_path, monkeypatch):
    # The command's wiring, not the claims (tests/test_claims.py runs those): run_claims is
    # replaced by claim (e) alone, which needs no run.
    import gradflow.analysis.claims as claims_mod
    from gradflow.results import ClaimsResult, load_result

    asked = []

    def fake(quick=True, progress=False):
        asked.append(quick)
        return ClaimsResult(claims=(claims_mod.claim_e(),), quick=quick, run={"total_s": 0.0})

    monkeypatch.setattr(claims_mod, "run_claims", fake)
    out = tmp_path / "c.json"
    result = CliRunner().invoke(cli, ["claims", "--full", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert asked == [False]
    assert "(e) " in result.output and "holds" in result.output
    loaded = load_result(out)
    assert loaded.quick is False and loaded.claim("e").measured["ratio_n64_d16"] == 0.75
    assert (tmp_path / "c.run.json").exists()
    # The default is the report's quick run; a folder as --out is refused before any run.
    result = CliRunner().invoke(cli, ["claims", "-q", "-o", str(tmp_path)])
    assert result.exit_code == 2 and asked == [False] and "is a directory" in result.output
    result = CliRunner().invoke(cli, ["claims", "-q", "-o", str(tmp_path / "q.json")])
    assert result.exit_code == 0 and asked == [False, True] and result.output == ""


def test_report_cells_all_is_every_catalogue_cell_grouped_by_family(monkeypatch, tmp_path):
    from gradflow.analysis.defaults import default_report_config
    from gradflow.cells import CATALOGUE
    from gradflow.cells.catalogue import CLASSIC, FAMILIES
    from gradflow.errors import UsageError

    assert default_report_config().cells == CLASSIC
    every = default_report_config("all").cells
    # Every catalogue cell once, family by family (the report's panels follow this order).
    assert sorted(every) == sorted(CATALOGUE) and len(every) >= 24
    assert list(every) == [name for family in FAMILIES.values() for name in family]
    with pytest.raises(UsageError, match="cells must be one of classic, all"):
        default_report_config("modern")
    # The CLI hands --cells to run_report (the run itself is tests/test_report.py's).
    import gradflow.report as report_mod

    seen = {}

    def fake(out_dir, **kw):
        seen.update(kw)
        raise UsageError("stop here")

    monkeypatch.setattr(report_mod, "run_report", fake)
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "r"), "--cells", "all"])
    assert result.exit_code != 0 and seen["cells"] == "all"


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(2, 130, "interrupted"), (15, 143, "terminated")]
)
def test_an_error_caused_by_a_signal_exits_as_the_signal(monkeypatch, signum, code, word):
    # A signal that lands while a C extension is being imported surfaces as ImportError (from
    # the handler's KeyboardInterrupt), not as KeyboardInterrupt: seen once in CI, matplotlib's
    # backend_agg during a report's build. The exit must still be the signal's, in one line.
    import gradflow.cells
    import gradflow.cli as cli_mod

    class Broken(dict):
        def values(self):
            raise ImportError("initialization failed")

    monkeypatch.setattr(gradflow.cells, "CATALOGUE", Broken())
    monkeypatch.setattr(cli_mod, "interrupted", lambda: signum)
    result = CliRunner().invoke(cli, ["cells"])
    assert result.exit_code == code and result.output.strip().splitlines()[-1] == word
    # Without a signal the same error is a bug, and a traceback (not a signal's exit).
    monkeypatch.setattr(cli_mod, "interrupted", lambda: None)
    result = CliRunner().invoke(cli, ["cells"])
    assert isinstance(result.exception, ImportError)


def _native(tmp: Path, cell_name: str) -> Path:
    import numpy as np

    from gradflow.cells import get_cell
    from gradflow.initialisers import Init, initialise
    from gradflow.weights import save_weights

    rng = np.random.default_rng(1)
    cell = get_cell(cell_name)
    save_weights(tmp / "w.safetensors", cell, initialise(cell, 4, 3, Init(), rng))
    np.save(tmp / "x.npy", rng.standard_normal((30, 2, 3)))
    return tmp


def _analyze_cell(tmp: Path, cell: str, *opts: str) -> tuple[int, str]:
    argv = ["analyze", "--cell", cell, "--weights", str(tmp / "w.safetensors")]
    argv += ["--inputs", str(tmp / "x.npy"), "--output", str(tmp / "out.json"), *opts]
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, result.output


def test_structure_option_picks_the_chain(tmp_path):
    import json

    import numpy as np

    _native(tmp_path, "rglru")  # a diagonal Jacobian: 'auto' takes the structured chain
    runs = {}
    for structure in ("auto", "dense"):
        code, out = _analyze_cell(tmp_path, "rglru", "--structure", structure)
        assert code == 0, out
        runs[structure] = json.loads((tmp_path / "out.json").read_text())
    assert runs["auto"]["meta"]["structure"]["kernel"] != "dense"
    assert runs["dense"]["meta"]["structure"]["kernel"] == "dense"
    # the two chains agree (the structured path is exact: 1e-10 decades, float64 rounding)
    for key in ("log10_spectral_norm", "log10_frobenius_norm"):
        np.testing.assert_allclose(runs["auto"][key], runs["dense"][key], atol=1e-10)
    code, out = _analyze_cell(tmp_path, "rglru", "--structure", "diagonal")
    assert code == 2 and "'diagonal' is not one of 'auto', 'dense'" in out


def test_compiled_options_force_or_require_the_backend(tmp_path):
    import json

    _native(tmp_path, "lstm")
    code, out = _analyze_cell(tmp_path, "lstm", "--no-compiled")
    assert code == 0, out
    assert "compiled" not in json.loads((tmp_path / "out.json").read_text())["meta"]
    # required where the case cannot take it: one line saying why, no output file
    (tmp_path / "out.json").unlink()
    code, out = _analyze_cell(tmp_path, "lstm", "--compiled", "--paths")
    assert code == 2 and len(out.strip().splitlines()) == 1
    assert "the compiled backend needs the default quantities" in out
    assert not (tmp_path / "out.json").exists()


def test_structure_and_compiled_are_refused_for_a_stack(tmp_path):
    import numpy as np

    stacks = Path(__file__).resolve().parent / "data" / "stacks"
    np.save(tmp_path / "x.npy", np.load(stacks / "lstm2_inputs.npy"))
    for opts in (["--structure", "dense"], ["--no-compiled"]):
        argv = ["analyze", "--weights", str(stacks / "lstm2.safetensors")]
        argv += ["--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "o.json")]
        result = CliRunner().invoke(cli, [*argv, *opts])
        assert result.exit_code == 2, result.output
        assert "apply to one-layer models" in result.output
        assert len(result.output.strip().splitlines()) == 1
