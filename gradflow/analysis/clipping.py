r"""Gradient clipping of an exploding LSTM: the update's norm and its long-lag share.

For one layer and the loss ``L = sum h_T`` the parameter gradient splits by lag
([pascanu2013], sec. 2; :mod:`gradflow.stack_vectors`):

.. math::
    \frac{dL}{d\theta} = \sum_{j=0}^{T-1} G_j, \qquad
    G_j = \frac{dL}{ds_{T-j}} \frac{\partial s_{T-j}}{\partial \theta},

and the *long-lag part* beyond ``k`` is ``R_k = sum_{j>k} G_j`` (what travelled more than
``k`` steps back from the loss). :func:`lag_split_gradient` returns ``dL/dθ`` and ``R_k`` as
vectors over every parameter, per sequence, in the log domain (a unit vector and its log10
norm), from the same generated kernels as the stack analysis (state factors, parameter VJP),
through :func:`gradflow.stack_api.lag_gradients`.

Clipping by global norm with threshold ``c`` multiplies an update ``g`` by
``min(1, c / ||g||)`` ([pascanu2013], algorithm 1). A batch update is the mean of the
sequences' gradients. Clipped *per batch*, the mean is rescaled as a whole, so its long-lag
share ``||mean_b R_{k,b}|| / ||mean_b g_b||`` is exactly unchanged; clipped *per sequence*
(each ``g_b`` before the mean, as per-example clipping does), the sequences with the largest
norms are scaled down most, which changes the share. :func:`tail_share` computes the share for
``mode`` in ``none``, ``batch``, ``sequence``.

:func:`clipping_data` runs this for the exploding LSTM of claim (f) over weight draws and
:func:`claim_f` words the claim from it (:mod:`gradflow.analysis.claims`).

Accuracy: ``R_k = dL/dθ - sum_{j<=k} G_j`` is taken on a common log scale; its absolute error
is about ``eps ||dL/dθ||`` (float64), so a long-lag share below ``1e-13`` is rounding.

Examples:
    >>> import numpy as np
    >>> from gradflow.initialisers import Init, initialise
    >>> from gradflow.cells import get_cell
    >>> rng = np.random.default_rng(0)
    >>> p = initialise(get_cell("lstm"), 4, 2, Init(scheme="gaussian", sigma_w=6.0), rng)
    >>> split = lag_split_gradient("lstm", p, rng.standard_normal((30, 3, 2)), [0, 10, 29])
    >>> split.log10_tail_norm.shape, bool(np.isneginf(split.log10_tail_norm[-1]).all())
    ((3, 3), True)

References:
    [pascanu2013] Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent
    neural networks, ICML, sec. 2 and 3.2 (algorithm 1: clipping by norm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cells import Cell, get_cell
from ..errors import UsageError
from ..initialisers import initialise
from ..logscaled import Scaled, add, log_norm
from ..results import Claim, Clipping
from ..stack_api import lag_gradients, model_inputs, parameter_names
from .claimkit import Tick, add_interval, ci_text, make_claim
from .config import ExperimentConfig
from .defaults import CLIP_THRESHOLD
from .run import cell_init, experiment_inputs, seed_sequence

MODES = ("none", "batch", "sequence")


@dataclass(frozen=True)
class LagSplit:
    """The parameter gradient of ``L = sum h_T`` and its long-lag parts, per sequence.

    Attributes:
        keys: parameter names, in the order of the flattened vectors.
        lags: ``(K,)`` the lags ``k`` of the long-lag parts.
        direction: ``(B, P)`` ``dL/dθ / ||dL/dθ||`` (zero where the gradient is zero).
        log10_norm: ``(B,)`` ``log10 ||dL/dθ||`` (global 2-norm over every parameter).
        tail_direction: ``(K, B, P)`` ``R_k / ||R_k||``.
        log10_tail_norm: ``(K, B)`` ``log10 ||R_k||`` (``-inf`` where ``R_k = 0``, k = T - 1).
        log10_lag_norm: ``(T, B)`` ``log10 ||G_j||``.
    """

    keys: tuple[str, ...]
    lags: np.ndarray
    direction: np.ndarray
    log10_norm: np.ndarray
    tail_direction: np.ndarray
    log10_tail_norm: np.ndarray
    log10_lag_norm: np.ndarray

    def gradient(self) -> np.ndarray:
        """``(B, P)`` ``dL/dθ`` as plain floats (may overflow: for tests and small cases)."""
        with np.errstate(over="ignore"):
            return np.asarray(self.direction * np.power(10.0, self.log10_norm)[:, None])

    def tail(self) -> np.ndarray:
        """``(K, B, P)`` ``R_k`` as plain floats (may overflow: for tests and small cases)."""
        with np.errstate(over="ignore"):
            return np.asarray(self.tail_direction * np.power(10.0, self.log10_tail_norm)[..., None])


def _unit(s: Scaled) -> tuple[np.ndarray, np.ndarray]:
    """``(a / ||a||, l + log10 ||a||)`` per sequence; a zero vector stays zero, ``-inf``."""
    a = np.asarray(s.a, dtype=np.float64)
    nrm = np.sqrt(np.sum(a * a, axis=1))
    with np.errstate(divide="ignore"):
        logs = s.l + np.log10(nrm)
    return a / np.where(nrm > 0, nrm, 1.0)[:, None], np.where(nrm > 0, logs, -np.inf)


def lag_split_gradient(
    cell: Cell | str, params: Mapping[str, Any], inputs: Any, lags: Sequence[int] | np.ndarray
) -> LagSplit:
    r"""``dL/dθ`` and the long-lag parts ``R_k = sum_{j>k} G_j`` for ``L = sum h_T``.

    Args:
        cell: a one-layer cell or its catalogue name.
        params: its parameters by the cell's names.
        inputs: float array ``(T, B, d)``; the initial state is zero.
        lags: lags ``k`` in ``0..T-1``.

    Returns:
        A :class:`LagSplit`.

    Raises:
        UsageError: a lag outside ``0..T-1``. WeightsError, InputsError, NumericalError: as
            :func:`gradflow.stack.analyze_stack`.

    References:
        [pascanu2013].
    """
    c, x = model_inputs(cell, inputs)
    T, B, d = x.shape
    ks = np.array(sorted({int(k) for k in lags}), dtype=int)
    if ks.size == 0 or ks[0] < 0 or ks[-1] > T - 1:
        raise UsageError(f"lags must be a non-empty subset of 0..{T - 1}, got {list(lags)}")
    head: Scaled | None = None
    heads: dict[int, Scaled | None] = {}
    want = set(ks.tolist())
    lag_norm = np.full((T, B), -np.inf)
    for lag, G in lag_gradients(c, params, x):
        lag_norm[lag] = log_norm(np, G.a) + G.l
        head = add(np, head, G)
        if lag in want:
            assert head is not None
            heads[lag] = Scaled(head.a.copy(), head.l.copy())
    assert head is not None
    direction, log10_norm = _unit(head)
    tails = []
    for k in ks:
        rest = add(np, head, heads[int(k)], -1.0)
        assert rest is not None
        tails.append(_unit(rest))
    return LagSplit(
        keys=parameter_names(c),
        lags=ks,
        direction=direction,
        log10_norm=log10_norm,
        tail_direction=np.stack([t[0] for t in tails]),
        log10_tail_norm=np.stack([t[1] for t in tails]),
        log10_lag_norm=lag_norm,
    )


def clip_log10_scale(log10_norm: Any, threshold: float) -> np.ndarray:
    """``log10 min(1, c / ||g||)``: the log10 of clipping's factor for each norm."""
    if not (np.isfinite(threshold) and threshold > 0):
        raise UsageError(f"the clip threshold must be a positive number, got {threshold}")
    return np.asarray(np.minimum(0.0, np.log10(threshold) - np.asarray(log10_norm, dtype=float)))


def _log_sum(directions: np.ndarray, logs: np.ndarray) -> float:
    """``log10 ||sum_b u_b 10^{l_b}||`` on a common scale (``directions (B, P)``)."""
    fin = np.isfinite(logs)
    if not fin.any():
        return -np.inf
    top = float(np.max(logs[fin]))
    w = np.where(fin, np.power(10.0, np.where(fin, logs, top) - top), 0.0)
    v = (w[:, None] * directions).sum(axis=0)
    with np.errstate(divide="ignore"):
        return top + float(np.log10(np.linalg.norm(v)))


def tail_share(split: LagSplit, threshold: float, mode: str = "none") -> np.ndarray:
    """The long-lag share ``||mean_b R_{k,b}|| / ||mean_b g_b||`` of the batch update, after
    clipping by global norm (``mode``: ``none``, ``batch``, ``sequence``).

    Returns:
        ``(K,)`` shares in ``[0, inf)`` (above 1 where the short lags cancel part of the long
        ones).

    Raises:
        UsageError: an unknown mode or a bad threshold.
    """
    if mode not in MODES:
        raise UsageError(f"unknown clipping mode {mode!r}; choose one of {', '.join(MODES)}")
    B = split.log10_norm.shape[0]
    scale = np.zeros(B)
    if mode == "sequence":
        scale = clip_log10_scale(split.log10_norm, threshold)
    elif mode == "batch":  # one factor for the whole batch: it cancels in the share
        total = _log_sum(split.direction, split.log10_norm) - np.log10(B)
        scale = np.full(B, float(clip_log10_scale(total, threshold)))
    denom = _log_sum(split.direction, split.log10_norm + scale)
    out = np.array(
        [
            _log_sum(split.tail_direction[i], split.log10_tail_norm[i] + scale)
            for i in range(split.lags.size)
        ]
    )
    with np.errstate(over="ignore"):
        return np.asarray(np.power(10.0, out - denom))


def batch_log10_norm(split: LagSplit) -> float:
    """``log10 ||mean_b g_b||``: the norm of the unclipped batch update."""
    return _log_sum(split.direction, split.log10_norm) - float(np.log10(split.log10_norm.size))


def clipping_data(config: ExperimentConfig, tick: Tick = lambda: None) -> Clipping:
    """Per draw of the exploding LSTM of ``config``: each sequence's ``log10 ||dL/dθ||``, and
    the long-lag share of the batch update unclipped and clipped (per batch, per sequence)."""
    cell = get_cell(config.cells[0])
    T = config.steps
    lags = np.arange(0, T, max(1, T // 20))
    norms, batch_norms, none, batch, seq = [], [], [], [], []
    for seed in config.seeds:
        ini = cell_init(config.init, cell)
        rng = np.random.default_rng(seed_sequence(seed, cell.name))
        params = initialise(cell, config.hidden_size, config.input_size, ini, rng)
        split = lag_split_gradient(cell, params, experiment_inputs(config, seed), lags)
        norms.append(split.log10_norm)
        batch_norms.append(batch_log10_norm(split))
        none.append(tail_share(split, CLIP_THRESHOLD, "none"))
        batch.append(tail_share(split, CLIP_THRESHOLD, "batch"))
        seq.append(tail_share(split, CLIP_THRESHOLD, "sequence"))
        tick()
    return Clipping(
        cell=cell.name,
        hidden_size=config.hidden_size,
        input_size=config.input_size,
        steps=T,
        batch=config.batch,
        sigma_w=config.init.sigma_w,
        draws=len(config.seeds),
        threshold=CLIP_THRESHOLD,
        lags=lags.astype(float),
        log10_gradient_norm=np.array(norms),
        log10_batch_gradient_norm=np.array(batch_norms),
        tail_share=np.array(none),
        tail_share_clipped_batch=np.array(batch),
        tail_share_clipped_sequence=np.array(seq),
    )


def claim_f(config: ExperimentConfig, data: Clipping) -> Claim:
    """(f): gradient clipping of an exploding LSTM [pascanu2013]."""
    m: dict[str, Any] = {"sigma_w": data.sigma_w, "threshold": data.threshold}
    iv: dict[str, Any] = {}
    c = np.log10(data.threshold)
    add_interval(m, iv, "log10_gradient_norm", np.median(data.log10_gradient_norm, axis=1))
    add_interval(
        m, iv, "fraction_clipped_per_sequence", np.mean(data.log10_gradient_norm > c, axis=1)
    )
    m["fraction_clipped_per_batch"] = float(np.mean(data.log10_batch_gradient_norm > c))
    ks = [int(data.lags[len(data.lags) // 4]), int(data.lags[len(data.lags) // 2])]
    for k in ks:
        i = int(np.searchsorted(data.lags, k))
        add_interval(m, iv, f"tail_share_lag{k}", data.tail_share[:, i])
        add_interval(m, iv, f"tail_share_clipped_batch_lag{k}", data.tail_share_clipped_batch[:, i])
        add_interval(
            m, iv, f"tail_share_clipped_sequence_lag{k}", data.tail_share_clipped_sequence[:, i]
        )
    batch_same = bool(
        np.allclose(data.tail_share_clipped_batch, data.tail_share, rtol=1e-9, atol=1e-12)
    )
    k = ks[1]
    moved = m[f"tail_share_clipped_sequence_lag{k}"] - m[f"tail_share_lag{k}"]
    return make_claim(
        "f",
        "Gradient clipping bounds an exploding LSTM's update",
        "Clipping the gradient by its global norm, g -> g min(1, c/||g||), keeps the update "
        "of an exploding network bounded [pascanu2013]; it rescales the update, so it does "
        "not change which lags the update comes from.",
        f"LSTM with Gaussian weights of gain sigma_w = {data.sigma_w:g} (above every "
        f"explosion threshold of claim c), n = {data.hidden_size}, T = {data.steps}, unit "
        f"Gaussian inputs, loss L = sum h_T, {data.draws} weight draws with {data.batch} "
        f"sequences each; threshold c = {data.threshold:g} on the global 2-norm of dL/dθ; "
        "long-lag share: ||sum_(j>k) G_j|| / ||dL/dθ|| of the batch-mean update (G_j the "
        "gradient's part from lag j); criterion: clipping per batch leaves the share "
        "unchanged (to 1e-9).",
        measured=m,
        intervals=iv,
        holds=batch_same,
        summary="Per sequence, log10 ||dL/dθ|| is "
        f"{ci_text(iv['log10_gradient_norm'], '{:.1f}')} "
        f"(median [95 % interval] over draws), so clipping at c = {data.threshold:g} changes "
        f"{100 * m['fraction_clipped_per_sequence']:.0f} % of per-sequence updates and "
        f"{100 * m['fraction_clipped_per_batch']:.0f} % of batch updates. The part of the "
        f"update from lags beyond k = {k} is {ci_text(iv[f'tail_share_lag{k}'], '{:.2f}')} of "
        f"its norm unclipped, {'exactly ' if batch_same else ''}the same clipped per batch, "
        f"and {ci_text(iv[f'tail_share_clipped_sequence_lag{k}'], '{:.2f}')} clipped per "
        f"sequence ({moved:+.2f}): clipping bounds the step, but the update still comes "
        "mostly from long lags.",
        configs=[config],
    )
