"""Function transforms: ``grad``, ``value_and_grad``, ``hvp``, ``hessian``, ``jvp``, ``vjp`` and ``trace``.

Every transform takes ``f(params, *args)`` where ``params`` is an array or a nested list/tuple/dict of
floating-point arrays, and ``f`` is written with :mod:`mamlnp.ops` (and the operators of ``Var``).
Only ``params`` is differentiated; ``args`` (data, labels, settings) are constants.

What comes back (the policies, tested in ``tests/test_engine_defects.py``):

* dtype — results have the parameters' dtype: each gradient / HVP / VJP leaf has its own leaf's dtype,
  values and JVPs the dtype the traced computation ran in, which is the parameters' dtype (float64 data is
  cast to float32 parameters' dtype on entry to each primitive; see :mod:`mamlnp.engine.core`).
* aliasing — every returned array is a new, writable, ordinary array: never a read-only broadcast view,
  never sharing memory with another returned leaf, with the caller's params, direction ``v`` or cotangent
  ``u``, or with an array returned by an earlier call on the same :class:`Trace`. Mutating a result in
  place is safe.
* references — a :class:`Trace` keeps references to ``params`` and ``args`` (no copies): mutating them in
  place after tracing changes what later ``grad``/``hvp`` calls on that trace compute. Trace again instead.

    >>> import numpy as np, mamlnp
    >>> from mamlnp import ops
    >>> f = lambda w, x: ops.sum(ops.tanh(x @ w))
    >>> g = mamlnp.grad(f)(np.ones((3, 1)), np.ones((2, 3)))      # same shape as w
    >>> hv = mamlnp.hvp(f)(np.ones((3, 1)), np.ones((3, 1)), np.ones((2, 3)))  # H·v, no Hessian formed
"""
from __future__ import annotations

import numpy as np

from .core import Tape, Var
from .pytree import check_same_structure, leaf_paths, tree_flatten, tree_unflatten

__all__ = ["grad", "value_and_grad", "hvp", "hessian", "jvp", "vjp", "trace", "Trace", "as_float_leaves"]


def as_float_leaves(params, name="params"):
    """Flatten ``params``; check every leaf is a real floating-point array; return (leaves, treedef)."""
    leaves, treedef = tree_flatten(params)
    if not leaves:
        raise ValueError(f"{name} holds no arrays; expected an array or a list/tuple/dict of arrays")
    for k, leaf in enumerate(leaves):
        if type(leaf) is np.ndarray and leaf.dtype.kind == "f":
            continue  # the common case, checked without building any message
        path = leaf_paths(treedef, name)[k]
        if isinstance(leaf, Var):
            raise TypeError(f"{path} is a traced Var; nested differentiation is not supported")
        if isinstance(leaf, (float, np.floating)):
            leaves[k] = np.asarray(leaf)
            continue
        if not isinstance(leaf, np.ndarray):
            raise TypeError(f"{path} is a {type(leaf).__name__}; expected a numpy array of float32 or float64")
        raise TypeError(
            f"{path} has dtype {leaf.dtype}; expected a floating-point array (float32 or float64) — "
            "integer, boolean, complex and object arrays cannot be differentiated"
        )
    return leaves, treedef


def _owner(a):
    """The object that owns ``a``'s memory (views of views point at the owner in NumPy)."""
    base = getattr(a, "base", None)
    return a if base is None else base


def _independent(results, avoid=()):
    """``results`` as new writable arrays that share memory with neither each other nor ``avoid``.

    Copies only where needed: a read-only array (a broadcast view such as ∇Σp), an array whose memory
    owner was seen already (the adjoint ``add`` hands to both of its inputs) or belongs to the caller.
    """
    seen = {id(_owner(a)) for a in avoid}
    out = []
    for r in results:
        if not isinstance(r, np.ndarray):
            r = np.array(r)
        elif not r.flags.writeable or id(_owner(r)) in seen:
            r = r.copy()
        seen.add(id(_owner(r)))
        out.append(r)
    return out


class Trace:
    """One recorded evaluation of ``f(params, *args)``, reusable for a gradient and any number of HVPs.

    The trace holds references to ``params`` and ``args``, not copies: change them in place after tracing
    and later sweeps see the new values (trace again instead). Every array it returns is its own, writable
    array (see the module docstring).

    ``value`` is the output. ``grad()`` runs the reverse sweep once and caches the adjoints;
    ``hvp(v)`` runs a tangent sweep and the second-order reverse sweep, reusing those adjoints, so on a
    trace that already gave its gradient an HVP costs one forward-tangent and one backward sweep.
    This is what MAML's meta-gradient uses: the inner loop keeps the trace of each step.
    """

    def __init__(self, f, params, args, name="params"):
        leaves, self.treedef = as_float_leaves(params, name)
        self.params = params
        self.tape = Tape()
        self.leaf_vars = [self.tape.leaf(x) for x in leaves]
        self.leaves = leaves
        out = f(tree_unflatten(self.treedef, self.leaf_vars), *args)
        if isinstance(out, (tuple, list, dict)):
            raise TypeError(
                f"f returned a {type(out).__name__}; the transforms need f to return one scalar (the loss) or "
                "one array (for jvp/vjp). Return only the loss, e.g. lambda p, *a: f(p, *a)[0], and compute "
                "auxiliary outputs in a separate untraced call"
            )
        self.out = out
        if isinstance(out, Var):
            value = out.value
        else:
            value = np.asarray(out)  # f did not depend on params: still report it in their dtype
            dtype = np.result_type(*leaves)
            if value.dtype.kind in "biuf" and value.dtype != dtype:
                value = value.astype(dtype)
        self.value = value
        self._adjoints = None
        self._grad_returned = False

    # ------------------------------------------------------------------
    def _require_scalar(self, what):
        if np.size(self.value) != 1:
            raise ValueError(
                f"{what} needs f to return a scalar (one number); f returned an array of shape {np.shape(self.value)}. "
                "Reduce it first, e.g. with ops.sum or ops.mean, or use mamlnp.vjp for array outputs"
            )

    def _seed(self):
        return np.ones_like(self.value)

    def _leaf_results(self, per_node, avoid=()):
        out = []
        for var in self.leaf_vars:
            r = per_node[var.index] if var.index < len(per_node) else None
            if r is None:
                r = np.zeros_like(var.value)
            elif np.shape(r) != np.shape(var.value):
                r = np.reshape(r, np.shape(var.value))
            out.append(r)
        return tree_unflatten(self.treedef, _independent(out, tuple(self.leaves) + tuple(avoid)))

    def _connected(self):
        return isinstance(self.out, Var)

    def grad(self):
        """∇f at params, with the structure of params."""
        self._require_scalar("grad")
        if not self._connected():
            return self._leaf_results([])
        if self._grad_returned:
            # the leaves' cached adjoints were handed out (and may have been changed by the caller): sweep
            # again. (hvp's reuse of the cache reads only interior nodes' adjoints, never the leaves'.)
            return self._leaf_results(self.tape.backward(self.out.index, self._seed()))
        if self._adjoints is None:
            self._adjoints = self.tape.backward(self.out.index, self._seed())
        self._grad_returned = True
        return self._leaf_results(self._adjoints)

    def _leaf_tangents(self, v):
        """{tape index: tangent} for a direction v that mirrors params, each cast to its leaf's dtype
        (so float32 params give float32 results even for a float64 v)."""
        v_leaves = check_same_structure(v, self.params, "v")
        for path, leaf in zip(leaf_paths(self.treedef, "v"), v_leaves):
            if leaf.dtype.kind != "f":
                raise TypeError(f"{path} has dtype {leaf.dtype}; expected a floating-point array")
        self._v_leaves = v_leaves
        return {var.index: t.astype(var.value.dtype, copy=False) for var, t in zip(self.leaf_vars, v_leaves)}

    def hvp(self, v):
        """H·v (H = ∇²f at params) by Pearlmutter's R-operator over the recorded tape."""
        self._require_scalar("hvp")
        leaf_tangents = self._leaf_tangents(v)
        if not self._connected():
            return self._leaf_results([])
        tangents = self.tape.forward_tangents(leaf_tangents)
        adjoints, r_adjoints = self.tape.backward(self.out.index, self._seed(), tangents, self._adjoints)
        self._adjoints = adjoints
        return self._leaf_results(r_adjoints, self._v_leaves)

    def jvp(self, v):
        """The tangent of the output along v (any output shape)."""
        leaf_tangents = self._leaf_tangents(v)
        if not self._connected():
            return np.zeros_like(self.value)
        tangents = self.tape.forward_tangents(leaf_tangents, keep=(self.out.index,))
        t = tangents[self.out.index]
        if t is None:
            return np.zeros_like(self.value)
        if np.shape(t) != np.shape(self.value):
            t = np.broadcast_to(t, np.shape(self.value))
        if t.dtype != self.value.dtype:
            t = t.astype(self.value.dtype)
        return _independent([t], tuple(self.leaves) + tuple(self._v_leaves))[0]

    def vjp(self, cotangent):
        """uᵀJ: the pullback of an output cotangent u (shape of the output) to params."""
        u = np.asarray(cotangent)
        if u.shape != np.shape(self.value):
            raise ValueError(f"cotangent has shape {u.shape}; expected the output's shape {np.shape(self.value)}")
        if not self._connected():
            return self._leaf_results([])
        seed = u.astype(self.value.dtype, copy=False) if u.dtype.kind in "biuf" else u
        return self._leaf_results(self.tape.backward(self.out.index, seed), (u,))


def trace(f, params, *args):
    """Record ``f(params, *args)`` once; see :class:`Trace`."""
    return Trace(f, params, args)


def value_and_grad(f):
    """Transform ``f`` into ``(params, *args) -> (f(params, *args), ∇f)``; f must return a scalar."""
    def value_and_grad_f(params, *args):
        t = Trace(f, params, args)
        g = t.grad()
        return t.value.reshape(()) if np.ndim(t.value) else t.value, g
    value_and_grad_f.__doc__ = f"value and gradient of {getattr(f, '__name__', 'f')}"
    return value_and_grad_f


def grad(f):
    """Transform ``f`` into ``(params, *args) -> ∇f`` with the structure of ``params``."""
    def grad_f(params, *args):
        return Trace(f, params, args).grad()
    grad_f.__doc__ = f"gradient of {getattr(f, '__name__', 'f')}"
    return grad_f


def hvp(f):
    """Transform ``f`` into ``(params, v, *args) -> H v`` where H = ∇²f(params); no Hessian is built.

    Cost: one forward pass that records the tape, then a tangent sweep and a backward sweep that carries
    both x̄ and R{x̄} — about 2-3 gradients.
    """
    def hvp_f(params, v, *args):
        return Trace(f, params, args).hvp(v)
    hvp_f.__doc__ = f"Hessian-vector product of {getattr(f, '__name__', 'f')}"
    return hvp_f


def hessian(f):
    """Transform ``f`` into ``(params, *args) -> H``, the dense (n, n) Hessian over the flattened params.

    Built column by column from HVPs (H eⱼ) on one recorded trace: for small problems and teaching. The
    flattening order is that of :func:`mamlnp.pytree.tree_flatten` (leaves in order, each C-order).
    """
    def hessian_f(params, *args):
        t = Trace(f, params, args)
        leaves, treedef = tree_flatten(params)
        sizes = [np.size(x) for x in leaves]
        n = int(np.sum(sizes))
        dtype = np.result_type(*leaves)
        H = np.empty((n, n), dtype=dtype)
        offsets = np.cumsum([0] + sizes)
        for j in range(n):
            flat = np.zeros(n, dtype=dtype)
            flat[j] = 1.0
            e = tree_unflatten(treedef, [flat[a:b].reshape(np.shape(x)) for a, b, x in zip(offsets[:-1], offsets[1:], leaves)])
            H[:, j] = np.concatenate([np.ravel(c) for c in tree_flatten(t.hvp(e))[0]])
        return H
    hessian_f.__doc__ = f"dense Hessian of {getattr(f, '__name__', 'f')}"
    return hessian_f


def jvp(f):
    """Transform ``f`` into ``(params, v, *args) -> (f(params, *args), J v)`` (forward mode; any output shape)."""
    def jvp_f(params, v, *args):
        t = Trace(f, params, args)
        jv = t.jvp(v)
        value = t.value
        if isinstance(value, np.ndarray) and isinstance(t.out, Var):
            value = _independent([value], t.leaves)[0]
        return value, jv
    return jvp_f


def vjp(f):
    """Transform ``f`` into ``(params, u, *args) -> uᵀ J`` (reverse mode; u has the output's shape)."""
    def vjp_f(params, cotangent, *args):
        return Trace(f, params, args).vjp(cotangent)
    return vjp_f
