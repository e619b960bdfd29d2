"""Consistency of the stored PyTorch reference for the cells of 2018-2026 (no torch needed).

``tests/reference/make_modern_reference.py`` wrote ``tests/data/modern_cells/`` with torch 2.13
in float64: per cell the parameters (PyTorch-style names), the inputs, the rollout, every
per-step Jacobian ``ds_t/ds_{t-1}`` (autograd of one step) and the log10 norms of
``ds_T/ds_{T-k}`` (autograd of the ``k``-step map). These tests tie the stored numbers to each
other and to closed forms from the papers, so a damaged or regenerated file cannot pass
silently; the catalogue cells that use them are tested elsewhere.

Tolerances: 1e-12 absolute in log10 for chain-rule products of six 3..16-square float64 Jacobians
against autograd of the whole map (rounding is ~1e-15 per step); 1e-13 absolute for closed-form
gate products (a few float64 operations per entry).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

Arrays = dict[str, np.ndarray]
Hyper = dict[str, float]

DATA = Path(__file__).parent / "data" / "modern_cells"
CELLS = sorted(p.stem for p in DATA.glob("*.json"))
INPUT_ONLY = {"mingru", "minlstm", "rglru", "mamba-s6"}
CHAIN_TOL = 1e-12  # log10, product of stored steps vs autograd of the k-step map
CLOSED_TOL = 1e-13  # absolute, closed-form diagonal Jacobians vs autograd


def _load(cell: str) -> tuple[dict[str, Any], Arrays, Arrays, np.ndarray]:
    from safetensors.numpy import load_file

    record = json.loads((DATA / f"{cell}.json").read_text())
    params = load_file(DATA / f"{cell}.safetensors")
    arrays = load_file(DATA / f"{cell}_reference.safetensors")
    inputs = np.load(DATA / f"{cell}_inputs.npy")
    return record, params, arrays, inputs


def _sigmoid(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-a))
    return out


def test_every_cell_is_stored() -> None:
    # the cells of docs/cells-2018-2026.md, with the two numerical variants
    assert CELLS == sorted(
        [
            "antisymmetric-rnn",
            "antisymmetric-rnn-gated",
            "cornn",
            "cornn-explicit",
            "gru-chung",
            "indrnn",
            "indrnn-torch-init",
            "janet",
            "lem",
            "lipschitz-rnn",
            "mamba-s6",
            "mingru",
            "minlstm",
            "rglru",
            "slstm",
            "slstm-stabilised",
            "ur-lstm",
        ]
    )


@pytest.mark.parametrize("cell", CELLS)
def test_shapes_and_layout(cell: str) -> None:
    record, params, arrays, inputs = _load(cell)
    T, B, d, m = record["steps"], record["batch"], record["input_size"], record["state_size"]
    assert inputs.shape == (T, B, d) and inputs.dtype == np.float64
    assert arrays["states"].shape == (T + 1, B, m)
    assert arrays["step_jacobians"].shape == (T, B, m, m)
    assert arrays["additive_jacobians"].shape == (T, B, m, m)
    assert arrays["input_jacobians"].shape == (T, B, m, d)
    assert not arrays["states"][0].any()  # s_0 = 0
    assert {k: list(v.shape) for k, v in params.items()} == record["parameters"]
    assert record["generator"]["script"] == "tests/reference/make_modern_reference.py"
    assert record["input_only"] == (cell in INPUT_ONLY)


@pytest.mark.parametrize("cell", CELLS)
def test_product_of_steps_matches_autograd_of_the_map(cell: str) -> None:
    # chain rule: ds_T/ds_{T-k} = J_T ... J_{T-k+1}; the JSON norms came from autograd of the
    # k-step map, the steps from autograd of one step: two independent autograd computations
    record, _, arrays, _ = _load(cell)
    T, B = record["steps"], record["batch"]
    first = record["hidden_size"]  # the first state vector
    J = arrays["step_jacobians"]
    for b in range(B):
        P = np.eye(record["state_size"])
        for k in range(1, T + 1):
            P = P @ J[T - k, b]
            if record["log10_spectral_norm"][k][b] is None:  # stored null: an exact zero
                assert not P.any() and k >= record["exact_zero_from_lag"][b]
                continue
            assert record["exact_zero_from_lag"][b] is None or k < record["exact_zero_from_lag"][b]
            spec = np.log10(np.linalg.norm(P, 2))
            fro = np.log10(np.linalg.norm(P, "fro"))
            hid = np.log10(np.linalg.norm(P[:first, :first], 2))
            assert abs(spec - record["log10_spectral_norm"][k][b]) < CHAIN_TOL
            assert abs(fro - record["log10_frobenius_norm"][k][b]) < CHAIN_TOL
            assert abs(hid - record["log10_spectral_norm_hidden"][k][b]) < CHAIN_TOL


def test_input_only_cells_have_the_papers_diagonal_jacobians() -> None:
    # minGRU: diag(1 - z_t); minLSTM: diag(f_t / (f_t + i_t)) (Feng et al. 2024);
    # RG-LRU: diag(sigma(-a_param)^(c r_t)) (De et al. 2024); Mamba: diag(exp(Delta A)) per
    # state column (Gu & Dao 2023, ZOH of A). Closed forms in NumPy from the stored parameters.
    rec, p, arr, x = _load("mingru")
    z = _sigmoid(x @ p["linear_z.weight"].T + p["linear_z.bias"])
    np.testing.assert_allclose(
        arr["step_jacobians"], np.einsum("tbi,ij->tbij", 1 - z, np.eye(5)), rtol=0, atol=CLOSED_TOL
    )
    rec, p, arr, x = _load("minlstm")
    f = _sigmoid(x @ p["linear_f.weight"].T + p["linear_f.bias"])
    i = _sigmoid(x @ p["linear_i.weight"].T + p["linear_i.bias"])
    np.testing.assert_allclose(
        arr["step_jacobians"],
        np.einsum("tbi,ij->tbij", f / (f + i), np.eye(4)),
        rtol=0,
        atol=CLOSED_TOL,
    )
    rec, p, arr, x = _load("rglru")
    heads = rec["hyperparameters"]["heads"]
    xb = x.reshape(*x.shape[:-1], heads, -1)
    r = _sigmoid((np.einsum("tbhi,hij->tbhj", xb, p["a_gate.w"]) + p["a_gate.b"]).reshape(x.shape))
    a_t = _sigmoid(-p["a_param"]) ** (rec["hyperparameters"]["c"] * r)
    np.testing.assert_allclose(
        arr["step_jacobians"], np.einsum("tbi,ij->tbij", a_t, np.eye(4)), rtol=0, atol=CLOSED_TOL
    )
    rec, p, arr, x = _load("mamba-s6")
    n, N, R = (
        rec["hidden_size"],
        rec["hyperparameters"]["d_state"],
        rec["hyperparameters"]["dt_rank"],
    )
    proj = x @ p["x_proj.weight"].T
    delta = np.log1p(np.exp(proj[..., :R] @ p["dt_proj.weight"].T + p["dt_proj.bias"]))
    decay = np.exp(delta[..., None] * -np.exp(p["A_log"]))  # (T, B, n, N)
    diag = decay.transpose(0, 1, 3, 2).reshape(*x.shape[:2], n * N)  # columns of X stacked
    np.testing.assert_allclose(
        arr["step_jacobians"],
        np.einsum("tbi,ij->tbij", diag, np.eye(n * N)),
        rtol=0,
        atol=CLOSED_TOL,
    )


def test_indrnn_with_pytorch_initialisation_dies_exactly() -> None:
    # issue 11's repro at small size: u, W, b ~ U(-1/sqrt(n), 1/sqrt(n)); once every unit has
    # been off at some step of the window, ds_T/ds_{T-k} = prod diag(relu' u) is exactly zero,
    # stored as null from that lag on (never a log10 of 0)
    record, _, arrays, _ = _load("indrnn-torch-init")
    assert record["exact_zero_from_lag"] == [4, 2]
    for b, k0 in enumerate(record["exact_zero_from_lag"]):
        column = [row[b] for row in record["log10_spectral_norm"]]
        assert all(v is not None for v in column[:k0]) and all(v is None for v in column[k0:])
    # the mechanism: a unit is off at step t when relu gave 0 (h_t,i = 0); the product over the
    # last k steps is zero exactly when every unit was off at least once among them
    T, off = record["steps"], arrays["states"][1:] == 0.0  # (T, B, n)
    for b, k0 in enumerate(record["exact_zero_from_lag"]):
        assert off[T - k0 :, b].any(axis=0).all()
        assert not off[T - k0 + 1 :, b].any(axis=0).all()
    # the paper-initialised twin (u in [0, 2^(1/T)], all units on) never reaches zero
    assert _load("indrnn")[0]["exact_zero_from_lag"] == [None, None]


def test_slstm_stabiliser_leaves_h_alone() -> None:
    # Beck et al. (2024): m rescales c and n by exp(-m) without changing h, so the h-block of
    # every lag's product and h_T agree between the state [h; c; n] and xLSTM's [h; c; n; m]
    a, _, arr_a, _ = _load("slstm")
    b, _, arr_b, _ = _load("slstm-stabilised")
    np.testing.assert_allclose(
        a["log10_spectral_norm_hidden"], b["log10_spectral_norm_hidden"], rtol=0, atol=CHAIN_TOL
    )
    n = a["hidden_size"]
    np.testing.assert_allclose(arr_a["states"][..., :n], arr_b["states"][..., :n], atol=1e-14)
    # c_bar = c exp(m), n_bar = n exp(m)
    scale = np.exp(arr_b["states"][..., 3 * n :])
    np.testing.assert_allclose(
        arr_a["states"][..., n : 3 * n],
        arr_b["states"][..., n : 3 * n] * np.concatenate([scale, scale], -1),
        rtol=1e-13,
        atol=1e-15,
    )


# -- the Jacobians written in docs/cells-2018-2026.md, in NumPy, against autograd ------------
Pair = tuple[np.ndarray, np.ndarray]  # (J_t, A_t)


def _diag(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.diag(v)
    return out


def _split(a: np.ndarray, k: int) -> list[np.ndarray]:
    return np.split(a, k, axis=0)


def _jac_gru_chung(p: Arrays, h: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
    wir, wiz, win = _split(p["weight_ih"], 3)
    whr, whz, whn = _split(p["weight_hh"], 3)
    bir, biz, bin_ = _split(p["bias_ih"], 3)
    bhr, bhz, bhn = _split(p["bias_hh"], 3)
    r = _sigmoid(wir @ x + whr @ h + bir + bhr)
    z = _sigmoid(wiz @ x + whz @ h + biz + bhz)
    n = np.tanh(win @ x + whn @ (r * h) + bin_ + bhn)
    J = (
        _diag(1 - z)
        + _diag(z * (1 - n**2)) @ whn @ (_diag(r) + _diag(h * r * (1 - r)) @ whr)
        + _diag((n - h) * z * (1 - z)) @ whz
    )
    return J, _diag(1 - z)


def _jac_janet(p: Arrays, h: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
    wc, wf = _split(p["weight_ih"], 2)
    uc, uf = _split(p["weight_hh"], 2)
    bc, bf = _split(p["bias"], 2)
    s = uf @ h + wf @ x + bf
    f, k = _sigmoid(s), _sigmoid(s - hyper["beta"])
    g = np.tanh(uc @ h + wc @ x + bc)
    J = _diag(f) + _diag(h * f * (1 - f) - g * k * (1 - k)) @ uf
    return J + _diag((1 - k) * (1 - g**2)) @ uc, _diag(f)


def _jac_ur_lstm(p: Arrays, s: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
    n = s.size // 2
    h, c = s[:n], s[n:]
    a = p["igates.weight"] @ x + p["igates.bias"] + p["hgates.weight"] @ h + p["hgates.bias"]
    a_f, a_r, a_u, a_o = np.split(a, 4)
    U_f, U_r, U_u, U_o = _split(p["hgates.weight"], 4)
    f, r = _sigmoid(a_f + p["forget_bias"]), _sigmoid(a_r - p["forget_bias"])
    u, o = np.tanh(a_u), _sigmoid(a_o)
    g = r * (1 - (1 - f) ** 2) + (1 - r) * f**2
    g_f, g_r = 2 * (r + f - 2 * r * f), 2 * f * (1 - f)
    c_new = g * c + (1 - g) * u
    T_ = 1 - np.tanh(c_new) ** 2
    dc_dc = _diag(g)
    dc_dh = (
        _diag((c - u) * g_f * f * (1 - f)) @ U_f
        + _diag((c - u) * g_r * r * (1 - r)) @ U_r
        + _diag((1 - g) * (1 - u**2)) @ U_u
    )
    dh_dc = _diag(o * T_ * g)
    dh_dh = _diag(o * T_) @ dc_dh + _diag(np.tanh(c_new) * o * (1 - o)) @ U_o
    Z = np.zeros((n, n))
    return np.block([[dh_dh, dh_dc], [dc_dh, dc_dc]]), np.block([[Z, dh_dc], [Z, dc_dc]])


def _jac_cornn(imex: bool) -> Callable[..., Pair]:
    def jac(p: Arrays, s: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
        n, d = s.size // 2, x.size
        y, z = s[:n], s[n:]
        dt, gamma, eps = hyper["dt"], hyper["gamma"], hyper["epsilon"]
        w = p["i2h.weight"]
        V, W_z, W = w[:, :d], w[:, d : d + n], w[:, d + n :]
        S = _diag(1 - np.tanh(W @ y + W_z @ z + V @ x + p["i2h.bias"]) ** 2)
        k = 1 / (1 + dt * eps) if imex else 1.0
        damp = np.eye(n) if imex else (1 - dt * eps) * np.eye(n)
        dz_dy = k * dt * (S @ W - gamma * np.eye(n))
        dz_dz = k * (damp + dt * S @ W_z)
        J = np.block([[np.eye(n) + dt * dz_dy, dt * dz_dz], [dz_dy, dz_dz]])
        # the damped linear oscillator of §3.8 (per unit a 2x2 block)
        c = 1.0 if imex else 1 - dt * eps
        eye = np.eye(n)
        A = np.block(
            [
                [(1 - k * dt**2 * gamma) * eye, k * dt * c * eye],
                [-k * dt * gamma * eye, k * c * eye],
            ]
        )
        return J, A

    return jac


def _jac_lem(p: Arrays, s: np.ndarray, u: np.ndarray, hyper: Hyper) -> Pair:
    n, dt = s.size // 2, hyper["dt"]
    y, z = s[:n], s[n:]
    V_2, V_1, V_y, V_z = _split(p["inp2hid.weight"], 4)
    c_2, c_1, c_y, c_z = np.split(p["inp2hid.bias"], 4)
    W_2, W_1, W_z = _split(p["hid2hid.weight"], 3)
    e_2, e_1, e_z = np.split(p["hid2hid.bias"], 3)
    W_y, e_y = p["transform_z.weight"], p["transform_z.bias"]
    a_1 = W_1 @ y + V_1 @ u + e_1 + c_1
    a_2 = W_2 @ y + V_2 @ u + e_2 + c_2
    a_z = W_z @ y + V_z @ u + e_z + c_z
    dt_n, dt_bar = dt * _sigmoid(a_1), dt * _sigmoid(a_2)
    z_new = (1 - dt_n) * z + dt_n * np.tanh(a_z)
    a_y = W_y @ z_new + V_y @ u + e_y + c_y
    ds1 = _sigmoid(a_1) * (1 - _sigmoid(a_1))
    ds2 = _sigmoid(a_2) * (1 - _sigmoid(a_2))
    S_z, S_y = 1 - np.tanh(a_z) ** 2, 1 - np.tanh(a_y) ** 2
    dz_dz = _diag(1 - dt_n)
    dz_dy = _diag((np.tanh(a_z) - z) * dt * ds1) @ W_1 + _diag(dt_n * S_z) @ W_z
    dy_dz = _diag(dt_bar * S_y) @ W_y @ _diag(1 - dt_n)
    dy_dy = (
        _diag(1 - dt_bar)
        + _diag((np.tanh(a_y) - y) * dt * ds2) @ W_2
        + _diag(dt_bar * S_y) @ W_y @ dz_dy
    )
    Z = np.zeros((n, n))
    A = np.block([[_diag(1 - dt_bar), Z], [Z, _diag(1 - dt_n)]])
    return np.block([[dy_dy, dy_dz], [dz_dy, dz_dz]]), A


def _jac_asym(gated: bool) -> Callable[..., Pair]:
    def jac(p: Arrays, h: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
        n, eps = h.size, hyper["epsilon"]
        M = p["weight_hh"] - p["weight_hh"].T - hyper["gamma"] * np.eye(n)
        V = _split(p["weight_ih"], 2 if gated else 1)
        b = np.split(p["bias"], 2 if gated else 1)
        th = np.tanh(M @ h + V[0] @ x + b[0])
        if not gated:
            return np.eye(n) + eps * _diag(1 - th**2) @ M, np.eye(n)
        z = _sigmoid(M @ h + V[1] @ x + b[1])
        J = np.eye(n) + eps * _diag(z * (1 - th**2)) @ M + eps * _diag(th * z * (1 - z)) @ M
        return J, np.eye(n)

    return jac


def _jac_lipschitz(p: Arrays, h: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
    beta, gamma, eps, n = hyper["beta"], hyper["gamma"], hyper["epsilon"], h.size

    def mat(M: np.ndarray) -> np.ndarray:
        out: np.ndarray = (1 - beta) * (M + M.T) + beta * (M - M.T) - gamma * np.eye(n)
        return out

    A, W = mat(p["B"].T), mat(p["C"].T)
    a = W @ h + p["E.weight"] @ x + p["E.bias"]
    return np.eye(n) + eps * A + eps * _diag(1 - np.tanh(a) ** 2) @ W, np.eye(n) + eps * A


def _jac_slstm(p: Arrays, s: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
    n = s.size // 3
    h, c, nrm = s[:n], s[n : 2 * n], s[2 * n :]
    R = p["recurrent_kernel"]
    heads, hd = R.shape[0], R.shape[1]
    # xLSTM's head-wise kernel as column-convention block-diagonal matrices, one per gate
    blocks = []
    for g in range(4):
        full = np.zeros((n, n))
        for k in range(heads):
            rows = slice(k * hd, (k + 1) * hd)
            full[rows, rows] = R[k, :, g * hd : (g + 1) * hd].T
        blocks.append(full)
    R_i, R_f, R_z, R_o = blocks
    raw = p["weight_ih"] @ x + np.concatenate(blocks) @ h + p["bias"]
    a_i, a_f, a_z, a_o = np.split(raw, 4)
    i, f, z, o = np.exp(a_i), _sigmoid(a_f), np.tanh(a_z), _sigmoid(a_o)
    c_t, n_t = f * c + i * z, f * nrm + i
    dc_dh = _diag(c * f * (1 - f)) @ R_f + _diag(i * z) @ R_i + _diag(i * (1 - z**2)) @ R_z
    dn_dh = _diag(nrm * f * (1 - f)) @ R_f + _diag(i) @ R_i
    dh_dh = (
        _diag(o * (1 - o) * c_t / n_t) @ R_o
        + _diag(o / n_t) @ dc_dh
        - _diag(o * c_t / n_t**2) @ dn_dh
    )
    Z = np.zeros((n, n))
    dh_dc, dh_dn = _diag(o * f / n_t), -_diag(o * c_t * f / n_t**2)
    J = np.block([[dh_dh, dh_dc, dh_dn], [dc_dh, _diag(f), Z], [dn_dh, Z, _diag(f)]])
    A = np.block([[Z, dh_dc, dh_dn], [Z, _diag(f), Z], [Z, Z, _diag(f)]])
    return J, A


def _jac_indrnn(p: Arrays, h: np.ndarray, x: np.ndarray, hyper: Hyper) -> Pair:
    # Li et al. (2018): J = diag(relu'(W x + u h + b) u); through the pre-activation: A = 0
    on = (p["weight_ih"] @ x + p["weight_hh"] * h + p["bias"] > 0).astype(float)
    return _diag(on * p["weight_hh"]), np.zeros((h.size, h.size))


DOC_JACOBIANS = {
    "gru-chung": _jac_gru_chung,
    "janet": _jac_janet,
    "ur-lstm": _jac_ur_lstm,
    "cornn": _jac_cornn(imex=True),
    "cornn-explicit": _jac_cornn(imex=False),
    "lem": _jac_lem,
    "antisymmetric-rnn": _jac_asym(gated=False),
    "antisymmetric-rnn-gated": _jac_asym(gated=True),
    "lipschitz-rnn": _jac_lipschitz,
    "slstm": _jac_slstm,
    "indrnn": _jac_indrnn,
    "indrnn-torch-init": _jac_indrnn,
}


@pytest.mark.parametrize("cell", sorted(DOC_JACOBIANS))
def test_documented_jacobian_matches_autograd(cell: str) -> None:
    # the matrix-form Jacobian J_t and its additive part A_t (pre-activations held fixed) of
    # docs/cells-2018-2026.md §2-3, evaluated in NumPy at the stored states, against torch
    # autograd of the step (A_t: autograd with every pre-activation detached); 1e-12 absolute
    # (entries are O(1..10), a few dozen float64 operations each)
    record, params, arrays, inputs = _load(cell)
    jac = DOC_JACOBIANS[cell]
    for t in range(record["steps"]):
        for b in range(record["batch"]):
            J, A = jac(params, arrays["states"][t, b], inputs[t, b], record["hyperparameters"])
            np.testing.assert_allclose(J, arrays["step_jacobians"][t, b], rtol=0, atol=1e-12)
            np.testing.assert_allclose(A, arrays["additive_jacobians"][t, b], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", sorted(INPUT_ONLY))
def test_input_only_cells_are_all_additive(cell: str) -> None:
    # no pre-activation depends on the state: J_t = A_t exactly
    _, _, arrays, _ = _load(cell)
    np.testing.assert_array_equal(arrays["additive_jacobians"], arrays["step_jacobians"])
