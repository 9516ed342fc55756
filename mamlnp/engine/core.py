"""The engine: a tape of primitive applications and the three sweeps over it.

A differentiated function runs once, eagerly, on :class:`Var` objects. Every primitive applied to a
``Var`` appends one :class:`Node` to the ``Tape`` the ``Var`` belongs to, so the tape is already in
topological order. Three sweeps then read the tape:

* ``backward``   reverse mode:  x̄ = Σ vjp(ȳ)                         -> gradients
* ``forward_tangents``          ẏ = Σ jvp(ẋ)                         -> directional derivatives
* ``backward`` with tangents    R{x̄} = vjp(R{ȳ}) + vjp_tangent(ȳ, ẋ) -> Hessian-vector products

The last one is Pearlmutter's R-operator (Pearlmutter 1994, "Fast exact multiplication by the
Hessian"): differentiate the *backward pass* along the direction v. For f(θ) with gradient ∇f,
R{∇f} = d/dε ∇f(θ + εv)|₀ = H v. Each primitive supplies, next to its vjp, the derivative of that vjp
with respect to its primal inputs (``vjp_tangent``), so H·v costs one tangent sweep and one backward
sweep and no Hessian is ever formed.

Broadcasting is undone in exactly one place, :func:`unbroadcast`, called by the sweeps: a rule may
return a cotangent in the (broadcast) shape of the output and the engine sums it back down.

Dtype policy: **results have the parameters' dtype.** A traced computation runs in the dtype of its traced
values: when a primitive meets a traced value of dtype D (float32, say) and a constant that NumPy would
promote it with (a float64 or integer array or NumPy scalar: data, labels, masks), :func:`apply` casts
the constant to D first, so float32 parameters with float64 data give a float32 tape, float32 values,
gradients, HVPs and JVPs, and an optimizer step keeps float32 parameters float32. (Python scalars never
promote under NumPy ≥ 2, so ``2.0 * x`` stays float32.) Traced values of different float dtypes combine
by NumPy's rules (float32 · float64 → float64); each leaf's gradient and HVP is then cast back to that
leaf's own dtype at the end of the sweep. Float64 computations are unchanged, bit for bit.

References, not copies: a node keeps references to its input arrays and output (the tape records the
caller's parameter and data arrays themselves). Mutating one of them in place after tracing changes what
later sweeps over that tape compute; trace again after changing parameters.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Var", "Tape", "Node", "apply", "unbroadcast", "value_of", "RELEASED"]


class Node:
    """One primitive application: ``out = prim.forward(*inputs, **params)``.

    ``parents[i]`` is the tape index of input i, or -1 when input i is a constant.
    Leaves (the variables we differentiate with respect to) have ``prim is None``.
    """

    __slots__ = ("prim", "parents", "inputs", "out", "params")

    def __init__(self, prim, parents, inputs, out, params):
        self.prim, self.parents, self.inputs, self.out, self.params = prim, parents, inputs, out, params


class _Released:
    """Stands in the adjoint list for an adjoint that was freed after its last use (see Tape.backward)."""

    __slots__ = ()

    def __repr__(self):
        return "<adjoint released after its last use>"


RELEASED = _Released()


class _Unread:
    """Stands in a node for a primal value that no rule reads (see Tape.release_unread_values): its shape
    and dtype, which is all the sweeps ask of it."""

    __slots__ = ("shape", "dtype")

    def __init__(self, value):
        self.shape, self.dtype = value.shape, value.dtype

    ndim = property(lambda self: len(self.shape))

    def __repr__(self):
        return f"<value released: no rule reads it; shape {self.shape}, dtype {self.dtype}>"


class Tape:
    """The record of one evaluation; node k only depends on nodes < k.

    Memory: each sweep drops what it no longer needs as it goes (values are freed when their last
    reference goes). The forward-tangent sweep frees a tangent after its last consumer unless the
    second-order reverse sweep will read it (an input or output of a primitive with a second-order rule);
    the reverse sweep frees each node's R-adjoint and tangent once the node is processed, and replaces the
    adjoint of a node whose rule has no second-order term by ``RELEASED`` (a later HVP sweep that reuses the
    adjoints needs only to know that such a node was reached). Leaves' results are always kept. Primal values:
    :meth:`release_unread_values` drops, from a finished recording, every value no rule reads (each primitive
    declares what its rules read in ``Primitive.saves``); MAML's inner steps use it, so a kept step holds its
    parameters, the layers' inputs and the adjoints its second-order rules need, and nothing else.
    """

    __slots__ = ("nodes", "_plan")

    def __init__(self):
        self.nodes: list[Node] = []
        self._plan = None

    def leaf(self, value) -> "Var":
        self.nodes.append(Node(None, (), (), value, None))
        return Var(value, self, len(self.nodes) - 1)

    def _liveness(self):
        """(last_consumer, read_by_second_order) per node, computed once per recorded tape.

        last_consumer[j]: the largest index of a node that takes node j as an input (-1: none).
        read_by_second_order[j]: the reverse sweep with tangents reads ẏ_j (node j is an input of a primitive
        with a second-order rule, or the output of one whose rule reads its ``out_tangent``).
        """
        nodes = self.nodes
        if self._plan is not None and self._plan[0] == len(nodes):
            return self._plan[1], self._plan[2]
        last = [-1] * len(nodes)
        read = [False] * len(nodes)
        for k, node in enumerate(nodes):
            prim = node.prim
            if prim is None:
                continue
            second = prim.second_order
            if second and prim.reads_out_tangent:
                read[k] = True
            for p in node.parents:
                if p >= 0:
                    last[p] = k
                    if second:
                        read[p] = True
        self._plan = (len(nodes), last, read)
        return last, read

    def release_unread_values(self):
        """Drop the primal values no rule will read; keep their shape and dtype.

        Each primitive may say which of its inputs and its output its rules read (``Primitive.saves``; if it
        does not, all are kept). A value read by no node (a ReLU's input z = XW + b, say: the ReLU reads its
        output, the affine map reads X and W) is replaced in every node by a shape/dtype stand-in, so it is
        freed as soon as the caller lets go of it. Leaves and constants (the caller's data) are always kept. The sweeps' results are unchanged:
        no rule was going to read these values. Call it on a finished recording that will only be swept.
        """
        nodes = self.nodes
        read = bytearray(len(nodes))  # read[k]: some rule reads node k's value (constants are the caller's anyway)
        for k, node in enumerate(nodes):
            prim = node.prim
            if prim is None or prim.saves is None:
                read[k] = 1
                for p in node.parents:
                    if p >= 0:
                        read[p] = 1
                continue
            parents = node.parents
            for slot in prim.saves:
                if slot == "out":
                    read[k] = 1
                elif parents[slot] >= 0:
                    read[parents[slot]] = 1
        for k, node in enumerate(nodes):
            if not read[k] and isinstance(node.out, (np.ndarray, np.generic)):
                node.out = _Unread(node.out)
            parents = node.parents
            for p in parents:
                if p >= 0 and not read[p]:
                    node.inputs = tuple(_Unread(x) if q >= 0 and not read[q] and isinstance(x, (np.ndarray, np.generic))
                                        else x for x, q in zip(node.inputs, parents))
                    break

    # ------------------------------------------------------------------ sweeps
    def forward_tangents(self, leaf_tangents: dict, keep=None):
        """Tangent ẏ of every node, given the tangents of some leaves ({index: array}).

        ``None`` stands for an exactly-zero tangent, so constants cost nothing. ``keep``: the node indices
        whose tangents the caller will read (e.g. ``{out}`` for a JVP); by default (None) the tangents a
        second-order reverse sweep reads. Every other tangent is freed after its last consumer (its entry
        becomes None), so an HVP never holds all tangents at once.
        """
        nodes = self.nodes
        last, read = self._liveness()
        if keep is not None:
            read = [False] * len(nodes)
            for index in keep:
                read[index] = True
        tangents = [None] * len(nodes)
        for index, t in leaf_tangents.items():
            tangents[index] = t
        for k, node in enumerate(nodes):
            prim = node.prim
            if prim is None:
                continue
            acc = None
            for i, p in enumerate(node.parents):
                if p < 0:
                    continue
                t = tangents[p]
                if t is None:
                    continue
                c = prim.jvp(i, t, node.out, node.inputs, **node.params)
                acc = c if acc is None else acc + c
            if acc is not None and np.shape(acc) != np.shape(node.out):
                acc = np.broadcast_to(acc, np.shape(node.out))
            tangents[k] = acc
            for p in node.parents:  # release inputs' tangents consumed for the last time
                if p >= 0 and last[p] == k and not read[p]:
                    tangents[p] = None
        return tangents

    def backward(self, out_index: int, seed, tangents=None, adjoints=None, keep_for_hvp=True):
        """Reverse sweep from node ``out_index`` seeded with ``seed`` (ȳ).

        Without ``tangents``: returns the list of adjoints x̄ of every node.
        With ``tangents`` (from :meth:`forward_tangents`): also carries R{x̄}, the tangent of each adjoint,
        and returns ``(adjoints, r_adjoints)``. Passing the ``adjoints`` of an earlier plain sweep on the
        same tape and seed skips recomputing them (they do not depend on the tangents).

        The returned lists hold every leaf's result. Interior entries are released as the sweep passes
        them: R-adjoints and ``tangents`` entries become None, and the adjoint of a node without a
        second-order rule becomes ``RELEASED`` (what a later reuse of ``adjoints`` needs of it: that it was
        reached). The adjoints of nodes with a second-order rule are kept for that reuse, unless
        ``keep_for_hvp=False`` (a gradient that no HVP will follow): then every interior adjoint is released.
        """
        nodes = self.nodes
        n = out_index + 1
        second = tangents is not None
        reuse = adjoints is not None
        if not reuse:
            adjoints = [None] * n
            adjoints[out_index] = seed
        r_adjoints = [None] * n if second else None
        for k in range(out_index, -1, -1):
            g = adjoints[k]
            node = nodes[k]
            prim = node.prim
            if prim is None:  # a leaf: its results come back in its own dtype (mixed-precision leaves)
                if g is not None and not reuse and g.dtype != node.out.dtype:
                    adjoints[k] = g.astype(node.out.dtype)
                if second and r_adjoints[k] is not None and r_adjoints[k].dtype != node.out.dtype:
                    r_adjoints[k] = r_adjoints[k].astype(node.out.dtype)
                continue
            if g is None:
                continue
            inputs, out, params, parents = node.inputs, node.out, node.params, node.parents
            if second:
                rg = r_adjoints[k]
                r_adjoints[k] = None  # consumed here: node k's R-adjoint is complete and read only now
                # the primitive's own second-order term needs the input tangents; linear primitives have none
                has_tangent = False
                if prim.second_order and g is not RELEASED:  # RELEASED here: no second-order term can arise
                    input_tangents = [None if p < 0 else tangents[p] for p in parents]
                    has_tangent = any(t is not None for t in input_tangents)
                    out_tangent = tangents[k]
                tangents[k] = None  # every consumer of ẏ_k (node k and later nodes) is processed
            for i, p in enumerate(parents):
                if p < 0:
                    continue
                shape = inputs[i].shape  # a parent's value is always an ndarray (or numpy scalar)
                if not reuse:
                    ct = prim.vjp(i, g, out, inputs, **params)
                    if getattr(ct, "shape", None) != shape:
                        ct = unbroadcast(ct, shape)
                    prev = adjoints[p]
                    adjoints[p] = ct if prev is None else prev + ct
                if second:
                    # R{x̄_i} = vjp_i(R{ȳ}) + (∂vjp_i/∂inputs)·ẋ  — the second term is the primitive's own rule.
                    if has_tangent and rg is not None and prim.r_vjp is not None:  # both terms in one expression
                        rct = prim.r_vjp(i, g, rg, out, out_tangent, inputs, input_tangents, **params)
                    else:
                        rct = None if rg is None else prim.vjp(i, rg, out, inputs, **params)
                    if has_tangent and (rg is None or prim.r_vjp is None):
                        extra = prim.vjp_tangent(i, g, out, out_tangent, inputs, input_tangents, **params)
                        if extra is not None:
                            rct = extra if rct is None else rct + extra
                    if rct is not None:
                        if getattr(rct, "shape", None) != shape:
                            rct = unbroadcast(rct, shape)
                        prev = r_adjoints[p]
                        r_adjoints[p] = rct if prev is None else prev + rct
            if not reuse and k != out_index and (not keep_for_hvp or not _adjoint_read_later(prim, parents)):
                adjoints[k] = RELEASED  # no second-order rule reads it; keep only the fact it was reached
        return (adjoints, r_adjoints) if second else adjoints


def _adjoint_read_later(prim, parents):
    """Can an HVP sweep's second-order rule at this node read its adjoint ȳ? Only if the primitive has such a
    rule and, where it says which tangents each term needs (``second_order_reads``), a traced input i has a
    traced input j among them (affine with data X: no term at all)."""
    if not prim.second_order:
        return False
    reads = prim.second_order_reads
    if reads is None:
        return True
    return any(p >= 0 and any(parents[j] >= 0 for j in reads.get(i, ())) for i, p in enumerate(parents))


def unbroadcast(x, shape):
    """Sum ``x`` down to ``shape``: the adjoint of numpy broadcasting, done once for every rule."""
    x_shape = x.shape if hasattr(x, "shape") else np.shape(x)
    if x_shape == shape:
        return x
    lead = len(x_shape) - len(shape)
    if lead:
        x = np.sum(x, axis=tuple(range(lead)))
    axes = tuple(i for i, (a, b) in enumerate(zip(np.shape(x), shape)) if b == 1 and a != 1)
    if axes:
        x = np.sum(x, axis=axes, keepdims=True)
    return np.reshape(x, shape)


class Var:
    """A value being traced: an ndarray plus its place on a tape.

    Arithmetic on a Var records primitives; use the functions in :mod:`mamlnp.ops` (or the operators
    ``+ - * / ** @``, ``x.T``, ``x.sum()``, ``x[...]``). ``numpy`` functions refuse a Var on purpose: the
    engine can only differentiate what goes through its own primitives.
    """

    __slots__ = ("value", "tape", "index")
    __array_ufunc__ = None  # make ``ndarray + Var`` defer to Var.__radd__ instead of coercing

    def __init__(self, value, tape, index):
        self.value, self.tape, self.index = value, tape, index

    shape = property(lambda self: np.shape(self.value))
    ndim = property(lambda self: np.ndim(self.value))
    size = property(lambda self: np.size(self.value))
    dtype = property(lambda self: np.asarray(self.value).dtype)

    def __repr__(self):
        return f"Var(shape={self.shape}, dtype={self.dtype}, index={self.index})"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "a traced mamlnp Var cannot be turned into a numpy array inside a differentiated function: "
            "numpy would drop the derivative. Use mamlnp.ops (e.g. ops.tanh) or operators; read .value "
            "only for logging."
        )

    # names of mamlnp.ops, filled in by that module (core imports nothing of it): for the hint below
    ops_names = frozenset()

    def __array_function__(self, func, types, args, kwargs):
        """NumPy functions (np.sum, np.concatenate, np.linalg.norm, …) refuse a Var with a pointer to ops.

        Queries of the shape alone (np.shape, np.ndim, np.size) are answered: they carry no derivative to drop.
        """
        if func in (np.shape, np.ndim, np.size):
            return func(self.value, *args[1:], **kwargs)
        name = getattr(func, "__name__", str(func))
        module = getattr(func, "__module__", None) or "numpy"
        if name in Var.ops_names:
            hint = f"use mamlnp.ops.{name} instead"
        else:
            hint = ("write it with the primitives of mamlnp.ops (ops.sum, ops.mean, ops.sqrt, ops.concatenate, …) "
                    "or Var's operators")
        raise TypeError(f"{module}.{name} cannot take a traced Var: NumPy would drop the derivative; {hint}. "
                        "Read .value only for logging")

    def __float__(self):
        raise TypeError("float() of a traced Var would drop its derivative; use .value for logging")

    def __len__(self):
        return self.shape[0]

    # The operators (+ - * / ** @, x.T, x.sum(), x[...]) are attached by mamlnp.engine.ops, next to the
    # primitives they record, so this module imports nothing of the primitives (no core <-> ops cycle).


def value_of(x):
    """The plain array inside ``x`` (a Var or anything array-like)."""
    return x.value if isinstance(x, Var) else x


def _constants_in_traced_dtype(args, inputs):
    """The dtype policy (module docstring): cast constants that would promote the traced values' dtype.

    D is the dtype of the traced inputs (their NumPy result type if they differ). A constant array or NumPy
    scalar whose dtype would widen D (float64 or an integer next to float32) is cast to D; Python numbers,
    booleans and constants of D itself pass unchanged (the float64 path costs one comparison per input).
    """
    dtype = None
    for a in args:
        if isinstance(a, Var):
            d = getattr(a.value, "dtype", None)
            if d is None:
                return inputs
            if dtype is None:
                dtype = d
            elif d != dtype:
                dtype = np.result_type(dtype, d)
    if dtype.kind != "f":
        return inputs
    out = None
    for k, (a, x) in enumerate(zip(args, inputs)):
        if isinstance(a, Var):
            continue
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        d = getattr(x, "dtype", None)
        if d is None or d == dtype or d.kind not in "biuf" or np.result_type(d, dtype) == dtype:
            continue
        if out is None:
            out = list(inputs)
        out[k] = x.astype(dtype)
    return inputs if out is None else tuple(out)


def apply(prim, *args, **params):
    """Run ``prim`` on ``args``; record it on the tape if any argument is traced.

    With no Var among the arguments this is plain numpy, so a model written with :mod:`mamlnp.ops` also
    runs untraced (at full speed) for evaluation and finite differences.
    """
    tape = None
    constants = False
    for a in args:
        if isinstance(a, Var):
            if tape is None:
                tape = a.tape
            elif a.tape is not tape:
                raise ValueError(
                    f"{prim.name}: its inputs come from two different traces; a value traced by one call of "
                    "grad/hvp cannot be mixed with another's (nested differentiation is not supported)"
                )
        else:
            constants = True
    if tape is None:
        return prim.check_and_forward(args, params)
    inputs = tuple(a.value if isinstance(a, Var) else a for a in args)
    if constants:
        inputs = _constants_in_traced_dtype(args, inputs)
    out = prim.check_and_forward(inputs, params)
    parents = tuple(a.index if isinstance(a, Var) else -1 for a in args)
    tape.nodes.append(Node(prim, parents, inputs, out, params))
    return Var(out, tape, len(tape.nodes) - 1)

