r"""The equation grammar: Python-syntax text, walked against a whitelist, built into SymPy.

An equation is parsed with :func:`ast.parse` (never ``eval``/``sympify``; SymPy issue #24990)
and its tree walked node by node; only these become SymPy objects, through their constructors:

* *affine* lines (the ones with ``@``): a ``+``-sum of ``WEIGHT @ VECTOR`` terms and bias names;
* *elementwise* lines: numbers, names, ``+ - * /``, ``**`` with a constant exponent of at most
  :data:`MAX_EXPONENT` in size, unary ``+``/``-`` and one-argument calls of the functions in
  :data:`~gradflow.cells.functions.FUNCTIONS`.

Whether a name is defined, and as what, is a property of the cell, checked in one place by
:class:`~gradflow.cells.graph.Cell`; the grammar only checks that names are plain identifiers.

Constants are bounded so that no question about them costs more than a float evaluation: every
constant sub-expression (``exp(exp(3))``, ``sqrt(2)/7``) is evaluated in float64 as it is
built, and refused when its size passes :data:`MAX_CONSTANT_VALUE` or, inside ``sin``/``cos``,
:data:`MAX_PERIODIC_ARGUMENT` (deciding the sign of ``sin(10^40)`` needs 40 digits). Signs
are read from that float, never from SymPy's assumptions, which may evaluate a number such as
``exp(exp(exp(100)))`` at unbounded precision.

Matrix definitions (:func:`parse_matrix`) are linear combinations of weights,
``transpose(...)``, ``heads(K, H)``, ``rows(w)`` and ``I``. One concept (the equation grammar),
so longer than the usual module.

Examples:
    >>> print(parse_line("(1 - alpha)*h + alpha*tanh(a)"))
    alpha*tanh(a) + h*(1 - alpha)
    >>> parse_line("W @ x + U @ h + b")
    AffineLine(terms=(('W', 'x'), ('U', 'h')), biases=('b',))
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..errors import CellError
from .functions import ARITY, FUNCTIONS, hard_sigmoid, relu, sigmoid, softplus
from .graph import check_name

MAX_TEXT = 2000  #: characters in one equation
MAX_DEPTH = 50  #: nesting of parentheses, calls and unary signs in one equation
MAX_EXPONENT = 8  #: largest |exponent| after ``**``
MAX_CONSTANT = 1e12  #: largest number literal
MAX_BITS = 1024  #: largest integer numerator/denominator a constant may grow to
MAX_CONSTANT_VALUE = 1e100  #: largest size of a constant sub-expression, e.g. ``exp(230)``
MAX_PERIODIC_ARGUMENT = 1e6  #: largest constant argument of ``sin``/``cos``
MAX_HEADS = 4096  #: largest number of heads of a block-diagonal weight (F2)
KNOWN = ", ".join(sorted(FUNCTIONS))
_FUNCTION_CLASSES = tuple(f for f in FUNCTIONS.values() if isinstance(f, type))


class GrammarError(Exception):
    """A problem with one equation; the caller adds where the equation came from."""


def show(text: str, limit: int = 60) -> str:
    """``repr`` of ``text``, shortened to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@dataclass(frozen=True)
class AffineLine:
    """A parsed affine line: ``(weight, source)`` terms and bias names, as written."""

    terms: tuple[tuple[str, str], ...]
    biases: tuple[str, ...]


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


def symbol(name: str) -> sp.Symbol:
    """The real symbol for a name in an elementwise line (a plain identifier, no function)."""
    try:
        return sp.Symbol(check_name(name, "symbol"), real=True)
    except CellError as err:
        raise GrammarError(str(err)) from None


# -- constants -------------------------------------------------------------------------------
def _digits(value: int | float) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)  # at most MAX_TEXT digits: within Python's int-to-str limit
    return text if len(text) <= 20 else f"{text[:8]}... ({len(text)} digits)"


def _number(value: Any) -> sp.Expr:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "strings" if isinstance(value, str | bytes) else f"{type(value).__name__} constants"
        raise GrammarError(f"{kind} are not allowed; only int and float numbers")
    if not abs(value) <= MAX_CONSTANT:  # also NaN/inf; no float() of a huge int
        raise GrammarError(
            f"number {_digits(value)} is too large (at most {MAX_CONSTANT:g} in size)"
        )
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x: float) -> float:
    e = math.exp(-abs(x))
    return (1.0 if x >= 0 else e) / (1.0 + e)


_FLOAT_FUNCTIONS: dict[Any, Callable[[float], float]] = {
    sigmoid: _sigmoid,
    sp.tanh: math.tanh,
    relu: lambda x: max(x, 0.0),
    softplus: _softplus,
    hard_sigmoid: lambda x: min(max(x / 6.0 + 0.5, 0.0), 1.0),
    sp.exp: math.exp,
    sp.log: math.log,
    sp.Abs: abs,
    sp.sin: math.sin,
    sp.cos: math.cos,
}


def constant_value(expr: sp.Expr, memo: dict[sp.Expr, float] | None = None) -> float:
    """The float64 value of a constant expression, refusing ones that grow too large.

    Raises:
        GrammarError: the value (or a part of it) is not real and finite, is larger than
            :data:`MAX_CONSTANT_VALUE`, or a ``sin``/``cos`` argument is larger than
            :data:`MAX_PERIODIC_ARGUMENT`.
    """
    memo = {} if memo is None else memo
    if expr in memo:
        return memo[expr]
    too_large = GrammarError(
        f"a constant in the expression grows too large (at most {MAX_CONSTANT_VALUE:g} in size)"
    )
    try:
        if isinstance(expr, sp.Rational):
            if max(abs(expr.p).bit_length(), expr.q.bit_length()) > MAX_BITS:
                raise too_large
            value = expr.p / expr.q
        elif isinstance(expr, sp.Float | sp.NumberSymbol):
            value = float(expr)
        elif isinstance(expr, sp.Add):
            value = math.fsum(constant_value(a, memo) for a in expr.args)
        elif isinstance(expr, sp.Mul):
            value = math.prod(constant_value(a, memo) for a in expr.args)
        elif isinstance(expr, sp.Pow):
            base, exponent = (constant_value(a, memo) for a in expr.args)
            if base < 0 and not float(exponent).is_integer():
                raise GrammarError("a negative number to a fractional power is not real")
            value = math.pow(base, exponent)
        elif type(expr) in _FLOAT_FUNCTIONS:
            (arg,) = (constant_value(a, memo) for a in expr.args)
            if isinstance(expr, sp.sin | sp.cos) and abs(arg) > MAX_PERIODIC_ARGUMENT:
                raise GrammarError(
                    f"the argument of {type(expr).__name__} is too large to evaluate "
                    f"(at most {MAX_PERIODIC_ARGUMENT:g} in size)"
                )
            value = _FLOAT_FUNCTIONS[type(expr)](arg)
        else:
            raise GrammarError(f"{type(expr).__name__} is not supported in equations")
    except (OverflowError, ZeroDivisionError):
        raise too_large from None
    except ValueError:  # math domain error: log/sqrt of a negative number
        raise GrammarError(
            "the expression is not real (square root or log of a negative number?)"
        ) from None
    if not math.isfinite(value) or abs(value) > MAX_CONSTANT_VALUE:
        raise too_large
    memo[expr] = float(value)
    return float(value)


def check_numbers(expr: sp.Expr, memo: dict[sp.Expr, float] | None = None) -> sp.Expr:
    """``expr`` if it is finite and real and its constants are bounded, else raise."""
    _finite_real(expr)
    for num in expr.atoms(sp.Number):
        if isinstance(num, sp.Rational):
            if max(abs(num.p).bit_length(), num.q.bit_length()) > MAX_BITS:
                raise GrammarError("a constant in the expression grows too large")
        elif isinstance(num, sp.Float) and not abs(float(num)) < 1e300:
            raise GrammarError("a constant in the expression grows too large")
    if not expr.free_symbols:
        constant_value(expr, memo)
    return expr


def _finite_real(expr: sp.Expr) -> None:
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise GrammarError("the expression is not finite (division by zero or log(0)?)")
    if expr.has(sp.I):
        raise GrammarError("the expression is not real (square root or log of a negative number?)")


# -- elementwise expressions -----------------------------------------------------------------
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
        raise GrammarError("the exponent of '**' must be a number, e.g. h**2")
    value = sign * node.value
    if not abs(value) <= MAX_EXPONENT:
        raise GrammarError(
            f"exponent {_digits(value)} is too large (at most {MAX_EXPONENT} in size)"
        )
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


class _Elementwise:
    """The walk over one elementwise line; ``memo`` caches constant values."""

    def __init__(self) -> None:
        self.memo: dict[sp.Expr, float] = {}

    def checked(self, expr: sp.Expr) -> sp.Expr:
        return check_numbers(expr, self.memo)

    def walk(self, node: ast.expr, depth: int = 0) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise GrammarError(
                f"the expression is nested too deeply (more than {MAX_DEPTH} levels)"
            )
        if isinstance(node, ast.Constant):
            return _number(node.value)
        if isinstance(node, ast.Name):
            return symbol(node.id)
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.walk(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return self.walk(node.operand, depth + 1)
            raise GrammarError(f"operator {type(node.op).__name__} is not allowed; use + - * / **")
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        for kind, message in _FORBIDDEN.items():
            if isinstance(node, kind):
                raise GrammarError(message)
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            raise GrammarError("lists, tuples, sets and dicts are not allowed")
        raise GrammarError(f"{type(node).__name__} is not allowed in an equation")

    def binop(self, node: ast.BinOp, depth: int) -> sp.Expr:
        if isinstance(node.op, ast.Add | ast.Sub):
            terms = [(neg, self.walk(e, depth + 1)) for neg, e in _chain(node, (ast.Add, ast.Sub))]
            return self.checked(sp.Add(*(-t if neg else t for neg, t in terms)))
        if isinstance(node.op, ast.Mult | ast.Div):
            factors = [
                (inv, self.walk(e, depth + 1)) for inv, e in _chain(node, (ast.Mult, ast.Div))
            ]
            return self.checked(sp.Mul(*(sp.Pow(f, -1) if inv else f for inv, f in factors)))
        if isinstance(node.op, ast.Pow):
            base, exponent = self.walk(node.left, depth + 1), _exponent(node.right)
            if (
                not base.free_symbols
                and not exponent.is_integer
                and constant_value(base, self.memo) < 0
            ):
                raise GrammarError("a negative number to a fractional power is not real")
            return self.checked(sp.Pow(base, exponent))
        if isinstance(node.op, ast.MatMult):  # pragma: no cover - affine lines are split off
            raise GrammarError("'@' may only appear in an affine line")
        raise GrammarError(f"operator {type(node.op).__name__} is not allowed; use + - * / **")

    def call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise GrammarError(_FORBIDDEN[ast.Attribute])
            raise GrammarError("only a function name can be called, e.g. tanh(a)")
        fname = node.func.id
        if fname.startswith("_"):
            raise GrammarError(f"name {fname!r} is not allowed (names may not start with '_')")
        if fname not in FUNCTIONS:
            raise GrammarError(f"unknown function {fname!r}; known: {KNOWN}")
        arity = ARITY.get(fname, 1)
        if (
            node.keywords
            or len(node.args) != arity
            or any(isinstance(a, ast.Starred) for a in node.args)
        ):
            count = "one positional argument" if arity == 1 else f"{arity} positional arguments"
            raise GrammarError(f"{fname} takes exactly {count} and no keywords")
        args = [self.walk(a, depth + 1) for a in node.args]
        for arg in args:
            if not arg.free_symbols:  # bound the argument before SymPy's eval looks at it
                constant_value(arg, self.memo)
        if fname == "clip":
            if args[1].free_symbols or args[2].free_symbols:
                raise GrammarError("clip(x, lo, hi) takes constant bounds lo and hi")
            if constant_value(args[1], self.memo) > constant_value(args[2], self.memo):
                raise GrammarError("clip(x, lo, hi) needs lo <= hi")
        return self.checked(FUNCTIONS[fname](*args))


def check_sympy(expr: sp.Expr) -> sp.Expr:
    """Check a SymPy expression given through the Python API: same names, functions, bounds."""
    _finite_real(expr)
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Symbol):
            symbol(sub.name)
        elif isinstance(sub, sp.Function):
            if not isinstance(sub, _FUNCTION_CLASSES):
                raise GrammarError(f"unknown function {type(sub).__name__!r}; known: {KNOWN}")
        elif not isinstance(sub, sp.Add | sp.Mul | sp.Pow | sp.Number | sp.NumberSymbol):
            raise GrammarError(f"{type(sub).__name__} is not supported in equations")
    memo: dict[sp.Expr, float] = {}
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Expr) and not sub.free_symbols:
            constant_value(sub, memo)
    return check_numbers(expr, memo)


# -- affine lines ----------------------------------------------------------------------------
def _affine(tree: ast.expr, source: str) -> AffineLine:
    def shown(node: ast.expr) -> str:
        return show(ast.get_source_segment(source, node) or "")

    terms: list[tuple[str, str]] = []
    biases: list[str] = []
    for negated, term in _chain(tree, (ast.Add, ast.Sub)):
        if negated:
            raise GrammarError(
                "an affine line may only add terms with '+' (put signs into the weights or biases)"
            )
        if isinstance(term, ast.BinOp) and isinstance(term.op, ast.MatMult):
            if not (isinstance(term.left, ast.Name) and isinstance(term.right, ast.Name)):
                raise GrammarError(
                    f"each '@' term must be WEIGHT @ VECTOR with two names, got {shown(term)}"
                )
            terms.append((term.left.id, term.right.id))
        elif isinstance(term, ast.Name):
            biases.append(term.id)
        else:
            raise GrammarError(
                "'@' may only appear in an affine line: a '+'-sum of WEIGHT @ VECTOR "
                "terms and bias names, with no other operations (apply functions in "
                f"a separate line); got term {shown(term)}"
            )
    return AffineLine(tuple(terms), tuple(biases))


def syntax_size(value: object) -> int:
    """Nodes in the syntax tree of an equation's text (0 if it is no valid text: the parser
    says why when it reads it). Building SymPy objects costs about a millisecond per node, so
    a cell bounds their total (:data:`gradflow.cells.spec.MAX_SYNTAX_NODES`)."""
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isascii():
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sum(1 for _ in ast.walk(ast.parse(value.strip(), mode="eval")))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 0


def parse_line(value: object) -> AffineLine | sp.Expr:
    """An equation's right-hand side: an :class:`AffineLine` or an elementwise expression.

    Args:
        value: equation text, or (Python API) an elementwise SymPy expression.

    Raises:
        GrammarError: one line saying what is wrong with the text.
    """
    if isinstance(value, sp.Expr):
        return check_sympy(value)
    if not isinstance(value, str):
        raise GrammarError(f"must be a string (or a SymPy expression), got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise GrammarError(f"is {len(value)} characters long (at most {MAX_TEXT})")
    if not value.isascii():
        raise GrammarError("only ASCII characters are allowed")
    source = value.strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. SyntaxWarning "invalid decimal literal"
            tree = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError, Warning) as err:
        msg = " ".join(str(getattr(err, "msg", None) or err or "too complex").split())
        raise GrammarError(f"not a valid expression ({msg}): {show(value)}") from None
    if any(isinstance(n, ast.MatMult) for n in ast.walk(tree)):
        return _affine(tree, source)
    return _Elementwise().walk(tree)


# -- matrix definitions (F4) -----------------------------------------------------------------
_Linear = dict[tuple[str, bool], float]  # (weight, transposed) -> coefficient; ("I", False): I


@dataclass(frozen=True)
class MatrixLine:
    """A parsed matrix definition: ``(coefficient, weight, transposed)`` terms and the
    coefficient of the identity ``I``."""

    terms: tuple[tuple[float, str, bool], ...]
    identity: float
    heads: tuple[tuple[str, int], ...] = ()
    rows: tuple[str, ...] = ()


def parse_matrix(value: object, constants: dict[str, float] | None = None) -> MatrixLine:
    """A matrix definition: a linear combination of weights, ``transpose(W)`` and ``I``.

    Numbers and named ``constants`` may multiply or divide matrices
    (``(1 - beta) * (M + transpose(M)) - gamma * I``); products of two matrices are refused.

    Raises:
        GrammarError: one line saying what is wrong with the text.
    """
    consts = dict(constants or {})
    if not isinstance(value, str):
        raise GrammarError(f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise GrammarError(f"is {len(value)} characters long (at most {MAX_TEXT})")
    if not value.isascii():
        raise GrammarError("only ASCII characters are allowed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = ast.parse(value.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError, Warning) as err:
        msg = " ".join(str(getattr(err, "msg", None) or err or "too complex").split())
        raise GrammarError(f"not a valid expression ({msg}): {show(value)}") from None

    def scale(lin: _Linear, c: float) -> _Linear:
        return {k: c * v for k, v in lin.items()}

    def walk(node: ast.expr, depth: int) -> float | _Linear:
        if depth > MAX_DEPTH:
            raise GrammarError(f"the expression is nested too deeply (more than {MAX_DEPTH})")
        if isinstance(node, ast.Constant):
            return float(_number(node.value))
        if isinstance(node, ast.Name):
            if node.id in consts:
                return consts[node.id]
            if node.id == "I":
                return {("I", False): 1.0}
            try:
                plain.add(check_name(node.id, "weight"))
            except CellError as err:
                raise GrammarError(str(err)) from None
            return {(node.id, False): 1.0}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = walk(node.operand, depth + 1)
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return sign * inner if isinstance(inner, float) else scale(inner, sign)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "heads"
        ):
            return heads_call(node)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "rows"
        ):
            if node.keywords or len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                raise GrammarError("rows(w) takes one weight name")
            try:
                row_names.add(check_name(node.args[0].id, "weight"))
            except CellError as err:
                raise GrammarError(str(err)) from None
            return {(node.args[0].id, False): 1.0}
        if isinstance(node, ast.Call):
            if (
                not isinstance(node.func, ast.Name)
                or node.func.id != "transpose"
                or node.keywords
                or len(node.args) != 1
            ):
                raise GrammarError(
                    "the only calls in a matrix definition are transpose(M), heads(K, H) "
                    "and rows(w)"
                )
            inner = walk(node.args[0], depth + 1)
            if isinstance(inner, float):
                raise GrammarError("transpose(...) takes a matrix, not a number")
            return {(w, t if w == "I" else not t): c for (w, t), c in inner.items()}
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left, depth + 1), walk(node.right, depth + 1)
            if isinstance(node.op, ast.Add | ast.Sub):
                sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
                if isinstance(left, float) and isinstance(right, float):
                    return left + sign * right
                if isinstance(left, float) or isinstance(right, float):
                    raise GrammarError(
                        "a number cannot be added to a matrix; write it times I (gamma * I)"
                    )
                out = dict(left)
                for k, v in right.items():
                    out[k] = out.get(k, 0.0) + sign * v
                return out
            if isinstance(node.op, ast.Mult):
                if isinstance(left, float) and isinstance(right, float):
                    return left * right
                if isinstance(left, float):
                    return scale(right, left)  # type: ignore[arg-type]
                if isinstance(right, float):
                    return scale(left, right)
                raise GrammarError(
                    "products of two matrices are not supported (a matrix definition is a "
                    "linear combination of weights, their transposes and I)"
                )
            if isinstance(node.op, ast.Div) and isinstance(right, float):
                if right == 0:
                    raise GrammarError("division by zero")
                return left / right if isinstance(left, float) else scale(left, 1.0 / right)
            if isinstance(node.op, ast.MatMult):
                raise GrammarError(
                    "products of two matrices ('@') are not supported in a matrix definition"
                )
            raise GrammarError("a matrix definition uses only + - * / by numbers and transpose")
        raise GrammarError(f"{type(node).__name__} is not allowed in a matrix definition")

    found: dict[str, int] = {}
    plain: set[str] = set()
    row_names: set[str] = set()

    def heads_call(node: ast.Call) -> _Linear:
        args = node.args
        if (
            node.keywords
            or len(args) != 2
            or not isinstance(args[0], ast.Name)
            or not isinstance(args[1], ast.Constant)
            or isinstance(args[1].value, bool)
            or not isinstance(args[1].value, int)
            or not 1 <= args[1].value <= MAX_HEADS
        ):
            raise GrammarError(
                f"heads(K, H) takes a weight name and a number of heads 1..{MAX_HEADS}"
            )
        try:
            name = check_name(args[0].id, "weight")
        except CellError as err:
            raise GrammarError(str(err)) from None
        if found.setdefault(name, args[1].value) != args[1].value:
            raise GrammarError(f"{name!r} is given {found[name]} and {args[1].value} heads")
        return {(name, False): 1.0}

    result = walk(tree, 0)
    if both := sorted(plain & set(found)):
        raise GrammarError(f"{both[0]!r} is used both as heads({both[0]}, H) and as a whole matrix")
    if both := sorted((plain | set(found)) & row_names):
        raise GrammarError(f"{both[0]!r} is used both as rows({both[0]}) and as a matrix")
    if isinstance(result, float):
        raise GrammarError("a matrix definition must hold a weight or I, not only numbers")
    for c in result.values():
        if not (math.isfinite(c) and abs(c) <= MAX_CONSTANT_VALUE):
            raise GrammarError("a coefficient of the matrix definition is not a finite number")
    identity = result.pop(("I", False), 0.0)
    terms = tuple((c, w, t) for (w, t), c in result.items() if c != 0.0)
    used = {w for _, w, _ in terms}
    return MatrixLine(
        terms,
        identity,
        tuple((w, h) for w, h in found.items() if w in used),
        tuple(sorted(row_names & used)),
    )
