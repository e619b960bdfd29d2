r"""Experiments as configuration: a typed, validated config and one function that runs it.

An experiment runs every ``(cell, seed)`` pair of its configuration through
:func:`gradflow.engine.analyze` and reduces the runs (``seeds x batch`` of them) to quantile
bands per lag, a decay rate, the Pascanu bound where it applies and the mean-field prediction
where it applies. The result is plain data that saves to JSON (DESIGN decision 8).

Seeds: run ``(cell, seed)`` draws its parameters from
``SeedSequence([seed, zlib.crc32(cell_name)])`` and its inputs from
``SeedSequence([seed, zlib.crc32("inputs")])``: every cell of one seed sees the same inputs
(common random numbers), and no number depends on the order in which runs execute.

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

import difflib
import math
import os
import sys
import time
import tomllib
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ConfigError, UsageError
from ..initialisers import INPUT_KINDS, SCHEMES, Init
from ..results import SCHEMA_VERSION, load_json, save_json

Progress = bool | Callable[[int, int], None] | None

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
GRADIENT_LOSSES = ("none", "last", "sum")
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
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = (
                f"; did you mean {prefix + close[0]!r}?"
                if close
                else f"; valid keys: {', '.join(prefix + a for a in allowed)}"
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
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}{hint}")
    return str(value)


def _tuple(value: Any, key: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    return tuple(value)


def _checked_cells(cells: Any) -> tuple[str, ...]:
    from ..cells import CATALOGUE

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
            close = difflib.get_close_matches(c, list(CATALOGUE), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown cell {c!r}; {hint}(known: {', '.join(CATALOGUE)}, "
                "or a path to a cell .toml file)"
            )
    if len(set(cells)) != len(cells):
        raise ConfigError(f"cells lists a cell twice: {list(cells)}")
    return cells


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


@dataclass(frozen=True)
class Quantities:
    """What to measure beyond the norms: path-restricted chains, singular values at some lags,
    the top ``lyapunov`` Lyapunov exponents, and the gradient of ``sum h_T`` (``last``) or
    ``sum_t sum h_t`` (``sum``)."""

    paths: bool = False
    singular_lags: tuple[int, ...] = ()
    lyapunov: int = 0
    gradient: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.paths, bool):
            raise ConfigError(f"quantities.paths must be true or false, got {self.paths!r}")
        lags = tuple(
            checked_int(k, "quantities.singular_lags entries", 1)
            for k in _tuple(self.singular_lags, "quantities.singular_lags")
        )
        object.__setattr__(self, "singular_lags", tuple(sorted(set(lags))))
        object.__setattr__(self, "lyapunov", checked_int(self.lyapunov, "quantities.lyapunov", 0))
        _choice(self.gradient, "quantities.gradient", GRADIENT_LOSSES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "paths": self.paths,
            "singular_lags": list(self.singular_lags),
            "lyapunov": self.lyapunov,
            "gradient": self.gradient,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quantities:
        check_keys(data, [f.name for f in fields(cls)], "the experiment config", "quantities.")
        return cls(**{k: v for k, v in data.items() if v is not None})


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
        inputs: :class:`InputsConfig`. quantities: :class:`Quantities`.
        lag_window: ``(k0, k1)``, the lags a decay rate is fitted over; ``None`` means
            ``(max(1, T // 10), T)``, which skips the transient of the first lags.
        quantiles: the lower and upper band, in ``(0, 0.5]`` and ``[0.5, 1)``. Summary keys
            are named after them: ``q10``/``q90`` for the default, ``q5``/``q95`` for
            ``(0.05, 0.95)`` (:func:`band_names`).
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
    quantities: Quantities = field(default_factory=Quantities)
    lag_window: tuple[int, int] | None = None
    quantiles: tuple[float, float] = (0.1, 0.9)
    backend: str = "numpy"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 100:
            raise ConfigError(
                f"name must be a non-empty string of at most 100 characters, got {self.name!r}"
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
        if not isinstance(q, Quantities):
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
        from .decay import default_window

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
        kw["quantities"] = Quantities.from_dict(kw["quantities"])
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


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file as a dict; unreadable or malformed files raise :class:`ConfigError`."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc})") from None


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read an experiment config from TOML; relative paths are relative to the file."""
    data = read_toml(path)
    if "sweep" in data:
        raise ConfigError(f"{path} has a [sweep] table: run it with `gradflow sweep`")
    try:
        return ExperimentConfig.from_dict(data, base_dir=Path(path).parent)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


# ---- running ---------------------------------------------------------------------------------


def seed_sequence(seed: int, tag: str) -> np.random.SeedSequence:
    """``SeedSequence([seed, zlib.crc32(tag)])``: the same in every process and Python version."""
    return np.random.SeedSequence([int(seed), zlib.crc32(tag.encode("utf-8"))])


def resolve_cells(config: ExperimentConfig) -> list[Any]:
    """The :class:`~gradflow.cells.Cell` objects the config names, in its order."""
    from ..cells import get_cell

    cells = []
    for entry in config.cells:
        if entry.endswith(".toml"):
            from ..cells.parse import load_cell_file

            cells.append(load_cell_file(entry))
        else:
            cells.append(get_cell(entry))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"cells must have distinct names, got {names}")
    return cells


def cell_init(init: Init, cell: Any) -> Init:
    """``init`` without the gate options ``cell`` has no gate for.

    One config can compare an RNN with an LSTM that has ``forget_bias = 1``: the RNN simply
    has no forget gate, so the option does not apply to it.
    """
    from ..initialisers import memory_gates, sigmoid_gates, update_gate

    changes: dict[str, Any] = {}
    if init.forget_bias is not None and "a_f" not in sigmoid_gates(cell):
        changes["forget_bias"] = None
    if init.update_bias is not None and update_gate(cell) is None:
        changes["update_bias"] = None
    if init.chrono_tmax is not None and not memory_gates(cell):
        changes["chrono_tmax"] = None
    return replace(init, **changes) if changes else init


def run_cell(
    config: ExperimentConfig, cell: Any, seed: int, init: Init | None = None
) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
    """One run: draw ``cell``'s parameters and the inputs for ``seed``, then analyse.

    Returns:
        ``(AnalysisResult, params, inputs)``.
    """
    from ..engine import analyze
    from ..initialisers import initialise, make_inputs

    n, d = config.hidden_size, config.input_size
    init = cell_init(config.init, cell) if init is None else init
    params = initialise(cell, n, d, init, np.random.default_rng(seed_sequence(seed, cell.name)))
    inp = config.inputs
    x = make_inputs(
        inp.kind,
        config.steps,
        config.batch,
        d,
        np.random.default_rng(seed_sequence(seed, "inputs")),
        scale=inp.scale,
        value=inp.value,
        path=inp.path,
    )
    q = config.quantities
    result = analyze(
        cell,
        params,
        x,
        backend=config.backend,
        paths=q.paths,
        singular_lags=q.singular_lags,
        lyapunov=q.lyapunov,
        gradient=None if q.gradient == "none" else q.gradient,
    )
    return result, params, x


def progress_bar(progress: Progress, total: int, desc: str) -> Callable[[], None]:
    """A ``tick()`` that advances a tqdm bar on stderr, or calls ``progress(done, total)``.

    The bar is off when ``progress`` is false or stderr is not a terminal, and it appears
    only for work that lasts longer than a second (tqdm's ``delay``).
    """
    done = [0]
    if callable(progress):

        def tick() -> None:
            done[0] += 1
            progress(done[0], total)

        return tick
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        delay=1.0,
        leave=False,
        disable=not progress or not sys.stderr.isatty(),
    )

    def tick_bar() -> None:
        bar.update()
        done[0] += 1
        if done[0] >= total:
            bar.close()

    return tick_bar


def run_experiment(config: ExperimentConfig, progress: Progress = True) -> ExperimentResult:
    """Run every ``(cell, seed)`` of ``config`` and summarise each cell over its runs.

    Args:
        config: the experiment.
        progress: ``True`` for a tqdm bar on stderr (only on a terminal, only after a
            second), ``False``/``None`` for none, or a callable ``progress(done, total)``.

    Returns:
        An :class:`ExperimentResult` (the ``"experiment"`` JSON schema).

    References:
        [pascanu2013] for the bound; [poole2016] for the mean-field prediction.
    """
    start = time.perf_counter()
    cells = resolve_cells(config)
    inits = [cell_init(config.init, c) for c in cells]
    tick = progress_bar(progress, len(cells) * len(config.seeds), config.name)
    summaries: dict[str, dict[str, Any]] = {}
    for cell, init in zip(cells, inits, strict=True):
        runs = []
        for seed in config.seeds:
            runs.append(run_cell(config, cell, seed, init))
            tick()
        summaries[cell.name] = summarise_cell(config, cell, init, runs)
    return ExperimentResult(
        name=config.name,
        config=config.to_dict(),
        seeds=list(config.seeds),
        cells=summaries,
        gradflow_version=__version__,
        timing={"total_s": time.perf_counter() - start},
    )


# ---- summaries -------------------------------------------------------------------------------


def band_names(quantiles: tuple[float, float]) -> tuple[str, str, str]:
    """Summary keys of the lower band, the median and the upper band: ``q10, median, q90``
    for the default quantiles, ``q5, median, q95`` for ``(0.05, 0.95)``."""
    return f"q{100 * quantiles[0]:g}", "median", f"q{100 * quantiles[1]:g}"


def _quantiles(
    values: np.ndarray, quantiles: tuple[float, float], axis: int | None = None
) -> np.ndarray:
    """Lower quantile, median and upper quantile along ``axis`` (linear interpolation).

    A product that reached exactly zero has ``log10 = -inf``; where interpolating next to it
    is undefined the nearest order statistic is taken (``-inf``, ``null`` in JSON).
    """
    qs = [quantiles[0], 0.5, quantiles[1]]
    with np.errstate(invalid="ignore"):
        out = np.quantile(values, qs, axis=axis)
    bad = np.isnan(out)
    if bad.any():
        out[bad] = np.quantile(values, qs, axis=axis, method="nearest")[bad]
    return out


def _bands(values: np.ndarray, quantiles: tuple[float, float]) -> dict[str, list[float]]:
    """The bands over the runs (axis 1) of ``(L, R)`` values, for every lag."""
    q = _quantiles(values, quantiles, axis=1)
    return {name: q[i].tolist() for i, name in enumerate(band_names(quantiles))}


def run_decay_rates(log10_norms: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Decay rate of each run (column); ``-inf`` for a run whose product is exactly zero
    somewhere in the window (every unit of a ReLU cell inactive at one step)."""
    from .decay import decay_rate

    seg = log10_norms[window[0] : window[1] + 1]
    finite = np.isfinite(seg).all(axis=0)
    rates = np.full(log10_norms.shape[1], -np.inf)
    if finite.any():
        rates[finite] = decay_rate(log10_norms[:, finite], window)
    return rates


def _stack(arrays: Iterable[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=float) for a in arrays], axis=-1)


def summarise_cell(
    config: ExperimentConfig,
    cell: Any,
    init: Init,
    runs: list[tuple[Any, dict[str, np.ndarray], np.ndarray]],
) -> dict[str, Any]:
    """Reduce the runs of one cell (one per seed, ``B`` sequences each) to the summary schema."""
    res = [r for r, _, _ in runs]
    qs = config.quantiles
    spec = _stack(r.log10_spectral_norm for r in res)  # (T + 1, seeds * B)
    k0, k1 = config.window
    rq = _quantiles(run_decay_rates(spec, (k0, k1)), qs)
    lo, _, hi = band_names(qs)
    out: dict[str, Any] = {
        "cell": cell.name,
        "hidden_size": config.hidden_size,
        "input_size": config.input_size,
        "steps": config.steps,
        "batch": config.batch,
        "runs": int(spec.shape[1]),
        "lags": list(range(config.steps + 1)),
        "quantiles": [qs[0], 0.5, qs[1]],
        "init": {k: getattr(init, k) for k in INIT_KEYS},
        "log10_spectral_norm": _bands(spec, qs),
        "log10_frobenius_norm": _bands(_stack(r.log10_frobenius_norm for r in res), qs),
        "log10_spectral_norm_hidden": _bands(_stack(r.log10_spectral_norm_hidden for r in res), qs),
        "paths": {
            p: _bands(_stack(r.paths[p]["log10_spectral_norm"] for r in res), qs)
            for p in (res[0].paths or {})
        },
        "log10_singular_values": {
            str(lag): np.concatenate([r.log10_singular_values[lag] for r in res]).tolist()
            for lag in sorted(res[0].log10_singular_values or {})
        },
        "lyapunov_exponents": (
            np.concatenate([r.lyapunov_exponents for r in res]).tolist()
            if res[0].lyapunov_exponents is not None
            else []
        ),
        "decay_rate": {
            "median": float(rq[1]),
            lo: float(rq[0]),
            hi: float(rq[2]),
            "window": [k0, k1],
            "units": "decades per step",
        },
        "pascanu": _pascanu(cell, runs),
        "meanfield": _meanfield(config, cell, init, runs),
    }
    if res[0].log10_gradient_norm is not None:
        out["log10_gradient_norm"] = _bands(_stack(r.log10_gradient_norm for r in res), qs)
    return out


def _pascanu(
    cell: Any, runs: list[tuple[Any, dict[str, np.ndarray], np.ndarray]]
) -> dict[str, Any] | None:
    """The Pascanu bound per run (median over runs) and whether every run stays below it."""
    from .bounds import pascanu_log10_bound

    bounds, holds = [], True
    for result, params, _ in runs:
        try:
            b = np.asarray(pascanu_log10_bound(cell, params, result.lags), dtype=float)
        except UsageError:
            return None
        spec = np.asarray(result.log10_spectral_norm, dtype=float)
        holds = holds and bool(np.all(spec <= b[:, None] + 1e-9))
        bounds.append(np.repeat(b[:, None], spec.shape[1], axis=1))
    median = np.median(np.concatenate(bounds, axis=1), axis=1)
    return {"log10_bound": median.tolist(), "holds": holds}


def _meanfield(
    config: ExperimentConfig,
    cell: Any,
    init: Init,
    runs: list[tuple[Any, dict[str, np.ndarray], np.ndarray]],
) -> dict[str, Any] | None:
    """The mean-field slope for the tanh RNN with Gaussian weights, else None."""
    from ..cells import CATALOGUE
    from .meanfield import predicted_log10_slope, tanh_fixed_point

    if cell != CATALOGUE["rnn"] or init.scheme != "gaussian" or init.spectral_radius is not None:
        return None
    kind = config.inputs.kind
    if kind == "gaussian":
        input_var = config.inputs.scale**2
    elif kind == "constant":
        input_var = config.inputs.value**2
    elif kind == "zeros":
        input_var = 0.0
    else:  # a file: the empirical second moment of the inputs
        input_var = float(np.mean([np.mean(x**2) for _, _, x in runs]))
    q_star, chi = tanh_fixed_point(init.sigma_w, init.sigma_u, init.sigma_b, input_var)
    slope = predicted_log10_slope(init.sigma_w, init.sigma_u, init.sigma_b, input_var)
    return {"predicted_slope": float(slope), "chi": float(chi), "q_star": float(q_star)}


# ---- the result ------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """Per-cell summaries of an experiment, with the config and seeds that made them.

    ``timing`` is measured, not computed; :meth:`comparable` leaves it out.
    """

    name: str
    config: dict[str, Any]
    seeds: list[int]
    cells: dict[str, dict[str, Any]]
    gradflow_version: str = __version__
    timing: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "experiment",
            "name": self.name,
            "config": self.config,
            "gradflow_version": self.gradflow_version,
            "seeds": list(self.seeds),
            "timing": dict(self.timing),
            "cells": self.cells,
        }

    def comparable(self) -> dict[str, Any]:
        """:meth:`to_dict` without ``timing``: equal whenever the config is equal."""
        out = self.to_dict()
        del out["timing"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentResult:
        if not isinstance(data, Mapping) or data.get("kind") != "experiment":
            raise UsageError('not an experiment result (expected "kind": "experiment")')
        try:
            return cls(
                name=str(data["name"]),
                config=dict(data["config"]),
                seeds=[int(s) for s in data["seeds"]],
                cells=dict(data["cells"]),
                gradflow_version=str(data.get("gradflow_version", "unknown")),
                timing=dict(data.get("timing", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not an experiment result: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically (strict JSON, sorted keys)."""
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExperimentResult:
        return cls.from_dict(load_json(path))

    def table(self) -> str:
        """A short text table per cell: the decay rate (median and band), the norm at lag T,
        and the mean-field slope where it applies."""
        mf = any(s.get("meanfield") for s in self.cells.values())
        head = f"{'cell':<18} {'decay rate':>10} {'band':>20} {'log10 norm @ T':>15}"
        head += f" {'mean field':>11}" if mf else ""
        lines = [head, "-" * len(head)]
        for name, s in self.cells.items():
            r = s["decay_rate"]
            lo, _, hi = band_names(tuple(s["quantiles"][::2]))
            band = f"[{_fmt(r[lo])}, {_fmt(r[hi])}]"
            final = s["log10_spectral_norm"]["median"][-1]
            line = f"{name:<18} {_fmt(r['median']):>10} {band:>20} {_fmt(final):>15}"
            if mf:
                pred = s["meanfield"]["predicted_slope"] if s.get("meanfield") else None
                line += f" {_fmt(pred):>11}"
            lines.append(line)
        return "\n".join(lines) + "\n(decay rate in decades per step; band: quantiles over runs)"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4g}"
