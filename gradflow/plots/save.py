"""Saving figures: atomic, byte-identical files in PDF, SVG and PNG."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
from matplotlib.figure import Figure

from ..atomic import atomic_open
from ..errors import UsageError
from .style import DPI, FORMATS, SVG_HASHSALT


def save_figure(
    fig: Figure, path_stem: str | os.PathLike[str], formats: Sequence[str] = FORMATS, dpi: int = DPI
) -> list[Path]:
    """Write ``fig`` as ``path_stem.<fmt>`` for each format, atomically and reproducibly.

    Dates are dropped from the metadata, the SVG id salt is fixed and text becomes paths, so
    the same figure gives the same bytes on every run and machine with the same matplotlib.

    Returns:
        The paths written.
    """
    stem = Path(path_stem)
    metadata: dict[str, dict[str, Any]] = {
        "pdf": {
            "Creator": "gradflow",
            "Producer": "gradflow",
            "CreationDate": None,
            "ModDate": None,
        },
        "svg": {"Creator": "gradflow", "Date": None},
        "png": {"Software": "gradflow"},
    }
    written = []
    rc = {"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path", "pdf.fonttype": 42}
    for fmt in formats:
        if fmt not in metadata:
            raise UsageError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    with _frozen_layout(fig):
        for fmt in formats:
            written.append(_save_one(fig, stem, fmt, dpi, metadata[fmt], rc))
    return written


@contextlib.contextmanager
def _frozen_layout(fig: Figure) -> Iterator[None]:
    """Lay the figure out once, round the axes positions to 1e-6 of the figure, and keep
    them for every format.

    Constrained layout is iterative: it starts from the current positions, so a figure drawn
    before (on screen, or as PNG at another dpi) would otherwise come out a few ulp apart,
    and SVG clip-path ids, hashes of those positions, would differ.
    """
    engine = fig.get_layout_engine()
    if engine is None or not engine.__class__.__name__.startswith(("Constrained", "Tight")):
        yield
        return
    fig.draw_without_rendering()
    for ax in fig.axes:
        x0, y0, w, h = (round(float(v), 6) for v in ax.get_position().bounds)
        ax.set_position((x0, y0, w, h), which="both")
    fig.set_layout_engine("none")
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


def _save_one(
    fig: Figure, stem: Path, fmt: str, dpi: int, metadata: dict[str, Any], rc: dict[str, Any]
) -> Path:
    path = stem.with_name(f"{stem.name}.{fmt}")
    with mpl.rc_context(cast(Any, rc)), atomic_open(path, "wb", parents=True) as fh:
        if fmt == "svg":
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
            fh.write(compact_svg(buf.getvalue()))
        else:
            fig.savefig(fh, format=fmt, dpi=dpi, metadata=metadata)
    return path


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
