"""The cell catalogue: listing, parameter counts, PyTorch layouts and Jacobian structure.

Parameter counts are checked against the formulas in the PyTorch documentation of nn.RNN,
nn.LSTM and nn.GRU (G gate blocks of W_ih (n, d), W_hh (n, n), b_ih, b_hh: G (nd + n^2 + 2n)).
Structural checks compare SymPy expressions exactly (``sympy.simplify(a - b) == 0``).
"""

from __future__ import annotations

import pytest
import sympy as sp
from click.testing import CliRunner

from gradflow.cells import CATALOGUE, Cell, get_cell
from gradflow.cli import cli
from gradflow.errors import CellError

EXPECTED = [
    "rnn",
    "rnn-relu",
    "lstm",
    "lstm-nofg",
    "lstm-peephole",
    "lstm-cifg",
    "lstm-proj",
    "gru",
    "gru-reset-before",
    "mgu",
    "indrnn",
    "minimalrnn",
    "gru-chung",
    "janet",
    "ur-lstm",
    "mingru",
    "minlstm",
    "cornn",
    "cornn-explicit",
    "lem",
    "slstm",
    "rglru",
    "antisymmetric-rnn",
    "lipschitz-rnn",
    "mamba-s6",
]
SIZES = [(1, 1), (3, 2), (8, 5), (64, 32), (128, 17)]


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def same(a: sp.Expr, b: sp.Expr) -> bool:
    return sp.simplify(sp.sympify(a) - sp.sympify(b)) == 0


# -- the catalogue -----------------------------------------------------------------------------
def test_catalogue_lists_every_cell_in_order() -> None:
    assert list(CATALOGUE) == EXPECTED
    for name, cell in CATALOGUE.items():
        assert isinstance(cell, Cell) and cell.name == name
        assert get_cell(name) is cell
        assert cell.reference and cell.description


def test_cells_command_lists_catalogue() -> None:
    result = CliRunner().invoke(cli, ["cells", "-n", "8", "-d", "3"])
    assert result.exit_code == 0, result.output
    for name in EXPECTED:
        assert name in result.output
    # nn.LSTM with n = 8, d = 3: 4 (8*3 + 8*8 + 2*8) = 416 parameters (PyTorch docs formula)
    assert "416" in result.output


def test_get_cell_suggests_close_name() -> None:
    with pytest.raises(CellError, match=r"unknown cell 'lstn'; did you mean 'lstm'\?"):
        get_cell("lstn")
    with pytest.raises(CellError, match="did you mean 'lstm-peephole'"):
        get_cell("lstm-peepole")
    with pytest.raises(CellError, match=r"unknown cell 'zzzzzz' \(known: rnn, rnn-relu"):
        get_cell("zzzzzz")


@pytest.mark.parametrize(("n", "d"), SIZES)
def test_parameter_counts_match_pytorch(n: int, d: int) -> None:
    # PyTorch docs: nn.RNN has W_ih (n, d), W_hh (n, n), b_ih, b_hh; nn.LSTM 4 such blocks,
    # nn.GRU 3.
    block = n * d + n * n + 2 * n
    assert get_cell("rnn").parameter_count(n, d) == block
    assert get_cell("rnn-relu").parameter_count(n, d) == block
    assert get_cell("lstm").parameter_count(n, d) == 4 * block
    assert get_cell("gru").parameter_count(n, d) == 3 * block
    # nn.LSTM(proj_size=p): weight_hh (4n, p) and weight_hr (p, n) (PyTorch docs), p < n
    p = max(1, n // 2)
    want = 4 * (n * d + n * p + 2 * n) + p * n
    assert get_cell("lstm-proj").parameter_count(n, d, p) == want


@pytest.mark.parametrize("name", EXPECTED)
def test_parameter_shapes_are_consistent(name: str) -> None:
    cell = get_cell(name)
    names = [p.name for p in cell.parameters]
    assert len(names) == len(set(names))
    if cell.has_second_size:  # lstm-proj: h of p = 2 units, c of n = 5
        shapes = {p.name: p.numeric_shape(5, 3, 2) for p in cell.parameters}
        assert shapes["W_hr"] == (2, 5) and shapes["W_hi"] == (5, 2) and shapes["W_ii"] == (5, 3)
        assert cell.state_size(5, 2) == 7 and cell.block_sizes(5, 2) == (2, 5)
        with pytest.raises(CellError, match="needs the size p"):
            cell.parameters[1].numeric_shape(5, 3)
        return
    for p in cell.parameters:
        allowed = {"weight": [(5, 3), (5, 5)], "bias": [(5,)], "vector": [(5,)]}[p.kind]
        if p.name in cell.rows:  # rows(w) (F9): the one stored row of 1_n w^T
            allowed = [(5,)]
        assert p.numeric_shape(5, 3) in allowed
    assert cell.state_size(5) == 5 * len(cell.state)


#: the catalogue cells laid out as torch.nn.RNN / LSTM / GRU: number of gates (row blocks)
NN_MODULE_GATES = {"rnn": 1, "rnn-relu": 1, "lstm": 4, "gru": 3}


@pytest.mark.parametrize("name", [n for n in EXPECTED if CATALOGUE[n].torch_layout])
def test_torch_layout_lists_every_parameter_once(name: str) -> None:
    cell = get_cell(name)
    listed = [p for _, ps in cell.torch_layout for p in ps]
    assert len(listed) == len(set(listed))
    assert set(listed) == {p.name for p in cell.parameters}
    if name not in NN_MODULE_GATES:  # the layouts of newer cells: tests/test_modern_catalogue.py
        return
    gates = NN_MODULE_GATES[name]
    shapes = {p.name: p.shape for p in cell.parameters}
    expected = {
        "weight_ih_l0": ("n", "d"),
        "weight_hh_l0": ("n", "n"),
        "bias_ih_l0": ("n",),
        "bias_hh_l0": ("n",),
    }
    assert [t for t, _ in cell.torch_layout] == list(expected)
    for tensor, ps in cell.torch_layout:
        assert len(ps) == gates  # G row blocks, PyTorch gate order
        assert all(shapes[p] == expected[tensor] for p in ps)


def test_torch_gate_orders() -> None:
    # PyTorch docs: nn.LSTM stacks (i, f, g, o); nn.GRU stacks (r, z, n).
    layout = dict(get_cell("lstm").torch_layout)
    assert layout["weight_ih_l0"] == ("W_ii", "W_if", "W_ig", "W_io")
    assert layout["bias_hh_l0"] == ("b_hi", "b_hf", "b_hg", "b_ho")
    layout = dict(get_cell("gru").torch_layout)
    assert layout["weight_hh_l0"] == ("W_hr", "W_hz", "W_hn")


def test_gate_biases_are_found_by_node() -> None:
    assert get_cell("lstm").node_map["a_f"].biases == ("b_if", "b_hf")
    assert get_cell("lstm-peephole").node_map["a_f"].biases == ("b_f",)


# -- Jacobian structure --------------------------------------------------------------------
def test_rnn_jacobian_is_diag_times_recurrent_weight() -> None:
    (term,) = get_cell("rnn").jacobian().block("h", "h")
    assert term.weights == ("W_hh",)
    assert len(term.diags) == 2
    # tanh' = 1 - tanh^2, written in the node value h_new = h_t
    assert same(term.diags[0], 1 - sym("h_new") ** 2)
    assert term.diags[1] == 1


def test_rnn_relu_jacobian_is_heaviside_times_weight() -> None:
    (term,) = get_cell("rnn-relu").jacobian().block("h", "h")
    assert term.weights == ("W_hh",)
    assert term.diags[0] == sp.Heaviside(sym("a"), 0)


def test_rnn_has_no_additive_path() -> None:
    paths = get_cell("rnn").jacobian().paths()
    assert paths.additive.is_zero()
    assert not paths.multiplicative.is_zero()


def test_lstm_cell_block_is_diag_forget_gate() -> None:
    (term,) = get_cell("lstm").jacobian().block("c", "c")
    assert term.weights == ()
    assert term.is_additive
    assert same(term.diags[0], sym("f"))


def test_lstm_nofg_cell_block_is_identity() -> None:
    jac = get_cell("lstm-nofg").jacobian()
    (term,) = jac.block("c", "c")
    assert term.weights == () and term.diags == (1,)
    assert str(term) == "I"
    additive = jac.additive()
    assert any(t.diags == (1,) and not t.weights for t in additive.block("c", "c"))


def test_lstm_cifg_input_gate_is_one_minus_forget() -> None:
    (term,) = get_cell("lstm-cifg").jacobian().block("c", "c")
    assert same(term.diags[0], sym("f")) and term.weights == ()


def test_gru_update_convention_z_keeps_old_state() -> None:
    # h_t = (1 - z) n + z h_{t-1}: additive path diag(z) (Cho et al. 2014, PyTorch)
    for name in ("gru", "gru-reset-before"):
        (term,) = get_cell(name).jacobian().additive().block("h", "h")
        assert term.weights == () and same(term.diags[0], sym("z"))


def test_mgu_update_convention_f_writes_new_state() -> None:
    # h_t = (1 - f) h_{t-1} + f n: additive path diag(1 - f) (Zhou et al. 2016)
    (term,) = get_cell("mgu").jacobian().additive().block("h", "h")
    assert term.weights == () and same(term.diags[0], 1 - sym("f"))


def test_minimalrnn_additive_path_is_update_gate() -> None:
    (term,) = get_cell("minimalrnn").jacobian().additive().block("h", "h")
    assert same(term.diags[0], sym("u"))


def test_indrnn_jacobian_is_diagonal_and_multiplicative() -> None:
    # diagonal (no weight matrix), yet every path goes through relu' at the pre-activation
    # a + u*h: purely multiplicative (docs/cells-2018-2026.md §2, Li et al. 2018)
    jac = get_cell("indrnn").jacobian()
    assert jac.additive().is_zero()
    (term,) = jac.block("h", "h")
    assert not term.weights and term.multiplicative
    a, u, h = sym("a"), sym("u"), sym("h")
    assert same(term.diags[0], u * sp.Heaviside(a + u * h, 0))


def test_gru_reset_after_keeps_bias_inside_product() -> None:
    # n = tanh(a_nx + r * a_nh) with a_nh = W_hn h + b_hn: dn/dr carries a_nh (incl. b_hn)
    (term,) = [t for t in get_cell("gru").jacobian().block("h", "h") if t.weights == ("W_hr",)]
    assert sym("a_nh") in term.diags[0].free_symbols


@pytest.mark.parametrize("name", EXPECTED)
def test_jacobian_weights_are_recurrent(name: str) -> None:
    cell = get_cell(name)
    jac = cell.jacobian()
    # weights not on the input: (n, n), or lstm-proj's (n, p) and (p, n)
    recurrent = {p.name for p in cell.parameters if p.kind == "weight" and "d" not in p.shape}
    recurrent |= set(cell.matrix_map)  # matrix definitions (F4): n x n, built from weights
    assert jac.weights <= recurrent
    for _, _, t in jac.terms():
        assert len(t.diags) == len(t.weights) + 1


def test_derive_latex_prints_operatorname_diag() -> None:
    result = CliRunner().invoke(cli, ["derive", "lstm", "--latex"])
    assert result.exit_code == 0, result.output
    assert r"\operatorname{diag}" in result.output
    assert r"\frac{\partial s_{t}}{\partial s_{t-1}}" in result.output


def test_derive_text_rnn() -> None:
    result = CliRunner().invoke(cli, ["derive", "rnn"])
    assert result.exit_code == 0
    assert result.output.strip() == "dh_t/dh_{t-1} = diag(1 - h_t**2) @ W_hh"


def test_derive_unknown_cell_is_one_line_usage_error() -> None:
    result = CliRunner().invoke(cli, ["derive", "lstn"])
    assert result.exit_code == 2
    assert "did you mean 'lstm'" in result.output
    assert "Traceback" not in result.output
