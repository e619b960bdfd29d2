"""The mean-field column's warnings for diagonal recurrences (IndRNN, minGRU, ...): why the
annealed rate does not describe such a network, why IndRNN's is so low under PyTorch's
init, and products that are exactly zero (dead ReLU units)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradflow.analysis.experiment import (
    ExperimentConfig,
    InputsConfig,
    Quantities,
    run_cell,
    run_experiment,
)
from gradflow.analysis.summarise import dead_product_warning, diagonal_warnings
from gradflow.cells import get_cell
from gradflow.initialisers import Init
from gradflow.report.science import meanfield_notes


def _config(cells: tuple[str, ...], n: int) -> ExperimentConfig:
    return ExperimentConfig(
        name="notes",
        cells=cells,
        hidden_size=n,
        input_size=4,
        steps=40,
        batch=2,
        seeds=(0, 1),
        init=Init(scheme="torch"),
        inputs=InputsConfig("gaussian", 1.0),
        quantities=Quantities(paths=True),
    )


@pytest.fixture(scope="module")
def indrnn():
    cfg = _config(("indrnn",), 8)
    return cfg, run_experiment(cfg, progress=False)


def test_indrnn_is_warned_with_its_bound_and_its_dead_runs(indrnn):
    cfg, result = indrnn
    s = result.cells["indrnn"]
    assert s.annealed is not None
    warnings = s.annealed.warnings
    assert any(w.startswith("diagonal Jacobian: each unit is a chain") for w in warnings)
    (bound,) = [w for w in warnings if w.startswith("PyTorch's fan-in rule")]
    # 1/sqrt(8) = 0.354; -log10 of it = 0.45 decades per step
    assert "|u_i| < 0.35 at n = 8" in bound and "at least 0.45 decades per step" in bound
    assert "init scheme 'paper'" in bound
    # The bound it states holds on the data: |u_i| < 1/sqrt(n) and J_t = diag(u relu'), so
    # ||P_k||_F <= sqrt(n) n^(-k/2) (reference: the parameters themselves; 1e-12 decades).
    c = get_cell("indrnn")
    dead_runs = 0
    for seed in cfg.seeds:
        res, params, _ = run_cell(cfg, c, seed)
        assert np.abs(params["u"]).max() < 1 / math.sqrt(8)
        fro = res.log10_frobenius_norm
        k = np.arange(fro.shape[0])[:, None]
        assert np.all(fro <= 0.5 * math.log10(8) - 0.5 * k * math.log10(8) + 1e-12)
        dead_runs += int(np.isneginf(fro).any(axis=0).sum())
    # the dead-product warning counts the runs whose product is exactly zero (engine's -inf)
    dead = [w for w in warnings if w.startswith("the product is exactly zero")]
    assert dead_runs > 0 and dead == [dead_product_warning(_all_fro(cfg, c))]
    assert f"in {dead_runs} of 4 runs" in dead[0]
    notes = meanfield_notes(result)
    assert any(n.startswith("Warning (indrnn): PyTorch's fan-in rule") for n in notes)


def _all_fro(cfg: ExperimentConfig, c) -> np.ndarray:
    return np.concatenate(
        [run_cell(cfg, c, seed)[0].log10_frobenius_norm for seed in cfg.seeds], axis=1
    )


def test_only_diagonal_cells_get_the_diagonal_warning():
    torch = Init(scheme="torch")
    assert diagonal_warnings(get_cell("lstm"), torch, 32) == []
    assert diagonal_warnings(get_cell("rnn-relu"), torch, 32) == []
    (mingru,) = diagonal_warnings(get_cell("mingru"), torch, 32)  # no recurrent vector
    assert mingru.startswith("diagonal Jacobian")
    # IndRNN's u bound only under PyTorch's rule (the Gaussian scheme draws u from U(0, 1))
    assert len(diagonal_warnings(get_cell("indrnn"), torch, 32)) == 2
    assert len(diagonal_warnings(get_cell("indrnn"), Init(scheme="gaussian"), 32)) == 1


def test_dead_product_warning_counts_runs_and_lags():
    fro = np.zeros((6, 3))
    assert dead_product_warning(fro) is None
    fro[4:, 0] = -np.inf
    fro[2:, 2] = -np.inf
    fro[1, 1] = np.nan  # not a zero product
    w = dead_product_warning(fro)
    assert w is not None and "in 2 of 3 runs (first at lag 2)" in w
    fro[5:, 1] = -np.inf
    assert "in 3 of 3 runs (by lag 5)" in dead_product_warning(fro)  # type: ignore[operator]
