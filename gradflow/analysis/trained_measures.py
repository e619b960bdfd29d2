r"""Per-sequence measurements of one trained checkpoint: what claims (a)-(f) look at.

:func:`measure_checkpoint` runs one one-layer checkpoint (:mod:`gradflow.analysis.trained`) on
sequences of its task and returns, for every quantity the claims of
:mod:`gradflow.analysis.claims` rest on, one value per sequence. Every number comes from the
existing machinery:

* the product's norms, its decay rate and the pure additive chain ``S_0`` (the ``j = 0`` term
  of ``P_k = sum_j S_j``, :mod:`gradflow.decomposition`) from :func:`gradflow.engine.analyze`
  with ``paths=True``; the Pascanu bound's slack from
  :func:`gradflow.analysis.bounds.pascanu_tightness`;
* the largest Lyapunov exponent from :func:`gradflow.analysis.lyapunov.lyapunov_diagnostics`
  of the materialised Jacobians (:func:`gradflow.engine.state_jacobians`);
* the weight gradient of the *task loss* split by lag ([pascanu2013], sec. 2), with the
  generated parameter vector-Jacobian products of :mod:`gradflow.sensitivity_codegen`:

  .. math::
      L_b = (w^\top h_T + b - y_b)^2, \qquad
      \frac{dL_b}{d\theta} = \sum_{j=0}^{T-1} G_j, \qquad
      G_j = \frac{dL_b}{ds_{T-j}} \frac{\partial s_{T-j}}{\partial \theta},

  where ``w, b`` are the checkpoint's read-out (``head``), ``theta`` the recurrent cell's
  parameters (the read-out's own gradient, lag 0 by definition, is left out), and the
  long-lag part beyond ``k`` is ``R_k = sum_{j>k} G_j``. The row vector ``dL_b/ds_t`` is
  carried with a log10 scale per sequence (:mod:`gradflow.logscaled`).

One concept per module: the measurements; the claims worded from them are in
:mod:`gradflow.analysis.trained_claims`.

References:
    [pascanu2013] Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent
    neural networks, ICML, sec. 2 (the gradient split by lag) and 3.2 (clipping by norm).
    [benettin1980] Benettin et al. (1980), Lyapunov characteristic exponents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..cells import Cell, get_cell
from ..engine import analyze, rollout, state_jacobians
from ..errors import UsageError
from ..logscaled import Scaled, add, log_norm, normalise
from ..sensitivity_codegen import compile_sensitivity
from ..tensorfile import open_tensor_file
from .bounds import pascanu_tightness
from .checkpoints import checkpoint_path, load_checkpoint
from .decay import decay_rate
from .lyapunov import lyapunov_diagnostics

#: Sequences per group whose Jacobians are materialised at once (memory: T G m^2 floats).
GROUP = 8
#: Gradient-clipping threshold of claim (f) (the one the checkpoints were trained with).
CLIP = 1.0


def read_head(name: str, stage: str) -> tuple[np.ndarray, float]:
    """The checkpoint's read-out ``(w (n,), b)``, read with gradflow's tensor-file reader."""
    tf = open_tensor_file(checkpoint_path(name, stage))
    w = np.asarray(tf.read("head.weight"), dtype=np.float64).ravel()
    b = float(np.asarray(tf.read("head.bias"), dtype=np.float64).ravel()[0])
    return w, b


def parameter_counts(name: str, stage: str) -> dict[str, int]:
    """Parameter counts of a checkpoint from its file's tensor shapes: ``recurrent`` (the
    ``rnn.`` tensors, PyTorch's layout with two bias vectors) and ``readout``."""
    tf = open_tensor_file(checkpoint_path(name, stage))
    counts = {"recurrent": 0, "readout": 0}
    for key in tf.names:
        size = int(np.prod(tf.shape(key)))
        counts["recurrent" if key.startswith("rnn.") else "readout"] += size
    return counts


def _plain(x: Scaled) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(x.a * np.power(10.0, x.l)[:, None])


def task_gradient(
    cell: Cell | str,
    params: Mapping[str, Any],
    head: tuple[np.ndarray, float],
    inputs: np.ndarray,
    targets: np.ndarray,
    lags: Sequence[int],
    jacobians: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The recurrent weights' gradient of the task loss ``L_b``, split by lag, per sequence.

    Args:
        cell: a one-layer cell or its name; params: its parameters.
        head: the read-out ``(w, b)`` on ``h_T``.
        inputs: ``(T, B, d)``; targets: ``(B,)``.
        lags: lags ``k`` in ``0..T-1`` of the long-lag parts ``R_k``.
        jacobians: the materialised ``ds_t/ds_{t-1}`` ``(T, B, m, m)`` if already computed.

    Returns:
        ``log10_norm (B,)`` ``log10 ||dL_b/dθ||``; ``log10_tail_norm (K, B)``
        ``log10 ||R_k||``; ``gradient (B, P)`` ``dL_b/dθ`` as plain floats (parameters
        flattened in the cell's order; it may overflow where the norm does not fit a float,
        unlike the log10 norms); ``z_mean (B,)`` the mean over steps and units of the gate
        ``z`` (cells with one; else absent); ``prediction (B,)``.

    Raises:
        UsageError: a lag outside ``0..T-1``.
    """
    c = get_cell(cell) if isinstance(cell, str) else cell
    x = np.ascontiguousarray(inputs, dtype=np.float64)
    T, B, _ = x.shape
    ks = sorted({int(k) for k in lags})
    if not ks or ks[0] < 0 or ks[-1] > T - 1:
        raise UsageError(f"lags must lie in 0..{T - 1}, got {list(lags)}")
    kern = compile_sensitivity(c)
    q = kern.pack(params)
    keys = [p.name for p in c.parameters]
    S = rollout(c, params, x)  # (T + 1, B, m)
    # (T, B, m, m): J[t - 1] = ds_t/ds_{t-1}
    J = state_jacobians(c, params, x) if jacobians is None else jacobians
    w, b0 = head
    n = w.size
    pred = S[-1, :, :n] @ w + b0
    e = np.zeros((B, S.shape[-1]))
    e[:, :n] = 2.0 * (pred - np.asarray(targets, dtype=np.float64))[:, None] * w
    g = normalise(np, e, np.zeros(B))  # dL_b/ds_T, unit rows and a log10 scale
    total: Scaled | None = None
    heads: dict[int, Scaled] = {}
    z: list[np.ndarray] = []
    for j in range(T):
        t = T - j
        E = kern.values(S[t - 1], x[t - 1], q)
        if "z" in E:
            z.append(np.asarray(E["z"]))
        grads = kern.param_vjp(g.a, E, q)
        G = np.concatenate([np.asarray(grads[k]).reshape(B, -1) for k in keys], axis=1)
        total = add(np, total, Scaled(G, g.l.copy()))
        if j in ks:
            assert total is not None
            heads[j] = Scaled(total.a.copy(), total.l.copy())
        g = normalise(np, np.einsum("bi,bij->bj", g.a, J[t - 1]), g.l)
    assert total is not None
    tails = []
    for k in ks:
        rest = add(np, total, heads[k], -1.0)
        assert rest is not None
        tails.append(log_norm(np, rest.a) + rest.l)
    out = {
        "log10_norm": log_norm(np, total.a) + total.l,
        "log10_tail_norm": np.array(tails),
        "gradient": _plain(total),
        "prediction": pred,
    }
    if z:
        out["z_mean"] = np.mean(np.stack(z), axis=(0, 2))
    return out


def additive_chain(
    additive: np.ndarray, spectral_lags: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Norms of the pure additive chain ``S_0 = A_T ... A_{T-k+1}`` for every lag.

    Args:
        additive: ``(T, B, m, m)`` the materialised additive parts ``A_t`` (generated,
            :func:`gradflow.engine.state_jacobians` with ``path="additive"``).
        spectral_lags: lags at which to take the spectral norm too (an SVD each).

    Returns:
        ``(log10 ||S_0||_F, log10 ||S_0||_2)``, each ``(T + 1, B)``; the spectral norm is
        NaN at lags not asked for; ``-inf`` where the chain is exactly zero. The product is
        renormalised at every step, its log10 scale carried (never under- or overflows).
    """
    T, B, m, _ = additive.shape
    P = np.broadcast_to(np.eye(m), (B, m, m)).copy()
    scale = np.zeros(B)
    frob = np.zeros((T + 1, B))
    frob[0] = 0.5 * np.log10(m)
    spec = np.full((T + 1, B), np.nan)
    spec[0] = 0.0
    want = set(spectral_lags)
    for k in range(1, T + 1):
        P = P @ additive[T - k]
        s = np.sqrt(np.einsum("bij,bij->b", P, P))
        P /= np.where(s > 0, s, 1.0)[:, None, None]
        with np.errstate(divide="ignore"):
            scale = scale + np.log10(s)
        frob[k] = scale
        if k in want:
            with np.errstate(divide="ignore"):
                spec[k] = scale + np.log10(np.linalg.svd(P, compute_uv=False)[:, 0])
    return frob, spec


def measure_checkpoint(
    name: str,
    stage: str,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    window: tuple[int, int],
    lags: Sequence[int],
    tail_lags: Sequence[int],
) -> dict[str, np.ndarray]:
    """Per-sequence measurements of a one-layer checkpoint on ``inputs (T, B, d)``.

    Returns:
        ``{quantity: (B,) values}``: ``log10_spectral_norm`` (``(T + 1, B)``, every lag),
        ``rate`` (decay rate of the spectral norm over
        ``window``, decades per step), ``log10_norm_lag{k}`` for ``k`` in ``lags``,
        ``lyapunov`` (largest exponent, decades per step, after a transient of
        ``window[0]`` steps), ``log10_gradient_norm`` and ``log10_long_lag_share_lag{k}``
        (``log10 ||R_k|| / ||dL/dθ||``) for ``k`` in ``tail_lags``, ``clipped`` (1 where
        ``||dL_b/dθ|| > CLIP``); a tanh RNN adds ``pascanu_slack_lag{T}`` (bound minus norm,
        decades) and ``pascanu_violations``; a cell with an additive path adds
        ``log10_additive_share`` (``log10 ||S_0||_F / ||P_k||_F``, ``(T + 1, B)``, every
        lag), ``log10_additive_share_lag{k}`` and
        ``additive_rate``; a GRU adds ``z_mean``.

    Raises:
        UsageError: a stacked checkpoint, or lags outside the sequence.
    """
    model = load_checkpoint(name, stage)
    if len(model.layers) != 1:
        raise UsageError(f"checkpoint {name!r} is a stack; the claims take one layer")
    layer = model.layers[0]
    cell = get_cell(layer.cell)
    params = layer.directions[0].params
    T, B, _ = inputs.shape
    res = analyze(cell, params, inputs, hidden=False)
    spec = res.log10_spectral_norm
    out: dict[str, np.ndarray] = {
        "log10_spectral_norm": spec,
        "rate": np.array([decay_rate(spec[:, i], window) for i in range(B)]),
    }
    for k in lags:
        out[f"log10_norm_lag{k}"] = spec[k].copy()
    if cell.name == "rnn":
        tight = pascanu_tightness(cell.name, dict(params), spec)
        out[f"pascanu_slack_lag{T}"] = tight.log10_slack[T].copy()
        out["pascanu_violations"] = (tight.log10_slack < -tight.tolerance[:, None]).sum(0)
    else:  # a cell with an additive path: the pure additive chain S_0
        A = state_jacobians(cell, params, inputs, path="additive")
        spectral = range(window[0], window[1] + 1) if cell.name == "gru" else ()
        frob, spec_add = additive_chain(A, spectral)
        out["log10_additive_share"] = frob - res.log10_frobenius_norm
        for k in lags:
            out[f"log10_additive_share_lag{k}"] = out["log10_additive_share"][k].copy()
        if cell.name == "gru":
            out["additive_rate"] = np.array([decay_rate(spec_add[:, i], window) for i in range(B)])
    head = read_head(name, stage)
    parts: dict[str, list[np.ndarray]] = {}
    for lo in range(0, B, GROUP):
        sl = slice(lo, min(B, lo + GROUP))
        J = state_jacobians(cell, params, inputs[:, sl])
        lyap = lyapunov_diagnostics(J, 1, transient=window[0], blocks=2)
        parts.setdefault("lyapunov", []).append(lyap.per_sequence[:, 0])
        grad = task_gradient(cell, params, head, inputs[:, sl], targets[sl], tail_lags, J)
        parts.setdefault("log10_gradient_norm", []).append(grad["log10_norm"])
        for i, k in enumerate(sorted(set(tail_lags))):
            share = grad["log10_tail_norm"][i] - grad["log10_norm"]
            parts.setdefault(f"log10_long_lag_share_lag{k}", []).append(share)
        if "z_mean" in grad:
            parts.setdefault("z_mean", []).append(grad["z_mean"])
    out.update({k: np.concatenate(v) for k, v in parts.items()})
    out["clipped"] = (out["log10_gradient_norm"] > np.log10(CLIP)).astype(float)
    return out
