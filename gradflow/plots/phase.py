"""Phase diagrams: the decay rate over two sweep axes, centred at zero, regimes labelled."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import CenteredNorm

from ..errors import UsageError
from ..results import SweepResult
from .curves import _axes
from .data import load_result


def _axis_positions(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """Centres, cell edges and scale (``linear``, ``log`` or ``category``) of one sweep axis."""
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        v = None
    if v is None or not np.all(np.isfinite(v)):
        pos = np.arange(len(values), dtype=float)
        return pos, np.arange(len(values) + 1) - 0.5, "category"
    if len(v) == 1:
        return v, np.array([v[0] - 0.5, v[0] + 0.5]), "linear"
    scale = "linear"
    if np.all(v > 0) and len(v) > 2:
        dl, dv = np.diff(np.log(v)), np.diff(v)
        if np.allclose(dl, dl[0], rtol=1e-3) and not np.allclose(dv, dv[0], rtol=1e-3):
            scale = "log"
    t = np.log(v) if scale == "log" else v
    mids = (t[1:] + t[:-1]) / 2
    edges = np.concatenate([[t[0] - (mids[0] - t[0])], mids, [t[-1] + (t[-1] - mids[-1])]])
    return v, (np.exp(edges) if scale == "log" else edges), scale


def plot_phase_diagram(
    sweep: Any,
    ax: Axes | None = None,
    *,
    x: str | None = None,
    y: str | None = None,
    value: str = "decay_rate",
    cmap: str = "RdBu_r",
    colorbar: bool = True,
) -> Axes:
    """Decay rate over two sweep axes: diverging colours centred at 0, a black line where the
    rate crosses 0 (the contour on two numeric axes; a segment per row where one axis is
    categorical) and each regime labelled. Further axes are reduced by the median.

    Args:
        sweep: a sweep result (dict or JSON path).
        ax: the Axes (default: the current Axes).
        x: the axis along x (default: ``sigma_w`` or ``spectral_radius`` when swept, else the
            first in alphabetical order).
        y: the axis along y (default: the next; a one-axis sweep draws one row).
        value: the point field to colour by.
        cmap: a diverging colormap (ColorBrewer RdBu is colour-blind safe).
        colorbar: add a colour bar.

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    res = load_result(sweep)
    if not isinstance(res, SweepResult):
        raise UsageError("a phase diagram is drawn from a sweep result")
    names = sorted(res.axes, key=_axis_rank)
    x = x or names[0]
    y = y or (names[1] if len(names) > 1 and names[1] != x else None)
    for a in (x, y):
        if a is not None and a not in res.axes:
            raise UsageError(f"sweep has no axis {a!r}; axes are {', '.join(names)}")
    xs = list(res.axes[x])
    ys = list(res.axes[y]) if y else [None]
    cells: list[list[list[float]]] = [[[] for _ in xs] for _ in ys]
    where: dict[str, list[tuple[int, int]]] = {}
    for p in res.points:
        i, j = _index(ys, p.params.get(y)) if y else 0, _index(xs, p.params.get(x))
        if i is None or j is None:
            continue
        val = getattr(p, value, None)
        if not isinstance(val, (int, float, type(None))):
            raise UsageError(f"sweep points have no numeric field {value!r}")
        cells[i][j].append(np.nan if val is None else float(val))
        where.setdefault(p.regime, []).append((i, j))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        Z = np.array([[np.nanmedian(c) if c else np.nan for c in row] for row in cells])
    xc, xe, xscale = _axis_positions(xs)
    yc, ye, yscale = _axis_positions(ys) if y else (np.zeros(1), np.array([-0.5, 0.5]), "none")
    finite = Z[np.isfinite(Z)]
    half = float(np.max(np.abs(finite))) if finite.size and np.any(finite) else 1.0
    mesh = ax.pcolormesh(
        xe,
        ye,
        np.ma.masked_invalid(Z),
        cmap=cmap,
        norm=CenteredNorm(0.0, halfrange=half),
        shading="flat",
    )
    ax.set_facecolor("0.85")  # cells without a finite rate (overflow) show grey
    if (
        y
        and Z.shape[0] > 1
        and Z.shape[1] > 1
        and finite.size
        and finite.min() < 0 < finite.max()
        and "category" not in (xscale, yscale)
    ):
        ax.contour(xc, yc, Z, levels=[0.0], colors="k", linewidths=1.0)
    elif xscale != "category":  # one row per category: mark each row's zero crossings
        _row_crossings(ax, Z, xc, ye, xscale)
    _label_regimes(ax, where, xc, yc, xscale, yscale, Z, half)
    for scale, axis_values, setter, ticks in (
        (xscale, xs, ax.set_xscale, ax.set_xticks),
        (yscale, ys, ax.set_yscale, ax.set_yticks),
    ):
        if scale == "log":
            setter("log")
        elif scale == "category":
            ticks(range(len(axis_values)), [str(v) for v in axis_values])
        elif scale == "none":
            ticks([])
    ax.set_xlabel(_axis_label(x))
    if y:
        ax.set_ylabel(_axis_label(y))
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(
            mesh,
            ax=ax,
            label=f"{value.replace('_', ' ')} (decades/step)"
            if value == "decay_rate"
            else value.replace("_", " "),
        )
    return ax


def _row_crossings(ax: Axes, Z: np.ndarray, xc: np.ndarray, ye: np.ndarray, xscale: str) -> None:
    """A black vertical segment across each row where its rate changes sign, placed by linear
    interpolation between the two grid points (in log x on a log axis)."""
    t = np.log(xc) if xscale == "log" else np.asarray(xc, dtype=float)
    for i, row in enumerate(Z):
        for j in range(len(row) - 1):
            a, b = row[j], row[j + 1]
            if not (np.isfinite(a) and np.isfinite(b)) or (a < 0) == (b < 0) or a == b:
                continue
            tz = t[j] + (t[j + 1] - t[j]) * (-a) / (b - a)
            xz = float(np.exp(tz)) if xscale == "log" else float(tz)
            ax.plot([xz, xz], [ye[i], ye[i + 1]], color="k", linewidth=1.2)


def _label_regimes(
    ax: Axes,
    where: dict[str, list[tuple[int, int]]],
    xc: np.ndarray,
    yc: np.ndarray,
    xscale: str,
    yscale: str,
    Z: np.ndarray,
    half: float,
) -> None:
    """A letter per grid cell (v, p, e: the regime most of its points are in) on small grids;
    one word at the centre of each regime's points on large ones."""
    regimes = {r: ij for r, ij in where.items() if r}
    if Z.size > 150:
        for regime, ij in sorted(regimes.items()):
            ax.text(
                _centre([xc[j] for _, j in ij], xscale),
                _centre([yc[i] for i, _ in ij], yscale),
                regime,
                ha="center",
                va="center",
                fontsize="small",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75},
            )
        return
    votes: dict[tuple[int, int], dict[str, int]] = {}
    for regime, ij in regimes.items():
        for key in ij:
            votes.setdefault(key, {}).setdefault(regime, 0)
            votes[key][regime] += 1
    for (i, j), count in sorted(votes.items()):
        regime = max(sorted(count), key=lambda r: count[r])
        dark = np.isfinite(Z[i, j]) and abs(Z[i, j]) > 0.6 * half
        ax.text(
            xc[j],
            yc[i],
            regime[0],
            ha="center",
            va="center",
            fontsize="small",
            color="white" if dark else "black",
        )
    ax.set_title("  ".join(f"{r[0]}: {r}" for r in sorted(regimes)), fontsize="small")


def _axis_rank(name: str) -> tuple[int, str]:
    short = name.split(".")[-1]
    return (_PRIMARY.index(short) if short in _PRIMARY else len(_PRIMARY), name)


# Sweep axes in the order they go on x, then y (JSON sorts keys, so order is not kept).
_PRIMARY = (
    "sigma_w",
    "spectral_radius",
    "forget_bias",
    "chrono_tmax",
    "update_bias",
    "sigma_u",
    "sigma_b",
    "hidden_size",
    "steps",
    "cell",
)
_AXIS_LABELS = {
    "sigma_w": r"$\sigma_w$",
    "sigma_u": r"$\sigma_u$",
    "sigma_b": r"$\sigma_b$",
    "spectral_radius": r"spectral radius $\rho$",
    "forget_bias": r"forget bias $b_f$",
    "update_bias": r"update bias $b_z$",
    "hidden_size": r"hidden size $n$",
}


def _axis_label(name: str) -> str:
    short = name.split(".")[-1]
    return _AXIS_LABELS.get(short, short.replace("_", " "))


def _index(values: list[Any], v: Any) -> int | None:
    for i, u in enumerate(values):
        if u == v or (
            isinstance(u, (int, float))
            and isinstance(v, (int, float))
            and math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12)
        ):
            return i
    return None


def _centre(values: list[float], scale: str) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.exp(np.mean(np.log(arr)))) if scale == "log" else float(np.mean(arr))
