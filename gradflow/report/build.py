r"""Build a report folder from saved results: HTML, Markdown, figures and data, all or nothing.

:func:`build_report` draws every figure from the results (never recomputing them), writes
``index.html``, ``report.md``, ``run.json`` (timings, the one file that differs between two runs
with one seed), ``figures/`` (SVG, PDF, PNG) and ``data/`` (the result JSON, CSV tables and
``references.bib``, the BibTeX of every method used) into a temporary sibling folder, and
renames it into place only when everything is written. An existing report is replaced only
then; an interrupted or failed build leaves it untouched and removes its own temporary folder.

The report is split by concept: :mod:`.figures` (which figures, their captions),
:mod:`.context` (what the pages show), :mod:`.tables` (the data folder), :mod:`.html` and
:mod:`.markdown` (the pages), :mod:`.lyapunov` (the Lyapunov diagnostics subsection and
``data/lyapunov.csv``); this module assembles the folder.

The one moment a reader can miss the folder is between the two renames that swap the old
report out and the new one in (POSIX has no atomic exchange of directories in the standard
library); a reader never sees a partial report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
from matplotlib.figure import Figure

from .. import plots
from ..atomic import atomic_write
from ..citations import BIBTEX, cite
from ..errors import GradflowError, OutputError, UsageError
from ..plots.panels import panel_size
from ..results import ClaimsResult, ExperimentResult, Result, SweepResult, TrainedResult, dumps
from ..shutdown import Terminated, interrupted
from .claims_figure import claims_figures
from .context import citation_keys as citation_keys
from .context import report_context as report_context
from .figures import ReportFigure as ReportFigure
from .figures import report_figures
from .html import render_html, svg_data_uri
from .markdown import render_markdown
from .models import CITATIONS as TRAINED_CITATIONS
from .models import trained_context, trained_figures, write_trained_tables
from .tables import run_metadata, write_tables


def _typed(result: Any, cls: type[Result]) -> Any:
    if result is None:
        return None
    res = plots.load_result(result)
    if not isinstance(res, cls):
        raise UsageError(f"expected a {cls.kind} result, got {res.kind!r}")
    # Exactly what the data files hold: strict JSON, non-finite numbers as null.
    return cls.from_dict(json.loads(dumps(res.to_dict())), run=res.run)


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


#: A report's figures in groups, each drawn from its own results: ``(group, results, figures)``
#: with group ``"report"`` (experiment and sweep), ``"claims"`` or ``"trained"``.
FigureGroups = list[tuple[str, tuple[Any, ...], list[ReportFigure]]]


def _group_figures(group: str, results: tuple[Any, ...]) -> list[ReportFigure]:
    if group == "report":
        return report_figures(*results)
    if group == "claims":
        return claims_figures(*results)
    return trained_figures(*results)


def _figure_groups(exp: Any, swp: Any, clm: Any, trn: Any) -> FigureGroups:
    """The report's figures in order: the main ones, the claims', then the trained networks'."""
    groups: FigureGroups = [("report", (exp, swp), []), ("claims", (clm,), [])]
    if trn is not None:
        groups.append(("trained", (trn,), []))
    return [(group, res, _group_figures(group, res)) for group, res, _ in groups]


def _render(fig: ReportFigure, venue: str, formats: Sequence[str]) -> dict[str, bytes]:
    rc = plots.style(venue, "full")
    if fig.panels > 1:  # small multiples within the text width, venue fonts
        rc["figure.figsize"] = panel_size(rc["figure.figsize"][0], fig.panels)
    with mpl.rc_context(cast(Any, rc)):
        figure = Figure()
        fig.draw(figure)
        return plots.render_figure(figure, formats)


def render_report_figure(
    group: str, results: tuple[Any, ...], index: int, venue: str, formats: Sequence[str]
) -> dict[str, bytes]:
    """The bytes of figure ``index`` of a group (:func:`_figure_groups`): a task for a worker
    process, which gets the (picklable) results rather than the figure's drawing closure."""
    return _render(_group_figures(group, results)[index], venue, formats)


def _render_figures(
    groups: FigureGroups,
    venue: str,
    formats: Sequence[str],
    executor: Executor | None,
    progress: Callable[[str], None] | None,
) -> list[tuple[ReportFigure, Any]]:
    """Each figure with its files' bytes, or with the future of a worker that renders them.

    On an executor every figure is one task, the ones with most panels submitted first (a
    figure's CPU time grows with its panels: 0.3 s for one, 2.7 s for fifteen), so that
    the last tasks are short ones; the bytes are the same as rendered here."""
    todo = [(fig, group, res, k) for group, res, figs in groups for k, fig in enumerate(figs)]
    if executor is None:
        out = []
        for fig, *_ in todo:
            if progress:
                progress(f"figure {fig.stem}")
            out.append((fig, _render(fig, venue, formats)))
        return out
    if progress:
        progress("figures")
    jobs: dict[int, Future[dict[str, bytes]]] = {}
    for i in sorted(range(len(todo)), key=lambda i: -todo[i][0].panels):
        _, group, res, k = todo[i]
        jobs[i] = executor.submit(render_report_figure, group, res, k, venue, tuple(formats))
    return [(fig, jobs[i]) for i, (fig, *_) in enumerate(todo)]


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """A dead worker process of the report's pool (killed, out of memory) is one line."""
    try:
        yield
    except BrokenProcessPool as exc:
        if (signum := interrupted()) is not None:  # killed with us (process group)
            raise Terminated(signum) from None
        raise GradflowError(f"the report's worker process died ({exc})") from None


def _collect(job: Any) -> Any:
    """A worker's result (``job`` a future), or ``job`` itself."""
    if not isinstance(job, Future):
        return job
    with worker_errors():
        return job.result()


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
    trained: Any = None,
    executor: Executor | None = None,
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
        trained: a trained-models result (:mod:`gradflow.report.models`), or None to leave
            the "Trained networks" section out.
        executor: render the figures as tasks on it (e.g. the report's process pool: one
            task per figure, the same bytes as without); the files are written here.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        UsageError: ``out_dir`` is a file, or a non-empty folder that is not a report.
    """
    exp = _typed(experiment, ExperimentResult)
    swp, clm = _typed(sweep, SweepResult), _typed(claims, ClaimsResult)
    trn = _typed(trained, TrainedResult)
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
    tmp: Path | None = None
    try:  # created inside the try: an interruption right after it still removes it
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        groups = _figure_groups(exp, swp, clm, trn)
        rendered = _render_figures(groups, venue, formats, executor, progress)
        if progress:
            progress("tables")
        data = write_tables(exp, swp, clm, tmp / "data")
        figures = []
        for fig, job in rendered:  # written in order, whoever rendered them
            files = plots.write_figure(_collect(job), tmp / "figures" / fig.stem)
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
        n_main = sum(len(figs) for group, _, figs in groups if group != "trained")
        trained_ctx = None
        if trn is not None:
            data += write_trained_tables(trn, tmp / "data")
            figures, trained_figs = figures[:n_main], figures[n_main:]
            # numbered after the main figures (the headline, when there, is Figure 1)
            trained_ctx = trained_context(trn, trained_figs, len(figures) + 1)
        cards = [s.card for s in exp.cells.values() if s.card is not None]
        keys = [k for k in citation_keys(exp, swp, clm, cards) if k in BIBTEX]
        if trn is not None:
            keys = list(dict.fromkeys([*keys, *TRAINED_CITATIONS]))
        atomic_write(tmp / "data" / "references.bib", cite(keys))
        data.append(tmp / "data" / "references.bib")
        context = report_context(
            exp, swp, clm, figures, [f"data/{p.name}" for p in data], config_source, trained_ctx
        )
        if progress:
            progress("pages")
        atomic_write(tmp / "index.html", render_html(context))
        atomic_write(tmp / "report.md", render_markdown(context))
        atomic_write(tmp / "run.json", dumps(run_metadata(exp, swp, clm, trn)))
        _permissions(tmp)
        _swap_into_place(tmp, out)
    except BaseException:  # an error, Ctrl-C or SIGTERM (gradflow.shutdown): leave nothing
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_into_place(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; a previous ``out`` is moved aside first, then removed."""
    if not out.exists():
        os.replace(new, out)
        return
    old: Path | None = None
    moved = False
    try:
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / out.name)
        moved = True
        os.replace(new, out)
    except BaseException:
        if moved and old is not None and not out.exists():
            os.replace(old / out.name, out)  # put the previous report back
        raise
    finally:
        if old is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(old)
