r"""A layer's weight gradient, one lag at a time: the public face of the stack's backward pass.

For one layer with a zero initial state and the loss ``L = sum h_T`` (every unit of the last
hidden state), the parameter gradient is a sum over lags ([pascanu2013], sec. 2):

.. math::
    \frac{dL}{d\theta} = \sum_{j=0}^{T-1} G_j, \qquad
    G_j = \frac{dL}{ds_{T-j}} \frac{\partial s_{T-j}}{\partial \theta}.

:func:`lag_gradients` yields ``(j, G_j)`` from ``j = 0`` (the last step) back to ``T - 1``,
each ``G_j`` as a :class:`~gradflow.logscaled.Scaled` row vector over every parameter (flattened
in :func:`parameter_names` order) with its own log10 scale per sequence, so a contribution
``10^-300`` times smaller than the first is still exact. It runs the stack analysis' own
kernels (:mod:`gradflow.stack`: chunked forward pass with checkpoints, generated state factors
and parameter vector-Jacobian products), so a caller that needs more than the sums of
:func:`gradflow.stack.analyze_stack` (the clipping analysis of
:mod:`gradflow.analysis.clipping` keeps running partial sums) walks the chain without the
stack's private classes.

Examples:
    >>> import numpy as np
    >>> from gradflow.initialisers import Init, initialise
    >>> from gradflow.cells import get_cell
    >>> rng = np.random.default_rng(0)
    >>> p = initialise(get_cell("rnn"), 3, 2, Init(), rng)
    >>> steps = list(lag_gradients("rnn", p, rng.standard_normal((5, 2, 2))))
    >>> [j for j, _ in steps], steps[0][1].a.shape
    ([0, 1, 2, 3, 4], (2, 21))

References:
    [pascanu2013] Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent
    neural networks, ICML, sec. 2.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .cells import Cell, get_cell
from .errors import UsageError
from .logscaled import Scaled, normalise
from .stack import Layer, _Rt, _Unidirectional


def parameter_names(cell: Cell | str) -> tuple[str, ...]:
    """The parameters of ``cell`` in the order :func:`lag_gradients` flattens them."""
    c = get_cell(cell) if isinstance(cell, str) else cell
    return tuple(p.name for p in c.parameters)


def model_inputs(cell: Cell | str, inputs: Any) -> tuple[Cell, np.ndarray]:
    """The cell (by name or object) and the inputs as a contiguous float64 ``(T, B, d)`` array.

    Raises:
        UsageError: inputs not of shape ``(T, B, d)``.
    """
    c = get_cell(cell) if isinstance(cell, str) else cell
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float64))
    if x.ndim != 3:
        raise UsageError(f"inputs must have shape (T, B, d), got {x.shape}")
    return c, x


def lag_gradients(
    cell: Cell | str, params: Mapping[str, Any], inputs: Any
) -> Iterator[tuple[int, Scaled]]:
    r"""``(j, G_j)`` for ``j = 0..T-1``: the weight gradient of ``L = sum h_T`` split by lag.

    Args:
        cell: a one-layer cell or its catalogue name.
        params: its parameters by the cell's names.
        inputs: float array ``(T, B, d)``; the initial state is zero.

    Yields:
        ``(j, G_j)``: ``G_j = G.a * 10^{G.l}``, ``G.a`` of shape ``(B, P)`` (every parameter
        flattened, in :func:`parameter_names` order), ``G.l`` of shape ``(B,)``; float64.

    Raises:
        UsageError: inputs not of shape ``(T, B, d)``. WeightsError, InputsError,
            NumericalError: as :func:`gradflow.stack.analyze_stack`.

    References:
        [pascanu2013].
    """
    c, x = model_inputs(cell, inputs)
    _, B, d = x.shape
    rt = _Rt(Layer(c, params), 0, d, B, "numpy", np.float64)
    run = _Unidirectional([rt], x, np.float64)
    keys = parameter_names(c)
    spans, _ = run.forward()
    e = np.zeros((B, 1, rt.m))
    e[..., rt.hcols] = 1.0
    g = Scaled(e, np.zeros(B))  # dL/ds_T
    lag = 0
    for t0, t1, ckpt in run.chunks(spans):
        data = run.chunk_data(ckpt, t0, t1)[0]
        for jj in range(t1 - t0):
            idx = t1 - t0 - 1 - jj
            E = {k: v[idx] for k, v in data["E"].items()}
            grads = rt.sk.param_vjp(g.a[:, 0, :], E, rt.qs)
            G = np.concatenate([np.asarray(grads[k]).reshape(B, -1) for k in keys], axis=1)
            yield lag, Scaled(G, g.l.copy())
            out = rt.kern.apply_vec(g.a, tuple(f[idx] for f in data["F"]), rt.q)
            g = normalise(np, out, g.l)
            lag += 1
