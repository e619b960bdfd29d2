"""The engine against independent references.

* central finite differences of the unrolled network (the forward equations only);
* mpmath at 50 digits: the explicit SymPy Jacobian (``Matrix.jacobian`` of the unrolled step,
  never the chain-rule derivation) lambdified to mpmath and multiplied out, including a case
  whose product falls below 1e-400;
* dense NumPy products of the materialised Jacobians with exact SVDs, QR (Lyapunov) and
  explicit vector-Jacobian products.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.backend import cupy_available
from gradflow.cells import CATALOGUE, get_cell
from gradflow.engine import analyze, rollout, state_jacobians
from gradflow.errors import InputsError, NumericalError, WeightsError
from gradflow.results import AnalysisResult
from gradflow.symbolic.explicit import explicit_step

CELLS = sorted(CATALOGUE)


def _proj(cell, n):
    """lstm-proj's second size in these tests: p = n - 1 (at least 1)."""
    return max(1, n - 1) if cell.has_second_size else None


def _params(cell, n, d, rng, scale=1.0, bias=0.5):
    return {
        p.name: rng.standard_normal(p.numeric_shape(n, d, _proj(cell, n)))
        * (scale / np.sqrt(n) if p.kind == "weight" else bias)
        for p in cell.parameters
    }


def _dense_reference(J):
    """log10 spectral/Frobenius norms and h-block spectral norms of J_T ... J_{T-k+1}."""
    T, B, m, _ = J.shape
    P = np.broadcast_to(np.eye(m), (B, m, m)).copy()
    scale = np.zeros(B)
    spec, frob = [np.zeros(B)], [np.full(B, 0.5 * np.log10(m))]
    Ps = [P.copy()]
    for t in range(T - 1, -1, -1):
        P = P @ J[t]
        f = np.linalg.norm(P, axis=(1, 2))
        P = P / f[:, None, None]
        scale += np.log10(f)
        spec.append(scale + np.log10(np.linalg.norm(P, 2, axis=(1, 2))))
        frob.append(scale.copy())
        Ps.append(P * 10.0 ** scale[:, None, None] if np.all(np.abs(scale) < 250) else None)
    return np.array(spec), np.array(frob), Ps


def _fd_products(cell, params, x, eps=1e-4):
    """ds_T/ds_{T-k} for every k by fourth-order central differences of the rollout from
    s_{T-k}: truncation O(eps^4) ~ 1e-16, rounding ~ 1e-16/eps ~ 1e-12 absolute."""
    T, B, _ = x.shape
    states = rollout(cell, params, x)
    m = states.shape[-1]
    out = [np.broadcast_to(np.eye(m), (B, m, m))]
    for k in range(1, T + 1):
        prods = np.zeros((B, m, m))
        for b in range(B):
            base = states[T - k, b]
            E = eps * np.eye(m)
            pert = np.concatenate([base + E, base - E, base + 2 * E, base - 2 * E])
            xs = np.repeat(x[T - k :, b : b + 1], 4 * m, axis=1)
            e = rollout(cell, params, xs, s0=pert)[-1]
            d1, d2 = e[:m] - e[m : 2 * m], e[2 * m : 3 * m] - e[3 * m :]
            prods[b] = ((8 * d1 - d2) / (12 * eps)).T
        out.append(prods)
    return np.array(out)


def _relu_safe(cell, params, x):
    """True unless a relu argument sits within 1e-3 of its kink (FD across it is invalid)."""
    if "relu" not in cell.name and cell.name != "indrnn":
        return True
    J = state_jacobians(cell, params, x)
    return bool(np.all(np.isfinite(J)))


@pytest.mark.parametrize("name", CELLS)
def test_norms_match_central_finite_differences(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    cell = get_cell(name)
    n, d, T, B = 3, 2, 12, 2
    params = _params(cell, n, d, rng, scale=1.5)
    if cell.name == "indrnn":
        params["u"] = rng.uniform(0.5, 1.0, n)
        params["b"] = np.abs(params["b"]) + 1.0  # stay on the linear side of relu
    if cell.name == "rnn-relu":
        params["b_ih"] = np.abs(params["b_ih"]) + 3.0  # every unit stays on relu's linear side
    if cell.name == "rglru":  # a near 1 (the paper's ring): products stay above FD's 1e-12
        params["a_param"] = rng.uniform(-6.0, -4.0, n)
    x = rng.standard_normal((T, B, d))
    res = analyze(cell, params, x)
    fd = _fd_products(cell, params, x)
    spec = np.log10(np.linalg.norm(fd, 2, axis=(-2, -1)))
    frob = np.log10(np.linalg.norm(fd, axis=(-2, -1)))
    nh = cell.block_sizes(n, _proj(cell, n))[0]  # the h block: n, or lstm-proj's p
    hblock = np.log10(np.linalg.norm(fd[:, :, :nh, :nh], 2, axis=(-2, -1)))
    # Fourth-order differences: ~1e-12 absolute, i.e. < 1e-7 in log10 for norms >= 1e-5;
    # the bar is 1e-6 in log10.
    np.testing.assert_allclose(res.log10_spectral_norm, spec, atol=1e-6)
    np.testing.assert_allclose(res.log10_frobenius_norm, frob, atol=1e-6)
    np.testing.assert_allclose(res.log10_spectral_norm_hidden, hblock, atol=1e-6)


MP_FUNCS = {
    "sigmoid": lambda z: 1 / (1 + mpmath.exp(-z)),
    "tanh": mpmath.tanh,
    "relu": lambda z: z if z > 0 else mpmath.mpf(0),
}


def _mp_reference(cell, params, x, digits=50):
    """Rollout, Jacobians and their product in mpmath, from the explicit SymPy step."""
    mpmath.mp.dps = digits
    n = params[cell.parameters[0].name].shape[0]
    d = x.shape[-1]
    ex = explicit_step(cell, n, d)
    flat_syms, values = [], []
    for p in cell.parameters:
        arr = params[p.name]
        for sym, val in zip(
            np.ravel(np.array(ex.symbols[p.name], dtype=object)), np.ravel(arr), strict=True
        ):
            flat_syms.append(sym)
            values.append(mpmath.mpf(float(val)))
    xs = list(ex.symbols[cell.input])
    ss = list(ex.state)
    f_step = sp.lambdify([ss, xs, flat_syms], list(ex.new_state), modules=[MP_FUNCS, "mpmath"])
    f_jac = sp.lambdify([ss, xs, flat_syms], ex.jacobian, modules=[MP_FUNCS, "mpmath"])
    m = len(ss)
    s = [mpmath.mpf(0)] * m
    Js = []
    for t in range(x.shape[0]):
        xt = [mpmath.mpf(float(v)) for v in x[t]]
        Js.append(mpmath.matrix(f_jac(s, xt, values)))
        s = [mpmath.mpf(v) for v in f_step(s, xt, values)]
    P = mpmath.eye(m)
    spec, frob = [mpmath.mpf(0)], [mpmath.log10(mpmath.sqrt(m))]
    for J in reversed(Js):
        P = P * J
        frob.append(mpmath.log10(mpmath.mnorm(P, "F")))
        sv = mpmath.svd_r(P, compute_uv=False)
        spec.append(mpmath.log10(max(sv)))
    return np.array([float(v) for v in spec]), np.array([float(v) for v in frob])


@pytest.mark.parametrize(
    ("name", "scale", "steps"),
    [("rnn", 1e-7, 60), ("rnn", 2.0, 60), ("gru", 1.0, 60), ("lstm", 1.0, 40)],
)
def test_norms_match_mpmath_at_50_digits(xp, name, scale, steps):
    rng = np.random.default_rng(7)
    cell = get_cell(name)
    params = _params(cell, 2, 1, rng, scale=scale)
    x = rng.standard_normal((steps, 1, 1))
    res = analyze(cell, params, x, backend=xp.__name__)
    spec, frob = _mp_reference(cell, params, x[:, 0, :])
    if scale < 1e-3:
        assert spec[-1] < -400  # the vanishing case goes far below double precision's range
    assert np.all(np.isfinite(res.log10_spectral_norm))
    # Bar from the issue: 1e-9 in log10 against 50-digit arithmetic.
    np.testing.assert_allclose(res.log10_spectral_norm[:, 0], spec, atol=1e-9)
    np.testing.assert_allclose(res.log10_frobenius_norm[:, 0], frob, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["rnn", "lstm", "gru", "gru-reset-before", "lstm-peephole", "mgu"]),
    n=st.integers(1, 9),
    scale=st.floats(0.3, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_spectral_norms_match_exact_svd(xp, name, n, scale, seed):
    rng = np.random.default_rng(seed)
    cell = get_cell(name)
    params = _params(cell, n, 2, rng, scale=scale)
    x = rng.standard_normal((80, 2, 2))
    res = analyze(cell, params, x, backend=xp.__name__)
    spec, frob, _ = _dense_reference(state_jacobians(cell, params, x))
    # Spectral norms to 1e-10 relative (4.3e-11 in log10) plus accumulated rounding.
    np.testing.assert_allclose(res.log10_spectral_norm, spec, atol=1e-10)
    np.testing.assert_allclose(res.log10_frobenius_norm, frob, atol=1e-11)


@pytest.mark.parametrize(
    ("name", "n", "scale", "path"),
    [
        ("rnn", 64, 1.0, "full"),
        ("gru", 48, 1.2, "full"),
        # Near-diagonal products whose leading unit changes with the lag: the cell path.
        ("lstm", 40, 1.5, "additive"),
        ("lstm-cifg", 48, 1.5, "additive"),
        ("lstm-nofg", 30, 1.0, "full"),
    ],
)
def test_spectral_norms_match_exact_svd_beyond_the_block(name, n, scale, path):
    # Sizes far above the Krylov block (4 or 8 columns), where the start block no longer
    # spans the space: the crowded short lags, the settled long lags and leaders that switch.
    rng = np.random.default_rng(5)
    cell = get_cell(name)
    params = _params(cell, n, 4, rng, scale=scale, bias=0.3)
    x = rng.standard_normal((300, 3, 4))
    res = analyze(cell, params, x, paths=path != "full")
    spec, _, _ = _dense_reference(state_jacobians(cell, params, x, path=path))
    got = res.log10_spectral_norm if path == "full" else res.paths[path]["log10_spectral_norm"]
    np.testing.assert_allclose(got, spec, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["rnn-relu", "lstm", "gru"]),
    n=st.integers(5, 20),
    bias=st.floats(-1.5, 0.5),
    scale=st.floats(0.5, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_spectral_norms_of_rank_deficient_products(xp, name, n, bias, scale, seed):
    # Dead ReLU units and saturated gates make products of low rank: the Krylov block then
    # meets null directions, and a basis that is not orthonormal gives Ritz values above the
    # norm (found by test_pascanu_bound_holds: rnn-relu n = 9, a lag-2 product of rank 3).
    rng = np.random.default_rng(seed)
    cell = get_cell(name)
    params = _params(cell, n, 2, rng, scale=scale, bias=bias)
    x = rng.standard_normal((12, 3, 2))
    res = analyze(cell, params, x, backend=xp.__name__)
    J = state_jacobians(cell, params, x)
    P = np.broadcast_to(np.eye(J.shape[-1]), J.shape[1:]).copy()
    top = [np.ones(3)]
    for t in range(11, -1, -1):  # 12 lags at these scales stay far from under- and overflow
        P = P @ J[t]
        top.append(np.linalg.svd(P, compute_uv=False)[:, 0])
    with np.errstate(divide="ignore"):
        spec = np.log10(np.array(top))
    live = np.isfinite(spec)  # a product that dies out exactly (all units dead) has no norm
    np.testing.assert_allclose(res.log10_spectral_norm[live], spec[live], rtol=0, atol=1e-10)
    assert np.all(res.log10_spectral_norm[live] <= res.log10_frobenius_norm[live] + 1e-12)


def test_extra_quantities_match_dense_references():
    rng = np.random.default_rng(11)
    cell = get_cell("lstm")
    n, T, B = 3, 30, 2
    params = _params(cell, n, 2, rng, scale=1.2)
    x = rng.standard_normal((T, B, 2))
    res = analyze(cell, params, x, paths=True, singular_lags=[1, 7, T], lyapunov=4, gradient="last")
    J = state_jacobians(cell, params, x)
    m = J.shape[-1]
    _, _, Ps = _dense_reference(J)
    for lag in (1, 7, T):
        sv = np.linalg.svd(Ps[lag], compute_uv=False)
        got = 10.0 ** res.log10_singular_values[lag]
        # An SVD is accurate to eps * sigma_max in absolute terms, for every singular value.
        np.testing.assert_allclose(got, sv, rtol=1e-10, atol=1e-12 * sv[:, :1].max())
    # Paths: the same chain over the additive / multiplicative Jacobians alone.
    for path in ("additive", "multiplicative"):
        spec, frob, _ = _dense_reference(state_jacobians(cell, params, x, path=path))
        np.testing.assert_allclose(res.paths[path]["log10_spectral_norm"], spec, atol=1e-10)
        np.testing.assert_allclose(res.paths[path]["log10_frobenius_norm"], frob, atol=1e-11)
    # Gradient of L = sum(h_T): g_k = e_h^T J_T ... J_{T-k+1}.
    e = np.zeros(m)
    e[:n] = 1.0
    g = np.broadcast_to(e, (B, m)).copy()
    ref = [np.log10(np.linalg.norm(g, axis=1))]
    for t in range(T - 1, -1, -1):
        g = np.einsum("bi,bij->bj", g, J[t])
        ref.append(np.log10(np.linalg.norm(g, axis=1)))
    np.testing.assert_allclose(res.log10_gradient_norm, np.array(ref), atol=1e-11)


def test_lyapunov_exponents_match_forward_qr():
    rng = np.random.default_rng(13)
    cell = get_cell("gru")
    n, T, B, p = 4, 600, 2, 3
    params = _params(cell, n, 2, rng, scale=2.0)
    x = rng.standard_normal((T, B, 2))
    res = analyze(cell, params, x, lyapunov=p)
    J = state_jacobians(cell, params, x)
    # Forward QR re-orthonormalisation (Benettin et al. 1980) on J_1 ... J_T, independently.
    Q = np.broadcast_to(np.eye(n)[:, :p], (B, n, p)).copy()
    acc = np.zeros((B, p))
    for t in range(T):
        Q, R = np.linalg.qr(J[t] @ Q)
        acc += np.log(np.abs(np.diagonal(R, axis1=1, axis2=2)))
    # Forward and transposed finite-T estimates differ by O(1/T) transients: 0.02 nats/step.
    np.testing.assert_allclose(res.lyapunov_exponents, -np.sort(-acc / T, axis=1), atol=0.02)


def test_gradient_sum_loss_matches_explicit_vjps():
    rng = np.random.default_rng(12)
    cell = get_cell("gru")
    n, T, B = 4, 25, 3
    params = _params(cell, n, 2, rng)
    x = rng.standard_normal((T, B, 2))
    res = analyze(cell, params, x, gradient="sum")
    J = state_jacobians(cell, params, x)
    e = np.ones((B, n))
    g = e.copy()  # dL/ds_T for L = sum_t sum(h_t)
    ref = [np.log10(np.linalg.norm(g, axis=1))]
    for k in range(1, T + 1):
        g = np.einsum("bi,bij->bj", g, J[T - k])
        if k < T:
            g = g + e
        ref.append(np.log10(np.linalg.norm(g, axis=1)))
    np.testing.assert_allclose(res.log10_gradient_norm, np.array(ref), atol=1e-11)


def test_long_vanishing_chain_stays_finite_in_log_domain():
    rng = np.random.default_rng(5)
    cell = get_cell("rnn")
    params = _params(cell, 8, 3, rng, scale=0.3)
    x = rng.standard_normal((3000, 2, 3))
    res = analyze(cell, params, x)
    assert np.all(np.isfinite(res.log10_spectral_norm))
    assert res.log10_spectral_norm[-1].max() < -1000  # far below 1e-308: never reported as 0
    # Decay is geometric: the late slope is steady (half-way and final slopes agree to 5%).
    late = res.log10_frobenius_norm
    s1 = (late[1500] - late[500]) / 1000
    s2 = (late[3000] - late[2000]) / 1000
    assert np.all(np.abs(s1 - s2) < 0.05 * np.abs(s2))


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(6)
    cell = get_cell("lstm")
    params = _params(cell, 6, 3, rng)
    x = rng.standard_normal((50, 2, 3))
    r64 = analyze(cell, params, x)
    r32 = analyze(cell, params, x, dtype="float32")
    # float32 rounding accumulates over 50 steps: 1e-4 in log10 is ample.
    np.testing.assert_allclose(r32.log10_spectral_norm, r64.log10_spectral_norm, atol=1e-4)


def test_result_round_trips_through_json(tmp_path):
    rng = np.random.default_rng(8)
    cell = get_cell("gru")
    res = analyze(
        cell,
        _params(cell, 3, 2, rng),
        rng.standard_normal((10, 2, 2)),
        paths=True,
        singular_lags=[3],
        lyapunov=2,
        gradient="last",
    )
    res.save(tmp_path / "r.json")
    back = AnalysisResult.load(tmp_path / "r.json")
    np.testing.assert_array_equal(back.log10_spectral_norm, res.log10_spectral_norm)
    np.testing.assert_array_equal(back.log10_singular_values[3], res.log10_singular_values[3])
    np.testing.assert_array_equal(
        back.paths["additive"]["log10_frobenius_norm"],
        res.paths["additive"]["log10_frobenius_norm"],
    )
    from gradflow.results import dumps

    assert dumps(back.to_dict()) == dumps(res.to_dict())


def test_bad_inputs_are_refused_with_one_line_errors():
    rng = np.random.default_rng(9)
    cell = get_cell("rnn")
    params = _params(cell, 3, 2, rng)
    with pytest.raises(InputsError, match=r"shape \(T, B, d\)"):
        analyze(cell, params, np.zeros((3, 2)))
    bad = rng.standard_normal((5, 2, 2))
    bad[3, 1, 0] = np.nan
    with pytest.raises(InputsError, match="first at step 4, sequence 1"):
        analyze(cell, params, bad)
    with pytest.raises(WeightsError, match="missing parameters W_hh"):
        analyze(cell, {k: v for k, v in params.items() if k != "W_hh"}, bad)
    wrong = dict(params, W_hh=np.zeros((3, 4)))
    with pytest.raises(WeightsError, match=r"'W_hh' has shape \(3, 4\); expected \(3, 3\)"):
        analyze(cell, wrong, np.zeros((2, 1, 2)))


def test_overflow_in_rollout_names_step_and_sequence():
    cell = get_cell("rnn-relu")
    n = 3
    params = {
        "W_ih": np.zeros((n, 1)),
        "W_hh": 1e30 * np.eye(n),
        "b_ih": np.ones(n),
        "b_hh": np.zeros(n),
    }
    with pytest.raises(NumericalError, match=r"NaN or inf at step \d+, sequence 0"):
        analyze(cell, params, np.zeros((40, 1, 1)))


@pytest.mark.slow
def test_memory_is_constant_in_sequence_length():
    # Issue bar: rnn, n=64, B=4, T=100,000 with peak RSS under 500 MB, measured as the child's
    # own VmHWM: ru_maxrss would also count the pytest parent, which Linux carries across exec.
    code = (
        "import numpy as np\n"
        "from benchmarks_peak import peak_rss_mb\n"
        "from gradflow.engine import analyze\n"
        "from gradflow.cells import get_cell\n"
        "rng = np.random.default_rng(0); c = get_cell('rnn'); n, d = 64, 4\n"
        "p = {q.name: rng.standard_normal(q.numeric_shape(n, d)) / np.sqrt(n) "
        "for q in c.parameters}\n"
        "x = rng.standard_normal((100_000, 4, d))\n"
        "r = analyze(c, p, x)\n"
        "assert np.isfinite(r.log10_spectral_norm).all()\n"
        "print(peak_rss_mb())\n"
    )
    here = Path(__file__).parent
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
        cwd=here,
    )
    peak_mb = float(out.stdout.strip().splitlines()[-1])
    assert peak_mb < 500, peak_mb


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available")
@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_cupy_backend_matches_numpy(name):
    rng = np.random.default_rng(10)
    cell = get_cell(name)
    params = _params(cell, 16, 4, rng)
    x = rng.standard_normal((200, 4, 4))
    ref = analyze(cell, params, x, paths=True, gradient="last")
    gpu = analyze(cell, params, x, backend="cupy", paths=True, gradient="last")
    # Same float64 arithmetic on another BLAS: agreement to 1e-9 in log10.
    np.testing.assert_allclose(gpu.log10_spectral_norm, ref.log10_spectral_norm, atol=1e-9)
    np.testing.assert_allclose(gpu.log10_gradient_norm, ref.log10_gradient_norm, atol=1e-9)


# --- Norms that cannot overflow or underflow (issue 13 item 1) ---------------------------


def _scaled_identity_rnn(scale, n=3, dtype=np.float64):
    """A tanh RNN whose state stays at 0 (zero inputs and biases): J_t = scale * I exactly."""
    return {
        "W_ih": np.zeros((n, 1)),
        "W_hh": np.asarray(scale, dtype=dtype).item() * np.eye(n),
        "b_ih": np.zeros(n),
        "b_hh": np.zeros(n),
    }


@pytest.mark.parametrize(
    ("scale", "dtype", "decades", "atol"),
    [
        # float64: 1e160 squared overflows, 1e-170 squared underflows.
        (1e160, "float64", 160.0, 1e-9),
        (1e-170, "float64", -170.0, 1e-9),
        # float32 (scaled): 1e30 squared overflows near 3e38, 1e-30 squared underflows.
        (1e30, "float32", 30.0, 1e-5),
        (1e-30, "float32", -30.0, 1e-5),
    ],
)
def test_extreme_per_step_norms_are_exact_against_mpmath(xp, scale, dtype, decades, atol):
    cell = get_cell("rnn")
    n, T = 3, 8
    # The reference uses the weight as the dtype stores it (1e30 is not a float32 number).
    params = _scaled_identity_rnn(scale, n, np.float32 if dtype == "float32" else np.float64)
    x = np.zeros((T, 2, 1))
    res = analyze(cell, params, x, dtype=dtype, backend=xp.__name__)
    spec, frob = _mp_reference(cell, params, x[:, 0, :])
    # The product is scale^k I: log10 ||P_k||_2 = k log10(scale), ||P_k||_F = sqrt(n) of it.
    assert abs(spec[T] - decades * T) < 1e-3 * T
    # 1e-9 in log10 against 50-digit mpmath in float64 (the bar); float32 rounds the
    # weight once per step: 1e-5 in log10 is ~ 30 float32 ulps over 8 steps.
    for b in range(2):
        np.testing.assert_allclose(res.log10_spectral_norm[:, b], spec, atol=atol, rtol=0)
        np.testing.assert_allclose(res.log10_frobenius_norm[:, b], frob, atol=atol, rtol=0)
        np.testing.assert_allclose(res.log10_spectral_norm_hidden[:, b], spec, atol=atol, rtol=0)
    assert np.isfinite(res.log10_spectral_norm).all()


def test_a_product_that_dies_out_is_exactly_zero_from_that_lag(xp):
    # rnn-relu: every unit is dead at one step (input -100), so J at that step is exactly 0
    # and so is every product that contains it; the products before it are merely small.
    cell = get_cell("rnn-relu")
    rng = np.random.default_rng(21)
    n, T, dead = 4, 20, 6  # the step t = dead + 1 (1-based) has every unit dead
    params = {
        "W_ih": np.ones((n, 1)),
        "W_hh": 0.3 * rng.standard_normal((n, n)) / np.sqrt(n),
        "b_ih": np.zeros(n),
        "b_hh": np.zeros(n),
    }
    x = np.ones((T, 2, 1))
    x[dead, :, 0] = -100.0
    res = analyze(cell, params, x, backend=xp.__name__)
    first_zero = T - dead  # lag k contains J_{T-k+1}, ..., J_T; J_{dead+1} from k = T - dead
    for arr in (res.log10_spectral_norm, res.log10_frobenius_norm, res.log10_spectral_norm_hidden):
        assert not np.isnan(arr).any()
        assert np.isneginf(arr[first_zero:]).all()
        assert np.isfinite(arr[:first_zero]).all()
    # The live lags against dense products and exact SVDs (to 1e-10 in log10).
    spec, frob, _ = _dense_reference(state_jacobians(cell, params, x)[dead + 1 :])
    np.testing.assert_allclose(res.log10_spectral_norm[:first_zero], spec, atol=1e-10)
    np.testing.assert_allclose(res.log10_frobenius_norm[:first_zero], frob, atol=1e-11)


def test_gradient_of_a_dead_product_against_explicit_vjps():
    # L = sum_t sum(h_t) through a step where every ReLU unit is dead: dL/ds_{T-k} is exactly
    # the direct term e past that step (the chain through it is exactly zero), never -inf.
    cell = get_cell("rnn-relu")
    rng = np.random.default_rng(22)
    n, T, dead = 3, 12, 4
    params = {
        "W_ih": np.ones((n, 1)),
        "W_hh": 0.4 * rng.standard_normal((n, n)) / np.sqrt(n),
        "b_ih": np.zeros(n),
        "b_hh": np.zeros(n),
    }
    x = np.ones((T, 2, 1))
    x[dead, :, 0] = -100.0
    res = analyze(cell, params, x, gradient="sum")
    J = state_jacobians(cell, params, x)
    e = np.ones((2, n))
    g = e.copy()
    ref = [np.log10(np.linalg.norm(g, axis=1))]
    for k in range(1, T + 1):
        g = np.einsum("bi,bij->bj", g, J[T - k])
        if k < T:
            g = g + e
        with np.errstate(divide="ignore"):
            ref.append(np.log10(np.linalg.norm(g, axis=1)))
    ref = np.array(ref)
    # At lag T - dead the chain through the dead step is exactly zero and G = e exactly.
    np.testing.assert_allclose(ref[T - dead], 0.5 * np.log10(n), atol=1e-15)
    assert np.isfinite(res.log10_gradient_norm).all()
    # Explicit VJPs with numpy: 1e-11 in log10 (as for the live case above).
    np.testing.assert_allclose(res.log10_gradient_norm, ref, atol=1e-11)


def test_a_tiny_hidden_block_keeps_its_own_scale():
    # h_new = 1e-100 tanh(c_new), U ~ 1e80: the h block is ~1e-100 of the whole (normalised)
    # product, below the estimator's floor (tiny**(1/8) ~ 1e-39): its residuals, fourth powers
    # of that scale, would underflow to 0 and certify a wrong value (measured: 2.5e-3 off in
    # log10 without the rescaling). It is rescaled for the estimator, its scale added back.
    from gradflow.cells.parse import define_cell

    cell = define_cell(
        "tinyh",
        ["h", "c"],
        {"a": "W @ x + U @ h + b", "c_new": "0.9 * c + tanh(a)", "h_new": "1e-100 * tanh(c_new)"},
    )
    rng = np.random.default_rng(0)
    n, T = 12, 3
    params = {
        "W": rng.standard_normal((n, 1)),
        "U": 1e80 * rng.standard_normal((n, n)),
        "b": np.zeros(n),
    }
    x = rng.standard_normal((T, 2, 1))
    res = analyze(cell, params, x)
    J = state_jacobians(cell, params, x)
    P = np.broadcast_to(np.eye(2 * n), (2, 2 * n, 2 * n)).copy()
    ref = [np.zeros(2)]
    for t in range(T - 1, -1, -1):
        P = P @ J[t]  # 1e80 per step at most: no overflow within 3 steps
        ref.append(np.log10(np.linalg.svd(P[:, :n, :n], compute_uv=False)[:, 0]))
    ref = np.array(ref)
    assert np.all(ref[1:] - res.log10_spectral_norm[1:] < -100)  # the h block is that tiny
    # Dense products and an exact SVD of the h block: 1e-10 in log10.
    np.testing.assert_allclose(res.log10_spectral_norm_hidden, ref, atol=1e-10)


def test_nan_in_the_jacobian_names_the_step_and_sequence():
    # sqrt(abs(a)) has finite values everywhere but no derivative at a = 0: the state stays
    # finite while the Jacobian is NaN (issue 13: it used to surface as a LinAlgError).
    from gradflow.cells.parse import define_cell

    cell = define_cell("rooted", ["h"], {"a": "W @ x + U @ h + b", "h_new": "sqrt(abs(a))"})
    n = 2
    params = {"W": np.ones((n, 1)), "U": np.zeros((n, n)), "b": np.zeros(n)}
    x = np.ones((10, 3, 1))
    x[4, 2, 0] = 0.0  # a = 0 at step 5 for sequence 2 only
    with pytest.raises(NumericalError, match=r"Jacobian of 'rooted' is NaN or inf at step 5, "):
        analyze(cell, params, x)
    with pytest.raises(NumericalError, match=r"sequence 2"):
        analyze(cell, params, x)


def test_cost_check_refuses_quickly_and_force_lifts_it():
    import time

    from gradflow.cost import MAX_FLOPS, estimate_cost
    from gradflow.errors import UsageError

    cell = get_cell("rnn")
    n = 3000
    params = {
        "W_ih": np.zeros((n, 1)),
        "W_hh": np.zeros((n, n)),
        "b_ih": np.zeros(n),
        "b_hh": np.zeros(n),
    }
    x = np.broadcast_to(np.zeros(1), (10**6, 1, 1))  # 10^6 steps without 8 MB per step
    started = time.perf_counter()
    with pytest.raises(UsageError, match=r"5\.4e\+16 floating-point operations .*force=True"):
        analyze(cell, params, x)
    # "Quickly" is a usability bar, not a timing test: the refusal happens before any kernel
    # is compiled or step taken (10^6 steps at n = 3000 would run for days).
    assert time.perf_counter() - started < 60
    # The estimate: 2 T B m^3 for the chain (hand count for T = 10^6, B = 1, m = 3000).
    assert estimate_cost(10**6, 1, 3000, 3000).flops == pytest.approx(2 * 10**6 * 3000.0**3)
    assert estimate_cost(100, 2, 64, 64).flops < MAX_FLOPS
    # Too much output: 3 numbers per lag and sequence at 30 bytes each, above 1 GiB.
    small = get_cell("rnn")
    p = _params(small, 2, 1, np.random.default_rng(0))
    big_x = np.broadcast_to(np.zeros(1), (4 * 10**6, 4, 1))
    with pytest.raises(UsageError, match=r"GiB of results"):
        analyze(small, p, big_x)
    # force lifts the limit (a small run, with the output limit lowered to refuse it first).
    import gradflow.cost as cost

    x_small = np.zeros((5, 1, 1))
    old = cost.MAX_OUTPUT_BYTES
    try:
        cost.MAX_OUTPUT_BYTES = 10
        with pytest.raises(UsageError, match="force"):
            analyze(small, p, x_small)
        assert analyze(small, p, x_small, force=True).steps == 5
    finally:
        cost.MAX_OUTPUT_BYTES = old


def test_engine_resolves_a_name_once_and_uses_contiguous_inputs_without_a_copy(monkeypatch):
    from gradflow import engine
    from gradflow.errors import UsageError

    cell = get_cell("gru")
    rng = np.random.default_rng(3)
    params = _params(cell, 3, 2, rng)
    x = rng.standard_normal((6, 2, 2))
    with pytest.raises(UsageError, match="takes a Cell or a catalogue name, not dict"):
        analyze({"name": "gru"}, params, x)
    # A name is resolved at the boundary to the very Cell the catalogue holds.
    by_name = analyze("gru", params, x)
    np.testing.assert_array_equal(
        by_name.log10_spectral_norm, analyze(cell, params, x).log10_spectral_norm
    )
    seen = {}
    real = engine._setup

    def spy(*args, **kwargs):
        su = real(*args, **kwargs)
        seen["inputs"] = su.inputs
        return su

    monkeypatch.setattr(engine, "_setup", spy)
    analyze(cell, params, x)
    assert np.shares_memory(seen["inputs"], x)
    analyze(cell, params, np.asfortranarray(x))  # other layouts are converted, and work
    assert not np.shares_memory(seen["inputs"], x)


def test_fused_chain_at_n_128_matches_dense_products(xp):
    # From n = 128 (gradflow.chains.FUSED_FROM) the LSTM's chain runs the fused apply kernel
    # into alternating buffers: the same numbers as dense products with exact SVDs.
    from gradflow.chains import FUSED_FROM

    rng = np.random.default_rng(31)
    cell = get_cell("lstm")
    n = FUSED_FROM
    params = _params(cell, n, 2, rng, scale=1.2)
    x = rng.standard_normal((12, 2, 2))
    res = analyze(cell, params, x, paths=True, backend=xp.__name__)
    for path, got in [("full", res.log10_spectral_norm), ("additive", None)]:
        spec, frob, _ = _dense_reference(state_jacobians(cell, params, x, path=path))
        if got is None:
            got = res.paths[path]["log10_spectral_norm"]
            np.testing.assert_allclose(res.paths[path]["log10_frobenius_norm"], frob, atol=1e-11)
        else:
            np.testing.assert_allclose(res.log10_frobenius_norm, frob, atol=1e-11)
        # Certified to 1e-11 relative: 1e-10 in log10 with rounding to spare.
        np.testing.assert_allclose(got, spec, atol=1e-10)


@pytest.mark.parametrize("name", ["antisymmetric-rnn", "lipschitz-rnn"])
def test_a_constant_path_chain_has_no_factors_and_is_still_multiplied(name):
    # The additive part of these cells has no per-step factor: I (AntisymmetricRNN, Chang et
    # al. 2019) and I + eps A with A = M_A + (1 - 2 beta) M_A^T - gamma I (Lipschitz RNN,
    # Erichson et al. 2021, eq. 6). Its chain must still run for every lag (it raised an
    # IndexError: a chunk's length was read off the factors). Reference: numpy matrix powers.
    from gradflow.initialisers import Init, initialise

    cell = get_cell(name)
    rng = np.random.default_rng(3)
    n, T = 5, 30
    params = initialise(cell, n, 3, Init(scheme="paper"), rng)
    params = {k: v * (20.0 if k == "M_A" else 1.0) for k, v in params.items()}  # visible A
    r = analyze(cell, params, rng.standard_normal((T, 2, 3)), paths=True)
    c = dict(cell.constants)
    if name == "antisymmetric-rnn":
        step = np.eye(n)
    else:
        M = params["M_A"]
        A = M + (1 - 2 * c["beta"]) * M.T - c["gamma"] * np.eye(n)
        step = np.eye(n) + c["epsilon"] * A
    ref = [np.log10(np.linalg.norm(np.linalg.matrix_power(step, k), 2)) for k in range(T + 1)]
    got = np.asarray(r.paths["additive"]["log10_spectral_norm"])
    # Certified spectral norms (1e-11 relative) of a product of k exact steps: 1e-11 in log10.
    np.testing.assert_allclose(got, np.repeat(np.array(ref)[:, None], 2, axis=1), atol=1e-11)


@pytest.mark.parametrize(("name", "structure"), [("rnn", "auto"), ("mingru", "auto")])
def test_every_path_says_whether_the_krylov_kernel_ran(name, structure):
    """``meta["spectral"]["krylov_kernel"]`` is a bool on every path (dense NumPy chain,
    structured chain): False here, where no compiled Krylov kernel ran."""
    cell = get_cell(name)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 2, 3))
    res = analyze(cell, _params(cell, 4, 3, rng), x, compiled=False, structure=structure)
    assert res.meta["spectral"]["krylov_kernel"] is False
