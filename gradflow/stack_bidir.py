r"""Stacks with reverse-direction layers: what is well defined, and how it is computed.

A reverse direction reads its input sequence backwards, so its state at position ``t``
depends on the inputs at ``t..T``, and the next layer reads ``[h^fwd_t; h^rev_t]``: the joint
state of all layers at one position is no longer a causal state, and there is no single
product ``dS_T/dS_{T-k}`` (docs/stacks.md). What is reported instead:

* each layer's and direction's **own chain**, in its own time: the product of its state
  Jacobians over the sequence it actually reads (reversed for a reverse direction), for
  every lag (:func:`gradflow.engine.analyze` on that layer, its true inputs and, for a
  reverse direction, the time-reversed sequence);
* **gradient vectors** of a loss on the top layer's output (``L = sum y_T`` or
  ``L = sum_t sum y_t`` with ``y_t = [h^fwd_t; h^rev_t]``) through the whole stack, by
  backpropagation through time layer by layer from the top: the total derivatives
  ``||dL/ds^{l,dir}_t||`` for every layer, direction and position, ``||dL/dx_t||``, and the
  parameter gradient ``dL/dθ`` (generated input Jacobians and parameter VJPs).

Every vector carries its own log10 scale. Memory: one ``(T, B, width)`` output per depth and
the unit values of one layer-direction at a time (a reverse direction cannot start before
the whole sequence below it is known), so it grows with ``T``, unlike the unidirectional
joint analysis.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import to_numpy
from .engine import analyze
from .logscaled import Scaled as _Scaled
from .logscaled import add as _add
from .logscaled import log_norm as _log_norm
from .logscaled import normalise as _normalise
from .results.stack import StackResult
from .stack_lagsplit import lag_split as _lag_split

if TYPE_CHECKING:
    from .stack import _Rt


def _outputs(depths: list[list[_Rt]], x: Any) -> list[Any]:
    """The input sequence of every depth (the model input first), positions in order."""
    xp = depths[0][0].kern.xp
    seqs = [x]
    for group in depths:
        outs = []
        for r in group:
            s0 = xp.zeros((x.shape[1], r.m), dtype=x.dtype)
            own = seqs[-1][::-1] if r.reverse else seqs[-1]
            _, h, _, _ = r.run(s0, own, keep=False)
            outs.append(h[::-1] if r.reverse else h)
        seqs.append(xp.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0])
    return seqs


def analyze_bidirectional(
    depths: list[list[_Rt]],
    x: Any,
    gradient: str | None,
    meta: dict[str, Any],
    started: float,
    lag_split: bool = False,
) -> StackResult:
    """The well-defined quantities of a stack with reverse directions (module docstring)."""

    xp = depths[0][0].kern.xp
    T, B = int(x.shape[0]), int(x.shape[1])
    seqs = _outputs(depths, x)
    rts = [r for group in depths for r in group]
    spec, frob = [], []
    for depth, group in enumerate(depths):
        for r in group:
            own = to_numpy(seqs[depth])[::-1] if r.reverse else to_numpy(seqs[depth])
            params = {p.name: to_numpy(r.qs[p.name]) for p in r.cell.parameters}
            res = analyze(r.cell, params, np.ascontiguousarray(own), backend=meta["backend"])
            spec.append(res.log10_spectral_norm)
            frob.append(res.log10_frobenius_norm)
    extra: dict[str, Any] = {}
    if gradient is not None:
        width = seqs[-1].shape[-1]
        e = xp.ones((B, 1, width), dtype=x.dtype)
        direct: list[_Scaled | None] = [
            _Scaled(e, np.zeros(B)) if (gradient == "sum" or t == T - 1) else None for t in range(T)
        ]
        layer_norm = {}
        grads: dict[str, _Scaled | None] = {}
        for depth in range(len(depths) - 1, -1, -1):
            below: list[_Scaled | None] = [None] * T
            col = 0
            for r in depths[depth]:
                cols = slice(col, col + r.nout)
                col += r.nout
                own_x = seqs[depth][::-1] if r.reverse else seqs[depth]
                s0 = xp.zeros((B, r.m), dtype=x.dtype)
                _, _, prev, V = r.run(s0, own_x, keep=True)
                F = r.kern.factors(V, r.q, (T, B, r.n))
                E = r.sk.values(prev, own_x, r.qs)
                norms = np.full((T, B), -np.inf)
                carry: _Scaled | None = None
                for tau in range(T - 1, -1, -1):
                    pos = T - 1 - tau if r.reverse else tau
                    d_in = direct[pos]
                    g = carry
                    if d_in is not None:
                        full = xp.zeros((B, 1, r.m), dtype=x.dtype)
                        full[..., r.hcols] = d_in.a[..., cols]
                        g = _add(xp, g, _Scaled(full, d_in.l))
                    if g is None:
                        continue
                    norms[T - 1 - pos] = _log_norm(xp, g.a) + g.l
                    Et = {k: v[tau] for k, v in E.items()}
                    dx = _Scaled(g.a @ r.sk.input_jacobian(Et, r.qs), g.l)
                    below[pos] = _add(xp, below[pos], dx)
                    for p, val in r.sk.param_vjp(g.a[:, 0, :], Et, r.qs).items():
                        key = f"{r.name}.{p}"
                        grads[key] = _add(xp, grads.get(key), _Scaled(val, g.l))
                    out = r.kern.apply_vec(g.a, tuple(f[tau] for f in F), r.q)
                    carry = _normalise(xp, out, g.l)
                layer_norm[r.name] = norms
            direct = below
        extra["layer_log10_gradient_norm"] = np.stack([layer_norm[r.name] for r in rts])
        extra["log10_input_gradient_norm"] = np.stack(
            [np.full(B, -np.inf) if v is None else _log_norm(xp, v.a) + v.l for v in direct[::-1]]
        )
        pg = {}
        for key, tot in grads.items():
            assert tot is not None
            with np.errstate(over="ignore"):
                f = np.power(10.0, tot.l).reshape((-1,) + (1,) * (tot.a.ndim - 1))
            pg[key] = to_numpy(tot.a).astype(np.float64) * f
        extra["parameter_gradient"] = pg
        if lag_split:  # the split's own sum_k G_k equals pg to rounding; pg is kept
            split = _lag_split(depths, seqs, gradient)
            extra["log10_lag_gradient_norm"] = split["log10_lag_gradient_norm"]
            extra["lag_tail_fraction"] = split["lag_tail_fraction"]
    meta["bidirectional"] = (
        "joint products are not defined (docs/stacks.md); layer chains are in each "
        "direction's own time; gradient rows are positions T-k, k = 0..T-1"
    )
    cells = [r.cell.name for r in rts]
    return StackResult(
        cell=cells[0] if len(set(cells)) == 1 else "+".join(cells),
        layers=tuple(r.info for r in rts),
        hidden_size=rts[-1].n,
        input_size=rts[0].d,
        steps=T,
        batch=B,
        final_hidden=to_numpy(seqs[-1][-1]).astype(np.float64),
        layer_log10_spectral_norm=np.stack(spec),
        layer_log10_frobenius_norm=np.stack(frob),
        gradient_loss=gradient,
        meta=meta,
        run={"seconds": time.perf_counter() - started},  # volatile: apart from the data
        **extra,
    )
