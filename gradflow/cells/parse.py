r"""User-defined cells from equation text, parsed safely (never ``eval``/``sympify``).

A cell file is TOML (read with :mod:`tomllib`)::

    name = "leaky-rnn"
    state = ["h"]
    input = "x"                     # optional, default "x"
    parameters = ["alpha"]          # optional: vector (diagonal) parameters
    reference = "Jaeger et al. (2007)"   # optional; also description, convention
    [equations]                     # in order; each line is affine or elementwise
    a = "W_x @ x + W_h @ h + b"
    h_new = "(1 - alpha) * h + alpha * tanh(a)"
    [update]                        # optional when every state s has a node s_new
    h = "h_new"

*Affine* lines are the ones that use ``@``: a ``+``-sum of ``WEIGHT @ VECTOR`` terms and bias
names (``VECTOR`` is the input, a state or an earlier node; weights and biases are declared by
appearing there). Every other line is *elementwise*: a scalar expression applied unit by unit,
made of numbers, names (states, earlier nodes, declared ``parameters``), ``+ - * /``, ``**``
with a constant exponent of at most 8 in size, unary ``+``/``-`` and calls of the functions in
:data:`gradflow.cells.functions.FUNCTIONS` with one argument. The text is parsed with
:func:`ast.parse` and walked against that whitelist; SymPy objects are built with their
constructors. Anything else (attributes, subscripts, keywords, strings, lambdas, names starting
with ``_``, unknown functions, undefined symbols) is an :class:`~gradflow.errors.EquationError`
whose one-line message names the file, the line and the equation. docs/cell-files.md has the
full format.

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
import difflib
import os
import re
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from ..errors import CellError, EquationError
from .functions import FUNCTIONS
from .graph import Affine, Cell, Elementwise, check_name

MAX_TEXT = 2000  #: characters in one equation
MAX_DEPTH = 50  #: nesting of parentheses, calls and unary signs in one equation
MAX_EXPONENT = 8  #: largest |exponent| after ``**``
MAX_CONSTANT = 1e12  #: largest number literal
MAX_BITS = 1024  #: largest integer numerator/denominator a constant may grow to
MAX_EQUATIONS = 200
MAX_STATES = 8
MAX_FILE_BYTES = 1_000_000
TOP_KEYS = (
    "name",
    "state",
    "input",
    "parameters",
    "reference",
    "description",
    "convention",
    "equations",
    "update",
)
_KNOWN = ", ".join(sorted(FUNCTIONS))
_FUNCTION_CLASSES = tuple(f for f in FUNCTIONS.values() if isinstance(f, type))
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")


class _Reject(Exception):
    """A problem with one equation; re-raised as EquationError with its location."""


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _brief(value: object) -> str:
    return _show(value) if isinstance(value, str) else type(value).__name__


@dataclass(frozen=True)
class _Origin:
    """Where a definition came from: a file (with its text, for line numbers) or the API."""

    label: str
    text: str | None = None

    def at(self, table: str | None, key: str) -> str:
        line = _line_of(self.text, table, key) if self.text is not None else None
        return f"{self.label}:{line}" if line else self.label

    def error(self, table: str | None, key: str, what: str, problem: str) -> EquationError:
        return EquationError(f"{self.at(table, key)}: {what}: {problem}")


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """1-based line of ``key = ...`` inside ``[table]`` (top level for None), if findable."""
    current: str | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped.startswith("["):  # string operations only: linear in the line length
            current = stripped.lstrip("[").split("]", 1)[0].strip().strip("\"'")
            if table is None and current == key:
                return lineno  # a top-level key written as a table header
        elif current == table:
            for written in (key, f'"{key}"', f"'{key}'"):
                if stripped.startswith(written) and stripped[len(written) :].lstrip()[:1] == "=":
                    return lineno
    return None


class _Scope:
    """Names defined so far while reading the equations in order."""

    def __init__(
        self, input_name: str, state: Sequence[str], parameters: Sequence[str], later: Sequence[str]
    ) -> None:
        self.input = input_name
        self.vectors: set[str] = {input_name, *state}
        self.declared = set(parameters)
        self.kinds: dict[str, str] = {}  # weight/bias names from affine lines
        self.weight_src: dict[str, str] = {}
        self.later = set(later)
        self.used_params: set[str] = set()

    def name(self, name: str, what: str) -> str:
        if name.startswith("_"):
            raise _Reject(f"name {name!r} is not allowed (names may not start with '_')")
        if name in FUNCTIONS:
            hint = f"call it like {name}(a)" if what == "symbol" else f"it cannot name a {what}"
            raise _Reject(f"{name!r} is a function; {hint}")
        try:
            return check_name(name, what)
        except CellError as err:
            raise _Reject(str(err)) from None

    def missing(self, name: str) -> _Reject:
        if name in self.later:
            return _Reject(
                f"{name!r} is used before it is defined (equations run in order; "
                f"move {name!r} above this line)"
            )
        close = difflib.get_close_matches(name, sorted(self.vectors | self.declared), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return _Reject(
            f"undefined symbol {name!r}{hint} (vector parameters must be declared "
            "in parameters = [...])"
        )

    def elementwise_symbol(self, name: str) -> sp.Symbol:
        self.name(name, "symbol")
        if name == self.input:
            raise _Reject(
                f"the input {name!r} has size d; it may only enter an affine line "
                f"as WEIGHT @ {name}"
            )
        if name in self.kinds:
            raise _Reject(
                f"{name!r} is a {self.kinds[name]} of an affine line and cannot "
                "appear in an elementwise line"
            )
        if name in self.declared:
            self.used_params.add(name)
        elif name not in self.vectors:
            raise self.missing(name)
        return sp.Symbol(name, real=True)

    def parameter(self, name: str, kind: str) -> None:
        self.name(name, kind)
        if name in self.vectors:
            raise _Reject(f"{name!r} is a vector, not a {kind}")
        if name in self.later:
            raise _Reject(f"{name!r} names an equation, so it cannot also be a {kind}")
        if name in self.declared:
            raise _Reject(
                f"{name!r} is declared in parameters = [...] (a vector parameter) "
                f"but used as a {kind}"
            )
        if self.kinds.setdefault(name, kind) != kind:
            raise _Reject(f"{name!r} is used both as {self.kinds[name]} and {kind}")

    def source(self, name: str) -> str:
        self.name(name, "vector")
        if name not in self.vectors:
            if name in self.declared or name in self.kinds:
                raise _Reject(
                    f"{name!r} is a parameter; the right side of '@' must be the "
                    "input, a state or an earlier node"
                )
            raise self.missing(name)
        return name


# -- elementwise expressions -----------------------------------------------------------------
_FORBIDDEN = {
    ast.Attribute: "attribute access ('.') is not allowed",
    ast.Subscript: "subscripts ('[...]') are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "'and'/'or' are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.NamedExpr: "':=' is not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.Starred: "'*' unpacking is not allowed",
}


def _digits(value: int | float) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)  # at most MAX_TEXT digits: within Python's int-to-str limit
    return text if len(text) <= 20 else f"{text[:8]}... ({len(text)} digits)"


def _number(value: Any) -> sp.Expr:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "strings" if isinstance(value, str | bytes) else f"{type(value).__name__} constants"
        raise _Reject(f"{kind} are not allowed; only int and float numbers")
    if not abs(value) <= MAX_CONSTANT:  # also NaN/inf; no float() of a huge int
        raise _Reject(f"number {_digits(value)} is too large (at most {MAX_CONSTANT:g} in size)")
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


def _check_numbers(expr: sp.Expr) -> sp.Expr:
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise _Reject("the expression is not finite (division by zero or log(0)?)")
    if expr.has(sp.I):
        raise _Reject("the expression is not real (square root or log of a negative number?)")
    for num in expr.atoms(sp.Number):
        if isinstance(num, sp.Rational):
            if max(abs(num.p).bit_length(), num.q.bit_length()) > MAX_BITS:
                raise _Reject("a constant in the expression grows too large")
        elif isinstance(num, sp.Float) and not abs(float(num)) < 1e300:
            raise _Reject("a constant in the expression grows too large")
    return expr


def _exponent(node: ast.expr) -> sp.Expr:
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if (
        not isinstance(node, ast.Constant)
        or isinstance(node.value, bool)
        or not isinstance(node.value, int | float)
    ):
        raise _Reject("the exponent of '**' must be a number, e.g. h**2")
    value = sign * node.value
    if not abs(value) <= MAX_EXPONENT:
        raise _Reject(f"exponent {_digits(value)} is too large (at most {MAX_EXPONENT} in size)")
    if isinstance(value, float) and not value.is_integer():
        return sp.Rational(repr(value))  # exact decimal: h**0.5 is sqrt(h)
    return sp.Integer(int(value))


def _chain(node: ast.expr, ops: tuple[type, ...]) -> list[tuple[bool, ast.expr]]:
    """Flatten a left-deep chain of ``ops`` (e.g. ``a - b + c``) into (inverted, operand)."""
    out: list[tuple[bool, ast.expr]] = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, ops):
        out.append((isinstance(node.op, ast.Sub | ast.Div), node.right))
        node = node.left
    out.append((False, node))
    return out[::-1]


def _elementwise(node: ast.expr, scope: _Scope, depth: int = 0) -> sp.Expr:
    if depth > MAX_DEPTH:
        raise _Reject(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.Name):
        return scope.elementwise_symbol(node.id)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add | ast.Sub):
            terms = [
                (neg, _elementwise(e, scope, depth + 1))
                for neg, e in _chain(node, (ast.Add, ast.Sub))
            ]
            return _check_numbers(sp.Add(*(-t if neg else t for neg, t in terms)))
        if isinstance(node.op, ast.Mult | ast.Div):
            factors = [
                (inv, _elementwise(e, scope, depth + 1))
                for inv, e in _chain(node, (ast.Mult, ast.Div))
            ]
            return _check_numbers(sp.Mul(*(sp.Pow(f, -1) if inv else f for inv, f in factors)))
        if isinstance(node.op, ast.Pow):
            base, exponent = _elementwise(node.left, scope, depth + 1), _exponent(node.right)
            if base.is_number and base.is_negative and not exponent.is_integer:
                raise _Reject("a negative number to a fractional power is not real")
            return _check_numbers(sp.Pow(base, exponent))
        if isinstance(node.op, ast.MatMult):  # pragma: no cover - affine lines are split off
            raise _Reject("'@' may only appear in an affine line")
        raise _Reject(f"operator {type(node.op).__name__} is not allowed; use + - * / **")
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return -_elementwise(node.operand, scope, depth + 1)
        if isinstance(node.op, ast.UAdd):
            return _elementwise(node.operand, scope, depth + 1)
        raise _Reject(f"operator {type(node.op).__name__} is not allowed; use + - * / **")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise _Reject(_FORBIDDEN[ast.Attribute])
            raise _Reject("only a function name can be called, e.g. tanh(a)")
        fname = node.func.id
        if fname.startswith("_"):
            raise _Reject(f"name {fname!r} is not allowed (names may not start with '_')")
        if fname not in FUNCTIONS:
            raise _Reject(f"unknown function {fname!r}; known: {_KNOWN}")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise _Reject(f"{fname} takes exactly one positional argument and no keywords")
        arg = _elementwise(node.args[0], scope, depth + 1)
        return _check_numbers(FUNCTIONS[fname](arg))
    for kind, message in _FORBIDDEN.items():
        if isinstance(node, kind):
            raise _Reject(message)
    if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
        raise _Reject("lists, tuples, sets and dicts are not allowed")
    raise _Reject(f"{type(node).__name__} is not allowed in an equation")


def _check_sympy(expr: sp.Expr, scope: _Scope) -> sp.Expr:
    """Validate a SymPy expression given through the Python API: same names, same functions."""
    _check_numbers(expr)
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Symbol):
            scope.elementwise_symbol(sub.name)
        elif isinstance(sub, sp.Function):
            if not isinstance(sub, _FUNCTION_CLASSES):
                raise _Reject(f"unknown function {type(sub).__name__!r}; known: {_KNOWN}")
        elif not isinstance(sub, sp.Add | sp.Mul | sp.Pow | sp.Number | sp.NumberSymbol):
            raise _Reject(f"{type(sub).__name__} is not supported in equations")
    return expr


# -- affine lines ----------------------------------------------------------------------------
def _affine(name: str, tree: ast.expr, scope: _Scope, source: str) -> Affine:
    def shown(node: ast.expr) -> str:
        return _show(ast.get_source_segment(source, node) or "")

    terms: list[tuple[str, str]] = []
    biases: list[str] = []
    for negated, term in _chain(tree, (ast.Add, ast.Sub)):
        if negated:
            raise _Reject(
                "an affine line may only add terms with '+' (put signs into the weights or biases)"
            )
        if isinstance(term, ast.BinOp) and isinstance(term.op, ast.MatMult):
            if not (isinstance(term.left, ast.Name) and isinstance(term.right, ast.Name)):
                raise _Reject(
                    f"each '@' term must be WEIGHT @ VECTOR with two names, got {shown(term)}"
                )
            w, src = term.left.id, scope.source(term.right.id)
            scope.parameter(w, "weight")
            size = "d" if src == scope.input else "n"
            first = scope.weight_src.setdefault(w, size)
            if first != size:
                raise _Reject(f"weight {w!r} multiplies vectors of size n and d; use two weights")
            terms.append((w, src))
        elif isinstance(term, ast.Name):
            if term.id in scope.vectors:
                raise _Reject(
                    f"{term.id!r} is a vector; an affine line adds only WEIGHT @ "
                    "VECTOR terms and bias names (add vectors in an elementwise line)"
                )
            scope.parameter(term.id, "bias")
            biases.append(term.id)
        else:
            raise _Reject(
                "'@' may only appear in an affine line: a '+'-sum of WEIGHT @ VECTOR "
                "terms and bias names, with no other operations (apply functions in "
                f"a separate line); got term {shown(term)}"
            )
    return Affine(name, tuple(terms), tuple(biases))


def _parse_line(name: str, value: object, scope: _Scope) -> Affine | Elementwise:
    if isinstance(value, sp.Expr):
        return Elementwise(name, _check_sympy(value, scope))
    if not isinstance(value, str):
        raise _Reject(f"must be a string (or a SymPy expression), got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise _Reject(f"is {len(value)} characters long (at most {MAX_TEXT})")
    if not value.isascii():
        raise _Reject("only ASCII characters are allowed")
    source = value.strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. SyntaxWarning "invalid decimal literal"
            tree = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError, Warning) as err:
        msg = " ".join(str(getattr(err, "msg", None) or err or "too complex").split())
        raise _Reject(f"not a valid expression ({msg}): {_show(value)}") from None
    if any(isinstance(n, ast.MatMult) for n in ast.walk(tree)):
        return _affine(name, tree, scope, source)
    return Elementwise(name, _elementwise(tree, scope))


# -- assembling a cell -----------------------------------------------------------------------
def _pairs(value: object, what: str, origin: _Origin) -> list[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        return list(value.items())
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(p, tuple | list) and len(p) == 2 for p in value)
    ):
        return [tuple(p) for p in value]
    raise EquationError(
        f"{origin.at(None, what)}: {what} must be a table (dict) of "
        f"name = value, got {type(value).__name__}"
    )


def _names(value: object, what: str, origin: _Origin, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise EquationError(
            f"{origin.at(None, what)}: {what} must be a list of strings, got {_brief(value)}"
        )
    if len(value) > limit:
        raise EquationError(
            f"{origin.at(None, what)}: {what} lists {len(value)} names (at most {limit})"
        )
    return tuple(value)


def _text(value: object, what: str, origin: _Origin) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise EquationError(
            f"{origin.at(None, what)}: {what} must be a string of at most {MAX_TEXT} characters"
        )
    return value


def _build(spec: Mapping[str, Any], origin: _Origin) -> Cell:
    """Validate a definition (TOML table or define_cell arguments) and make the Cell."""
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise EquationError(
            f"{origin.at(None, 'name')}: name must be letters, digits, '-' or "
            f"'_' starting with a letter (at most 64), got {_brief(name)}"
        )
    from . import CATALOGUE

    if name in CATALOGUE:
        raise EquationError(
            f"{origin.at(None, 'name')}: name {name!r} is a catalogue cell; choose another name"
        )
    state = _names(spec.get("state"), "state", origin, MAX_STATES)
    params = _names(spec.get("parameters", ()), "parameters", origin, MAX_EQUATIONS)
    input_name = _text(spec.get("input", "x"), "input", origin)
    texts = {
        k: _text(spec.get(k, ""), k, origin) for k in ("reference", "description", "convention")
    }
    equations = _pairs(spec.get("equations"), "equations", origin)
    if not equations or len(equations) > MAX_EQUATIONS:
        raise EquationError(
            f"{origin.at(None, 'equations')}: equations must define 1 to "
            f"{MAX_EQUATIONS} nodes, got {len(equations)}"
        )
    keys = [k for k, _ in equations]
    scope = _Scope(input_name, state, params, [k for k in keys if isinstance(k, str)])
    seen: set[str] = set()
    for what, names in (("input", (input_name,)), ("state", state), ("parameters", params)):
        for nm in names:
            try:
                scope.name(nm, what)
            except _Reject as err:
                raise origin.error(None, what, what, str(err)) from None
            if nm in seen:
                raise origin.error(None, what, what, f"{nm!r} is defined twice")
            seen.add(nm)
    nodes: list[Affine | Elementwise] = []
    for key, value in equations:
        try:
            if not isinstance(key, str):
                raise _Reject(f"equation names must be strings, got {key!r}")
            scope.name(key, "node")
            if key in scope.vectors or key in scope.kinds or key in scope.declared:
                raise _Reject(f"{key!r} is defined twice")
            scope.later.discard(key)
            nodes.append(_parse_line(key, value, scope))
        except _Reject as err:
            label = f"equation {_show(str(key), 40)}"
            raise origin.error("equations", str(key), label, str(err)) from None
        scope.vectors.add(key)
    unused = [p for p in params if p not in scope.used_params]
    if unused:
        raise origin.error(
            None,
            "parameters",
            "parameters",
            f"{unused[0]!r} is declared but not used in any elementwise line",
        )
    update = _update(spec.get("update"), state, keys, origin)
    try:
        return Cell(
            name=name, state=state, nodes=tuple(nodes), update=update, input=input_name, **texts
        )
    except CellError as err:
        raise EquationError(f"{origin.label}: {err}") from None


def _update(
    value: object, state: tuple[str, ...], keys: list[Any], origin: _Origin
) -> tuple[tuple[str, str], ...]:
    pairs = _pairs(value, "update", origin) if value is not None else []
    given: dict[str, str] = {}
    for s, node in pairs:
        if s not in state:
            raise origin.error(
                "update",
                str(s),
                f"update {_show(str(s), 40)}",
                f"not a state vector (state: {', '.join(state)})",
            )
        if not isinstance(node, str) or node not in keys:
            close = difflib.get_close_matches(str(node), [str(k) for k in keys], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise origin.error(
                "update", s, f"update {s!r}", f"{_show(str(node), 40)} is not an equation{hint}"
            )
        given[s] = node
    for s in state:
        if s not in given:
            if value is None and f"{s}_new" in keys:
                given[s] = f"{s}_new"
                continue
            hint = "" if value is not None else f" (or define an equation named {s}_new)"
            raise origin.error(
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
    description: str = "",
    convention: str = "",
) -> Cell:
    """A :class:`~gradflow.cells.graph.Cell` from equation strings (or SymPy expressions).

    Args:
        name: the cell's name (letters, digits, ``-``, ``_``; not a catalogue name).
        state: the state vectors, in stacking order (a single name may be given as a string).
        equations: ``node = expression`` in order, as a dict or ``(node, expression)`` pairs;
            see the module docstring for the grammar. Elementwise nodes may be SymPy
            expressions instead of text.
        input: the input vector's name.
        reference: the citation, as text.
        update: which node becomes each state vector; by default each state ``s`` takes the
            node ``s_new``.
        parameters: the vector (diagonal) parameters elementwise lines may use.
        description: one line for listings.
        convention: how the cell mixes old and new state (documentation).

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
        "description": description,
        "convention": convention,
    }
    return _build(spec, _Origin(f"cell {_show(str(name), 40)}"))


def load_cell_file(path: str | os.PathLike[str]) -> Cell:
    """Read a TOML cell file (format in the module docstring and docs/cell-files.md).

    Raises:
        EquationError: unreadable file, bad TOML, wrong types, or an unsafe or malformed
            equation; the message starts with the file name and line.
    """
    shown = os.fspath(path)
    label = shown if shown.isprintable() else repr(shown)
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
    origin = _Origin(label, text)
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise origin.error(
            None,
            unknown[0],
            f"key {_show(unknown[0], 40)}",
            f"unknown key; allowed: {', '.join(TOP_KEYS)}",
        )
    spec = dict(data)
    spec.setdefault("name", Path(shown).stem)
    if "state" not in spec or "equations" not in spec:
        missing = "state" if "state" not in spec else "equations"
        raise EquationError(f"{label}: missing {missing!r} (see docs/cell-files.md)")
    return _build(spec, origin)


__all__ = ["define_cell", "load_cell_file"]
