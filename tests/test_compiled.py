"""The compiled backend (gradflow.compiled, extra ``fast``) against exact references.

References: the explicit product of the materialised Jacobians (``state_jacobians``, from the
code generator's NumPy kernels) and its SVD by LAPACK, and the NumPy reference path of
``analyze`` itself. Tests that run numba skip cleanly when it is absent.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gradflow import compiled, threads
from gradflow.cells import define_cell, get_cell
from gradflow.engine import _setup as _engine_setup
from gradflow.engine import analyze, state_jacobians
from gradflow.errors import NumericalError, UsageError
from gradflow.spectral import CERTIFICATES, SPECTRAL_RTOL

#: Largest |log10| difference two certified values may have: each is a lower bound within
#: ``rtol`` relative of the norm, so they differ by at most log10(1 + rtol), plus rounding.
CERTIFIED_LOG10 = np.log10(1 + SPECTRAL_RTOL) + 1e-13

USER = define_cell(
    "mixed-user",
    ["h"],
    {
        "a": "W_a @ x + U_a @ h + b_a",
        "c": "W_c @ x + U_c @ h + b_c",
        "h_new": "0.5*h + tanh(a)*sigmoid(c)",
    },
)


KINK = define_cell("rooted-fast", ["h"], {"a": "W @ x + U @ h + b", "h_new": "sqrt(abs(a))"})
# every printable construct of the scalar printer in one cell (relu, softplus, clip,
# hard_sigmoid, maximum, a vector parameter), against the NumPy kernels
EXOTIC = define_cell(
    "exotic-fast",
    ["h", "c"],
    {
        "a": "W_a @ x + U_a @ h + b_a",
        "e": "W_e @ x + U_e @ c + b_e",
        "c_new": "relu(a) * sigmoid(e) + clip(c, -2, 2) * v",
        "h_new": "softplus(e) - hard_sigmoid(a) + max(h, c_new) * 0.1",
    },
    parameters=["v"],
)


def _params(cell, n, d, rng, gain=1.2):
    return {
        p.name: rng.standard_normal(p.numeric_shape(n, d))
        * (gain / np.sqrt(n) if p.kind == "weight" else 0.3)
        for p in cell.parameters
    }


def _reference(cell, params, x):
    """log10 spectral and Frobenius norms of ds_T/ds_{T-k} by explicit products and SVD."""
    J = state_jacobians(cell, params, x)  # (T, B, m, m)
    T, B, m = J.shape[0], J.shape[1], J.shape[2]
    P = np.broadcast_to(np.eye(m), (B, m, m)).copy()
    spec, frob, spec_h = [np.zeros(B)], [np.full(B, 0.5 * np.log10(m))], [np.zeros(B)]
    n = params[cell.parameters[0].name].shape[0]
    for k in range(T):
        P = P @ J[T - 1 - k]
        spec.append(np.log10(np.linalg.svd(P, compute_uv=False)[:, 0]))
        frob.append(np.log10(np.linalg.norm(P, axis=(1, 2))))
        spec_h.append(np.log10(np.linalg.svd(P[:, :n, :n], compute_uv=False)[:, 0]))
    return np.array(spec), np.array(frob), np.array(spec_h)


@pytest.mark.parametrize(
    ("cell", "n"),
    [("rnn", 9), ("lstm", 7), ("gru", 10), (USER, 6), ("rnn", 40), ("lstm", 20), (EXOTIC, 5)],
)
def test_compiled_norms_match_explicit_products_and_the_numpy_path(cell, n):
    pytest.importorskip("numba")
    c = get_cell(cell) if isinstance(cell, str) else cell
    rng = np.random.default_rng(n)
    params = _params(c, n, 3, rng)
    x = rng.standard_normal((50, 3, 3))
    fast = analyze(c, params, x, compiled=True)
    assert "compiled" in fast.meta
    ref = analyze(c, params, x, compiled=False)
    assert "compiled" not in ref.meta
    spec, frob, spec_h = _reference(c, params, x)
    # Frobenius: the same sums of squares, 1e-12 in log10 against the explicit product
    np.testing.assert_allclose(fast.log10_frobenius_norm, frob, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.log10_frobenius_norm, ref.log10_frobenius_norm, atol=1e-12)
    # spectral: certified lower bounds within rtol of the SVD's value (and of the NumPy path's)
    for got, want in (
        (fast.log10_spectral_norm, spec),
        (fast.log10_spectral_norm_hidden, spec_h),
        (fast.log10_spectral_norm, ref.log10_spectral_norm),
        (fast.log10_spectral_norm_hidden, ref.log10_spectral_norm_hidden),
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=CERTIFIED_LOG10 + 1e-13)
    assert (fast.log10_spectral_norm <= spec + 1e-13).all()  # never above the norm
    np.testing.assert_allclose(fast.final_hidden, ref.final_hidden, rtol=0, atol=1e-15)
    meta = fast.meta["spectral"]
    estimators = 2 if len(c.state) > 1 else 1
    assert sum(meta["certificates"].values()) == 50 * 3 * estimators
    assert set(meta["certificates"]) == set(CERTIFICATES)
    assert 0 <= meta["worst_relative_gap"] <= SPECTRAL_RTOL


def test_compiled_long_chain_stays_in_the_log_domain_and_matches_numpy():
    # T = 3000 steps of a contracting RNN: norms reach ~1e-900, far below float64's range;
    # the NumPy path is the reference (itself tested against mpmath in test_engine).
    pytest.importorskip("numba")
    c = get_cell("rnn")
    rng = np.random.default_rng(5)
    params = _params(c, 16, 2, rng, gain=0.5)
    x = rng.standard_normal((3000, 2, 2))
    fast, ref = analyze(c, params, x, compiled=True), analyze(c, params, x, compiled=False)
    assert fast.log10_spectral_norm[-1].max() < -300
    np.testing.assert_allclose(fast.log10_frobenius_norm, ref.log10_frobenius_norm, atol=1e-9)
    np.testing.assert_allclose(
        fast.log10_spectral_norm, ref.log10_spectral_norm, atol=1e-9 + CERTIFIED_LOG10
    )


LINEAR = define_cell("linear-fast", ["h"], {"h_new": "U @ h + W @ x + b"})


@pytest.mark.parametrize("gain", [1e-70, 1e60])
def test_steps_beyond_the_folded_renormalisation_range_match_numpy(gain):
    # A linear cell whose every step scales the product by ~gain: the squared norms (1e-140,
    # 1e120) leave [SAFE_LOW, SAFE_HIGH], so each lag is scaled in place instead of folded
    # into the next product; the NumPy path is the reference (tolerances as above).
    pytest.importorskip("numba")
    from gradflow import compiled_kernels as ck

    assert not ck.SAFE_LOW <= gain**2 <= ck.SAFE_HIGH
    rng = np.random.default_rng(9)
    params = _params(LINEAR, 6, 2, rng)
    params["U"] = params["U"] * gain
    x = rng.standard_normal((4, 2, 2))
    fast, ref = (
        analyze(LINEAR, params, x, compiled=True),
        analyze(LINEAR, params, x, compiled=False),
    )
    assert abs(fast.log10_frobenius_norm[-1, 0] - 4 * np.log10(gain)) < 5
    np.testing.assert_allclose(fast.log10_frobenius_norm, ref.log10_frobenius_norm, atol=1e-12)
    np.testing.assert_allclose(
        fast.log10_spectral_norm, ref.log10_spectral_norm, atol=CERTIFIED_LOG10 + 1e-13
    )


def test_zero_product_is_minus_infinity_not_nan():
    # A ReLU RNN whose units are all dead after the first step: the product is exactly zero.
    pytest.importorskip("numba")
    c = get_cell("rnn-relu")
    n, d = 5, 2
    params = {p.name: np.zeros(p.numeric_shape(n, d)) for p in c.parameters}
    bias = next(p.name for p in c.parameters if p.kind == "bias")
    params[bias] = np.full(n, -1.0)
    res = analyze(c, params, np.zeros((6, 2, d)), compiled=True)
    ref = analyze(c, params, np.zeros((6, 2, d)), compiled=False)
    assert np.isneginf(res.log10_spectral_norm[1:]).all()
    np.testing.assert_array_equal(res.log10_spectral_norm, ref.log10_spectral_norm)
    np.testing.assert_array_equal(res.log10_frobenius_norm, ref.log10_frobenius_norm)


def _setup(cell, params, x):
    return _engine_setup(cell, params, x, None, "numpy", "float64")


def test_selection_rule_and_refusals(monkeypatch):
    c = get_cell("rnn")
    rng = np.random.default_rng(1)
    params = _params(c, 4, 2, rng)
    x = rng.standard_normal((5, 2, 2))
    # options the compiled chain does not compute go to the NumPy path, or are refused
    with pytest.raises(UsageError, match="default quantities"):
        analyze(c, params, x, paths=True, compiled=True)
    assert "compiled" not in analyze(c, params, x, lyapunov=2).meta
    # by default: only with enough work to repay loading numba, whether it is loaded or not
    # (the same inputs take the same path in every process: sweeps inline and pooled agree)
    monkeypatch.setattr(compiled, "available", lambda: True)
    assert not compiled.qualifies(_setup(c, params, x), None)
    assert compiled.qualifies(_setup(c, params, np.zeros((5000, 2, 2))), None)
    monkeypatch.setitem(sys.modules, "numba", sys)  # stands for a loaded numba
    assert not compiled.qualifies(_setup(c, params, x), None)
    monkeypatch.setenv(compiled.ENV, "0")
    assert not compiled.qualifies(_setup(c, params, np.zeros((5000, 2, 2))), None)
    assert "compiled" not in analyze(c, params, x).meta
    # without numba: the reference path, and a clear refusal when asked for
    monkeypatch.delenv(compiled.ENV)
    monkeypatch.setattr(compiled, "available", lambda: False)
    assert "compiled" not in analyze(c, params, x).meta
    with pytest.raises(UsageError, match="pip install 'gradflow\\[fast\\]'"):
        analyze(c, params, x, compiled=True)


def test_plan_comes_from_the_derivation():
    # LSTM: the h column holds weights (dense), the c column only diagonal blocks.
    pl = compiled.plan(get_cell("lstm"))
    assert pl is not None
    assert pl.dense.tolist() == [1, 0]
    assert pl.diag.tolist() == [[1, 1], [1, 1]]
    assert compiled.plan(get_cell("rnn")).terms.shape == (1, 5)
    # a term that chains two weights (reset applied before the hidden matmul) is not planned
    assert compiled.plan(get_cell("gru-reset-before")) is None


def test_importing_the_engine_does_not_import_numba():
    code = "import sys, gradflow.engine; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_batch_threads_policy(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    for var in threads.BLAS_VARS:
        monkeypatch.delenv(var, raising=False)
    threads.set_threads(None)
    assert threads.batch_threads(1) == 1
    assert threads.batch_threads(64) == threads.cores()
    assert threads.batch_threads(64, threads=3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.batch_threads(64) == 1
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.batch_threads(64) == 2


def test_compiled_chain_runs_inside_the_thread_policy(monkeypatch):
    pytest.importorskip("numba")
    from threadpoolctl import threadpool_info, threadpool_limits

    from gradflow import compiled_kernels

    def blas() -> set[int]:
        return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}

    if not blas():
        pytest.skip("threadpoolctl finds no BLAS library in this NumPy")
    seen: list[tuple[set[int], int]] = []
    real = compiled_kernels.chain_chunk

    def spy(*args):
        import numba

        seen.append((blas(), numba.get_num_threads()))
        return real(*args)

    monkeypatch.setattr(compiled_kernels, "chain_chunk", spy)
    c = get_cell("rnn")
    rng = np.random.default_rng(0)
    params = _params(c, 4, 2, rng)
    with threadpool_limits(limits=2, user_api="blas"):
        res = analyze(c, params, rng.standard_normal((5, 3, 2)), threads=1, compiled=True)
    # one BLAS thread and one numba thread inside, as asked
    assert seen and all(s == ({1}, 1) for s in seen)
    assert res.meta["compiled"]["threads"] == 1


@pytest.mark.parametrize(("name", "n"), [("rnn", 1), ("lstm", 2), ("gru", 3)])
def test_one_sequence_and_sizes_below_the_block(name, n):
    # B = 1 (NumPy's broadcast views are read-only there) and n below the Krylov block width
    pytest.importorskip("numba")
    c = get_cell(name)
    rng = np.random.default_rng(n)
    params = _params(c, n, 2, rng, gain=1.5)
    x = rng.standard_normal((30, 1, 2))
    fast = analyze(c, params, x, compiled=True)
    spec, frob, _ = _reference(c, params, x)
    # references: SVD and norm of the explicit product (see the module docstring)
    np.testing.assert_allclose(fast.log10_frobenius_norm, frob, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.log10_spectral_norm, spec, rtol=0, atol=CERTIFIED_LOG10)


def test_concurrent_calls_from_python_threads():
    # numba's workqueue layer aborts on concurrent parallel launches; analyze serialises them
    pytest.importorskip("numba")
    from concurrent.futures import ThreadPoolExecutor

    c = get_cell("lstm")
    rng = np.random.default_rng(2)
    params = _params(c, 6, 2, rng)
    x = rng.standard_normal((40, 4, 2))
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: analyze(c, params, x, compiled=True), range(8)))
    # the same inputs give the same numbers, bit for bit, whichever thread ran them
    for r in runs[1:]:
        np.testing.assert_array_equal(r.log10_spectral_norm, runs[0].log10_spectral_norm)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", USER, EXOTIC])
def test_compiled_rollout_matches_the_numpy_kernels(cell):
    # The generated scalar kernel against the code generator's NumPy step and factors (the
    # same SymPy expressions, evaluated by NumPy's array functions): states and every factor
    # to 1e-13 relative (both are IEEE evaluations of one expression; libm and NumPy's
    # vectorised tanh/exp differ by a few ulp).
    pytest.importorskip("numba")
    from gradflow.compiled_codegen import rollout

    c = get_cell(cell) if isinstance(cell, str) else cell
    rng = np.random.default_rng(3)
    n, d, T, B = 6, 3, 12, 4
    params = _params(c, n, d, rng, gain=1.5)
    x = rng.standard_normal((T, B, d))
    su = _setup(c, params, x)
    ro = rollout(c)
    assert ro is not None and ro.factors == len(su.kernels.layout.diags)
    s = np.array(su.s0)
    F = np.empty((ro.factors, T, B, n))
    u = np.ascontiguousarray(su.kernels.input_projection(x, su.q))
    assert ro.run(s, u, F, n, *(su.q[k] for k in ro.args)) == 0
    ref, vals = np.array(su.s0), []
    for t in range(T):
        ref, v = su.kernels.step(ref, u[t], su.q)
        vals.append(v)
    V = [np.stack([v[j] for v in vals]) for j in range(len(su.kernels.layout.needed))]
    Fref = np.stack(su.kernels.factors(V, su.q, (T, B, n)))
    np.testing.assert_allclose(s, ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(F, Fref, rtol=1e-13, atol=1e-15)


def test_compiled_rollout_refuses_what_it_cannot_print():
    # an affine node fed by a computed node (reset applied before the hidden matmul)
    from gradflow.compiled_codegen import rollout

    assert rollout(get_cell("gru-reset-before")) is None


def test_a_non_finite_factor_is_named_like_the_numpy_path():
    # sqrt(abs(a)) has no derivative at a = 0: the compiled rollout finds it and the NumPy
    # kernels name the step and sequence (the message of test_engine's reference test).
    pytest.importorskip("numba")
    n = 2
    params = {"W": np.ones((n, 1)), "U": np.zeros((n, n)), "b": np.zeros(n)}
    x = np.ones((10, 3, 1))
    x[4, 2, 0] = 0.0  # a = 0 at step 5 for sequence 2 only
    with pytest.raises(NumericalError, match=r"'rooted-fast' is NaN or inf at step 5, sequence 2"):
        analyze(KINK, params, x, compiled=True)


def test_a_non_finite_state_is_named_with_its_step():
    pytest.importorskip("numba")
    c = get_cell("rnn-relu")
    n, d = 3, 1
    params = {p.name: np.full(p.numeric_shape(n, d), 10.0) for p in c.parameters}
    x = np.full((400, 2, d), 1e6)
    with pytest.raises(NumericalError, match=r"rollout of 'rnn-relu' produced NaN or inf at step"):
        analyze(c, params, x, compiled=True)
    with pytest.raises(NumericalError) as ref:
        analyze(c, params, x, compiled=False)
    with pytest.raises(NumericalError) as got:
        analyze(c, params, x, compiled=True)
    assert str(got.value) == str(ref.value)


def _with_singular_values(s, rng, rows):
    """A ``rows x len(s)`` matrix with singular values ``s`` (random singular vectors)."""
    left, _ = np.linalg.qr(rng.standard_normal((rows, len(s))))
    right, _ = np.linalg.qr(rng.standard_normal((len(s), len(s))))
    return (left * s) @ right.T


SPECTRA = {
    # what each certificate meets in a chain: settled low-rank long lags, fast-decaying
    # mid lags, flat early lags, a crowded top and a rank-deficient product
    "rank-3": np.r_[3.0, 2.0, 1.0, np.zeros(21)],
    "geometric": 0.5 ** np.arange(24.0),
    "flat": np.linspace(1.0, 0.8, 24),
    "crowded": np.r_[1.0 - 1e-6 * np.arange(8), 0.5 * np.ones(16)],
    "decaying-top-pair": np.r_[1.0, 0.999, 0.3 ** np.arange(1.0, 23.0)],
}


def test_every_certificate_of_the_compiled_kernel_proves_its_value():
    # ck._certified against LAPACK's SVD: each returned value is a lower bound of ||A||_2 and
    # value * (1 + gap) an upper bound, gap <= rtol, up to rounding (1e-14 relative: a few
    # hundred eps at m = 24); the spectra and iteration limits drive every kind of
    # certificate (bracket, residual, Cholesky, exact), counted below.
    pytest.importorskip("numba")
    from gradflow import compiled_certify as ck

    rng = np.random.default_rng(14)
    kinds = set()
    for name, s in SPECTRA.items():
        for maxit in (0, 4):
            A = np.asfortranarray(_with_singular_values(s, rng, 24))
            sigma = np.linalg.svd(A, compute_uv=False)[0]
            U, _ = np.linalg.qr(rng.standard_normal((24, 4)))
            ws = ck._workspace(24, 24, 4)
            for _ in range(3):  # a warm block from the second call on (the fast bracket)
                fro2 = float(np.sum(A * A))
                value, gap, kind, _it = ck._certified(
                    A, fro2, U, ws, SPECTRAL_RTOL, ck.EPS, ck.TINY, maxit
                )
                kinds.add(CERTIFICATES[kind])
                assert 0.0 <= gap <= SPECTRAL_RTOL, (name, maxit, kind)
                assert value <= sigma * (1 + 1e-14), (name, maxit, kind)
                assert sigma <= value * (1 + gap) * (1 + 1e-14), (name, maxit, kind)
                np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-12)  # still orthonormal
    assert kinds == {"bracket", "residual", "cholesky", "exact"}


def test_the_fast_bracket_never_accepts_an_unconverged_quotient():
    # The warm vector of the fast bracket points at the previous lag's top direction; here
    # the next product keeps the block's span (the bracket closes) but swaps the top pair
    # (1 vs 0.999), so a few power steps leave the quotient 1e-3 low: the b x b Cholesky test
    # must refuse it (the value then comes from the small eigenproblem). Reference: the SVD,
    # tolerances as above.
    pytest.importorskip("numba")
    from gradflow import compiled_certify as ck

    rng = np.random.default_rng(3)
    left, _ = np.linalg.qr(rng.standard_normal((16, 4)))
    right, _ = np.linalg.qr(rng.standard_normal((16, 4)))
    U, _ = np.linalg.qr(rng.standard_normal((16, 4)))
    ws = ck._workspace(16, 16, 4)
    for s in ([1.0, 0.999, 0.5, 0.25], [1.0, 0.999, 0.5, 0.25], [0.999, 1.0, 0.5, 0.25]):
        A = np.asfortranarray((left * s) @ right.T)
        value, gap, kind, _it = ck._certified(
            A, float(np.sum(A * A)), U, ws, SPECTRAL_RTOL, ck.EPS, ck.TINY, 4
        )
        assert kind == 0 or s[0] == 1.0  # the swapped product: the bracket, as it closes
        assert value <= 1.0 * (1 + 1e-14) and 1.0 <= value * (1 + gap) * (1 + 1e-14)
