"""The six claims: direction and order of magnitude of what the built-in experiments measure
(no hard-coded outputs), their intervals over weight draws, and the claims JSON schema."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gradflow.analysis.claims import MEANFIELD_RTOL, _crossing, claim_e, run_claims
from gradflow.analysis.defaults import (
    CLAIM_LAGS,
    UPDATE_BIASES,
    claim_configs,
    default_report_config,
    default_sweep_config,
)
from gradflow.analysis.meanfield import tanh_fixed_point
from gradflow.results import ClaimsResult, dumps


@pytest.fixture(scope="module")
def result() -> ClaimsResult:
    return run_claims(quick=True)


@pytest.fixture(scope="module")
def claims(result) -> dict[str, dict]:
    data = json.loads(dumps(result.to_dict()))  # strict JSON round trip
    assert data["kind"] == "claims" and data["quick"] is True and data["schema_version"] == 3
    return {c["id"]: c for c in data["claims"]}


def test_claim_e_counts_are_exact():
    c = claim_e().to_dict()
    assert c["holds"]
    for key, value in c["measured"].items():
        if key.startswith("gru_n"):
            n, d = (int(p[1:]) for p in key.split("_")[1:])
            # Reference: PyTorch's nn.GRU has 3 gates of W_i (n, d), W_h (n, n), b_i, b_h.
            assert value == 3 * (n * d + n * n + 2 * n)
            assert c["measured"][key.replace("gru", "lstm")] == 4 * (n * d + n * n + 2 * n)
        if key.startswith("gru_one_bias_"):
            n, d = (int(p[1:]) for p in key.split("_")[3:])
            # one bias vector per gate: 3 (nd + n^2 + n) (the GRU of Cho et al. 2014)
            assert value == 3 * (n * d + n * n + n)
            ratio = c["measured"][f"ratio_one_bias_n{n}_d{d}"]
            assert ratio == (3 * (n * d + n * n + n)) / (4 * (n * d + n * n + 2 * n)) < 0.75
        if key.startswith("ratio_n"):
            assert value == 0.75  # exactly 3/4 in binary floating point too
    assert "two bias vectors" in c["conditions"]


def test_crossing_interpolates_linearly():
    assert _crossing([1.0, 2.0, 4.0], [-0.2, -0.1, 0.1]) == pytest.approx(3.0, abs=1e-12)
    assert _crossing([1.0, 2.0], [-0.2, -0.1]) is None


def test_crossing_reads_the_values_only_up_to_the_first_crossing():
    # claim c passes a generator of runs: the gains after the first crossing are never run,
    # and the threshold is the one of the whole list (exact: the same arithmetic)
    asked: list[float] = []
    xs, ys = [1.0, 2.0, 3.0, 4.0, 5.0], [-0.3, 0.1, -0.2, 0.4, 0.5]

    def rates():
        for x, y in zip(xs, ys, strict=True):
            asked.append(x)
            yield y

    assert _crossing(xs, rates()) == _crossing(xs, ys) == pytest.approx(1.75, abs=1e-12)
    assert asked == [1.0, 2.0]
    asked.clear()
    assert _crossing(xs, rates()) is not None and len(asked) == 2
    assert _crossing(xs[:3], (y for y in [-0.1, -0.2, -0.3])) is None


def test_configs_are_small_and_have_ten_draws():
    assert len(default_report_config().cells) == 11
    assert 30 <= len(list(default_sweep_config().points())) <= 60
    cfgs = claim_configs(quick=True)
    assert max(c.hidden_size for c in cfgs.values()) <= 64
    assert all(len(c.seeds) >= 10 for c in cfgs.values())
    full = claim_configs(quick=False)
    assert full["a"].hidden_size > cfgs["a"].hidden_size and "b-3" in full
    # the edge of chaos: chi = 1 at the chosen gain, with these inputs (Poole et al. 2016)
    edge = cfgs["b-edge"].init
    chi = tanh_fixed_point(edge.sigma_w, edge.sigma_u, edge.sigma_b, 1.0)[1]
    assert chi == pytest.approx(1.0, abs=1e-3)


def test_schema(claims):
    assert sorted(claims) == ["a", "b", "c", "d", "e", "f"]
    for c in claims.values():
        assert {"id", "title", "statement", "conditions", "measured", "intervals"} <= set(c)
        assert isinstance(c["holds"], bool) and c["summary"].endswith(".")
        assert c["conditions"]
        assert all(isinstance(v, (int, float)) or v is None for v in c["measured"].values())
        for key, iv in c["intervals"].items():
            # every interval is over >= 10 draws and brackets its estimate
            assert iv["draws"] >= 10 and iv["level"] == 0.95 and iv["resamples"] == 2000
            assert iv["low"] <= iv["estimate"] <= iv["high"]
            assert c["measured"][key] == iv["estimate"]
        if c["id"] != "e":
            assert c["intervals"], c["id"]


def test_old_claims_files_are_still_read(claims):
    old = {
        "kind": "claims",
        "schema_version": 2,
        "claims": [
            {k: v for k, v in c.items() if k not in ("conditions", "intervals")}
            for c in claims.values()
        ],
    }
    result = ClaimsResult.from_dict(old)
    assert result.clipping is None and result.claim("a").conditions == ""
    assert dict(result.claim("a").intervals) == {}
    # Natural order, as measured (lag 100 before lag 1000), never sorted as text.
    assert list(result.claim("c").measured) == list(claims["c"]["measured"])


def test_round_trip_keeps_clipping(result):
    back = ClaimsResult.from_dict(json.loads(dumps(result.to_dict())))
    assert back.comparable() == result.comparable()
    assert back.clipping is not None
    np.testing.assert_array_equal(back.clipping.tail_share, result.clipping.tail_share)


def test_a_rnn_vanishes_at_the_meanfield_rate(claims):
    m, iv = claims["a"]["measured"], claims["a"]["intervals"]
    # sigma_w = 0.8 with unit-variance inputs: chi < 1, so the tanh RNN vanishes (Poole 2016).
    assert 0 < m["chi"] < 1 and m["predicted_slope"] < -0.05
    assert iv["measured_slope_frobenius"]["high"] < -0.05
    # Mean-field theory is exact as n -> inf; at n = 64 the slope agrees within 10 %.
    assert m["relative_error"] <= MEANFIELD_RTOL
    # The bound holds but is loose, and looser with the lag (it grows; the norm falls).
    assert m["pascanu_violations_float64"] == 0 and m["pascanu_violations_float32"] == 0
    assert iv["pascanu_slack_growth"]["low"] > 0.1
    assert claims["a"]["holds"]


def test_b_is_tested_against_the_rnn_at_the_edge(claims):
    m, iv = claims["b"]["measured"], claims["b"]["intervals"]
    for k in CLAIM_LAGS:
        # the RNN at the edge of chaos keeps far more than the RNN at PyTorch's init
        assert iv[f"rnn_edge_lag{k}"]["low"] > iv[f"rnn_lag{k}"]["high"]
        # the LSTM keeps more than the RNN at PyTorch's init (the textbook case) ...
        assert m[f"lstm_fb1_lag{k}"] > m[f"rnn_lag{k}"] + 10
        # ... and its additive path alone carries a vanishing share of the product
        assert m[f"lstm_fb1_additive_share_lag{k}"] < 0
    assert m["lstm_fb1_additive_share_lag1000"] < m["lstm_fb1_additive_share_lag100"] - 10
    # the verdict follows the intervals, whichever way they come out
    beats = all(
        iv[f"lstm_fb1_lag{k}"]["low"] > iv[f"{r}_lag{k}"]["high"]
        and m[f"lstm_fb1_lag{k}"] - m[f"{r}_lag{k}"] > 10
        for k in CLAIM_LAGS
        for r in ("rnn", "rnn_edge")
    )
    assert claims["b"]["holds"] == beats
    edge_more = m["rnn_edge_lag1000"] > m["lstm_fb1_lag1000"]
    assert ("edge of chaos keeps more" in claims["b"]["summary"]) == edge_more
    # the additive share's sentence carries its interval, read from the typed claim's
    # intervals (one decimal of log10, the text's rounding)
    shares = " and ".join(
        "10^{:.1f} [10^{:.1f}, 10^{:.1f}]".format(
            *(iv[f"lstm_fb1_additive_share_lag{k}"][q] for q in ("estimate", "low", "high"))
        )
        for k in CLAIM_LAGS
    )
    assert (
        f"carries {shares} of the Frobenius norm (median [95 % interval])"
        in (claims["b"]["summary"])
    )
    assert (
        iv["lstm_fb1_additive_share_lag1000"]["low"] < iv["lstm_fb1_additive_share_lag1000"]["high"]
    )


def test_c_thresholds_per_draw_and_width(claims):
    m, iv = claims["c"]["measured"], claims["c"]["intervals"]
    keys = [k for k in iv if k.startswith("lstm_threshold_n")]
    assert len(keys) == 2  # two widths
    for k in keys:
        assert 1 < iv[k]["low"] <= iv[k]["high"] < 20
    assert claims["c"]["holds"] == all(
        m[k] == 10 for k in m if k.startswith("lstm_") and k.endswith("_draws_crossing")
    )
    for k in (k for k in iv if k.startswith("lstm_minus_rnn")):
        text = claims["c"]["summary"]
        n = k.rsplit("_n", 1)[1]
        if iv[k]["low"] > 0:
            assert "larger gain than the tanh RNN" in text and f"n = {n}" in text
        elif iv[k]["high"] < 0:
            assert "smaller gain" in text


def test_d_update_bias_moves_the_gru_rate(claims):
    m = claims["d"]["measured"]
    full = [m[f"rate_full_bz{b:g}"] for b in UPDATE_BIASES]
    additive = [m[f"rate_additive_bz{b:g}"] for b in UPDATE_BIASES]
    assert all(a < b for a, b in zip(full, full[1:], strict=False))
    assert all(a < b for a, b in zip(additive, additive[1:], strict=False))
    # At b_z = 4, z ~ sigmoid(4) ~ 0.98: the diag(z) path loses about log10(0.98) ~ -0.008
    # decades per step; allow an order of magnitude either way.
    assert -0.08 < additive[-1] < -0.0008
    assert claims["d"]["holds"]


def test_f_clipping(claims, result):
    m = claims["f"]["measured"]
    clip = result.clipping
    assert clip is not None and clip.draws >= 10 and clip.log10_gradient_norm.shape[0] >= 10
    # an exploding LSTM: the gradients are far above the threshold 1, so clipping binds
    assert m["log10_gradient_norm"] > 1 and m["fraction_clipped_per_sequence"] > 0.5
    # clipping the batch mean rescales it: the long-lag share is unchanged (1e-9 relative)
    np.testing.assert_allclose(clip.tail_share_clipped_batch, clip.tail_share, rtol=1e-9)
    assert claims["f"]["holds"]
    assert np.all(clip.tail_share >= 0) and math.isfinite(float(clip.tail_share.sum()))


def test_report_shows_conditions_intervals_and_the_clipping_figure(result, tmp_path):
    from pathlib import Path

    from gradflow.report import build_report
    from gradflow.results import load_json

    data = Path(__file__).parent / "baseline" / "data"
    out = build_report(
        load_json(data / "experiment.json"), None, result, tmp_path / "r", formats=("svg",)
    )
    html = (out / "index.html").read_text(encoding="utf-8")
    md = (out / "report.md").read_text(encoding="utf-8")
    claims_html = html[html.index('<section id="claims">') : html.index('id="decay-rates"')]
    assert 'id="fig-clipping"' in claims_html and "Figure 2. Gradient clipping" in claims_html
    assert "Figure 2. Gradient clipping" in md and "Figure 3. " in md  # numbering goes on
    assert (out / "figures" / "clipping.svg").exists()
    assert claims_html.count("<em>Conditions:</em>") == 6
    assert "median of slopes" in html and "percentile-bootstrap" in html
    # the bootstrap interval of claim (a)'s slope, rounded as in the table
    iv = result.claim("a").intervals["measured_slope_frobenius"]
    shown = f"[{iv['low']:+.3f}, {iv['high']:+.3f}]".replace("-", "−").replace("+", "")
    assert shown in claims_html


def test_claims_csv_traces_every_number_to_its_interval(result, tmp_path):
    import csv
    from pathlib import Path

    from gradflow.report.tables import write_tables
    from gradflow.results import ExperimentResult, load_json

    data = Path(__file__).parent / "baseline" / "data"
    experiment = ExperimentResult.from_dict(load_json(data / "experiment.json"))
    write_tables(experiment, None, result, tmp_path)
    with open(tmp_path / "claims.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # one row per measured number, in the claims' order, each read back against the typed
    # result: floats exactly (csv writes repr, which round-trips), the interval's ends, level,
    # statistic and draws as the claim holds them
    assert [(r["id"], r["quantity"]) for r in rows] == [
        (c.id, k) for c in result.claims for k in c.measured
    ]
    with_interval = 0
    for r in rows:
        c = result.claim(r["id"])
        value = c.measured[r["quantity"]]
        assert r["holds"] == str(c.holds) and r["conditions"] == c.conditions
        assert r["title"] == c.title and c.conditions  # every claim states its conditions
        if isinstance(value, float):
            assert float(r["estimate"]) == value
        else:
            assert r["estimate"] == ("" if value is None else str(value))
        iv = c.intervals.get(r["quantity"])
        if iv is None:
            assert r["low"] == r["high"] == r["level"] == r["draws"] == ""
            continue
        with_interval += 1
        assert float(r["estimate"]) == iv["estimate"]
        assert float(r["low"]) == iv["low"] and float(r["high"]) == iv["high"]
        assert float(r["low"]) <= float(r["estimate"]) <= float(r["high"])
        assert float(r["level"]) == 0.95 and r["statistic"] == iv["statistic"]
        assert int(r["draws"]) == iv["draws"] >= 10 and int(r["resamples"]) == iv["resamples"]
    # every claim measured over draws has its intervals in the file (claim e counts exactly)
    assert with_interval == sum(len(c.intervals) for c in result.claims) > 20


def test_claims_on_a_process_pool_are_the_same(result):
    # The report runs the claims as five tasks on its pool (issue 14): the result must not
    # depend on where they ran. Reference: run_claims inline (the module's fixture); exact.
    from concurrent.futures import ProcessPoolExecutor

    from gradflow.analysis.sweep import worker_context

    with ProcessPoolExecutor(2, mp_context=worker_context()) as pool:
        pooled = run_claims(quick=True, executor=pool)
    assert dumps(pooled.to_dict()) == dumps(result.to_dict())
    assert [c.id for c in pooled.claims] == ["a", "b", "c", "d", "e", "f"]
