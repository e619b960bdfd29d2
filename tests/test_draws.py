"""Grouped weights (issue 16 item 5): ``analyze(..., draws=D)`` equals the D separate calls.

The reference of every comparison is the engine itself, called once per weight draw on that
draw's sequences (the separate calls are checked against finite differences, mpmath and
PyTorch elsewhere: tests/test_engine.py, tests/test_torch_reference.py). Everything but the
spectral norms is computed sequence by sequence with the same operations, and agrees to
1e-12 in log10 (in practice bitwise). A spectral norm is certified to ``SPECTRAL_RTOL``
relative (gradflow/spectral.py) by an estimator whose start vectors and batch-wide stopping
decisions depend on the whole batch, so two certified values of the same norm agree to
``2 log10(1 + rtol)`` (about 8.7e-12), and that is the tolerance used for them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.analysis.config import ExperimentConfig
from gradflow.analysis.run import resolve_cell, run_cell, run_seeds
from gradflow.cells import define_cell, get_cell
from gradflow.engine import analyze, rollout, split_draws, state_jacobians
from gradflow.errors import InputsError, UsageError, WeightsError
from gradflow.initialisers import Init, initialise
from gradflow.spectral import SPECTRAL_RTOL

#: Two certified values of one spectral norm (each within rtol above or below the truth).
SPEC_TOL = 2 * math.log10(1 + SPECTRAL_RTOL)
#: Everything computed sequence by sequence: the same operations on the same numbers.
EXACT_TOL = 1e-12


def user_gate() -> object:
    """A user cell with a recurrent weight and a gate (dense Jacobian, two weights)."""
    return define_cell(
        "user-gate",
        "h",
        {
            "a": "W @ x + U @ h + b",
            "ag": "V @ h + c",
            "g": "sigmoid(ag)",
            "h_new": "g*h + (1 - g)*tanh(a)",
        },
    )


def user_oscillator() -> object:
    """A user cell with vector parameters coupling two states unit by unit: 2 x 2 blocks
    (the block-diagonal path of gradflow/diagonal.py)."""
    return define_cell(
        "user-oscillator",
        ["y", "z"],
        {
            "a": "W @ x + b",
            "z_new": "z + 0.1*(tanh(w*y + v*z + a) - g*y - e*z)",
            "y_new": "y + 0.1*z_new",
        },
        parameters=["w", "v", "g", "e"],
    )


CELLS = ["rnn", "rnn-relu", "lstm", "gru", "mgu", "indrnn", "minimalrnn", "lstm-proj"]


def _cell(name: str) -> object:
    return {"user-gate": user_gate, "user-oscillator": user_oscillator}.get(
        name, lambda: get_cell(name)
    )()


def _params(cell: object, n: int, d: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for p in cell.parameters:  # type: ignore[attr-defined]
        if p.name in ("w", "v", "g", "e"):  # the oscillator's couplings
            out[p.name] = rng.uniform(0.2, 0.9, p.numeric_shape(n, d))
            continue
        out[p.name] = rng.standard_normal(p.numeric_shape(n, d)) / math.sqrt(n)
    return out


def _draws(cell: object, n: int, d: int, D: int) -> list[dict[str, np.ndarray]]:
    if getattr(cell, "name", "") in ("user-gate", "user-oscillator"):
        return [_params(cell, n, d, 100 + i) for i in range(D)]
    return [initialise(cell, n, d, Init(), np.random.default_rng(100 + i)) for i in range(D)]


def _stacked(draws: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([p[k] for p in draws]) for k in draws[0]}


def _close(a: object, b: object, tol: float, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    if a.dtype == bool:
        np.testing.assert_array_equal(a, b, err_msg=what)
        return
    np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b), err_msg=what)
    np.testing.assert_array_equal(a[~np.isfinite(a)], b[~np.isfinite(b)], err_msg=what)
    ok = np.isfinite(a)
    np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=tol, err_msg=what)


def _assert_same(grouped: object, parts: list[object], spec_tol: float = SPEC_TOL) -> None:
    """Every result array of the grouped call against the separate calls, draw by draw."""
    for g, s in zip(split_draws(grouped, len(parts)), parts, strict=True):  # type: ignore[arg-type]
        assert g.batch == s.batch
        _close(g.log10_spectral_norm, s.log10_spectral_norm, spec_tol, "spectral")
        _close(g.log10_spectral_norm_hidden, s.log10_spectral_norm_hidden, spec_tol, "h block")
        _close(g.log10_frobenius_norm, s.log10_frobenius_norm, EXACT_TOL, "frobenius")
        _close(g.final_hidden, s.final_hidden, EXACT_TOL, "final hidden")
        assert set(g.paths) == set(s.paths)
        for p in g.paths:
            _close(g.paths[p]["log10_spectral_norm"], s.paths[p]["log10_spectral_norm"],
                   spec_tol, p)  # fmt: skip
            _close(g.paths[p]["log10_frobenius_norm"], s.paths[p]["log10_frobenius_norm"],
                   EXACT_TOL, p)  # fmt: skip
        assert set(g.log10_singular_values) == set(s.log10_singular_values)
        for k in g.log10_singular_values:
            _close(g.log10_singular_values[k], s.log10_singular_values[k], EXACT_TOL, f"sv {k}")
            if s.singular_certified is not None:
                _close(g.singular_certified[k], s.singular_certified[k], 0, f"certified {k}")
        for f in ("lyapunov_exponents", "log10_gradient_norm"):
            if getattr(s, f) is None:
                assert getattr(g, f) is None
            else:
                _close(getattr(g, f), getattr(s, f), EXACT_TOL, f)


def _certificates(meta: dict) -> int:  # type: ignore[type-arg]
    return sum(meta["spectral"]["certificates"].values())


@pytest.mark.parametrize("name", [*CELLS, "user-gate", "user-oscillator"])
def test_grouped_call_equals_the_separate_calls(name: str) -> None:
    cell = _cell(name)
    D, B, T, n, d = 3, 2, 24, 5, 3
    draws = _draws(cell, n, d, D)
    x = np.random.default_rng(7).standard_normal((T, D * B, d))
    kw = {"paths": True, "singular_lags": (4, 24), "lyapunov": 3, "gradient": "sum"}
    grouped = analyze(cell, _stacked(draws), x, draws=D, **kw)
    parts = [analyze(cell, p, x[:, i * B : (i + 1) * B], **kw) for i, p in enumerate(draws)]
    _assert_same(grouped, parts)
    # certificates included: every value of the grouped call certified, as many as in the parts
    assert _certificates(grouped.meta) == sum(_certificates(p.meta) for p in parts)
    assert grouped.meta["draws"] == D
    assert grouped.meta["structure"]["kernel"] == parts[0].meta["structure"]["kernel"]


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "user-gate"])
def test_one_estimator_per_draw_gives_the_separate_calls_bit_for_bit(name: str) -> None:
    """``spectral_per_draw``: each draw's estimator draws the separate call's random stream
    and takes its decisions, so even the spectral norms and the certificates of each kind
    are the separate calls' exactly (tolerance 0)."""
    cell = _cell(name)
    D, B, T, n, d = 3, 2, 24, 5, 3
    draws = _draws(cell, n, d, D)
    x = np.random.default_rng(7).standard_normal((T, D * B, d))
    kw = {"paths": True, "lyapunov": 2}
    grouped = analyze(cell, _stacked(draws), x, draws=D, spectral_per_draw=True, **kw)
    parts = [analyze(cell, p, x[:, i * B : (i + 1) * B], **kw) for i, p in enumerate(draws)]
    _assert_same(grouped, parts, spec_tol=0.0)
    for kind, count in grouped.meta["spectral"]["certificates"].items():
        assert count == sum(p.meta["spectral"]["certificates"][kind] for p in parts), kind


@pytest.mark.parametrize("name", ["lstm", "user-gate", "indrnn"])
def test_grouped_jacobians_and_states_are_the_separate_ones_bitwise(name: str) -> None:
    """The kernels themselves: per-sequence weights give each sequence its draw's J_t."""
    cell = _cell(name)
    D, B, T, n, d = 3, 2, 6, 4, 3
    draws = _draws(cell, n, d, D)
    x = np.random.default_rng(8).standard_normal((T, D * B, d))
    J = state_jacobians(cell, _stacked(draws), x, draws=D)
    S = rollout(cell, _stacked(draws), x, draws=D)
    for i, p in enumerate(draws):
        part = x[:, i * B : (i + 1) * B]
        np.testing.assert_array_equal(J[:, i * B : (i + 1) * B], state_jacobians(cell, p, part))
        np.testing.assert_array_equal(S[:, i * B : (i + 1) * B], rollout(cell, p, part))


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(["rnn", "gru", "lstm", "indrnn"]),
    D=st.integers(1, 4),
    B=st.integers(1, 3),
    T=st.integers(1, 9),
    gradient=st.sampled_from([None, "last", "sum"]),
)
def test_grouped_calls_equal_separate_calls_for_any_d_and_b(
    name: str, D: int, B: int, T: int, gradient: str | None
) -> None:
    cell = get_cell(name)
    n, d = 4, 2
    draws = _draws(cell, n, d, D)
    x = np.random.default_rng(D * 10 + B).standard_normal((T, D * B, d))
    grouped = analyze(cell, _stacked(draws), x, draws=D, gradient=gradient)
    parts = [
        analyze(cell, p, x[:, i * B : (i + 1) * B], gradient=gradient) for i, p in enumerate(draws)
    ]
    _assert_same(grouped, parts)


def test_grouped_weights_at_the_fused_size() -> None:
    """n >= FUSED_FROM: the separate calls take the fused apply, the grouped call ``apply``."""
    cell = get_cell("gru")
    D, B, T, n, d = 2, 1, 3, 128, 2
    draws = _draws(cell, n, d, D)
    x = np.random.default_rng(9).standard_normal((T, D * B, d))
    grouped = analyze(cell, _stacked(draws), x, draws=D, compiled=False)
    parts = [analyze(cell, p, x[:, i : i + 1], compiled=False) for i, p in enumerate(draws)]
    _assert_same(grouped, parts)


def test_bad_grouped_calls_are_refused_with_one_line() -> None:
    cell = get_cell("rnn")
    draws = _draws(cell, 3, 2, 2)
    P = _stacked(draws)
    x = np.zeros((4, 4, 2))
    cases = [
        (InputsError, lambda: analyze(cell, P, np.zeros((4, 3, 2)), draws=2)),  # 3 % 2
        (WeightsError, lambda: analyze(cell, draws[0], x, draws=2)),  # no leading axis
        (WeightsError, lambda: analyze(cell, P, x, draws=4)),  # leading axis 2, not 4
        (UsageError, lambda: analyze(cell, P, x, draws=0)),
        (UsageError, lambda: analyze(cell, P, x, draws=True)),  # type: ignore[arg-type]
        (UsageError, lambda: analyze(cell, P, x, draws=2, compiled=True)),
        (UsageError, lambda: analyze(cell, P, x, draws=2, backend="cupy")),
        (UsageError, lambda: split_draws(analyze(cell, P, x, draws=2), 3)),
    ]
    for kind, call in cases:
        with pytest.raises(kind) as err:
            call()
        assert "\n" not in str(err.value)


def test_run_seeds_is_the_per_seed_loop() -> None:
    """An experiment cell's seeds in one grouped call: the seeds' parameters and inputs are
    drawn exactly as run_cell draws them, and the results are the per-seed loop's."""
    cfg = ExperimentConfig.from_dict(
        {"cells": ["lstm"], "hidden_size": 6, "steps": 20, "batch": 2, "seeds": [0, 3, 5],
         "quantities": {"paths": True, "lyapunov": 2, "gradient": "last"}}
    )  # fmt: skip
    cell = resolve_cell("lstm")
    grouped = run_seeds(cfg, cell, tuple(cfg.seeds))
    loop = [run_cell(cfg, cell, seed) for seed in cfg.seeds]
    for (rg, pg, xg), (rl, pl, xl) in zip(grouped, loop, strict=True):
        assert pg.keys() == pl.keys()
        for k in pg:
            np.testing.assert_array_equal(pg[k], pl[k])
        np.testing.assert_array_equal(xg, xl)
        _assert_same(rg, [rl])
