r"""A stack's joint product as a matrix that is never assembled: blocks with their own scales.

A stack's joint product ``P_k = dS_T/dS_{T-k}`` is held as blocks ``P_{ij}``, ``j <= i``, each
with unit Frobenius norm and its own log10 scale ``l_{ij}`` (:mod:`gradflow.stack`). Its
certified spectral norm (:class:`gradflow.spectral.Spectral`) needs only products ``P X`` and
``P^T X`` with thin blocks ``X`` (``M x 4``): :class:`BlockProduct` forms them block by
block, ``(P X)_i = sum_{j <= i} f_{ij} P_{ij} X_j`` with ``f_{ij} = 10**(l_{ij} - top)``, while
the blocks are still in cache from the chain. Assembling the dense ``M x M`` product on a
common scale for every lag instead cost a pass that writes it and a pass for every product
that reads it, zeros above the diagonal included: about as much as the chain's own block
products at depth 4. The dense product is formed only where an estimator asks for the matrix
itself (a Cholesky certificate: ``P[idx]``, or ``numpy.asarray(P)``).

The same serves any sub-block selection (the joint product's block on every layer's ``h``:
each ``P_{ij}`` restricted to layer ``i``'s and ``j``'s ``h``). :class:`ColumnProduct` reads
the chain's own column arrays (:mod:`gradflow.stack_chain`): one matmul per column, not per
block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import to_numpy

#: One block: row block, column block, the unit block ``(B, r_i, c_j)`` (a view), and its
#: factor ``10**(l_ij - top)`` per sequence (host array ``(B,)``).
Block = tuple[int, int, Any, np.ndarray]


class BlockProduct:
    """A ``(B, R, C)`` matrix given as scaled blocks, for :class:`~gradflow.spectral.Spectral`.

    Supports what a spectral estimator does with its product: ``P @ X``, ``P.swapaxes(-1, -2)``
    (``xp.swapaxes``), ``P.shape``, ``P[idx]`` (the dense rows of some sequences) and
    ``numpy.asarray(P)`` (dense).

    Args:
        xp: the array namespace.
        blocks: the non-zero blocks (module docstring); absent blocks are zero.
        rows, cols: the sizes of the row and column blocks.
        dtype: the working dtype.
        buf: a ``(B, R, C)`` array the dense form is written to (its blocks that never
            appear in ``blocks`` must be zero), or None.
    """

    ndim = 3

    def __init__(
        self,
        xp: Any,
        blocks: Sequence[Block],
        rows: Sequence[int],
        cols: Sequence[int],
        dtype: Any,
        buf: Any = None,
        transposed: bool = False,
    ) -> None:
        self.xp, self.dtype, self.buf = xp, dtype, buf
        self.ro = np.cumsum([0, *rows])
        self.co = np.cumsum([0, *cols])
        self.B = int(blocks[0][2].shape[0])
        self.blocks = blocks
        self.f = [xp.asarray(f.reshape(-1, 1, 1).astype(dtype)) for _, _, _, f in blocks]
        self.live = [bool(f.any()) for _, _, _, f in blocks]
        self.transposed = transposed
        R, C = int(self.ro[-1]), int(self.co[-1])
        self.shape = (self.B, C, R) if transposed else (self.B, R, C)

    def swapaxes(self, a1: int, a2: int) -> Any:
        if {a1 % 3, a2 % 3} != {1, 2}:
            raise ValueError("a block product swaps only its last two axes")
        t = type(self).__new__(type(self))
        t.__dict__.update(self.__dict__)
        t.transposed = not self.transposed
        t.shape = (self.B, self.shape[2], self.shape[1])
        return t

    def __matmul__(self, X: Any) -> Any:
        xp = self.xp
        out = xp.zeros(self.shape[:2] + (X.shape[-1],), dtype=X.dtype)
        ro, co = (self.co, self.ro) if self.transposed else (self.ro, self.co)
        for (i, j, a, _), f, live in zip(self.blocks, self.f, self.live, strict=True):
            if not live:
                continue
            if self.transposed:
                i, j, a = j, i, xp.swapaxes(a, -1, -2)
            out[:, ro[i] : ro[i + 1]] += (a @ X[:, co[j] : co[j + 1]]) * f
        return out

    def dense(self) -> Any:
        """The product itself, ``(B, R, C)`` (transposed if this is the transpose)."""
        xp = self.xp
        buf = self.buf
        if buf is None:
            buf = xp.zeros((self.B, int(self.ro[-1]), int(self.co[-1])), dtype=self.dtype)
        for (i, j, a, _), f in zip(self.blocks, self.f, strict=True):
            ro, co = self.ro, self.co
            xp.multiply(a, f, out=buf[:, ro[i] : ro[i + 1], co[j] : co[j + 1]])
        return xp.swapaxes(buf, -1, -2) if self.transposed else buf

    def __getitem__(self, idx: Any) -> Any:
        return self.dense()[idx]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = to_numpy(self.dense())
        return a if dtype is None else a.astype(dtype)


class ColumnProduct(BlockProduct):
    """The same matrix held by column blocks (:class:`gradflow.stack_chain.ColumnChain`):
    column ``j`` is one array ``C_j`` ``(B, R_j, c_j)`` of the unit blocks ``P_{ij}``,
    ``i >= j``, stacked by rows, with the factors ``f_{ij}`` spread over its rows
    (``(B, R_j, 1)``). A product takes one matmul per column instead of one per block:
    ``P X`` adds ``f * (C_j X_j)`` into the rows from ``j`` down, and ``(P^T X)_j`` is
    ``C_j^T (f * X_{j:})``.

    Args:
        xp: the array namespace.
        columns: the column arrays ``C_j``.
        factors: their row factors, ``(B, R_j, 1)`` each.
        sizes: the block sizes (rows and columns: the product is square).
        dtype: the working dtype.
    """

    def __init__(
        self,
        xp: Any,
        columns: Sequence[Any],
        factors: Sequence[Any],
        sizes: Sequence[int],
        dtype: Any,
    ) -> None:
        self.xp, self.dtype, self.buf = xp, dtype, None
        self.ro = self.co = np.cumsum([0, *sizes])
        self.B = int(columns[0].shape[0])
        self.columns, self.factors = list(columns), list(factors)
        self.transposed = False
        M = int(self.ro[-1])
        self.shape = (self.B, M, M)

    def __matmul__(self, X: Any) -> Any:
        xp, o = self.xp, self.ro
        if self.transposed:
            out = xp.empty(self.shape[:2] + (X.shape[-1],), dtype=X.dtype)
            for j, (c, f) in enumerate(zip(self.columns, self.factors, strict=True)):
                xp.matmul(xp.swapaxes(c, -1, -2), X[:, o[j] :] * f, out=out[:, o[j] : o[j + 1]])
            return out
        out = xp.zeros(self.shape[:2] + (X.shape[-1],), dtype=X.dtype)
        for j, (c, f) in enumerate(zip(self.columns, self.factors, strict=True)):
            out[:, o[j] :] += (c @ X[:, o[j] : o[j + 1]]) * f
        return out

    def dense(self) -> Any:
        """The product itself, ``(B, M, M)`` (transposed if this is the transpose)."""
        xp, o = self.xp, self.ro
        buf = xp.zeros(self.shape, dtype=self.dtype)
        for j, (c, f) in enumerate(zip(self.columns, self.factors, strict=True)):
            xp.multiply(c, f, out=buf[:, o[j] :, o[j] : o[j + 1]])
        return xp.swapaxes(buf, -1, -2) if self.transposed else buf


def block_products_supported(xp: Any) -> bool:
    """Whether ``xp.swapaxes`` hands a :class:`BlockProduct` to its own ``swapaxes`` (NumPy
    and CuPy do); where it does not, the estimators get the dense product."""
    op = BlockProduct(xp, [(0, 0, xp.zeros((1, 1, 1)), np.ones(1))], [1], [1], np.float64)
    try:
        return isinstance(xp.swapaxes(op, -1, -2), BlockProduct)
    except Exception:  # a namespace that insists on its own arrays
        return False
