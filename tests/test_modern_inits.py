"""``Init(scheme="paper")``: each cell's paper initialisation (docs/cells-2018-2026.md §3).

References for the bounds asserted: PyTorch ``nn.Linear`` / ``RNNBase`` defaults
(``1/sqrt(fan_in)``), Glorot & Bengio (2010) (``sqrt(6/(fan_in + fan_out))``), Gu et al. (2020)
UGI (``sigmoid(b_fg) ~ U(1/n, 1 - 1/n)``), Li et al. (2018) (``0 <= u <= 2^(1/T_max)``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import CATALOGUE, get_cell
from gradflow.initialisers import Init, initialise
from gradflow.paper_inits import PAPER_INITS, paper_initialisation

N, D = 64, 24


def _init(name: str, seed: int = 0, **kw: float) -> dict[str, np.ndarray]:
    return initialise(get_cell(name), N, D, Init(scheme="paper", **kw), np.random.default_rng(seed))


def _fills(a: np.ndarray, lo: float, hi: float) -> bool:
    # inside [lo, hi] and reaching both ends to within 10 % of the width (N*D >= 1536 draws:
    # the chance that a uniform sample misses a 10 % end is < 1e-60)
    w = hi - lo
    return bool(
        a.min() >= lo and a.max() <= hi and a.min() < lo + 0.1 * w and a.max() > hi - 0.1 * w
    )


def test_every_paper_rule_names_a_catalogue_cell_and_fits_its_parameters() -> None:
    assert set(PAPER_INITS) <= set(CATALOGUE)
    for name in PAPER_INITS:
        cell = get_cell(name)
        p = paper_initialisation(cell, 5, 3, np.random.default_rng(1), t_max=50.0)
        assert {k: v.shape for k, v in p.items()} == {
            q.name: q.numeric_shape(5, 3) for q in cell.parameters
        }


@pytest.mark.parametrize(
    ("name", "bound"),
    [
        ("mingru", 1 / math.sqrt(D)),  # nn.Linear(d, n)
        ("minlstm", 1 / math.sqrt(D)),
        ("cornn", 1 / math.sqrt(D + 2 * N)),  # the code's i2h = nn.Linear(d + 2n, n)
        ("cornn-explicit", 1 / math.sqrt(D + 2 * N)),
        ("lem", 1 / math.sqrt(N)),  # LEMCell.reset_parameters
        ("gru-chung", 1 / math.sqrt(N)),  # RNNBase default
    ],
)
def test_uniform_paper_bounds(name: str, bound: float) -> None:
    for key, a in _init(name).items():
        if a.size >= 1536:
            assert _fills(a, -bound, bound), key
        else:
            assert np.all(np.abs(a) <= bound), key


def test_janet_glorot_weights_and_chrono_forget_bias() -> None:
    p = _init("janet", t_max=200.0)
    assert _fills(p["W_f"], -math.sqrt(6 / (D + 2 * N)), math.sqrt(6 / (D + 2 * N)))
    assert _fills(p["U_c"], -math.sqrt(6 / (3 * N)), math.sqrt(6 / (3 * N)))
    assert np.all(p["b_c"] == 0)
    # b_f = log U(1, T_max): exp(b_f) in [1, 200]
    assert np.all((np.exp(p["b_f"]) >= 1) & (np.exp(p["b_f"]) <= 200 * (1 + 1e-12)))
    assert np.all(_init("janet")["b_f"] == 1.0)  # the code's value without T_max


def test_ur_lstm_uniform_gate_initialisation() -> None:
    p = _init("ur-lstm", seed=3)
    g = 1 / (1 + np.exp(-p["b_fg"]))  # the initial forget gates are U(1/n, 1 - 1/n)
    assert g.min() >= 1 / N - 1e-12 and g.max() <= 1 - 1 / N + 1e-12
    assert g.min() < 0.2 and g.max() > 0.8  # spread over the range (64 draws)


@given(t_max=st.floats(1.0, 1e6), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_indrnn_paper_init_keeps_every_unit_below_two_over_t_max(t_max: float, seed: int) -> None:
    p = _init("indrnn", seed=seed, t_max=t_max)
    assert np.all(p["u"] >= 0) and np.all(p["b"] == 0)
    # |u_i|^T_max <= 2: no unit grows more than the paper's gamma = 2 over the training length
    assert np.all(t_max * np.log(p["u"]) <= math.log(2) + 1e-12)


def test_indrnn_paper_init_differs_from_the_pytorch_default() -> None:
    # the torch scheme draws u ~ U(-1/sqrt(n), 1/sqrt(n)): half the units negative, all tiny
    torch = initialise(get_cell("indrnn"), N, D, Init(), np.random.default_rng(0))["u"]
    paper = _init("indrnn", t_max=100.0)["u"]
    assert (torch < 0).any() and np.abs(torch).max() <= 1 / math.sqrt(N)
    assert _fills(paper, 0.0, 2 ** (1 / 100))
    assert _fills(_init("indrnn")["u"], 0.0, 1.0)  # no t_max: the T_max -> inf limit


def test_paper_scheme_is_deterministic_and_falls_back_to_torch() -> None:
    a, b = _init("ur-lstm", seed=7), _init("ur-lstm", seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    rng = np.random.default_rng(5)
    lstm_paper = initialise(get_cell("lstm"), 4, 2, Init(scheme="paper"), rng)
    lstm_torch = initialise(get_cell("lstm"), 4, 2, Init(scheme="torch"), np.random.default_rng(5))
    assert all(np.array_equal(lstm_paper[k], lstm_torch[k]) for k in lstm_paper)


def test_t_max_is_validated() -> None:
    from gradflow.errors import UsageError

    with pytest.raises(UsageError, match="t_max must be >= 1"):
        Init(scheme="paper", t_max=0.5)
    with pytest.raises(UsageError, match="finite"):
        Init(scheme="paper", t_max=math.inf)


def test_slstm_powerlaw_forget_bias_and_zero_recurrence() -> None:
    p = _init("slstm")
    # b_f[j] = 5 - 12 (j / (n - 1))^0.3 (xLSTM powerlaw_blockdependent, one block): +5 .. -7
    assert p["b_f"][0] == 5.0 and abs(p["b_f"][-1] + 7.0) < 1e-12
    assert np.all(np.diff(p["b_f"]) < 0)
    assert all(np.all(p[f"R_{g}"] == 0) for g in "ifzo")
    assert np.all(p["b_i"] == 0) and np.all(p["b_o"] == 0)
    # R = 0: the sLSTM step Jacobian is purely additive at initialisation (docs §3.12)
    from gradflow.engine import state_jacobians

    x = np.random.default_rng(0).standard_normal((3, 2, D))
    cell = get_cell("slstm")
    full = state_jacobians(cell, p, x)
    # 1e-15: the same sums in another order (entries O(1)); R != 0 would differ by O(0.1)
    add = state_jacobians(cell, p, x, path="additive")
    np.testing.assert_allclose(full, add, rtol=0, atol=1e-15)


def test_rglru_ring_initialisation() -> None:
    p = initialise(get_cell("rglru"), N, N, Init(scheme="paper"), np.random.default_rng(4))
    # a = sigma(-a_param) = exp(-softplus(a_param)) on the ring [0.9, 0.999] (recurrentgemma)
    a = np.exp(-np.logaddexp(0.0, p["a_param"]))
    assert a.min() >= 0.9 - 1e-12 and a.max() <= 0.999 + 1e-12
    assert np.array_equal(p["W_in"], np.eye(N)) and np.all(p["b_a"] == 0)
    # N(0, 1/n) gate weights: sample variance of 4096 draws within 10 % of 1/n
    assert abs(np.var(p["W_a"]) * N - 1) < 0.1


def test_antisymmetric_and_lipschitz_gaussian_scales() -> None:
    # AntisymmetricRNN appendix C: W_h ~ N(0, 1/n) (sigma_w = 1), V_h ~ N(0, 1/d), biases 0.
    # Sample variances of >= 1536 draws are within 10 % of the target (relative standard
    # error sqrt(2/1536) = 3.6 %, so 10 % is a ~3-sigma margin)
    p = _init("antisymmetric-rnn", seed=2)
    assert abs(np.var(p["W_h"]) * N - 1) < 0.1 and abs(np.var(p["V_h"]) * D - 1) < 0.1
    assert np.all(p["b_h"] == 0)
    # Lipschitz RNN code: gaussian_init_ std init_std / n (not / sqrt(n)); E Xavier-normal
    q = _init("lipschitz-rnn", seed=3)
    assert abs(np.std(q["M_A"]) * N - 1) < 0.1 and abs(np.std(q["M_W"]) * N - 1) < 0.1
    assert abs(np.var(q["U"]) * (N + D) / 2 - 1) < 0.1 and np.all(q["b"] == 0)


def test_mamba_s4d_real_and_dt_range() -> None:
    cell = get_cell("mamba-s6")
    p = initialise(cell, N, N, Init(scheme="paper"), np.random.default_rng(6))
    # S4D-Real: A[:, j] = -(j + 1), so column j decays by exp(-(j + 1) delta) per step
    for j in range(len(cell.state)):
        np.testing.assert_allclose(-np.exp(p[f"A_log{j}"]), -(j + 1.0), rtol=1e-15)
        # B_t[j] = w_Bj . u is one scalar per step (rows(w_Bj)): w_Bj is a row of x_proj,
        # nn.Linear default U(-1/sqrt(n), 1/sqrt(n))
        assert p[f"w_B{j}"].shape == (N,) and np.all(np.abs(p[f"w_B{j}"]) <= 1 / math.sqrt(N))
    # delta = softplus(dt_bias) at u = 0 is Mamba's dt ~ exp(U(log 1e-3, log 1e-1)); 1e-12:
    # softplus(inverse softplus(dt)) in float64
    dt = np.logaddexp(0.0, p["dt_bias"])
    assert dt.min() >= 1e-3 * (1 - 1e-12) and dt.max() <= 0.1 * (1 + 1e-12)
    assert np.array_equal(p["W_in"], np.eye(N))
    # W_dt = dt_proj.weight @ x_proj.weight[:R] has rank R = ceil(n / 32) = 2
    assert np.linalg.matrix_rank(p["W_dt"]) == math.ceil(N / 32)
