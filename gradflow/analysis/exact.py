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

import numpy as np

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


#: Lags at which an experiment expands its products by the number of multiplicative factors
#: (the expansion costs ``O(K^2)`` in the longest lag ``K``: 0.45 s of CPU time for one LSTM
#: sequence with ``n = 32`` at lags 10 and 30, 3.3 s with lag 100 added).
PATH_LAGS = (10, 30)
#: Sequences per seed whose singular values an experiment certifies (all seeds in one batched
#: call), and seeds whose first sequence it expands: both cost in proportion to the sequences.
SV_SEQUENCES = 1
PATH_SEEDS = 1
#: Seeds (weight draws) the exact passes read: the certified singular values here and the
#: Lyapunov diagnostics (:func:`gradflow.analysis.lyapunov.experiment_lyapunov`) take the
#: first sequence of the first ``EXACT_DRAWS`` seeds. Their cost grows with the sequences
#: (about 1 s of CPU per draw over the default report's 11 cells, where the grouped engine
#: call costs far less per draw), and their medians and bands need fewer draws than the
#: report's intervals, which take every draw.
EXACT_DRAWS = 5
#: Largest state size ``m`` an experiment expands (the cost grows as ``m^3``: at ``m = 64`` an
#: LSTM takes 0.45 s, at ``m = 128`` about 2 s; a larger cell gets no expansion).
PATH_MAX_STATE = 128


def experiment_exact(
    cell: Cell,
    runs: Sequence[tuple[Mapping[str, Any], Any]],
    singular_lags: Sequence[int],
    path_lags: Sequence[int],
) -> tuple[ProductSpectrum | None, PathExpansion | None]:
    """What an experiment adds to its runs of one cell, in one batched pass over all seeds.

    Args:
        cell: the cell.
        runs: ``(params, inputs)`` of each seed, inputs ``(T, B, d)`` (one ``T`` for all).
        singular_lags: lags of the certified singular values (:mod:`gradflow.prodsvd`), on the
            first :data:`SV_SEQUENCES` sequences of each seed.
        path_lags: lags of the expansion by multiplicative factors
            (:mod:`gradflow.decomposition`), on the first sequence of the first
            :data:`PATH_SEEDS` seeds.

    Returns:
        ``(spectrum, expansion)``; the batch axis runs over seeds, then sequences. Either is
        None when no lag is asked (lags beyond ``T`` are dropped); the expansion is None for a
        cell without both an additive and a multiplicative part (a single term) and for a
        state larger than :data:`PATH_MAX_STATE`.
    """
    T = int(np.shape(runs[0][1])[0])
    sv_lags = [k for k in singular_lags if 1 <= k <= T]
    p_lags = [k for k in path_lags if 1 <= k <= T]
    spectrum = None
    if sv_lags:
        K = max(sv_lags)
        J = np.concatenate(
            [state_jacobians(cell, p, np.asarray(x)[:, :SV_SEQUENCES])[T - K :] for p, x in runs],
            axis=1,
        )
        spectrum = product_singular_values(J, sv_lags)
    expansion = None
    if p_lags:
        K = max(p_lags)
        parts = {
            path: np.concatenate(
                [
                    state_jacobians(cell, p, np.asarray(x)[:, :1], path=path)[T - K :]
                    for p, x in runs[:PATH_SEEDS]
                ],
                axis=1,
            )
            for path in ("additive", "multiplicative")
        }
        small = parts["additive"].shape[-1] <= PATH_MAX_STATE
        if small and np.any(parts["additive"]) and np.any(parts["multiplicative"]):
            with np.errstate(invalid="ignore", divide="ignore"):
                expansion = path_expansion(
                    parts["additive"], parts["multiplicative"], p_lags, state=cell.state
                )
    return spectrum, expansion
