r"""Build a report folder from saved results: HTML, Markdown, figures and data, all or nothing.

:func:`build_report` draws every figure from the results (never recomputing them), writes
``index.html``, ``report.md``, ``run.json`` (timings, the one file that differs between two runs
with one seed), ``figures/`` (SVG, PDF, PNG) and ``data/`` (the result JSON and
CSV tables) into a temporary sibling folder, and renames it into place only when everything is
written. An existing report is replaced only then; an interrupted or failed build leaves it
untouched and removes its own temporary folder.

The one moment a reader can miss the folder is between the two renames that swap the old
report out and the new one in (POSIX has no atomic exchange of directories in the standard
library); a reader never sees a partial report.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import plots
from .._version import __version__
from ..atomic import atomic_write
from ..errors import OutputError, UsageError
from ..results import ClaimsResult, ExperimentResult, Result, SweepResult, dumps
from .html import card_math, render_html, slug, svg_data_uri
from .markdown import render_markdown


@dataclass(frozen=True)
class ReportFigure:
    """One figure: file stem, title, caption, and a function drawing it on a Figure."""

    stem: str
    title: str
    caption: str
    draw: Callable[[Figure], object]
    panels: int = 1


def grid(panels: int) -> tuple[int, int]:
    """Rows and columns of a small-multiples figure: at most four panels a row."""
    ncols = min(panels, 4)
    return -(-panels // ncols), ncols


def _small_multiples(
    names: list[str], draw: Callable[[Any, str, bool], Any]
) -> Callable[[Figure], None]:
    """A drawer with one panel per name; axis labels on the outer panels only."""

    def drawer(fig: Figure) -> None:
        nrows, ncols = grid(len(names))
        # Shared axes: panels compare at a glance, and inner panels carry no tick labels.
        axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
        limits = []
        for k, ax in enumerate(axes):
            if k >= len(names):
                ax.set_visible(False)
                continue
            draw(ax, names[k], k == 0)
            limits.append(ax.get_ylim())  # each panel sets the shared limits to its own
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            left, bottom = k % ncols == 0, k + ncols >= len(names)
            ax.tick_params(labelleft=left, labelbottom=bottom)
            if not left:
                ax.set_ylabel("")
            if not bottom:
                ax.set_xlabel("")
        axes[0].set_ylim(min(lo for lo, _ in limits), max(hi for _, hi in limits))

    return drawer


def _typed(result: Any, cls: type[Result]) -> Any:
    if result is None:
        return None
    res = plots.load_result(result)
    if not isinstance(res, cls):
        raise UsageError(f"expected a {cls.kind} result, got {res.kind!r}")
    # Exactly what the data files hold: strict JSON, non-finite numbers as null.
    return cls.from_dict(json.loads(dumps(res.to_dict())), run=res.run)


def report_figures(experiment: ExperimentResult, sweep: SweepResult | None) -> list[ReportFigure]:
    """The figures of a report, in order, for the data the results carry."""
    cells = experiment.cells
    first = next(iter(cells.values()))
    band = first.log10_spectral_norm.percent
    runs = first.runs
    overlays = []
    if any(c.pascanu for c in cells.values()):
        overlays.append("dashed: the Pascanu bound (for the cells it applies to)")
    if any(c.meanfield for c in cells.values()):
        overlays.append("dotted: the mean-field slope, drawn from the start of the fitted window")
    figs = [
        ReportFigure(
            "norms",
            "Gradient flow through time",
            f"log10 of the spectral norm of the Jacobian product against the lag k: median over "
            f"{runs} runs per cell (line) and the {band} band"
            + ("; " + "; ".join(overlays) if overlays else "")
            + ". Curves are thinned for "
            "display to about 25 points per inch (the band is the envelope of the lags left "
            "out); the data files hold every lag.",
            lambda f: plots.plot_norms(experiment, f.add_subplot()),
        )
    ]
    if any(c.meanfield for c in cells.values()) and plots.norm_bands(
        experiment, "log10_frobenius_norm"
    ):
        figs.append(
            ReportFigure(
                "norms_frobenius",
                "Frobenius norm",
                f"As Figure 1 for the Frobenius norm, the quantity mean-field theory predicts; "
                f"{band} band.",
                lambda f: plots.plot_norms(
                    experiment, f.add_subplot(), quantity="log10_frobenius_norm"
                ),
            )
        )
    additive = plots.norm_bands(experiment, path="additive")
    # Cells whose additive path carries anything: for the RNN it is zero (log10 = -inf).
    path_cells = [
        c
        for c in plots.cell_order(cells)
        if c in additive and np.isfinite(additive[c].median[1:]).any()
    ]
    if path_cells:
        figs.append(
            ReportFigure(
                "paths",
                "Additive against multiplicative path",
                f"The full product (solid, median and {band} band) against the product of the "
                "additive path alone (dashed, no weight matrix) and of the multiplicative path "
                "alone (dash-dotted), medians; one panel per cell with an additive path.",
                _small_multiples(
                    path_cells,
                    lambda ax, c, first: plots.plot_paths(experiment, ax, cells=[c], legend=first),
                ),
                panels=len(path_cells),
            )
        )
    figs.append(
        ReportFigure(
            "decay_rates",
            "Decay rates",
            f"Fitted slope of the median log10 norm, decades per step, with its {band} interval "
            "over runs.",
            lambda f: plots.plot_decay_rates(experiment, f.add_subplot()),
        )
    )
    sv_cells = [
        c
        for c in plots.cell_order(cells)
        if any(
            np.isfinite(np.asarray(v, dtype=float)).any()
            for v in cells[c].log10_singular_values.values()
        )
    ]
    if sv_cells:
        figs.append(
            ReportFigure(
                "singular_values",
                "Singular values of the product",
                f"log10 singular values of the Jacobian product at several lags (median and {band} "
                "band over runs), one panel per cell.",
                _small_multiples(
                    sv_cells,
                    lambda ax, c, first: plots.plot_singular_values(
                        experiment, ax, cell=c, legend=first
                    ),
                ),
                panels=len(sv_cells),
            )
        )
    if any(c.lyapunov_exponents is not None for c in cells.values()):
        figs.append(
            ReportFigure(
                "lyapunov",
                "Lyapunov spectra",
                f"Leading Lyapunov exponents of the state dynamics, nats per step (median and "
                f"{band} band over runs). Below zero, perturbations and gradients shrink.",
                lambda f: plots.plot_lyapunov(experiment, f.add_subplot()),
            )
        )
    if sweep is not None:
        figs.append(
            ReportFigure(
                "phase_diagram",
                "Phase diagram",
                "Median decay rate over the sweep grid: blue cells vanish, red ones explode, grey "
                "ones overflowed (no finite rate); letters give each cell's regime. On numeric "
                "axes the black line is where the rate crosses zero.",
                lambda f: plots.plot_phase_diagram(sweep, f.add_subplot()),
            )
        )
    return figs


_INIT_CITATIONS = {
    "torch": "paszke2019",
    "orthogonal": "saxe2014",
    "identity": "le2015irnn",
    "forget_bias": "jozefowicz2015",
    "chrono_tmax": "tallec2018chrono",
}
_CLAIM_CITATIONS = (
    "poole2016",
    "pascanu2013",
    "hochreiter1997",
    "gers2000forget",
    "jozefowicz2015",
    "cho2014",
    "srivastava2015highway",
)


def citation_keys(
    experiment: ExperimentResult,
    sweep: SweepResult | None,
    claims: ClaimsResult | None,
    cells: Sequence[Any],
) -> list[str]:
    """The citation keys of every cell and method a report uses, each once, in order."""
    keys = [k for c in cells for k in getattr(c, "citations", ())]
    summaries = experiment.cells.values()
    if any(s.pascanu for s in summaries):
        keys.append("pascanu2013")
    if any(s.meanfield for s in summaries) or sweep is not None:
        keys.append("poole2016")
    if any(s.lyapunov_exponents is not None for s in summaries):
        keys.append("benettin1980")
    init = experiment.config.get("init") or {}
    if init.get("scheme") in _INIT_CITATIONS:
        keys.append(_INIT_CITATIONS[init["scheme"]])
    keys += [_INIT_CITATIONS[k] for k in ("forget_bias", "chrono_tmax") if init.get(k)]
    if claims is not None:
        keys += list(_CLAIM_CITATIONS)
    keys.append("okabeito2008")  # the figures' palette
    return list(dict.fromkeys(keys))


def _references(keys: Sequence[str], cells: Sequence[Any]) -> list[str]:
    """One line per reference; a user cell without citation keys contributes its text."""
    from ..citations import text
    from ..errors import GradflowError

    lines = []
    for key in keys:
        try:
            lines.append(text(key))
        except GradflowError:  # an unknown key in a user cell must not sink the report
            continue
    lines += [
        f"{c.name}: {c.reference}"
        for c in cells
        if getattr(c, "reference", "") and not getattr(c, "citations", ())
    ]
    return lines


def report_context(
    experiment: ExperimentResult,
    sweep: SweepResult | None,
    claims: ClaimsResult | None,
    figures: list[dict[str, Any]],
    data_files: list[str],
    config_source: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the HTML and Markdown templates show, as plain data.

    A cell's equations and Jacobian come from the :class:`~gradflow.results.CellCard` its
    summary carries: nothing is read from a cell file or derived again.
    """
    names = plots.cell_order(experiment.cells)
    first = experiment.cells[names[0]]
    cells, rows, cards = [], [], []
    for i, name in enumerate(names):
        s = experiment.cells[name]
        anchor = f"cell-{i + 1}-{slug(name)}"
        card = s.card
        entry: dict[str, Any] = {
            "name": name,
            "anchor": anchor,
            "missing": "" if card is not None else "the result carries no equations for it",
            "math": None,
            "latex": None,
            "description": (card.description if card else "") or "user-defined cell",
            "reference": card.reference if card else "",
            "state": list(card.state) if card else [],
            "sizes": f"n = {s.hidden_size}, d = {s.input_size}, T = {s.steps}",
        }
        if card is not None:
            cards.append(card)
            entry["math"] = card_math(card)
            entry["latex"] = {
                "equations": [tuple(tex.split(" = ", 1)) for _, tex in card.equations],
                "jacobian": [
                    (label, [tuple(tex.split(" = ", 1)) for _, tex in lines])
                    for label, lines in card.jacobian
                ],
            }
        cells.append(entry)
        rate = s.decay_rate
        rows.append(
            {
                "name": name,
                "anchor": anchor,
                "median": rate.median,
                "low": rate.low,
                "high": rate.high,
                "window": "\u2013".join(str(k) for k in rate.window),
                "final": float(s.log10_spectral_norm.median[-1]),
                "pascanu": s.pascanu.holds if s.pascanu else None,
                "meanfield": s.meanfield.predicted_slope if s.meanfield else None,
            }
        )
    configs = []
    if config_source is not None:
        configs.append((f"experiment configuration ({config_source[0]})", config_source[1], "toml"))
    configs.append(
        (
            "experiment configuration (resolved)",
            json.dumps(dict(experiment.config), indent=2, sort_keys=True),
            "json",
        )
    )
    sweep_ctx = None
    if sweep is not None:
        configs.append(
            (
                "sweep configuration",
                json.dumps(dict(sweep.config), indent=2, sort_keys=True),
                "json",
            )
        )
        counts: dict[str, int] = {}
        for p in sweep.points:
            counts[p.regime] = counts.get(p.regime, 0) + 1
        sweep_ctx = {
            "name": sweep.name,
            "n_points": len(sweep.points),
            "axes": [(a, [_short(v) for v in vals]) for a, vals in sweep.axes.items()],
            "counts": sorted(counts.items()),
            "figure": "phase_diagram" if any(f["id"] == "phase_diagram" for f in figures) else None,
        }
    claim_rows = None
    if claims is not None:
        claim_rows = [{**c.to_dict(), "measured": list(c.measured.items())} for c in claims.claims]
    band = first.log10_spectral_norm
    return {
        "title": experiment.name,
        "version": __version__,
        "result_version": experiment.gradflow_version,
        "seeds": list(experiment.seeds),
        "runs_text": f"{first.runs} runs per cell",
        "band_text": band.label,
        "band_low": f"q{round(band.levels[0] * 100)}",
        "band_high": f"q{round(band.levels[2] * 100)}",
        "cells": cells,
        "decay_rows": rows,
        "claims": claim_rows,
        "sweep": sweep_ctx,
        "figures": figures,
        "references": _references(citation_keys(experiment, sweep, claims, cards), cards),
        "configs": configs,
        "data_files": data_files,
    }


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_tables(
    experiment: ExperimentResult,
    sweep: SweepResult | None,
    claims: ClaimsResult | None,
    data_dir: Path,
) -> list[Path]:
    """The result JSON and CSV tables (decay rates, claims, sweep points) in ``data_dir``.

    Every file is a function of the results' data alone: two runs with one seed write the same
    bytes (timings go to the report's ``run.json``, see :func:`run_metadata`)."""
    written = []
    for name, result in (("experiment", experiment), ("sweep", sweep), ("claims", claims)):
        if result is not None:  # compact: strict JSON without indentation, in the run order
            atomic_write(
                data_dir / f"{name}.json", dumps(result.to_dict(), compact=True), parents=True
            )
            written.append(data_dir / f"{name}.json")
    band = next(iter(experiment.cells.values())).decay_rate
    low, high = (f"q{round(band.levels[0] * 100)}", f"q{round(band.levels[2] * 100)}")
    rows: list[list[Any]] = [
        [
            "cell",
            "median",
            low,
            high,
            "window_start",
            "window_end",
            "units",
            "log10_norm_at_T",
            "pascanu_holds",
            "meanfield_predicted_slope",
        ]
    ]
    for name, s in experiment.cells.items():
        r = s.decay_rate
        rows.append(
            [
                name,
                r.median,
                r.low,
                r.high,
                *r.window,
                r.units,
                float(s.log10_spectral_norm.median[-1]),
                s.pascanu.holds if s.pascanu else None,
                s.meanfield.predicted_slope if s.meanfield else None,
            ]
        )
    atomic_write(data_dir / "decay_rates.csv", _csv(rows))
    written.append(data_dir / "decay_rates.csv")
    if claims is not None:
        rows = [["id", "title", "holds", "measured", "summary"]]
        for c in claims.claims:
            measured = "; ".join(f"{k}={v}" for k, v in c.measured.items())
            rows.append([c.id, c.title, c.holds, measured, c.summary])
        atomic_write(data_dir / "claims.csv", _csv(rows))
        written.append(data_dir / "claims.csv")
    if sweep is not None:
        axes = list(sweep.axes)
        rows = [[*axes, "decay_rate", "log10_norm_final", "regime"]]
        for p in sweep.points:
            rows.append(
                [*(p.params.get(a) for a in axes), p.decay_rate, p.log10_norm_final, p.regime]
            )
        atomic_write(data_dir / "sweep_points.csv", _csv(rows))
        written.append(data_dir / "sweep_points.csv")
    return written


def run_metadata(*results: Result | None) -> dict[str, Any]:
    """The volatile metadata (timings) of each result, by kind, for the report's ``run.json``."""
    return {r.kind: dict(r.run) for r in results if r is not None and r.run}


def _looks_like_report(path: Path) -> bool:
    return (path / "index.html").is_file() and (path / "data").is_dir()


def _permissions(root: Path) -> None:
    """Temporary files are private (mode 0600); a finished report gets the umask's modes."""
    umask = os.umask(0)
    os.umask(umask)
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~umask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~umask)


def build_report(
    experiment: Any,
    sweep: Any = None,
    claims: Any = None,
    out_dir: str | os.PathLike[str] = "reports/latest",
    *,
    venue: str = "neurips",
    formats: Sequence[str] = plots.FORMATS,
    config_source: tuple[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the report for ``experiment`` (and optionally ``sweep`` and ``claims``).

    Args:
        experiment: an experiment result (object, dict or JSON path).
        sweep: a sweep result, or None to leave the sweep out.
        claims: a claims result, or None.
        out_dir: the report folder; replaced only once the new report is complete.
        venue: figure style (:func:`gradflow.plots.style`).
        formats: figure formats; SVG is always written (the HTML embeds it).
        config_source: ``(file name, TOML text)`` of the user's config, shown verbatim.
        progress: called with a short label before each step.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        UsageError: ``out_dir`` is a file, or a non-empty folder that is not a report.
    """
    exp = _typed(experiment, ExperimentResult)
    swp, clm = _typed(sweep, SweepResult), _typed(claims, ClaimsResult)
    if not exp.cells:
        raise UsageError("the experiment result has no cells to report")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not _looks_like_report(out):
        raise UsageError(
            f"{out} is a non-empty folder that is not a gradflow report; choose another --out"
        )
    formats = tuple(dict.fromkeys(("svg", *formats)))
    try:  # the user asked for this folder (report --out): make its parents
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create its folder ({exc.strerror or exc})") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        figures = []
        for fig in report_figures(exp, swp):
            if progress:
                progress(f"figure {fig.stem}")
            rc = plots.style(venue, "full")
            if fig.panels > 1:  # small multiples: panels of about 2 x 1.6 in, venue fonts
                nrows, ncols = grid(fig.panels)
                rc["figure.figsize"] = (
                    max(rc["figure.figsize"][0], 2.0 * ncols),
                    1.75 * nrows + 0.3,
                )
            with mpl.rc_context(cast(Any, rc)):
                figure = Figure()
                fig.draw(figure)
                files = plots.save_figure(figure, tmp / "figures" / fig.stem, formats)
            svg = (tmp / "figures" / f"{fig.stem}.svg").read_bytes()
            figures.append(
                {
                    "id": fig.stem,
                    "title": fig.title,
                    "caption": fig.caption,
                    "uri": svg_data_uri(svg),
                    "svg": f"figures/{fig.stem}.svg",
                    "files": [(p.suffix[1:], f"figures/{p.name}") for p in files],
                }
            )
        if progress:
            progress("tables")
        data = write_tables(exp, swp, clm, tmp / "data")
        context = report_context(
            exp, swp, clm, figures, [f"data/{p.name}" for p in data], config_source
        )
        if progress:
            progress("pages")
        atomic_write(tmp / "index.html", render_html(context))
        atomic_write(tmp / "report.md", render_markdown(context))
        atomic_write(tmp / "run.json", dumps(run_metadata(exp, swp, clm)))
        _permissions(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_into_place(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; a previous ``out`` is moved aside first, then removed."""
    if not out.exists():
        os.replace(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    try:
        os.replace(new, out)
    except BaseException:
        os.replace(old / out.name, out)
        raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
