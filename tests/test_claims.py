"""The five claims: direction and order of magnitude of what the built-in experiments measure
(no hard-coded outputs), and the claims JSON schema."""

from __future__ import annotations

import json
import math

import pytest

from gradflow.analysis.claims import MEANFIELD_RTOL, _crossing, claim_e, run_claims
from gradflow.analysis.defaults import (
    EXPLOSION_GRID,
    UPDATE_BIASES,
    claim_configs,
    default_report_config,
    default_sweep_config,
)
from gradflow.results import ClaimsResult, dumps


@pytest.fixture(scope="module")
def claims() -> dict[str, dict]:
    data = json.loads(dumps(run_claims(quick=True).to_dict()))  # strict JSON round trip
    assert data["kind"] == "claims" and data["quick"] is True
    return {c["id"]: c for c in data["claims"]}


def test_claim_e_counts_are_exact():
    c = claim_e().to_dict()
    assert c["holds"]
    for key, value in c["measured"].items():
        if key.startswith("gru_"):
            n, d = (int(p[1:]) for p in key.split("_")[1:])
            # Reference: PyTorch's nn.GRU has 3 gates of W_i (n, d), W_h (n, n), b_i, b_h.
            assert value == 3 * (n * d + n * n + 2 * n)
            assert c["measured"][key.replace("gru", "lstm")] == 4 * (n * d + n * n + 2 * n)
        if key.startswith("ratio_"):
            assert value == 0.75  # exactly 3/4 in binary floating point too


def test_crossing_interpolates_linearly():
    assert _crossing([1.0, 2.0, 4.0], [-0.2, -0.1, 0.1]) == pytest.approx(3.0, abs=1e-12)
    assert _crossing([1.0, 2.0], [-0.2, -0.1]) is None


def test_configs_are_small():
    assert len(default_report_config().cells) == 11
    assert 30 <= len(list(default_sweep_config().points())) <= 60
    cfgs = claim_configs(quick=True)
    assert max(c.hidden_size for c in cfgs.values()) <= 64
    assert claim_configs(quick=False)["a"].hidden_size > cfgs["a"].hidden_size


def test_schema(claims):
    assert sorted(claims) == ["a", "b", "c", "d", "e"]
    for c in claims.values():
        assert {"id", "title", "statement", "measured", "holds", "summary"} <= set(c)
        assert isinstance(c["holds"], bool) and c["summary"].endswith(".")
        assert all(isinstance(v, (int, float)) or v is None for v in c["measured"].values())


def test_claims_round_trip_keeps_the_measured_order(claims):
    result = ClaimsResult.from_dict(
        {"kind": "claims", "schema_version": 2, "claims": list(claims.values())}
    )
    # Natural order, as measured (lag 100 before lag 1000), never sorted as text.
    assert list(result.claim("c").measured) == list(claims["c"]["measured"])
    assert list(claims["c"]["measured"])[1:3] == ["rate_sigma_w_1", "rate_sigma_w_2"]


def test_a_rnn_vanishes_at_the_meanfield_rate(claims):
    m = claims["a"]["measured"]
    # sigma_w = 0.8 with unit-variance inputs: chi < 1, so the tanh RNN vanishes (Poole 2016).
    assert 0 < m["chi"] < 1 and m["predicted_slope"] < -0.05
    assert m["measured_slope_frobenius"] < -0.05 and m["measured_slope_spectral"] < -0.05
    # Mean-field theory is exact as n -> inf; at n = 64 the slope agrees within 10 %.
    assert m["relative_error"] <= MEANFIELD_RTOL
    assert claims["a"]["holds"]


def test_b_lstm_keeps_gradients_longer(claims):
    m = claims["b"]["measured"]
    # The RNN loses more than 10 decades by lag 100 and ten times that by lag 1000
    # (geometric decay); the LSTM keeps more than 10 decades more at both lags.
    assert m["rnn_lag100"] < -10
    assert m["rnn_lag1000"] < 5 * m["rnn_lag100"]
    for fb in ("1", "3"):
        assert m[f"lstm_fb{fb}_lag100"] > m["rnn_lag100"] + 10
        assert m[f"lstm_fb{fb}_lag1000"] > m["rnn_lag1000"] + 100
    # A larger forget bias keeps more (f = sigmoid(3) ~ 0.95 against sigmoid(1) ~ 0.73).
    assert m["lstm_fb3_additive_lag1000"] > m["lstm_fb1_additive_lag1000"]
    assert claims["b"]["holds"]


def test_c_lstm_explodes_at_a_finite_gain(claims):
    m = claims["c"]["measured"]
    assert m["threshold_sigma_w"] is not None and 1 < m["threshold_sigma_w"] < 20
    rates = [m[f"rate_sigma_w_{s:g}"] for s in EXPLOSION_GRID]
    assert rates[0] < 0 < rates[-1]
    assert claims["c"]["holds"]


def test_d_update_bias_moves_the_gru_rate(claims):
    m = claims["d"]["measured"]
    full = [m[f"rate_full_bz{b:g}"] for b in UPDATE_BIASES]
    additive = [m[f"rate_additive_bz{b:g}"] for b in UPDATE_BIASES]
    assert all(a < b for a, b in zip(full, full[1:], strict=False))
    assert all(a < b for a, b in zip(additive, additive[1:], strict=False))
    # At b_z = 4, z ~ sigmoid(4) ~ 0.98: the diag(z) path loses about log10(0.98) ~ -0.008
    # decades per step; allow an order of magnitude either way.
    assert -0.08 < additive[-1] < -0.0008
    assert math.isfinite(m[f"log10_norm_full_bz{UPDATE_BIASES[-1]:g}"])
    assert claims["d"]["holds"]
