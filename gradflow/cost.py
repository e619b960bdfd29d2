r"""What an analysis will cost, checked before it runs.

The chain multiplies a ``(m, m)`` product by every step's Jacobian, for every sequence and
every followed path: about ``2 T B m^3`` floating-point operations per chain (a dense
``(m x m)(m x m)`` product per step; structure such as the LSTM's diagonal blocks halves it,
the estimate does not count on it). The result stores ``(T + 1) B`` numbers per recorded
quantity, about ``BYTES_PER_VALUE`` bytes each in JSON.

:func:`check_cost` refuses, with one line, an analysis above ``MAX_FLOPS`` (about three hours
on one core at 10 GFLOP/s) or ``MAX_OUTPUT_BYTES``, before any kernel is compiled or any step
is taken; ``force=True`` (the command line's ``--force``) lifts the limits. ``hidden_size =
3000, steps = 10^6`` is refused at once (5.4e16 operations).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError

#: Largest estimated operation count of one analysis run without ``force``.
MAX_FLOPS = 1e14
#: Largest estimated result size (JSON) without ``force``.
MAX_OUTPUT_BYTES = 2**30
#: Bytes per stored number in the JSON result (measured: 29 for rnn, T = 10^6, B = 2).
BYTES_PER_VALUE = 30


@dataclass(frozen=True)
class Cost:
    """An analysis' estimated work and output size."""

    flops: float
    values: int

    @property
    def output_bytes(self) -> int:
        return self.values * BYTES_PER_VALUE


def estimate_cost(
    steps: int,
    batch: int,
    state_size: int,
    hidden_size: int,
    *,
    chains: int = 1,
    per_lag_quantities: int = 3,
    singular_values: int = 0,
) -> Cost:
    """The cost of following ``chains`` products of state size ``state_size`` over ``steps``
    steps for ``batch`` sequences, recording ``per_lag_quantities`` numbers per lag and
    sequence and ``singular_values`` more in all."""
    flops = 2.0 * steps * batch * float(state_size) ** 3 * max(1, chains)
    values = (steps + 1) * batch * per_lag_quantities + singular_values + batch * hidden_size
    return Cost(flops, values)


_force_all = False


def set_force(force: bool) -> None:
    """Lift (or restore) the limits for every analysis in this process: the command line's
    ``--force``, which also reaches sweep workers through :func:`worker_settings`."""
    global _force_all
    _force_all = bool(force)


def forced() -> bool:
    """Whether :func:`set_force` lifted the limits in this process."""
    return _force_all


def check_cost(cost: Cost, force: bool = False) -> None:
    """Refuse an analysis above the documented limits, unless ``force``.

    Raises:
        UsageError: one line with the estimate, the limit and how to lift it.
    """
    if force or _force_all:
        return
    if cost.flops > MAX_FLOPS:
        raise UsageError(
            f"this analysis needs about {cost.flops:.1e} floating-point operations (limit "
            f"{MAX_FLOPS:.0e}, hours of computing); reduce steps, batch or hidden size, or "
            "pass force=True (--force) to run it anyway"
        )
    if cost.output_bytes > MAX_OUTPUT_BYTES:
        raise UsageError(
            f"this analysis would write about {cost.output_bytes / 2**30:.1f} GiB of results "
            f"(limit {MAX_OUTPUT_BYTES / 2**30:.0f} GiB); reduce steps or batch, or pass "
            "force=True (--force) to run it anyway"
        )
