"""Meta-learning algorithms over a meta-batch of tasks, vectorised over a leading task axis.

Notation (article §3.3, Finn et al. 2017): θ (``params``) is the meta-model's initialisation, α
(``inner_lr``) the inner learning rate, S (``inner_steps``) the number of inner SGD steps. For task i,

    θ_i^(0) = θ,   θ_i^(k+1) = θ_i^(k) − α ∇L_i^support(θ_i^(k))          (the inner problem, adapted)
    L_meta(θ) = (1/T) Σ_i L_i^query(θ_i^(S))                               (the outer problem)

and by the chain rule through each step (Jacobian ∂θ^(k+1)/∂θ^(k) = I − α ∇²L^support(θ^(k))):

    ∇L_meta(θ) = (1/T) Σ_i (I − α H_i^(0)) ⋯ (I − α H_i^(S−1)) ∇L_i^query(θ_i^(S)).

:func:`meta_gradient` evaluates exactly this product from the right, one Hessian-vector product per
step (``g ← g − α H g``), with H·g from the engine's R-operator on the trace already recorded for the
inner step. First-order MAML drops the H terms. All T tasks go through one batched evaluation: θ is
broadcast to (T, …), and because Σ_i L_i(θ_i) separates over tasks, its gradient and HVPs are per task.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..engine import ops
from ..engine.core import Tape, value_of
from ..engine.replay import GuardFailed, NotReplayable, record
from ..engine.pytree import tree_flatten, tree_unflatten
from ..engine.transforms import as_float_leaves
from ..models.losses import LOSSES
from ..models.nn import ACTIVATIONS, mlp

__all__ = [
    "meta_gradient", "maml_gradient", "fomaml_gradient", "adapt", "adaptation_losses", "task_loss_fn",
    "validate_meta_batch", "prepare", "step_counts", "losses_after_steps", "eager_only",
    "recorded_program",
]


# ---------------------------------------------------------------------------------------- validation
def _check_inner(inner_lr, inner_steps, order=2):
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float, np.floating, np.integer)):
        raise TypeError(f"inner_lr must be a number, got {type(inner_lr).__name__}")
    if not np.isfinite(inner_lr) or inner_lr <= 0:
        raise ValueError(f"inner_lr must be a positive finite number (α > 0), got {inner_lr!r}")
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)):
        raise TypeError(f"inner_steps must be an integer, got {type(inner_steps).__name__}")
    if inner_steps < 0:
        raise ValueError(f"inner_steps must be ≥ 0 (S = 0 means no adaptation), got {inner_steps}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (first-order MAML) or 2 (full MAML), got {order!r}")


def validate_meta_batch(params, support, query=None, loss="mse"):
    """Check shapes of a meta-batch against params; return the task count T.

    support/query are ``(x, y)`` with x (T, K, d_in); y (T, K, d_out) for "mse", integer (T, K) for
    "cross_entropy". Raises ValueError naming the argument, what it got and what was expected.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if not isinstance(params, (list, tuple)) or len(params) < 2 or len(params) % 2:
        raise ValueError(f"params must be the MLP list [W1, b1, …]; got {type(params).__name__} of length "
                         f"{len(params) if hasattr(params, '__len__') else '?'}")
    d_in = np.shape(params[0])[-2]
    d_out = np.shape(params[-2])[-1]
    task_count = None
    for name, pair in (("support", support), ("query", query)):
        if pair is None:
            continue
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{name} must be a pair (x, y) of arrays, got {type(pair).__name__}")
        x, y = np.asarray(pair[0]), np.asarray(pair[1])
        for part, arr in (("x", x), ("y", y)):  # object/string data would fail deep inside the engine
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"{name} {part} has dtype {arr.dtype}; expected a real numeric array "
                                "(float for x, float for mse's y, integer class labels for cross_entropy's y)")
        if x.ndim != 3:
            raise ValueError(f"{name} x must have shape (T, K, d_in) with a leading task axis, got shape {x.shape}")
        if x.shape[1] == 0:
            raise ValueError(f"{name} has K = 0 points per task (x shape {x.shape}); each task needs at least one")
        if x.shape[2] != d_in:
            raise ValueError(f"{name} x has {x.shape[2]} features (shape {x.shape}) but the network's input size is {d_in}")
        want_y = (x.shape[0], x.shape[1], d_out) if loss == "mse" else (x.shape[0], x.shape[1])
        if y.shape != want_y:
            raise ValueError(f"{name} y has shape {y.shape}; expected {want_y} to match x {x.shape} and loss {loss!r}")
        if task_count is None:
            task_count = x.shape[0]
        elif x.shape[0] != task_count:
            raise ValueError(f"support has {task_count} tasks but query has {x.shape[0]}; the task axes must match")
    if task_count == 0:
        raise ValueError("the meta-batch has T = 0 tasks")
    return task_count


def task_loss_fn(loss="mse", activation="relu"):
    """The per-task loss L_i(θ_i) of the MLP: ``f(params, x, y) -> (T,)`` (mean within each task)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    per_task = LOSSES[loss][0]

    def task_loss(params, x, y):
        return per_task(mlp(params, x, activation), y)

    return task_loss


# ---------------------------------------------------------------------------------------- the engine's view
class _Step:
    """One recorded evaluation of Σ_i L_i(θ_i) at stacked per-task parameters (a thin, fast Trace)."""

    __slots__ = ("tape", "leaves", "out", "adjoints")

    def __init__(self, task_loss, theta, x, y, scale=1.0, release=True):
        # release: the tape keeps only the values a later sweep reads (Tape.release_unread_values); worth its
        # cost for a trace that is kept (an inner step of second-order MAML) or swept while others are held
        self.tape = Tape()
        self.leaves = [self.tape.leaf(p) for p in theta]
        per_task = task_loss(self.leaves, x, y)
        if np.shape(value_of(per_task)) != (len(theta[0]),):
            raise ValueError(f"task_loss must return one loss per task, shape ({len(theta[0])},); got shape "
                             f"{np.shape(value_of(per_task))} (reduce over each task's points, not over tasks)")
        total = ops.sum(per_task)
        self.out = total if scale == 1.0 else ops.mul(total, scale)
        self.adjoints = None
        if release:
            self.tape.release_unread_values()

    @property
    def value(self):
        return float(self.out.value)

    def grad(self, keep_for_hvp=True):
        """∇ of the recorded loss w.r.t. the leaves; ``keep_for_hvp=False`` when no ``hvp`` will follow (the
        query step): then no interior adjoint is kept."""
        adjoints = self.tape.backward(self.out.index, np.ones_like(self.out.value), keep_for_hvp=keep_for_hvp)
        grads = [adjoints[v.index] for v in self.leaves]
        for v in self.leaves:  # the caller consumes them (θ update); the HVP reuse reads only interior adjoints
            adjoints[v.index] = None
        self.adjoints = adjoints if keep_for_hvp else None
        return grads

    def hvp(self, v):
        tangents = self.tape.forward_tangents({leaf.index: t for leaf, t in zip(self.leaves, v)})
        seed = np.ones_like(self.out.value) if self.adjoints is None else None  # no grad kept: sweep both
        _, r = self.tape.backward(self.out.index, seed, tangents, self.adjoints)
        return [np.zeros_like(leaf.value) if r[leaf.index] is None else r[leaf.index] for leaf in self.leaves]


def _stack(params, task_count):
    """θ broadcast to (T, …): every task starts from the same initialisation (views, no copies)."""
    return [np.broadcast_to(p, (task_count,) + np.shape(p)) for p in params]


def _inner_loop(task_loss, theta, support, inner_lr, inner_steps, keep=False):
    """S steps of θ ← θ − α ∇L^support(θ) for all tasks at once; optionally keep each step's trace."""
    xs, ys = support
    inner_lr = float(inner_lr)  # a NumPy float64 scalar would promote float32 parameters
    steps = []
    for _ in range(inner_steps):
        step = _Step(task_loss, theta, xs, ys, release=keep)
        g = step.grad(keep_for_hvp=keep)
        theta = _minus_scaled(theta, inner_lr, g)  # θ − α g, written into g where g is the step's own array
        if keep:
            steps.append(step)
    return theta, steps


# ---------------------------------------------------------------------------------------- any model
def _task_count(pair, name):
    """T, the leading task axis shared by every array in ``pair = (x, y)`` (x and y may be pytrees)."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (x, y), got {type(pair).__name__}")
    leaves, _ = tree_flatten(list(pair))
    counts = set()
    for leaf in leaves:
        shape = np.shape(leaf)
        if np.asarray(leaf).dtype == object:
            raise TypeError(f"{name} holds an object-dtype array; expected numeric arrays with a leading task axis")
        if not shape:
            raise ValueError(f"{name} holds a 0-d value; every array needs a leading task axis (T, …)")
        counts.add(shape[0])
    if len(counts) != 1:
        raise ValueError(f"{name}'s arrays disagree on the task axis: leading sizes {sorted(counts)}")
    return counts.pop()


def prepare(params, support, query=None, *, loss="mse", activation="relu", task_loss=None):
    """Resolve the model of an algorithm call: ``(flat_loss, leaves, rebuild, T)``.

    Internally every algorithm works on the flat list of parameter leaves: ``flat_loss(leaves, x, y) -> (T,)``
    evaluates the per-task loss and ``rebuild(leaves)`` restores the caller's structure. With
    ``task_loss=None`` the model is the MLP :func:`mamlnp.nn.mlp` with ``loss``/``activation`` (``params`` the
    list ``[W1, b1, …]``); otherwise ``task_loss(params, x, y) -> (T,)`` on any pytree ``params`` (list,
    tuple or dict of float arrays), with ``x``/``y`` any arrays (or pytrees of arrays) with a leading task axis.
    """
    if task_loss is None:
        task_count = validate_meta_batch(params, support, query, loss)
        as_float_leaves(list(params))
        return task_loss_fn(loss, activation), list(params), list, task_count
    if not callable(task_loss):
        raise TypeError(f"task_loss must be a function task_loss(params, x, y) -> (T,), got {type(task_loss).__name__}")
    leaves, treedef = as_float_leaves(params)
    task_count = _task_count(support, "support")
    if query is not None and _task_count(query, "query") != task_count:
        raise ValueError(f"support has {task_count} tasks but query has {_task_count(query, 'query')}; "
                         "the task axes must match")
    if task_count == 0:
        raise ValueError("the meta-batch has T = 0 tasks")

    def flat_loss(flat, x, y):
        return task_loss(tree_unflatten(treedef, flat), x, y)

    return flat_loss, leaves, (lambda flat: tree_unflatten(treedef, list(flat))), task_count


def _meta_gradient(flat_loss, leaves, support, query, task_count, inner_lr, inner_steps, order):
    """The MAML meta-gradient on flat leaves: inner loop, query gradient, then (I − αH) factors from the right."""
    theta, steps = _inner_loop(flat_loss, _stack(leaves, task_count), support, inner_lr, inner_steps,
                               keep=(order == 2))
    outer = _Step(flat_loss, theta, query[0], query[1], scale=1.0 / task_count, release=bool(steps))
    g = outer.grad(keep_for_hvp=False)
    value = outer.out.value  # an array, not float(): a recorded replay (below) must see every value it returns
    del outer, theta  # keep only what the backward product needs: the inner steps' traces and g
    while steps:  # order 2 only: apply (I − α H) factors from the right, dropping each trace once used
        hg = steps.pop().hvp(g)
        g = _minus_scaled(g, inner_lr, hg)
        del hg
    return value, [np.sum(gi, axis=0) for gi in g]  # θ is shared: sum the per-task pieces


def _minus_scaled(g, inner_lr, h):
    """[g_j − α h_j]; each result is written into h_j when h_j is an array of its own (it owns its memory, is
    no g and no g is a view of it, and no other h is the same array), with the same two roundings as
    ``g_j − α h_j`` and one parameter-sized array fewer. (A view's ``base`` is the array owning the memory.)"""
    out = []
    g_ids = {id(gk) for gk in g} | {id(getattr(gk, "base", None)) for gk in g}
    h_ids = [id(hk) for hk in h] + [id(getattr(hk, "base", None)) for hk in h]
    for gj, hj in zip(g, h):
        own = (isinstance(hj, np.ndarray) and hj.base is None and id(hj) not in g_ids and h_ids.count(id(hj)) == 1
               and hj.flags.writeable and hj.shape == np.shape(gj) and hj.dtype == np.result_type(gj, hj))
        if own:
            np.multiply(hj, inner_lr, out=hj)
            out.append(np.subtract(gj, hj, out=hj))
        else:
            out.append(gj - inner_lr * hj)
    return out


# ---------------------------------------------------------------------------------------- public algorithms
def maml_gradient(params, support, query, *, inner_lr, inner_steps, order=2, loss="mse", activation="relu",
                  task_loss=None):
    """MAML's meta-loss and meta-gradient (``order=1``: first-order MAML).

    ``support = (xs, ys)``, ``query = (xq, yq)`` with a leading task axis. Returns ``(meta_loss, grads)``:
    the mean over tasks of the query loss after S inner SGD steps of size α on the support set, and its
    gradient with respect to ``params`` (same structure as ``params``).

    ``order=2``: the exact meta-gradient, g ← (I − α H(θ^(k))) g for k = S−1 … 0.
    ``order=1``: first-order MAML, g = (1/T) Σ_i ∇L_i^query(θ_i^(S)) (the H terms dropped).

    The model is the MLP ``params = [W1, b1, …]`` with ``loss`` and ``activation``, or, when ``task_loss`` is
    given, any ``task_loss(params, x, y) -> (T,)`` over any pytree ``params`` (see :func:`prepare`).

    Speed: for the MLP, repeated calls with the same configuration replay a recording of the first ones (below);
    the results are the eager engine's bit for bit. ``with eager_only(): …`` runs the engine on every call.
    """
    _check_inner(inner_lr, inner_steps, order)
    flat_loss, leaves, rebuild, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    config = (loss, activation, task_count, float(inner_lr), inner_steps, order)
    replayed = None if task_loss is not None else _replayed(config, flat_loss, [*leaves, *support, *query])
    if replayed is not None:
        return replayed[0], rebuild(replayed[1])
    value, grads = _meta_gradient(flat_loss, leaves, support, query, task_count, float(inner_lr), inner_steps, order)
    return float(value), rebuild(grads)


# ---------------------------------------------------------------------------------------- the replayed fast path
# The eager code above is the definition. For the built-in MLP, the second call with the same configuration
# (loss, activation, T, α, S, order, every array's shape and dtype) records its NumPy calls once
# (mamlnp.engine.replay) and later calls replay them as straight-line code: the same calls on the new arrays, so
# the same numbers bit for bit, without re-building and re-walking the tape in Python. A custom task_loss always
# runs eagerly (its Python could branch on values in ways a recording cannot see).
_PROGRAMS = {}          # configuration -> Program; _PENDING: seen once; None: runs eagerly (see _record_program)
_PENDING, _MISSING = object(), object()
_MAX_PROGRAMS = 32
_REPLAY = {"enabled": True}


class eager_only:
    """``with eager_only(): …`` — MAML runs the eager engine on every call (no recorded replay), e.g. to compare
    the two. (``eager_only(False)`` turns the replay on inside, whatever holds outside.)"""

    def __init__(self, eager=True):
        self._eager = eager

    def __enter__(self):
        self._was = _REPLAY["enabled"]
        _REPLAY["enabled"] = not self._eager
        return self

    def __exit__(self, *exc):
        _REPLAY["enabled"] = self._was
        return False


def _program_key(config, arrays):
    """The cache key of a call: its configuration and every array's shape, dtype, strides and alignment (None: not
    all are ndarrays, which only the eager code takes). The layout is in the key because the engine decides on it
    (``ops._mm`` folds tasks into one GEMM only for C-ordered rows): a replay recorded for one layout would make
    other NumPy calls than the engine on another."""
    if not all(type(a) is np.ndarray for a in arrays):
        return None
    return config + tuple((a.shape, a.dtype.str, a.strides, a.flags.aligned) for a in arrays)


def _program(config, flat_loss, arrays, record_now=False):
    """The recorded program for this call, or None (run the eager code). A configuration's first call only marks
    it as seen; its second records it (``record_now``: at once)."""
    key = _program_key(config, arrays)
    if key is None:
        return None
    entry = _PROGRAMS.get(key, _MISSING)
    if entry is _MISSING and not record_now:
        if len(_PROGRAMS) >= _MAX_PROGRAMS:
            del _PROGRAMS[next(iter(_PROGRAMS))]
        _PROGRAMS[key] = _PENDING
        return None
    if entry is _MISSING or entry is _PENDING:
        entry = _PROGRAMS[key] = _record_program(config, flat_loss, arrays)
    return entry


def _replayed(config, flat_loss, arrays):
    """(meta_loss, grads) from the recorded program of this configuration, or None: run the eager code."""
    program = _program(config, flat_loss, arrays) if _REPLAY["enabled"] else None
    if program is None:
        return None
    try:
        value, *grads = program(*arrays)
    except GuardFailed:  # a value-dependent check went otherwise (bad labels, say): the eager code says why
        return None
    return float(value), grads


def recorded_program(params, support, query, *, inner_lr, inner_steps, order=2, loss="mse", activation="relu"):
    """The recorded :class:`mamlnp.engine.replay.Program` behind :func:`maml_gradient` for this configuration
    (recorded now if need be), to read (``.source``: the NumPy calls one meta-gradient makes) or to time
    (``.kernel_seconds``); its inputs are ``[*params, *support, *query]``. None if it cannot be replayed."""
    _check_inner(inner_lr, inner_steps, order)
    flat_loss, leaves, _, task_count = prepare(params, support, query, loss=loss, activation=activation)
    config = (loss, activation, task_count, float(inner_lr), inner_steps, order)
    return _program(config, flat_loss, [*leaves, *support, *query], record_now=True)


def _shuffled(a):
    """Data for the check input: tasks rolled, points reversed, floats scaled, integer labels moved to the next value
    seen (so that the check input differs from the recorded one even with one task of one point)."""
    a = np.roll(a, 1, axis=0)[:, ::-1]
    if a.dtype.kind == "f":
        return a * 1.01
    top = a.max() + 1 if a.size else 1
    return (a + 1) % top if a.size and a.min() >= 0 else a


def _record_program(config, flat_loss, arrays):
    """Record the meta-gradient's NumPy calls; check the replay against the eager code on these arrays and on a
    second, different input (an array that escaped the recording would show there as a stale value). A
    configuration that cannot be recorded or fails the check runs eagerly from now on, with a warning."""
    _, _, task_count, inner_lr, inner_steps, order = config
    n = len(arrays) - 4

    def core(*a):
        value, grads = _meta_gradient(flat_loss, list(a[:n]), a[n:n + 2], a[n + 2:], task_count, inner_lr,
                                      inner_steps, order)
        return (value, *grads)

    try:
        program = record(core, arrays)
        with np.errstate(all="ignore"):  # the check input may overflow where the caller's does not: not an error here
            probe = [0.75 * p + 0.01 for p in arrays[:n]] + [_shuffled(a) for a in arrays[n:]]
            probe = [np.ascontiguousarray(p, dtype=a.dtype) for p, a in zip(probe, arrays)]
            for inputs in (arrays, probe):
                expected, got = core(*inputs), program(*inputs)
                if not all(np.asarray(e).dtype == np.asarray(g).dtype
                           and np.asarray(e).tobytes() == np.asarray(g).tobytes() for e, g in zip(expected, got)):
                    raise NotReplayable("the replay differs from the eager engine on a check input")
    except (NotReplayable, GuardFailed, ArithmeticError) as err:
        warnings.warn(f"MAML configuration {config}: no replay ({err}); the eager engine runs every call", RuntimeWarning)
        return None
    return program


def meta_gradient(task_loss, params, support, query, *, inner_lr, inner_steps, order=2):
    """(L_meta(θ), ∇L_meta(θ)) for any per-task loss: :func:`maml_gradient` with ``task_loss`` first."""
    return maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps, order=order,
                         task_loss=task_loss)


def fomaml_gradient(params, support, query, *, inner_lr, inner_steps, loss="mse", activation="relu", task_loss=None):
    """First-order MAML (Finn et al. 2017 §5.2): the query gradient at θ^(S), applied to θ."""
    return maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps, order=1,
                         loss=loss, activation=activation, task_loss=task_loss)


def adapt(params, support, *, inner_lr, inner_steps, loss="mse", activation="relu", task_loss=None):
    """θ_i^(S) for every task: S inner SGD steps from θ on each task's support set.

    Returns new arrays with a leading task axis (T, …), in the structure of ``params``; ``params`` is never
    modified.
    """
    _check_inner(inner_lr, inner_steps)
    flat_loss, leaves, rebuild, task_count = prepare(params, support, None, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    theta, _ = _inner_loop(flat_loss, _stack(leaves, task_count), support, inner_lr, inner_steps)
    return rebuild([np.array(p) for p in theta])  # real copies, even for S = 0


def adaptation_losses(params, support, query, *, inner_lr, steps, loss="mse", activation="relu", task_loss=None):
    """Per-task query loss after each number of inner steps in ``steps`` (e.g. (0, 1, 10)).

    Returns ``{s: array (T,)}``; one inner loop serves all the step counts.
    """
    flat_loss, leaves, _, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                               task_loss=task_loss)
    steps = step_counts(steps)
    _check_inner(inner_lr, steps[-1])
    return losses_after_steps(flat_loss, _stack(leaves, task_count), query, steps,
                              lambda theta, n: _inner_loop(flat_loss, theta, support, inner_lr, n)[0])


def step_counts(steps):
    """The sorted distinct inner-step counts in ``steps``; TypeError/ValueError unless non-negative integers."""
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"steps must hold integers (inner step counts), got {s!r} of type {type(s).__name__}")
    steps = sorted(set(int(s) for s in steps))
    if not steps or steps[0] < 0:
        raise ValueError(f"steps must be non-negative integers, got {steps}")
    return steps


def losses_after_steps(flat_loss, theta, query, steps, advance):
    """``{s: per-task query loss after s inner steps}`` for sorted ``steps``: one inner loop serves every count,
    ``advance(theta, n)`` running n more steps (plain SGD here, learned step sizes in Meta-SGD)."""
    out, done = {}, 0
    for s in steps:
        theta = advance(theta, s - done)
        done = s
        out[s] = np.asarray(flat_loss(theta, query[0], query[1]))
    return out
