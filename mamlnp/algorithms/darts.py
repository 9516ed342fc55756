"""Neural architecture search as bilevel optimisation: DARTS (Liu, Simonyan & Yang 2019) on a tiny search space.

The search space. A regression network 1 → H → … → H → 1 whose hidden layer l applies, after its affine map
z = h W_l + b_l, one operation chosen from :data:`OPERATIONS` (relu, tanh, softplus, identity, zero). With L
hidden layers there are |O|^L discrete architectures (25 for L = 2): few enough to train every one.

The continuous relaxation (DARTS §2.2). Layer l instead applies the *mixed operation*

    ō_l(z) = Σ_o p_{l,o} · o(z),        p_l = softmax(a_l),

with architecture weights a (``arch``, shape (L, |O|)) — the outer variables — and network weights w
(``weights``, the MLP list ``[W1, b1, …]``) — the inner ones. A discrete architecture is the same network with
one-hot p, so :func:`network` evaluates both (``mixing`` = softmax(a) or a one-hot array).

The bilevel problem (DARTS Eq. 3–4; the same mathematics as the article's §3.1):

    min_a  L_val(w*(a), a)      subject to   w*(a) = argmin_w L_train(w, a).

Its unrolled version replaces w*(a) by S SGD steps of size ξ (``inner_lr``) from the current w:

    w^(0) = w,   w^(k+1) = w^(k) − ξ ∇_w L_train(w^(k), a),      F(a) = L_val(w^(S), a)     (:func:`bilevel_objective`)

and the architecture gradient is dF/da. Three ways to compute it (:func:`architecture_gradient`):

``"first_order"``   ∇_a L_val(w, a): w treated as already optimal and independent of a (DARTS "first-order",
                    ξ = 0).
``"darts"``         DARTS' second-order approximation for one step (their Eq. 7):
                    ∇_a L_val(w', a) − ξ ∇²_{a,w} L_train(w, a) ∇_{w'} L_val(w', a),   w' = w − ξ∇_w L_train(w, a),
                    with the mixed second derivative replaced by a central finite difference (their Eq. 8):
                    ∇²_{a,w} L_train(w, a) v ≈ [∇_a L_train(w⁺, a) − ∇_a L_train(w⁻, a)] / 2ε,  w^± = w ± ε v,
                    ε = 0.01 / ‖v‖, v = ∇_{w'} L_val(w', a).
``"exact"``         dF/da through all S unrolled steps, by reverse accumulation with the engine's exact
                    Hessian-vector products of L_train over the joint variables (w, a):
                    g_w = ∇_w L_val(w^(S), a),  g_a = ∇_a L_val(w^(S), a);  for k = S−1, …, 0:
                    [H_ww g_w ; H_aw g_w] = ∇²_{(w,a)} L_train(w^(k), a) · (g_w, 0),
                    g_a ← g_a − ξ H_aw g_w,   g_w ← g_w − ξ H_ww g_w.
                    For S = 1 this is Eq. 7 evaluated exactly; the tests check it against finite differences
                    of F itself for S = 1, 2, 3.

Everything is vectorised over a leading task axis T: each task (a regression problem) carries its own w and a,
so T independent searches run in one batched evaluation (the losses are summed over tasks, so all gradients
and HVPs are per task).
"""
from __future__ import annotations

import itertools

import numpy as np

from ..engine import ops
from ..models.nn import init_mlp
from ..models.optim import SGD, Adam
from ..tasks.sinusoid import SinusoidTasks
from .maml import _Step

__all__ = [
    "OPERATIONS", "network", "mixed_operation", "softmax", "task_mse_of", "init_weights", "init_arch",
    "bilevel_objective", "architecture_gradient", "darts_search", "derive_architecture", "enumerate_architectures",
    "one_hot_mixing", "train_architectures", "random_search", "SearchData", "sample_search_data", "GRADIENT_METHODS",
    "architecture_id", "ground_truth", "ranks_of", "gradient_agreement",
]

OPERATIONS = ("relu", "tanh", "softplus", "identity", "zero")
_OPS = {"relu": ops.relu, "tanh": ops.tanh, "softplus": ops.softplus, "identity": lambda z: z}
GRADIENT_METHODS = ("first_order", "darts", "exact")


# ---------------------------------------------------------------------------------------- the network
def _check_operations(operations):
    bad = [o for o in operations if o not in _OPS and o != "zero"]
    if bad or not operations:
        raise ValueError(f"operations must be a non-empty tuple drawn from {OPERATIONS}, got {operations!r}")


def softmax(a, axis=-1):
    """p = softmax(a) = exp(a − logsumexp(a)), from primitives (so its HVP rules come for free)."""
    return ops.exp(ops.log_softmax(a, axis=axis))


def mixed_operation(z, mixing, operations=OPERATIONS):
    """ō(z) = Σ_o p_o · o(z) for hidden pre-activations z (T, n, H) and weights ``mixing`` p (T, |O|).

    The "zero" operation contributes 0·p_zero: it has no term, but its weight still takes its share of the
    softmax, so a large a_zero shrinks the whole layer's output.
    """
    _check_operations(operations)
    out = None
    for o, name in enumerate(operations):
        if name == "zero":
            continue
        p_o = ops.getitem(mixing, (slice(None), None, slice(o, o + 1)))  # (T, 1, 1): one weight per task
        term = ops.mul(p_o, _OPS[name](z))
        out = term if out is None else ops.add(out, term)
    if out is None:  # every operation is "zero"
        return ops.mul(z, 0.0)
    return out


def network(weights, mixing, x, operations=OPERATIONS):
    """f(x; w, p): affine layers, hidden layer l followed by the mixed operation with p[:, l] (T, L, |O|).

    ``weights`` = [W1, b1, …, W_{L+1}, b_{L+1}] with a leading task axis; x (T, n, d_in).
    """
    n_layers = len(weights) // 2
    h = x
    for layer in range(n_layers):
        h = ops.affine(h, weights[2 * layer], weights[2 * layer + 1])
        if layer < n_layers - 1:
            h = mixed_operation(h, ops.getitem(mixing, (slice(None), layer)), operations)
    return h


def task_mse_of(operations=OPERATIONS, *, relaxed=True):
    """The per-task loss ``loss(leaves, x, y) -> (T,)`` on the flat leaves ``weights + [arch]``.

    ``relaxed=True``: the last leaf is a (T, L, |O|) and p = softmax(a) (the supernet). ``relaxed=False``: the
    leaves are the weights only and ``x`` is the pair (inputs, one-hot mixing) (a discrete network).
    """
    _check_operations(operations)

    if relaxed:
        def loss(leaves, x, y):
            pred = network(leaves[:-1], softmax(leaves[-1]), x, operations)
            return ops.mean(ops.square(ops.sub(pred, y)), axis=(-2, -1))
    else:
        def loss(leaves, x, y):
            inputs, mixing = x
            pred = network(leaves, mixing, inputs, operations)
            return ops.mean(ops.square(ops.sub(pred, y)), axis=(-2, -1))
    return loss


# ---------------------------------------------------------------------------------------- data and initialisation
class SearchData:
    """One regression problem per task, split three ways: ``train`` (fits w), ``val`` (fits a / selects), ``test``.

    Each split is a pair (x, y) of arrays (T, n, 1).
    """

    def __init__(self, train, val, test, info=None):
        self.train, self.val, self.test, self.info = train, val, test, info or {}

    @property
    def task_count(self):
        return self.train[0].shape[0]

    def take(self, index):
        """The same splits for a subset (or a repetition) of tasks, by an integer index array."""
        pick = lambda pair: (pair[0][index], pair[1][index])  # noqa: E731
        return SearchData(pick(self.train), pick(self.val), pick(self.test),
                          {k: np.asarray(v)[index] for k, v in self.info.items()})


def sample_search_data(rng, tasks, n_train=20, n_val=20, n_test=200, noise=0.0, family=None):
    """``tasks`` sine regression problems (Finn et al. 2017's family unless ``family``), each split three ways.

    ``noise``: standard deviation of Gaussian noise added to the train and val targets (the test targets stay
    clean, so test MSE measures the error against the true function).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    for name, value in (("tasks", tasks), ("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number ≥ 0, got {noise!r}")
    family = SinusoidTasks() if family is None else family
    (xs, ys), (xq, yq), info = family.sample(rng, tasks, n_train + n_val, n_test)
    ys = ys + noise * rng.standard_normal(ys.shape)
    train = (xs[:, :n_train], ys[:, :n_train])
    val = (xs[:, n_train:], ys[:, n_train:])
    return SearchData(train, val, (xq, yq), info)


def init_weights(rng, tasks, hidden=(16, 16), d_in=1, d_out=1):
    """Glorot-initialised weights with a leading task axis: each task draws its own (T, …) arrays."""
    sizes = [d_in, *hidden, d_out]
    per_task = [init_mlp(sizes, rng, scheme="glorot") for _ in range(tasks)]
    return [np.stack([p[k] for p in per_task]) for k in range(len(per_task[0]))]


def init_arch(tasks, layers, operations=OPERATIONS, scale=0.0, rng=None):
    """Architecture weights a (T, L, |O|): zeros (uniform mixing, as DARTS) or ``scale``·N(0, 1) with ``rng``."""
    a = np.zeros((tasks, layers, len(operations)))
    if scale:
        a = a + scale * rng.standard_normal(a.shape)
    return a


# ---------------------------------------------------------------------------------------- the bilevel objective
def _check_inner(inner_lr, inner_steps):
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float, np.floating, np.integer)) \
            or not np.isfinite(inner_lr) or inner_lr <= 0:
        raise ValueError(f"inner_lr (ξ) must be a positive finite number, got {inner_lr!r}")
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)) or inner_steps < 0:
        raise ValueError(f"inner_steps (S) must be an integer ≥ 0, got {inner_steps!r}")


def _check_shapes(weights, arch, data_pair, operations):
    arch = np.asarray(arch)
    tasks = data_pair[0].shape[0]
    if arch.ndim != 3 or arch.shape[0] != tasks or arch.shape[2] != len(operations):
        raise ValueError(f"arch must have shape (T, L, |O|) = ({tasks}, L, {len(operations)}); got {arch.shape}")
    if len(weights) != 2 * (arch.shape[1] + 1):
        raise ValueError(f"weights must hold {2 * (arch.shape[1] + 1)} arrays for L = {arch.shape[1]} hidden layers "
                         f"(arch {arch.shape}); got {len(weights)}")
    for k, p in enumerate(weights):
        if np.shape(p)[0] != tasks:
            raise ValueError(f"weights[{k}] has shape {np.shape(p)}; expected a leading task axis of {tasks}")


def _unroll(loss, weights, arch, train, inner_lr, inner_steps, keep):
    """S steps w ← w − ξ ∇_w L_train(w, a) (a fixed); optionally keep each step's trace for the reverse pass."""
    w, steps = list(weights), []
    for _ in range(inner_steps):
        step = _Step(loss, w + [arch], train[0], train[1])
        g = step.grad()
        w = [p - inner_lr * gi for p, gi in zip(w, g[:-1])]
        if keep:
            steps.append(step)
    return w, steps


def bilevel_objective(weights, arch, data, *, inner_lr, inner_steps, operations=OPERATIONS):
    """F(a) = L_val(w^(S)(a), a) per task (T,): S SGD steps of ξ on L_train from w, then the val loss."""
    _check_inner(inner_lr, inner_steps)
    _check_shapes(weights, arch, data.train, operations)
    loss = task_mse_of(operations)
    w, _ = _unroll(loss, weights, np.asarray(arch), data.train, float(inner_lr), inner_steps, keep=False)
    return np.asarray(loss(w + [np.asarray(arch)], *data.val))


def _per_task_norm(leaves):
    return np.sqrt(sum(np.sum(np.reshape(v, (v.shape[0], -1)) ** 2, axis=1) for v in leaves))


def _bcast(per_task, like):
    return per_task.reshape((-1,) + (1,) * (np.ndim(like) - 1))


def architecture_gradient(weights, arch, data, *, method="exact", inner_lr, inner_steps=1, fd_scale=0.01,
                          operations=OPERATIONS):
    """(F per task (T,), dF/da (T, L, |O|)) by ``method`` — "first_order", "darts" (Eq. 7–8) or "exact".

    ``inner_steps`` (S) is used by "exact" (the objective it differentiates); "darts" is DARTS' one-step
    formula whatever S is, and "first_order" takes no step. The returned value is always the S-step F, so
    the three gradients are compared on the same objective. ``fd_scale`` is DARTS' 0.01 in ε = 0.01/‖v‖.
    """
    if method not in GRADIENT_METHODS:
        raise ValueError(f"method must be one of {GRADIENT_METHODS}, got {method!r}")
    _check_inner(inner_lr, inner_steps)
    _check_shapes(weights, arch, data.train, operations)
    inner_lr = float(inner_lr)
    arch = np.asarray(arch, dtype=np.float64)
    loss = task_mse_of(operations)
    w_s, steps = _unroll(loss, weights, arch, data.train, inner_lr, inner_steps, keep=(method == "exact"))
    val_s = _Step(loss, w_s + [arch], *data.val)
    value = np.asarray(loss(w_s + [arch], *data.val))
    if method == "exact":
        g = val_s.grad()
        g_w, g_a = g[:-1], g[-1]
        for step in reversed(steps):
            hv = step.hvp(g_w + [np.zeros_like(arch)])  # ∇²_{(w,a)} L_train · (g_w, 0) = (H_ww g_w, H_aw g_w)
            g_a = g_a - inner_lr * hv[-1]
            g_w = [gi - inner_lr * hi for gi, hi in zip(g_w, hv[:-1])]
        return value, g_a
    if method == "first_order":
        return value, _Step(loss, list(weights) + [arch], *data.val).grad()[-1]
    # DARTS' second-order approximation: one virtual step, then the finite-difference mixed derivative
    w1, _ = _unroll(loss, weights, arch, data.train, inner_lr, 1, keep=False)
    g = _Step(loss, w1 + [arch], *data.val).grad()
    v, g_a = g[:-1], g[-1]
    eps = fd_scale / np.maximum(_per_task_norm(v), 1e-300)                      # (T,): ε = 0.01/‖v‖ per task
    plus = [p + _bcast(eps, p) * vi for p, vi in zip(weights, v)]
    minus = [p - _bcast(eps, p) * vi for p, vi in zip(weights, v)]
    d_plus = _Step(loss, plus + [arch], *data.train).grad()[-1]
    d_minus = _Step(loss, minus + [arch], *data.train).grad()[-1]
    mixed = (d_plus - d_minus) / (2.0 * _bcast(eps, arch))                        # ≈ ∇²_{a,w} L_train · v
    return value, g_a - inner_lr * mixed


# ---------------------------------------------------------------------------------------- the search
def darts_search(weights, arch, data, *, iterations, method="darts", inner_lr=0.05, inner_steps=1, arch_lr=0.03,
                 operations=OPERATIONS, record_every=0):
    """DARTS' alternating search (their Algorithm 1), for every task at once.

    Each iteration: a ← Adam step along the architecture gradient ``method`` (val split); then w ← w − ξ
    ∇_w L_train(w, a) (plain SGD with the same ξ the virtual step assumes). Returns ``(weights, arch, history)``
    with ``history["arch"]`` the a's every ``record_every`` iterations (if > 0) and ``history["val"]`` the
    mean F at those iterations.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be an integer ≥ 0, got {iterations!r}")
    _check_shapes(weights, arch, data.train, operations)
    loss = task_mse_of(operations)
    w, a = list(weights), np.array(arch, dtype=np.float64)
    arch_opt = Adam(lr=arch_lr, beta1=0.5, beta2=0.999)  # DARTS' β = (0.5, 0.999) for a
    arch_state = arch_opt.init([a])
    sgd = SGD(lr=inner_lr)
    history = {"iteration": [], "arch": [], "val": []}
    for it in range(iterations):
        value, g_a = architecture_gradient(w, a, data, method=method, inner_lr=inner_lr, inner_steps=inner_steps,
                                           operations=operations)
        if record_every and it % record_every == 0:
            history["iteration"].append(it)
            history["arch"].append(a.copy())
            history["val"].append(float(np.mean(value)))
        (a,), arch_state = arch_opt.update([g_a], arch_state, [a])
        g = _Step(loss, w + [a], *data.train).grad()
        w, _ = sgd.update(g[:-1], {"step": it}, w)
    return w, a, {k: np.asarray(v) for k, v in history.items()}


def derive_architecture(arch, operations=OPERATIONS, exclude=("zero",)):
    """The discrete architecture DARTS reads off a: per layer the strongest operation, ``exclude`` left out
    (DARTS drops "zero" when deriving the final cell). Returns integer indices (T, L)."""
    arch = np.asarray(arch, dtype=np.float64).copy()
    for o, name in enumerate(operations):
        if name in exclude:
            arch[..., o] = -np.inf
    return np.argmax(arch, axis=-1)


def enumerate_architectures(layers, operations=OPERATIONS):
    """Every discrete architecture as indices (|O|^L, L), in lexicographic order."""
    return np.array(list(itertools.product(range(len(operations)), repeat=layers)), dtype=np.int64)


def architecture_id(indices, n_ops):
    """The row of :func:`enumerate_architectures` for indices (…, L): the base-|O| number they spell."""
    indices = np.asarray(indices)
    layers = indices.shape[-1]
    return np.sum(indices * n_ops ** np.arange(layers - 1, -1, -1), axis=-1)


def one_hot_mixing(indices, n_ops):
    """One-hot mixing weights (…, L, |O|) for architecture indices (…, L)."""
    indices = np.asarray(indices)
    return (indices[..., None] == np.arange(n_ops)).astype(np.float64)


def train_architectures(weights, indices, data, *, steps, lr=0.01, operations=OPERATIONS):
    """Train the discrete networks ``indices`` (T, L), one per task row, with Adam on the train split.

    ``weights`` and ``data`` have the same leading axis T (use :meth:`SearchData.take` to repeat tasks, one row
    per (task, architecture) pair). Returns ``(weights, {"train", "val", "test"} -> (T,) final MSEs)``.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer ≥ 0, got {steps!r}")
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[0] != data.task_count:
        raise ValueError(f"indices must have shape (T, L) with T = {data.task_count}; got {indices.shape}")
    if indices.min() < 0 or indices.max() >= len(operations):
        raise ValueError(f"indices must lie in [0, {len(operations) - 1}], got values in "
                         f"[{indices.min()}, {indices.max()}]")
    loss = task_mse_of(operations, relaxed=False)
    mixing = one_hot_mixing(indices, len(operations))
    opt = Adam(lr=lr)
    w = list(weights)
    state = opt.init(w)
    x_train = (data.train[0], mixing)
    for _ in range(steps):
        g = _Step(loss, w, x_train, data.train[1]).grad()
        w, state = opt.update(g, state, w)
    errors = {name: np.asarray(loss(w, (pair[0], mixing), pair[1]))
              for name, pair in (("train", data.train), ("val", data.val), ("test", data.test))}
    return w, errors


def random_search(rng, weights_fn, data, *, samples, steps, lr=0.01, layers=2, operations=OPERATIONS):
    """Random search with a budget: per task, ``samples`` architectures drawn uniformly (without replacement),
    each trained ``steps`` Adam steps; the one with the lowest val MSE is chosen. Returns indices (T, L).

    ``weights_fn(rows)`` gives fresh initial weights for ``rows`` networks (e.g. a seeded :func:`init_weights`).
    """
    all_archs = enumerate_architectures(layers, operations)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 1 <= samples <= len(all_archs):
        raise ValueError(f"samples must be an integer in [1, {len(all_archs)}], got {samples!r}")
    tasks = data.task_count
    drawn = np.stack([rng.choice(len(all_archs), size=samples, replace=False) for _ in range(tasks)])  # (T, k)
    rows = np.repeat(np.arange(tasks), samples)
    _, errors = train_architectures(weights_fn(tasks * samples), all_archs[drawn.ravel()], data.take(rows),
                                    steps=steps, lr=lr, operations=operations)
    best = np.argmin(errors["val"].reshape(tasks, samples), axis=1)
    return all_archs[drawn[np.arange(tasks), best]]


# ---------------------------------------------------------------------------------------- measurements
def ground_truth(data, *, hidden=(16, 16), steps=2000, lr=0.01, seeds=(0,), operations=OPERATIONS):
    """Every discrete architecture trained on every task, once per init seed: mean final MSEs (T, |O|^L) per split.

    Columns follow :func:`enumerate_architectures`; all (task, architecture, seed) networks train in one batch.
    """
    layers = len(hidden)
    archs = enumerate_architectures(layers, operations)
    tasks, n_archs = data.task_count, len(archs)
    rows = np.repeat(np.arange(tasks), n_archs)
    out = {"train": 0.0, "val": 0.0, "test": 0.0}
    for seed in seeds:
        weights = init_weights(np.random.default_rng(seed), tasks * n_archs, hidden=hidden)
        _, errors = train_architectures(weights, np.tile(archs, (tasks, 1)), data.take(rows), steps=steps, lr=lr,
                                        operations=operations)
        for name in out:
            out[name] = out[name] + errors[name].reshape(tasks, n_archs) / len(seeds)
    return out


def ranks_of(errors, chosen):
    """Rank (1 = best) of architecture ``chosen[t]`` among the row ``errors[t]`` (ties share the better rank)."""
    errors, chosen = np.asarray(errors), np.asarray(chosen)
    mine = errors[np.arange(len(chosen)), chosen]
    return 1 + np.sum(errors < mine[:, None], axis=1)


def gradient_agreement(weights, arch, data, *, inner_lr, inner_steps, operations=OPERATIONS):
    """How far first-order and DARTS' Eq. 7–8 are from the exact hypergradient of the S-step objective.

    Returns ``{method: {"cosine": (T,), "relative_error": (T,)}}`` for "first_order" and "darts", per task:
    cos(g, g_exact) and ‖g − g_exact‖ / ‖g_exact‖ over the task's L·|O| architecture weights.
    """
    _, exact = architecture_gradient(weights, arch, data, method="exact", inner_lr=inner_lr, inner_steps=inner_steps,
                                     operations=operations)
    flat_exact = exact.reshape(exact.shape[0], -1)
    norm_exact = np.linalg.norm(flat_exact, axis=1)
    out = {}
    for method in ("first_order", "darts"):
        _, g = architecture_gradient(weights, arch, data, method=method, inner_lr=inner_lr, inner_steps=inner_steps,
                                     operations=operations)
        flat = g.reshape(g.shape[0], -1)
        out[method] = {
            "cosine": np.sum(flat * flat_exact, axis=1) / (np.linalg.norm(flat, axis=1) * norm_exact),
            "relative_error": np.linalg.norm(flat - flat_exact, axis=1) / norm_exact,
        }
    return out
