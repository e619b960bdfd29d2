r"""The cell specification: user-defined cells from TOML files or Python, never ``eval``.

A cell file is TOML (read with :mod:`tomllib`)::

    name = "leaky-rnn"
    state = ["h"]
    input = "x"                     # optional, default "x"
    parameters = ["alpha"]          # optional: vector (diagonal) parameters
    constants = {dt = 0.1}          # optional: named hyperparameters (numbers)
    sizes = {h = "p", h_new = "p"}  # optional: vectors of a second size p (default n)
    [matrices]                      # optional: matrices built from weights (F4)
    M = "W - transpose(W) - dt * I" # used like a weight: a = "M @ h + ..."
    reference = "Jaeger et al. (2007)"   # optional; also description, convention
    [equations]                     # in order; each line is affine or elementwise
    a = "W_x @ x + W_h @ h + b"
    h_new = "(1 - alpha) * h + alpha * tanh(a)"
    [update]                        # optional when every state s has a node s_new
    h = "h_new"

Each equation's text is parsed by :mod:`gradflow.cells.grammar` (an ``ast`` whitelist built
into SymPy objects by their constructors). This module reads the file, applies the file
format's own rules (top-level keys, declared ``parameters``, the ``[update]`` table and its
``s_new`` default, names that are catalogue cells) and records the line of every key, so that
the :class:`~gradflow.cells.graph.Cell`, which checks every cell invariant in one place, can name
the file and line of the equation at fault. Every problem is an
:class:`~gradflow.errors.EquationError` with a one-line message; docs/cell-files.md has the
full format. One concept (the cell file format and ``define_cell``), so longer than the usual
module.

Examples:
    >>> cell = define_cell(
    ...     "leaky", ["h"],
    ...     {"a": "W @ x + U @ h + b", "h_new": "(1 - alpha)*h + alpha*tanh(a)"},
    ...     parameters=["alpha"],
    ... )
    >>> print(cell.jacobian())
    dh_t/dh_{t-1} = diag(1 - alpha) + diag(alpha*(1 - tanh(a)**2)) @ U
    >>> try:
    ...     define_cell("bad", ["h"], {"h_new": "h.__class__"})
    ... except EquationError as err:
    ...     print(err)
    cell 'bad': equation 'h_new': attribute access ('.') is not allowed

References:
    SymPy issue #24990 (``sympify`` evaluates its input; never call it on user text).
"""

from __future__ import annotations

import ast
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from ..errors import CellError, CellUpdateError, EquationError, did_you_mean
from ..tensorfile import check_regular_file
from .catalogue import CATALOGUE
from .grammar import (
    MAX_CONSTANT,
    MAX_TEXT,
    AffineLine,
    GrammarError,
    parse_line,
    parse_matrix,
    show,
    syntax_size,
)
from .graph import (
    RESERVED_PARAMETER_NAMES,
    Affine,
    Cell,
    Elementwise,
    MatrixDef,
    Origin,
    check_name,
)

MAX_EQUATIONS = 200  #: equations in one cell
MAX_STATES = 8  #: state vectors in one cell
MAX_FILE_BYTES = 1_000_000  #: size of a cell file
#: syntax-tree nodes in all equations together: SymPy builds about a thousand a second
MAX_SYNTAX_NODES = 10_000
TOP_KEYS = (
    "name",
    "state",
    "input",
    "parameters",
    "constants",
    "reference",
    "description",
    "convention",
    "equations",
    "matrices",
    "update",
    "sizes",
)


def _brief(value: object) -> str:
    return show(value) if isinstance(value, str) else type(value).__name__


def _key_lines(text: str) -> dict[tuple[str | None, str], int]:
    """1-based line of each ``key = ...`` by ``(table, key)`` (top level: table None), and of
    each ``[table]`` header as ``(None, table)``; the first occurrence wins. One pass, string
    operations only: linear in the size of the text."""
    lines: dict[tuple[str | None, str], int] = {}
    current: str | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.lstrip("[").split("]", 1)[0].strip().strip("\"'")
            lines.setdefault((None, current), lineno)
        elif "=" in stripped:
            key = stripped.split("=", 1)[0].strip()
            if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
                key = key[1:-1]
            lines.setdefault((current, key), lineno)
    return lines


@dataclass(frozen=True)
class _Source:
    """Where a definition comes from: a file (with the line of each key) or the Python API."""

    label: str
    lines: Mapping[tuple[str | None, str], int]

    def at(self, table: str | None, key: str) -> str:
        line = self.lines.get((table, key))
        return f"{self.label}:{line}" if line else self.label

    def error(self, table: str | None, key: str, what: str, problem: str) -> EquationError:
        return EquationError(f"{self.at(table, key)}: {what}: {problem}")

    def origin(self) -> Origin:
        """Lines for the cell: equations by node name, top-level keys by their own name."""
        keys = {key: line for (table, key), line in self.lines.items() if table is None}
        keys.update({k: v for (table, k), v in self.lines.items() if table == "equations"})
        return Origin(self.label, tuple(keys.items()))


def _pairs(value: object, what: str, src: _Source) -> list[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        return list(value.items())
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(p, tuple | list) and len(p) == 2 for p in value)
    ):
        return [(p[0], p[1]) for p in value]
    raise EquationError(
        f"{src.at(None, what)}: {what} must be a table (dict) of "
        f"name = value, got {type(value).__name__}"
    )


def _names(value: object, what: str, src: _Source, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise EquationError(
            f"{src.at(None, what)}: {what} must be a list of strings, got {_brief(value)}"
        )
    if len(value) > limit:
        raise EquationError(
            f"{src.at(None, what)}: {what} lists {len(value)} names (at most {limit})"
        )
    return tuple(value)


def _text(value: object, what: str, src: _Source) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise EquationError(
            f"{src.at(None, what)}: {what} must be a string of at most {MAX_TEXT} characters"
        )
    return value


def _node(key: object, value: object, declared: tuple[str, ...]) -> Affine | Elementwise:
    """One equation as a node; the file format's rules on declared parameters apply here."""
    if not isinstance(key, str):
        raise GrammarError(f"equation names must be strings, got {key!r}")
    try:
        check_name(key, "node")
    except CellError as err:
        raise GrammarError(str(err)) from None
    if key in declared:
        raise GrammarError(f"{key!r} is defined twice")
    line = parse_line(value)
    if isinstance(line, AffineLine):
        for name, kind in [(w, "weight") for w, _ in line.terms] + [
            (b, "bias") for b in line.biases
        ]:
            if name in declared:
                raise GrammarError(
                    f"{name!r} is declared in parameters = [...] (a vector parameter) "
                    f"but used as a {kind}"
                )
        return Affine(key, line.terms, line.biases)
    return Elementwise(key, line)


def _build(spec: Mapping[str, Any], src: _Source) -> Cell:
    """Validate a definition (TOML table or define_cell arguments) and make the Cell."""
    name = spec.get("name")
    if isinstance(name, str) and name in CATALOGUE:
        raise EquationError(
            f"{src.at(None, 'name')}: name {name!r} is a catalogue cell; choose another name"
        )
    state = _names(spec.get("state"), "state", src, MAX_STATES)
    declared = _names(spec.get("parameters", ()), "parameters", src, MAX_EQUATIONS)
    input_name = _text(spec.get("input", "x"), "input", src)
    texts = {k: _text(spec.get(k, ""), k, src) for k in ("reference", "description", "convention")}
    equations = _pairs(spec.get("equations"), "equations", src)
    if not equations or len(equations) > MAX_EQUATIONS:
        raise EquationError(
            f"{src.at(None, 'equations')}: equations must define 1 to "
            f"{MAX_EQUATIONS} nodes, got {len(equations)}"
        )
    total = 0
    for key, value in equations:
        total += syntax_size(value)
        if total > MAX_SYNTAX_NODES:
            raise src.error(
                "equations",
                str(key),
                f"equation {show(str(key), 40)}",
                f"the equations up to this one hold more than {MAX_SYNTAX_NODES} syntax nodes "
                "in all; a cell is a few dozen short equations",
            )
    for k, nm in enumerate(declared):
        try:
            check_name(nm, "parameter")
        except CellError as err:
            raise src.error(None, "parameters", "parameters", str(err)) from None
        if nm in RESERVED_PARAMETER_NAMES:
            raise src.error(
                None,
                "parameters",
                "parameters",
                f"parameter {nm!r} is reserved (n and d are the hidden and input sizes); "
                "choose another name",
            )
        if nm in declared[:k] or nm == input_name or nm in state:
            raise src.error(None, "parameters", "parameters", f"{nm!r} is defined twice")
    constants = _constants(spec.get("constants"), (input_name, *state, *declared), src)
    swap = {sp.Symbol(k, real=True): sp.Float(v) for k, v in constants}
    used: set[str] = set()
    nodes: list[Affine | Elementwise] = []
    for key, value in equations:
        try:
            node = _node(key, value, declared)
        except GrammarError as err:
            raise src.error(
                "equations", str(key), f"equation {show(str(key), 40)}", str(err)
            ) from None
        if swap and isinstance(node, Affine):
            names = {w for w, _ in node.terms} | {v for _, v in node.terms} | set(node.biases)
            if clash := sorted(names & {k for k, _ in constants}):
                raise src.error(
                    "equations",
                    str(key),
                    f"equation {show(str(key), 40)}",
                    f"{clash[0]!r} is a constant; constants enter elementwise lines only",
                )
        elif swap and isinstance(node, Elementwise):
            used |= {str(sym) for sym in node.expr.free_symbols if sym in swap}
            node = Elementwise(node.name, node.expr.xreplace(swap))
        nodes.append(node)
    matrices = _matrices(spec.get("matrices"), dict(constants), used, src)
    if unused := [k for k, _ in constants if k not in used]:
        raise src.error(
            None, "constants", "constants", f"{unused[0]!r} is given but not used in any line"
        )
    keys = [k for k, _ in equations]
    sizes = _sizes(spec.get("sizes"), src)
    update, update_problem = _update(spec.get("update"), state, keys, src)
    try:
        cell = Cell(
            name=name,  # type: ignore[arg-type]  # Cell itself refuses a name that is no str
            state=state,
            nodes=tuple(nodes),
            update=update,
            input=input_name,
            origin=src.origin(),
            reference=texts["reference"],
            description=texts["description"],
            convention=texts["convention"],
            constants=constants,
            matrices=matrices,
            sizes=sizes,
        )
    except CellUpdateError as err:  # the file's own words for it, if it has them
        raise update_problem or EquationError(str(err)) from None
    except CellError as err:
        raise EquationError(str(err)) from None
    if update_problem is not None:
        raise update_problem
    _check_declared(cell, declared, src)
    return cell


def _sizes(value: object, src: _Source) -> tuple[tuple[str, str], ...]:
    """Vectors of the second size: ``{vector: "p"}`` (``"n"``, the default, may be given)."""
    if value is None:
        return ()
    pairs = _pairs(value, "sizes", src)
    out = []
    for key, size in pairs:
        if not isinstance(key, str) or not isinstance(size, str):
            raise src.error(
                None, "sizes", "sizes", f"sizes must map vector names to 'n' or 'p', got {size!r}"
            )
        if size != "n":  # n is every vector's size anyway
            out.append((key, size))
    return tuple(out)


def _constants(
    value: object, taken: tuple[str, ...], src: _Source
) -> tuple[tuple[str, float], ...]:
    """Named constants (hyperparameters) ``{name: number}``, in the order given."""
    if value is None:
        return ()
    pairs = _pairs(value, "constants", src)
    if len(pairs) > MAX_EQUATIONS:
        raise src.error(None, "constants", "constants", f"at most {MAX_EQUATIONS} constants")
    out: list[tuple[str, float]] = []
    for key, number in pairs:
        label = f"constant {show(str(key), 40)}"
        try:
            check_name(key, "constant")
        except CellError as err:
            raise src.error(None, "constants", label, str(err)) from None
        if key in taken or key in (k for k, _ in out):
            raise src.error(None, "constants", label, f"{key!r} is defined twice")
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise src.error(None, "constants", label, "a constant must be an int or float")
        if not abs(number) <= MAX_CONSTANT:  # also NaN and inf
            raise src.error(
                None, "constants", label, f"must be finite and at most {MAX_CONSTANT:g} in size"
            )
        out.append((key, float(number)))
    return tuple(out)


def _matrices(
    value: object, constants: dict[str, float], used: set[str], src: _Source
) -> tuple[MatrixDef, ...]:
    """The ``[matrices]`` table (F4): ``name = "W - transpose(W) - gamma * I"``."""
    if value is None:
        return ()
    pairs = _pairs(value, "matrices", src)
    if len(pairs) > MAX_EQUATIONS:
        raise src.error(None, "matrices", "matrices", f"at most {MAX_EQUATIONS} matrices")
    out: list[MatrixDef] = []
    for key, text in pairs:
        label = f"matrix {show(str(key), 40)}"
        try:
            line = parse_matrix(text, constants)
        except GrammarError as err:
            raise src.error("matrices", str(key), label, str(err)) from None
        if isinstance(text, str):
            names = {
                n.id
                for n in ast.walk(ast.parse(text.strip(), mode="eval"))
                if isinstance(n, ast.Name)
            }
            used |= names & set(constants)
        out.append(MatrixDef(str(key), line.terms, line.identity, line.heads, line.rows))
    return tuple(out)


def _check_declared(cell: Cell, declared: tuple[str, ...], src: _Source) -> None:
    """Every vector parameter is declared in ``parameters = [...]``, and every declared one used."""
    vectors = {p.name for p in cell.iter_params("vector")}
    seen = [cell.input, *cell.state, *declared]
    for node in cell.nodes:
        if isinstance(node, Elementwise):
            for sym in sorted(node.expr.free_symbols, key=str):
                nm = str(sym)
                if nm in vectors and nm not in declared:
                    hint = did_you_mean(nm, sorted(seen))
                    raise src.error(
                        "equations",
                        node.name,
                        f"equation {show(node.name, 40)}",
                        f"undefined symbol {nm!r}{hint} (vector parameters must be declared "
                        "in parameters = [...])",
                    )
        seen.append(node.name)
    unused = [p for p in declared if p not in vectors]
    if unused:
        raise src.error(
            None,
            "parameters",
            "parameters",
            f"{unused[0]!r} is declared but not used in any elementwise line",
        )


def _update(
    value: object, state: tuple[str, ...], keys: list[Any], src: _Source
) -> tuple[tuple[tuple[str, str], ...], EquationError | None]:
    """The update pairs that resolve, and the first problem with the ``[update]`` table; the
    problem is raised only if the cell's other invariants hold (they name earlier lines)."""
    try:
        return _resolved_update(value, state, keys, src), None
    except EquationError as err:
        given = value if isinstance(value, Mapping) else {}
        pairs = [(s, given.get(s, f"{s}_new")) for s in state]
        return tuple((s, n) for s, n in pairs if isinstance(n, str) and n in keys), err


def _resolved_update(
    value: object, state: tuple[str, ...], keys: list[Any], src: _Source
) -> tuple[tuple[str, str], ...]:
    pairs = _pairs(value, "update", src) if value is not None else []
    given: dict[str, str] = {}
    for s, node in pairs:
        if s not in state:
            raise src.error(
                "update",
                str(s),
                f"update {show(str(s), 40)}",
                f"not a state vector (state: {', '.join(state)})",
            )
        if not isinstance(node, str) or node not in keys:
            hint = did_you_mean(str(node), [str(k) for k in keys])
            raise src.error(
                "update", s, f"update {s!r}", f"{show(str(node), 40)} is not an equation{hint}"
            )
        given[s] = node
    for s in state:
        if s not in given:
            if value is None and f"{s}_new" in keys:
                given[s] = f"{s}_new"
                continue
            hint = "" if value is not None else f" (or define an equation named {s}_new)"
            raise src.error(
                None,
                "update",
                "update",
                f'no update for state {s!r}: add {s} = "<equation>" under [update]{hint}',
            )
    return tuple((s, given[s]) for s in state)


def define_cell(
    name: str,
    state: Sequence[str] | str,
    equations: Mapping[str, str | sp.Expr] | Sequence[tuple[str, str | sp.Expr]],
    input: str = "x",  # noqa: A002 - the cell's own word for it
    reference: str = "",
    *,
    update: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    parameters: Sequence[str] = (),
    constants: Mapping[str, float] | None = None,
    matrices: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    description: str = "",
    convention: str = "",
    sizes: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
) -> Cell:
    """A :class:`~gradflow.cells.graph.Cell` from equation strings (or SymPy expressions).

    Args:
        name: the cell's name, kebab-case (``my-cell``; not a catalogue name).
        state: the state vectors, in stacking order (a single name may be given as a string).
        equations: ``node = expression`` in order, as a dict or ``(node, expression)`` pairs;
            see :mod:`gradflow.cells.grammar` for the grammar. Elementwise nodes may be SymPy
            expressions instead of text.
        input: the input vector's name.
        reference: the citation, as text.
        update: which node becomes each state vector; by default each state ``s`` takes the
            node ``s_new``.
        parameters: the vector (diagonal) parameters elementwise lines may use.
        constants: named hyperparameters ``{name: number}`` (``dt``, ``gamma``) that
            elementwise lines may use; they enter the equations as numbers, are recorded in
            ``Cell.constants`` and are never parameters of the weight file.
        matrices: matrices built from weights ``{name: "W - transpose(W) - gamma * I"}``
            (linear combinations of weights, their transposes and the identity ``I``, with
            numbers and constants as coefficients), used in affine lines like weights.
        description: one line for listings.
        convention: how the cell mixes old and new state (documentation).
        sizes: state vectors and nodes of the second size ``p`` (``{"h": "p", "h_new":
            "p"}``: the projected LSTM's ``h``); every other vector has ``n`` units. Weights
            then have the shape ``(size of node, size of source)``.

    Raises:
        EquationError: one line naming the equation and the problem.
    """

    def as_list(names: object) -> object:
        if isinstance(names, str):
            return [names]
        return list(names) if isinstance(names, Sequence) else names

    spec = {
        "name": name,
        "state": as_list(state),
        "equations": equations,
        "input": input,
        "reference": reference,
        "update": update,
        "parameters": as_list(parameters),
        "constants": constants,
        "matrices": matrices,
        "description": description,
        "convention": convention,
        "sizes": sizes,
    }
    return _build(spec, _Source(f"cell {show(str(name), 40)}", {}))


def load_cell_file(path: str | os.PathLike[str]) -> Cell:
    """Read a TOML cell file (format in the module docstring and docs/cell-files.md).

    Raises:
        EquationError: unreadable file, bad TOML, wrong types, or an unsafe or malformed
            equation; the message starts with the file name and line.
    """
    shown = os.fspath(path)
    label = shown if shown.isprintable() else repr(shown)
    if not os.path.isdir(path):  # a directory: open() below says it cannot read it
        # a FIFO or a device blocks or never ends: refuse it before it is opened
        check_regular_file(
            path,
            EquationError,
            what="cell",
            note="a cell file must be a TOML file",
            max_bytes=MAX_FILE_BYTES,
            too_big="{path}: cell file is larger than {limit} bytes",
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise EquationError(f"{label}: no such cell file") from None
    except OSError as err:
        raise EquationError(f"{label}: cannot read the cell file ({err.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise EquationError(f"{label}: cell file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise EquationError(f"{label}: not UTF-8 text (byte {err.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise EquationError(f"{label}: not valid TOML: {' '.join(str(err).split())}") from None
    except (RecursionError, MemoryError):
        raise EquationError(f"{label}: not valid TOML: nested too deeply") from None
    src = _Source(label, _key_lines(text))
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise src.error(
            None,
            unknown[0],
            f"key {show(unknown[0], 40)}",
            f"unknown key; allowed: {', '.join(TOP_KEYS)}",
        )
    spec = dict(data)
    spec.setdefault("name", Path(shown).stem)
    if "state" not in spec or "equations" not in spec:
        missing = "state" if "state" not in spec else "equations"
        raise EquationError(f"{label}: missing {missing!r} (see docs/cell-files.md)")
    return _build(spec, src)


__all__ = ["define_cell", "load_cell_file"]
