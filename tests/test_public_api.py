"""The public API is exactly the documented set, and modules import only lower layers."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import gradflow
import gradflow.cells

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
    "codegen|spectral|spectral_kernels|sensitivity_codegen|prodsvd|decomposition|norms|fused"
    "|fused_kernels"
    "|compiled_codegen|compiled_certify|kernel_cache",
    "engine|chains|cost|threads|diagonal|blockdiag|weights|formats|initialisers|paper_inits|results"
    "|measure|stack|stack_api|stack_bidir|stack_vectors|stack_lagsplit|stack_result|stack_spectral"
    "|stack_chain|logscaled"
    "|compiled"
    "|compiled_kernels",
    "analysis",
    "plots|report",
    "cli",
]
LEAVES = {"errors", "backend", "atomic", "citations", "_version", "tensorfile", "shutdown"}
# Every import that is not at the top of a module (inside a function, a method or an
# ``if TYPE_CHECKING:`` block), by (module, imported module), with the reason it is there.
# Anything else must be imported at module level, where the layering below checks it.
OPTIONAL = "optional dependency: imported only when the feature is used"
START_UP = "CLI start-up time: a command imports what it needs when it runs"
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    # convenience on the data type; the derivation itself is symbolic.state_jacobian(cell)
    ("cells.graph", "symbolic.jacobian"): "Cell.jacobian() convenience (symbolic sits above)",
    ("cells.graph", "symbolic.explicit"): "Cell.jacobian(n) convenience (symbolic sits above)",
    # optional dependencies
    ("analysis.sweep", "distributed"): OPTIONAL + " (dask extra)",
    ("analysis.sweep", "distributed.comm.addressing"): OPTIONAL + " (dask extra)",
    ("analysis.run", "tqdm"): OPTIONAL + " (progress bars)",
    ("report", "tqdm"): OPTIONAL + " (progress bars)",
    ("tensorfile", "safetensors"): OPTIONAL + " (safetensors files)",
    ("weights", "safetensors.numpy"): OPTIONAL + " (safetensors files)",
    ("formats.keras", "h5py"): OPTIONAL + " (keras extra)",
    ("formats.onnx", "onnx"): OPTIONAL + " (onnx extra)",
    ("formats.load", "formats.keras"): "imports h5py: only for Keras files",
    ("formats.load", "formats.onnx"): "imports onnx: only for ONNX files",
    ("plots.style", "tueplots"): OPTIONAL + " (venue styles)",
    ("compiled", "numba"): OPTIONAL + " (fast extra)",
    ("compiled", "compiled_kernels"): "imports numba: only when the compiled path runs",
    ("spectral", "spectral_kernels"): "imports numba: only when the compiled Krylov kernel runs",
    ("fused", "fused_kernels"): "imports numba: only for the compiled variant of the fused apply",
    ("plots.curves", "matplotlib.pyplot"): "pyplot starts a GUI backend; only when drawn",
    ("report.html", "jinja2"): "import cost; only when a report is rendered",
    ("report.markdown", "jinja2"): "import cost; only when a report is rendered",
    # the command line imports what a command needs when it runs
    **{
        ("cli", target): START_UP
        for target in (
            "atomic",
            "cells",
            "citations",
            "cells.parse",
            "codegen",
            "cost",
            "dataclasses",
            "engine",
            "formats",
            "formats.select",
            "measure",
            "pathlib",
            "plots",
            "report",
            "results",
            "symbolic.jacobian",
            "symbolic.render",
            "stack",
            "sympy",
            "threads",
            "time",
            "weights",
            "analysis.claims",
            "analysis.experiment",
            "analysis.sweep",
        )
    },
    # function-level imports in modules that changes in flight are restructuring
    **{
        (module, target): "pending: to move to module level once the branch lands"
        for module, target in (("engine", "symbolic.jacobian"),)
    },
}


def _modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name relative to it (``cells.graph``; a
    package's ``__init__`` by the package's name, the top ``__init__`` as ``""``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = ast.parse(path.read_text("utf-8"))
    return out


MODULES = _modules()


def _is_package(module: str) -> bool:
    return module == "" or (PACKAGE / module.replace(".", "/") / "__init__.py").exists()


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules ``node`` imports, relative to the package for gradflow's own (``x.y``) and
    as written, with a ``!`` in front, for third-party and standard-library ones."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.level == 0:
        names = [node.module or ""]
        if node.module == "gradflow" or (node.module or "").startswith("gradflow."):
            stem = (node.module or "").removeprefix("gradflow").removeprefix(".")
            subs = [f"{stem}.{a.name}" if stem else a.name for a in node.names]
            return [sub if sub in MODULES else stem for sub in subs]
    else:
        base = module.split(".") if module else []
        if not _is_package(module):
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        stem = ".".join([*base, *([node.module] if node.module else [])])
        # ``from . import x`` imports the submodule x when there is one, else a name of stem
        names = []
        for alias in node.names:
            sub = f"{stem}.{alias.name}" if stem else alias.name
            names.append(sub if sub in MODULES else stem)
        return names
    out = []
    for name in names:
        if name == "gradflow" or name.startswith("gradflow."):
            out.append(name.removeprefix("gradflow").removeprefix("."))
        else:
            out.append("!" + name)
    return out


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Imports inside a module-level ``if TYPE_CHECKING:`` block (never run)."""
    return {
        id(n)
        for stmt in tree.body
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
        for n in ast.walk(stmt)
    }


def _imports() -> list[tuple[str, str, bool | None, int]]:
    """``(module, target, lazy, line)`` for every import statement in the package; ``lazy``
    is True inside a function or class, None in an ``if TYPE_CHECKING:`` block (layering still
    applies; it never runs, so it is neither lazy nor part of the import-time graph)."""
    out = []
    for module, tree in MODULES.items():
        top = {id(n) for n in tree.body}
        typing_only = _type_checking_only(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    continue
                lazy = None if id(node) in typing_only else id(node) not in top
                for target in _resolve(module, node):
                    out.append((module, target, lazy, node.lineno))
    return out


IMPORTS = _imports()


def _layer(module: str) -> int | None:
    top = module.split(".")[0]
    for i, group in enumerate(LAYERS):
        if top in group.split("|"):
            return i
    return None


def test_the_import_resolver_sees_every_form() -> None:
    # the forms the old test missed: from .. import X, absolute imports, imports in functions
    tree = ast.parse(
        "from .. import errors\n"
        "from . import functions\n"
        "import gradflow.engine\n"
        "from gradflow import plots\n"
        "from gradflow.analysis import experiment\n"
        "def f():\n"
        "    from ..symbolic import jacobian\n"
        "    import numpy\n"
    )
    found = [
        (target, id(n) not in {id(t) for t in tree.body})
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for target in _resolve("cells.graph", n)
    ]
    assert sorted(found) == sorted(
        [
            ("errors", False),
            ("cells.functions", False),
            ("engine", False),
            ("plots", False),
            ("analysis.experiment", False),
            ("symbolic.jacobian", True),
            ("!numpy", True),
        ]
    )


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    for module, target, _lazy, line in IMPORTS:
        own, other = _layer(module), _layer(target)
        if target.startswith("!") or target.split(".")[0] in LEAVES or own is None:
            continue
        if (module, target) in LAZY_IMPORTS:
            continue
        if other is None or other > own:
            bad.append(f"{module}:{line} imports {target or 'gradflow'}")
    assert not bad, bad


def test_every_lazy_import_is_listed_with_its_reason() -> None:
    lazy = {(m, t.lstrip("!")) for m, t, is_lazy, _ in IMPORTS if is_lazy}
    unlisted = sorted(f"{m} imports {t} inside a function" for m, t in lazy - set(LAZY_IMPORTS))
    assert not unlisted, unlisted
    # and the list holds nothing stale: each entry is an import that exists (lazily, or for
    # an upward arrow, in an ``if TYPE_CHECKING:`` block)
    typing = {(m, t) for m, t, is_lazy, _ in IMPORTS if is_lazy is None}
    stale = sorted(set(LAZY_IMPORTS) - lazy - typing)
    assert not stale, stale


def test_no_import_cycle_among_gradflow_modules() -> None:
    """Module-level imports (what runs at import time) form no cycle."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, target, lazy, _ in IMPORTS:
        if lazy is False and not target.startswith("!") and target in MODULES and target != module:
            graph[module].add(target)
    # A submodule importing its own package's __init__ would be a cycle too; a package's
    # __init__ importing its submodules is how packages work, so edges from a package to its
    # own submodules do not count the other way round.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_no_module_imports_the_package_face() -> None:
    """``from gradflow import __version__`` in a module runs back up to the top; the version
    lives in the leaf ``_version``."""
    bad = [f"{m}:{line}" for m, t, _, line in IMPORTS if t == "" and m != ""]
    assert not bad, bad


def test_only_cli_imports_click_and_only_plots_report_import_matplotlib_or_jinja() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        text = path.read_text("utf-8")
        if rel != "cli.py":
            assert "import click" not in text, rel
        if not (rel.startswith("plots") or rel.startswith("report")):
            assert "import matplotlib" not in text and "from matplotlib" not in text, rel
            assert "import jinja2" not in text and "from jinja2" not in text, rel


def test_every_public_name_is_in_all_and_resolves_to_its_module_object() -> None:
    assert set(gradflow.__all__) == PUBLIC and len(gradflow.__all__) == len(PUBLIC)
    from gradflow import _LAZY as TOP  # type: ignore[attr-defined]
    from gradflow.cells import _LAZY as CELLS  # type: ignore[attr-defined]

    for package, table in ((gradflow, TOP), (gradflow.cells, CELLS)):
        for name, module in table.items():
            defined = getattr(importlib.import_module(f"{package.__name__}.{module}"), name)
            assert getattr(package, name) is defined, (package.__name__, name)
            assert name in dir(package)
    namespace: dict[str, object] = {}
    exec("from gradflow import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC


@pytest.mark.parametrize("package", [gradflow, gradflow.cells])
def test_an_unknown_attribute_is_an_attribute_error(package: object) -> None:
    with pytest.raises(AttributeError, match=r"has no attribute 'analyse'"):
        package.analyse  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(package, "_private")
