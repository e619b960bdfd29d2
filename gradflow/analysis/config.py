r"""Experiment configuration: a typed, validated config read from TOML or a dict.

Examples:
    >>> cfg = ExperimentConfig.from_dict({"cells": ["rnn"], "hidden_size": 8, "seeds": 2})
    >>> cfg.seeds
    (0, 1)
    >>> ExperimentConfig.from_dict({"hiden_size": 8})
    Traceback (most recent call last):
    ...
    gradflow.errors.ConfigError: unknown key 'hiden_size' in the experiment config; did you mean 'hidden_size'?
"""  # noqa: E501

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..cells import CATALOGUE
from ..errors import ConfigError, did_you_mean
from ..initialisers import INPUT_KINDS, SCHEMES, Init
from ..measure import Measure
from ..tensorfile import check_regular_file
from .decay import default_window

Progress = bool | Callable[[int, int], None] | None
Quantities = Measure  # the experiment's [quantities] table is a Measure


#: Keys of an experiment config, in the order they are documented.
CONFIG_KEYS = (
    "name",
    "cells",
    "hidden_size",
    "input_size",
    "steps",
    "batch",
    "seeds",
    "init",
    "inputs",
    "quantities",
    "lag_window",
    "quantiles",
    "backend",
)
INIT_KEYS = tuple(f.name for f in fields(Init))
BACKENDS = ("numpy", "cupy")
MAX_SIZE = 1_000_000


# ---- validation helpers ----------------------------------------------------------------------


def check_keys(
    data: Mapping[str, Any], allowed: Iterable[str], where: str, prefix: str = ""
) -> None:
    """Raise :class:`ConfigError` for the first key of ``data`` not in ``allowed``."""
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            hint = did_you_mean(key, allowed, 0.5, prefix) or (
                f"; valid keys: {', '.join(prefix + a for a in allowed)}"
            )
            raise ConfigError(f"unknown key {prefix + str(key)!r} in {where}{hint}")


def checked_int(value: Any, key: str, lo: int, hi: int = MAX_SIZE) -> int:
    """``value`` as an int in ``[lo, hi]`` (integral floats allowed), else ConfigError."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok or not lo <= int(value) <= hi:
        raise ConfigError(f"{key} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def checked_float(
    value: Any,
    key: str,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    open_lo: bool = False,
    optional: bool = False,
) -> float | None:
    """``value`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` if ``open_lo``)."""
    if value is None and optional:
        return None
    bad = (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not math.isfinite(float(value))
    )
    if bad or not (lo < float(value) if open_lo else lo <= float(value)) or float(value) > hi:
        rng = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]".replace("inf]", "inf)")
        raise ConfigError(f"{key} must be a finite number in {rng}, got {value!r}")
    return float(value)


def _choice(value: Any, key: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    if value not in allowed:
        hint = did_you_mean(value, allowed)
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}{hint}")
    return str(value)


def _tuple(value: Any, key: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    return tuple(value)


def _checked_cells(cells: Any) -> tuple[str, ...]:
    cells = _tuple(cells, "cells")
    if not cells:
        raise ConfigError("cells must name at least one cell")
    for c in cells:
        if not isinstance(c, str):
            raise ConfigError(f"cells must be names or paths, got {c!r}")
        if c.endswith(".toml"):
            if not Path(c).is_file():
                raise ConfigError(f"cell file {c!r} not found")
        elif c not in CATALOGUE:
            hint = did_you_mean(c, CATALOGUE).removeprefix("; ")
            raise ConfigError(
                f"unknown cell {c!r}; {hint + ' ' if hint else ''}(known: {', '.join(CATALOGUE)}, "
                "or a path to a cell .toml file)"
            )
    if len(set(cells)) != len(cells):
        raise ConfigError(f"cells lists a cell twice: {list(cells)}")
    return tuple(str(c) for c in cells)


def checked_init(data: Mapping[str, Any]) -> Init:
    """An :class:`Init` from a table, with ConfigErrors naming the key and the allowed range."""
    check_keys(data, INIT_KEYS, "the experiment config", prefix="init.")
    kw = {k: v for k, v in data.items() if v is not None}
    _choice(kw.get("scheme", "torch"), "init.scheme", SCHEMES)
    for key in ("sigma_w", "sigma_u", "sigma_b"):
        if key in kw:
            kw[key] = checked_float(kw[key], f"init.{key}", 0.0, 1e6)
    if "spectral_radius" in kw:
        kw["spectral_radius"] = checked_float(
            kw["spectral_radius"], "init.spectral_radius", 0.0, 1e6, open_lo=True
        )
    if "chrono_tmax" in kw:
        kw["chrono_tmax"] = checked_float(
            kw["chrono_tmax"], "init.chrono_tmax", 2.0, 1e12, open_lo=True
        )
    for key in ("forget_bias", "update_bias"):
        if key in kw:
            kw[key] = checked_float(kw[key], f"init.{key}", -1e3, 1e3)
    return Init(**kw)


@dataclass(frozen=True)
class InputsConfig:
    """Input sequences: ``kind`` is ``gaussian`` (N(0, scale^2)), ``zeros``, ``constant``
    (every entry ``value``) or ``file`` (a ``.npy`` of shape ``(T, B, d)`` at ``path``)."""

    kind: str = "gaussian"
    scale: float = 1.0
    value: float = 0.0
    path: str | None = None

    def __post_init__(self) -> None:
        _choice(self.kind, "inputs.kind", INPUT_KINDS)
        object.__setattr__(self, "scale", checked_float(self.scale, "inputs.scale", 0.0, 1e6))
        object.__setattr__(self, "value", checked_float(self.value, "inputs.value", -1e6, 1e6))
        if self.kind == "file" and not isinstance(self.path, str):
            raise ConfigError(
                "inputs.kind = 'file' needs inputs.path, a .npy file of shape (T, B, d)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": self.scale, "value": self.value, "path": self.path}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Any = None) -> InputsConfig:
        check_keys(data, [f.name for f in fields(cls)], "the experiment config", "inputs.")
        kw = {k: v for k, v in data.items() if v is not None}
        if base_dir is not None and isinstance(kw.get("path"), str):
            kw["path"] = str(Path(base_dir, kw["path"]))
        return cls(**kw)


# ---- the config ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentConfig:
    """What to run: cells, sizes, seeds, initialisation, inputs and what to measure.

    Args:
        name: a label, used for output file names.
        cells: catalogue names (``gradflow cells``) or paths to cell ``.toml`` files.
        hidden_size: ``n``. input_size: ``d``. steps: ``T``. batch: ``B`` sequences per seed.
        seeds: the seeds (non-negative); a count ``k`` in a file or dict means ``0..k-1``.
        init: :class:`gradflow.initialisers.Init`.
        inputs: :class:`InputsConfig`. quantities: :class:`gradflow.measure.Measure`.
        lag_window: ``(k0, k1)``, the lags a decay rate is fitted over; ``None`` means
            ``(max(1, T // 10), T)``, which skips the transient of the first lags.
        quantiles: the lower and upper band, in ``(0, 0.5]`` and ``[0.5, 1)``; every band of
            the result carries them (:class:`gradflow.results.Band`).
        backend: ``numpy`` or ``cupy``.
    """

    name: str = "experiment"
    cells: tuple[str, ...] = ("rnn", "lstm", "gru")
    hidden_size: int = 32
    input_size: int = 8
    steps: int = 300
    batch: int = 4
    seeds: tuple[int, ...] = (0, 1, 2)
    init: Init = field(default_factory=Init)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    quantities: Measure = field(default_factory=Measure)
    lag_window: tuple[int, int] | None = None
    quantiles: tuple[float, float] = (0.1, 0.9)
    backend: str = "numpy"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 100:
            raise ConfigError(
                f"name must be a non-empty string of at most 100 characters, got {self.name!r}"
            )
        if (
            "/" in self.name
            or "\\" in self.name
            or self.name in (".", "..")
            or not self.name.isprintable()
        ):
            raise ConfigError(
                f"name is a name, not a path: no '/', '\\', '..' or control characters, "
                f"got {self.name!r}"
            )
        set_(self, "cells", _checked_cells(self.cells))
        for key in ("hidden_size", "input_size", "steps", "batch"):
            set_(self, key, checked_int(getattr(self, key), key, 1))
        seeds = tuple(
            checked_int(s, "seeds entries", 0, 2**63 - 1) for s in _tuple(self.seeds, "seeds")
        )
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(
                f"seeds must be a non-empty list of distinct integers, got {list(seeds)}"
            )
        set_(self, "seeds", seeds)
        if not isinstance(self.init, Init):
            raise ConfigError(f"init must be a table of {', '.join(INIT_KEYS)}")
        if not isinstance(self.inputs, InputsConfig):
            raise ConfigError("inputs must be a table of kind, scale, value, path")
        q = self.quantities
        if not isinstance(q, Measure):
            raise ConfigError(
                "quantities must be a table of paths, singular_lags, lyapunov, gradient"
            )
        if q.singular_lags and q.singular_lags[-1] > self.steps:
            raise ConfigError(
                f"quantities.singular_lags must lie in [1, steps = {self.steps}],"
                f" got {q.singular_lags[-1]}"
            )
        if q.lyapunov > self.hidden_size:
            raise ConfigError(
                f"quantities.lyapunov must lie in [0, hidden_size = "
                f"{self.hidden_size}], got {q.lyapunov}"
            )
        if self.lag_window is not None:
            w = _tuple(self.lag_window, "lag_window")
            if len(w) != 2:
                raise ConfigError(f"lag_window must be [k0, k1], got {list(w)}")
            k0 = checked_int(w[0], "lag_window[0]", 0, self.steps - 1)
            k1 = checked_int(w[1], "lag_window[1]", k0 + 1, self.steps)
            set_(self, "lag_window", (k0, k1))
        qs = _tuple(self.quantiles, "quantiles")
        if len(qs) != 2:
            raise ConfigError(f"quantiles must be [lower, upper], got {list(qs)}")
        lo = checked_float(qs[0], "quantiles[0]", 0.0, 0.5, open_lo=True)
        hi = checked_float(qs[1], "quantiles[1]", 0.5, 1.0)
        if hi == 1.0:
            raise ConfigError("quantiles[1] must lie in [0.5, 1), got 1.0")
        set_(self, "quantiles", (lo, hi))
        _choice(self.backend, "backend", BACKENDS)
        if self.steps < 2:
            raise ConfigError(f"steps must be an integer in [2, {MAX_SIZE}], got {self.steps}")

    @property
    def window(self) -> tuple[int, int]:
        """The lag window decay rates are fitted over, with the default resolved."""
        return self.lag_window if self.lag_window is not None else default_window(self.steps)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; :meth:`from_dict` of it gives back an equal config."""
        return {
            "name": self.name,
            "cells": list(self.cells),
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "steps": self.steps,
            "batch": self.batch,
            "seeds": list(self.seeds),
            "init": {k: getattr(self.init, k) for k in INIT_KEYS},
            "inputs": self.inputs.to_dict(),
            "quantities": self.quantities.to_dict(),
            "lag_window": list(self.lag_window) if self.lag_window is not None else None,
            "quantiles": list(self.quantiles),
            "backend": self.backend,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
    ) -> ExperimentConfig:
        """Parse and validate a config dict (e.g. a parsed TOML file).

        Args:
            data: keys from :data:`CONFIG_KEYS`; ``init``, ``inputs`` and ``quantities`` are
                nested tables. Missing keys take their defaults; ``None`` means the default.
            base_dir: relative paths (cell files, ``inputs.path``) are resolved against it.

        Raises:
            ConfigError: an unknown key (naming the nearest valid one) or a value out of
                range (naming the allowed range).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"an experiment config must be a table, got {type(data).__name__}")
        check_keys(data, CONFIG_KEYS, "the experiment config")
        kw: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
        for key in ("init", "inputs", "quantities"):
            if not isinstance(kw.setdefault(key, {}), Mapping):
                raise ConfigError(f"{key} must be a table, got {kw[key]!r}")
        kw["init"] = checked_init(kw["init"])
        kw["inputs"] = InputsConfig.from_dict(kw["inputs"], base_dir)
        kw["quantities"] = Measure.from_dict(kw["quantities"])
        seeds = kw.get("seeds")
        if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
            kw["seeds"] = tuple(range(checked_int(seeds, "seeds (a count)", 1, 100_000)))
        cells = kw.get("cells")
        if base_dir is not None and isinstance(cells, (list, tuple)):
            kw["cells"] = [
                str(Path(base_dir, c)) if isinstance(c, str) and c.endswith(".toml") else c
                for c in cells
            ]
        return cls(**kw)


#: The largest config file :func:`read_toml` reads (bytes); configs are a few hundred.
MAX_CONFIG_BYTES = 1 << 20
#: The deepest nesting of tables and lists a config may have (a sweep axis list in a table
#: in a table is 3).
MAX_CONFIG_DEPTH = 10


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of ``value`` (a scalar is 0), counted only up to ``limit + 1``."""
    stack = [(value, 0)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            break
        if isinstance(item, Mapping):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file as a dict; unreadable or malformed files raise :class:`ConfigError`.

    Only a regular file of at most :data:`MAX_CONFIG_BYTES` is opened (a FIFO would block and
    ``/dev/zero`` would read forever), and tables and lists nested deeper than
    :data:`MAX_CONFIG_DEPTH` are refused, each with one line naming the file.
    """
    check_regular_file(
        path,
        ConfigError,
        what="config",
        note="a config must be a TOML file",
        max_bytes=MAX_CONFIG_BYTES,
        too_big="{path}: {size} bytes is larger than a config can be (at most {limit} bytes)",
    )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        data = tomllib.loads(raw[:MAX_CONFIG_BYTES].decode("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: TOML nested too deeply to be a config") from None
    if _depth(data, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH:
        raise ConfigError(
            f"{path}: TOML nested too deeply to be a config (more than {MAX_CONFIG_DEPTH} "
            "levels of tables and lists)"
        )
    return data


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read an experiment config from TOML; relative paths are relative to the file."""
    data = read_toml(path)
    if "sweep" in data:
        raise ConfigError(f"{path} has a [sweep] table: run it with `gradflow sweep`")
    try:
        return ExperimentConfig.from_dict(data, base_dir=Path(path).parent)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
