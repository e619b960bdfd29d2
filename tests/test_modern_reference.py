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
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "modern_cells"
CELLS = sorted(p.stem for p in DATA.glob("*.json"))
INPUT_ONLY = {"mingru", "minlstm", "rglru", "mamba-s6"}
CHAIN_TOL = 1e-12  # log10, product of stored steps vs autograd of the k-step map
CLOSED_TOL = 1e-13  # absolute, closed-form diagonal Jacobians vs autograd


def _load(cell: str) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    from safetensors.numpy import load_file

    record = json.loads((DATA / f"{cell}.json").read_text())
    params = load_file(DATA / f"{cell}.safetensors")
    arrays = load_file(DATA / f"{cell}_reference.safetensors")
    inputs = np.load(DATA / f"{cell}_inputs.npy")
    return record, params, arrays, inputs


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def test_every_cell_is_stored() -> None:
    # the cells of docs/cells-2018-2026.md, with the two numerical variants
    assert CELLS == sorted(
        [
            "antisymmetric-rnn",
            "antisymmetric-rnn-gated",
            "cornn",
            "cornn-explicit",
            "gru-chung",
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
