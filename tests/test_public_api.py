"""The public API is exactly the documented set, and modules import only lower layers."""

from __future__ import annotations

import ast
from pathlib import Path

import gradflow

PUBLIC = {
    "CATALOGUE",
    "AnalysisResult",
    "Cell",
    "GradflowError",
    "Init",
    "__version__",
    "analyze",
    "define_cell",
    "get_cell",
    "initialise",
    "load_cell_file",
    "load_inputs",
    "load_weights",
    "rollout",
    "save_weights",
    "state_jacobian",
    "state_jacobians",
}
PACKAGE = Path(gradflow.__file__).parent
# The data flow of DESIGN.md, lowest first; leaves any module may import.
LAYERS = [
    "cells",
    "symbolic",
    "codegen|spectral|prodsvd|decomposition",
    "engine|weights|initialisers|results",
    "analysis",
    "plots|report",
    "cli",
]
LEAVES = {"errors", "backend", "atomic", "citations", "results"}


def test_public_names():
    assert set(gradflow.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(gradflow, name), name


def _layer(module: str) -> int | None:
    top = module.split(".")[0]
    for i, group in enumerate(LAYERS):
        if top in group.split("|"):
            return i
    return None


def test_no_module_imports_a_higher_layer_at_top_level():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        own = _layer(".".join(rel.parts)) if rel.parts[0] != "__init__" else None
        if own is None:
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in tree.body:  # module level only: lazy imports inside functions are allowed
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                base = rel.parts[: len(rel.parts) - node.level]
                target = ".".join((*base, node.module)) if base else node.module
                if target.split(".")[0] in LEAVES:
                    continue
                other = _layer(target)
                if other is not None and other > own:
                    bad.append(f"{rel} imports {target}")
    assert not bad, bad


def test_only_cli_imports_click_and_only_plots_report_import_matplotlib_or_jinja():
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        text = path.read_text("utf-8")
        if rel != "cli.py":
            assert "import click" not in text, rel
        if not (rel == "plots.py" or rel.startswith("report")):
            assert "import matplotlib" not in text and "from matplotlib" not in text, rel
            assert "import jinja2" not in text and "from jinja2" not in text, rel
