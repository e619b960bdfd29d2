"""Stacked and bidirectional models (gradflow.stack) against independent references.

* PyTorch autograd: ``tests/data/stacks/<model>.json`` were made by
  ``tests/reference/make_stack_engine_reference.py`` (torch 2.13, float64, nothing from
  gradflow: ``torch.autograd.functional.jacobian`` of the unrolled stack for every lag,
  ``torch.linalg.matrix_norm``, ``retain_grad`` on the unrolled graph, per-step weight copies
  for the lag split), beside the exact weights (``.safetensors``, PyTorch names) and inputs.
  Tolerances: 1e-8 absolute in log10 for norms (DESIGN.md's bar for agreement with an
  independent autodiff computation), 1e-10 relative for gradient vectors (the issue's bar),
  1e-10 absolute for tail fractions (fractions in [0, 1]), 1e-12 for ``h_T``.
* :func:`gradflow.engine.analyze` for a one-layer model: the joint numbers are the engine's
  to 1e-12 (the same generated kernels and spectral estimator; reference: the engine).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

from gradflow import stack as stack_mod
from gradflow.cells import CATALOGUE, get_cell
from gradflow.engine import analyze, rollout, state_jacobians
from gradflow.errors import GradflowError, UsageError, WeightsError
from gradflow.stack import Layer, analyze_stack
from gradflow.stack_result import StackResult
from gradflow.weights import from_torch_tensors

DATA = Path(__file__).parent / "data" / "stacks"
UNI = ("lstm2", "lstm3", "gru2", "rnn_nobias")
LOG10_TOL = 1e-8
REL_TOL = 1e-10
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _arr(value: Any) -> np.ndarray:
    a = np.array(value, dtype=float)
    a[np.isnan(a)] = -np.inf  # the script stores log10(0) = -inf as null
    return a


def _model(name: str) -> tuple[dict, list, np.ndarray]:
    """Reference, layers (gradflow names via from_torch_tensors) and inputs of one model."""
    ref = json.loads((DATA / f"{name}.json").read_text())
    tensors = load_file(str(DATA / f"{name}.safetensors"))
    x = np.load(DATA / f"{name}_inputs.npy")
    cell = ref["cell"]

    def layer(lay: int, suffix: str, direction: str) -> Layer:
        own = {
            k.replace(f"_l{lay}{suffix}", "_l0"): v
            for k, v in tensors.items()
            if k.endswith(f"_l{lay}{suffix}")
        }
        if not ref["bias"]:  # bias=False: the same function with zero biases
            own["bias_ih_l0"] = np.zeros(GATES[cell] * ref["hidden_size"])
            own["bias_hh_l0"] = np.zeros(GATES[cell] * ref["hidden_size"])
        return Layer(cell, from_torch_tensors(cell, own), direction)

    if ref["bidirectional"]:
        layers: list = [
            (layer(i, "", "forward"), layer(i, "_reverse", "reverse")) for i in range(ref["layers"])
        ]
    else:
        layers = [layer(i, "", "forward") for i in range(ref["layers"])]
    return ref, layers, x


def _close_log(got: np.ndarray, want: np.ndarray, tol: float = LOG10_TOL) -> None:
    assert got.shape == want.shape
    # exact zeros (log10 = -inf: blocks that are structurally zero) must agree as such
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=0, atol=tol)


def _close_vec(got: np.ndarray, want: np.ndarray) -> None:
    scale = np.abs(want).max()
    if scale == 0:  # an exactly zero gradient (e.g. W_hh of a reverse top layer, loss at T)
        np.testing.assert_array_equal(got, 0.0)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=REL_TOL * scale)


@pytest.mark.parametrize("name", UNI)
def test_unidirectional_stacks_match_torch_autograd(name: str) -> None:
    ref, layers, x = _model(name)
    last = analyze_stack(layers, x, gradient="last")
    total = analyze_stack(layers, x, gradient="sum", lag_split=False)
    pairs = {
        "joint_spectral": last.log10_spectral_norm,
        "joint_frobenius": last.log10_frobenius_norm,
        "joint_hidden": last.log10_spectral_norm_hidden,
        "layer_spectral": last.layer_log10_spectral_norm,
        "layer_frobenius": last.layer_log10_frobenius_norm,
        "cross_spectral": last.cross_log10_spectral_norm,
        "cross_frobenius": last.cross_log10_frobenius_norm,
        "input_spectral": last.log10_input_spectral_norm,
        "input_frobenius": last.log10_input_frobenius_norm,
        "layer_input_spectral": last.layer_log10_input_spectral_norm,
        "grad_last": last.log10_gradient_norm,
        "layer_grad_last": last.layer_log10_gradient_norm,
        "input_grad_last": last.log10_input_gradient_norm,
        "grad_sum": total.log10_gradient_norm,
        "layer_grad_sum": total.layer_log10_gradient_norm,
        "input_grad_sum": total.log10_input_gradient_norm,
    }
    for key, got in pairs.items():
        assert got is not None, key
        _close_log(got, _arr(ref[key]))
    np.testing.assert_allclose(last.final_hidden, ref["final_hidden"], rtol=0, atol=1e-12)
    # The lag split: log10 ||G_k|| per parameter tensor (1e-8 in log10) and the tail fractions
    # ||sum_{j>k} G_j|| / ||dL/dθ|| (1e-10 absolute); reference: per-step weight copies.
    # (bias=False: gradflow also reports its zero biases, which the module does not have)
    assert set(ref["lag_norm"]) <= set(last.log10_lag_gradient_norm)
    for key in ref["lag_norm"]:
        _close_log(last.log10_lag_gradient_norm[key], _arr(ref["lag_norm"][key]))
        np.testing.assert_allclose(
            last.lag_tail_fraction[key], ref["tail_fraction"][key], rtol=0, atol=1e-10
        )


@pytest.mark.parametrize("name", UNI)
def test_lag_split_sums_to_the_autograd_gradient(name: str) -> None:
    """sum_k G_k == dL/dθ of torch autograd (the script asserts that its per-step copies sum
    to the module's own ``.grad`` to 1e-12), per sequence, 1e-10 relative."""
    ref, layers, x = _model(name)
    res = analyze_stack(layers, x, gradient="last")
    for key, want in ref["parameter_gradient"].items():
        _close_vec(res.parameter_gradient[key], np.array(want))
    if not ref["bias"]:  # gradients of the zero biases exist but the module has none
        assert {k for k in res.parameter_gradient if ".b_" in k} and not any(
            ".b_" in k for k in ref["parameter_gradient"]
        )


def test_bidirectional_stack_matches_torch_autograd() -> None:
    ref, layers, x = _model("gru_bi")
    for loss in ("last", "sum"):
        res = analyze_stack(layers, x, gradient=loss, lag_split=False)
        assert [la["name"] for la in res.layers] == ["l0", "l0_reverse", "l1", "l1_reverse"]
        assert res.log10_spectral_norm is None  # no joint product for a non-causal stack
        assert res.layer_log10_spectral_norm is not None
        assert res.layer_log10_frobenius_norm is not None
        assert res.layer_log10_gradient_norm is not None
        assert res.log10_input_gradient_norm is not None
        _close_log(res.layer_log10_spectral_norm, _arr(ref["chain_spectral"]))
        _close_log(res.layer_log10_frobenius_norm, _arr(ref["chain_frobenius"]))
        _close_log(res.layer_log10_gradient_norm, _arr(ref[f"layer_grad_{loss}"]))
        _close_log(res.log10_input_gradient_norm, _arr(ref[f"input_grad_{loss}"]))
        np.testing.assert_allclose(res.final_hidden, ref["final_hidden"], rtol=0, atol=1e-12)
        if loss == "last":
            assert set(res.parameter_gradient) == set(ref["parameter_gradient"])
            for key, want in ref["parameter_gradient"].items():
                _close_vec(res.parameter_gradient[key], np.array(want))


def _check_split(res: StackResult, ref: dict, loss: str) -> None:
    """log10 ||G_k|| (1e-8 in log10, exact zeros as such), tail fractions (1e-10 absolute; the
    script's ``null`` is 0/0, an exactly zero gradient, reported as 0) and sum_k G_k against
    autograd's gradient (1e-10 relative); reference: per-position weight copies in torch."""
    assert res.log10_lag_gradient_norm is not None and res.lag_tail_fraction is not None
    assert res.parameter_gradient is not None
    assert set(ref[f"lag_norm_{loss}"]) <= set(res.log10_lag_gradient_norm)
    for key, want in ref[f"lag_norm_{loss}"].items():
        _close_log(res.log10_lag_gradient_norm[key], _arr(want))
        tail = np.array(ref[f"tail_fraction_{loss}"][key], dtype=float)
        tail[np.isnan(tail)] = 0.0
        np.testing.assert_allclose(res.lag_tail_fraction[key], tail, rtol=0, atol=1e-10)
        _close_vec(res.parameter_gradient[key], np.array(ref[f"parameter_gradient_{loss}"][key]))


@pytest.mark.parametrize("name", UNI)
def test_lag_split_of_the_sum_loss_matches_torch_autograd(name: str) -> None:
    ref, layers, x = _model(name)
    _check_split(analyze_stack(layers, x, gradient="sum", lag_split=True), ref, "sum")


@pytest.mark.parametrize("loss", ["last", "sum"])
def test_lag_split_of_a_bidirectional_stack_matches_torch_autograd(loss: str) -> None:
    ref, layers, x = _model("gru_bi")
    res = analyze_stack(layers, x, gradient=loss, lag_split=True)
    _check_split(res, ref, loss)
    # the reverse top layer's W_hr at lag 0 multiplies h_0 = 0, and nothing else reaches it
    # for the loss at T: its whole split is exactly zero, its tail fraction 0
    if loss == "last":
        assert np.isneginf(res.log10_lag_gradient_norm["l1_reverse.W_hr"]).all()
        np.testing.assert_array_equal(res.lag_tail_fraction["l1_reverse.W_hr"], 0.0)


def test_lag_split_defaults_and_its_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    ref, layers, x = _model("lstm2")
    assert not analyze_stack(layers, x, gradient="sum").log10_lag_gradient_norm  # O(T^2): opt in
    assert analyze_stack(layers, x, gradient="last").log10_lag_gradient_norm
    monkeypatch.setattr("gradflow.stack_lagsplit.LAG_SPLIT_BUDGET", 2**10)
    with pytest.raises(UsageError, match=r"lag split of gradient='sum'.*GiB.*gradient='last'") as e:
        analyze_stack(layers, x, gradient="sum", lag_split=True)
    assert "\n" not in str(e.value)


def test_sum_lag_split_stays_exact_across_hundreds_of_decades() -> None:
    """A vanishing RNN over T = 300 with L = sum_t L_t: each G_k is a sum over loss terms of
    contributions that differ by hundreds of decades, kept on one log10 scale per row. The
    split still sums to the plain pass's gradient (the same generated VJPs, summed in another
    order: 1e-12 relative), and the long lags are finite and far below the short ones."""
    rng = np.random.default_rng(5)
    layers = [Layer("rnn", _params("rnn", 3, 2, rng, 0.25))]
    x = rng.normal(size=(300, 2, 2))
    split = analyze_stack(layers, x, gradient="sum", lag_split=True)
    # the same function: a reverse-direction layer reading the reversed sequence, whose
    # gradient comes from the bidirectional code's plain backpropagation (one row, no split)
    mirror = [Layer("rnn", layers[0].params, "reverse")]
    ref = analyze_stack(mirror, x[::-1].copy(), gradient="sum", lag_split=False)
    lag = split.log10_lag_gradient_norm["l0.W_ih"]
    assert np.isfinite(lag).all() and lag[-1].max() < lag[0].min() - 100
    assert ref.parameter_gradient is not None and split.parameter_gradient is not None
    want = ref.parameter_gradient["l0_reverse.W_ih"]
    got = split.parameter_gradient["l0.W_ih"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def _params(cell_name: str, n: int, d: int, rng: np.random.Generator, scale: float = 1.0):
    cell = get_cell(cell_name)
    out = {}
    proj = max(1, n - 1) if cell.has_second_size else None  # lstm-proj: p = n - 1
    for p in cell.parameters:
        shape = p.numeric_shape(n, d, proj)
        if p.kind == "weight":
            out[p.name] = rng.normal(0, scale / np.sqrt(shape[-1]), shape)
        elif p.kind == "bias":
            out[p.name] = rng.normal(0, 0.5, shape)
        else:
            out[p.name] = rng.uniform(0.1, 0.9, shape)
    return out


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm-peephole", "indrnn", "mgu"])
@pytest.mark.parametrize("loss", ["last", "sum"])
def test_one_layer_equals_engine_analyze(cell: str, loss: str) -> None:
    """Reference: gradflow.engine.analyze; the contract numbers agree to 1e-12 in log10."""
    rng = np.random.default_rng(len(cell) + 7 * len(loss))
    params = _params(cell, 5, 3, rng)
    x = rng.normal(size=(37, 2, 3))
    ref = analyze(cell, params, x, gradient=loss)
    res = analyze_stack([Layer(cell, params)], x, gradient=loss, lag_split=loss == "last")
    for key in ("log10_spectral_norm", "log10_frobenius_norm", "log10_spectral_norm_hidden"):
        np.testing.assert_allclose(getattr(res, key), getattr(ref, key), rtol=0, atol=1e-12)
    assert res.log10_gradient_norm is not None and ref.log10_gradient_norm is not None
    np.testing.assert_allclose(res.log10_gradient_norm, ref.log10_gradient_norm, atol=1e-12)
    np.testing.assert_allclose(res.final_hidden, ref.final_hidden, rtol=0, atol=1e-14)
    d, want = res.to_dict(), ref.to_dict()
    for key in ("cell", "hidden_size", "input_size", "steps", "batch", "lags"):
        assert np.array_equal(np.asarray(d[key]), np.asarray(want[key])), key


def test_layer_chains_stay_exact_when_layers_decay_at_different_rates() -> None:
    """Each diagonal block carries its own scale: over T = 300 a fast-decaying upper layer's
    own chain (hundreds of decades below the joint product) equals engine.analyze on that
    layer alone with its true inputs, to 1e-9 in log10 (reference: the engine)."""
    rng = np.random.default_rng(5)
    p1 = _params("gru", 4, 3, rng, scale=1.0)
    p2 = _params("rnn", 4, 4, rng, scale=0.2)
    x = rng.normal(size=(300, 2, 3))
    res = analyze_stack([Layer("gru", p1), Layer("rnn", p2)], x, gradient="last")
    h1 = rollout("gru", p1, x)[1:]
    own2 = analyze("rnn", p2, h1)
    own1 = analyze("gru", p1, x)
    assert res.layer_log10_spectral_norm is not None and res.cross_log10_spectral_norm is not None
    np.testing.assert_allclose(
        res.layer_log10_spectral_norm[1], own2.log10_spectral_norm, atol=1e-9
    )
    np.testing.assert_allclose(
        res.layer_log10_spectral_norm[0], own1.log10_spectral_norm, atol=1e-9
    )
    assert own2.log10_spectral_norm[-1].max() < -150  # the regime this test is about
    assert np.isfinite(res.cross_log10_spectral_norm[:, 1:]).all()


def test_chunking_does_not_change_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one step (forward checkpoints at every step) give the same numbers as one
    chunk: the recompute is exact (1e-12; reference: the same analysis, other chunking)."""
    ref, layers, x = _model("lstm2")
    whole = analyze_stack(layers, x, gradient="last")
    monkeypatch.setattr(stack_mod, "MEMORY_BUDGET", 1)
    small = analyze_stack(layers, x, gradient="last")
    assert small.meta["chunk_steps"] == 1 and whole.meta["chunk_steps"] > 1
    for key in ("log10_spectral_norm", "cross_log10_spectral_norm", "log10_gradient_norm"):
        np.testing.assert_allclose(getattr(small, key), getattr(whole, key), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 70), chunk=st.integers(1, 9))
def test_two_level_checkpoints_give_every_chunk_its_exact_start_state(T: int, chunk: int) -> None:
    """:meth:`_Unidirectional.chunks` recomputes each span's chunk checkpoints: every chunk,
    last first, covers the steps exactly once and starts from the states a plain forward pass
    reaches there (bit for bit; reference: the layers stepped one chunk at a time from zero),
    while at most ``ceil(sqrt(T / chunk))`` span checkpoints are kept."""
    rng = np.random.default_rng(T * 10 + chunk)
    layers = [
        Layer("lstm", _params("lstm", 3, 2, rng)),
        Layer("gru", _params("gru", 4, 3, rng)),
    ]
    x = rng.standard_normal((T, 2, 2))
    rts = [g[0] for g in stack_mod._build(layers, 2, 2, "numpy", np.float64)]
    run = stack_mod._Unidirectional(rts, x, np.float64)
    run.chunk, run.span = chunk, stack_mod.span_chunks(T, chunk)
    spans, final = run.forward()
    chunks = -(-T // chunk)
    assert (run.span - 1) ** 2 < chunks <= run.span**2 and len(spans) <= run.span
    seen = list(run.chunks(spans))
    assert [(a, b) for a, b, _ in seen] == [
        (t0, min(T, t0 + chunk)) for t0 in reversed(range(0, T, chunk))
    ]
    states = [np.zeros((2, r.m)) for r in rts]
    starts = {}
    for t0 in range(0, T, chunk):
        starts[t0] = states
        h = x[t0 : t0 + chunk]
        new = []
        for s, r in zip(starts[t0], rts, strict=True):
            s, h, _, _ = r.run(s, h, keep=False)
            new.append(s)
        states = new
    for t0, _, ckpt in seen:
        for got, want in zip(ckpt, starts[t0], strict=True):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(final, states, strict=True):
        np.testing.assert_array_equal(got, want)


def test_result_round_trips_through_json(tmp_path: Path) -> None:
    _, layers, x = _model("gru2")
    res = analyze_stack(layers, x, gradient="last")
    path = tmp_path / "stack.json"
    res.save(path)
    back = StackResult.load(path)
    assert back.layers == res.layers and back.cell == "gru"
    for key in ("log10_spectral_norm", "cross_log10_spectral_norm", "log10_input_spectral_norm"):
        np.testing.assert_array_equal(getattr(back, key), getattr(res, key))
    for key, value in res.parameter_gradient.items():
        np.testing.assert_array_equal(back.parameter_gradient[key], value)
    bare = analyze_stack(layers, x, gradient=None, input_sensitivity=False, hidden=False)
    keys = bare.to_dict()
    for absent in ("log10_spectral_norm_hidden", "log10_gradient_norm", "parameter_gradient"):
        assert absent not in keys
    np.testing.assert_array_equal(keys["log10_spectral_norm"], res.log10_spectral_norm)
    with pytest.raises(GradflowError, match="not a stack_analysis result"):
        StackResult.from_dict({"kind": "analysis"})


def test_stack_result_is_a_typed_result(tmp_path: Path) -> None:
    """load_result dispatches on kind "stack_analysis"; every array (including -inf, the log
    of a structurally zero block) round-trips exactly; timings are in ``run``, not the data,
    so two runs write byte-identical files."""
    from gradflow.results import Result, load_result, run_path

    _, layers, x = _model("lstm2")
    res = analyze_stack(layers, x, gradient="last")
    assert isinstance(res, Result) and res.kind == "stack_analysis"
    assert res.run["seconds"] > 0 and "seconds" not in res.meta
    assert res.cross_log10_spectral_norm is not None
    assert np.isneginf(res.cross_log10_spectral_norm[0, 0]).all()  # block (L, 0) at lag 0
    res.save(tmp_path / "a.json")
    res.save_run(run_path(tmp_path / "a.json"))
    assert "seconds" in json.loads((tmp_path / "a.run.json").read_text())
    back = load_result(tmp_path / "a.json")
    assert isinstance(back, StackResult) and back.layers == res.layers
    for key in ("log10_spectral_norm", "layer_log10_gradient_norm", "final_hidden"):
        np.testing.assert_array_equal(getattr(back, key), getattr(res, key))
    np.testing.assert_array_equal(back.cross_log10_spectral_norm, res.cross_log10_spectral_norm)
    for table in ("parameter_gradient", "log10_lag_gradient_norm", "lag_tail_fraction"):
        for key, value in getattr(res, table).items():
            np.testing.assert_array_equal(getattr(back, table)[key], value)
    assert back.comparable() == res.comparable()
    again = analyze_stack(layers, x, gradient="last")
    again.save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": "ten"}, "steps: expected an integer"),
        ({"layers": {}}, "layers: expected a list"),
        ({"log10_spectral_norm": [[0.0, 0.0]]}, r"log10_spectral_norm: expected shape"),
        ({"layer_log10_spectral_norm": [[[0.0]]]}, "layer_log10_spectral_norm: expected"),
        ({"final_hidden": [[0.0]]}, "final_hidden: expected 2 rows"),
        ({"gradient_loss": "max"}, "gradient_loss: expected 'last' or 'sum'"),
        ({"parameter_gradient": {"l0.W_ii": [1.0]}}, r"parameter_gradient.l0.W_ii"),
        ({"lag_tail_fraction": {"l0.W_ii": "x"}}, r"lag_tail_fraction.l0.W_ii"),
    ],
)
def test_malformed_stack_results_give_one_line(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    from gradflow.results import ResultError, load_result

    _, layers, x = _model("gru2")
    data = analyze_stack(layers, x, gradient="last").comparable()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, **change}))
    with pytest.raises(ResultError, match=message) as err:
        load_result(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_bad_models_are_refused_with_one_line_errors() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, 3))
    good = Layer("rnn", _params("rnn", 4, 3, rng))
    wrong_d = Layer("rnn", _params("rnn", 4, 5, rng))  # reads 5 features, layer below gives 4
    cases: list[tuple[Any, dict, type[Exception], str]] = [
        ([good, wrong_d], {}, WeightsError, r"l1 \(rnn\): W_ih has shape \(4, 5\)"),
        ([Layer("rnn", {"W_ih": np.zeros((4, 3))})], {}, WeightsError, "missing W_hh"),
        ([Layer("rnn", good.params, "sideways")], {}, UsageError, "unknown direction"),
        ([(good, good)], {}, UsageError, r"pair is \(forward, reverse\)"),
        ([], {}, UsageError, "at least one layer"),
        ([good], {"gradient": None, "lag_split": True}, UsageError, "lag split"),
        ([good], {"gradient": "mean"}, UsageError, "unknown gradient loss"),
    ]
    for layers, kwargs, err, match in cases:
        with pytest.raises(err, match=match) as info:
            analyze_stack(layers, x, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(GradflowError, match="shape"):
        analyze_stack([good], x[0])


# -- property: any catalogue cells, stacked, against a dense joint product -------------------

SMOOTH_CELLS = sorted(c for c in CATALOGUE if c not in ("rnn-relu", "indrnn"))  # no FD kinks


def _dense_reference(cells: list[str], params: list[dict], x: np.ndarray):
    """Dense joint Jacobians from engine.state_jacobians (the codegen's materialised Jacobian
    kernel, not the apply kernels the stack chain uses) and input Jacobians by central
    differences of one engine.rollout step; the joint step A_t D_t assembled densely."""
    T, B, _ = x.shape
    inp, states, Js, Ks, hcols = x, [], [], [], []
    for cell, p in zip(cells, params, strict=True):
        c = get_cell(cell)
        n = p[c.parameters[0].name].shape[0]
        S = rollout(cell, p, inp)
        J = state_jacobians(cell, p, inp)
        d = inp.shape[2]
        K = np.empty((T, B, S.shape[-1], d))
        for t in range(T):
            for k in range(d):
                e = np.zeros(d)
                e[k] = 1e-6
                hi = rollout(cell, p, inp[t : t + 1] + e, s0=S[t])[1]
                lo = rollout(cell, p, inp[t : t + 1] - e, s0=S[t])[1]
                K[t, :, :, k] = (hi - lo) / 2e-6
        k = c.state.index("h") if "h" in c.state else 0  # the layer output, as gradflow.stack
        hcol = np.arange(k * n, (k + 1) * n)
        if c.has_second_size:  # lstm-proj: h (size p = W_hr's rows) first
            hcol = np.arange(p["W_hr"].shape[0])
        states.append(S), Js.append(J), Ks.append(K), hcols.append(hcol)
        inp = S[1:][..., hcol]
    sizes = [J.shape[-1] for J in Js]
    off = np.cumsum([0] + sizes)
    M = off[-1]
    joint = np.zeros((T, B, M, M))
    first = np.zeros((T, B, M, x.shape[2]))
    for t in range(T):
        N = np.zeros((B, M, M))
        D = np.zeros((B, M, M))
        for i in range(len(cells)):
            D[:, off[i] : off[i + 1], off[i] : off[i + 1]] = Js[i][t]
            if i:
                N[:, off[i] : off[i + 1], off[i - 1] + hcols[i - 1]] = Ks[i][t]
        A = np.linalg.inv(np.eye(M) - N)
        joint[t] = A @ D
        first[t] = A[:, :, off[0] : off[1]] @ Ks[0][t]
    return joint, first, off


@settings(max_examples=12, deadline=None)
@given(
    cells=st.lists(st.sampled_from(SMOOTH_CELLS), min_size=2, max_size=3),
    n=st.integers(2, 4),
    T=st.integers(1, 6),
    d=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
@example(cells=["lstm-proj", "lstm-proj", "gru"], n=4, T=5, d=3, seed=3)  # p = 3 feeds the next
def test_any_catalogue_stack_matches_a_dense_joint_product(cells, n, T, d, seed) -> None:
    """Joint, per-layer, cross-layer and input-sensitivity norms equal those of the dense
    product of the assembled joint Jacobians (exact SVD), to 1e-6 in log10 (the input
    Jacobians come from central differences, relative error ~1e-9). Input sizes below and
    above the state sizes take both paths of the memory curves (Gram matrices, SVDs)."""
    rng = np.random.default_rng(seed)
    B = 2
    params, width = [], d
    for cell in cells:
        params.append(_params(cell, n, width, rng))
        width = n - 1 if get_cell(cell).has_second_size else n  # lstm-proj outputs p = n - 1
    x = rng.normal(size=(T, B, d))
    res = analyze_stack([Layer(c, p) for c, p in zip(cells, params, strict=True)], x, gradient=None)
    joint, first, off = _dense_reference(cells, params, x)
    L = len(cells)
    P = np.broadcast_to(np.eye(off[-1]), joint.shape[1:]).copy()
    for k in range(1, T + 1):
        t = T - k  # joint[t] is the step to time t+1; x_{t+1} enters through first[t]
        Y = P @ first[t]
        assert res.log10_input_spectral_norm is not None
        np.testing.assert_allclose(
            res.log10_input_spectral_norm[k - 1],
            np.log10(np.linalg.norm(Y, 2, axis=(1, 2))),
            atol=1e-6,
        )
        assert res.layer_log10_input_spectral_norm is not None
        for i in range(L):
            np.testing.assert_allclose(
                res.layer_log10_input_spectral_norm[i, k - 1],
                np.log10(np.linalg.norm(Y[:, off[i] : off[i + 1]], 2, axis=(1, 2))),
                atol=1e-6,
            )
        P = P @ joint[t]
        np.testing.assert_allclose(
            res.log10_spectral_norm[k], np.log10(np.linalg.norm(P, 2, axis=(1, 2))), atol=1e-6
        )
        np.testing.assert_allclose(
            res.log10_frobenius_norm[k],
            np.log10(np.linalg.norm(P, "fro", axis=(1, 2))),
            atol=1e-6,
        )
        for i in range(L):
            blk = P[:, off[i] : off[i + 1], off[i] : off[i + 1]]
            np.testing.assert_allclose(
                res.layer_log10_spectral_norm[i, k],
                np.log10(np.linalg.norm(blk, 2, axis=(1, 2))),
                atol=1e-6,
            )
            cross = P[:, off[L - 1] :, off[i] : off[i + 1]]
            np.testing.assert_allclose(
                res.cross_log10_frobenius_norm[i, k],
                np.log10(np.linalg.norm(cross, "fro", axis=(1, 2))),
                atol=1e-6,
            )


def test_docs_example_runs_on_the_lstm2_fixture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python example of docs/stacks.md runs as written (on the lstm2 fixture) and gives
    the numbers of the torch reference (1e-8 in log10, as above)."""
    import re
    import shutil

    text = (Path(__file__).parents[1] / "docs" / "stacks.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match is not None
    shutil.copy(DATA / "lstm2.safetensors", tmp_path / "lstm2.safetensors")
    shutil.copy(DATA / "lstm2_inputs.npy", tmp_path / "inputs.npy")
    monkeypatch.chdir(tmp_path)
    exec(compile(match.group(1), "docs/stacks.md", "exec"), {})  # our own documentation
    res = StackResult.load(tmp_path / "stack.json")
    ref = json.loads((DATA / "lstm2.json").read_text())
    assert res.log10_spectral_norm is not None
    _close_log(res.log10_spectral_norm, _arr(ref["joint_spectral"]))


def test_lag_split_stays_finite_in_the_log_domain() -> None:
    """A vanishing 2-layer RNN over T = 400: the contributions G_k of long lags are hundreds
    of decades below the total (below float64's range), yet every log10 ||G_k|| is finite,
    decays with the lag, and the tail fractions fall from ~1 to ~0 within [0, 1]."""
    rng = np.random.default_rng(11)
    layers = [
        Layer("rnn", _params("rnn", 4, 3, rng, 0.3)),
        Layer("rnn", _params("rnn", 4, 4, rng, 0.3)),
    ]
    x = rng.normal(size=(400, 2, 3))
    res = analyze_stack(layers, x, gradient="last")
    lag = res.log10_lag_gradient_norm["l0.W_hh"]
    # the step at t = 1 contributes exactly nothing to W_hh (h_0 = 0): -inf is the truth there
    assert np.isfinite(lag[:-1]).all() and np.isneginf(lag[-1]).all()
    assert lag[-2].max() < -100 and lag[-2].max() < lag[2].min() - 90
    frac = res.lag_tail_fraction["l1.W_ih"]
    assert ((frac >= 0) & (frac <= 1 + 1e-12)).all()
    assert frac[-1].max() == 0.0 or frac[-1].max() < 1e-14
    assert frac[0].min() > 0.01


def test_float32_agrees_with_float64() -> None:
    """float32 runs the same analysis; norms agree with float64 to 1e-3 in log10 over 20
    steps (single-precision rounding, ~1e-7 per step, amplified by the chain)."""
    ref, layers, x = _model("gru2")
    r64 = analyze_stack(layers, x, gradient="last")
    r32 = analyze_stack(layers, x, gradient="last", dtype="float32")
    for key in ("log10_spectral_norm", "cross_log10_spectral_norm", "log10_gradient_norm"):
        np.testing.assert_allclose(getattr(r32, key), getattr(r64, key), atol=1e-3)


def test_lag_split_of_the_sum_loss_through_the_cli(tmp_path: Path) -> None:
    """``--gradient sum --lag-split`` on a stack file; reference: torch autograd (as above)."""
    from click.testing import CliRunner

    from gradflow.cli import cli

    ref = json.loads((DATA / "lstm2.json").read_text())
    np.save(tmp_path / "x.npy", np.load(DATA / "lstm2_inputs.npy"))
    args = ["analyze", "--weights", str(DATA / "lstm2.safetensors"), "--inputs"]
    args += [str(tmp_path / "x.npy"), "--output", str(tmp_path / "o.json"), "--gradient", "sum"]
    run = CliRunner().invoke(cli, [*args, "--lag-split"])
    assert run.exit_code == 0, run.output
    _check_split(StackResult.load(tmp_path / "o.json"), ref, "sum")
    # one forward layer keeps the single-layer result, which has no lag split: refused
    one = CliRunner().invoke(cli, [*args, "--lag-split", "--layers", "1"])
    assert one.exit_code != 0 and "--lag-split applies to stacks" in one.output
    assert len(one.output.strip().splitlines()) == 1
