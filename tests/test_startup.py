"""Start-up: ``import gradflow`` and the catalogue load what is used, not everything.

``import gradflow``, ``import gradflow.cli`` and naming catalogue cells import no SymPy; the
public names resolve on first use to the objects their modules define; the catalogue builds a
cell's module only when one of its cells is looked up, and always hands back the same object.
Import checks run in a fresh interpreter (``sys.modules`` of this one already holds
everything).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradflow.cells import CATALOGUE, get_cell
from gradflow.cells.catalogue import SOURCES, Catalogue
from gradflow.errors import CellError

ROOT = Path(__file__).resolve().parent.parent


def _fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a new interpreter; it sets ``out`` (a JSON-able dict), returned here."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", f"import json, sys\n{code}\nprint(json.dumps(out))"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=300,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_and_catalogue_names_import_no_sympy() -> None:
    out = _fresh(
        "import gradflow, gradflow.cli, gradflow.cells\n"
        "from gradflow.cells import CATALOGUE\n"
        "names = list(CATALOGUE)\n"
        "known = 'lstm' in CATALOGUE and 'lstn' not in CATALOGUE and len(CATALOGUE) == 25\n"
        "out = {'sympy': 'sympy' in sys.modules, 'numpy': 'numpy' in sys.modules,\n"
        "       'known': known, 'engine': 'gradflow.engine' in sys.modules}"
    )
    assert out == {"sympy": False, "numpy": False, "known": True, "engine": False}


def test_a_lookup_builds_only_the_module_of_that_cell() -> None:
    out = _fresh(
        "import gradflow\n"
        "cell = gradflow.get_cell('gru')\n"
        "families = ('rnn', 'lstm', 'gru', 'minimal', 'modern', 'dynamical')\n"
        "built = [k for k in families if f'gradflow.cells.{k}' in sys.modules]\n"
        "out = {'name': cell.name, 'sympy': 'sympy' in sys.modules, 'built': built}"
    )
    assert out == {"name": "gru", "sympy": True, "built": ["gru"]}


def test_the_catalogue_table_matches_the_cells_it_names() -> None:
    # every entry builds, under its own name, in the listed order; lookups are memoised by
    # the defining module (the same object every time, so per-cell caches keyed on it hit)
    assert [name for name, _, _ in SOURCES] == list(CATALOGUE)
    assert [CATALOGUE[name].name for name in CATALOGUE] == list(CATALOGUE)
    assert all(CATALOGUE[name] is get_cell(name) for name in CATALOGUE)
    assert dict(CATALOGUE.items())["lstm"] is CATALOGUE["lstm"]
    assert 7 not in CATALOGUE and ["rnn"] not in CATALOGUE  # type: ignore[comparison-overlap]


def test_a_wrong_table_entry_and_unknown_names_are_refused_in_one_line() -> None:
    wrong = Catalogue((("rnn", "rnn", "RNN_RELU"),))
    with pytest.raises(CellError, match=r"catalogue entry 'rnn' holds the cell 'rnn-relu'"):
        wrong["rnn"]
    with pytest.raises(KeyError):
        CATALOGUE["lstn"]
    with pytest.raises(CellError, match=r"unknown cell 'lstn'; did you mean 'lstm'\?"):
        get_cell("lstn")
    with pytest.raises(CellError, match=r"unknown cell 7 \(known: rnn, rnn-relu"):
        get_cell(7)  # type: ignore[arg-type]  # not a name: refused, never a TypeError
