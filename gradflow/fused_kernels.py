r"""numba kernel of the fused apply (:mod:`gradflow.fused`): a column block of diagonal blocks.

Where a column block ``j`` of ``J_t`` holds only diagonal blocks (the LSTM's ``dh_t/dc_{t-1}``
and ``dc_t/dc_{t-1}``), ``(P J_t)_j = sum_i P_i diag(f_i)``: a row scaling of column blocks
of ``P``, no matrix product. NumPy takes a pass per term and one more per sum, with a
temporary (at n = 128, B = 8 the LSTM's column: 0.9 ms, a seventh of the dense floor's step);
:func:`diag_sum` reads each term's block once and writes the column once (0.16 ms there), with
the same products and sums in the same order as NumPy's ``multiply`` then ``+=``, so the result
is bitwise that of the NumPy lines it replaces. Which blocks and factors enter comes from the
derivation (:func:`gradflow.fused._gen_apply_into`); nothing here knows a cell.

numba is optional (extra ``fast``): without it this module imports and :func:`diag_sum` runs
in the interpreter (far slower; :mod:`gradflow.fused` then never generates a call to it).
"""

from __future__ import annotations

from typing import Any

from .spectral_kernels import njit


@njit(cache=True)
def diag_sum(P: Any, out: Any, col: int, n: int, rows: Any, facs: Any, add: bool) -> None:
    """``out[b, :, col n:(col+1) n] (+)= sum_t P[b, :, rows[t] n:(rows[t]+1) n] * facs[t, b]``
    (a row of ``facs[t, b]`` scales each column of its block): assigned, or added to what is
    there when ``add``. ``P`` and ``out`` are ``(B, r, m)`` and do not overlap; ``facs`` is
    ``(len(rows), B, n)``."""
    B, r = P.shape[0], P.shape[1]
    lo = col * n
    nt = rows.shape[0]
    for b in range(B):
        for i in range(r):
            o = out[b, i, lo : lo + n]
            for t in range(nt):
                a = rows[t] * n
                p = P[b, i, a : a + n]
                f = facs[t, b]
                if t == 0 and not add:
                    for k in range(n):
                        o[k] = p[k] * f[k]
                else:
                    for k in range(n):
                        o[k] += p[k] * f[k]
