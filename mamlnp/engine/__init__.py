"""The engine: reverse-mode autodiff whose primitives carry hand-derived second-order rules.

===============  =========================================================================================
``core``         the tape, ``Var`` and the three sweeps (reverse, forward tangent, second-order reverse)
``ops``          the primitives: one entry each with forward, vjp, jvp and vjp_tangent, and Var's operators;
                 composites built from them (swapaxes, minimum, clip, the numpy-order ``where``)
``transforms``   ``grad``, ``value_and_grad``, ``hvp``, ``hessian``, ``jvp``, ``vjp``, ``trace``
``checks``       ``check_grad``, ``check_hvp``: every rule against central finite differences
``pytree``       nested lists / tuples / dicts of arrays as parameters
``replay``       record once, replay many: a function's NumPy calls as straight-line code (``record``,
                 ``Program``); MAML's fast path, checked bit for bit against the eager sweeps. Not needed to
                 read the engine: it knows nothing of tapes or primitives
===============  =========================================================================================

May import: numpy only. Nothing else of mamlnp imports into here (``core`` does not even import ``ops``).

Policies (details in :mod:`.core` and :mod:`.transforms`; tested in ``tests/test_engine_defects.py``):

* **dtype — results have the parameters' dtype.** A traced computation runs in the dtype of its traced
  values: constants that would promote it (float64 data, integer arrays next to float32 parameters) are cast
  to that dtype as they enter a primitive, so float32 parameters with float64 data give float32 values,
  gradients, HVPs and JVPs, and an optimizer keeps them float32. Leaves of different float dtypes combine by
  NumPy's rules and each leaf's gradient/HVP comes back in its own dtype. Float64 code is unchanged.
* **aliasing — every returned array is the caller's own.** Gradients, HVPs, VJPs and JVPs are new, writable
  arrays that share memory with nothing else returned, with the caller's inputs, or with an earlier result
  of the same trace (no read-only broadcast views; copies are made only where sharing would occur).
* **references — the tape keeps references to its inputs, not copies.** Mutating params or data in place
  after tracing changes what later sweeps of that trace compute; trace again instead.
* **kinks and exact zeros.** relu'(0) = 0; maximum splits ȳ evenly at ties (as PyTorch and JAX); a rule's
  term with a zero coefficient is exactly 0 (d x⁰/dx at x = 0 is 0, not 0·inf); √x at 0 has derivative inf.
"""
from . import ops, pytree
from .checks import CheckResult, check_grad, check_hvp
from .core import Var
from .transforms import Trace, grad, hessian, hvp, jvp, trace, value_and_grad, vjp

__all__ = ["ops", "pytree", "Var", "Trace", "grad", "value_and_grad", "hvp", "hessian", "jvp", "vjp", "trace",
           "check_grad", "check_hvp", "CheckResult"]
