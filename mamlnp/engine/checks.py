"""Derivative checkers against central finite differences, for tests, users and exercises.

``check_grad(f, params, *args)`` compares ``grad(f)`` with (f(θ + ε eᵢ) − f(θ − ε eᵢ)) / 2ε for every
coordinate i. ``check_hvp(f, params, v, *args)`` compares ``hvp(f)`` with (∇f(θ + εv) − ∇f(θ − εv)) / 2ε.
Both work in float64 (params are copied up), never modify ``params``, and return a :class:`CheckResult`
whose ``max_rel_error`` is the worst difference relative to the largest derivative in the comparison
(a normwise relative error: robust where single entries are near zero) and whose ``where`` names the
leaf and index of that worst entry. Central differences err by O(ε²) + O(machine-ε/ε): with the default
steps they agree with a correct rule to ~1e-9, and a wrong rule shows as an error of order 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .pytree import check_same_structure, leaf_paths, tree_flatten, tree_unflatten
from .transforms import Trace, as_float_leaves

__all__ = ["CheckResult", "check_grad", "check_hvp", "numerical_grad", "relative_error"]

DEFAULT_RTOL = 1e-6


@dataclass
class CheckResult:
    """Outcome of a finite-difference check. Truthy when it passed."""

    what: str
    max_rel_error: float
    where: str
    analytic: object = field(repr=False)
    numeric: object = field(repr=False)
    rtol: float = DEFAULT_RTOL

    @property
    def ok(self) -> bool:
        return bool(self.max_rel_error <= self.rtol)

    def __bool__(self):
        return self.ok

    def __str__(self):
        verdict = "OK" if self.ok else "FAILED"
        msg = (f"{self.what} check {verdict}: worst relative error {self.max_rel_error:.2e} at {self.where} "
               f"(tolerance {self.rtol:.0e})")
        if not self.ok:
            a_leaves, _ = tree_flatten(self.analytic)
            n_leaves, treedef = tree_flatten(self.numeric)
            parts = []
            for path, a, n in zip(leaf_paths(treedef, "result"), a_leaves, n_leaves):
                scale = max(np.max(np.abs(n), initial=0.0), 1e-300)
                parts.append(f"  {path}: max |engine − finite difference| = {np.max(np.abs(a - n), initial=0.0):.3e} "
                             f"(largest finite-difference entry {scale:.3e})")
            msg += "\n" + "\n".join(parts)
        return msg

    def assert_ok(self):
        """Raise AssertionError with the full report unless the check passed."""
        if not self.ok:
            raise AssertionError(str(self))
        return self


def relative_error(analytic, numeric, name="result"):
    """Normwise relative error max|a − n| / max(|a|, |n|) over all leaves, and where it is worst."""
    a_leaves, treedef = tree_flatten(analytic)
    n_leaves, _ = tree_flatten(numeric)
    scale = 0.0
    worst, where = -1.0, "nowhere"
    for a, n in zip(a_leaves, n_leaves):
        scale = max(scale, float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(n), initial=0.0)))
    for path, a, n in zip(leaf_paths(treedef, name), a_leaves, n_leaves):
        diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(n, dtype=np.float64))
        if diff.size and not np.all(np.isfinite(diff)):
            return float("inf"), f"{path} (non-finite value)"
        if diff.size and diff.max() > worst:
            worst = float(diff.max())
            idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
            where = f"{path}[{', '.join(map(str, idx))}]" if diff.ndim else path
    if worst <= 0.0:
        return 0.0, where
    return worst / scale if scale > 0 else float("inf"), where


def _float64_copy(params, name):
    leaves, treedef = as_float_leaves(params, name)
    for path, leaf in zip(leaf_paths(treedef, name), leaves):
        if not np.all(np.isfinite(leaf)):
            bad = np.argwhere(~np.isfinite(leaf))[0]
            raise ValueError(f"{path} contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
                             "finite differences need finite inputs")
    return [np.array(x, dtype=np.float64) for x in leaves], treedef


def _check_finite_args(args):
    """Data passed through ``*args`` must be finite too: a NaN there would only show up as a failed check.

    Arrays and floats are checked wherever they sit inside lists, tuples and dicts (``(x, y)`` pairs, data
    given as nested Python lists)."""

    def walk(arg, path):
        if isinstance(arg, (list, tuple)):
            for i, child in enumerate(arg):
                walk(child, f"{path}[{i}]")
        elif isinstance(arg, dict):
            for key, child in arg.items():
                walk(child, f"{path}[{key!r}]")
        elif isinstance(arg, (np.ndarray, float, np.floating)) and np.asarray(arg).dtype.kind in "fc":
            if not np.all(np.isfinite(arg)):
                raise ValueError(f"{path} (shape {np.shape(arg)}) contains NaN or inf; finite differences need "
                                 "finite inputs")

    for k, arg in enumerate(args):
        walk(arg, f"args[{k}]")


def _check_step_and_tolerance(eps, rtol):
    """``eps`` and ``rtol`` must be positive finite numbers: ε = 0 divides by zero, and a NaN makes every
    comparison false, so the check could neither pass nor fail for a reason."""
    for name, value in (("eps", eps), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a positive finite number, got {value!r} ({type(value).__name__})")
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _scalar(value, what):
    v = np.asarray(value.value if hasattr(value, "value") else value, dtype=np.float64)
    if v.size != 1:
        raise ValueError(f"{what}: f must return a scalar, got shape {v.shape}")
    return float(v.reshape(()))


def numerical_grad(f, params, *args, eps=1e-6, caller="numerical_grad"):
    """Central differences of a scalar ``f(params, *args)``: (f(θ + ε e_j) − f(θ − ε e_j)) / 2ε for every coordinate
    j of every array of the pytree ``params`` (float64 copies; ``params`` is not modified). Returns a pytree like
    ``params``. Costs 2n evaluations of f for n parameters: meant for small models and for tests."""
    _check_step_and_tolerance(eps, DEFAULT_RTOL)
    leaves, treedef = _float64_copy(params, "params")
    numeric = []
    for k in range(len(leaves)):
        work = list(leaves)
        work[k] = target = leaves[k].copy()
        g = np.zeros_like(target)
        flat, gflat = target.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            f_plus = _scalar(f(tree_unflatten(treedef, work), *args), caller)
            flat[i] = orig - eps
            f_minus = _scalar(f(tree_unflatten(treedef, work), *args), caller)
            flat[i] = orig
            gflat[i] = (f_plus - f_minus) / (2 * eps)
        numeric.append(g)
    return tree_unflatten(treedef, numeric)


def check_grad(f, params, *args, eps=1e-6, rtol=DEFAULT_RTOL):
    """Compare ``grad(f)(params, *args)`` with central differences of ``f`` over every coordinate.

    Returns a :class:`CheckResult` (truthy if the worst relative error ≤ ``rtol``). Costs 2n evaluations
    of f for n parameters: meant for small models.
    """
    _check_step_and_tolerance(eps, rtol)
    leaves, treedef = _float64_copy(params, "params")
    _check_finite_args(args)
    analytic = Trace(f, tree_unflatten(treedef, leaves), args).grad()
    numeric = numerical_grad(f, tree_unflatten(treedef, leaves), *args, eps=eps, caller="check_grad")
    err, where = relative_error(analytic, numeric, "grad")
    return CheckResult("gradient", err, where, analytic, numeric, rtol)


def check_hvp(f, params, v, *args, eps=1e-5, rtol=DEFAULT_RTOL):
    """Compare ``hvp(f)(params, v, *args)`` with (∇f(θ + εv) − ∇f(θ − εv)) / 2ε.

    The gradients inside the difference come from the engine's reverse mode (check it first with
    :func:`check_grad`); the HVP under test comes from the second-order rules only.
    """
    _check_step_and_tolerance(eps, rtol)
    leaves, treedef = _float64_copy(params, "params")
    _check_finite_args(args)
    v_leaves = [np.array(x, dtype=np.float64) for x in check_same_structure(v, params, "v")]
    for path, x in zip(leaf_paths(treedef, "v"), v_leaves):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{path} contains NaN or inf; the direction v must be finite")
    base = tree_unflatten(treedef, leaves)
    v64 = tree_unflatten(treedef, v_leaves)
    analytic = Trace(f, base, args).hvp(v64)
    plus = tree_unflatten(treedef, [x + eps * d for x, d in zip(leaves, v_leaves)])
    minus = tree_unflatten(treedef, [x - eps * d for x, d in zip(leaves, v_leaves)])
    g_plus = tree_flatten(Trace(f, plus, args).grad())[0]
    g_minus = tree_flatten(Trace(f, minus, args).grad())[0]
    numeric = tree_unflatten(treedef, [(a - b) / (2 * eps) for a, b in zip(g_plus, g_minus)])
    err, where = relative_error(analytic, numeric, "hvp")
    return CheckResult("Hessian-vector product", err, where, analytic, numeric, rtol)
