r"""Exact spectra and path decompositions of a cell's own Jacobian products.

Thin wrappers that take a cell, its parameters and inputs, materialise the per-step Jacobians
through the generated kernels (:func:`gradflow.engine.state_jacobians`: every derivative from
the SymPy derivation, the additive and multiplicative parts included) and hand them to the
numeric layer: :func:`gradflow.prodsvd.product_singular_values` and
:func:`gradflow.decomposition.path_expansion`.

Memory: the Jacobians are materialised, ``T B m^2`` floats per part (``T = 1000``, ``B = 4``,
``m = 64``: 131 MB); pass only the steps that the lags need (the last ``max(lags)`` Jacobians
are used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..cells import Cell, get_cell
from ..decomposition import PathExpansion, path_expansion
from ..engine import state_jacobians
from ..prodsvd import CERT_TOL, ProductSpectrum, product_singular_values


def exact_singular_values(
    cell: Cell | str,
    params: Mapping[str, Any],
    inputs: Any,
    lags: Sequence[int],
    *,
    s0: Any = None,
    tol: float = CERT_TOL,
) -> ProductSpectrum:
    """Certified log10 singular values of ``ds_T/ds_{T-k}`` at ``lags`` (see
    :mod:`gradflow.prodsvd`).

    Examples:
        >>> import numpy as np
        >>> from gradflow.initialisers import Init, initialise
        >>> c = get_cell("rnn"); rng = np.random.default_rng(0)
        >>> p = initialise(c, 4, 2, Init(scheme="gaussian"), rng)
        >>> r = exact_singular_values(c, p, rng.standard_normal((50, 1, 2)), [10, 50])
        >>> r.certified_fraction().tolist()
        [1.0, 1.0]
    """
    J = state_jacobians(cell, params, inputs, s0=s0)
    return product_singular_values(J, lags, tol=tol)


def path_decomposition(
    cell: Cell | str,
    params: Mapping[str, Any],
    inputs: Any,
    lags: Sequence[int],
    *,
    s0: Any = None,
    radii: Sequence[float] | None = None,
    keep_terms: Sequence[int] = (),
) -> PathExpansion:
    """The expansion ``ds_T/ds_{T-k} = sum_j S_j`` by the number of multiplicative factors,
    and the product's blocks (``dh_T/dc_{T-k}``, ...), see :mod:`gradflow.decomposition`."""
    c = get_cell(cell) if isinstance(cell, str) else cell
    A = state_jacobians(c, params, inputs, s0=s0, path="additive")
    M = state_jacobians(c, params, inputs, s0=s0, path="multiplicative")
    return path_expansion(A, M, lags, radii=radii, state=c.state, keep_terms=keep_terms)
