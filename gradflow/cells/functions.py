r"""Activation functions as SymPy functions whose derivatives are written in their own value.

``sigmoid'(x) = sigmoid(x) (1 - sigmoid(x))`` and ``tanh'(x) = 1 - tanh(x)^2`` are how papers
write them; after differentiation the derivation replaces ``sigmoid(a_f)`` by the unit value
``f_t``, so Jacobians read ``f_t (1 - f_t)``.

Examples:
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> sp.diff(sigmoid(x), x)
    (1 - sigmoid(x))*sigmoid(x)
    >>> sp.diff(relu(x), x)
    Heaviside(x, 0)
"""

from __future__ import annotations

from typing import Any

import sympy as sp


class sigmoid(sp.Function):  # type: ignore[misc]  # noqa: N801 - SymPy ships no types
    r"""The logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`."""

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return sp.S.Half
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, x: sp.Expr, **kwargs: Any) -> sp.Expr:
        return 1 / (1 + sp.exp(-x))

    def _latex(self, printer: Any) -> str:
        return rf"\sigma\left({printer._print(self.args[0])}\right)"


class relu(sp.Function):  # type: ignore[misc]  # noqa: N801
    r"""The rectifier :math:`\max(0, x)`; its derivative is the Heaviside step (0 at 0)."""

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_number and x.is_real:
            return sp.Max(0, x)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Heaviside(self.args[0], 0)

    def _eval_rewrite_as_Max(self, x: sp.Expr, **kwargs: Any) -> sp.Expr:
        return sp.Max(0, x)

    def _latex(self, printer: Any) -> str:
        return rf"\operatorname{{relu}}\left({printer._print(self.args[0])}\right)"


class softplus(sp.Function):  # type: ignore[misc]  # noqa: N801
    r"""Softplus :math:`\log(1 + e^{x})`, derivative :math:`\sigma(x)`."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def _latex(self, printer: Any) -> str:
        return rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"


class maximum(sp.Function):  # type: ignore[misc]  # noqa: N801
    r"""The larger of two values, :math:`\max(a, b)`, written ``max(a, b)``.

    Subgradient at a tie, as PyTorch's autograd for ``torch.maximum``: each argument gets 1/2,
    ``d max/da = H(a - b)`` with ``H(0) = 1/2``.
    """

    nargs = 2

    @classmethod
    def eval(cls, a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
        if a.is_number and b.is_number and a.is_real and b.is_real:
            return sp.Max(a, b)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b = self.args
        return sp.Heaviside(a - b, sp.S.Half) if argindex == 1 else sp.Heaviside(b - a, sp.S.Half)

    def _latex(self, printer: Any) -> str:
        a, b = (printer._print(x) for x in self.args)
        return rf"\max\left({a}, {b}\right)"


class clip(sp.Function):  # type: ignore[misc]  # noqa: N801
    r"""``clip(x, lo, hi)`` = :math:`\min(\max(x, lo), hi)` with constant bounds ``lo <= hi``.

    Subgradient as PyTorch's ``torch.clamp``: 1 on the closed interval ``[lo, hi]`` (the
    bounds included), 0 outside.
    """

    nargs = 3

    @classmethod
    def eval(cls, x: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr | None:
        if all(v.is_number and v.is_real for v in (x, lo, hi)):
            return sp.Min(sp.Max(x, lo), hi)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, lo, hi = self.args
        if argindex == 1:
            return sp.Heaviside(x - lo, 1) * sp.Heaviside(hi - x, 1)
        return sp.Heaviside(lo - x, 0) if argindex == 2 else sp.Heaviside(x - hi, 0)

    def _latex(self, printer: Any) -> str:
        x, lo, hi = (printer._print(v) for v in self.args)
        return rf"\operatorname{{clip}}\left({x}, {lo}, {hi}\right)"


class hard_sigmoid(sp.Function):  # type: ignore[misc]  # noqa: N801
    r"""PyTorch's ``hardsigmoid``: :math:`\operatorname{clip}(x/6 + 1/2, 0, 1)`.

    Derivative 1/6 on the open interval ``(-3, 3)`` and 0 elsewhere, the kinks included, as
    PyTorch's autograd.
    """

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_number and x.is_real:
            return sp.Min(sp.Max(x / 6 + sp.S.Half, 0), 1)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        return sp.Heaviside(x + 3, 0) * sp.Heaviside(3 - x, 0) / 6

    def _latex(self, printer: Any) -> str:
        return rf"\operatorname{{hard\_sigmoid}}\left({printer._print(self.args[0])}\right)"


#: Functions an equation may call, by name. The equation parser accepts exactly these.
FUNCTIONS: dict[str, Any] = {
    "sigmoid": sigmoid,
    "tanh": sp.tanh,
    "relu": relu,
    "softplus": softplus,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "sin": sp.sin,
    "cos": sp.cos,
    "max": maximum,
    "clip": clip,
    "hard_sigmoid": hard_sigmoid,
}

#: Arguments each function takes (1 unless listed). ``clip``'s bounds must be constants.
ARITY: dict[str, int] = {"max": 2, "clip": 3}
