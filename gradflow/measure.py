"""What to measure beyond the norms: one object for the CLI, ``analyze`` and experiments.

``gradflow analyze`` options, the keyword arguments of :func:`gradflow.engine.analyze` and an
experiment's ``[quantities]`` table all describe the same four things; :class:`Measure` is
that description, validated once (:meth:`Measure.from_dict`), and :meth:`Measure.analyze_kwargs`
turns it into ``analyze`` keyword arguments.

Examples:
    >>> Measure.from_dict({"singular_lags": [10, 5, 10], "gradient": "last"}).analyze_kwargs()
    {'paths': False, 'singular_lags': (5, 10), 'lyapunov': 0, 'gradient': 'last'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError, did_you_mean

#: The gradient losses: none, ``L = sum(h_T)`` (last) or ``L = sum_t sum(h_t)`` (sum).
GRADIENT_LOSSES = ("none", "last", "sum")


def _int(value: Any, key: str, lo: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= 10**9:
        raise ConfigError(f"{key} must be an integer in [{lo}, {10**9}], got {value!r}")
    return value


@dataclass(frozen=True)
class Measure:
    """What to measure beyond the norms.

    Attributes:
        paths: also follow the additive and the multiplicative path alone.
        singular_lags: sorted distinct lags at which to record the product's singular values.
        lyapunov: how many Lyapunov exponents to compute (0: none).
        gradient: ``none``, ``last`` (``L = sum h_T``) or ``sum`` (``L = sum_t sum h_t``).
    """

    paths: bool = False
    singular_lags: tuple[int, ...] = ()
    lyapunov: int = 0
    gradient: str = "none"

    def __post_init__(self) -> None:  # validation only: from_dict normalises
        where = "quantities"
        if not isinstance(self.paths, bool):
            raise ConfigError(f"{where}.paths must be true or false, got {self.paths!r}")
        lags = self.singular_lags
        if not isinstance(lags, tuple) or list(lags) != sorted(set(lags)):
            raise ConfigError(
                f"{where}.singular_lags must be a sorted tuple of distinct lags, got {lags!r}"
            )
        for k in lags:
            _int(k, f"{where}.singular_lags entries", 1)
        _int(self.lyapunov, f"{where}.lyapunov", 0)
        if self.gradient not in GRADIENT_LOSSES:
            raise ConfigError(
                f"{where}.gradient must be one of {', '.join(GRADIENT_LOSSES)}, got "
                f"{self.gradient!r}{did_you_mean(self.gradient, GRADIENT_LOSSES)}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "quantities.") -> Measure:
        """Validate and normalise (lags sorted and deduplicated, integral floats to ints)."""
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names:
                raise ConfigError(
                    f"unknown key {prefix + str(key)!r} in the experiment config"
                    + (
                        did_you_mean(key, names, 0.5, prefix)
                        or f"; valid keys: {', '.join(prefix + n for n in names)}"
                    )
                )
        kw = {k: v for k, v in data.items() if v is not None}
        lags = kw.get("singular_lags", ())
        if isinstance(lags, (str, bytes)) or not isinstance(lags, (list, tuple)):
            raise ConfigError(f"{prefix}singular_lags must be a list, got {lags!r}")
        kw["singular_lags"] = tuple(
            sorted({_int(k, f"{prefix}singular_lags entries", 1) for k in lags})
        )
        if "lyapunov" in kw:
            kw["lyapunov"] = _int(kw["lyapunov"], f"{prefix}lyapunov", 0)
        return cls(**kw)

    @classmethod
    def of(
        cls,
        *,
        paths: bool = False,
        singular_lags: tuple[int, ...] | list[int] = (),
        lyapunov: int = 0,
        gradient: str | None = None,
    ) -> Measure:
        """From ``analyze``-style keyword arguments (``gradient=None`` means ``none``)."""
        return cls.from_dict(
            {
                "paths": paths,
                "singular_lags": list(singular_lags),
                "lyapunov": lyapunov,
                "gradient": gradient or "none",
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "paths": self.paths,
            "singular_lags": list(self.singular_lags),
            "lyapunov": self.lyapunov,
            "gradient": self.gradient,
        }

    def analyze_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`gradflow.engine.analyze`."""
        return {
            "paths": self.paths,
            "singular_lags": self.singular_lags,
            "lyapunov": self.lyapunov,
            "gradient": None if self.gradient == "none" else self.gradient,
        }
