"""The gradflow forms of docs/cells-2018-2026.md that today's graph can already express.

Each cell below is written exactly as in its section of the document (equation text through
:func:`gradflow.cells.define_cell`, hyperparameters as number literals until named constants
exist, docs §1 F8), its parameters are mapped from the stored PyTorch-style tensors by the
layout the document gives, and gradflow's rollout and materialised state Jacobians are compared
with the independent PyTorch reference in ``tests/data/modern_cells/`` (made by
``tests/reference/make_modern_reference.py``). The cells that need the missing features
(``rglru``, ``mamba-s6``, ``antisymmetric-rnn``, ``lipschitz-rnn``, ``slstm``) are not here.

Tolerances: 1e-12 absolute for states and Jacobians (float64, six steps, entries O(1..10): the
same computation in a different order). The additive path is the document's (§2: the paths
through no function derivative at a pre-activation), so gradflow's additive Jacobians must equal
the stored ``additive_jacobians``; the old rule ("no weight matrix") gave all of ``J_t`` for
``indrnn`` (now 0) and would have put the Lipschitz RNN's ``I + eps A`` skip in the
multiplicative part (now additive): both are tested below.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "modern_cells"
TOL = 1e-12

Arrays = dict[str, np.ndarray]


def _rows(a: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return dict(zip(names, np.split(a, len(names), axis=0), strict=True))


def _gru_chung(p: Arrays) -> Arrays:
    out = _rows(p["weight_ih"], ["W_ir", "W_iz", "W_in"])
    out |= _rows(p["weight_hh"], ["W_hr", "W_hz", "W_hn"])
    out |= _rows(p["bias_ih"], ["b_ir", "b_iz", "b_in"])
    return out | _rows(p["bias_hh"], ["b_hr", "b_hz", "b_hn"])


def _janet(p: Arrays) -> Arrays:  # row blocks c, f (the authors' j, f)
    out = _rows(p["weight_ih"], ["W_c", "W_f"]) | _rows(p["weight_hh"], ["U_c", "U_f"])
    return out | _rows(p["bias"], ["b_c", "b_f"])


def _ur_lstm(p: Arrays) -> Arrays:
    gates = ["f", "r", "u", "o"]
    out = _rows(p["igates.weight"], [f"W_i{g}" for g in gates])
    out |= _rows(p["hgates.weight"], [f"W_h{g}" for g in gates])
    out |= _rows(p["igates.bias"], [f"b_i{g}" for g in gates])
    out |= _rows(p["hgates.bias"], [f"b_h{g}" for g in gates])
    return out | {"b_fg": p["forget_bias"]}


def _linear(names: dict[str, str]) -> Callable[[Arrays], Arrays]:
    def convert(p: Arrays) -> Arrays:
        out: Arrays = {}
        for torch_name, gate in names.items():
            out[f"W_{gate}"] = p[f"{torch_name}.weight"]
            out[f"b_{gate}"] = p[f"{torch_name}.bias"]
        return out

    return convert


def _cornn(p: Arrays, n: int = 3, d: int = 2) -> Arrays:  # i2h.weight columns [V | W_z | W]
    w = p["i2h.weight"]
    return {"V": w[:, :d], "W_z": w[:, d : d + n], "W": w[:, d + n :], "b": p["i2h.bias"]}


def _lem(p: Arrays) -> Arrays:
    out: Arrays = {}
    # code chunks: inp2hid (dt1, dt2, z, y), hid2hid (dt1, dt2, y); paper (W_1, V_1) is dt2
    V_2, V_1, V_y, V_z = np.split(p["inp2hid.weight"], 4)
    c_2, c_1, c_y, c_z = np.split(p["inp2hid.bias"], 4)
    W_2, W_1, W_z = np.split(p["hid2hid.weight"], 3)
    b_2, b_1, b_z = np.split(p["hid2hid.bias"], 3)
    out.update(V_1=V_1, V_2=V_2, V_y=V_y, V_z=V_z, c_1=c_1, c_2=c_2, c_y=c_y, c_z=c_z)
    out.update(W_1=W_1, W_2=W_2, W_z=W_z, b_1=b_1, b_2=b_2, b_z=b_z)
    return out | {"W_y": p["transform_z.weight"], "b_y": p["transform_z.bias"]}


GRU_CHUNG = {
    "a_r": "W_ir @ x + W_hr @ h + b_ir + b_hr",
    "a_z": "W_iz @ x + W_hz @ h + b_iz + b_hz",
    "r": "sigmoid(a_r)",
    "z": "sigmoid(a_z)",
    "rh": "r * h",
    "a_n": "W_in @ x + W_hn @ rh + b_in + b_hn",
    "n": "tanh(a_n)",
    "h_new": "(1 - z) * h + z * n",
}
JANET = {
    "s": "W_f @ x + U_f @ h + b_f",
    "f": "sigmoid(s)",
    "k": "sigmoid(s - 1)",
    "a_c": "W_c @ x + U_c @ h + b_c",
    "g": "tanh(a_c)",
    "h_new": "f * h + (1 - k) * g",
}
UR_LSTM = {
    **{f"a_{g}": f"W_i{g} @ x + W_h{g} @ h + b_i{g} + b_h{g}" for g in "fruo"},
    "f": "sigmoid(a_f + b_fg)",
    "r": "sigmoid(a_r - b_fg)",
    "g": "r * (1 - (1 - f)**2) + (1 - r) * f**2",
    "u": "tanh(a_u)",
    "o": "sigmoid(a_o)",
    "c_new": "g * c + (1 - g) * u",
    "h_new": "o * tanh(c_new)",
}
MINGRU = {
    "a_z": "W_z @ x + b_z",
    "z": "sigmoid(a_z)",
    "h_tilde": "W_h @ x + b_h",
    "h_new": "(1 - z) * h + z * h_tilde",
}
MINLSTM = {
    "a_f": "W_f @ x + b_f",
    "a_i": "W_i @ x + b_i",
    "h_tilde": "W_h @ x + b_h",
    "f": "sigmoid(a_f)",
    "i": "sigmoid(a_i)",
    "fn": "f / (f + i)",
    "h_new": "fn * h + (1 - fn) * h_tilde",
}
CORNN_A = {"a": "W @ y + W_z @ z + V @ x + b", "g": "tanh(a)"}
CORNN = {  # dt = 0.4, gamma = 2.7, epsilon = 4.7 (the fixture's hyperparameters)
    **CORNN_A,
    "z_new": "(z + 0.4 * (g - 2.7 * y)) / (1 + 0.4 * 4.7)",
    "y_new": "y + 0.4 * z_new",
}
CORNN_EXPLICIT = {
    **CORNN_A,
    "z_new": "z + 0.4 * (g - 2.7 * y - 4.7 * z)",
    "y_new": "y + 0.4 * z_new",
}
LEM = {  # dt = 0.5
    "a_1": "W_1 @ y + V_1 @ x + b_1 + c_1",
    "a_2": "W_2 @ y + V_2 @ x + b_2 + c_2",
    "dt_n": "0.5 * sigmoid(a_1)",
    "dt_bar": "0.5 * sigmoid(a_2)",
    "a_z": "W_z @ y + V_z @ x + b_z + c_z",
    "z_new": "(1 - dt_n) * z + dt_n * tanh(a_z)",
    "a_y": "W_y @ z_new + V_y @ x + b_y + c_y",
    "y_new": "(1 - dt_bar) * y + dt_bar * tanh(a_y)",
}

#: fixture -> (state, equations, vector parameters, parameter map)
FORMS: dict[str, tuple[list[str], dict[str, str], list[str], Callable[[Arrays], Arrays]]] = {
    "gru-chung": (["h"], GRU_CHUNG, [], _gru_chung),
    "janet": (["h"], JANET, [], _janet),
    "ur-lstm": (["h", "c"], UR_LSTM, ["b_fg"], _ur_lstm),
    "mingru": (["h"], MINGRU, [], _linear({"linear_z": "z", "linear_h": "h"})),
    "minlstm": (["h"], MINLSTM, [], _linear({"linear_f": "f", "linear_i": "i", "linear_h": "h"})),
    "cornn": (["y", "z"], CORNN, [], _cornn),
    "cornn-explicit": (["y", "z"], CORNN_EXPLICIT, [], _cornn),
    "lem": (["y", "z"], LEM, [], _lem),
}


def _fixture(name: str) -> tuple[dict[str, object], Arrays, Arrays, np.ndarray]:
    from safetensors.numpy import load_file

    record = json.loads((DATA / f"{name}.json").read_text())
    return (
        record,
        load_file(DATA / f"{name}.safetensors"),
        load_file(DATA / f"{name}_reference.safetensors"),
        np.load(DATA / f"{name}_inputs.npy"),
    )


@pytest.mark.parametrize("name", sorted(FORMS))
def test_documented_form_matches_the_torch_reference(name: str) -> None:
    from gradflow.cells import define_cell
    from gradflow.engine import rollout, state_jacobians

    state, equations, vectors, convert = FORMS[name]
    cell = define_cell(f"doc-{name}", state, equations, parameters=vectors)
    _, params, ref, inputs = _fixture(name)
    q = convert(params)
    np.testing.assert_allclose(rollout(cell, q, inputs), ref["states"], rtol=0, atol=TOL)
    for path, key in (("full", "step_jacobians"), ("additive", "additive_jacobians")):
        J = state_jacobians(cell, q, inputs, path=path)
        np.testing.assert_allclose(J, ref[key], rtol=0, atol=TOL, err_msg=path)


def test_catalogue_indrnn_matches_the_torch_reference() -> None:
    # the existing catalogue cell with the fixture's names mapped (docs §3.13); both the
    # paper-initialised twin and the PyTorch-initialised one whose products vanish exactly
    from gradflow.engine import rollout, state_jacobians

    for name in ("indrnn", "indrnn-torch-init"):
        _, p, ref, inputs = _fixture(name)
        q = {"W_xh": p["weight_ih"], "u": p["weight_hh"], "b": p["bias"]}
        np.testing.assert_allclose(rollout("indrnn", q, inputs), ref["states"], rtol=0, atol=TOL)
        J = state_jacobians("indrnn", q, inputs)
        np.testing.assert_allclose(J, ref["step_jacobians"], rtol=0, atol=TOL)
        # docs §2: relu' at the pre-activation a + u h on every path: A_t = 0 exactly
        A = state_jacobians("indrnn", q, inputs, path="additive")
        assert np.all(ref["additive_jacobians"] == 0) and np.all(A == 0)


def _transform(M: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    # (1 - beta)(M + M^T) + beta (M - M^T) - gamma I (Erichson et al. 2021), computed here in
    # numpy until matrix-transform nodes exist (docs §1 F4)
    out: np.ndarray = (1 - beta) * (M + M.T) + beta * (M - M.T) - gamma * np.eye(len(M))
    return out


def test_lipschitz_skip_is_additive_and_matches_the_reference() -> None:
    from gradflow.cells import define_cell
    from gradflow.engine import rollout, state_jacobians

    record, p, ref, x = _fixture("lipschitz-rnn")
    hyper = record["hyperparameters"]
    beta, gamma, eps = hyper["beta"], hyper["gamma"], hyper["epsilon"]  # type: ignore[index]
    cell = define_cell(
        "lipschitz-precomputed",
        "h",
        {
            "Ah": "A @ h",
            "a": "W @ h + U @ x + b",
            "h_new": f"h + {eps!r} * Ah + {eps!r} * tanh(a)",
        },
    )
    # the code's row-vector B, C are the paper's M_A^T, M_W^T (docs §3.11)
    q = {
        "A": _transform(p["B"].T, beta, gamma),
        "W": _transform(p["C"].T, beta, gamma),
        "U": p["E.weight"],
        "b": p["E.bias"],
    }
    np.testing.assert_allclose(rollout(cell, q, x), ref["states"], rtol=0, atol=TOL)
    for path, key in (("full", "step_jacobians"), ("additive", "additive_jacobians")):
        J = state_jacobians(cell, q, x, path=path)
        np.testing.assert_allclose(J, ref[key], rtol=0, atol=TOL, err_msg=path)
    # the additive part is I + eps A: it holds a weight, yet no activation touches it
    (add,) = cell.jacobian().additive().block("h", "h")[1:]
    assert add.weights == ("A",) and not add.multiplicative


def test_antisymmetric_additive_part_is_the_identity() -> None:
    from gradflow.cells import define_cell
    from gradflow.engine import state_jacobians

    record, p, ref, x = _fixture("antisymmetric-rnn")
    hyper = record["hyperparameters"]
    eps, gamma = hyper["epsilon"], hyper["gamma"]  # type: ignore[index]
    cell = define_cell(
        "antisymmetric-precomputed",
        "h",
        {"a": "M @ h + V @ x + b", "h_new": f"h + {eps!r} * tanh(a)"},
    )
    W = p["weight_hh"]
    q = {"M": W - W.T - gamma * np.eye(len(W)), "V": p["weight_ih"], "b": p["bias"]}
    for path, key in (("full", "step_jacobians"), ("additive", "additive_jacobians")):
        J = state_jacobians(cell, q, x, path=path)
        np.testing.assert_allclose(J, ref[key], rtol=0, atol=TOL, err_msg=path)
