"""Symbolic derivation: the state Jacobian for every n, its paths, the explicit form, LaTeX."""

from .explicit import ExplicitStep as ExplicitStep
from .explicit import explicit_jacobian as explicit_jacobian
from .explicit import explicit_step as explicit_step
from .jacobian import BlockJacobian as BlockJacobian
from .jacobian import JacobianPaths as JacobianPaths
from .jacobian import Term as Term
from .jacobian import state_jacobian as state_jacobian

__all__ = [
    "BlockJacobian",
    "ExplicitStep",
    "JacobianPaths",
    "Term",
    "explicit_jacobian",
    "explicit_step",
    "state_jacobian",
]
