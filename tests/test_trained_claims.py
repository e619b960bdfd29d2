"""Claims (a)-(f) on the trained checkpoints, against independent references.

References: the additive share from explicit products of the materialised Jacobians and from
the engine's own additive chain; the parameter counts from the safetensors shapes (the
safetensors package, not gradflow's reader); the task-loss gradient from central finite
differences of a NumPy forward pass written from PyTorch's nn.RNN equations, and its split by
lag from the textbook back-propagation through time of the Elman RNN.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from safetensors.numpy import load_file

from gradflow.analysis.adding import adding_problem
from gradflow.analysis.checkpoints import TRAINED_DIR, load_checkpoint
from gradflow.analysis.trained import analyze_trained
from gradflow.analysis.trained_claims import (
    CLAIM_BATCH,
    NETWORKS,
    claim_c,
    claim_sequences,
    trained_claims,
)
from gradflow.analysis.trained_measures import (
    additive_chain,
    measure_checkpoint,
    read_head,
    task_gradient,
)
from gradflow.engine import analyze, state_jacobians
from gradflow.errors import UsageError
from gradflow.results import TrainedResult, dumps, load_result
from gradflow.results.io import loads

STAGES = ("init", "trained")


@pytest.fixture(scope="module")
def small():
    return trained_claims(steps=30, batch=4, seed=3)


def _log10_fro(a: np.ndarray) -> np.ndarray:
    return np.log10(np.sqrt(np.einsum("bij,bij->b", a, a)))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_additive_share_matches_explicit_products(name):
    x, y = adding_problem(20, 2, 5)
    m = measure_checkpoint(name, "trained", x, y, window=(2, 20), lags=(5, 20), tail_lags=(5,))
    model = load_checkpoint(name, "trained")
    cell, params = model.layers[0].cell, model.layers[0].directions[0].params
    A = state_jacobians(cell, params, x, path="additive")
    J = state_jacobians(cell, params, x)
    T = x.shape[0]
    for k in (5, 20):
        # S_0 = A_T ... A_{T-k+1} and P_k = J_T ... J_{T-k+1}, plain products (no rescaling:
        # at k <= 20 nothing under- or overflows)
        S0, P = A[T - 1].copy(), J[T - 1].copy()
        for t in range(T - 2, T - k - 1, -1):
            S0, P = S0 @ A[t], P @ J[t]
        want = _log10_fro(S0) - _log10_fro(P)
        # float64 products of <= 20 factors: 1e-10 in log10
        np.testing.assert_allclose(m[f"log10_additive_share_lag{k}"], want, rtol=0, atol=1e-10)
    # and the engine's own additive chain (gradflow.engine.analyze(paths=True)), same bar
    res = analyze(cell, params, x, paths=True, hidden=False)
    eng = res.paths["additive"]["log10_frobenius_norm"] - res.log10_frobenius_norm
    np.testing.assert_allclose(m["log10_additive_share_lag20"], eng[20], rtol=0, atol=1e-10)


def test_additive_chain_is_exact_for_a_diagonal_product():
    # A_t = diag(0.1, 0.01): S_0 at lag k is diag(10^-k, 10^-2k), below 1e-308 from k = 309
    A = np.broadcast_to(np.diag([0.1, 0.01]), (400, 1, 2, 2)).copy()
    frob, spec = additive_chain(A, [1, 400])
    k = np.arange(401)
    want = -k + 0.5 * np.log10(1.0 + 10.0 ** (-2.0 * k))  # ||S_0||_F in log10, exactly
    np.testing.assert_allclose(frob[:, 0], want, rtol=0, atol=1e-11)  # 400 roundings: 1e-11
    assert spec[400, 0] == pytest.approx(-400.0, abs=1e-11)  # not 0, not -inf
    assert np.isnan(spec[2, 0])  # not asked for


def test_parameter_counts_match_the_safetensors_shapes(small):
    claims = small[0]
    e = next(c for c in claims if c.id == "e")
    for name in NETWORKS:
        for stage in STAGES:
            raw = load_file(str(TRAINED_DIR / f"{name}_{stage}.safetensors"))
            want = sum(v.size for k, v in raw.items() if k.startswith("rnn."))
            assert e.measure(name, "parameters").values[stage][0] == want  # exact
    gru = e.measure("gru", "parameters").values["trained"][0]
    lstm = e.measure("lstm", "parameters").values["trained"][0]
    assert Fraction(int(gru), int(lstm)) == Fraction(3, 4)
    assert e.measure("gru", "ratio_to_lstm").exact and "exactly 3/4" in e.says


def _rnn_forward(raw: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (torch.nn.RNN's documentation)."""
    h = np.zeros((x.shape[1], raw["rnn.weight_hh_l0"].shape[0]))
    hs = [h]
    for t in range(x.shape[0]):
        a = x[t] @ raw["rnn.weight_ih_l0"].T + raw["rnn.bias_ih_l0"]
        h = np.tanh(a + h @ raw["rnn.weight_hh_l0"].T + raw["rnn.bias_hh_l0"])
        hs.append(h)
    return np.stack(hs)


def _loss(raw: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = _rnn_forward(raw, x)[-1]
    pred = h @ raw["head.weight"][0] + raw["head.bias"][0]
    return np.asarray((pred - y) ** 2)


@pytest.mark.parametrize("stage", STAGES)
def test_task_gradient_matches_finite_differences(stage):
    raw = {
        k: v.astype(np.float64)
        for k, v in load_file(str(TRAINED_DIR / f"rnn_{stage}.safetensors")).items()
    }
    x, y = adding_problem(12, 2, 4)
    model = load_checkpoint("rnn", stage)
    params = model.layers[0].directions[0].params
    g = task_gradient("rnn", params, read_head("rnn", stage), x, y, [0, 5])["gradient"]
    n, d = 64, 2
    # the cell's order: W_ih (n, d), W_hh (n, n), b_ih, b_hh
    where = {"rnn.weight_ih_l0": 0, "rnn.weight_hh_l0": n * d, "rnn.bias_ih_l0": n * d + n * n}
    rng = np.random.default_rng(0)
    for key, offset in where.items():
        for flat in rng.choice(raw[key].size, 3, replace=False):
            eps = 1e-6
            plus, minus = dict(raw), dict(raw)
            plus[key] = raw[key].copy()
            minus[key] = raw[key].copy()
            plus[key].flat[flat] += eps
            minus[key].flat[flat] -= eps
            fd = (_loss(plus, x, y) - _loss(minus, x, y)) / (2 * eps)
            # central differences, step 1e-6: truncation ~1e-12, rounding ~1e-10 absolute
            np.testing.assert_allclose(g[:, offset + flat], fd, rtol=1e-6, atol=1e-9)


def test_long_lag_share_matches_textbook_bptt():
    raw = {
        k: v.astype(np.float64)
        for k, v in load_file(str(TRAINED_DIR / "rnn_trained.safetensors")).items()
    }
    x, y = adding_problem(15, 3, 2)
    T = x.shape[0]
    hs = _rnn_forward(raw, x)
    w = raw["head.weight"][0]
    pred = hs[-1] @ w + raw["head.bias"][0]
    delta = 2 * (pred - y)[:, None] * w  # dL/dh_T
    G = []
    for t in range(T, 0, -1):  # Elman BPTT: G_{T-t} is step t's immediate contribution
        da = delta * (1 - hs[t] ** 2)
        G.append(
            np.concatenate(
                [
                    np.einsum("bi,bj->bij", da, x[t - 1]).reshape(3, -1),
                    np.einsum("bi,bj->bij", da, hs[t - 1]).reshape(3, -1),
                    da,
                    da,
                ],
                axis=1,
            )
        )
        delta = da @ raw["rnn.weight_hh_l0"]
    G = np.stack(G)  # (T, B, P)
    params = load_checkpoint("rnn", "trained").layers[0].directions[0].params
    out = task_gradient("rnn", params, read_head("rnn", "trained"), x, y, [0, 3, 10])
    total = np.linalg.norm(G.sum(0), axis=1)
    # the same sums in float64: 1e-9 in log10
    np.testing.assert_allclose(out["log10_norm"], np.log10(total), rtol=0, atol=1e-9)
    for i, k in enumerate([0, 3, 10]):
        tail = np.linalg.norm(G[k + 1 :].sum(0), axis=1)
        np.testing.assert_allclose(out["log10_tail_norm"][i], np.log10(tail), rtol=0, atol=1e-8)


def test_claims_are_measured_on_the_claim_sequences(small):
    claims, inputs, data = small
    assert [c.id for c in claims] == list("abcdef")
    assert inputs["batch"] == 4 and inputs["short_lags"] == [10]
    x, y, _ = claim_sequences(30, 4, 3)
    res = analyze(
        load_checkpoint("gru", "trained").layers[0].cell,
        load_checkpoint("gru", "trained").layers[0].directions[0].params,
        x,
        hidden=False,
    )
    b = next(c for c in claims if c.id == "b")
    m = b.measure("gru", "log10_norm_lag30")
    np.testing.assert_array_equal(m.values["trained"], res.log10_spectral_norm[30])
    # the interval is a bootstrap of the median over the 4 sequences
    iv = m.intervals["trained"]
    assert iv["draws"] == 4 and iv["statistic"] == "median"
    assert iv["low"] <= iv["estimate"] == np.median(res.log10_spectral_norm[30]) <= iv["high"]
    for c in claims:  # every claim says something, from numbers it carries
        assert c.says and c.measures


def test_shared_sequences_start_with_the_analysis_own():
    x, y, text = claim_sequences(20, 6, 7, shared=4)
    x4, y4 = adding_problem(20, 4, 7)
    x2, _ = adding_problem(20, 2, 8)
    assert x.shape == (20, 6, 2) and "seed 8" in text
    np.testing.assert_array_equal(x[:, :4], x4)
    np.testing.assert_array_equal(x[:, 4:], x2)
    np.testing.assert_array_equal(y[:4], y4)


def test_claim_c_words_what_the_intervals_say():
    data = {
        (n, s): {"lyapunov": np.full(3, v)}
        for n, vals in {"rnn": (-0.2, -0.25), "lstm": (-0.19, 0.05), "gru": (-0.2, -0.1)}.items()
        for s, v in zip(STAGES, vals, strict=True)
    }
    says = claim_c(data).says
    assert "the LSTM explodes after training" in says  # +0.05 > 0.01: exploding, said so
    assert "(vanishing) to -0.100" in says


def test_result_with_claims_round_trips_and_old_files_are_read(small):
    res = analyze_trained(("rnn", "lstm", "gru"), steps=30, batch=2, seed=3, lags=(5, 30))
    assert [c.id for c in res.claims] == list("abcdef")
    assert res.claim_inputs["batch"] == CLAIM_BATCH and res.claim_inputs["shared"] == 2
    # the decay table's norms are the claims' first sequences (one engine run serves both)
    rnn = res.network("rnn").views["joint"]["trained"].norms.median
    rate = res.claim("a").measure("rnn", "rate").values["trained"]
    assert rnn.shape == (31,) and rate.shape == (CLAIM_BATCH,)
    back = load_result(loads(dumps(res.to_dict())))
    assert isinstance(back, TrainedResult)
    assert back.comparable() == res.comparable()
    assert back.claim("f").measure("lstm", "clipped").intervals["init"]["statistic"] == "mean"
    old = res.to_dict()
    old["schema_version"] = 1
    del old["claims"], old["claim_inputs"]
    v1 = TrainedResult.from_dict(old)
    assert v1.claims == () and v1.claim_inputs == {}
    assert [n.name for n in v1.networks] == ["rnn", "lstm", "gru"]


def test_additive_share_figure_draws_the_stored_medians():
    from matplotlib.figure import Figure

    from gradflow.plots.trained import plot_additive_share

    res = analyze_trained(("rnn", "lstm", "gru"), steps=20, batch=2, seed=1, lags=(5, 20))
    assert set(res.additive_share) == {"lstm", "gru"}
    ax = plot_additive_share(res, Figure().add_subplot())
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    want = res.additive_share["gru"]["trained"].median
    np.testing.assert_array_equal(lines["gru, trained"].get_ydata(), want)  # drawn, not redone
    # lag 0: S_0 = P_0 = I, the share is exactly 1
    assert res.additive_share["lstm"]["init"].median[0] == 0.0
    # the median over the claims' sequences of the per-sequence shares at lag 10
    per_seq = res.claim("b").measure("gru", "log10_additive_share_lag10").values["trained"]
    assert np.median(per_seq) == pytest.approx(want[10], abs=1e-12)
    with pytest.raises(UsageError, match="no additive shares"):
        plot_additive_share(analyze_trained(("rnn",), steps=20, batch=2, lags=(5,)))


def test_claims_need_the_three_networks():
    with pytest.raises(UsageError, match="the claims compare rnn, lstm, gru"):
        trained_claims(("rnn", "lstm"))
