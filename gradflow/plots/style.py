"""Figure style as data: venue sizes and fonts, palettes, markers and line styles.

:func:`style` returns an rcParams dict (a tueplots venue bundle with STIX fonts, a colour-blind
safe palette and deterministic SVG settings), applied with ``matplotlib.rc_context`` and never
globally.

References:
    [tueplots] Kraemer et al., tueplots: figure sizes and fonts for ML venues (2022).
    [okabeito2008] Okabe and Ito, Color Universal Design (2008).
"""

from __future__ import annotations

import inspect
from typing import Any

import matplotlib as mpl
import matplotlib.colors
from cycler import cycler

from ..errors import UsageError

#: Short venue names and the tueplots bundle each one uses.
VENUES = {
    "neurips": "neurips2024",
    "icml": "icml2024",
    "iclr": "iclr2024",
    "aistats": "aistats2025",
    "tmlr": "tmlr2023",
    "jmlr": "jmlr2001",
    "colm": "colm2026",
}
FORMATS = ("pdf", "svg", "png")
SVG_HASHSALT = "gradflow"
DPI = 200
# 11 markers against 8 colours: pairs stay distinct for 88 cells; the cells that share a
# colour (0 and 8, 1 and 9, 2 and 10) get markers of clearly different shapes.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
QUANTITIES = {
    "log10_spectral_norm": r"$\log_{10}\|\partial s_T/\partial s_{T-k}\|_2$",
    "log10_frobenius_norm": r"$\log_{10}\|\partial s_T/\partial s_{T-k}\|_F$",
    "log10_spectral_norm_hidden": r"$\log_{10}\|\partial h_T/\partial h_{T-k}\|_2$",
    "log10_gradient_norm": r"$\log_{10}\|\partial L/\partial s_{T-k}\|_2$",
}
PATH_STYLES = {"full": "-", "additive": "--", "multiplicative": "-."}
# Okabe-Ito reordered so that black and yellow (weak on white) come last.
_OKABE_ITO_ORDER = (5, 6, 3, 1, 7, 2, 0, 4)


def palette() -> list[tuple[float, ...]]:
    """The colour-blind-safe colour sequence: Okabe-Ito (matplotlib >= 3.11) or petroff10."""
    seqs = mpl.color_sequences
    if "okabe_ito" in seqs:
        colours = seqs["okabe_ito"]
        return [mpl.colors.to_rgb(colours[i]) for i in _OKABE_ITO_ORDER]
    return [mpl.colors.to_rgb(c) for c in seqs["petroff10"]]


def style(
    venue: str = "neurips",
    column: str = "half",
    nrows: int = 1,
    ncols: int = 1,
    usetex: bool = False,
) -> dict[str, Any]:
    """rcParams for one venue: sizes from tueplots, STIX fonts, deterministic vector output.

    Args:
        venue: a short name in :data:`VENUES` (``neurips``, ``icml``, ``iclr`` ...) or a
            tueplots bundle name (``neurips2023``).
        column: ``"half"`` or ``"full"``: a column of a two-column venue, or half or all of the
            text width of a one-column venue.
        nrows: rows of panels, for the figure height.
        ncols: columns of panels.
        usetex: typeset with LaTeX (needs a ``latex`` binary); off by default.

    Returns:
        A dict for ``matplotlib.rc_context``.

    Raises:
        UsageError: unknown venue or column.

    References:
        [tueplots] Kraemer et al., tueplots (2022).
    """
    from tueplots import bundles

    name = VENUES.get(venue, venue)
    bundle = getattr(bundles, name, None) if name.replace("_", "").isalnum() else None
    if bundle is None or name.startswith("_") or not callable(bundle):
        raise UsageError(f"unknown venue {venue!r}; choose one of {', '.join(VENUES)}")
    if column not in ("half", "full"):
        raise UsageError(f"unknown column {column!r}; choose 'half' or 'full'")
    params = inspect.signature(bundle).parameters
    kwargs: dict[str, Any] = {"nrows": nrows, "ncols": ncols}
    if "column" in params:
        kwargs["column"] = column
    elif "rel_width" in params:
        kwargs["rel_width"] = 0.5 if column == "half" else 1.0
    if "usetex" in params:
        kwargs["usetex"] = usetex
    rc: dict[str, Any] = dict(bundle(**kwargs))
    colours = palette()
    rc.update(
        {
            "text.usetex": usetex,
            "axes.prop_cycle": cycler(color=colours),
            "svg.hashsalt": SVG_HASHSALT,
            "svg.fonttype": "path",
            "pdf.fonttype": 42,
            "savefig.dpi": DPI,
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linewidth": 0.4,
            "lines.linewidth": 1.2,
            "lines.markersize": 3.5,
            "legend.frameon": False,
        }
    )
    if not usetex:
        rc.update(
            {
                "font.family": "STIXGeneral",
                "font.serif": ["STIXGeneral"],
                "mathtext.fontset": "stix",
            }
        )
    return rc
