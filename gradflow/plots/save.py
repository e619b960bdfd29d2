"""Saving figures: byte-identical PDF, SVG and PNG, rendered to bytes and written atomically."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
from matplotlib.figure import Figure

from ..atomic import atomic_open
from ..errors import UsageError
from .style import DPI, FORMATS, SVG_HASHSALT


def render_figure(
    fig: Figure, formats: Sequence[str] = FORMATS, dpi: int = DPI
) -> dict[str, bytes]:
    """The bytes of ``fig`` in each format, reproducibly (what :func:`save_figure` writes).

    Dates are dropped from the metadata, the SVG id salt is fixed and text becomes paths, so
    the same figure gives the same bytes on every run and machine with the same matplotlib.
    Nothing touches the file system: a worker process can render and its parent write.

    Returns:
        The bytes of each format, in the order of ``formats``.

    Raises:
        UsageError: an unknown format.
    """
    for fmt in formats:
        if fmt not in _METADATA:
            raise UsageError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    rc = {"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path", "pdf.fonttype": 42}
    out: dict[str, bytes] = {}
    with _frozen_layout(fig):
        for fmt in formats:
            buf = io.BytesIO()
            with mpl.rc_context(cast(Any, rc)):
                fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
            out[fmt] = compact_svg(buf.getvalue()) if fmt == "svg" else buf.getvalue()
    return out


def write_figure(files: Mapping[str, bytes], path_stem: str | os.PathLike[str]) -> list[Path]:
    """Write ``path_stem.<fmt>`` for each ``fmt: bytes`` of ``files``, each atomically.

    Returns:
        The paths written.
    """
    stem = Path(path_stem)
    written = []
    for fmt, data in files.items():
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_open(path, "wb", parents=True) as fh:
            fh.write(data)
        written.append(path)
    return written


def save_figure(
    fig: Figure, path_stem: str | os.PathLike[str], formats: Sequence[str] = FORMATS, dpi: int = DPI
) -> list[Path]:
    """Write ``fig`` as ``path_stem.<fmt>`` for each format, atomically and reproducibly
    (:func:`render_figure`, then :func:`write_figure`).

    Returns:
        The paths written.
    """
    return write_figure(render_figure(fig, formats, dpi), path_stem)


#: Metadata of each format: no dates, so that the bytes do not depend on the day.
_METADATA: dict[str, dict[str, Any]] = {
    "pdf": {"Creator": "gradflow", "Producer": "gradflow", "CreationDate": None, "ModDate": None},
    "svg": {"Creator": "gradflow", "Date": None},
    "png": {"Software": "gradflow"},
}


@contextlib.contextmanager
def _frozen_layout(fig: Figure) -> Iterator[None]:
    """Lay the figure out once, round the axes positions to 1e-6 of the figure, and keep
    them for every format.

    Constrained layout is iterative: it starts from the current positions, so a figure drawn
    before (on screen, or as PNG at another dpi) would otherwise come out a few ulp apart,
    and SVG clip-path ids, hashes of those positions, would differ.

    The layout engine runs alone, followed by what a draw does first to each axes (its
    locator, as for a colour bar, and its aspect), instead of a whole draw without output:
    the same positions (every report figure checked) for less than half the CPU time. A
    figure with subfigures still gets the whole draw.
    """
    engine = fig.get_layout_engine()
    if engine is None or not engine.__class__.__name__.startswith(("Constrained", "Tight")):
        yield
        return
    if fig.subfigs:
        fig.draw_without_rendering()
    else:
        engine.execute(fig)
        renderer = fig._get_renderer()  # type: ignore[attr-defined]  # what Figure.draw uses
        for ax in fig.axes:
            locator = ax.get_axes_locator()
            ax.apply_aspect(locator(ax, renderer) if locator is not None else None)
    for ax in fig.axes:
        x0, y0, w, h = (round(float(v), 6) for v in ax.get_position().bounds)
        ax.set_position((x0, y0, w, h), which="both")
    # No engine at all (``None``, not "none"'s placeholder): with any engine ``savefig`` draws
    # the whole figure once more, without output, before each format's draw.
    with mpl.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


_SVG_ATTR = re.compile(rb'\s(d|x|y)="([^"]*)"')
_SVG_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _round(token: str) -> str:
    if "." not in token or "e" in token.lower():
        return token
    text = f"{float(token):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def compact_svg(svg: bytes) -> bytes:
    """Round path and marker coordinates of matplotlib SVG to 0.01 pt (3.5 micrometres) and
    drop ``L`` commands SVG implies (a line-to after a move-to or line-to).

    matplotlib writes six decimals; two are below what any screen or printer resolves. The
    file gets about a third smaller; transforms (which scale glyphs) are left exact.
    """

    def attribute(m: re.Match[bytes]) -> bytes:
        name, value = m.group(1), m.group(2).decode("ascii")
        if name != b"d":
            return b' %s="%s"' % (name, _round(value).encode("ascii"))
        out: list[str] = []
        last = ""
        for tok in _SVG_TOKEN.findall(value):
            if tok.isalpha():
                if tok == "L" and last in ("M", "L"):
                    last = "L"
                    continue
                last = tok
                out.append(tok)
            else:
                out.append(_round(tok))
        return b' d="%s"' % " ".join(out).encode("ascii")

    return _SVG_ATTR.sub(attribute, svg)
