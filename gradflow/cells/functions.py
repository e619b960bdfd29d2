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
}
