r"""The weight gradient split by lag for ``L = sum_t L_t`` and for stacks with reverse layers.

Pascanu et al. (2013, sec. 2) write the gradient of ``L = sum_t L_t`` as a sum of temporal
contributions: the contribution of the step at position ``p`` to ``dL_t/dθ`` travelled
``|t - p|`` steps. With ``g_{t,p} = (dL_t/ds_p) ds_p/dθ`` (the generated parameter
vector-Jacobian product applied to the total derivative of ``L_t`` with respect to the
state at ``p``),

.. math:: G_k = \sum_{|t - p| = k} g_{t,p},\qquad \frac{dL}{dθ} = \sum_{k=0}^{T-1} G_k .

For a forward direction ``t >= p`` (the lag is how far back the contribution travelled); for
a reverse direction ``p >= t`` (the same distance in its own time). With ``L = L_T`` (loss
``last``) there is one contribution per lag and layer, that of position ``T - k``.
:mod:`gradflow.stack_vectors` computes that case for forward stacks in the joint
back-substitution; this module does the rest (docs/stacks.md, "the weight gradient split by
lag"):

* loss ``last`` with reverse directions: one row vector per layer and direction, by
  backpropagation through time layer by layer from the top, two passes (the second, given
  the totals, gives the tail fractions), nothing of size ``T |θ|`` kept;
* loss ``sum``: one row vector per loss term ``t`` (``T`` rows, each with its own log10 scale,
  so a contribution ``10^{-300}`` times smaller than its neighbours is still exact), and one
  accumulator ``G_k`` per lag: ``O(T^2)`` vector-Jacobian products and ``O(T (B |θ| + T B w))``
  memory, checked against :data:`LAG_SPLIT_BUDGET` before anything runs.

References:
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
    networks, ICML, sec. 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import to_numpy
from .errors import UsageError
from .logscaled import Scaled as _Scaled
from .logscaled import log_norm as _log_norm

if TYPE_CHECKING:
    from .stack import _Rt

#: Bytes the lag split of ``L = sum_t L_t`` may hold (one gradient per lag, one row per term).
LAG_SPLIT_BUDGET = 2**30

Rows = tuple[Any, np.ndarray]  # a (B, R, w) with a log10 scale per sequence and row, (B, R)


def _rfactor(xp: Any, logs: np.ndarray, top: np.ndarray, dtype: Any) -> Any:
    with np.errstate(invalid="ignore", over="ignore"):
        f = np.where(np.isfinite(logs), np.power(10.0, logs - top), 0.0)
    return xp.asarray(f[..., None].astype(dtype))


def _radd(xp: Any, x: Rows | None, y: Rows | None) -> Rows | None:
    """``x + y`` row by row, on each row's common scale."""
    if y is None:
        return x
    if x is None:
        return y[0].copy(), y[1].copy()
    top = np.maximum(x[1], y[1])  # -inf where both rows are exactly zero, and stays so
    a = x[0] * _rfactor(xp, x[1], top, x[0].dtype) + y[0] * _rfactor(xp, y[1], top, y[0].dtype)
    return a, top


def _sadd(xp: Any, x: _Scaled | None, y: _Scaled | None, sign: float = 1.0) -> _Scaled | None:
    """``x + sign * y`` for one value per sequence (``a (B, ...)``, ``l (B,)``); an exact
    zero keeps the scale ``-inf``, so it never sets the scale of what is added to it."""
    if y is None:
        return x
    rows = (sign * y.a.reshape(y.a.shape[0], 1, -1), y.l[:, None])
    got = _radd(xp, None if x is None else (x.a.reshape(x.a.shape[0], 1, -1), x.l[:, None]), rows)
    assert got is not None
    return _Scaled(got[0].reshape(y.a.shape), got[1][:, 0])


def _zero_is_zero(xp: Any, c: _Scaled) -> _Scaled:
    """An exactly zero contribution gets the scale ``-inf``."""
    c.l = np.where(np.isfinite(_log_norm(xp, c.a)), c.l, -np.inf)
    return c


def _rnormalise(xp: Any, a: Any, logs: np.ndarray) -> Rows:
    """Every row to unit norm (a zero row stays zero, its log10 scale ``-inf``)."""
    s = xp.sqrt(xp.sum(a * a, axis=-1))
    a = a / xp.where(s > 0, s, 1.0)[..., None]
    with np.errstate(divide="ignore"):
        return a, logs + np.log10(to_numpy(s).astype(np.float64))


def _memory(depths: list[list[_Rt]], T: int, B: int) -> int:
    theta = sum(int(np.size(r.qs[p.name])) for g in depths for r in g for p in r.cell.parameters)
    width = max([depths[0][0].d] + [r.m for g in depths for r in g])
    return 8 * B * T * (theta + 3 * T * width)


def check_budget(depths: list[list[_Rt]], T: int, B: int) -> None:
    """Refuse, in one line, a lag split of ``L = sum_t L_t`` over :data:`LAG_SPLIT_BUDGET`."""
    need = _memory(depths, T, B)
    if need > LAG_SPLIT_BUDGET:
        raise UsageError(
            f"the lag split of gradient='sum' holds one weight gradient per lag and one row "
            f"per loss term: about {need / 2**30:.1f} GiB for T = {T}, B = {B} (limit "
            f"{LAG_SPLIT_BUDGET / 2**30:.0f} GiB); use gradient='last', fewer steps or "
            "sequences, or lag_split=False"
        )


class LagSplit:
    """One backward pass over every layer and direction with one row per loss term."""

    def __init__(
        self,
        depths: list[list[_Rt]],
        seqs: list[Any],
        loss: str,
        totals: dict[str, _Scaled | None] | None = None,
    ) -> None:
        self.depths, self.seqs, self.loss = depths, seqs, loss
        self.xp = depths[0][0].kern.xp
        self.T, self.B = int(seqs[0].shape[0]), int(seqs[0].shape[1])
        self.dtype = seqs[0].dtype
        self.terms = np.arange(self.T) if loss == "sum" else np.array([self.T - 1])
        keys = [f"{r.name}.{p.name}" for g in depths for r in g for p in r.cell.parameters]
        self.keys = keys
        T, B = self.T, self.B
        self.lag_norm = {k: np.full((T, B), -np.inf) for k in keys}
        self.tail = {k: np.full((T, B), np.nan) for k in keys}
        self.totals: dict[str, _Scaled | None] = {k: None for k in keys}
        self.given = totals
        self.cum: dict[str, _Scaled | None] = {k: None for k in keys}
        self.acc: dict[str, tuple[Any, np.ndarray]] = {}

    # -- where each row's contribution goes ---------------------------------------------------
    def _record(self, r: _Rt, grads: dict[str, Any], logs: np.ndarray, pos: int) -> None:
        xp, B = self.xp, self.B
        if self.loss == "last":  # one row; lag T-1-pos, one contribution per (key, lag)
            lag = self.T - 1 - pos
            for p, val in grads.items():
                key = f"{r.name}.{p}"
                c = _zero_is_zero(xp, _Scaled(val[:, 0], logs[:, 0].copy()))
                if self.given is None:
                    self.lag_norm[key][lag] = _log_norm(xp, c.a) + c.l
                    self.totals[key] = _sadd(xp, self.totals[key], c)
                    continue
                tot = self.given[key]
                assert tot is not None
                before = self.cum[key]
                self.cum[key] = _sadd(xp, before, c)
                # forward: lags ascending, the tail is total - cum; reverse: lags descending,
                # the tail is what came before this contribution
                rest = before if r.reverse else _sadd(xp, tot, self.cum[key], -1.0)
                with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                    num = np.full(B, -np.inf) if rest is None else _log_norm(xp, rest.a) + rest.l
                    self.tail[key][lag] = np.power(10.0, num - _log_norm(xp, tot.a) - tot.l)
            return
        # loss sum: rows t >= pos have lags t - pos (0..T-1-pos), rows t < pos lags pos - t
        for rows, lags in (
            (np.arange(pos, self.T), np.arange(self.T - pos)),
            (np.arange(pos), pos - np.arange(pos)),
        ):
            if rows.size == 0:
                continue
            cl = logs[:, rows].T  # (R', B)
            if not np.isfinite(cl).any():
                continue
            for p, val in grads.items():
                key = f"{r.name}.{p}"
                c = xp.moveaxis(val[:, rows], 1, 0)  # (R', B, ...)
                a, al = self.acc[key]
                top = np.maximum(al[lags], cl)  # -inf: still exactly zero
                shape = (len(rows), B) + (1,) * (c.ndim - 2)
                with np.errstate(invalid="ignore", over="ignore"):
                    f1 = np.where(np.isfinite(al[lags]), np.power(10.0, al[lags] - top), 0.0)
                    f2 = np.where(np.isfinite(cl), np.power(10.0, cl - top), 0.0)
                a[lags] = a[lags] * xp.asarray(f1.reshape(shape).astype(self.dtype)) + c * (
                    xp.asarray(f2.reshape(shape).astype(self.dtype))
                )
                al[lags] = top

    # -- the pass -----------------------------------------------------------------------------
    def run(self) -> None:
        xp, T, B, dt = self.xp, self.T, self.B, self.dtype
        R = len(self.terms)
        width = self.seqs[-1].shape[-1]
        direct: list[Rows | None] = [None] * T
        for i, t in enumerate(self.terms):
            a = xp.zeros((B, R, width), dtype=dt)
            a[:, i, :] = 1.0
            logs = np.full((B, R), -np.inf)
            logs[:, i] = 0.0
            direct[int(t)] = (a, logs)
        for depth in range(len(self.depths) - 1, -1, -1):
            below: list[Rows | None] = [None] * T
            col = 0
            for r in self.depths[depth]:
                cols = slice(col, col + r.nout)
                col += r.nout
                if self.loss == "sum" and self.given is None:
                    for p in r.cell.parameters:
                        shape = np.shape(r.qs[p.name])
                        self.acc[f"{r.name}.{p.name}"] = (
                            xp.zeros((T, B) + shape, dtype=dt),
                            np.full((T, B), -np.inf),
                        )
                own_x = self.seqs[depth][::-1] if r.reverse else self.seqs[depth]
                s0 = xp.zeros((B, r.m), dtype=dt)
                _, _, prev, V = r.run(s0, own_x, keep=True)
                F = r.kern.factors(V, r.q, (T, B, r.n))
                E = r.sk.values(prev, own_x, r.qs)
                carry: Rows | None = None
                for tau in range(T - 1, -1, -1):
                    pos = T - 1 - tau if r.reverse else tau
                    g = carry
                    d_in = direct[pos]
                    if d_in is not None:
                        full = xp.zeros((B, R, r.m), dtype=dt)
                        full[..., r.hcols] = d_in[0][..., cols]
                        g = _radd(xp, g, (full, d_in[1]))
                    if g is None:
                        continue
                    Et = {k: v[tau] for k, v in E.items()}
                    dx = g[0] @ r.sk.input_jacobian(Et, r.qs)
                    below[pos] = _radd(xp, below[pos], (dx, g[1]))
                    Eb = {k: v[:, None] for k, v in Et.items()}
                    self._record(r, r.sk.param_vjp(g[0], Eb, r.qs), g[1], pos)
                    out = r.kern.apply_vec(g[0], tuple(f[tau] for f in F), r.q)
                    carry = _rnormalise(xp, out, g[1])
            direct = below

    # -- results ------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """``log10_lag_gradient_norm``, ``lag_tail_fraction`` and ``parameter_gradient``."""
        xp = self.xp
        if self.loss == "sum":
            for key, (a, al) in self.acc.items():
                with np.errstate(divide="ignore"):
                    self.lag_norm[key] = np.stack(
                        [_log_norm(xp, a[k]) + al[k] for k in range(self.T)]
                    )
                suffix: _Scaled | None = None
                tails = []
                for k in range(self.T - 1, -1, -1):
                    tails.append(suffix)
                    suffix = _sadd(xp, suffix, _zero_is_zero(xp, _Scaled(a[k], al[k].copy())))
                self.totals[key] = suffix
                assert suffix is not None
                with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                    den = _log_norm(xp, suffix.a) + suffix.l
                    self.tail[key] = np.stack(
                        [
                            np.power(10.0, _log_norm(xp, s.a) + s.l - den)
                            if s is not None
                            else np.zeros(self.B)
                            for s in tails[::-1]
                        ]
                    )
        grads = {}
        for name, tot in self.totals.items():
            assert tot is not None
            with np.errstate(over="ignore"):
                f = np.power(10.0, np.where(np.isfinite(tot.l), tot.l, 0.0))
            grads[name] = to_numpy(tot.a).astype(np.float64) * f.reshape(
                (-1,) + (1,) * (tot.a.ndim - 1)
            )
        return {
            "log10_lag_gradient_norm": self.lag_norm,
            "lag_tail_fraction": self.tails(),
            "parameter_gradient": grads,
        }

    def tails(self) -> dict[str, np.ndarray]:
        """The tail fractions; ``0/0`` (an exactly zero gradient has no tail) is 0."""
        return {k: np.where(np.isnan(f), 0.0, f) for k, f in self.tail.items()}


def lag_split(depths: list[list[_Rt]], seqs: list[Any], loss: str) -> dict[str, Any]:
    """The lag split of ``dL/dθ`` (module docstring) for every layer and direction.

    Args:
        depths: the stack's run-time layers, bottom first (a list per depth).
        seqs: every depth's input sequence ``(T, B, width)`` (the model input first).
        loss: ``"last"`` or ``"sum"``.
    """
    first = LagSplit(depths, seqs, loss)
    first.run()
    if loss == "sum":
        return first.finish()
    out = first.finish()
    second = LagSplit(depths, seqs, loss, totals=first.totals)
    second.run()
    out["lag_tail_fraction"] = second.tails()
    return out
