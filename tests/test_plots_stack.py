"""Figures of a stack analysis (gradflow.plots.stack): each draws exactly the result's arrays.

The result is made from the lstm2 and gru_bi fixtures of ``tests/data/stacks/`` (whose numbers
tests/test_stack.py checks against torch autograd); here the reference is the result itself:
every line's y data must equal the batch median of the array it stands for (exact, nothing
recomputed), with exact zeros (-inf in log10) left undrawn.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

from gradflow.cli import cli
from gradflow.errors import UsageError
from gradflow.plots import stack as sp
from gradflow.results import StackResult, load_result
from gradflow.stack import analyze_stack
from tests.test_stack import _model


@pytest.fixture(scope="module")
def uni() -> StackResult:
    _, layers, x = _model("lstm2")
    return analyze_stack(layers, x, gradient="last")


@pytest.fixture(scope="module")
def bi() -> StackResult:
    _, layers, x = _model("gru_bi")
    return analyze_stack(layers, x, gradient="last")


def _median(values: np.ndarray) -> np.ndarray:
    rows = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all -inf lag is NaN, not drawn
        return np.nanmedian(rows, axis=1)


def _drawn(plot: str, result: StackResult) -> dict[str, np.ndarray]:
    ax = getattr(sp, plot)(result, Figure().add_subplot())
    return {ln.get_label(): np.asarray(ln.get_ydata(), float) for ln in ax.get_lines()}


def _check(drawn: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(drawn) == list(want)
    for label, values in want.items():
        # nanquantile (drawn) and nanmedian (here) may differ in the last bit: 1e-14
        np.testing.assert_allclose(drawn[label], _median(values), rtol=0, atol=1e-14)


def test_each_figure_draws_the_result_arrays(uni: StackResult) -> None:
    names = ["l0", "l1"]
    assert uni.layer_log10_spectral_norm is not None
    assert uni.cross_log10_spectral_norm is not None
    assert uni.log10_input_spectral_norm is not None
    assert uni.layer_log10_input_spectral_norm is not None
    _check(
        _drawn("plot_layer_decay", uni),
        dict(zip(names, uni.layer_log10_spectral_norm, strict=True)),
    )
    reach = _drawn("plot_cross_layer_reach", uni)
    _check(reach, dict(zip(names, uni.cross_log10_spectral_norm, strict=True)))
    assert np.isnan(reach["l0"][0])  # ds^L_T/ds^0_T is exactly zero at lag 0: not drawn
    memory = {"joint": uni.log10_input_spectral_norm}
    memory |= dict(zip(names, uni.layer_log10_input_spectral_norm, strict=True))
    _check(_drawn("plot_memory_curves", uni), memory)
    _check(_drawn("plot_lag_gradient", uni), dict(sorted(uni.log10_lag_gradient_norm.items())))
    _check(_drawn("plot_tail_fraction", uni), dict(sorted(uni.lag_tail_fraction.items())))
    assert len(uni.log10_lag_gradient_norm) == 32  # 16 tensors per LSTM layer (4 gates x 4)


def test_bidirectional_figures(bi: StackResult) -> None:
    assert bi.layer_log10_spectral_norm is not None and bi.log10_input_gradient_norm is not None
    names = ["l0", "l0_reverse", "l1", "l1_reverse"]
    _check(
        _drawn("plot_layer_decay", bi), dict(zip(names, bi.layer_log10_spectral_norm, strict=True))
    )
    _check(_drawn("plot_memory_curves", bi), {"loss: last": bi.log10_input_gradient_norm})
    with pytest.raises(UsageError, match="no cross-layer blocks"):
        sp.plot_cross_layer_reach(bi, Figure().add_subplot())
    assert [stem for stem, _ in sp.stack_figure_set(bi)] == [
        "layer_decay",
        "memory_curves",
        "lag_gradient",  # a bidirectional stack has its lag split too (docs/stacks.md)
        "tail_fraction",
    ]


def test_plots_refuse_other_results() -> None:
    from gradflow.engine import analyze

    rng = np.random.default_rng(0)
    p = {"W_ih": rng.normal(size=(3, 2)), "W_hh": rng.normal(size=(3, 3)) / 3}
    p |= {"b_ih": np.zeros(3), "b_hh": np.zeros(3)}
    res = analyze("rnn", p, rng.normal(size=(4, 1, 2)))
    with pytest.raises(UsageError, match="needs a stack analysis result, not 'analysis'"):
        sp.plot_layer_decay(res)


def test_gradflow_plot_draws_a_saved_stack_result(uni: StackResult, tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    uni.save(path)
    out = CliRunner().invoke(
        cli, ["plot", str(path), "--format", "svg", "--out", str(tmp_path / "f")]
    )
    assert out.exit_code == 0, out.output
    stems = sorted(Path(line).stem for line in out.output.split())
    assert stems == [
        "cross_layer_reach",
        "lag_gradient",
        "layer_decay",
        "memory_curves",
        "tail_fraction",
    ]
    again = tmp_path / "g"
    sp.plot_stack_result(load_result(path), again, formats=("svg",))
    for stem in stems:  # deterministic files
        assert (tmp_path / "f" / f"{stem}.svg").read_bytes() == (again / f"{stem}.svg").read_bytes()
