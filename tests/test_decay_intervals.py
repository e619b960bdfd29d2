"""Confidence intervals of the decay table and the summary (issue 16 item 5).

The two-stage bootstrap of per-run values grouped by weight draw is checked against a case with
a known answer (identical sequences within a draw: the exact bootstrap distribution of a median
is binomial) and against an independent NumPy bootstrap written here; hypothesis checks that
the interval contains the median, is the same for a seed and shrinks as draws grow. The typed
result keeps every run's rate and draw (schema 4; schema 3 still read), the summary states each
number with its interval and says when the data do not resolve it, and the data files let a
reader recompute every interval.
"""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gradflow.analysis.config import Quantities
from gradflow.analysis.experiment import ExperimentConfig, run_experiment
from gradflow.analysis.summarise import run_decay_rates
from gradflow.analysis.uncertainty import (
    RESAMPLES,
    SEED,
    bootstrap_interval,
    ratio_interval,
    run_interval,
)
from gradflow.errors import UsageError
from gradflow.initialisers import Init
from gradflow.report.summary import summary_sentences
from gradflow.results import ExperimentResult, dumps
from gradflow.results.runs import RunValues

# ---- the two-stage interval -------------------------------------------------------------------


def _exact_median_interval(levels: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ends of the exact bootstrap distribution of the median of ``G`` (odd) values
    resampled with replacement: ``P(median <= x_(j)) = P(Bin(G, j/G) >= (G+1)/2)``; the
    interval's ends are the order statistics where that distribution first passes
    ``(1 -+ level)/2``."""
    x = np.sort(levels)
    g = x.size
    cdf = np.array([stats.binom.sf((g + 1) // 2 - 1, g, j / g) for j in range(1, g + 1)])
    lo = x[np.argmax(cdf >= (1 - level) / 2)]
    hi = x[np.argmax(cdf >= (1 + level) / 2)]
    return float(lo), float(hi)


@pytest.mark.parametrize(("draws", "sequences"), [(5, 1), (7, 4), (11, 3)])
def test_two_stage_interval_has_the_binomial_answer(draws, sequences):
    # Known answer: all sequences of a draw have the same value, so resampling within a draw
    # changes nothing and the median of a two-stage sample is the median of the G resampled
    # draw values (G odd; the middle run lies in the middle draw). Its distribution is exact
    # (binomial, _exact_median_interval), and each end's cumulative probability lies at least
    # 0.014 from 0.025 / 0.975 for these G (e.g. G = 7: 0.0102 and 0.108), over 4 Monte Carlo
    # standard deviations at 2000 resamples: the ends must be those order statistics exactly.
    levels = np.random.default_rng(draws).normal(size=draws)
    values = np.repeat(levels, sequences)
    labels = np.repeat(np.arange(draws), sequences)
    iv = run_interval(values, labels)
    assert iv is not None and iv.groups == (draws if draws > 1 else None)
    assert (iv.low, iv.high) == _exact_median_interval(levels)
    assert iv.estimate == float(np.median(levels))  # exact: the middle draw's value


def _loop_two_stage(values, labels, resamples, rng) -> np.ndarray:
    """An independent two-stage bootstrap, written as loops: draws with replacement, then
    each chosen draw's runs with replacement; the median of the pooled sample."""
    groups = [values[labels == g] for g in np.unique(labels)]
    out = np.empty(resamples)
    for i in range(resamples):
        picked = [
            rng.choice(groups[g], size=groups[g].size, replace=True)
            for g in rng.integers(0, len(groups), len(groups))
        ]
        out[i] = np.median(np.concatenate(picked))
    return out


def test_two_stage_interval_matches_an_independent_bootstrap():
    # Ten draws of four sequences: draw levels N(0, 1), sequences N(level, 0.3). Reference: a
    # loop-based two-stage bootstrap with another random stream and 4000 resamples. The ends
    # of two percentile intervals from independent streams differ by Monte Carlo error only:
    # about 5 % of the width each at these sizes; allow 20 % of the reference's width.
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(10), 4)
    values = rng.normal(size=10)[labels] + 0.3 * rng.normal(size=40)
    ref = np.quantile(
        _loop_two_stage(values, labels, 4000, np.random.default_rng(99)), [0.025, 0.975]
    )
    iv = run_interval(values, labels)
    assert iv is not None and iv.groups == 10 and iv.draws == 40
    width = ref[1] - ref[0]
    assert iv.low == pytest.approx(ref[0], abs=0.2 * width)
    assert iv.high == pytest.approx(ref[1], abs=0.2 * width)
    # the one-stage interval over 40 runs ignores the draws and is clearly narrower
    plain = bootstrap_interval(values)
    assert plain.high - plain.low < 0.8 * (iv.high - iv.low)


def test_run_interval_without_an_interval():
    assert run_interval([1.0], [0]) is None  # one run
    assert run_interval([1.0, -np.inf, 2.0], [0, 1, 2]) is None  # a product exactly zero
    one_draw = run_interval([1.0, 2.0, 3.0, 4.0], [5, 5, 5, 5])
    assert one_draw is not None and one_draw.groups is None  # the sequences alone
    with pytest.raises(UsageError, match="one label per run"):
        run_interval([1.0, 2.0], [0])


@st.composite
def _draws(draw):
    g = draw(st.integers(2, 12))
    b = draw(st.integers(1, 5))
    vals = draw(
        st.lists(
            st.floats(-5, 5, allow_nan=False, allow_subnormal=False), min_size=g * b, max_size=g * b
        )
    )
    return np.array(vals), np.repeat(np.arange(g), b)


@settings(max_examples=40, deadline=None)
@given(_draws(), st.integers(0, 2**32 - 1))
def test_interval_contains_the_median_and_is_deterministic(data, seed):
    values, labels = data
    a = run_interval(values, labels, seed=seed)
    b = run_interval(values, labels, seed=seed)
    assert a is not None and a == b  # the same seed, the same interval
    # The median of every resample lies between the values' extremes, and the median of all
    # runs inside the 2.5-97.5 % quantiles of the resampled medians (it is their centre).
    assert values.min() <= a.low <= a.estimate <= a.high <= values.max()


@settings(max_examples=15, deadline=None)
@given(
    st.integers(5, 12),
    st.integers(1, 4),
    st.floats(0.1, 10.0),
    st.floats(-3.0, 3.0),
    st.floats(0.0, 0.5),
)
def test_interval_shrinks_as_draws_grow(draws, sequences, scale, shift, noise):
    # Draw levels at the normal quantiles (i + 0.5)/G (an evenly spread sample, so the
    # comparison is not at the mercy of one unlucky sample), sequences spread within each draw
    # by `noise`. The interval's width goes as 1/sqrt(G): with 4 G draws it must be narrower
    # than with G (expected ratio 1/2; Monte Carlo scatter of a width at 2000 resamples is a
    # few per cent, and the order-statistic granularity at G = 5 at most about 30 %).
    def width(g: int) -> float:
        levels = stats.norm.ppf((np.arange(g) + 0.5) / g)
        within = stats.norm.ppf((np.arange(sequences) + 0.5) / sequences)
        values = shift + scale * (levels[:, None] + noise * within[None, :]).ravel()
        iv = run_interval(values, np.repeat(np.arange(g), sequences))
        assert iv is not None
        return iv.high - iv.low

    assert width(4 * draws) < 0.8 * width(draws)


def test_ratio_interval_resamples_each_sample_independently():
    # Reference: the ratio of medians of two independent two-stage bootstraps (loops above,
    # 4000 resamples each, other streams); ends within 20 % of the reference's width (Monte
    # Carlo error only, as in the test above).
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 4)
    a = -0.27 + 0.01 * rng.normal(size=10)[labels] + 0.003 * rng.normal(size=40)
    b = -0.07 + 0.008 * rng.normal(size=10)[labels] + 0.003 * rng.normal(size=40)
    iv = ratio_interval(a, labels, b, labels)
    assert iv is not None and iv.statistic == "ratio of medians"
    assert iv.estimate == pytest.approx(np.median(a) / np.median(b), rel=1e-15)
    ref_rng = np.random.default_rng(5)
    boot = _loop_two_stage(a, labels, 4000, ref_rng) / _loop_two_stage(b, labels, 4000, ref_rng)
    ref = np.quantile(boot, [0.025, 0.975])
    width = ref[1] - ref[0]
    assert iv.low == pytest.approx(ref[0], abs=0.2 * width)
    assert iv.high == pytest.approx(ref[1], abs=0.2 * width)
    # a run without a finite rate, or a zero denominator: no interval
    assert ratio_interval([-1.0, -np.inf], [0, 1], b[:2], [0, 1]) is None
    assert ratio_interval(a, labels, np.zeros(40), labels) is None


# ---- the typed result -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="small",
        cells=("rnn", "lstm", "gru"),
        hidden_size=4,
        input_size=3,
        steps=30,
        batch=3,
        seeds=(4, 5, 6),
        init=Init(forget_bias=1.0),
        quantities=Quantities(paths=True),
    )


@pytest.fixture(scope="module")
def small(small_config) -> ExperimentResult:
    return run_experiment(small_config, progress=False)


def test_decay_rate_keeps_every_run_and_its_draw(small_config, small):
    from gradflow.analysis.run import resolve_cell, run_cell

    rnn = small.cells["rnn"]
    # Reference: the rates of each seed's own analysis, fitted here, in seed order.
    per_seed = [run_cell(small_config, resolve_cell("rnn"), s)[0] for s in small.seeds]
    expect = np.concatenate(
        [
            run_decay_rates(np.asarray(r.log10_spectral_norm), rnn.decay_rate.window)
            for r in per_seed
        ]
    )
    runs = rnn.decay_rate.runs
    assert runs is not None
    np.testing.assert_allclose(runs.values, expect, rtol=0, atol=1e-12)  # same fit, same data
    assert runs.draws.tolist() == [4, 4, 4, 5, 5, 5, 6, 6, 6] and runs.n_draws == 3  # seeds
    iv = run_interval(expect, runs.draws)
    assert iv is not None and runs.interval == pytest.approx(iv.to_dict(), abs=1e-12)
    assert runs.interval["groups"] == 3 and runs.interval["resamples"] == RESAMPLES
    assert runs.interval["estimate"] == pytest.approx(rnn.decay_rate.median, abs=1e-15)
    final = np.concatenate([np.asarray(r.log10_spectral_norm)[-1] for r in per_seed])
    np.testing.assert_allclose(rnn.log10_norm_final["full"].values, final, rtol=0, atol=1e-12)
    assert "additive" not in rnn.log10_norm_final  # the RNN has no additive path
    lstm_add = small.cells["lstm"].log10_norm_final["additive"]
    band = small.cells["lstm"].paths["additive"]
    assert lstm_add.interval["estimate"] == pytest.approx(float(band.median[-1]), abs=1e-12)


def test_schema_4_round_trip_and_schema_3_still_reads(small):
    data = json.loads(dumps(small.to_dict()))
    assert data["schema_version"] == 4
    back = ExperimentResult.from_dict(data)
    for name, cell in small.cells.items():
        a, b = cell.decay_rate.runs, back.cells[name].decay_rate.runs
        np.testing.assert_array_equal(a.values, b.values)
        assert a.draws.tolist() == b.draws.tolist() and a.interval == b.interval
        assert set(back.cells[name].log10_norm_final) == set(cell.log10_norm_final)
    assert json.loads(dumps(back.to_dict())) == data
    # a schema-3 file: no per-run values, no intervals; it reads, and the summary falls back
    old = json.loads(dumps(small.to_dict()))
    old["schema_version"] = 3
    for cell in old["cells"].values():
        del cell["decay_rate"]["runs"], cell["log10_norm_final"]
    was = ExperimentResult.from_dict(old)
    assert was.cells["rnn"].decay_rate.runs is None and was.cells["rnn"].log10_norm_final == {}
    text = " ".join(summary_sentences(was))
    assert "confidence" not in text and "RNN" in text
    bad = json.loads(dumps(small.to_dict()))
    bad["cells"]["rnn"]["decay_rate"]["runs"]["draws"] = [0]
    with pytest.raises(UsageError, match="cells.rnn.decay_rate.runs.draws: expected one draw per"):
        ExperimentResult.from_dict(bad)


# ---- the summary's wording follows the data ---------------------------------------------------


def _with_rates(result: ExperimentResult, rates: dict[str, np.ndarray]) -> ExperimentResult:
    """``result`` with the given per-run rates (draws as in the result) and their intervals."""
    cells = dict(result.cells)
    for name, values in rates.items():
        s = cells[name]
        draws = s.decay_rate.runs.draws
        iv = run_interval(values, draws)
        rv = RunValues(values, draws, iv.to_dict() if iv else None)
        rate = dataclasses.replace(s.decay_rate, median=float(np.median(values)), runs=rv)
        cells[name] = dataclasses.replace(s, decay_rate=rate)
    return dataclasses.replace(result, cells=cells)


def test_summary_states_conditions_and_intervals(small):
    text = summary_sentences(small)
    assert text[0].startswith("3 cells, n = 4 hidden units, T = 30 steps")
    assert "3 weight draws × 3 input sequences = 9 runs per cell" in text[0]
    assert (
        "95 % percentile-bootstrap confidence interval (2000 resamples, resampling the " in text[0]
    )
    rv = small.cells["rnn"].decay_rate.runs
    lo, hi = (f"{v:+.3f}".replace("-", "−") for v in (rv.low, rv.high))
    assert f"[{lo}, {hi}] decades per step" in text[1]  # the rate's interval, rounded
    assert "each cell's draws independently" in text[2]
    assert "The LSTM's additive path alone" in text[2] and "] at k = 30" in text[2]


def test_summary_says_when_the_data_do_not_resolve(small):
    labels = small.cells["rnn"].decay_rate.runs.draws
    spread = np.array([-1.0, 0.0, 1.0])[np.unique(labels, return_inverse=True)[1]]
    # RNN and GRU indistinguishable (the same rates: a ratio interval about 1); the LSTM
    # clearly slower, but its rate straddles the neutral band's edge -0.01.
    result = _with_rates(
        small,
        {
            "rnn": -0.30 + 0.05 * spread,
            "lstm": -0.012 + 0.005 * spread,
            "gru": -0.30 + 0.05 * spread,
        },
    )
    text = summary_sentences(result)
    assert "times more slowly in the LSTM" in text[2]
    assert "1.0 times more slowly in the GRU, but the ratio's interval [" in text[2]
    assert "includes 1: the data do not resolve which fades faster" in text[2]
    assert (
        "The LSTM's interval reaches across −0.010 decades per step: the data do not resolve "
        "whether its gradient vanishes or stays neutral." in text[1]
    )
    assert "for 1 of them (lstm), whose regime the data do not resolve" in text[3]
    clear = _with_rates(small, {"gru": -0.2 + 0.001 * spread, "rnn": -0.3 + 0.001 * spread})
    text = summary_sentences(clear)
    assert "do not resolve" not in " ".join(text)
    assert "no cell's 95 % interval reaches across the neutral band's edges" in text[3]


# ---- the data files let a reader recompute every interval -------------------------------------


def test_data_files_recompute_every_interval(small, tmp_path):
    from gradflow.report import build_report

    out = build_report(small, None, None, tmp_path / "rep", formats=("svg",))
    with open(out / "data" / "decay_rates_runs.csv", newline="") as fh:
        runs = list(csv.DictReader(fh))
    with open(out / "data" / "decay_rates.csv", newline="") as fh:
        table = {r["cell"]: r for r in csv.DictReader(fh)}
    assert len(runs) == 27 and {r["seed"] for r in runs} == {"4", "5", "6"}
    for name in ("rnn", "lstm", "gru"):
        rows = [r for r in runs if r["cell"] == name]
        draws = [int(r["seed"]) for r in rows]
        rates = [float(r["decay_rate"]) for r in rows]
        iv = run_interval(rates, draws, seed=SEED)  # the reader's recomputation
        # every digit survives the CSV (repr round-trips a float64): equal to 1e-15
        assert float(table[name]["median_ci_low"]) == pytest.approx(iv.low, abs=1e-15)
        assert float(table[name]["median_ci_high"]) == pytest.approx(iv.high, abs=1e-15)
        assert table[name]["ci_draws"] == "3" and table[name]["ci_runs"] == "9"
        norms = [float(r["log10_norm_at_T"]) for r in rows]
        ivn = run_interval(norms, draws)
        assert float(table[name]["log10_norm_at_T_ci_low"]) == pytest.approx(ivn.low, abs=1e-12)
    # the summary's ratio "fades r times more slowly", traceable to decay_rates.csv
    lstm = [r for r in runs if r["cell"] == "lstm"]
    rnn = [r for r in runs if r["cell"] == "rnn"]
    ratio = ratio_interval(
        [float(r["decay_rate"]) for r in rnn],
        [int(r["seed"]) for r in rnn],
        [float(r["decay_rate"]) for r in lstm],
        [int(r["seed"]) for r in lstm],
    )
    assert float(table["lstm"]["rnn_rate_ratio"]) == pytest.approx(ratio.estimate, rel=1e-15)
    assert float(table["lstm"]["rnn_rate_ratio_ci_low"]) == pytest.approx(ratio.low, rel=1e-15)
    assert table["rnn"]["rnn_rate_ratio"] == ""  # the RNN against itself: left empty
    summary = " ".join(summary_sentences(small))
    assert f"{ratio.estimate:.1f} [{ratio.low:.1f}, {ratio.high:.1f}] times more slowly" in summary
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| decay rate: median [95 % CI] | q10–q90 band of the runs |" in md
    assert "[data/decay\\_rates\\_runs.csv](data/decay_rates_runs.csv)" in md.split("## Data")[0]
    assert "- [data/decay_rates_runs.csv](data/decay_rates_runs.csv)" in md.split("## Data")[1]
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<th>decay rate: median [95 % CI]</th>" in html
    assert 'href="data/decay_rates_runs.csv"' in html


def test_decay_rate_figure_draws_the_interval(small):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from gradflow import plots

    ax = plots.plot_decay_rates(small, Figure().add_subplot())
    bars = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_linewidth()[0] > 3]
    drawn = sorted(tuple(seg[:, 1]) for c in bars for seg in c.get_segments())
    # one thick bar per cell, from the interval's low to its high end (exactly the stored data)
    expect = sorted((s.decay_rate.runs.low, s.decay_rate.runs.high) for s in small.cells.values())
    assert drawn == expect


def test_cli_line_carries_each_headline_interval(small):
    from gradflow.report.summary import cli_lines

    line = cli_lines(small, "x/index.html", 1.0)[0]
    assert line.startswith("decay rates, decades per step (median [95 % CI] [band]): rnn ")
    for name in ("rnn", "lstm", "gru"):
        r = small.cells[name].decay_rate
        iv = r.interval
        assert iv is not None
        # reference: the stored interval and band, printed as the line prints a rate (3 digits)
        med, lo, hi, b0, b1 = (
            f"{v:+.3f}".replace("-", "−") for v in (r.median, iv["low"], iv["high"], r.low, r.high)
        )
        want = f"{med} [{lo}, {hi}] [{b0}, {b1}]"
        assert f"{name} {want}" in line


def test_one_sequence_per_draw_is_the_plain_bootstrap_of_the_draws():
    from gradflow.report.summary import two_stage

    # run_interval's dict: `draws` counts the values, `groups` the weight draws
    assert two_stage({"groups": 3, "draws": 9})
    assert not two_stage({"groups": 10, "draws": 10})  # one sequence each: plain bootstrap
    assert not two_stage({"draws": 10})  # one draw: the sequences alone
