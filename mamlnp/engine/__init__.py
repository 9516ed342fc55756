"""The engine: reverse-mode autodiff whose primitives carry hand-derived second-order rules.

===============  =========================================================================================
``core``         the tape, ``Var`` and the three sweeps (reverse, forward tangent, second-order reverse)
``ops``          the primitives: one entry each with forward, vjp, jvp and vjp_tangent, and Var's operators
``transforms``   ``grad``, ``value_and_grad``, ``hvp``, ``hessian``, ``jvp``, ``vjp``, ``trace``
``checks``       ``check_grad``, ``check_hvp``: every rule against central finite differences
``pytree``       nested lists / tuples / dicts of arrays as parameters
===============  =========================================================================================

May import: numpy only. Nothing else of mamlnp imports into here (``core`` does not even import ``ops``).
"""
from . import ops, pytree
from .checks import CheckResult, check_grad, check_hvp
from .core import Var
from .transforms import Trace, grad, hessian, hvp, jvp, trace, value_and_grad, vjp

__all__ = ["ops", "pytree", "Var", "Trace", "grad", "value_and_grad", "hvp", "hessian", "jvp", "vjp", "trace",
           "check_grad", "check_hvp", "CheckResult"]
