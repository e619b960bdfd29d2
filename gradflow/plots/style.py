"""Figure style as data: venue sizes and fonts, palettes, markers and line styles.

:func:`style` returns an rcParams dict (a tueplots venue bundle for fonts, the venue's own text
and column widths from :data:`VENUE_WIDTHS`, STIX fonts, a colour-blind-safe palette and
deterministic SVG settings), applied with ``matplotlib.rc_context`` and never globally.

:func:`series_style` gives series ``i`` a colour, a marker and a line style such that any two
of the first 77 series differ in colour and marker, and any two of the first 28 also differ in
marker or line style alone (what survives greyscale printing).

References:
    [tueplots] Kraemer et al., tueplots: figure sizes and fonts for ML venues (2022).
    [okabeito2008] Okabe and Ito, Color Universal Design (2008).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import matplotlib as mpl
import matplotlib.colors
from cycler import cycler

from ..errors import UsageError

#: Text and column widths in inches, from the venues' LaTeX style files: ``(text width,
#: column width)``; the column width is None for one-column venues. NeurIPS 2025/2026
#: (``neurips_2025.sty``: ``\textwidth 5.5in``), ICML 2025/2026 (``icml2025.sty``:
#: ``\textwidth 6.75in``, two columns of 3.25in with a 0.25in gap), ICLR 2025/2026
#: (``iclr2025_conference.sty``: ``\textwidth 5.5in``). The 2026 files keep the 2025 sizes.
VENUE_WIDTHS: dict[str, tuple[float, float | None]] = {
    "neurips2025": (5.5, None),
    "neurips2026": (5.5, None),
    "icml2025": (6.75, 3.25),
    "icml2026": (6.75, 3.25),
    "iclr2025": (5.5, None),
    "iclr2026": (5.5, None),
}
#: The tueplots bundle that gives each table venue its fonts and font sizes.
_FONT_BUNDLES = {"neurips": "neurips2024", "icml": "icml2024", "iclr": "iclr2024"}

#: Short venue names and the venue (a :data:`VENUE_WIDTHS` key or a tueplots bundle) each uses.
VENUES = {
    "neurips": "neurips2025",
    "icml": "icml2025",
    "iclr": "iclr2025",
    "aistats": "aistats2025",
    "tmlr": "tmlr2023",
    "jmlr": "jmlr2001",
    "colm": "colm2026",
}
FORMATS = ("pdf", "svg", "png")
SVG_HASHSALT = "gradflow"
DPI = 200
# 11 markers against 7 colours: (colour, marker) pairs stay distinct for 77 series; series
# that share a colour (0 and 7, 1 and 8 ...) get markers of clearly different shapes.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
#: Line styles, one per round of the palette: series 0-6 solid, 7-13 dashed, ...
DASHES = ("-", (0, (4.0, 1.5)), (0, (1.0, 1.2)), (0, (5.0, 1.5, 1.0, 1.5)))
QUANTITIES = {
    "log10_spectral_norm": r"$\log_{10}\|\partial s_T/\partial s_{T-k}\|_2$",
    "log10_frobenius_norm": r"$\log_{10}\|\partial s_T/\partial s_{T-k}\|_F$",
    "log10_spectral_norm_hidden": r"$\log_{10}\|\partial h_T/\partial h_{T-k}\|_2$",
    "log10_gradient_norm": r"$\log_{10}\|\partial L/\partial s_{T-k}\|_2$",
}
PATH_STYLES = {"full": "-", "additive": "--", "multiplicative": "-."}
# Okabe-Ito reordered, black last; its yellow (contrast 1.3:1 on white) is left out.
_OKABE_ITO_ORDER = (5, 6, 3, 1, 7, 2, 0)
# petroff10 without its yellow (index 2) and its light grey (index 7).
_PETROFF_ORDER = (0, 1, 3, 4, 5, 6, 8, 9)


class SeriesStyle(NamedTuple):
    """How one series is drawn: colour, marker and line style."""

    colour: tuple[float, ...]
    marker: str
    linestyle: Any


def palette() -> list[tuple[float, ...]]:
    """The colour-blind-safe colours: Okabe-Ito (matplotlib >= 3.11) or petroff10, without
    yellow (too faint on white)."""
    seqs = mpl.color_sequences
    if "okabe_ito" in seqs:
        colours = seqs["okabe_ito"]
        return [mpl.colors.to_rgb(colours[i]) for i in _OKABE_ITO_ORDER]
    return [mpl.colors.to_rgb(seqs["petroff10"][i]) for i in _PETROFF_ORDER]


def series_style(i: int) -> SeriesStyle:
    """The style of series ``i`` (0-based): colour ``i mod 7``, marker ``i mod 11``, line style
    ``(i div 7) mod 4``.

    Colour and marker together are unique for ``i < 77`` (7 and 11 are coprime); marker and
    line style together, what a greyscale print keeps, are unique for ``i < 28``.
    """
    colours = palette()
    k = len(colours)
    return SeriesStyle(colours[i % k], MARKERS[i % len(MARKERS)], DASHES[(i // k) % len(DASHES)])


def style(
    venue: str = "neurips",
    column: str = "half",
    nrows: int = 1,
    ncols: int = 1,
    usetex: bool = False,
) -> dict[str, Any]:
    """rcParams for one venue: sizes from tueplots, STIX fonts, deterministic vector output.

    Args:
        venue: a short name in :data:`VENUES` (``neurips``, ``icml``, ``iclr`` ...), a key of
            :data:`VENUE_WIDTHS` (``icml2026``) or a tueplots bundle name (``neurips2023``).
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
    widths = VENUE_WIDTHS.get(name)
    if widths is not None:
        name = _FONT_BUNDLES[name.rstrip("0123456789")]
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
    if widths is not None:  # the venue's own width; tueplots' height-to-width ratio
        text, col = widths
        width = (col if col is not None else text / 2) if column == "half" else text
        w0, h0 = rc["figure.figsize"]
        rc["figure.figsize"] = (width, h0 * width / w0)
    rc.update(
        {
            "text.usetex": usetex,
            "axes.prop_cycle": cycler(color=palette()),
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
