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
