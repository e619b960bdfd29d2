"""Gradient vectors of a loss through a unidirectional stack, and the weight gradient by lag.

The row vector ``dL/dS_t`` goes through the same back-substitution and generated kernels as the
joint product (:mod:`gradflow.stack`): ``Q_j`` is the total derivative ``dL/ds^j_t``, ``Q_1 K^1_t``
is ``dL/dx_t``, and the generated parameter VJP of ``Q_j`` is the contribution ``G_k`` of the
step ``t = T - k`` to ``dL/dθ^j`` (Pascanu et al. 2013, sec. 2). A second pass, given the
totals, gives the tail fractions ``||sum_{j>k} G_j|| / ||dL/dθ||``.

References:
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
    networks, ICML, sec. 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import to_numpy
from .logscaled import Scaled as _Scaled
from .logscaled import add as _add
from .logscaled import factor as _factor
from .logscaled import log_norm as _log_norm
from .logscaled import normalise as _normalise
from .logscaled import top_scale as _top

if TYPE_CHECKING:
    from .stack import _Unidirectional


def _kin(r: Any, data: dict[str, Any], idx: int) -> Any:
    """The materialised input Jacobian ``K_t`` (``(B, m, d)``) of one step of a chunk, formed
    once per step (small enough to stay in cache; a whole chunk's would not)."""
    cached = data.get("K")
    if cached is None or cached[0] != idx:
        E = {k: v[idx] for k, v in data["E"].items()}
        cached = data["K"] = (idx, r.sk.input_jacobian(E, r.qs))
    return cached[1]


def _factors(xp: Any, logs: np.ndarray, top: np.ndarray) -> Any:
    """``10**(logs - top)`` per sequence on the device (0 for an exact zero), shape ``(B,)``."""
    return _factor(xp, logs, top, 1, np.float64)


def _shape(f: Any, a: Any) -> Any:
    return f.astype(a.dtype, copy=False).reshape((-1,) + (1,) * (a.ndim - 1))


def _sumsq(xp: Any, arrays: list[Any]) -> np.ndarray:
    """Sums of squares over every axis but the first, ``(len(arrays), B)``, in one transfer."""
    B = arrays[0].shape[0]
    sq = xp.stack([xp.sum((a * a).reshape(B, -1), axis=-1) for a in arrays])
    return np.asarray(to_numpy(sq), dtype=np.float64)


def _accumulate(
    xp: Any, acc: dict[str, _Scaled | None], keys: list[str], vals: list[Any], scale: np.ndarray
) -> None:
    """``acc[key] += val * 10**scale`` for every key, all on one common scale (the keys of a
    layer share it: :func:`gradflow.logscaled.add` per key, its factors formed once)."""
    first = acc[keys[0]]
    if first is None:
        for key, v in zip(keys, vals, strict=True):
            acc[key] = _Scaled(1.0 * v, scale.copy())
        return
    top = _top(first.l, scale)
    fa, fb = _factors(xp, first.l, top), _factors(xp, scale, top)
    for key, v in zip(keys, vals, strict=True):
        x = acc[key]
        assert x is not None
        acc[key] = _Scaled(x.a * _shape(fa, x.a) + 1.0 * (v * _shape(fb, v)), top)


class VectorPass:
    """Gradient vectors ``dL/dS_{T-k}`` through the stack, input gradients, the lag split."""

    def __init__(
        self,
        run: _Unidirectional,
        loss: str | None,
        lag_split: bool,
        totals: dict[str, _Scaled | None] | None = None,
    ) -> None:
        self.run, self.loss, self.lag_split = run, loss, lag_split
        xp, B, T, dt = run.xp, run.B, run.T, run.dtype
        top = run.rts[-1]
        e = np.zeros((B, 1, top.m))
        e[..., top.hcols] = 1.0
        self.e = xp.asarray(e.astype(dt))
        L = len(run.rts)
        self.g: list[_Scaled | None] = [None] * (L - 1) + [_Scaled(self.e.copy(), np.zeros(B))]
        # The first pass fills the norms and the lag table, the second (given the totals)
        # only the tail fractions: each pass allocates its own tables, no more (they are
        # the memory that grows with T).
        first = totals is None
        self.joint = np.full((T + 1, B) if first else (1, B), -np.inf)
        self.layer = np.full((L, T + 1, B) if first else (L, 1, B), -np.inf)
        self.joint[0] = self.layer[L - 1, 0] = 0.5 * np.log10(top.nout)
        self.inputs = np.full((T if first else 1, B), -np.inf)
        self.keys = [f"{r.name}.{p.name}" for r in run.rts for p in r.cell.parameters]
        tables = self.keys if lag_split else []
        self.lag_norm = {k: np.full((T, B), -np.inf) for k in tables} if first else {}
        self.totals: dict[str, _Scaled | None] = {k: None for k in self.keys}
        self.given = totals
        self.cum: dict[str, _Scaled | None] = {k: None for k in self.keys}
        self.tail = {} if first else {k: np.full((T, B), np.nan) for k in tables}
        self.tot_log: dict[str, np.ndarray] = {}

    def step(self, data: list[dict[str, Any]], idx: int, lag: int) -> None:
        run, xp = self.run, self.run.xp
        Q = run._backsub(self.g, data, idx)
        q0 = Q[0]
        if self.given is None:
            for j, qj in enumerate(Q):  # the total derivative dL/ds^j_t (what autograd gives)
                if qj is not None:
                    self.layer[j, lag] = _log_norm(xp, qj.a) + qj.l
        if self.given is None and q0 is not None:
            self.inputs[lag] = _log_norm(xp, q0.a @ _kin(run.rts[0], data[0], idx)) + q0.l
        if self.lag_split:
            for j, r in enumerate(run.rts):
                qj = Q[j]
                if qj is not None:
                    E = {k: v[idx] for k, v in data[j]["E"].items()}
                    self._split(r, r.sk.param_vjp(qj.a[:, 0, :], E, r.qs), qj.l, lag)
        new: list[_Scaled | None] = []
        for j, r in enumerate(run.rts):
            qj = Q[j]
            if qj is None:
                new.append(None)
                continue
            out = r.kern.apply_vec(qj.a, tuple(f[idx] for f in data[j]["F"]), r.q)
            new.append(_normalise(xp, out, qj.l))
        if self.loss == "sum" and lag + 1 < run.T:
            new[-1] = _add(xp, new[-1], _Scaled(self.e, np.zeros(run.B)))
        self.g = new
        if self.given is None:
            logs = [np.full(run.B, -np.inf) if b is None else _log_norm(xp, b.a) + b.l for b in new]
            if lag + 1 == run.T:  # s_0: no layer above reads it, total = partial
                for j, lg in enumerate(logs):
                    self.layer[j, lag + 1] = lg
            with np.errstate(divide="ignore", invalid="ignore"):
                top = _top(*logs)
                self.joint[lag + 1] = top + 0.5 * np.log10(
                    sum(
                        np.where(np.isfinite(lg), np.power(10.0, 2 * (lg - top)), 0.0)
                        for lg in logs
                    )
                )

    def _split(self, r: Any, grads: dict[str, Any], scale: np.ndarray, lag: int) -> None:
        """One step's contributions ``G`` (one per parameter tensor of layer ``r``, all on the
        log10 scale ``scale``): their norms and running totals (first pass), or the tail
        fractions (second pass). The tensors of a layer share every scale (each gets a
        contribution at every step), so the scale factors are formed once per layer and the
        norms of all its tensors come back in one transfer."""
        xp = self.run.xp
        keys = [f"{r.name}.{p}" for p in grads]
        vals = list(grads.values())
        if self.given is None:
            sq = _sumsq(xp, vals)
            with np.errstate(divide="ignore"):
                for k, key in enumerate(keys):
                    self.lag_norm[key][lag] = 0.5 * np.log10(sq[k]) + scale
            _accumulate(xp, self.totals, keys, vals, scale)
            return
        _accumulate(xp, self.cum, keys, vals, scale)
        rest: list[Any] = []
        tot0 = self.given[keys[0]]
        cum0 = self.cum[keys[0]]
        assert tot0 is not None and cum0 is not None
        top = _top(tot0.l, cum0.l)
        ft, fc = _factors(xp, tot0.l, top), _factors(xp, cum0.l, top)
        for key in keys:
            tot, cum = self.given[key], self.cum[key]
            assert tot is not None and cum is not None
            rest.append(tot.a * _shape(ft, tot.a) + -1.0 * (cum.a * _shape(fc, cum.a)))
            if key not in self.tot_log:
                self.tot_log[key] = _log_norm(xp, tot.a) + tot.l
        sq = _sumsq(xp, rest)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for k, key in enumerate(keys):
                self.tail[key][lag] = np.power(
                    10.0, 0.5 * np.log10(sq[k]) + top - self.tot_log[key]
                )

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "log10_gradient_norm": self.joint,
            "layer_log10_gradient_norm": self.layer,
            "log10_input_gradient_norm": self.inputs,
        }
        if self.lag_split:
            out["log10_lag_gradient_norm"] = self.lag_norm
            grads = {}
            for k, tot in self.totals.items():
                assert tot is not None
                with np.errstate(over="ignore"):
                    f = np.power(10.0, tot.l).reshape((-1,) + (1,) * (tot.a.ndim - 1))
                grads[k] = to_numpy(tot.a).astype(np.float64) * f
            out["parameter_gradient"] = grads
        return out

    def tails(self, chunks: Iterable[tuple[int, int, list[Any]]]) -> dict[str, np.ndarray]:
        """The second pass over ``chunks`` (:meth:`gradflow.stack._Unidirectional.chunks`)."""
        run = self.run
        k0 = 0
        for t0, t1, ckpt in chunks:
            data = run.chunk_data(ckpt, t0, t1)
            for jj in range(t1 - t0):
                self.step(data, t1 - t0 - 1 - jj, k0 + jj)
            k0 += t1 - t0
        return self.tail
