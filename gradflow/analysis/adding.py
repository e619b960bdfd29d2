r"""The adding problem: the memory task the trained checkpoints were trained on.

Each sequence has ``T`` steps of two inputs: a value drawn uniformly from ``[0, 1)`` and a
marker that is 1 at exactly two steps (one drawn uniformly from the first half of the
sequence, one from the second half) and 0 elsewhere. The target is the sum of the two marked
values. Always predicting 1 (the target's mean) has the mean squared error
``Var(u_1 + u_2) = 2/12 = 1/6 ≈ 0.167``, the baseline a network must beat to show that it
remembers. The gap between the first marker and the end of the sequence is at least ``T/2``:
solving the task needs gradients that travel at least that far.

Generated with NumPy from a seed, so the analysis of a checkpoint runs on inputs of the
distribution it was trained on without torch (``tests/reference/make_trained.py`` trains on
exactly these sequences).

Examples:
    >>> x, y = adding_problem(10, 3, seed=0)
    >>> x.shape, y.shape, x.dtype
    ((10, 3, 2), (3,), dtype('float64'))
    >>> x[:, :, 1].sum(axis=0).tolist()
    [2.0, 2.0, 2.0]

References:
    [hochreiter1997] Hochreiter & Schmidhuber (1997), Long short-term memory, experiment 4.
    [le2015irnn] Le, Jaitly & Hinton (2015), A simple way to initialize recurrent networks of
    rectified linear units, sec. 4.1.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

#: The mean squared error of always predicting 1: ``Var(u_1 + u_2) = 1/6``.
BASELINE_MSE = 1.0 / 6.0


def adding_problem(steps: int, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` sequences of the adding problem of length ``steps``.

    Args:
        steps: ``T``, at least 2.
        batch: ``B``, at least 1.
        seed: seed of :func:`numpy.random.default_rng`.

    Returns:
        ``(inputs, targets)``: float64 ``(T, B, 2)`` (value, marker) and ``(B,)``.

    Raises:
        UsageError: ``steps < 2`` or ``batch < 1``.
    """
    if steps < 2 or batch < 1:
        raise UsageError(
            f"the adding problem needs steps >= 2 and batch >= 1, got {steps}, {batch}"
        )
    rng = np.random.default_rng(seed)
    values = rng.random((steps, batch))
    half = steps // 2
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, steps, size=batch)
    markers = np.zeros((steps, batch))
    cols = np.arange(batch)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    targets = values[first, cols] + values[second, cols]
    return np.stack([values, markers], axis=-1), targets
