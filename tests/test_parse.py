"""User-defined cells: the equation grammar, every rejection, the TOML loader, the CLI.

The fuzz properties (hypothesis) feed random text, random token soups built from names,
operators, function names, dunder names and numbers, random expressions from a small grammar
(mostly valid, with attributes, subscripts, calls and unknown functions mixed in), random
names, random bytes, and truncated or mutated valid TOML files to ``define_cell`` /
``load_cell_file``: each must return a Cell (whose Jacobian then derives) or raise a
GradflowError, never anything else. Each property runs ``FUZZ_EXAMPLES`` = 300 examples
(6 properties: 1,800 in all, a few seconds). A one-off run of about 115,000 examples of the
same strategies found nothing further.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
import sympy as sp
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradflow.cells import Affine, Cell, Elementwise, define_cell, load_cell_file
from gradflow.cells.functions import FUNCTIONS, relu, sigmoid
from gradflow.cli import cli
from gradflow.errors import CellError, EquationError, GradflowError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cells"
FUZZ_EXAMPLES = 300
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
AFFINE = "W @ x + U @ h + b"


def v(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def elementwise(text: str, parameters: tuple[str, ...] = ("alpha",)) -> sp.Expr:
    """The SymPy expression the parser builds for ``h_new = text`` (after ``a`` affine)."""
    uses_alpha = "alpha" in text
    cell = define_cell(
        "t", ["h"], {"a": AFFINE, "h_new": text}, parameters=parameters if uses_alpha else ()
    )
    node = cell.node_map["h_new"]
    assert isinstance(node, Elementwise)
    return node.expr


def reject(text: str, **kw) -> str:
    with pytest.raises(EquationError) as info:
        define_cell("t", ["h"], {"a": AFFINE, "h_new": text}, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# -- accepted grammar ----------------------------------------------------------------------
a, h, alpha = v("a"), v("h"), v("alpha")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tanh(a)", sp.tanh(a)),
        ("sigmoid(a)", sigmoid(a)),
        ("relu(a)", relu(a)),
        ("(1 - alpha) * h + alpha * tanh(a)", (1 - alpha) * h + alpha * sp.tanh(a)),
        ("a - h - 2", a - h - 2),
        ("a / h / 2", a / h / 2),
        ("-a", -a),
        ("+a", a),
        ("- - a", a),
        ("h ** 2", h**2),
        ("h ** -2", h**-2),
        ("h ** 2.0", h**2),  # an integral float exponent is an integer
        ("h ** 0.5", sp.sqrt(h)),  # exact decimal
        ("h ** +8", h**8),
        ("0.25 * a", sp.Float(0.25) * a),
        ("1e3 * a", 1000 * a),
        (
            "abs(a) + exp(h) + log(1 + h**2) + sqrt(1 + a**2) + sin(a) * cos(h)",
            sp.Abs(a) + sp.exp(h) + sp.log(1 + h**2) + sp.sqrt(1 + a**2) + sp.sin(a) * sp.cos(h),
        ),
        ("softplus(a)", FUNCTIONS["softplus"](a)),
        ("((a))", a),
        ("(" * 150 + "a" + ")" * 150, a),  # parentheses add no nesting
        (" tanh( a )  ", sp.tanh(a)),
        ("+".join(["a"] * 500), 500 * a),  # long flat sums are fine, only nesting is capped
        ("a" + "*h" * 300, a * h**300),
    ],
)
def test_elementwise_grammar(text: str, expected: sp.Expr) -> None:
    assert sp.simplify(elementwise(text) - expected) == 0


def test_affine_lines() -> None:
    cell = define_cell(
        "t",
        ["h"],
        [
            ("a", "W @ x + U @ h + b1 + b2"),
            ("g", "tanh(a)"),
            ("a2", "(V @ g) + c"),
            ("h_new", "a2"),
        ],
    )
    assert cell.node_map["a"] == Affine("a", (("W", "x"), ("U", "h")), ("b1", "b2"))
    assert cell.node_map["a2"] == Affine("a2", (("V", "g"),), ("c",))
    kinds = {p.name: (p.kind, p.shape) for p in cell.parameters}
    assert kinds == {
        "W": ("weight", ("n", "d")),
        "U": ("weight", ("n", "n")),
        "b1": ("bias", ("n",)),
        "b2": ("bias", ("n",)),
        "V": ("weight", ("n", "n")),
        "c": ("bias", ("n",)),
    }


def test_define_cell_options_and_default_update() -> None:
    cell = define_cell(
        "leaky",
        "h",
        {"a": AFFINE, "h_new": "(1 - alpha)*h + alpha*tanh(a)"},
        reference="ref",
        parameters=["alpha"],
        description="desc",
        convention="conv",
    )
    assert cell.update == (("h", "h_new"),) and cell.state == ("h",)
    assert (cell.reference, cell.description, cell.convention) == ("ref", "desc", "conv")
    assert {p.name: p.kind for p in cell.parameters}["alpha"] == "vector"
    other = define_cell(
        "two",
        ["h", "c"],
        {"a": "W @ u + U @ h + b", "c2": "c + tanh(a)", "h2": "tanh(c2)"},
        input="u",
        update={"h": "h2", "c": "c2"},
    )
    assert other.input == "u" and dict(other.update) == {"h": "h2", "c": "c2"}
    assert other.parameter_count(4, 3) == 4 * 3 + 4 * 4 + 4


def test_define_cell_accepts_sympy_expressions() -> None:
    h_sym = sp.Symbol("h")  # no assumptions: the cell makes every symbol real
    cell = define_cell(
        "s",
        ["h"],
        {"a": AFFINE, "h_new": (1 - v("alpha")) * h_sym + v("alpha") * sp.tanh(sp.Symbol("a"))},
        parameters=["alpha"],
    )
    text = define_cell(
        "s2", ["h"], {"a": AFFINE, "h_new": "(1 - alpha)*h + alpha*tanh(a)"}, parameters=["alpha"]
    )
    assert str(cell.jacobian()) == str(text.jacobian())


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (sp.Function("foo")(v("a")), "unknown function 'foo'"),
        (sp.Symbol("x.__class__"), "'x.__class__' is not a plain identifier"),
        (sp.Symbol("_h"), "may not start with '_'"),
        (sp.Integral(v("a"), v("h")), "Integral is not supported"),
        (v("a") / (v("h") - v("h")), "not finite"),
        (v("q"), "undefined symbol 'q'"),
        (v("W") * v("a"), "'W' is a weight of an affine line"),
    ],
)
def test_sympy_expressions_are_checked(expr: sp.Expr, message: str) -> None:
    with pytest.raises(EquationError, match="equation 'h_new': .*" + re.escape(message)):
        define_cell("s", ["h"], {"a": AFFINE, "h_new": expr})


# -- rejections ----------------------------------------------------------------------------
KNOWN = "abs, clip, cos, exp, hard_sigmoid, log, max, relu, sigmoid, sin, softplus, sqrt, tanh"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('true')", "attribute access ('.') is not allowed"),
        ("__import__('os')", "name '__import__' is not allowed (names may not start with '_')"),
        ("().__class__", "attribute access ('.') is not allowed"),
        ("h.__class__", "attribute access ('.') is not allowed"),
        ("exec('1')", f"unknown function 'exec'; known: {KNOWN}"),
        ("eval(h)", "unknown function 'eval'"),
        ("foo(a)", f"unknown function 'foo'; known: {KNOWN}"),
        ("lambda: h", "lambda is not allowed"),
        ("h[0]", "subscripts ('[...]') are not allowed"),
        ("[h for h in a]", "comprehensions are not allowed"),
        ("(h for h in a)", "comprehensions are not allowed"),
        ("tanh(x=a)", "tanh takes exactly one positional argument and no keywords"),
        ("tanh(a, h)", "tanh takes exactly one positional argument"),
        ("tanh(*a)", "tanh takes exactly one positional argument"),
        ("tanh()", "tanh takes exactly one positional argument"),
        ("'s'", "strings are not allowed"),
        ("f'{h}'", "strings are not allowed"),
        ("b'x'", "strings are not allowed"),
        ("True * h", "bool constants are not allowed"),
        ("None", "NoneType constants are not allowed"),
        ("1j * h", "complex constants are not allowed"),
        ("h > a", "comparisons are not allowed"),
        ("h and a", "'and'/'or' are not allowed"),
        ("h if a else a", "conditional expressions are not allowed"),
        ("(y := h)", "':=' is not allowed"),
        ("[h, a]", "lists, tuples, sets and dicts are not allowed"),
        ("h, a", "lists, tuples, sets and dicts are not allowed"),
        ("not h", "operator Not is not allowed"),
        ("~h", "operator Invert is not allowed"),
        ("h % 2", "operator Mod is not allowed"),
        ("h // 2", "operator FloorDiv is not allowed"),
        ("h ** 9", "exponent 9 is too large (at most 8 in size)"),
        ("h ** -8.5", "exponent -8.5 is too large"),
        ("h ** a", "the exponent of '**' must be a number, e.g. h**2"),
        ("h ** (1 + 1)", "the exponent of '**' must be a number"),
        ("h ** None", "the exponent of '**' must be a number"),
        ("2 ** h", "the exponent of '**' must be a number"),
        ("(-8) ** 0.5", "a negative number to a fractional power is not real"),
        ("1e13 * h", "number 1e+13 is too large (at most 1e+12 in size)"),
        ("1e400 * h", "number inf is too large"),
        ("1" * 400 + " * h", "number 11111111... (400 digits) is too large"),
        ("h ** " + "9" * 30, "exponent 99999999... (30 digits) is too large"),
        ("h ** 1e400", "exponent inf is too large"),
        ("a + 1/0", "not finite (division by zero or log(0)?)"),
        ("a + log(0)", "not finite"),
        ("a + 1/(h - h)", "not finite"),
        ("a + sqrt(-1)", "not real"),
        ("a + log(-2)", "not real"),
        (
            "(((((((((9*h)**8)**8)**8)**8)**8)**8)**8)**8)",
            "a constant in the expression grows too large",
        ),
        # issue 13: constants whose sign SymPy would decide at unbounded precision
        (
            "h * exp(exp(exp(exp(exp(100)))))**0.5",
            "a constant in the expression grows too large (at most 1e+100 in size)",
        ),
        ("h * exp(exp(6))", "a constant in the expression grows too large"),
        ("h * sin(exp(50))", "the argument of sin is too large to evaluate (at most 1e+06"),
        ("h * (-exp(2))**0.5", "a negative number to a fractional power is not real"),
        ("h * log(-exp(2))", "not real"),
        ("-" * 100 + "h", "nested too deeply (more than 50 levels)"),
        ("tanh(" * 60 + "h" + ")" * 60, "nested too deeply"),
        ("h" + "+h" * 1000, "is 2001 characters long (at most 2000)"),
        ("\u210e + a", "only ASCII characters are allowed"),  # NFKC would turn it into 'h'
        ("a +", "not a valid expression (invalid syntax): 'a +'"),
        ("a\x00", "not a valid expression"),
        ("", "not a valid expression"),
        ("h = 1", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("tanh(W @ h)", "'@' may only appear in an affine line"),
        ("W @ h * 2", "'@' may only appear in an affine line"),
        ("q + a", "undefined symbol 'q' (vector parameters must be declared in parameters"),
        ("alpha * a", "undefined symbol 'alpha'"),
        ("a + hh", "undefined symbol 'hh'; did you mean 'h'?"),
        ("tanh(x)", "the input 'x' has size d; it may only enter an affine line as WEIGHT @ x"),
        ("W * a", "'W' is a weight of an affine line and cannot appear in an elementwise line"),
        ("b + a", "'b' is a bias of an affine line"),
        ("tanh + a", "'tanh' is a function; call it like tanh(a)"),
        ("lambda_ + a", "undefined symbol 'lambda_'"),
        ("_x + a", "name '_x' is not allowed (names may not start with '_')"),
        ("xp + a", "symbol 'xp' is reserved for generated code"),
    ],
)
def test_rejected_expressions(text: str, message: str) -> None:
    msg = reject(text)
    assert msg.startswith("cell 't': equation 'h_new': ")
    assert message in msg


@pytest.mark.parametrize(
    ("equations", "kw", "message"),
    [
        (
            {"a": "W @ x - U @ h", "h_new": "a"},
            {},
            "equation 'a': an affine line may only add terms with '+'",
        ),
        (
            {"a": "W @ (x + h)", "h_new": "a"},
            {},
            "equation 'a': each '@' term must be WEIGHT @ VECTOR with two names, got 'W @ (x + h)'",
        ),
        ({"a": "W @ x @ h", "h_new": "a"}, {}, "each '@' term must be WEIGHT @ VECTOR"),
        ({"a": "W.T @ x", "h_new": "a"}, {}, "each '@' term must be WEIGHT @ VECTOR"),
        ({"a": "W @ x + 2 * b", "h_new": "a"}, {}, "got term '2 * b'"),
        ({"a": "W @ x + h", "h_new": "a"}, {}, "'h' is a vector; an affine line adds only"),
        ({"a": "h @ x", "h_new": "a"}, {}, "equation 'a': 'h' is a vector, not a weight"),
        ({"a": "W @ q", "h_new": "a"}, {}, "equation 'a': undefined symbol 'q'"),
        (
            {"a": "W @ g", "g": "tanh(h)", "h_new": "a"},
            {},
            "equation 'a': 'g' is used before it is defined (equations run in order; move 'g' "
            "above this line)",
        ),
        (
            {"a": "W @ x + b", "c": "V @ b", "h_new": "a"},
            {},
            "equation 'c': 'b' is a parameter; the right side of '@' must be the input",
        ),
        (
            {"a": "W @ x + W @ h", "h_new": "a"},
            {},
            "weight 'W' multiplies vectors of size n and d; use two weights",
        ),
        (
            {"a": "W @ x + b", "c": "b @ h", "h_new": "a"},
            {},
            "equation 'c': 'b' is used both as bias and weight",
        ),
        (
            {"a": "W @ x + alpha", "h_new": "alpha * a"},
            {"parameters": ["alpha"]},
            "'alpha' is declared in parameters = [...] (a vector parameter) but used as a bias",
        ),
        (
            {"a": "W @ x + g", "g": "tanh(h)", "h_new": "a"},
            {},
            "'g' names an equation, so it cannot also be a bias",
        ),
        ({"a": "W @ x", "a ": "h"}, {}, "equation 'a ': node 'a ' is not a plain identifier"),
        ([("a", "W @ x"), ("a", "tanh(h)")], {}, "equation 'a': 'a' is defined twice"),
        (
            {"a": "W @ x", "W": "tanh(a)", "h_new": "W"},
            {},
            "equation 'a': 'W' names an equation, so it cannot also be a weight",
        ),
        ({"h": "tanh(h)"}, {}, "equation 'h': 'h' is defined twice"),
        ({"x": "tanh(h)", "h_new": "x"}, {}, "equation 'x': 'x' is defined twice"),
        (
            {"alpha": "tanh(h)", "h_new": "alpha"},
            {"parameters": ["alpha"]},
            "equation 'alpha': 'alpha' is defined twice",
        ),
        ({"exp": "tanh(h)", "h_new": "exp"}, {}, "'exp' is a function; it cannot name a node"),
        ({"lambda": "tanh(h)", "h_new": "h"}, {}, "node 'lambda' is not allowed (keyword"),
        ({"xp": "tanh(h)", "h_new": "h"}, {}, "node 'xp' is reserved for generated code"),
        ({"a" * 33: "tanh(h)", "h_new": "h"}, {}, "longer than 32 characters"),
        ({"h_new": 3}, {}, "equation 'h_new': must be a string (or a SymPy expression), got int"),
        (
            {"g": "tanh(h)"},
            {},
            "update: no update for state 'h': add h = \"<equation>\" under "
            "[update] (or define an equation named h_new)",
        ),
        (
            {"h_new": "tanh(h)"},
            {"parameters": ["beta"]},
            "parameters: 'beta' is declared but not used in any elementwise line",
        ),
        (
            {"h_new": "tanh(h)"},
            {"update": {"h": "h_nw"}},
            "update 'h': 'h_nw' is not an equation; did you mean 'h_new'?",
        ),
        (
            {"h_new": "tanh(h)"},
            {"update": {"h": "h_new", "c": "h_new"}},
            "update 'c': not a state vector (state: h)",
        ),
        ({"h_new": "tanh(h)"}, {"update": {"h": "h"}}, "update 'h': 'h' is not an equation"),
        ({"h_new": "tanh(h)"}, {"update": "h_new"}, "update must be a table (dict)"),
        ({}, {}, "equations must define 1 to 200 nodes, got 0"),
        ({f"n{k}": "h" for k in range(201)}, {}, "equations must define 1 to 200 nodes, got 201"),
        ({"h_new": "tanh(h)"}, {"input": "h"}, "state: 'h' is defined twice"),
        ({"h_new": "tanh(h)"}, {"input": "_x"}, "input: name '_x' is not allowed"),
        ({"h_new": "tanh(h)"}, {"parameters": "alpha"}, "'alpha' is declared but not used"),
        ({"h_new": "tanh(h)"}, {"parameters": 3}, "parameters must be a list of strings, got int"),
        ({"h_new": "tanh(h)"}, {"reference": 3}, "reference must be a string"),
    ],
)
def test_rejected_definitions(equations, kw, message: str) -> None:
    with pytest.raises(EquationError) as info:
        define_cell("t", ["h"], equations, **kw)
    assert message in str(info.value)
    assert str(info.value).startswith("cell 't': ")


@pytest.mark.parametrize(
    ("name", "state", "message"),
    [
        ("lstm", ["h"], "name 'lstm' is a catalogue cell; choose another name"),
        ("a b", ["h"], "cell name 'a b' is not kebab-case (lower-case letters and digits"),
        ("", ["h"], "cell name '' is not kebab-case"),
        (None, ["h"], "cell name None is not kebab-case"),
        ("Leaky_RNN", ["h"], "cell name 'Leaky_RNN' is not kebab-case"),
        ("leaky-", ["h"], "cell name 'leaky-' is not kebab-case"),
        ("t", [], "cell 't' has no state vectors"),
        ("t", [3], "state must be a list of strings, got list"),
        ("t", None, "state must be a list of strings, got NoneType"),
        ("t", ["h", "h"], "state: 'h' is defined twice"),
        ("t", ["h.c"], "state: state 'h.c' is not a plain identifier"),
        ("t", [f"s{k}" for k in range(9)], "state lists 9 names (at most 8)"),
    ],
)
def test_rejected_names_and_states(name, state, message: str) -> None:
    with pytest.raises(EquationError) as info:
        define_cell(name, state, {"h_new": "h"})
    assert message in str(info.value)


def test_cell_errors_are_prefixed() -> None:
    # An empty state passes the parser's checks and is refused by Cell itself: the message
    # still names the definition.
    with pytest.raises(EquationError, match=r"^cell 't': cell 't' has no state vectors$"):
        define_cell("t", [], {"g": "W @ x"})
    assert issubclass(EquationError, CellError)


# -- TOML files ----------------------------------------------------------------------------
GOOD = """name = "leaky"
state = ["h"]
parameters = ["alpha"]

[equations]
a = "W @ x + U @ h + b"
h_new = "(1 - alpha) * h + alpha * tanh(a)"

[update]
h = "h_new"
"""


def write(tmp_path: Path, text: str | bytes, name: str = "cell.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_load_good_file(tmp_path: Path) -> None:
    cell = load_cell_file(write(tmp_path, GOOD))
    assert isinstance(cell, Cell) and cell.name == "leaky"
    assert str(cell.jacobian()) == (
        "dh_t/dh_{t-1} = diag(1 - alpha) + diag(alpha*(1 - tanh(a)**2)) @ U"
    )


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    text = GOOD.replace('name = "leaky"\n', "")
    assert load_cell_file(write(tmp_path, text, "my-cell.toml")).name == "my-cell"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_example_files_load(path: Path) -> None:
    cell = load_cell_file(path)
    assert cell.name == path.stem and cell.reference
    assert not cell.jacobian().additive().is_zero()  # both examples have a leak path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("tanh(a)", "__import__('os')"),
            ":7: equation 'h_new': name '__import__' is not allowed",
        ),
        (GOOD.replace("W @ x", "W @ q"), ":6: equation 'a': undefined symbol 'q'"),
        (GOOD.replace('h = "h_new"', 'h = "h_nw"'), ":10: update 'h': 'h_nw' is not an equation"),
        (GOOD.replace('state = ["h"]', 'state = "h"'), ":2: state must be a list of strings"),
        (
            GOOD.replace('parameters = ["alpha"]', 'parameters = ["alpha", "beta"]'),
            ":3: parameters: 'beta' is declared but not used",
        ),
        (GOOD.replace('name = "leaky"', 'name = "gru"'), ":1: name 'gru' is a catalogue cell"),
        (GOOD + "\n[foo]\nk = 1\n", ":12: key 'foo': unknown key; allowed: name, state"),
        (GOOD + "\nfoo = 1\n", ":12: update 'foo': not a state vector (state: h)"),
        ("colour = 1\n" + GOOD, ":1: key 'colour': unknown key"),
        (GOOD.replace('a = "W', '"a" = "W').replace("@ x", "@ y"), ":6: equation 'a': undefined"),
        (
            GOOD.replace("[equations]\n", "[equations]\n'x.__class__' = \"h\"\n"),
            ":6: equation 'x.__class__': node 'x.__class__' is not a plain identifier",
        ),
        (GOOD.replace('h_new = "(1', "h_new = 3 #"), ":7: equation 'h_new': must be a string"),
        (
            GOOD.replace("[update]", "[equations.sub]\nk = 1\n[update]"),
            ": equation 'sub': must be a string (or a SymPy expression), got dict",
        ),
        (GOOD.replace('state = ["h"]', 'state = ["h"\n'), ": not valid TOML: "),
        (GOOD.replace('state = ["h"]', ""), ": missing 'state'"),
        ('name = "a"\nstate = ["h"]\n', ": missing 'equations'"),
        ("", ": missing 'state'"),
        (
            GOOD.replace('[update]\nh = "h_new"\n', "[update]\n"),
            ": update: no update for state 'h'",
        ),
        (
            'update = "h_new"\n' + GOOD.replace('[update]\nh = "h_new"\n', ""),
            ":1: update must be a table (dict)",
        ),
        ("a = " + "[" * 3000 + "]" * 3000 + "\n", ": not valid TOML: nested too deeply"),
    ],
)
def test_file_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(EquationError) as info:
        load_cell_file(path)
    msg = str(info.value)
    assert msg.startswith(str(path))
    assert "\n" not in msg
    assert message in msg, msg


def test_file_read_errors(tmp_path: Path) -> None:
    with pytest.raises(EquationError, match="nope.toml: no such cell file$"):
        load_cell_file(tmp_path / "nope.toml")
    with pytest.raises(EquationError, match="cannot read the cell file"):
        load_cell_file(tmp_path)
    with pytest.raises(EquationError, match=r"bin.toml: not UTF-8 text \(byte 11\)"):
        load_cell_file(write(tmp_path, b'name = "a"\n\xff\xfe', "bin.toml"))
    with pytest.raises(EquationError, match="larger than 1000000 bytes"):
        load_cell_file(write(tmp_path, b"#" * 1_000_001, "big.toml"))
    bom = write(tmp_path, "\ufeff" + GOOD, "bom.toml")
    assert load_cell_file(bom).name == "leaky"


# -- the command line -----------------------------------------------------------------------
def test_cli_derive_cell_file() -> None:
    result = CliRunner().invoke(cli, ["derive", "--cell-file", str(EXAMPLES / "leaky-rnn.toml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("dh_t/dh_{t-1} = diag(1 - alpha) + diag(alpha*(1 - g**2)) @ U")
    result = CliRunner().invoke(
        cli, ["derive", "--cell-file", str(EXAMPLES / "janet-example.toml"), "--latex"]
    )
    assert result.exit_code == 0 and r"\operatorname{diag}" in result.output


MALICIOUS = [
    "__import__('os').system('touch {marker}')",
    "exec(\"open('{marker}', 'w')\")",
    "eval(\"__import__('os').system('touch {marker}')\")",
    "().__class__.__base__.__subclasses__()",
    "x.__class__",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "[c for c in ().__class__.__bases__]",
    "getattr(h, '__class__')",
    "open('{marker}', 'w').write('x')",
]


@pytest.mark.parametrize("payload", MALICIOUS)
def test_cli_rejects_malicious_files(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    body = payload.format(marker=marker).replace("\\", "\\\\").replace('"', '\\"')
    path = write(
        tmp_path,
        GOOD.replace('"(1 - alpha) * h + alpha * tanh(a)"', f'"{body}"').replace(
            'parameters = ["alpha"]\n', ""
        ),
    )
    result = CliRunner().invoke(cli, ["derive", "--cell-file", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}:6: equation 'h_new': ")
    assert "Traceback" not in result.output and result.stdout == ""
    assert not marker.exists()


def test_cli_rejects_malicious_names(tmp_path: Path) -> None:
    text = GOOD.replace('state = ["h"]', 'state = ["x.__class__"]')
    result = CliRunner().invoke(cli, ["derive", "--cell-file", str(write(tmp_path, text))])
    assert result.exit_code == 2
    assert "state: state 'x.__class__' is not a plain identifier" in result.stderr
    result = CliRunner().invoke(cli, ["derive", "--cell-file", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "no such cell file" in result.stderr


def test_cli_cell_and_file_conflict(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = CliRunner().invoke(cli, ["derive", "rnn", "--cell-file", str(path)])
    assert result.exit_code == 2 and "not both" in result.output


# -- fuzzing --------------------------------------------------------------------------------
TOKENS = [
    "h",
    "x",
    "a",
    "alpha",
    "W",
    "U",
    "b",
    "q",
    "h_new",
    "c",
    "+",
    "-",
    "*",
    "/",
    "**",
    "@",
    "%",
    "(",
    ")",
    "(",
    ")",
    ",",
    ".",
    "[",
    "]",
    ":",
    "=",
    "'",
    '"',
    "lambda",
    "if",
    "else",
    "for",
    "in",
    "not",
    "and",
    "True",
    "None",
    "__class__",
    "__import__",
    "__globals__",
    "_x",
    "__",
    "exec",
    "eval",
    "getattr",
    "open",
    "0",
    "1",
    "2",
    "8",
    "9",
    "0.5",
    "-1",
    "1e308",
    "1e400",
    "99999999999999999",
    "9" * 400,
    "1j",
    "'os'",
    "\\",
    "\n",
    "\t",
    "#",
    *FUNCTIONS,
]
token_soup = st.lists(
    st.tuples(st.sampled_from(TOKENS), st.sampled_from([" ", ""])), min_size=1, max_size=40
).map(lambda parts: "".join(tok + sep for tok, sep in parts))


LEAVES = [
    "h",
    "a",
    "alpha",
    "c",
    "x",
    "W",
    "b",
    "q",
    "__class__",
    "_x",
    "0",
    "1",
    "2",
    "0.5",
    "1e12",
    "1e13",
    "-1",
    "8",
    "3.25",
    "1.5e-3",
    "9" * 400,
]
grammar = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "**", "@", "%"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from([*FUNCTIONS, "exec", "__import__", "foo"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        inner.map(lambda e: f"-{e}"),
        st.tuples(inner, st.sampled_from([".__class__", "[0]", "(1)", " if h else a"])).map(
            "".join
        ),
    ),
    max_leaves=12,
)


def _define_or_refuse(expr: str) -> None:
    try:
        cell = define_cell(
            "fuzz",
            ["h", "c"],
            {"a": AFFINE, "e": expr, "h_new": "alpha * h + e", "c_new": "c * e"},
            parameters=["alpha"],
        )
    except GradflowError as err:
        assert "\n" not in str(err)
        return
    cell.jacobian()  # a cell the parser accepts must derive


@FUZZ
@given(st.text(max_size=120))
def test_fuzz_random_text(text: str) -> None:
    _define_or_refuse(text)


@FUZZ
@given(token_soup)
def test_fuzz_token_soup(text: str) -> None:
    _define_or_refuse(text)


@FUZZ
@given(grammar)
def test_fuzz_grammar(text: str) -> None:
    _define_or_refuse(text)


@FUZZ
@given(st.text(max_size=20), st.lists(st.text(max_size=8), max_size=3))
def test_fuzz_names(name: str, state: list[str]) -> None:
    try:
        define_cell(name, state, {name or "n": "h", **{s: "1" for s in state}})
    except GradflowError:
        pass


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_file_bytes(fuzz_dir: Path, data: bytes) -> None:
    try:
        load_cell_file(write(fuzz_dir, data))
    except GradflowError as err:
        assert "\n" not in str(err)


VALID_FILES = [GOOD.encode()] + [p.read_bytes() for p in sorted(EXAMPLES.glob("*.toml"))]
PRINTABLE = string.printable.encode()


@FUZZ
@given(
    source=st.sampled_from(VALID_FILES),
    cut=st.floats(0.0, 1.0),
    edits=st.lists(st.tuples(st.floats(0.0, 1.0), st.sampled_from(list(PRINTABLE))), max_size=3),
)
def test_fuzz_truncated_and_mutated_files(
    fuzz_dir: Path, source: bytes, cut: float, edits: list[tuple[float, int]]
) -> None:
    data = bytearray(source[: int(len(source) * cut)] if cut < 0.9 else source)
    for where, byte in edits:
        if data:
            data[min(int(where * len(data)), len(data) - 1)] = byte
    try:
        cell = load_cell_file(write(fuzz_dir, bytes(data)))
    except GradflowError as err:
        assert "\n" not in str(err)
    else:
        cell.jacobian()


# -- docs/bad-inputs.md, section "Equation files" ------------------------------------------
BASE = GOOD.replace('parameters = ["alpha"]\n', "").replace(
    '"(1 - alpha) * h + alpha * tanh(a)"', '"tanh(a)"'
)
DOC_CASES: dict[str, str | bytes | None] = {
    "file does not exist": None,
    "not UTF-8 (Latin-1 bytes)": BASE.replace("tanh", "t\u00e4nh").encode("latin-1"),
    "not TOML (unclosed array)": BASE.replace('state = ["h"]', 'state = ["h"'),
    "duplicate equation (TOML itself refuses)": BASE + '\n[equations]\nh_new = "a"\n',
    "unknown top-level key": "colour = 'blue'\n" + BASE,
    "`state` is a string": BASE.replace('state = ["h"]', 'state = "h"'),
    "no `[equations]` table": 'name = "leaky"\nstate = ["h"]\n',
    "cell named like a catalogue cell": BASE.replace('"leaky"', '"lstm"'),
    "`__import__('os').system('rm -rf ~')`": BASE.replace(
        '"tanh(a)"', "\"__import__('os').system('rm -rf ~')\""
    ),
    "`().__class__.__bases__`": BASE.replace('"tanh(a)"', '"().__class__.__bases__"'),
    "`exec('...')`": BASE.replace('"tanh(a)"', "\"exec('1')\""),
    "`(lambda: 1)()`": BASE.replace('"tanh(a)"', '"(lambda: 1)()"'),
    "`h[0]`": BASE.replace('"tanh(a)"', '"h[0]"'),
    "`tanh(x=a)`": BASE.replace('"tanh(a)"', '"tanh(x=a)"'),
    "`'text'`": BASE.replace('"tanh(a)"', "\"'text'\""),
    "unknown function `swish(a)`": BASE.replace('"tanh(a)"', '"swish(a)"'),
    "function name used as a symbol": BASE.replace('"tanh(a)"', '"tanh * a"'),
    "equation named `x.__class__`": BASE.replace('h_new = "tanh(a)"', '"x.__class__" = "tanh(a)"'),
    "undeclared vector parameter": BASE.replace('"tanh(a)"', '"alpha * tanh(a)"'),
    "typo in a name": BASE.replace('"tanh(a)"', '"tanh(aa)"'),
    "node used before its definition": BASE.replace(
        'a = "W @ x + U @ h + b"', 'a = "W @ x + U @ g + b"\ng = "tanh(h)"'
    ),
    "the input used elementwise": BASE.replace('"tanh(a)"', '"tanh(a + x)"'),
    "a weight used elementwise": BASE.replace('"tanh(a)"', '"tanh(W * a)"'),
    "`@` inside an elementwise line": BASE.replace('"tanh(a)"', '"tanh(U @ h)"'),
    "subtraction in an affine line": BASE.replace("W @ x + U @ h", "W @ x - U @ h"),
    "a vector added in an affine line": BASE.replace("+ b", "+ h"),
    "one weight on vectors of size n and d": BASE.replace("U @ h", "W @ h"),
    "exponent too large": BASE.replace('"tanh(a)"', '"a ** 10"'),
    "exponent not a number": BASE.replace('"tanh(a)"', '"a ** h"'),
    "number too large": BASE.replace('"tanh(a)"', '"1e20 * a"'),
    "division by zero": BASE.replace('"tanh(a)"', '"a / 0"'),
    "nesting deeper than 50": BASE.replace('"tanh(a)"', '"' + "-" * 60 + 'a"'),
    "equation longer than 2000 characters": BASE.replace(
        '"tanh(a)"', '"' + "+".join(["a"] * 1001) + '"'
    ),
    "not an expression": BASE.replace('"tanh(a)"', '"a +"'),
    "non-ASCII character": BASE.replace('"tanh(a)"', '"tanh(\u03b1)"'),
    "equation value not a string": BASE.replace('"tanh(a)"', "3"),
    "declared parameter never used": BASE.replace(
        'state = ["h"]', 'state = ["h"]\nparameters = ["beta"]'
    ),
    "no update for a state": BASE.replace('state = ["h"]', 'state = ["h", "c"]'),
    "update names no equation": BASE.replace('h = "h_new"', 'h = "h_nw"'),
    "update of a name that is no state": BASE.replace('h = "h_new"', 'h = "h_new"\nc = "a"'),
    "state named with a leading underscore": BASE.replace('["h"]', '["_h"]'),
}


def doc_section() -> dict[str, str]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md").read_text("utf-8")
    section = text.split("## Equation files", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| (.+?) \| `` (.*) `` \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def doc_message(tmp_path: Path, content: str | bytes | None) -> str:
    path = tmp_path / "cell.toml"
    if content is not None:
        write(tmp_path, content)
    with pytest.raises(EquationError) as info:
        load_cell_file(path)
    return str(info.value).replace(str(path), "cell.toml")


@pytest.mark.parametrize("case", list(DOC_CASES))
def test_bad_inputs_doc_matches_messages(tmp_path: Path, case: str) -> None:
    """Each row of docs/bad-inputs.md "Equation files" is what load_cell_file says."""
    assert doc_section()[case] == doc_message(tmp_path, DOC_CASES[case])


def test_bad_inputs_doc_has_no_stale_rows() -> None:
    assert set(doc_section()) == set(DOC_CASES)


def test_bounded_constants_are_kept_exact() -> None:
    cell = define_cell("t", ["h"], {"h_new": "h * exp(exp(3)) + sqrt(2) * sin(10)"})
    expr = cell.node_map["h_new"].expr
    assert expr.has(sp.exp(sp.exp(3))) and expr.has(sp.sqrt(2))  # exact, not a float


def test_total_equation_size_is_bounded_with_the_line(tmp_path: Path) -> None:
    # issue 13: SymPy builds about a thousand syntax nodes a second; a cell file of under 1 MB
    # with hundreds of 2,000-character equations would take minutes to read.
    from gradflow.cells.spec import MAX_SYNTAX_NODES

    big = " + ".join(f"tanh(h*{k})" for k in range(2, 150))  # ~1,900 characters
    eqs = "\n".join(f'e_{k} = "{big}"' for k in range(40))
    text = f'name = "big"\nstate = ["h"]\n[equations]\n{eqs}\n[update]\nh = "e_39"\n'
    with pytest.raises(EquationError) as info:
        load_cell_file(write(tmp_path, text))
    msg = str(info.value)
    assert re.search(
        rf"cell.toml:\d+: equation 'e_\d+': the equations up to this one hold more "
        rf"than {MAX_SYNTAX_NODES} syntax nodes",
        msg,
    )
    assert "\n" not in msg
