r"""Cells as data: a small graph of named vector quantities (DESIGN decision 1).

Every quantity of a cell is a vector of the hidden size ``n`` (the input has size ``d``), or,
where the cell declares it in ``sizes``, of a second size ``p`` (the projection size of
``nn.LSTM(proj_size=p)``: its ``h`` has ``p`` units, its cell state ``n``):

* :class:`Affine` nodes are ``a = W_1 u_1 + W_2 u_2 + b_1 + b_2``: weight matrices applied to
  earlier vectors (the input, the previous state or another node), plus bias vectors.
* :class:`Elementwise` nodes apply a scalar SymPy expression unit by unit, e.g.
  ``f = sigmoid(a_f)`` or ``c_new = f*c + i*g``. The expression's symbols name earlier
  vectors, the input, or *vector parameters* (diagonal weights such as peepholes).

A :class:`Cell` lists its state vectors (``("h",)`` or ``("h", "c")``), its nodes in an order
where each node uses only what comes before it, and which node becomes each state vector at the
next step. Parameters and their shapes follow from the nodes; ``torch_layout`` records how a
PyTorch module stacks them (tensor name -> row blocks in gate order). :class:`MatrixDef` s are
matrices built from weights (``W - W^T - gamma I``, ``heads(K, H)``, ``rows(w)``) that affine
nodes use like weights.

One concept (the cell graph and every invariant of it, checked in one place), so longer than
the usual module.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import sympy as sp

from ..errors import CellError, CellUpdateError, did_you_mean
from .functions import FUNCTIONS

if TYPE_CHECKING:
    from ..symbolic.jacobian import BlockJacobian

MAX_NAME_LENGTH = 32
MAX_CELL_NAME_LENGTH = 64
#: Cell names are kebab-case: lower-case letters and digits in words joined by ``-``.
CELL_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
#: Names of the array namespaces in generated code; no vector or parameter may take them.
RESERVED_NAMES = frozenset({"xp", "np"})
#: The hidden and input sizes: parameter shapes are written in them, so no parameter may take
#: them (nodes may: the GRU's new gate is ``n``, as PyTorch calls it).
RESERVED_PARAMETER_NAMES = frozenset({"n", "d"})
#: The sizes a state vector or node may have: ``n`` (the default) or ``p`` (a second size,
#: declared in ``Cell.sizes``; the projection size of a projected LSTM).
VECTOR_SIZES = ("n", "p")


def check_cell_name(name: object) -> str:
    """Return ``name`` if it is a kebab-case cell name (``lstm-peephole``), else raise."""
    if not isinstance(name, str) or len(name) > MAX_CELL_NAME_LENGTH or not CELL_NAME.match(name):
        shown = repr(name[:40] + "...") if isinstance(name, str) and len(name) > 40 else repr(name)
        raise CellError(
            f"cell name {shown} is not kebab-case (lower-case letters and digits in words "
            f"joined by '-', starting with a letter, at most {MAX_CELL_NAME_LENGTH} characters)"
        )
    return name


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe identifier for a vector or parameter, else raise.

    Names become SymPy symbols and, through code generation, parts of Python identifiers
    (always behind a prefix such as ``v_``); refusing anything but plain identifiers closes the
    door SymPy issue #24990 describes.
    """
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise CellError(f"{what} {name!r} is not a plain identifier (letters, digits, _)")
    if name.startswith("_"):
        raise CellError(f"name {name!r} is not allowed (names may not start with '_')")
    if name in FUNCTIONS:
        hint = "call it like {name}(a)" if what == "symbol" else f"it cannot name a {what}"
        raise CellError(f"{name!r} is a function; {hint.format(name=name)}")
    if keyword.iskeyword(name) or len(name) > MAX_NAME_LENGTH:
        raise CellError(
            f"{what} {name!r} is not allowed (keyword, or longer than {MAX_NAME_LENGTH} characters)"
        )
    if name in RESERVED_NAMES:
        raise CellError(f"{what} {name!r} is reserved for generated code; choose another name")
    return name


@dataclass(frozen=True)
class Origin:
    """Where a cell's definition came from, so that errors can name the file and line.

    Args:
        label: the file name (or ``cell 'NAME'`` for the Python API).
        lines: ``(key, line)`` pairs: the 1-based line of each equation (by node name) and of
            top-level keys (``state``, ``update``, ...) in the file, where known.
    """

    label: str
    lines: tuple[tuple[str, int], ...] = ()

    def at(self, key: str | None = None) -> str:
        """``label:line`` for ``key`` when its line is known, else ``label``."""
        line = dict(self.lines).get(key) if key is not None else None
        return f"{self.label}:{line}" if line else self.label


@dataclass(frozen=True)
class Affine:
    """``name = sum_k W_k @ source_k + sum_j bias_j`` (weights are parameters).

    Args:
        name: the vector this node defines.
        terms: ``(weight_name, source_name)`` pairs; ``source_name`` is the input, a state
            vector or an earlier node.
        biases: names of bias vectors added to the sum.
    """

    name: str
    terms: tuple[tuple[str, str], ...]
    biases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Elementwise:
    """``name = expr`` applied unit by unit; ``expr`` is a scalar SymPy expression."""

    name: str
    expr: sp.Expr


Node = Affine | Elementwise

#: The fixed identity matrix in a matrix definition (``W - transpose(W) - gamma * I``).
IDENTITY = "I"


@dataclass(frozen=True)
class MatrixDef:
    """A matrix built from weight parameters (F4): ``name = sum_k c_k P_k + c_I I``.

    Each term ``(c, weight, transposed)`` is a number times a weight parameter or its transpose;
    ``identity`` is the coefficient of the fixed ``n x n`` identity (F3: ``I @ x`` uses the
    input unit by unit, so ``d = n``). Affine lines use ``name`` like a weight; the derivation
    keeps it as one matrix symbol (``diag(v) @ M_h``), the kernels evaluate it from the
    parameters, and parameter gradients go through it to the weights the user trained
    (``dL/dW = sum_k c_k G`` or ``c_k G^T`` with ``G = dL/dM``).
    """

    name: str
    terms: tuple[tuple[float, str, bool], ...]
    identity: float = 0.0
    #: ``(weight, H)`` for weights stored as ``H`` diagonal blocks (F2, ``heads(K, H)``): the
    #: parameter has shape ``(H, n/H, n/H)`` and stands for ``blockdiag(K[0], ..., K[H-1])``
    heads: tuple[tuple[str, int], ...] = ()
    #: weights stored as one row ``w`` of shape ``(n,)`` and used as ``1_n w^T`` (F9,
    #: ``rows(w)``): every unit receives the same scalar ``w . v`` per step
    rows: tuple[str, ...] = ()

    @property
    def weights(self) -> tuple[str, ...]:
        """The weight parameters it reads, in order of first use."""
        return tuple(dict.fromkeys(w for _, w, _ in self.terms))

    def text(self) -> str:
        """``W_h - transpose(W_h) - 0.05*I``: the definition as a cell file writes it."""
        blocks = dict(self.heads)

        def shown(w: str) -> str:
            if w in self.rows:
                return f"rows({w})"
            return f"heads({w}, {blocks[w]})" if w in blocks else w

        parts = [(c, f"transpose({shown(w)})" if t else shown(w)) for c, w, t in self.terms]
        if self.identity:
            parts.append((self.identity, IDENTITY))
        out = ""
        for k, (c, m) in enumerate(parts):
            sign = "-" if c < 0 else "+"
            size = abs(c)
            body = m if size == 1 else f"{size:g}*{m}"
            out += (f"-{body}" if sign == "-" else body) if k == 0 else f" {sign} {body}"
        return out or "0"

    def evaluate(self, params: Mapping[str, Any], n: int) -> Any:
        """The numeric ``(n, n)`` matrix (NumPy) from the parameters by name."""
        out = self.identity * np.eye(n)
        blocks = dict(self.heads)
        for c, w, t in self.terms:
            a = np.asarray(params[w], dtype=np.float64)
            if w in blocks:
                a = block_diagonal(a, n, w)
            elif w in self.rows:
                if a.shape != (n,):
                    raise CellError(f"{w}: rows(w) needs w of shape (n,) = ({n},); got {a.shape}")
                a = np.tile(a, (n, 1))
            out = out + c * (a.T if t else a)
        return out


def block_diagonal(blocks: Any, n: int, name: str = "weight") -> Any:
    """The ``(n, n)`` block-diagonal matrix of ``H`` blocks ``(H, n/H, n/H)`` (F2, heads)."""
    a = np.asarray(blocks, dtype=np.float64)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[0] * a.shape[1] != n:
        raise CellError(
            f"{name}: heads blocks must have shape (H, n/H, n/H) with H n/H = n = {n}; "
            f"got {a.shape}"
        )
    size = a.shape[1]
    out = np.zeros((n, n))
    for k in range(a.shape[0]):
        out[k * size : (k + 1) * size, k * size : (k + 1) * size] = a[k]
    return out


def _short(name: str, limit: int = 40) -> str:
    return repr(name if len(name) <= limit else name[: limit - 3] + "...")


def _real_symbols(expr: sp.Expr) -> sp.Expr:
    if not isinstance(expr, sp.Basic):
        return expr
    # Only rebuild when needed: rebuilding re-runs SymPy's constructors over the whole tree.
    swap = {s: sp.Symbol(str(s), real=True) for s in expr.free_symbols}
    swap = {s: r for s, r in swap.items() if s is not r and s != r}
    return expr.xreplace(swap) if swap else expr


@dataclass(frozen=True)
class Parameter:
    """One parameter: ``kind`` is ``weight`` (matrix), ``bias`` or ``vector`` (diagonal)."""

    name: str
    kind: Literal["weight", "bias", "vector"]
    shape: tuple[str, ...]  # in the symbols "n", "d" (and "p" for cells that declare it)

    def numeric_shape(self, n: int, d: int, p: int | None = None) -> tuple[int, ...]:
        """The shape for hidden size ``n``, input size ``d`` and (cells with a second size)
        ``p``; a heads weight (F2) is ``("H", "n/H", "n/H")`` with ``H`` a number.

        Raises:
            CellError: the shape needs ``p`` and none was given.
        """
        sizes = {"n": n, "d": d}
        if p is not None:
            sizes["p"] = p
        elif "p" in self.shape:
            raise CellError(f"parameter {self.name!r} has shape {self.shape}: it needs the size p")
        out = []
        for s in self.shape:
            if s in sizes:
                out.append(sizes[s])
            elif s.startswith("n/"):
                out.append(n // int(s[2:]))
            else:
                out.append(int(s))
        return tuple(out)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell as data.

    Args:
        name: catalogue name, kebab-case (``lstm-peephole``).
        state: names of the state vectors, in the order they are stacked in ``s_t``.
        nodes: the computation, each node using only names defined before it.
        update: ``(state_name, node_name)`` pairs: the node that becomes each state vector.
        input: name of the input vector.
        torch_layout: for cells PyTorch implements, ``(tensor_name, (param, ...))`` pairs:
            the parameters stacked as row blocks of that tensor, in PyTorch's gate order.
        reference: the citation, as text.
        convention: how the update gate mixes old and new state (documentation).
        description: one line for listings.
        citations: citation keys (:mod:`gradflow.citations`).
        constants: named hyperparameters ``(name, value)`` already substituted as numbers in
            the equations (documentation and results; never in the weight file).
        matrices: :class:`MatrixDef` s, matrices built from weights (``W - W^T - gamma I``)
            that affine lines use like weights (F4).
        sizes: ``(vector, "p")`` pairs: the state vectors and nodes of the second size ``p``
            (every other vector has ``n`` units, the input ``d``). Weights then have shape
            ``(size of node, size of source)``, e.g. ``W_hr`` ``(p, n)`` and ``W_hi`` ``(n, p)``
            in the projected LSTM; empty for every cell of one size.
    """

    name: str
    state: tuple[str, ...]
    nodes: tuple[Node, ...]
    update: tuple[tuple[str, str], ...]
    input: str = "x"
    torch_layout: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    reference: str = ""
    convention: str = ""
    description: str = ""
    citations: tuple[str, ...] = field(default=())
    constants: tuple[tuple[str, float], ...] = ()
    matrices: tuple[MatrixDef, ...] = ()
    sizes: tuple[tuple[str, str], ...] = ()
    origin: Origin | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # One symbol per name: user expressions may carry symbols with other assumptions.
        nodes = tuple(
            Elementwise(nd.name, _real_symbols(nd.expr)) if isinstance(nd, Elementwise) else nd
            for nd in self.nodes
        )
        object.__setattr__(self, "nodes", nodes)
        self._validate()

    # -- validation: the one place of the cell invariants --------------------------------
    def error_at(self, problem: str, key: str | None = None, label: str | None = None) -> CellError:
        """The error for ``problem``, located at ``key`` (a node or top-level key: the file and
        line when the cell came from a file), and labelled e.g. ``equation 'a'``."""
        where = self.origin.at(key) if self.origin is not None else f"cell {self.name!r}"
        return CellError(f"{where}: {label}: {problem}" if label else f"{where}: {problem}")

    def _fail_update(self, problem: str, key: str, label: str) -> CellUpdateError:
        return CellUpdateError(str(self.error_at(problem, key, label)))

    def _validate(self) -> None:
        try:
            check_cell_name(self.name)
        except CellError as err:
            raise self.error_at(str(err), "name") from None
        if not self.state:
            raise self.error_at(f"cell {self.name!r} has no state vectors", "state")
        try:
            check_name(self.input, "input")
        except CellError as err:
            raise self.error_at(str(err), "input", "input") from None
        defined: dict[str, str] = {self.input: "input"}
        for s in self.state:
            try:
                check_name(s, "state")
            except CellError as err:
                raise self.error_at(str(err), "state", "state") from None
            if s in defined:
                raise self.error_at(f"{s!r} is defined twice", "state", "state")
            defined[s] = "state"
        node_names = {nd.name for nd in self.nodes if isinstance(nd, Affine | Elementwise)}
        params: dict[str, str] = {}
        weight_cols: dict[str, str] = {}
        self._validate_matrices(defined, node_names, params, weight_cols)
        heads_of = {w: h for m in self.matrices for w, h in m.heads}
        rows_of = {w for m in self.matrices for w in m.rows}
        for node in self.nodes:
            if not isinstance(node, Affine | Elementwise):
                raise self.error_at(f"unknown node type {type(node).__name__}")
            label = f"equation {_short(node.name)}"

            def fail(problem: str, node: Node = node, label: str = label) -> CellError:
                return self.error_at(problem, node.name, label)

            try:
                check_name(node.name, "node")
            except CellError as err:
                raise fail(str(err)) from None
            if node.name in defined or node.name in params:
                raise fail(f"{node.name!r} is defined twice")

            def use_param(pname: str, kind: str, fail: Callable[[str], CellError] = fail) -> None:
                try:
                    check_name(pname, kind if kind != "vector" else "symbol")
                except CellError as err:
                    raise fail(str(err)) from None
                if pname in RESERVED_PARAMETER_NAMES:
                    raise fail(
                        f"parameter {pname!r} is reserved (n and d are the hidden and input "
                        "sizes); choose another name"
                    )
                if pname in defined:
                    raise fail(f"{pname!r} is a vector, not a {kind}")
                if pname in node_names:
                    raise fail(f"{pname!r} names an equation, so it cannot also be a {kind}")
                if params.setdefault(pname, kind) != kind:
                    raise fail(f"{pname!r} is used both as {params[pname]} and {kind}")

            def missing(name: str, fail: Callable[[str], CellError] = fail) -> CellError:
                if name in node_names:
                    return fail(
                        f"{name!r} is used before it is defined (equations run in order; "
                        f"move {name!r} above this line)"
                    )
                hint = did_you_mean(name, sorted(defined))
                return fail(f"undefined symbol {name!r}{hint}")

            if isinstance(node, Affine):
                if not node.terms and not node.biases:
                    raise fail(f"affine node {node.name!r} is empty")
                for w, src in node.terms:
                    if src not in defined:
                        if src in params:
                            raise fail(
                                f"{src!r} is a parameter; the right side of '@' must be the "
                                "input, a state or an earlier node"
                            )
                        raise missing(src)
                    cols = "d" if src == self.input else "n"
                    if params.get(w) == "matrix":  # square (n x n): on the input, d = n
                        continue
                    if w in rows_of:
                        raise fail(
                            f"{w!r} is stored as one row; use it through a matrix definition "
                            f'such as B = "rows({w})"'
                        )
                    if w in heads_of:
                        raise fail(
                            f"{w!r} is stored as heads blocks; use it through a matrix "
                            f'definition such as R = "heads({w}, {heads_of[w]})"'
                        )
                    use_param(w, "weight")
                    if weight_cols.setdefault(w, cols) != cols:
                        raise fail(
                            f"weight {w!r} multiplies vectors of size n and d; use two weights"
                        )
                for b in node.biases:
                    if b in defined:
                        raise fail(
                            f"{b!r} is a vector; an affine line adds only WEIGHT @ VECTOR terms "
                            "and bias names (add vectors in an elementwise line)"
                        )
                    use_param(b, "bias")
            else:
                if not isinstance(node.expr, sp.Expr):
                    raise fail("not a SymPy expression")
                for sym in sorted(node.expr.free_symbols, key=str):
                    nm = str(sym)
                    if nm == self.input:
                        raise fail(
                            f"the input {nm!r} has size d; it may only enter an affine line "
                            f"as WEIGHT @ {nm}"
                        )
                    if nm in defined:
                        continue
                    if nm in node_names:
                        raise missing(nm)
                    if params.get(nm, "vector") != "vector":
                        raise fail(
                            f"{nm!r} is a {params[nm]} of an affine line and cannot appear in "
                            "an elementwise line"
                        )
                    use_param(nm, "vector")
            defined[node.name] = "node"
        used = {w for nd in self.nodes if isinstance(nd, Affine) for w, _ in nd.terms}
        for mat in self.matrices:
            if mat.name not in used:
                raise self.error_at(
                    f"{mat.name!r} is defined but not used in any affine line",
                    "matrices",
                    f"matrix {_short(mat.name)}",
                )
        upd = dict(self.update)
        if set(upd) != set(self.state) or len(upd) != len(self.update):
            raise self._fail_update(
                f"update must give one node for each state vector {list(self.state)}, got "
                f"{[s for s, _ in self.update]}",
                "update",
                "update",
            )
        for s, node_name in self.update:
            if defined.get(node_name) != "node":
                raise self._fail_update(
                    f"{node_name!r} is not an equation", "update", f"update {s!r}"
                )
        if self.torch_layout is not None:
            listed = [p for _, ps in self.torch_layout for p in ps]
            if sorted(listed) != sorted(p for p, kind in params.items() if kind != "matrix"):
                raise self.error_at("torch_layout does not list every parameter")
        if self.sizes:
            self._validate_sizes()

    def _validate_sizes(self) -> None:
        """Vectors of the second size ``p``: each vector has one size, an elementwise line
        mixes vectors of one size, a state takes a node of its own size, and every parameter
        has one shape wherever it is used."""
        vectors = {*self.state, *(nd.name for nd in self.nodes)}
        seen: set[str] = set()
        for entry in self.sizes:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise self.error_at(f"sizes: {entry!r} is not a (vector, size) pair", "sizes")
            v, size = entry
            if v not in vectors:
                raise self.error_at(f"sizes: {v!r} is not a state vector or an equation", "sizes")
            if size not in VECTOR_SIZES:
                raise self.error_at(
                    f"sizes: {v!r} has size {size!r}; choose one of {', '.join(VECTOR_SIZES)}",
                    "sizes",
                )
            if v in seen:
                raise self.error_at(f"sizes: {v!r} is given twice", "sizes")
            seen.add(v)
        if self.matrices:
            raise self.error_at(
                "matrix definitions are square (n x n); a cell with vectors of size p cannot "
                "use them",
                "matrices",
            )
        shapes: dict[str, tuple[str, ...]] = {}
        for node in self.nodes:
            label = f"equation {_short(node.name)}"
            own = self.size_of(node.name)

            def check(
                param: str, shape: tuple[str, ...], label: str = label, at: str = node.name
            ) -> None:
                if shapes.setdefault(param, shape) != shape:
                    raise self.error_at(
                        f"{param!r} would have shape {shape} here but {shapes[param]} elsewhere; "
                        "use two parameters",
                        at,
                        label,
                    )

            if isinstance(node, Affine):
                for w, src in node.terms:
                    check(w, (own, self.size_of(src)))
                for b in node.biases:
                    check(b, (own,))
                continue
            for sym in sorted(node.expr.free_symbols, key=str):
                nm = str(sym)
                if nm in vectors:
                    if self.size_of(nm) != own:
                        raise self.error_at(
                            f"{nm!r} has size {self.size_of(nm)} and {node.name!r} size {own}: "
                            "an elementwise line combines vectors of one size",
                            node.name,
                            label,
                        )
                elif nm != self.input:
                    check(nm, (own,))
        for st, node_name in self.update:
            if self.size_of(st) != self.size_of(node_name):
                raise self._fail_update(
                    f"state {st!r} has size {self.size_of(st)} but {node_name!r} has size "
                    f"{self.size_of(node_name)}",
                    "update",
                    f"update {st!r}",
                )

    def _validate_matrices(
        self,
        defined: dict[str, str],
        node_names: set[str],
        params: dict[str, str],
        weight_cols: dict[str, str],
    ) -> None:
        """Matrix definitions (F4): each reads weight parameters (square, ``n x n``) and ``I``."""
        heads: dict[str, int] = {}
        for mat in self.matrices:
            if not isinstance(mat, MatrixDef):
                raise self.error_at(f"unknown matrix definition {type(mat).__name__}", "matrices")
            label = f"matrix {_short(str(mat.name))}"

            def fail(problem: str, label: str = label) -> CellError:
                return self.error_at(problem, "matrices", label)

            try:
                check_name(mat.name, "matrix")
            except CellError as err:
                raise fail(str(err)) from None
            if mat.name == IDENTITY:
                raise fail(f"{IDENTITY!r} is the fixed identity matrix; choose another name")
            if mat.name in RESERVED_PARAMETER_NAMES:
                raise fail(f"{mat.name!r} is reserved (the hidden and input sizes)")
            if mat.name in defined or mat.name in node_names or mat.name in params:
                raise fail(f"{mat.name!r} is defined twice")
            if not mat.terms and not mat.identity:
                raise fail("the matrix is empty")
            numbers = [c for c, _, _ in mat.terms] + [mat.identity]
            if not all(isinstance(c, float | int) and math.isfinite(c) for c in numbers):
                raise fail("coefficients must be finite numbers")
            for _, w, _ in mat.terms:
                try:
                    check_name(w, "weight")
                except CellError as err:
                    raise fail(str(err)) from None
                if w == IDENTITY or w in RESERVED_PARAMETER_NAMES:
                    raise fail(f"{w!r} cannot name a weight")
                if w in defined or w in node_names:
                    raise fail(f"{w!r} is a vector, not a weight")
                if params.setdefault(w, "weight") != "weight":
                    raise fail(f"{w!r} is a matrix, not a weight (matrices read weights only)")
                weight_cols[w] = "n"  # transposes and I need square weights
            for w, h in mat.heads:
                if not isinstance(h, int) or h < 1 or w not in mat.weights:
                    raise fail(f"heads({w}, {h}): H must be a positive int")
                if heads.setdefault(w, h) != h:
                    raise fail(f"{w!r} is stored with {heads[w]} heads elsewhere, not {h}")
            params[mat.name] = "matrix"
        plain = {w for m in self.matrices for w in m.weights if w not in (*dict(m.heads), *m.rows)}
        if clash := sorted(plain & set(heads)):
            raise self.error_at(
                f"{clash[0]!r} is stored as heads blocks; write heads({clash[0]}, "
                f"{heads[clash[0]]}) wherever it is used",
                "matrices",
                "matrices",
            )
        rows = {w for m in self.matrices for w in m.rows}
        if clash := sorted((plain | set(heads)) & rows):
            raise self.error_at(
                f"{clash[0]!r} is stored as one row; write rows({clash[0]}) wherever it is used",
                "matrices",
                "matrices",
            )

    # -- structure ------------------------------------------------------------------------
    @cached_property
    def node_map(self) -> Mapping[str, Node]:
        return {node.name: node for node in self.nodes}

    @cached_property
    def parameters(self) -> tuple[Parameter, ...]:
        """Every parameter with its shape, in order of first use."""
        out: dict[str, Parameter] = {}
        matrices = self.matrix_map
        for node in self.nodes:
            if isinstance(node, Affine):
                for w, src in node.terms:
                    if w in matrices:
                        for mw in matrices[w].weights:
                            out.setdefault(mw, Parameter(mw, "weight", ("n", "n")))
                        for mw, h in matrices[w].heads:
                            out[mw] = Parameter(mw, "weight", (str(h), f"n/{h}", f"n/{h}"))
                        for mw in matrices[w].rows:
                            out[mw] = Parameter(mw, "weight", ("n",))
                        continue
                    rows, cols = self.size_of(node.name), self.size_of(src)
                    out.setdefault(w, Parameter(w, "weight", (rows, cols)))
                for b in node.biases:
                    out.setdefault(b, Parameter(b, "bias", (self.size_of(node.name),)))
            else:
                for sym in sorted(node.expr.free_symbols, key=str):
                    if str(sym) not in self._vectors:
                        shape = (self.size_of(node.name),)
                        out.setdefault(str(sym), Parameter(str(sym), "vector", shape))
        # heads weights (F2) last: the first parameter gives n from its rows
        return tuple(sorted(out.values(), key=lambda p: len(p.shape) == 3))

    @cached_property
    def rows(self) -> frozenset[str]:
        """Weights stored as one row and used as ``1_n w^T`` (F9)."""
        return frozenset(w for m in self.matrices for w in m.rows)

    @cached_property
    def heads(self) -> Mapping[str, int]:
        """Weights stored as diagonal blocks (F2) and their number of heads ``H``."""
        return {w: h for m in self.matrices for w, h in m.heads}

    @cached_property
    def matrix_map(self) -> Mapping[str, MatrixDef]:
        """The matrix definitions (F4) by name."""
        return {m.name: m for m in self.matrices}

    def with_matrices(self, params: Mapping[str, Any], n: int | None = None) -> dict[str, Any]:
        """``params`` plus the numeric value of every matrix definition (NumPy ``(n, n)``)."""
        out = dict(params)
        if not self.matrices:
            return out
        if n is None:
            first = self.parameters[0].name if self.parameters else None
            if first is None:
                raise CellError(f"cell {self.name!r} has no parameters to infer n from")
            n = int(np.shape(params[first])[0])
        for mat in self.matrices:
            out[mat.name] = mat.evaluate(params, n)
        return out

    @cached_property
    def _vectors(self) -> frozenset[str]:
        return frozenset((self.input, *self.state, *(nd.name for nd in self.nodes)))

    def parameter_count(self, n: int, d: int, p: int | None = None) -> int:
        """Number of scalar parameters for hidden size ``n``, input size ``d`` (and ``p``)."""
        total = 0
        for par in self.parameters:
            size = 1
            for s in par.numeric_shape(n, d, p):
                size *= s
            total += size
        return total

    @cached_property
    def size_map(self) -> Mapping[str, str]:
        """The size symbol of every vector: ``d`` for the input, ``n`` or ``p`` for the rest."""
        out = {v: "n" for v in (*self.state, *(nd.name for nd in self.nodes))}
        out.update(dict(self.sizes))
        out[self.input] = "d"
        return out

    def size_of(self, vector: str) -> str:
        """The size symbol (``n``, ``p`` or ``d``) of a state vector, node or the input."""
        return self.size_map.get(vector, "n")

    def weight_shape(self, weight: str) -> tuple[str, str]:
        """``(rows, columns)`` of a weight or matrix definition in size symbols; a matrix
        definition, heads and rows weights act as ``(n, n)``."""
        if weight in self.matrix_map:
            return ("n", "n")
        for par in self.parameters:
            if par.name == weight:
                return (par.shape[0], par.shape[1]) if len(par.shape) == 2 else ("n", "n")
        raise CellError(f"cell {self.name!r} has no weight {weight!r}")

    @property
    def has_second_size(self) -> bool:
        """Whether some vector has the second size ``p`` (the projected LSTM)."""
        return any(size == "p" for _, size in self.sizes)

    def block_sizes(self, n: int, p: int | None = None) -> tuple[int, ...]:
        """The length of each state vector, in the order of ``state``.

        Raises:
            CellError: the cell has vectors of size ``p`` and ``p`` is not given.
        """
        if self.has_second_size and p is None:
            raise CellError(f"cell {self.name!r} has vectors of size p: give p")
        values = {"n": n, "p": p if p is not None else n}
        return tuple(values[self.size_of(s)] for s in self.state)

    def state_size(self, n: int, p: int | None = None) -> int:
        """Length of the stacked state ``s_t`` for hidden size ``n`` (and ``p``)."""
        return sum(self.block_sizes(n, p))

    def state_slice(self, vector: str, n: int, p: int | None = None) -> slice:
        """Where state vector ``vector`` sits in ``s_t``."""
        sizes = self.block_sizes(n, p)
        k = self.state.index(vector)
        start = sum(sizes[:k])
        return slice(start, start + sizes[k])

    def size_values(self, params: Mapping[str, Any]) -> tuple[int, int | None]:
        """``(n, p)`` read off the parameters' shapes (``p`` is None for a cell of one size).

        Raises:
            CellError: the cell has no parameter to read a size from.
        """
        n = p = None
        for par in self.parameters:
            shape = np.shape(params[par.name]) if par.name in params else ()
            for sym, size in zip(par.shape, shape, strict=False):
                if sym == "n" and n is None:
                    n = int(size)
                elif sym == "p" and p is None:
                    p = int(size)
        if n is None:
            raise CellError(f"cell {self.name!r} has no parameters to infer n from")
        if self.has_second_size and p is None:
            raise CellError(f"cell {self.name!r} has no parameters to infer p from")
        return n, p

    def symbol(self, name: str) -> sp.Symbol:
        """The scalar symbol that stands for one unit of vector ``name``."""
        return sp.Symbol(name, real=True)

    def iter_params(self, kind: str) -> Iterator[Parameter]:
        return (p for p in self.parameters if p.kind == kind)

    def jacobian(self, n: int | None = None, p: int | None = None) -> BlockJacobian | sp.Matrix:
        """The state Jacobian ``ds_t/ds_{t-1}``.

        With ``n=None``, the matrix form valid for every hidden size (a
        :class:`~gradflow.symbolic.jacobian.BlockJacobian`); with an integer ``n``, the explicit
        ``(len(state)*n)``-square SymPy matrix of scalar symbols (the teaching view; a cell
        with a second size takes ``p``, default ``max(1, n // 2)``).
        """
        if n is None:
            from ..symbolic.jacobian import state_jacobian

            return state_jacobian(self)
        from ..symbolic.explicit import explicit_jacobian

        return explicit_jacobian(self, n, p=p)
