"""The tour notebook: stored with its outputs, current, and showing what it claims.

``examples/make_tour.py`` executes the notebook with nbclient in a kernel that runs *this*
interpreter (a temporary kernelspec put first on ``JUPYTER_PATH``), so it tests the gradflow
under test; the notebook's own cells assert what a reader sees (two distinct curve styles, every
point inside the y-limits). Skipped when the ``notebook`` extra (nbclient, nbformat,
ipykernel) is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).parents[1]
NOTEBOOK = ROOT / "examples" / "gradflow_tour.ipynb"


def _make_tour():
    spec = importlib.util.spec_from_file_location("make_tour", ROOT / "examples" / "make_tour.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def _visible(nb) -> list[list[tuple[str, str]]]:
    """Per code cell, the text a reader sees: streams and the text/latex or text/plain of each
    result (images are counted separately)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        seen = []
        for o in cell.outputs:
            if o.output_type == "stream":
                seen.append(("stream", o.text))
            elif "image/png" not in o.get("data", {}):
                data = o.get("data", {})
                seen.append((o.output_type, data.get("text/latex", data.get("text/plain", ""))))
        out.append(seen)
    return out


def test_notebook_is_stored_with_outputs_and_without_volatile_metadata():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)  # executed top to bottom
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c.outputs]
    assert any("text/latex" in o.get("data", {}) for o in outputs)  # the Jacobian as LaTeX
    assert sum(_images(c) for c in code) == 1  # the figure, once
    assert all(_images(c) <= 1 for c in code)  # never a figure twice in one cell
    assert not any(o.output_type == "error" for o in outputs)
    assert set(nb.metadata) == {"kernelspec", "language_info"}
    assert all("execution" not in c.metadata for c in code)
    assert sum("assert " in c.source for c in code) >= 6


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tour_notebook_executes_and_its_stored_outputs_are_current():
    fresh = _make_tour().execute()  # raises CellExecutionError, with the cell, on any error
    stored = nbformat.read(NOTEBOOK, as_version=4)
    # Exactly what the committed notebook shows: regenerate with examples/make_tour.py.
    assert _visible(fresh) == _visible(stored)
    code = [c for c in fresh.cells if c.cell_type == "code"]
    assert [_images(c) for c in code] == [_images(c) for c in stored.cells if c.cell_type == "code"]
    plot_cell = next(c for c in code if "plot_norms" in c.source)
    assert _images(plot_cell) == 1  # shown once, as the cell's value
