r"""A stack's joint product held by column blocks: one apply per layer and step.

The joint product ``P_k = dS_T/dS_{T-k}`` of a unidirectional stack (:mod:`gradflow.stack`)
is block lower-triangular. Column block ``j`` (the blocks ``P_{ij}``, ``i >= j``: how layer
``j``'s state ``k`` steps back reaches every layer at or above it) is kept as ONE array
``C_j`` of shape ``(B, R_j, m_j)``, ``R_j = sum_{i >= j} m_i``, whose row block ``i`` is
``P_{ij}`` with unit Frobenius norm and its own log10 scale ``l_{ij}`` (DESIGN decision 4).
One step ``P <- P A_t D_t`` is then, per column, from the top layer down:

* the back-substitution ``Q_{ij} = P_{ij} + Q_{i,j+1} K^{j+1}_t E^j`` for every row ``i > j``
  at once: one product ``C_{j+1} K^{j+1}_t`` (``(B, R_{j+1}, m_{j+1}) @ (B, m_{j+1}, n_j)``)
  added into the ``h`` columns of ``C_j``'s lower rows, in place;
* layer ``j``'s generated ``apply`` of ``D_t``'s block ``J^j_t`` to the whole column at once
  (:func:`gradflow.fused.fused_apply`: written into the column's second buffer, the
  materialised weight blocks built once per layer and step, and, for the LSTM, the diagonal
  ``dh/dc``, ``dc/dc`` blocks applied as scalings: half the flops of a dense product);
* each row block renormalised to unit Frobenius norm (one pass for the sums of squares, one
  for the scaling), its log10 scale carried.

A row block's rows do not mix in an apply, so rows of different scales share one array.
Where the back-substitution adds a term on a higher scale than the block it adds to, the
sum is taken on the higher scale (the block scaled down first); within ``SHARE`` decades the
term is scaled up instead, which spares the block a pass. The same column arrays hand the
input sensitivities their ``Q_{i1} K^1_t`` (one product for all rows) and the spectral
estimators their blocks (views, :meth:`ColumnChain.block`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .backend import to_numpy
from .fused import fused_apply

#: Decades by which a back-substituted term may exceed its block and still be added on the
#: block's scale (entries up to ``10**SHARE`` in the sum: its squares stay far from overflow).
SHARE = 30.0


class ColumnChain:
    """The joint product as column arrays with a log10 scale per block (module docstring).

    Args:
        rts: the stack's layers at run time (:class:`gradflow.stack._Rt`): ``m``, ``hcols``,
            ``kern``, ``q``, ``cell``.
        B: sequences.
        dtype: the working dtype.
        compiled: the fused applies' compiled variant (numba, the ``fast`` extra): the
            LSTM's diagonal ``c`` column in one pass of
            :func:`gradflow.fused_kernels.diag_sum` instead of a pass per term (bitwise the
            same; at n = 256 a column's apply took 27 ms instead of 32, the ``h`` column's
            product alone 24). The stack takes it where it takes the compiled Krylov kernel.
    """

    def __init__(self, rts: Sequence[Any], B: int, dtype: Any, compiled: bool = False) -> None:
        xp = rts[0].kern.xp
        self.xp, self.rts, self.B, self.dtype = xp, list(rts), B, dtype
        L = len(rts)
        self.sizes = [int(r.m) for r in rts]
        self.off = np.cumsum([0, *self.sizes])
        M = int(self.off[-1])
        self.C: list[Any] = []
        self.alt: list[Any] = []
        # Indicator of row -> block within column j, for per-block sums and scalings.
        self.ind: list[Any] = []
        for j, m in enumerate(self.sizes):
            c = xp.zeros((B, M - int(self.off[j]), m), dtype=dtype)
            c[:, :m, :] = xp.eye(m, dtype=dtype)
            self.C.append(c)
            self.alt.append(xp.empty_like(c))
            ind = np.zeros((M - int(self.off[j]), L - j))
            for i in range(j, L):
                ind[self.off[i] - self.off[j] : self.off[i + 1] - self.off[j], i - j] = 1.0
            self.ind.append(xp.asarray(ind.astype(dtype)))
        #: l[i, j]: log10 scale of block (i, j); -inf where the block is exactly zero.
        self.l = np.full((L, L, B), -np.inf)
        for j in range(L):
            self.l[j, j] = 0.0
        self.fused = [
            None if r.cell.sizes else fused_apply(r.kern, compiled).apply_into for r in self.rts
        ]
        self.ws: list[dict[str, Any]] = [{} for _ in rts]

    def block(self, i: int, j: int) -> Any:
        """The unit block ``P_{ij}`` (a view), ``j <= i``."""
        a, b = self.off[i] - self.off[j], self.off[i + 1] - self.off[j]
        return self.C[j][:, a:b, :]

    def backsub(self, kin: Callable[[int], Any]) -> np.ndarray:
        """``Q = P A_t`` in place (``kin(j)`` is layer ``j``'s input Jacobian at this step,
        ``(B, m_j, n_{j-1})``); returns the log10 scales of ``Q``'s blocks ``(L, L, B)``."""
        L = len(self.rts)
        lq = self.l.copy()
        for j in range(L - 2, -1, -1):
            a, b = lq[j + 1 :, j], lq[j + 1 :, j + 1]  # (L-j-1, B): the block, the term
            if not np.isfinite(b).any():
                continue  # nothing reaches column j from above (an exactly zero column)
            into = self.C[j + 1] @ kin(j + 1)  # (B, R_{j+1}, n_j): Q_{i,j+1} K^{j+1}
            with np.errstate(invalid="ignore"):
                keep = np.isfinite(a) & ~(b - a > SHARE)  # the sum on the block's scale
            top = np.where(keep, a, np.where(np.isfinite(b), b, 0.0))
            with np.errstate(invalid="ignore", over="ignore"):
                fb = np.where(np.isfinite(b), np.power(10.0, b - top), 0.0)
                fa = np.where(np.isfinite(a), np.power(10.0, a - top), 0.0)
            sub = self.C[j][:, self.sizes[j] :, :]
            if not keep.all():
                sub *= self.rows(j + 1, fa)
            into *= self.rows(j + 1, fb)
            sub[..., self.rts[j].hcols] += into
            lq[j + 1 :, j] = top
        return lq

    def rows(self, j: int, f: np.ndarray) -> Any:
        """Per-block factors ``f`` (``(L - j, B)``) spread over column ``j``'s rows,
        ``(B, R_j, 1)`` (column ``j``'s rows are also column ``j - 1``'s lower rows)."""
        fd = self.xp.asarray(np.ascontiguousarray(f.T).astype(self.dtype))
        return (fd @ self.ind[j].T)[..., None]

    def apply(self, F: Sequence[tuple[Any, ...]], lq: np.ndarray) -> None:
        """``P <- Q D_t``: every column through its layer's apply (``F[j]`` its factors at
        this step), renormalised per block; the scales become ``lq`` plus the logs of the
        norms."""
        xp = self.xp
        for j, r in enumerate(self.rts):
            fused = self.fused[j]
            if fused is not None:
                out = fused(self.C[j], F[j], r.q, self.alt[j], self.ws[j])
                self.alt[j] = self.C[j]
            else:
                out = r.kern.apply(self.C[j], F[j], r.q)
            sq = xp.einsum("brc,brc->br", out, out) @ self.ind[j]  # (B, blocks)
            s = xp.sqrt(sq)
            inv = xp.where(s > 0, 1.0 / xp.where(s > 0, s, 1.0), 1.0)
            out *= (inv @ self.ind[j].T)[..., None]
            self.C[j] = out
            with np.errstate(divide="ignore"):
                self.l[j:, j] = lq[j:, j] + np.log10(to_numpy(s).astype(np.float64)).T
