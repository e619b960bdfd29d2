r"""The compiled backend's rollout: the step and the Jacobian factors as one numba kernel.

:mod:`gradflow.codegen` prints a cell's SymPy derivation as batched NumPy kernels (``step``,
``factors``); at small ``n`` their dozens of NumPy calls per step cost more than the chain
itself (issue 14: the rollout and factors were 0.4-2x the floor at n = 32). This module prints
the SAME expressions (the cell's node equations, and the derivation's distinct diagonals after
:func:`gradflow.codegen.tail_exact` and common-subexpression elimination, exactly as
``factors`` does) element by element with a scalar printer, into one function per cell:

``rollout_chunk(s, u, F, n, U_0.., p_..)``
    ``K`` steps of the batch from the state ``s`` (``(B, m)``, updated in place) and the input
    projections ``u`` (``(K, B, slots n)``, :meth:`gradflow.codegen.Kernels.input_projection`):
    per step one BLAS product per state source (``s_src @ U:src``), then one pass over
    ``(b, i)`` that evaluates every node and writes every Jacobian factor into
    ``F[f, k, b, i]`` (the layout :func:`gradflow.compiled_kernels.chain_chunk` reads). Returns
    0, or ``k + 1`` where the state after step ``k`` is not finite, or ``-(k + 1)`` where a
    factor of step ``k`` is not (the caller then asks the NumPy kernels for the one-line error).

The source is written to a file named by its hash under the user's cache directory and
imported from there, so that numba's on-disk cache (``cache=True``) serves later processes;
where no cache directory is writable it is compiled in memory. A cell this printer cannot
express (a function without a scalar form, an affine node fed by a computed node rather than a
state) gets ``None`` and the compiled backend keeps the NumPy rollout for it.

Imported only by :mod:`gradflow.compiled`, which imports numba first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .atomic import atomic_write
from .cells import Cell
from .cells.graph import Affine
from .codegen import _layout, _rename, tail_exact
from .kernel_cache import user_cache
from .symbolic.jacobian import state_jacobian

#: numba options of every generated function: floating-point division by zero gives inf or
#: NaN as in NumPy (not Python's ZeroDivisionError); no fastmath, so every value is the
#: IEEE evaluation of the printed expression.
OPTIONS = "cache=True, error_model='numpy'"

#: Scalar forms of the code generator's helpers (:data:`gradflow.codegen.HELPERS`), exact in
#: the tails in the same way, and of the cell functions without a ``math`` equivalent.
HELPERS = f"""import math

import numpy as np
from numba import njit


@njit({OPTIONS})
def _sigmoid(x, e):
    return (1.0 if x >= 0 else e) / (1.0 + e)


@njit({OPTIONS})
def _tanh(x, e):
    a = abs(x)
    if a < 0.5:  # 1 - e would cancel: tanh(a) = -expm1(-2a) / (2 + expm1(-2a))
        m = math.expm1(-2.0 * a)
        return math.copysign(-m / (2.0 + m), x)
    return math.copysign((1.0 - e) / (1.0 + e), x)


@njit({OPTIONS})
def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@njit({OPTIONS})
def _heaviside(x, h0):
    return 1.0 if x > 0 else (h0 if x == 0 else (0.0 if x < 0 else x))

"""

_LOCK = threading.Lock()


class Unsupported(Exception):
    """The cell has a construct without a scalar, compiled form."""


class ScalarPrinter(PythonCodePrinter):  # type: ignore[misc]  # SymPy ships no types
    """Python's scalar printer (``math.exp``) with gradflow's cell functions; strict: an
    expression it cannot print raises instead of printing a comment.

    The exponentials behind ``sigmoid(a)`` and ``sigmoid(-a)`` (``exp(-|a|)``), and behind
    ``tanh(a)`` and ``sech(a)^2`` (``exp(-2|a|)``), are computed once per argument for the
    whole loop body, also where common-subexpression elimination renamed a part of the
    argument: :attr:`pending` collects the lines that define them, to be written before the
    line being printed (the exponentials are half the rollout's cost). The forms are exact in
    the tails as :data:`gradflow.codegen.HELPERS` are."""

    def __init__(self) -> None:
        super().__init__({"strict": True, "fully_qualified_modules": True})
        self.memo: dict[tuple[str, str], str] = {}
        self.pending: list[str] = []
        self.expand: dict[sp.Symbol, sp.Expr] = {}  # CSE temporaries, for the memo's keys

    def _shared(self, kind: str, arg: sp.Expr) -> str:
        # keyed by the argument with the CSE temporaries expanded: ``tanh(t_0 + x)`` after
        # CSE and ``tanh(a*r + x)`` in the node equations share one exponential
        key = (kind, sp.srepr(sp.Abs(arg.xreplace(self.expand))))
        if key not in self.memo:
            name = f"q_{len(self.memo)}"
            scale = "" if kind == "e1" else "2.0 * "
            self.pending.append(f"{name} = math.exp(-{scale}abs({self._print(arg)}))")
            self.memo[key] = name
        return self.memo[key]

    def _print_sigmoid(self, expr: sp.Expr) -> str:
        e = self._shared("e1", expr.args[0])
        return f"_sigmoid({self._print(expr.args[0])}, {e})"

    def _print_tanh(self, expr: sp.Expr) -> str:
        e = self._shared("e2", expr.args[0])
        return f"_tanh({self._print(expr.args[0])}, {e})"

    def _print_sech2(self, expr: sp.Expr) -> str:
        e = self._shared("e2", expr.args[0])
        return f"(4.0 * {e} / (1.0 + {e}) ** 2)"

    def _print_relu(self, expr: sp.Expr) -> str:
        return f"max({self._print(expr.args[0])}, 0.0)"

    def _print_softplus(self, expr: sp.Expr) -> str:
        return f"_softplus({self._print(expr.args[0])})"

    def _print_maximum(self, expr: sp.Expr) -> str:
        a, b = (self._print(x) for x in expr.args)
        return f"max({a}, {b})"

    def _print_clip(self, expr: sp.Expr) -> str:
        x, lo, hi = (self._print(v) for v in expr.args)
        return f"min(max({x}, {lo}), {hi})"

    def _print_hard_sigmoid(self, expr: sp.Expr) -> str:
        return f"min(max({self._print(expr.args[0])} / 6.0 + 0.5, 0.0), 1.0)"

    def _print_Heaviside(self, expr: sp.Expr) -> str:
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"_heaviside({self._print(expr.args[0])}, {float(h0)!r})"


def _lines(printer: ScalarPrinter, target: str, expr: sp.Expr, indent: str) -> list[str]:
    """``target = expr`` printed, after the lines of the exponentials it needs first."""
    try:
        text = str(printer.doprint(expr))
    except Exception as err:  # SymPy's printers raise several kinds for what they cannot print
        raise Unsupported(str(err)) from None
    out = [indent + line for line in printer.pending] + [f"{indent}{target} = {text}"]
    printer.pending.clear()
    return out


@dataclass(frozen=True)
class Rollout:
    """A cell's compiled rollout: the function and the packed parameters it takes, in order."""

    run: Callable[..., int]
    args: tuple[str, ...]  # keys of Kernels.pack's dict, after (s, u, F, n)
    factors: int  # F's first axis: the number of distinct Jacobian factors
    source: str


def rollout_source(cell: Cell) -> tuple[str, tuple[str, ...], int]:
    """The generated module's source, the parameter keys the function takes after
    ``(s, u, F, n)``, and the number of factors; :class:`Unsupported` where the printer
    cannot express the cell."""
    jac = state_jacobian(cell)
    lay = _layout(cell, jac)
    states = list(cell.state)
    for src in lay.sources:
        if src not in states:
            raise Unsupported(f"an affine node is fed by {src!r}, not by a state")
    vectors = {cell.input, *cell.state, *(nd.name for nd in cell.nodes)}
    keys = [f"U:{src}" for src in lay.sources]
    exact = [tail_exact(cell, d) for d in lay.diags]
    exprs = [nd.expr for nd in cell.nodes if not isinstance(nd, Affine)] + exact
    params = sorted({str(s) for e in exprs for s in e.free_symbols} - vectors)
    keys += [f"V:{p}" for p in params]
    names = [f"U_{k}" for k in range(len(lay.sources))] + [f"p_{p}_all" for p in params]
    ind = " " * 16
    printer = ScalarPrinter()
    L = [f"@njit({OPTIONS})", f"def rollout_chunk(s, u, F, n, {', '.join(names)}):"]
    L += ["    K, B = u.shape[0], u.shape[1]", "    s_new = np.empty_like(s)"]
    for k in range(len(lay.sources)):
        L += [f"    x_{k} = np.empty((B, n))", f"    r_{k} = np.empty((B, U_{k}.shape[1]))"]
    L.append("    for k in range(K):")
    for k, src in enumerate(lay.sources):
        at = states.index(src)
        L += [
            "        for b in range(B):",
            "            for i in range(n):",
            f"                x_{k}[b, i] = s[b, {at} * n + i]",
            f"        np.dot(x_{k}, U_{k}, r_{k})",
        ]
    L += ["        bad_state = False", "        bad_factor = False"]
    L += ["        for b in range(B):", "            for i in range(n):"]
    L += [f"{ind}p_{p} = p_{p}_all[i]" for p in params]
    L += [f"{ind}v_{st} = s[b, {k} * n + i]" for k, st in enumerate(states)]
    for nd in cell.nodes:
        if isinstance(nd, Affine):
            slot = lay.affine.index(nd.name)
            parts = [f"u[k, b, {slot} * n + i]"]
            for src in dict.fromkeys(src for _, src in nd.terms if src != cell.input):
                j = lay.sources[src].index(nd.name)
                parts.append(f"r_{list(lay.sources).index(src)}[b, {j} * n + i]")
            L.append(f"{ind}v_{nd.name} = " + " + ".join(parts))
        else:
            L += _lines(printer, f"v_{nd.name}", _rename(cell, nd.expr), ind)
    temps, reduced = sp.cse(
        [_rename(cell, d) for d in exact], symbols=sp.numbered_symbols("t_"), order="none"
    )
    for sym, val in temps:
        L += _lines(printer, str(sym), val, ind)
        printer.expand[sym] = val.xreplace(printer.expand)
    for f, e in enumerate(reduced):
        L += _lines(printer, f"F[{f}, k, b, i]", e, ind)
        L += [f"{ind}if not math.isfinite(F[{f}, k, b, i]):", f"{ind}    bad_factor = True"]
    upd = dict(cell.update)
    for k, st in enumerate(states):
        L += [f"{ind}s_new[b, {k} * n + i] = v_{upd[st]}"]
        L += [f"{ind}if not math.isfinite(v_{upd[st]}):", f"{ind}    bad_state = True"]
    L += [
        "        s[:, :] = s_new",
        "        if bad_state:",
        "            return k + 1",
        "        if bad_factor:",
        "            return -(k + 1)",
        "    return 0",
    ]
    header = '"""Compiled rollout and Jacobian factors; generated by gradflow.compiled_codegen."""'
    return "\n".join([header, "", HELPERS, *L]) + "\n", tuple(keys), len(exact)


def _cache_dir() -> Path:
    return user_cache("compiled")


def _load(source: str) -> Any:
    """The generated module, imported from a file named by the source's hash (numba caches
    it on disk there); compiled in memory where no cache directory is writable."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    name = f"gradflow_rollout_{digest}"
    try:
        folder = _cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.py"
        if not path.exists() or path.read_text() != source:
            atomic_write(path, source)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # numba's cache finds the module's functions by name
        spec.loader.exec_module(module)
        return module
    except OSError:
        namespace: dict[str, Any] = {}
        # The source is printed from validated identifiers and SymPy's printer only
        # (see gradflow.codegen), never from raw user text.
        exec(compile(source.replace("cache=True, ", ""), f"<{name}>", "exec"), namespace)
        return type("Generated", (), namespace)


@lru_cache(maxsize=64)
def rollout(cell: Cell) -> Rollout | None:
    """The compiled rollout of ``cell`` (cached per process), or ``None`` where the cell has
    a construct this printer cannot express."""
    try:
        source, keys, factors = rollout_source(cell)
    except Unsupported:
        return None
    with _LOCK:
        module = _load(source)
    return Rollout(run=module.rollout_chunk, args=keys, factors=factors, source=source)
