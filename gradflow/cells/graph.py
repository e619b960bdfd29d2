r"""Cells as data: a small graph of named vector quantities (DESIGN decision 1).

Every quantity of a cell is a vector of the hidden size ``n`` (the input has size ``d``):

* :class:`Affine` nodes are ``a = W_1 u_1 + W_2 u_2 + b_1 + b_2``: weight matrices applied to
  earlier vectors (the input, the previous state or another node), plus bias vectors.
* :class:`Elementwise` nodes apply a scalar SymPy expression unit by unit, e.g.
  ``f = sigmoid(a_f)`` or ``c_new = f*c + i*g``. The expression's symbols name earlier
  vectors, the input, or *vector parameters* (diagonal weights such as peepholes).

A :class:`Cell` lists its state vectors (``("h",)`` or ``("h", "c")``), its nodes in an order
where each node uses only what comes before it, and which node becomes each state vector at the
next step. Parameters and their shapes follow from the nodes; ``torch_layout`` records how a
PyTorch module stacks them (tensor name -> row blocks in gate order).
"""

from __future__ import annotations

import keyword
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import sympy as sp

from ..errors import CellError

if TYPE_CHECKING:
    from ..symbolic.jacobian import BlockJacobian

MAX_NAME_LENGTH = 32


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe identifier for a vector or parameter, else raise.

    Names become SymPy symbols and, through code generation, Python identifiers; refusing
    anything but plain identifiers closes the door SymPy issue #24990 describes.
    """
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise CellError(f"{what} {name!r} is not a plain identifier (letters, digits, _)")
    if keyword.iskeyword(name) or name.startswith("_") or len(name) > MAX_NAME_LENGTH:
        raise CellError(
            f"{what} {name!r} is not allowed (keyword, leading underscore, or longer than "
            f"{MAX_NAME_LENGTH} characters)"
        )
    if name in RESERVED_NAMES:
        raise CellError(f"{what} {name!r} is reserved for generated code; choose another name")
    return name


#: Names the generated kernels use themselves.
RESERVED_NAMES = frozenset({"xp"})


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


def _real_symbols(expr: sp.Expr) -> sp.Expr:
    if not isinstance(expr, sp.Basic):
        return expr
    return expr.xreplace({s: sp.Symbol(str(s), real=True) for s in expr.free_symbols})


@dataclass(frozen=True)
class Parameter:
    """One parameter: ``kind`` is ``weight`` (matrix), ``bias`` or ``vector`` (diagonal)."""

    name: str
    kind: Literal["weight", "bias", "vector"]
    shape: tuple[str, ...]  # in the symbols "n" and "d"

    def numeric_shape(self, n: int, d: int) -> tuple[int, ...]:
        sizes = {"n": n, "d": d}
        return tuple(sizes[s] for s in self.shape)


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

    def __post_init__(self) -> None:
        # One symbol per name: user expressions may carry symbols with other assumptions.
        nodes = tuple(
            Elementwise(nd.name, _real_symbols(nd.expr)) if isinstance(nd, Elementwise) else nd
            for nd in self.nodes
        )
        object.__setattr__(self, "nodes", nodes)
        self._validate()

    # -- validation ---------------------------------------------------------------------
    def _validate(self) -> None:
        if not self.state:
            raise CellError(f"cell {self.name!r} has no state vectors")
        check_name(self.input, "input")
        defined: dict[str, str] = {self.input: "input"}
        for s in self.state:
            check_name(s, "state vector")
            if s in defined:
                raise CellError(f"cell {self.name!r}: {s!r} is defined twice")
            defined[s] = "state"
        params: dict[str, str] = {}
        weight_cols: dict[str, str] = {}

        def use_param(pname: str, kind: str) -> None:
            check_name(pname, "parameter")
            if pname in defined:
                raise CellError(f"cell {self.name!r}: parameter {pname!r} clashes with a vector")
            if params.setdefault(pname, kind) != kind:
                raise CellError(
                    f"cell {self.name!r}: {pname!r} is used both as {params[pname]} and {kind}"
                )

        for node in self.nodes:
            check_name(node.name, "node")
            if node.name in defined or node.name in params:
                raise CellError(f"cell {self.name!r}: {node.name!r} is defined twice")
            if isinstance(node, Affine):
                if not node.terms and not node.biases:
                    raise CellError(f"cell {self.name!r}: affine node {node.name!r} is empty")
                for w, src in node.terms:
                    if src not in defined:
                        raise CellError(
                            f"cell {self.name!r}: node {node.name!r} uses {src!r} before it "
                            "is defined"
                        )
                    use_param(w, "weight")
                    cols = "d" if src == self.input else "n"
                    if weight_cols.setdefault(w, cols) != cols:
                        raise CellError(
                            f"cell {self.name!r}: weight {w!r} multiplies vectors of size n and "
                            "d; use two weights"
                        )
                for b in node.biases:
                    use_param(b, "bias")
            elif isinstance(node, Elementwise):
                if not isinstance(node.expr, sp.Expr):
                    raise CellError(f"cell {self.name!r}: {node.name!r} is not a SymPy expression")
                for sym in sorted(node.expr.free_symbols, key=str):
                    nm = str(sym)
                    if nm == self.input:
                        raise CellError(
                            f"cell {self.name!r}: the input {nm!r} has size d; it may only enter "
                            f"an affine node as WEIGHT @ {nm} (elementwise node {node.name!r})"
                        )
                    if nm in defined:
                        continue
                    if nm in params and params[nm] != "vector":
                        raise CellError(
                            f"cell {self.name!r}: {nm!r} is a {params[nm]} and cannot appear "
                            f"in the elementwise node {node.name!r}"
                        )
                    use_param(nm, "vector")
            else:
                raise CellError(f"cell {self.name!r}: unknown node type {type(node).__name__}")
            defined[node.name] = "node"
        upd = dict(self.update)
        if set(upd) != set(self.state) or len(upd) != len(self.update):
            raise CellError(
                f"cell {self.name!r}: update must give one node for each state vector "
                f"{list(self.state)}, got {[s for s, _ in self.update]}"
            )
        for s, node_name in self.update:
            if defined.get(node_name) != "node":
                raise CellError(
                    f"cell {self.name!r}: update of {s!r} names unknown node {node_name!r}"
                )
        if self.torch_layout is not None:
            listed = [p for _, ps in self.torch_layout for p in ps]
            if sorted(listed) != sorted(params):
                raise CellError(f"cell {self.name!r}: torch_layout does not list every parameter")

    # -- structure ------------------------------------------------------------------------
    @cached_property
    def node_map(self) -> Mapping[str, Node]:
        return {node.name: node for node in self.nodes}

    @cached_property
    def parameters(self) -> tuple[Parameter, ...]:
        """Every parameter with its shape, in order of first use."""
        out: dict[str, Parameter] = {}
        for node in self.nodes:
            if isinstance(node, Affine):
                for w, src in node.terms:
                    cols = "d" if src == self.input else "n"
                    out.setdefault(w, Parameter(w, "weight", ("n", cols)))
                for b in node.biases:
                    out.setdefault(b, Parameter(b, "bias", ("n",)))
            else:
                for sym in sorted(node.expr.free_symbols, key=str):
                    if str(sym) not in self._vectors:
                        out.setdefault(str(sym), Parameter(str(sym), "vector", ("n",)))
        return tuple(out.values())

    @cached_property
    def _vectors(self) -> frozenset[str]:
        return frozenset((self.input, *self.state, *(nd.name for nd in self.nodes)))

    def parameter_count(self, n: int, d: int) -> int:
        """Number of scalar parameters for hidden size ``n`` and input size ``d``."""
        total = 0
        for p in self.parameters:
            size = 1
            for s in p.numeric_shape(n, d):
                size *= s
            total += size
        return total

    def state_size(self, n: int) -> int:
        """Length of the stacked state ``s_t`` for hidden size ``n``."""
        return len(self.state) * n

    def symbol(self, name: str) -> sp.Symbol:
        """The scalar symbol that stands for one unit of vector ``name``."""
        return sp.Symbol(name, real=True)

    def iter_params(self, kind: str) -> Iterator[Parameter]:
        return (p for p in self.parameters if p.kind == kind)

    def jacobian(self, n: int | None = None) -> BlockJacobian | sp.Matrix:
        """The state Jacobian ``ds_t/ds_{t-1}``.

        With ``n=None``, the matrix form valid for every hidden size (a
        :class:`~gradflow.symbolic.jacobian.BlockJacobian`); with an integer ``n``, the explicit
        ``(len(state)*n)``-square SymPy matrix of scalar symbols (the teaching view).
        """
        if n is None:
            from ..symbolic.jacobian import state_jacobian

            return state_jacobian(self)
        from ..symbolic.explicit import explicit_jacobian

        return explicit_jacobian(self, n)
