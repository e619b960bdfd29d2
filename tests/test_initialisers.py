"""Initialisers and inputs: shapes, statistics, structure, options, errors, reproducibility.

Statistical tolerances are six standard errors of the estimate (false-failure probability about
2e-9 per check): the sample variance of ``N`` i.i.d. Gaussian entries has relative standard
error ``sqrt(2 / N)``; for ``U(-a, a)`` entries it is ``sqrt(0.8 / N)`` (kurtosis 9/5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import CATALOGUE, Affine, Cell, Elementwise, get_cell, sigmoid
from gradflow.errors import InputsError, UsageError
from gradflow.initialisers import (
    SCHEMES,
    Init,
    MemoryGate,
    haar_orthogonal,
    initialise,
    make_inputs,
    memory_gates,
    recurrent_vectors,
    update_gate,
)

SIX = 6.0


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _rel_tol_gauss(count: int) -> float:
    return SIX * math.sqrt(2.0 / count)


def _recurrent(cell: Cell) -> list[str]:
    return [p.name for p in cell.parameters if p.kind == "weight" and p.shape == ("n", "n")]


# -- shapes, dtypes, reproducibility ---------------------------------------------------------
@pytest.mark.parametrize("name", list(CATALOGUE))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_cell_every_scheme_shapes(name: str, scheme: str) -> None:
    cell = get_cell(name)
    p = initialise(cell, 6, 3, Init(scheme, sigma_b=0.3), _rng())
    assert set(p) == {q.name for q in cell.parameters}
    proj = 3 if cell.has_second_size else None  # lstm-proj: p defaults to n // 2
    for q in cell.parameters:
        assert p[q.name].shape == q.numeric_shape(6, 3, proj)
        assert p[q.name].dtype == np.float64
        assert np.all(np.isfinite(p[q.name]))


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(CATALOGUE)),
    scheme=st.sampled_from(SCHEMES),
    n=st.integers(1, 9),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_same_seed_same_arrays(name: str, scheme: str, n: int, d: int, seed: int) -> None:
    cell = get_cell(name)
    init = Init(scheme, sigma_w=1.3, sigma_b=0.2, spectral_radius=None)
    a = initialise(cell, n, d, init, _rng(seed))
    b = initialise(cell, n, d, init, _rng(seed))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_different_seeds_differ() -> None:
    a = initialise(get_cell("lstm"), 8, 2, Init("gaussian"), _rng(1))
    b = initialise(get_cell("lstm"), 8, 2, Init("gaussian"), _rng(2))
    assert not np.array_equal(a["W_hf"], b["W_hf"])


def test_chrono_and_inputs_reproduce() -> None:
    init = Init("torch", chrono_tmax=50.0)
    a = initialise(get_cell("lstm"), 16, 2, init, _rng(7))
    b = initialise(get_cell("lstm"), 16, 2, init, _rng(7))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    x1 = make_inputs("gaussian", 5, 3, 2, _rng(3), scale=0.5)
    x2 = make_inputs("gaussian", 5, 3, 2, _rng(3), scale=0.5)
    assert np.array_equal(x1, x2)


# -- statistics ---------------------------------------------------------------------------
def test_gaussian_variances() -> None:
    n, d = 600, 40
    sw, su, sb = 1.7, 0.6, 0.8
    p = initialise(get_cell("rnn"), n, d, Init("gaussian", sw, su, sb), _rng(11))
    # reference: the scheme's definition, W_hh ~ N(0, sw^2/n), W_ih ~ N(0, su^2/d)
    w = p["W_hh"]
    assert abs(w.var() / (sw**2 / n) - 1) < _rel_tol_gauss(w.size)
    assert abs(w.mean()) < SIX * sw / math.sqrt(n) / math.sqrt(w.size)
    u = p["W_ih"]
    assert abs(u.var() / (su**2 / d) - 1) < _rel_tol_gauss(u.size)
    # b_ih and b_hh each ~ N(0, sb^2 / 2): pool both over 20 seeds for a tight check
    pooled = np.concatenate(
        [
            np.concatenate([q["b_ih"], q["b_hh"]])
            for q in (
                initialise(get_cell("rnn"), n, 1, Init("gaussian", 0.0, 0.0, sb), _rng(s))
                for s in range(20)
            )
        ]
    )
    assert abs(np.mean(pooled**2) / (sb**2 / 2) - 1) < _rel_tol_gauss(pooled.size)


def test_gaussian_single_bias_gets_full_variance() -> None:
    # gru-reset-before has one bias vector per node: each ~ N(0, sb^2); pooled over 20 seeds
    n, sb = 200, 0.5
    b = np.concatenate(
        [
            np.concatenate([p["b_r"], p["b_z"], p["b_n"]])
            for p in (
                initialise(
                    get_cell("gru-reset-before"), n, 1, Init("gaussian", 0.0, 0.0, sb), _rng(s)
                )
                for s in range(20)
            )
        ]
    )
    assert abs(np.mean(b**2) / sb**2 - 1) < _rel_tol_gauss(b.size)


def test_torch_default_uniform() -> None:
    # reference: PyTorch RNNBase.reset_parameters, stdv = 1/sqrt(hidden_size), U(-stdv, stdv)
    n, d = 300, 20
    p = initialise(get_cell("lstm"), n, d, Init("torch"), _rng(5))
    bound = 1.0 / math.sqrt(n)
    every = np.concatenate([v.ravel() for v in p.values()])
    assert np.all(np.abs(every) <= bound)
    assert abs(every.var() / (bound**2 / 3) - 1) < SIX * math.sqrt(0.8 / every.size)
    assert np.abs(every).max() > 0.99 * bound


def test_torch_bound_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    n = 64
    torch.manual_seed(0)
    mod = torch.nn.LSTM(5, n)
    tmax = max(float(t.detach().abs().max()) for t in mod.parameters())
    ours = initialise(get_cell("lstm"), n, 5, Init("torch"), _rng(0))
    omax = max(float(np.abs(v).max()) for v in ours.values())
    # both draw U(-1/sqrt(n), 1/sqrt(n)); with 4*64*(5+64+2) draws the max is within 0.1 %
    assert tmax <= 1 / math.sqrt(n) and omax <= 1 / math.sqrt(n)
    assert tmax > 0.999 / math.sqrt(n) and omax > 0.999 / math.sqrt(n)


def test_indrnn_and_peephole_vectors() -> None:
    n = 2000
    p = initialise(get_cell("indrnn"), n, 2, Init("gaussian", sigma_w=0.9), _rng(2))
    assert recurrent_vectors(get_cell("indrnn")) == frozenset({"u"})
    assert np.all((p["u"] >= 0) & (p["u"] <= 0.9))  # U(0, sigma_w)
    assert abs(p["u"].mean() - 0.45) < SIX * 0.9 / math.sqrt(12 * n)
    p = initialise(get_cell("indrnn"), 5, 2, Init("identity", sigma_w=0.7), _rng(2))
    assert np.array_equal(p["u"], np.full(5, 0.7))
    m = 300
    peep = np.concatenate(
        [
            np.concatenate([q["p_i"], q["p_f"], q["p_o"]])
            for q in (
                initialise(get_cell("lstm-peephole"), m, 1, Init("gaussian", sigma_w=2.0), _rng(s))
                for s in range(8)
            )
        ]
    )
    assert abs(np.mean(peep**2) / (4.0 / m) - 1) < _rel_tol_gauss(peep.size)
    q = initialise(get_cell("lstm-peephole"), 4, 1, Init("orthogonal"), _rng(3))
    assert not np.any(q["p_f"])


# -- structure: orthogonal, identity, spectral radius --------------------------------------
@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "minimalrnn"])
def test_orthogonal(name: str) -> None:
    cell = get_cell(name)
    p = initialise(cell, 40, 3, Init("orthogonal", sigma_w=1.5), _rng(8))
    for w in _recurrent(cell):
        q = p[w] / 1.5
        # exact orthogonality up to rounding of a 40x40 QR
        assert np.max(np.abs(q.T @ q - np.eye(40))) < 1e-12


def test_haar_sign_fix() -> None:
    # Haar: E[Q_11] = 0. Without the sign fix numpy's Householder QR gives Q_11 < 0 always
    # (mean about -0.5 for n = 3). sd of Q_11 is 1/sqrt(3); six standard errors over 4000 draws.
    rng = _rng(9)
    q11 = np.array([haar_orthogonal(3, rng)[0, 0] for _ in range(4000)])
    assert abs(q11.mean()) < SIX / math.sqrt(3) / math.sqrt(4000)


def test_identity_is_irnn() -> None:
    p = initialise(get_cell("rnn-relu"), 7, 2, Init("identity", sigma_w=0.9), _rng())
    assert np.array_equal(p["W_hh"], 0.9 * np.eye(7))
    assert not np.any(p["b_ih"]) and not np.any(p["b_hh"])  # sigma_b = 0: IRNN zero biases


@pytest.mark.parametrize("name", list(CATALOGUE))
@pytest.mark.parametrize("scheme", ["torch", "gaussian", "orthogonal", "identity"])
def test_spectral_radius(name: str, scheme: str) -> None:
    cell = get_cell(name)
    if cell.has_second_size:  # lstm-proj has no square recurrent weight to rescale
        with pytest.raises(UsageError, match="no square recurrent weight"):
            initialise(cell, 24, 3, Init(scheme, spectral_radius=0.95), _rng(6))
        return
    p = initialise(cell, 24, 3, Init(scheme, spectral_radius=0.95), _rng(6))
    for w in _recurrent(cell):
        # eigenvalues of a rescaled 24x24 matrix: radius exact up to rounding
        assert abs(np.max(np.abs(np.linalg.eigvals(p[w]))) - 0.95) < 1e-10
    for v in recurrent_vectors(cell):
        assert abs(np.max(np.abs(p[v])) - 0.95) < 1e-12


# -- gate options ---------------------------------------------------------------------------
def test_memory_gates_found_from_equations() -> None:
    assert memory_gates(get_cell("lstm")) == (MemoryGate("c", "a_f", "f", True),)
    assert memory_gates(get_cell("mgu")) == (MemoryGate("h", "a_f", "f", False),)
    assert memory_gates(get_cell("minimalrnn")) == (MemoryGate("h", "a_u", "u", True),)
    assert memory_gates(get_cell("rnn")) == ()
    assert memory_gates(get_cell("lstm-nofg")) == ()
    assert update_gate(get_cell("lstm")) is None
    assert update_gate(get_cell("gru")) == MemoryGate("h", "a_z", "z", True)


def test_forget_bias_on_one_vector() -> None:
    base = initialise(get_cell("lstm"), 8, 2, Init("torch"), _rng(1))
    p = initialise(get_cell("lstm"), 8, 2, Init("torch", forget_bias=1.0), _rng(1))
    assert np.array_equal(p["b_if"], np.ones(8)) and np.array_equal(p["b_hf"], np.zeros(8))
    for k in base:  # nothing else changes
        if k not in ("b_if", "b_hf"):
            assert np.array_equal(base[k], p[k])


@pytest.mark.parametrize(("name", "bias"), [("gru", "b_iz"), ("minimalrnn", "b_u"), ("mgu", "b_f")])
def test_update_bias(name: str, bias: str) -> None:
    p = initialise(get_cell(name), 5, 2, Init("gaussian", sigma_b=1.0, update_bias=-2.0), _rng())
    assert np.array_equal(p[bias], np.full(5, -2.0))
    if name == "gru":
        assert not np.any(p["b_hz"])


@pytest.mark.parametrize("name", ["lstm", "lstm-peephole", "lstm-cifg", "gru", "mgu", "minimalrnn"])
def test_chrono(name: str) -> None:
    tmax = 40.0
    cell = get_cell(name)
    p = initialise(cell, 500, 2, Init("torch", chrono_tmax=tmax), _rng(12))
    mg = memory_gates(cell)[0]
    biases = cell.node_map[mg.node].biases
    b = p[biases[0]] if mg.keeps else -p[biases[0]]
    # reference: Tallec & Ollivier (2018), b_f ~ log U(1, Tmax - 1)
    assert np.all(b >= 0) and np.all(b <= math.log(tmax - 1))
    e = np.exp(b)  # U(1, Tmax - 1): mean Tmax/2, sd (Tmax - 2)/sqrt(12)
    assert abs(e.mean() - tmax / 2) < SIX * (tmax - 2) / math.sqrt(12 * e.size)
    for other in biases[1:]:
        assert not np.any(p[other])
    if "a_i" in {nd.name for nd in cell.nodes}:
        bi = cell.node_map["a_i"].biases
        assert np.array_equal(p[bi[0]], -p[biases[0]])  # b_i = -b_f
        for other in bi[1:]:
            assert not np.any(p[other])


@pytest.mark.parametrize(
    ("name", "init", "message"),
    [
        ("gru", Init(forget_bias=1.0), "no forget gate a_f"),
        ("lstm", Init(update_bias=1.0), "no update gate"),
        ("mgu", Init(forget_bias=1.0, update_bias=1.0), "give only one"),
        ("lstm", Init(forget_bias=1.0, chrono_tmax=10.0), "give only one"),
        ("rnn", Init(chrono_tmax=10.0), "no memory gate"),
        ("indrnn", Init("identity", sigma_w=0.0, spectral_radius=1.0), "spectral radius is 0"),
    ],
)
def test_option_errors(name: str, init: Init, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        initialise(get_cell(name), 4, 2, init, _rng())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "xavier"}, "unknown init scheme"),
        ({"sigma_w": -1.0}, "sigma_w must be"),
        ({"sigma_b": float("nan")}, "sigma_b must be"),
        ({"spectral_radius": 0.0}, "spectral_radius must be > 0"),
        ({"chrono_tmax": 2.0}, "chrono_tmax must be > 2"),
        ({"forget_bias": float("inf")}, "forget_bias must be"),
    ],
)
def test_init_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Init(**kwargs)


@pytest.mark.parametrize(("n", "d"), [(0, 2), (3, 0), (2.5, 1), (True, 1)])
def test_bad_sizes(n: object, d: object) -> None:
    with pytest.raises(UsageError, match="must be a positive integer"):
        initialise(get_cell("rnn"), n, d, Init(), _rng())  # type: ignore[arg-type]


def test_user_cell() -> None:
    """A leaky cell with made-up names: parameters and its write-convention gate are found."""
    S = sp.Symbol  # noqa: N806
    k, h, cand = S("k", real=True), S("h", real=True), S("cand", real=True)
    cell = Cell(
        name="leaky",
        state=("h",),
        nodes=(
            Affine("a_k", (("K", "x"), ("R", "h")), ("bk",)),
            Affine("a_c", (("V", "x"), ("M", "h")), ("bc1", "bc2")),
            Elementwise("k", sigmoid(S("a_k", real=True))),
            Elementwise("cand", sp.tanh(S("a_c", real=True))),
            Elementwise("h_new", (1 - k) * h + k * cand),
        ),
        update=(("h", "h_new"),),
    )
    assert memory_gates(cell) == (MemoryGate("h", "a_k", "k", False),)
    p = initialise(cell, 30, 4, Init("orthogonal", sigma_w=2.0, update_bias=-3.0), _rng())
    assert np.allclose(p["R"].T @ p["R"], 4.0 * np.eye(30), atol=1e-12)
    assert np.allclose(p["M"].T @ p["M"], 4.0 * np.eye(30), atol=1e-12)
    assert p["K"].shape == (30, 4) and np.array_equal(p["bk"], np.full(30, -3.0))


# -- inputs -------------------------------------------------------------------------------
def test_make_inputs_kinds() -> None:
    x = make_inputs("gaussian", 400, 10, 5, _rng(), scale=2.0)
    assert x.shape == (400, 10, 5) and x.dtype == np.float64
    assert abs(x.var() / 4.0 - 1) < _rel_tol_gauss(x.size)
    assert not np.any(make_inputs("zeros", 3, 2, 1, None))
    const = make_inputs("constant", 3, 2, 1, None, value=0.5)
    assert np.array_equal(const, np.full((3, 2, 1), 0.5))


def test_make_inputs_file(tmp_path) -> None:
    arr = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    f = tmp_path / "x.npy"
    np.save(f, arr)
    x = make_inputs("file", 4, 3, 2, None, path=f)
    assert x.dtype == np.float64 and np.array_equal(x, arr)
    assert make_inputs("file", None, None, None, None, path=f).shape == (4, 3, 2)
    with pytest.raises(InputsError, match="T = 4, expected 5"):
        make_inputs("file", 5, 3, 2, None, path=f)
    with pytest.raises(InputsError, match="d = 2, expected 3"):
        make_inputs("file", None, None, 3, None, path=f)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((4, 2)))
    with pytest.raises(InputsError, match=r"shape \(T, B, d\)"):
        make_inputs("file", None, None, None, None, path=flat)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputsError, match="without pickles"):
        make_inputs("file", None, None, None, None, path=obj)
    bad = tmp_path / "nan.npy"
    np.save(bad, np.full((2, 1, 1), np.nan))
    with pytest.raises(InputsError, match="NaN"):
        make_inputs("file", None, None, None, None, path=bad)
    with pytest.raises(InputsError, match="no such file"):
        make_inputs("file", None, None, None, None, path=tmp_path / "missing.npy")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    with pytest.raises(InputsError, match="not a readable"):
        make_inputs("file", None, None, None, None, path=junk)
    cplx = tmp_path / "c.npy"
    np.save(cplx, np.zeros((1, 1, 1), dtype=complex))
    with pytest.raises(InputsError, match="real numbers"):
        make_inputs("file", None, None, None, None, path=cplx)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("sine", 2, 2, 2, None), {}, "unknown input kind"),
        (("zeros", 0, 2, 2, None), {}, "steps must be a positive integer"),
        (("gaussian", 2, 2, 2, None), {}, "need an rng"),
        (("gaussian", 2, 2, 2, np.random.default_rng()), {"scale": -1.0}, "scale"),
        (("constant", 2, 2, 2, None), {"value": float("nan")}, "finite value"),
        (("file", None, None, None, None), {}, "path="),
    ],
)
def test_make_inputs_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(InputsError, match=message):
        make_inputs(*args, **kwargs)


def test_projected_lstm_weights_by_scheme() -> None:
    """lstm-proj: (n, p) and (p, n) weights; gaussian fan-in the columns, orthogonal
    semi-orthogonal, identity the truncated identity; an explicit p."""
    cell = get_cell("lstm-proj")
    g = initialise(cell, 64, 3, Init("gaussian", sigma_w=1.0), _rng(3), p=16)
    assert g["W_hr"].shape == (16, 64) and g["W_hi"].shape == (64, 16)
    # sample std of 1024 N(0, 1/fan_in) draws: within 10% of 1/sqrt(fan_in) (about 4 sigma)
    assert abs(g["W_hr"].std() * np.sqrt(64) - 1.0) < 0.1
    assert abs(g["W_hi"].std() * np.sqrt(16) - 1.0) < 0.1
    o = initialise(cell, 8, 3, Init("orthogonal", sigma_w=1.0), _rng(3), p=4)
    # orthonormal rows (p x n) and columns (n x p): exact up to rounding
    np.testing.assert_allclose(o["W_hr"] @ o["W_hr"].T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(o["W_hi"].T @ o["W_hi"], np.eye(4), atol=1e-12)
    i = initialise(cell, 8, 3, Init("identity", sigma_w=1.0), _rng(3), p=4)
    assert np.array_equal(i["W_hr"], np.eye(4, 8)) and np.array_equal(i["W_hf"], np.eye(8, 4))
    with pytest.raises(UsageError, match="projection size p must be a positive integer"):
        initialise(cell, 8, 3, Init("torch"), _rng(3), p=0)
