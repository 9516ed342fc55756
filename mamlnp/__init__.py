"""mamlnp: meta-learning from scratch on NumPy.

The engine (``core``, ``ops``, ``transforms``) is reverse-mode autodiff whose primitives each carry
hand-derived first- and second-order rules, so Hessian-vector products cost a few gradients.
"""
from . import ops, losses, pytree
from .checks import CheckResult, check_grad, check_hvp
from .core import Var
from .transforms import Trace, grad, hessian, hvp, jvp, trace, value_and_grad, vjp

__version__ = "0.1.0"

__all__ = ["ops", "losses", "pytree", "Var", "Trace", "grad", "value_and_grad", "hvp", "hessian", "jvp", "vjp",
           "trace", "check_grad", "check_hvp", "CheckResult"]
