"""The catalogue cells of docs/cells-2018-2026.md against the independent PyTorch references.

Each catalogue cell is built at the fixture's hyperparameters, its parameters are read from the
stored PyTorch-style tensors through the cell's own ``torch_layout`` (the loader of
:mod:`gradflow.weights`; coRNN's column split by hand, docs §1 F10), and gradflow's rollout,
step Jacobians, additive-path Jacobians, input Jacobians and ``analyze`` norms per lag are
compared with ``tests/data/modern_cells/`` (made by ``tests/reference/make_modern_reference.py``
with torch autograd, float64).

Tolerances: 1e-12 absolute for states and Jacobians (six steps, entries O(1..10): the same
float64 computation in another order; measured <= 4e-15 between the reference's own two
implementations); 1e-8 in log10 for the norms per lag (the task's contract for ``analyze``
against autograd of the unrolled network). The matrix-form Jacobian against the explicit SymPy
Jacobian and central finite differences (n = 3..5) is tested for every catalogue cell, these
included, in tests/test_symbolic.py and tests/test_sensitivity.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gradflow.cells import CATALOGUE, Cell, get_cell
from gradflow.cells.dynamical import antisymmetric_rnn, lipschitz_rnn, mamba_s6, mamba_s6_params
from gradflow.cells.modern import cornn, janet, lem

DATA = Path(__file__).parent / "data" / "modern_cells"
TOL = 1e-12
LOG_TOL = 1e-8

Arrays = dict[str, np.ndarray]


def _fixture(name: str) -> tuple[dict[str, object], Arrays, Arrays, np.ndarray]:
    from safetensors.numpy import load_file

    record = json.loads((DATA / f"{name}.json").read_text())
    return (
        record,
        load_file(DATA / f"{name}.safetensors"),
        load_file(DATA / f"{name}_reference.safetensors"),
        np.load(DATA / f"{name}_inputs.npy"),
    )


def _cornn_params(p: Arrays, n: int, d: int) -> Arrays:
    # i2h.weight (n, d + 2n) columns [V | W_z | W]: the cat(x, hz, hy) order of coRNNCell
    w = p["i2h.weight"]
    return {"V": w[:, :d], "W_z": w[:, d : d + n], "W": w[:, d + n :], "b": p["i2h.bias"]}


def heads_to_dense(kernel: np.ndarray) -> np.ndarray:
    """xLSTM's head-wise ``recurrent_kernel (H, hd, 4 hd)`` (row vectors, gate-major columns) as
    the catalogue's ``recurrent_weight (4n, n)``: per gate the block-diagonal column-convention
    matrix, block ``k`` = ``kernel[k, :, g hd:(g+1) hd]^T`` (docs §3.12)."""
    heads, hd = kernel.shape[0], kernel.shape[1]
    n = heads * hd
    out = np.zeros((4 * n, n))
    for g in range(4):
        for k in range(heads):
            rows = slice(g * n + k * hd, g * n + (k + 1) * hd)
            out[rows, k * hd : (k + 1) * hd] = kernel[k, :, g * hd : (g + 1) * hd].T
    return out


def _block_diagonal(w: np.ndarray) -> np.ndarray:
    # recurrentgemma's BlockDiagonalLinear (H, i, j), y_k = x_k @ w[k]: blocks w[k]^T (docs §3.6)
    heads, bw = w.shape[0], w.shape[1]
    out = np.zeros((heads * bw, heads * bw))
    for k in range(heads):
        out[k * bw : (k + 1) * bw, k * bw : (k + 1) * bw] = w[k].T
    return out


def _cell_and_params(fixture: str) -> tuple[Cell, Arrays, Arrays, np.ndarray, dict[str, object]]:
    from gradflow.weights import from_torch_tensors

    record, p, ref, x = _fixture(fixture)
    hyper = dict(record["hyperparameters"])  # type: ignore[call-overload]
    n, d = int(record["hidden_size"]), int(record["input_size"])  # type: ignore[call-overload]
    cell: Cell
    if fixture.startswith("cornn"):
        cell = cornn(**hyper, explicit=fixture == "cornn-explicit")
        return cell, _cornn_params(p, n, d), ref, x, record
    if fixture == "mamba-s6":
        # Mamba's x_proj/dt_proj/A_log as the cell's W_dt (low-rank product), rows w_Bj
        # and A_log columns; W_in = I (the bare recurrence, d = n): docs §3.7
        cell = mamba_s6(int(hyper["d_state"]))
        return cell, mamba_s6_params(p), ref, x, record
    if fixture == "lipschitz-rnn":
        # the authors' code multiplies row vectors: M_A = B^T, M_W = C^T, E = (U, b) (docs §3.11)
        cell = lipschitz_rnn(**hyper)
        q = {"M_A": p["B"].T, "M_W": p["C"].T, "U": p["E.weight"], "b": p["E.bias"]}
        return cell, q, ref, x, record
    if fixture == "antisymmetric-rnn":
        cell = antisymmetric_rnn(**hyper)
    elif fixture == "lem":
        cell = lem(**hyper)
    elif fixture == "janet":
        cell = janet(**hyper)
    elif fixture == "rglru":
        assert hyper == {"c": 8.0, "heads": 2}
        cell = get_cell("rglru")
        p = {
            "a_param": p["a_param"],
            "W_in": np.eye(n),  # the bare RG-LRU: d = n, x enters unit by unit
            "W_a": _block_diagonal(p["a_gate.w"]),
            "b_a": p["a_gate.b"].reshape(-1),
            "W_x": _block_diagonal(p["input_gate.w"]),
            "b_x": p["input_gate.b"].reshape(-1),
        }
        return cell, p, ref, x, record
    elif fixture == "slstm":
        assert hyper == {"heads": 2}
        cell = get_cell("slstm")
        p = {**p, "recurrent_weight": heads_to_dense(p.pop("recurrent_kernel"))}
    else:
        assert not hyper, hyper
        cell = get_cell(fixture)
    return cell, from_torch_tensors(cell, p), ref, x, record


FIXTURES = [
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


@pytest.mark.parametrize("fixture", FIXTURES)
def test_catalogue_cell_matches_the_torch_reference(fixture: str) -> None:
    from gradflow.engine import rollout, state_jacobians
    from gradflow.sensitivity_codegen import compile_sensitivity

    cell, q, ref, x, _ = _cell_and_params(fixture)
    assert cell.name == fixture
    states = rollout(cell, q, x)
    np.testing.assert_allclose(states, ref["states"], rtol=0, atol=TOL)
    J = state_jacobians(cell, q, x)
    np.testing.assert_allclose(J, ref["step_jacobians"], rtol=0, atol=TOL)
    A = state_jacobians(cell, q, x, path="additive")
    np.testing.assert_allclose(A, ref["additive_jacobians"], rtol=0, atol=TOL)
    # input Jacobian ds_t/dx_t of one step at the rolled-out state (generated kernel)
    kern = compile_sensitivity(cell)
    qq = kern.pack(q)
    for t in range(x.shape[0]):
        E = kern.values(states[t], x[t], qq)
        K = np.asarray(kern.input_jacobian(E, qq))
        np.testing.assert_allclose(K, ref["input_jacobians"][t], rtol=0, atol=TOL)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_analyze_matches_autograd_norms_per_lag(fixture: str) -> None:
    from gradflow.engine import analyze

    cell, q, _, x, record = _cell_and_params(fixture)
    res = analyze(cell, q, x)
    for key in ("log10_spectral_norm", "log10_frobenius_norm", "log10_spectral_norm_hidden"):
        want = np.array(record[key], dtype=float)
        np.testing.assert_allclose(getattr(res, key), want, rtol=0, atol=LOG_TOL, err_msg=key)


def test_catalogue_default_hyperparameters_are_the_papers() -> None:
    # coRNN's sequential-MNIST defaults (dt, gamma, epsilon) = (0.042, 2.7, 4.7): the IMEX
    # additive block of docs §3.8 is [[1 - k dt^2 gamma, k dt], [-k dt gamma, k]] with
    # k = 1/(1 + dt eps); 1e-15: the same float64 arithmetic in SymPy
    jac = get_cell("cornn").jacobian().additive()
    k = 1 / (1 + 0.042 * 4.7)
    want = {("z", "z"): k, ("z", "y"): -k * 0.042 * 2.7, ("y", "z"): k * 0.042}
    want[("y", "y")] = 1 - k * 0.042**2 * 2.7
    for (row, col), value in want.items():
        (term,) = jac.block(row, col)
        assert abs(float(term.diags[0]) - value) < 1e-15, (row, col)
    # JANET's beta = 1 is the authors' sigma(1 - s) = 1 - sigma(s - 1)
    assert "beta = 1" in get_cell("janet").reference
    assert janet(0.5) != get_cell("janet")


def test_modern_cells_carry_citations_and_conventions() -> None:
    from gradflow.citations import text

    for name in FIXTURES:
        cell = CATALOGUE[name]
        assert cell.citations and cell.convention and cell.description
        text(cell.citations)  # every key resolves (raises on an unknown key)


def test_derive_paths_shows_the_new_split() -> None:
    # docs/cells-2018-2026.md §2: IndRNN's chain passes through relu' at a + u h (all
    # multiplicative); minGRU's is the gate alone (all additive)
    from click.testing import CliRunner

    from gradflow.cli import cli

    out = CliRunner().invoke(cli, ["derive", "indrnn", "--paths"])
    assert out.exit_code == 0, out.output
    add, mul = out.output.split("multiplicative path:")
    assert add.strip() == "additive path:\n0"
    assert "Heaviside(a + h_{t-1}*u, 0)" in mul
    out = CliRunner().invoke(cli, ["derive", "mingru", "--paths"])
    assert out.output.strip().endswith("multiplicative path:\n0")
    assert "dh_t/dh_{t-1} = diag(1 - z)" in out.output


def test_families_partition_the_catalogue() -> None:
    from gradflow.cells.catalogue import CLASSIC, FAMILIES

    listed = [c for cells in FAMILIES.values() for c in cells]
    assert sorted(listed) == sorted(CATALOGUE) and len(listed) == len(set(listed))
    assert set(CLASSIC) <= set(CATALOGUE) and len(CLASSIC) == 11
