r"""Stacked models as one joint state: per-layer, cross-layer and joint chains, sensitivities.

One concept, the joint-state chain of a stack, in one module (a little over the usual
length; the gradient vectors live in :mod:`gradflow.stack_vectors`, the log-scale
bookkeeping in :mod:`gradflow.logscaled`, reverse directions in :mod:`gradflow.stack_bidir`;
DESIGN decision 9). Layer ``l+1`` reads layer ``l``'s output ``h^l_t`` at
the same step, so the joint state ``S_t = [s^1_t; ...; s^L_t]`` has the one-step Jacobian

.. math:: \mathcal{J}_t = A_t D_t,\quad D_t = \operatorname{blockdiag}(J^l_t),\quad
          A_t = (I - N_t)^{-1},\ (N_t)_{l+1,l} = K^{l+1}_t E^l,

with ``J^l_t = ds^l_t/ds^l_{t-1}`` (the state Jacobian), ``K^l_t = ds^l_t/dx^l_t`` (the input
Jacobian, :mod:`gradflow.symbolic.sensitivity`) and ``E^l = dh^l/ds^l`` (the selection of
``h`` in ``s``). ``\mathcal{J}_t`` is block lower-triangular. The backward product
``P_k = dS_T/dS_{T-k}`` is held by column blocks (:class:`gradflow.stack_chain.ColumnChain`):
``P_k A_t`` is a back-substitution from the top layer down
(``Q_{ij} = P_{ij} + Q_{i,j+1} K^{j+1}_t E^j``, one coupling product per column for all its
rows), after which each column goes through its own layer's generated apply kernel, once
per layer and step for all its row blocks. Every block
``(i, j)``, ``j <= i``, carries its own log10 scale (DESIGN decision 4): a layer's own chain,
the diagonal block, stays exact however much faster or slower it decays than the blocks
beside it. The same back-substitution gives the input sensitivities
``dS_T/dx_{T-k} = Q_1 K^1_{T-k}`` and, for one row vector, the gradient vectors of a loss and
the parameter gradient split by lag (Pascanu et al. 2013, sec. 2): the contribution of step
``T-k`` to ``dL/dθ^j`` is ``G_k = Q_j ds^j_t/dθ^j`` (generated vector-Jacobian products).

Memory beyond the result arrays (one number per lag) is constant in ``T`` but for the
checkpoints, which grow as ``sqrt(T)``: the forward pass keeps the states at the start of
every span of chunks, the backward pass recomputes a span's chunk checkpoints when it reaches
it and then one chunk's factors at a time (two-level checkpointing; one more forward pass).
Spectral norms come from :class:`gradflow.spectral.Spectral` on each chain (each layer, each
cross-layer block of the top row, and the joint product and its ``h`` block as
:class:`gradflow.stack_spectral.ColumnProduct` and ``BlockProduct``: never assembled; the
dense chains on the compiled Krylov kernel where the work repays loading numba); the
input-sensitivity
matrices (``m x d``) from their ``d x d`` Gram matrices (:meth:`_Unidirectional._memory`).

Bidirectional layers (a pair at one depth, outputs concatenated forward-then-reverse, as
PyTorch does) make the joint state non-causal; docs/stacks.md defines what is reported then
(:mod:`gradflow.stack_bidir`).

References:
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
    networks, ICML, sec. 2 (the gradient as a sum of temporal contributions).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._version import __version__
from .backend import array_namespace, resolve_dtype, to_numpy
from .cells import Cell, get_cell
from .codegen import Kernels, compile_cell
from .errors import InputsError, NumericalError, UsageError, WeightsError
from .logscaled import Scaled as _Scaled
from .logscaled import factor as _factor
from .logscaled import log_norm as _log_norm
from .logscaled import top_scale as _top
from .results.stack import StackResult
from .sensitivity_codegen import SensitivityKernels, compile_sensitivity
from .spectral import Spectral, compiled_wanted
from .stack_bidir import _outputs, analyze_bidirectional
from .stack_chain import ColumnChain
from .stack_lagsplit import check_budget
from .stack_lagsplit import lag_split as _lag_split
from .stack_spectral import BlockProduct, ColumnProduct, block_products_supported
from .stack_vectors import VectorPass as _VectorPass
from .stack_vectors import _kin

#: Bytes of chunk buffers (factors, values, input Jacobians) the backward pass may hold.
MEMORY_BUDGET = 96 * 2**20
DIRECTIONS = ("forward", "reverse")


@dataclass(frozen=True)
class Layer:
    """One recurrent layer of a model.

    Args:
        cell: a :class:`~gradflow.cells.Cell` or a catalogue name.
        params: parameters by the cell's names (as :func:`gradflow.weights.load_weights`
            returns them).
        direction: ``forward``, or ``reverse`` (the layer reads its input sequence backwards).
    """

    cell: Cell | str
    params: Mapping[str, Any]
    direction: str = "forward"


#: One depth of a model: a layer, or a (forward, reverse) pair of a bidirectional layer.
Depth = Layer | tuple[Layer, Layer]


class _Rt:
    """One layer at run time: kernels, packed parameters, sizes."""

    def __init__(self, layer: Layer, depth: int, d: int, B: int, backend: str, dtype: Any) -> None:
        cell = get_cell(layer.cell) if isinstance(layer.cell, str) else layer.cell
        if layer.direction not in DIRECTIONS:
            raise UsageError(
                f"layer {depth}: unknown direction {layer.direction!r}; choose forward or reverse"
            )
        self.cell, self.depth, self.reverse = cell, depth, layer.direction == "reverse"
        self.name = f"l{depth}" + ("_reverse" if self.reverse else "")
        missing = [p.name for p in cell.parameters if p.name not in layer.params]
        if missing:
            raise WeightsError(f"layer {self.name} ({cell.name}): missing {', '.join(missing)}")
        if not cell.parameters:
            raise WeightsError(f"layer {self.name}: cell {cell.name!r} has no parameters")
        n = int(np.shape(layer.params[cell.parameters[0].name])[0])
        ps = cell.size_values(layer.params)[1] if cell.sizes else None  # lstm-proj's p
        for p in cell.parameters:
            a = np.asarray(layer.params[p.name])
            if a.shape != p.numeric_shape(n, d, ps):
                raise WeightsError(
                    f"layer {self.name} ({cell.name}): {p.name} has shape {a.shape}; expected "
                    f"{p.numeric_shape(n, d, ps)} (hidden size {n}, input size {d} = "
                    + ("the model's input size)" if depth == 0 else "the layer below's output)")
                )
            if not np.isfinite(a).all():
                raise WeightsError(f"layer {self.name}: {p.name} contains NaN or inf")
        if n < 1:
            raise WeightsError(f"layer {self.name}: hidden size must be at least 1")
        self.n, self.d, self.m = n, d, cell.state_size(n, ps)
        self.kern: Kernels = compile_cell(cell, backend)
        self.sk: SensitivityKernels = compile_sensitivity(cell, backend)
        self.q = self.kern.pack(layer.params, dtype)
        self.qs = self.sk.pack(layer.params, dtype)
        k = cell.state.index("h") if "h" in cell.state else 0
        self.hcols = cell.state_slice(cell.state[k], n, ps)
        self.nout = self.hcols.stop - self.hcols.start  # the output size: n, or p
        self.info = {
            "name": self.name,
            "cell": cell.name,
            "hidden_size": n,
            "input_size": d,
            "state_size": self.m,
            "direction": layer.direction,
            "depth": depth,
        }

    def run(self, s: Any, x: Any, keep: bool) -> tuple[Any, Any, Any, list[Any]]:
        """Steps over a chunk ``x (K, B, d)`` from state ``s``: final state, outputs
        ``(K, B, n)``, and (``keep``) the previous states ``(K, B, m)`` and needed values."""
        xp, K = self.kern.xp, x.shape[0]
        u = self.kern.input_projection(x, self.q)
        outs, prev = [], []
        cols: list[list[Any]] = [[] for _ in self.kern.layout.needed]
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(K):
                if keep:
                    prev.append(s)
                s, vals = self.kern.step(s, u[k], self.q)
                outs.append(s[..., self.hcols])
                if keep:
                    for col, v in zip(cols, vals, strict=True):
                        col.append(v)
        if not bool(xp.isfinite(s).all()):
            raise NumericalError(
                f"the rollout of layer {self.name} ({self.cell.name}) produced NaN or inf: "
                "reduce the weight scale or the inputs"
            )
        V = [xp.stack(c) for c in cols] if keep else []
        return s, xp.stack(outs), (xp.stack(prev) if keep else None), V


def _check_inputs(inputs: Any) -> np.ndarray:
    x = np.asarray(inputs)
    if x.ndim != 3:
        raise InputsError(f"inputs must have shape (T, B, d); got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputsError(f"inputs must be floating point; got dtype {x.dtype}")
    if x.shape[0] < 1 or x.shape[1] < 1 or x.shape[2] < 1:
        raise InputsError(f"inputs need T, B, d >= 1; got shape {x.shape}")
    if not np.isfinite(x).all():
        t, b = np.argwhere(~np.isfinite(x))[0][:2]
        raise InputsError(f"inputs contain NaN or inf (first at step {t + 1}, sequence {b})")
    return x


def _build(layers: Sequence[Depth], d: int, B: int, backend: str, dtype: Any) -> list[list[_Rt]]:
    if not layers:
        raise UsageError("a model needs at least one layer")
    depths: list[list[_Rt]] = []
    for depth, entry in enumerate(layers):
        if isinstance(entry, Layer):
            group = [entry]
        elif (
            isinstance(entry, tuple)
            and len(entry) == 2
            and all(isinstance(e, Layer) for e in entry)
        ):
            if (entry[0].direction, entry[1].direction) != ("forward", "reverse"):
                raise UsageError(
                    f"layer {depth}: a bidirectional pair is (forward, reverse); got "
                    f"({entry[0].direction}, {entry[1].direction})"
                )
            group = list(entry)
        else:
            raise UsageError(
                f"layer {depth}: expected a Layer or a (forward, reverse) pair of Layers"
            )
        rts = [_Rt(e, depth, d, B, backend, dtype) for e in group]
        depths.append(rts)
        d = sum(r.nout for r in rts)
    return depths


def analyze_stack(
    layers: Sequence[Depth],
    inputs: Any,
    *,
    gradient: str | None = "last",
    input_sensitivity: bool = True,
    lag_split: bool | None = None,
    hidden: bool = True,
    backend: str = "numpy",
    dtype: str = "float64",
) -> StackResult:
    """Analyse a whole model: joint, per-layer and cross-layer chains and sensitivities.

    Args:
        layers: the model from the input up: each entry a :class:`Layer`, or a
            ``(forward, reverse)`` pair of layers (a bidirectional layer; the next layer reads
            their outputs concatenated, forward first).
        inputs: float array ``(T, B, d)``; every initial state is zero.
        gradient: ``"last"`` (``L = sum h^L_T``), ``"sum"`` (``L = sum_t sum h^L_t``) or None.
        input_sensitivity: record the memory curves ``||dS_T/dx_{T-k}||``.
        lag_split: split ``dL/dθ`` by lag, ``dL/dθ = sum_k G_k`` (docs/stacks.md). None (the
            default): on for ``gradient="last"`` (two vector-only backward passes), off for
            ``"sum"``, whose split costs ``O(T^2)`` vector-Jacobian products and ``O(T)``
            weight gradients of memory (:mod:`gradflow.stack_lagsplit`; refused in one line
            above :data:`gradflow.stack_lagsplit.LAG_SPLIT_BUDGET`).
        hidden: record the spectral norm of the joint product's block on every layer's ``h``
            (for cells with several state vectors; else it is the joint norm). Without it,
            ``log10_spectral_norm_hidden`` is absent.
        backend, dtype: as for :func:`gradflow.engine.analyze`.

    Returns:
        One :class:`~gradflow.stack_result.StackResult`; keys in docs/stacks.md.

    Raises:
        WeightsError: a layer's parameters are missing, misshapen (including an input size
            that is not the layer below's output size) or non-finite.
        InputsError: inputs of the wrong rank or with NaN/inf.
        UsageError: an unknown option value, a lag split without a loss, or a lag split of
            ``gradient="sum"`` above :data:`gradflow.stack_lagsplit.LAG_SPLIT_BUDGET`.
        NumericalError: a rollout produced NaN or inf.
    """
    started = time.perf_counter()
    if gradient not in (None, "last", "sum"):
        raise UsageError(f"unknown gradient loss {gradient!r}; choose 'last' or 'sum'")
    if lag_split is None:
        lag_split = gradient == "last"
    if lag_split and gradient is None:
        raise UsageError("the lag split splits a loss's gradient: choose gradient='last' or 'sum'")
    x = _check_inputs(inputs)
    T, B, d = x.shape
    dt = resolve_dtype(dtype)
    depths = _build(layers, d, B, backend, dt)
    if lag_split and gradient == "sum":
        check_budget(depths, T, B)
    xp = array_namespace(backend)
    meta: dict[str, Any] = {"backend": backend, "dtype": dtype, "gradflow_version": __version__}
    xd = xp.asarray(x.astype(dt, copy=False))
    if any(len(g) > 1 or g[0].reverse for g in depths):
        return analyze_bidirectional(depths, xd, gradient, meta, started, lag_split)
    run = _Unidirectional([g[0] for g in depths], xd, dt)
    res = run.analyze(
        gradient, input_sensitivity, lag_split and gradient == "last", hidden, meta, started
    )
    if lag_split and gradient == "sum":
        split = _lag_split(depths, _outputs(depths, xd), "sum")
        res = replace(res, **split, run={"seconds": time.perf_counter() - started})
    return res


def span_chunks(T: int, chunk: int) -> int:
    """Chunks per span of the two-level checkpoints: ``ceil(sqrt(ceil(T / chunk)))``, so that
    neither the spans nor one span's chunks number more than that.

    Examples:
        >>> span_chunks(10_000, 7), span_chunks(7, 7), span_chunks(1, 1)
        (38, 1, 1)
    """
    chunks = -(-T // chunk)
    return max(1, math.isqrt(chunks - 1) + 1)


class _Unidirectional:
    """The joint-state analysis of a stack of forward layers."""

    def __init__(self, rts: list[_Rt], x: Any, dtype: Any) -> None:
        self.rts, self.x, self.dtype = rts, x, dtype
        self.xp = rts[0].kern.xp
        self.T, self.B = int(x.shape[0]), int(x.shape[1])
        per_step = 0
        for r in rts:
            lay = r.kern.layout
            per_step += r.n * (len(lay.needed) + len(lay.diags) + len(lay.affine))
            per_step += r.n * (len(r.cell.nodes) + 2 * len(r.cell.state)) + r.m * r.d
        per_step *= self.B * 8
        self.chunk = int(max(1, min(256, MEMORY_BUDGET // max(1, per_step))))
        self.span = span_chunks(self.T, self.chunk)  # two-level checkpoints (:meth:`chunks`)
        self.offsets = np.cumsum([0] + [r.m for r in rts])
        self.ops = block_products_supported(self.xp)

    # -- forward ----------------------------------------------------------------------------
    def forward(self) -> tuple[list[list[Any]], list[Any]]:
        """The states of every layer at the start of each span (:meth:`chunks` reads them),
        and the final states."""
        xp = self.xp
        states = [xp.zeros((self.B, r.m), dtype=self.dtype) for r in self.rts]
        spans = []
        for t0 in range(0, self.T, self.chunk):
            if t0 % (self.chunk * self.span) == 0:
                spans.append(list(states))
            states = self._advance(states, t0)
        return spans, states

    def _advance(self, states: list[Any], t0: int) -> list[Any]:
        """Every layer's states after the chunk that starts at step ``t0``."""
        h = self.x[t0 : t0 + self.chunk]
        new = []
        for s, r in zip(states, self.rts, strict=True):
            s, h, _, _ = r.run(s, h, keep=False)
            new.append(s)
        return new

    def chunks(self, spans: list[list[Any]]) -> Iterator[tuple[int, int, list[Any]]]:
        """``(t0, t1, states at t0)`` of every chunk, the last first, from :meth:`forward`'s
        span checkpoints: each span's chunk checkpoints are recomputed (the same operations
        in the same order as the forward pass, so the same numbers) when it is reached."""
        K, width = self.chunk, self.chunk * self.span
        for a in range(width * (len(spans) - 1), -1, -width):
            b = min(self.T, a + width)
            states, inner = spans[a // width], []
            for t0 in range(a, b, K):
                inner.append((t0, min(b, t0 + K), states))
                if t0 + K < b:
                    states = self._advance(states, t0)
            yield from reversed(inner)

    def chunk_data(self, ckpt: list[Any], t0: int, t1: int) -> list[dict[str, Any]]:
        """Factors and unit values of every layer over steps t0+1..t1 (input Jacobians are
        formed per step, from the values, by :func:`_kin`)."""
        out = []
        h = self.x[t0:t1]
        K = t1 - t0
        for i, r in enumerate(self.rts):
            _, h_next, prev, V = r.run(ckpt[i], h, keep=True)
            F = r.kern.factors(V, r.q, (K, self.B, r.n))
            E = r.sk.values(prev, h, r.qs)
            out.append({"F": F, "E": E})
            h = h_next
        return out

    # -- one step of the back-substitution ----------------------------------------------------
    def _backsub(
        self, row: list[_Scaled | None], data: list[dict[str, Any]], idx: int
    ) -> list[_Scaled | None]:
        """``Q = row A_t``: ``Q_j = row_j + (Q_{j+1} K^{j+1}_t) E^j`` from the top block down."""
        xp = self.xp
        Q: list[_Scaled | None] = [None] * len(row)
        above: _Scaled | None = None
        for j in range(len(row) - 1, -1, -1):
            cur = row[j]
            if above is not None:
                r = self.rts[j]
                into = above.a @ _kin(self.rts[j + 1], data[j + 1], idx)  # (B, rows, n_j)
                if cur is None:
                    full = xp.zeros(into.shape[:-1] + (r.m,), dtype=into.dtype)
                    full[..., r.hcols] = into
                    cur = _Scaled(full, above.l.copy())
                else:
                    top = _top(cur.l, above.l)
                    full = cur.a * _factor(xp, cur.l, top, cur.a.ndim, cur.a.dtype)
                    full[..., r.hcols] += into * _factor(xp, above.l, top, into.ndim, into.dtype)
                    cur = _Scaled(full, top)
            Q[j] = cur
            above = cur
        return Q

    # -- the analysis ---------------------------------------------------------------------------
    def analyze(
        self,
        gradient: str | None,
        input_sens: bool,
        lag_split: bool,
        hidden: bool,
        meta: dict[str, Any],
        started: float,
    ) -> StackResult:
        xp, rts, T, B, dt = self.xp, self.rts, self.T, self.B, self.dtype
        L = len(rts)
        M = int(self.offsets[-1])
        spans, final = self.forward()
        inf = np.full((T + 1, B), -np.inf)
        joint_f, joint_s = inf.copy(), inf.copy()
        joint_hh = inf.copy()
        joint_f[0], joint_s[0], joint_hh[0] = 0.5 * np.log10(M), 0.0, 0.0
        lay_f = np.stack([inf.copy() for _ in rts])
        lay_s = lay_f.copy()
        cross_f, cross_s = lay_f.copy(), lay_f.copy()
        for i, r in enumerate(rts):
            lay_f[i, 0], lay_s[i, 0] = 0.5 * np.log10(r.m), 0.0
        cross_f[L - 1, 0], cross_s[L - 1, 0] = 0.5 * np.log10(rts[-1].m), 0.0
        multi = hidden and any(len(r.cell.state) > 1 for r in rts)
        hrows = np.concatenate(
            [np.arange(self.offsets[i], self.offsets[i + 1])[r.hcols] for i, r in enumerate(rts)]
        )
        K = self.chunk
        # With the fast extra, the dense estimators (each layer's chain, the top row's blocks;
        # at depth 1 the joint product itself) take the compiled Krylov kernel where the
        # stack's estimator work together (lags x sequences x rows) repays loading numba.
        # Block products stay on NumPy: the kernel would need them assembled.
        shapes = {"joint": (M, M)}
        if multi:
            shapes["hidden"] = (len(hrows), len(hrows))
        if L > 1:
            shapes.update({f"layer{i}": (r.m, r.m) for i, r in enumerate(rts)})
            shapes.update({f"cross{j}": (rts[-1].m, r.m) for j, r in enumerate(rts[:-1])})
        work = T * B * sum(rows for rows, _ in shapes.values())
        fast = compiled_wanted(xp, dt, M, -(-work // M), None)
        spec = {
            name: Spectral(xp, B, r, c, dt, K, fast and (L == 1 or name not in ("joint", "hidden")))
            for name, (r, c) in shapes.items()
        }
        # P = dS_T/dS_{T-k} by column blocks (gradflow.stack_chain); lag 0 is the identity.
        # Where numba repays its loading, the LSTM's fused applies take its diagonal kernel.
        chain = ColumnChain(rts, B, dt, compiled=fast)
        in_s = np.full((T, B), -np.inf) if input_sens else None
        in_f = np.full((T, B), -np.inf) if input_sens else None
        lay_in = np.full((L, T, B), -np.inf) if input_sens else None
        vec = _VectorPass(self, gradient, lag_split) if gradient else None
        k0 = 0
        for t0, t1, ckpt in self.chunks(spans):
            Kc = t1 - t0
            data = self.chunk_data(ckpt, t0, t1)
            for s in spec.values():
                s.start_chunk(Kc, B, dt)
            logs: dict[str, np.ndarray] = {name: np.zeros((Kc, B)) for name in spec}
            for jj in range(Kc):
                idx, lag = Kc - 1 - jj, k0 + jj  # the step at time t0+idx+1; lag before it
                lq = chain.backsub(lambda j: _kin(rts[j], data[j], idx))  # noqa: B023
                if input_sens:  # dS^i_T/dx_{T-k} = Q_{i1} K^1, every row block i at once
                    Y = chain.C[0] @ _kin(rts[0], data[0], idx)
                    Ys = [(Y[:, self.offsets[i] : self.offsets[i + 1]], lq[i, 0]) for i in range(L)]
                chain.apply([tuple(f[idx] for f in data[j]["F"]) for j in range(L)], lq)
                if input_sens:
                    assert in_s is not None and in_f is not None and lay_in is not None
                    self._memory(Ys, lag, in_s, in_f, lay_in)
                if vec is not None:
                    vec.step(data, idx, lag)
                self._record(chain, lag + 1, jj, spec, logs, joint_f, lay_f, cross_f, hrows)
            for name, s in spec.items():
                with np.errstate(divide="ignore"):
                    vals = np.log10(s.finish(Kc)) + logs[name]
                target = {"joint": joint_s, "hidden": joint_hh}.get(name)
                if target is None:
                    kind, num = name[:5], int(name[5:])
                    target = lay_s[num] if kind == "layer" else cross_s[num]
                target[k0 + 1 : k0 + Kc + 1] = vals
            k0 += Kc
        if L == 1:
            lay_s[0], cross_s[0] = joint_s, joint_s
        else:
            cross_s[L - 1] = lay_s[L - 1]
        joint_h = None if not hidden else (joint_hh if multi else joint_s)
        meta["chunk_steps"] = K
        meta["spectral"] = {
            "method": "gradflow.spectral.Spectral on every chain (joint and its h block as "
            "unassembled block products, each layer, each cross-layer block); largest "
            "eigenvalue of the input-sensitivity matrices' d x d Gram matrices (SVD if d > m)",
            "certificates": {k: dict(s.counts) for k, s in spec.items()},
            "worst_relative_gap": max((s.worst_gap for s in spec.values()), default=0.0),
        }
        extra: dict[str, Any] = {}
        if vec is not None:
            extra = vec.results()
            if lag_split:
                extra["lag_tail_fraction"] = _VectorPass(self, gradient, True, vec.totals).tails(
                    self.chunks(spans)
                )
        top_rt = rts[-1]
        cells = [r.cell.name for r in rts]
        return StackResult(
            cell=cells[0] if len(set(cells)) == 1 else "+".join(cells),
            layers=tuple(r.info for r in rts),
            hidden_size=top_rt.n,
            input_size=rts[0].d,
            steps=T,
            batch=B,
            final_hidden=to_numpy(final[-1][:, top_rt.hcols]).astype(np.float64),
            log10_spectral_norm=joint_s,
            log10_frobenius_norm=joint_f,
            log10_spectral_norm_hidden=joint_h,
            layer_log10_spectral_norm=lay_s,
            layer_log10_frobenius_norm=lay_f,
            cross_log10_spectral_norm=cross_s,
            cross_log10_frobenius_norm=cross_f,
            log10_input_spectral_norm=in_s,
            log10_input_frobenius_norm=in_f,
            layer_log10_input_spectral_norm=lay_in,
            gradient_loss=gradient,
            meta=meta,
            run={"seconds": time.perf_counter() - started},  # volatile: apart from the data
            **extra,
        )

    def _memory(
        self,
        Ys: list[tuple[Any, np.ndarray]],
        lag: int,
        in_s: np.ndarray,
        in_f: np.ndarray,
        lay_in: np.ndarray,
    ) -> None:
        """The memory curves at one lag from ``Y_i = dS^i_T/dx_{T-k}`` (``(B, m_i, d)``, each
        with its own log10 scale): each row block's spectral norm, and the joint matrix's
        (the row blocks stacked) spectral and Frobenius norms.

        With ``d`` at most every ``m_i`` (a model's input is usually narrower than its
        states), from the ``d x d`` Gram matrices ``G_i = Y_i^T Y_i``: the joint one is
        ``sum_i f_i^2 G_i`` on the common scale, and every largest eigenvalue comes from one
        batched symmetric eigensolver call (one transfer from a device). The largest
        eigenvalue of a Gram matrix is its top singular value squared to a relative
        ``O(m d eps)`` (forming ``G`` is the only rounding beyond the eigensolver's); the
        small singular values, which a Gram matrix would lose, are not needed. Otherwise an
        SVD of each ``Y_i`` and of the stacked matrix."""
        xp, dt = self.xp, self.dtype
        logs = np.stack([lg for _, lg in Ys])  # (L, B)
        top = _top(*logs)
        d = int(Ys[0][0].shape[-1])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            f2 = np.where(np.isfinite(logs), np.power(10.0, 2.0 * (logs - top)), 0.0)
            if all(d <= int(Y.shape[-2]) for Y, _ in Ys):
                G = xp.stack([xp.swapaxes(Y, -1, -2) @ Y for Y, _ in Ys])  # (L, B, d, d)
                Gj = xp.einsum("lb,lbij->bij", xp.asarray(f2.astype(dt)), G)
                ev = xp.linalg.eigvalsh(xp.concatenate((G, Gj[None])))[..., -1]
                both = to_numpy(xp.concatenate((ev, xp.einsum("bii->b", Gj)[None])))
                both = np.maximum(both.astype(np.float64), 0.0)  # one transfer
                lay_in[:, lag] = 0.5 * np.log10(both[:-2]) + logs
                in_s[lag] = 0.5 * np.log10(both[-2]) + top
                in_f[lag] = 0.5 * np.log10(both[-1]) + top
                return
            for i, (Y, lg) in enumerate(Ys):
                sv = to_numpy(xp.linalg.svd(Y, compute_uv=False)[..., 0])
                lay_in[i, lag] = np.log10(sv) + lg
            Yj = xp.concatenate([Y * _factor(xp, lg, top, 3, dt) for Y, lg in Ys], axis=-2)
            in_s[lag] = np.log10(to_numpy(xp.linalg.svd(Yj, compute_uv=False)[..., 0])) + top
            in_f[lag] = _log_norm(xp, Yj) + top

    def _record(
        self,
        chain: ColumnChain,
        lag: int,
        jj: int,
        spec: dict[str, Spectral],
        logs: dict[str, np.ndarray],
        joint_f: np.ndarray,
        lay_f: np.ndarray,
        cross_f: np.ndarray,
        hrows: np.ndarray,
    ) -> None:
        xp, L, dt = self.xp, len(self.rts), self.dtype
        P = [[_Scaled(chain.block(i, j), chain.l[i, j]) for j in range(i + 1)] for i in range(L)]
        for i in range(L):
            lay_f[i, lag] = P[i][i].l
        for j in range(L):
            cross_f[j, lag] = P[L - 1][j].l
        if L == 1:
            Pj, top = P[0][0].a, P[0][0].l
            joint_f[lag] = top
            spec["joint"].step(jj, Pj, lag)
            logs["joint"][jj] = top
            if "hidden" in spec:
                Ph = Pj[:, hrows[0] : hrows[-1] + 1, hrows[0] : hrows[-1] + 1]
                spec["hidden"].step(jj, Ph, lag, xp.sqrt(xp.einsum("bij,bij->b", Ph, Ph)))
                logs["hidden"][jj] = top
            return
        lo = np.tril(np.ones((L, L), dtype=bool))
        top = _top(*chain.l[lo])
        # every block has unit Frobenius norm (or is exactly zero); f = 10**(l - top)
        with np.errstate(invalid="ignore", over="ignore"):
            fl = np.where(np.isfinite(chain.l), np.power(10.0, chain.l - top), 0.0)  # (L, L, B)
        f = [[fl[i, j] for j in range(i + 1)] for i in range(L)]
        mass = (fl * fl).sum(axis=(0, 1))
        joint_f[lag] = 0.5 * np.log10(mass) + top
        for i in range(L):
            spec[f"layer{i}"].step(jj, P[i][i].a, lag)
            logs[f"layer{i}"][jj] = P[i][i].l
        for j in range(L - 1):
            spec[f"cross{j}"].step(jj, P[L - 1][j].a, lag)
            logs[f"cross{j}"][jj] = P[L - 1][j].l
        # The joint product by its columns and its h block by blocks
        # (gradflow.stack_spectral): never assembled, read where they lie.
        sizes = [r.m for r in self.rts]
        factors = [chain.rows(j, fl[j:, j]) for j in range(L)]
        op = ColumnProduct(xp, chain.C, factors, sizes, dt)
        spec["joint"].step(
            jj, op if self.ops else op.dense(), lag, xp.asarray(np.sqrt(mass).astype(dt))
        )
        logs["joint"][jj] = top
        blocks = [(i, j, P[i][j].a, f[i][j]) for i in range(L) for j in range(i + 1)]
        if "hidden" in spec:
            hb = [
                (i, j, a[:, self.rts[i].hcols, self.rts[j].hcols], fij) for i, j, a, fij in blocks
            ]
            sq = to_numpy(xp.stack([xp.einsum("bij,bij->b", a, a) for _, _, a, _ in hb]))
            hmass = sum(fij * fij * sq[k] for k, (_, _, _, fij) in enumerate(hb))
            hsizes = [r.nout for r in self.rts]
            hop = BlockProduct(xp, hb, hsizes, hsizes, dt)
            spec["hidden"].step(
                jj, hop if self.ops else hop.dense(), lag, xp.asarray(np.sqrt(hmass).astype(dt))
            )
            logs["hidden"][jj] = top
