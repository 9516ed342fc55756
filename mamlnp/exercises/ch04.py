"""Checkers for the exercises of chapter 4 (the article's §4 code, and how to make it MAML).

1. :func:`check_fixed_meta_gradient` — "fix the article's loop": the meta-gradient of ONE task after S
   inner SGD steps, ∇_θ L^q(θ^(S)) = (I − αH(θ^(0)))⋯(I − αH(θ^(S−1))) ∇L^q(θ^(S)), written with
   ``mamlnp.grad`` and ``mamlnp.hvp``; compared with :func:`mamlnp.meta.maml_gradient` on a one-task
   meta-batch for S = 1, 2, 3. The article's own answer (the unadapted gradient on all the task's data),
   first-order MAML, Hessians taken at the wrong points and a missing or sign-flipped factor are recognised.
2. :func:`check_support_query_split` — split one task's data into a support set and a disjoint query set
   of given sizes with a ``numpy.random.Generator``; the article uses the same data for both.
3. :func:`check_depends_on_inner_lr` — a diagnostic that would have caught the article's bug: does a
   meta-update's *gradient* change when only the inner learning rate changes?

Every checker returns a :class:`~mamlnp.exercises.Feedback`; a stub that still raises
``NotImplementedError`` gets "not attempted yet".
"""
from __future__ import annotations

import copy

import numpy as np

from ..models import losses
from ..models import nn
from ..algorithms import (article_section4_gradient, fomaml_gradient, maml_gradient, multitask_gradient,
                    reptile_gradient)
from ..engine.pytree import check_same_structure, tree_flatten
from ..tasks import SinusoidTasks
from ..engine.transforms import grad, hvp
from . import Feedback, attempt

__all__ = ["check_fixed_meta_gradient", "check_support_query_split", "check_depends_on_inner_lr"]

# Two exact computations of the same meta-gradient in float64 (the student's grad/hvp chain and the
# library's batched one) agree to ~1e-14; every wrong variant below differs by ≥ 1e-4 relative on the
# checker's cases, so 1e-9 separates them with room on both sides.
EXACT_RTOL = 1e-9


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for x in tree_flatten(tree)[0]])


def _rel(a, b):
    """Normwise relative difference ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞) of two flat arrays (0 if both are 0)."""
    a, b = np.ravel(a), np.ravel(b)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def _same_tree(a, b):
    """Exact equality of nested lists/tuples of arrays (for the "modified in place?" check)."""
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))


# ============================================================================ exercise 1: fix the article's loop
EX1 = "4 ex. 1: fix the article's loop"


def _task_loss(params, x, y):
    # one task's loss without a task axis: mean squared error of the ReLU MLP on (x, y) of shape (K, 1)
    return losses.mse(nn.mlp(params, x), y)


def _fixed_cases():
    """(params, support, query, inner_lr, inner_steps) for S = 1, 2, 3 on one sine task each."""
    rng = np.random.default_rng(4001)
    params = nn.init_mlp([1, 16, 16, 1], rng, scheme="glorot")  # Glorot: every layer's gradient is sizeable
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in params]  # nonzero biases, ReLU kinks inside [−5, 5]
    family = SinusoidTasks()
    cases = []
    for inner_steps in (1, 2, 3):
        support, query, _ = family.sample(rng, 1, k_support=10, k_query=10)
        # one task, no task axis: x and y of shape (K, 1)
        cases.append((params, (support[0][0], support[1][0]), (query[0][0], query[1][0]), 0.05, inner_steps))
    return cases


def _path(params, support, inner_lr, inner_steps):
    thetas = [params]
    for _ in range(inner_steps):
        g = grad(_task_loss)(thetas[-1], *support)
        thetas.append([p - inner_lr * gi for p, gi in zip(thetas[-1], g)])
    return thetas


def _backward(thetas_for_h, g, support, inner_lr, sign=-1.0):
    """Apply (I + sign·α H(θ_k)) for θ_k in ``thetas_for_h`` from the last to the first."""
    for theta in reversed(thetas_for_h):
        hg = hvp(_task_loss)(theta, g, *support)
        g = [gi + sign * inner_lr * hi for gi, hi in zip(g, hg)]
    return g


def _fixed_variants(params, support, query, inner_lr, inner_steps):
    """The right meta-gradient (from the library) and the usual wrong answers, as flat vectors."""
    _, right = maml_gradient(params, (support[0][None], support[1][None]), (query[0][None], query[1][None]),
                             inner_lr=inner_lr, inner_steps=inner_steps)
    thetas = _path(params, support, inner_lr, inner_steps)
    adapted = thetas[-1]
    g_query = grad(_task_loss)(adapted, *query)
    both = (np.concatenate([support[0], query[0]]), np.concatenate([support[1], query[1]]))
    wrong = [
        ("your answer is the gradient of the *unadapted* model's loss on all of the task's data — exactly what the "
         "article's code computes (model(task_data) instead of the adapted model). The meta-loss must be the query "
         "loss at the adapted parameters θ^(S), differentiated through the inner steps", grad(_task_loss)(params, *both)),
        ("your answer is ∇L^q(θ), the query gradient of the unadapted θ: the inner steps are missing. Evaluate the "
         "query loss at θ^(S), after the S inner steps on the support set", grad(_task_loss)(params, *query)),
        ("your answer is ∇L^s(θ), the support gradient of the unadapted θ — the article's inner step, not the "
         "meta-gradient. Adapt on the support set, then differentiate the query loss", grad(_task_loss)(params, *support)),
        ("your answer is ∇L^q(θ^(S)), first-order MAML: it treats θ^(S) as if ∂θ^(S)/∂θ = I. Multiply by "
         "(I − αH(θ^(k))) for k = S−1, …, 0 (one hvp each)", g_query),
        ("your answer has the sign of the Hessian terms flipped, (I + αH): θ^(k+1) = θ^(k) − α∇L^s(θ^(k)), so "
         "∂θ^(k+1)/∂θ^(k) = I − α∇²L^s(θ^(k))", _backward(thetas[:-1], g_query, support, inner_lr, sign=+1.0)),
    ]
    if inner_steps > 1:
        wrong += [
            ("your answer takes every Hessian at θ, (I − αH(θ))^S ∇L^q(θ^(S)); the k-th factor's Hessian is at "
             "θ^(k), where step k starts", _backward([params] * inner_steps, g_query, support, inner_lr)),
            ("your answer applies the Hessian at θ^(k+1) in factor k, (I − αH(θ^(1)))⋯(I − αH(θ^(S))); the "
             "Jacobian of step k contains ∇²L^s at θ^(k), where that step starts",
             _backward(thetas[1:], g_query, support, inner_lr)),
            ("your answer has only the first factor (I − αH(θ^(0))); with S steps there are S factors, one per step",
             _backward(thetas[:1], g_query, support, inner_lr)),
            ("your answer has only the last factor (I − αH(θ^(S−1))); with S steps there are S factors, one per step",
             _backward(thetas[-2:-1], g_query, support, inner_lr)),
        ]
    return _flat(right), [(message, _flat(candidate)) for message, candidate in wrong]


def check_fixed_meta_gradient(fixed_meta_gradient) -> Feedback:
    """Check ``fixed_meta_gradient(params, support, query, inner_lr, inner_steps) -> grads`` for S = 1, 2, 3.

    ``params`` is a ReLU MLP ``[W1, b1, W2, b2, W3, b3]``; ``support = (xs, ys)`` and ``query = (xq, yq)``
    hold ONE task's points, shapes (K, 1), no task axis; the loss is the mean squared error of
    ``nn.mlp(params, x)``. The answer, shaped like ``params``, must be ∇_θ L^q(θ^(S)) with
    θ^(k+1) = θ^(k) − α∇L^s(θ^(k)); it is compared with ``meta.maml_gradient`` on a one-task meta-batch.
    """
    if not callable(fixed_meta_gradient):
        raise TypeError(f"check_fixed_meta_gradient expects your function, got {type(fixed_meta_gradient).__name__}")
    details = []
    for params, support, query, inner_lr, inner_steps in _fixed_cases():
        given = copy.deepcopy((params, support, query))
        result, stub = attempt(EX1, fixed_meta_gradient, given[0], given[1], given[2], inner_lr, inner_steps)
        if stub is not None:
            return stub
        where = f"S = {inner_steps} (α = {inner_lr})"
        if not _same_tree(list(given), [params, support, query]):
            return Feedback(EX1, False, f"{where}: your function changed params, support or query in place; build "
                            "new arrays (p - inner_lr * g) — the article's task_model.load_state_dict copy exists "
                            "exactly to leave θ as it was", details)
        try:
            check_same_structure(result, params, "your result")
        except ValueError as err:  # a wrongly shaped answer is the student's mistake: report it
            return Feedback(EX1, False, f"{where}: {err}", details)
        got = _flat(result)
        right, wrong = _fixed_variants(params, support, query, inner_lr, inner_steps)
        err = _rel(got, right)
        details.append(f"{where}: relative error {err:.1e} against meta.maml_gradient")
        if err > EXACT_RTOL:
            for message, candidate in wrong:
                if _rel(candidate, right) > 1e-6 and _rel(got, candidate) <= 1e-8:
                    return Feedback(EX1, False, f"{where}: {message}.", details)
            return Feedback(EX1, False, f"{where}: your meta-gradient differs from MAML's by a relative {err:.2e}. "
                            "Forward: θ^(k+1) = θ^(k) − α·grad(L^s)(θ^(k)), keeping every θ^(k). Backward: "
                            "g = grad(L^q)(θ^(S)); for k = S−1 … 0: g = g − α·hvp(L^s)(θ^(k), g).", details)
    return Feedback(EX1, True, "your meta-gradient equals meta.maml_gradient on a one-task meta-batch for S = 1, 2 "
                    f"and 3 (to {EXACT_RTOL:.0e}), with the inputs left untouched: the adapted parameters now reach "
                    "the meta-update.", details)


# ============================================================================ exercise 2: support/query split
EX2 = "4 ex. 2: support/query split"


def _split_data(n=30):
    """One task's data with distinct, *sorted* x (so a prefix split is visibly not random) and y = A sin(x − φ)."""
    rng = np.random.default_rng(4002)
    x = np.sort(rng.uniform(-5, 5, n))[:, None]
    return x, 2.5 * np.sin(x - 0.7)


def _rows_of(part, x):
    """Indices into x of each row of ``part``, or None if some row is not a row of x."""
    index = []
    for row in part:
        hits = np.flatnonzero(np.all(x == row, axis=1))
        if hits.size != 1:
            return None
        index.append(int(hits[0]))
    return np.array(index, dtype=int)


def _unpack_split(result, k_support, k_query, d_x, d_y):
    """((xs, ys), (xq, yq)) as float arrays, or a message saying what is wrong with the shape of the answer."""
    try:
        (xs, ys), (xq, yq) = result
    except (TypeError, ValueError):
        return None, f"return ((xs, ys), (xq, yq)): a support pair and a query pair; got {type(result).__name__}"
    arrays = [np.asarray(a, dtype=np.float64) for a in (xs, ys, xq, yq)]
    want = [(k_support, d_x), (k_support, d_y), (k_query, d_x), (k_query, d_y)]
    for name, a, w in zip(("xs", "ys", "xq", "yq"), arrays, want):
        if a.shape != w:
            return None, (f"{name} has shape {a.shape}; expected {w} (K = {w[0]} points, each a row of the task's "
                          f"{'x' if name.startswith('x') else 'y'})")
    return arrays, None


def check_support_query_split(split_task) -> Feedback:
    """Check ``split_task(x, y, k_support, k_query, rng) -> ((xs, ys), (xq, yq))``.

    ``x`` (n, d_x) and ``y`` (n, d_y) are one task's n points. The support set must hold ``k_support`` of
    them and the query set ``k_query`` *other* ones (disjoint, no point twice), each with its own y, chosen
    at random with the Generator ``rng`` (same seed, same split), without modifying x or y. Asking for more
    points than there are must raise ValueError.
    """
    if not callable(split_task):
        raise TypeError(f"check_support_query_split expects your function, got {type(split_task).__name__}")
    x, y = _split_data()
    n = len(x)
    # calls 0 and 3 share a seed (same split expected); calls 0, 1, 2 differ only in the seed
    calls = [(0, 10, 10), (1, 10, 10), (2, 10, 10), (0, 10, 10), (3, 5, 15), (4, 12, 18)]
    splits = []
    for seed, k_support, k_query in calls:
        xc, yc = x.copy(), y.copy()
        result, stub = attempt(EX2, split_task, xc, yc, k_support, k_query, np.random.default_rng(seed))
        if stub is not None:
            return stub
        where = f"K_support = {k_support}, K_query = {k_query} of n = {n} points"
        if not (np.array_equal(xc, x) and np.array_equal(yc, y)):
            return Feedback(EX2, False, f"{where}: your function changed x or y in place (e.g. rng.shuffle(x)); "
                            "the caller's data must stay as it was — shuffle an index array instead")
        arrays, problem = _unpack_split(result, k_support, k_query, x.shape[1], y.shape[1])
        if problem:
            return Feedback(EX2, False, f"{where}: {problem}")
        xs, ys, xq, yq = arrays
        support_rows, query_rows = _rows_of(xs, x), _rows_of(xq, x)
        if support_rows is None or query_rows is None:
            return Feedback(EX2, False, f"{where}: some returned x is not one of the task's points; take rows of x "
                            "(x[index]), do not compute new ones")
        if not (np.array_equal(ys, y[support_rows]) and np.array_equal(yq, y[query_rows])):
            return Feedback(EX2, False, f"{where}: the y you return are not the y of the x you return — x and y were "
                            "shuffled separately. Draw one index permutation and apply it to both: x[idx], y[idx]")
        if set(support_rows) == set(query_rows):
            return Feedback(EX2, False, f"{where}: the query set is the support set — the article's mistake (it adapts "
                            "and measures the meta-loss on the same task_data). MAML's meta-loss must score the adapted "
                            "model on points it did not adapt on")
        for name, rows in (("support", support_rows), ("query", query_rows)):
            if len(set(rows)) != len(rows):
                return Feedback(EX2, False, f"{where}: the {name} set holds the same point twice (sampling with "
                                "replacement?); draw without replacement, e.g. rng.permutation(n)")
        shared = sorted(set(support_rows) & set(query_rows))
        if shared:
            return Feedback(EX2, False, f"{where}: {len(shared)} point(s) are in both the support and the query set "
                            "(two independent draws?); take the support set and the query set from ONE permutation, "
                            "idx[:K_support] and idx[K_support:K_support + K_query]")
        splits.append((tuple(support_rows), tuple(query_rows)))
    if splits[0] != splits[3]:
        return Feedback(EX2, False, "two calls with rng = np.random.default_rng(0) gave different splits: your function "
                        "draws from NumPy's global random state (np.random.…) instead of the rng it is given. Use "
                        "rng.permutation / rng.choice so that the same seed gives the same split")
    if splits[0] == splits[1] == splits[2]:
        return Feedback(EX2, False, "seeds 0, 1 and 2 gave the same split (for this task, sorted by x, always the same "
                        "points): the choice is not random, so the support points of every task would sit on the same "
                        "part of the curve. Choose them with the rng you are given")
    try:
        split_task(x.copy(), y.copy(), 20, 11, np.random.default_rng(0))
    except ValueError:
        pass
    else:
        return Feedback(EX2, False, f"asking for 20 support + 11 query points of a task with only {n} points did not "
                        "raise ValueError; a disjoint split is impossible there, so say so (name k_support, k_query "
                        "and n in the message) instead of returning overlapping or short sets")
    return Feedback(EX2, True, "disjoint support and query sets of the requested sizes, x and y kept paired, chosen "
                    "with the given rng (same seed, same split), the data left untouched, and impossible requests "
                    "refused")


# ============================================================================ exercise 3: does the update see α?
EX3 = "4 ex. 3: does the update depend on inner_lr?"


def _hidden(gradient_fn):
    # a nameless wrapper, so that an answer cannot look at the function's name instead of its behaviour
    def meta_update(params, support, query, *, inner_lr, inner_steps, loss="mse", activation="relu"):
        return gradient_fn(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps, loss=loss,
                           activation=activation)
    return meta_update


def _adapted_loss_article_gradient(params, support, query, *, inner_lr, inner_steps, loss="mse", activation="relu"):
    """Reports MAML's post-adaptation loss (which depends on α) but updates with the article's gradient (which does not)."""
    meta_loss, _ = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps, loss=loss,
                                 activation=activation)
    _, grads = article_section4_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps,
                                         loss=loss, activation=activation)
    return meta_loss, grads


_INNER_LR_CASES = [
    ("the article's §4 update (meta.article_section4_gradient)", article_section4_gradient, False,
     "it runs the inner steps with α and then discards them: its gradient is the unadapted model's"),
    ("multi-task training (meta.multitask_gradient)", multitask_gradient, False,
     "it never adapts at all"),
    ("MAML (meta.maml_gradient)", maml_gradient, True,
     "its gradient is (I − αH)∇L^q(θ − α∇L^s(θ)): α enters twice"),
    ("first-order MAML (meta.fomaml_gradient)", fomaml_gradient, True,
     "its gradient ∇L^q(θ − α∇L^s(θ)) is taken at the adapted point, which moves with α"),
    ("Reptile's pseudo-gradient (meta.reptile_gradient)", reptile_gradient, True,
     "θ − θ^(S) is the sum of the inner steps, each proportional to α"),
    ("an update that reports MAML's adapted meta-loss but steps with the article's gradient",
     _adapted_loss_article_gradient, False,
     "only its reported loss depends on α; the gradient it returns — the thing the optimizer uses — does not. "
     "Compare the gradients (the second item of the returned pair), not the loss"),
]


def check_depends_on_inner_lr(depends_on_inner_lr) -> Feedback:
    """Check ``depends_on_inner_lr(meta_update) -> bool`` on six meta-update functions.

    ``meta_update(params, support, query, *, inner_lr, inner_steps)`` returns ``(meta_loss, grads)`` like the
    functions in ``mamlnp.meta.ALGORITHMS``; the answer must be True exactly when ``grads`` changes with
    ``inner_lr`` (the functions are given without their names).
    """
    if not callable(depends_on_inner_lr):
        raise TypeError(f"check_depends_on_inner_lr expects your function, got {type(depends_on_inner_lr).__name__}")
    details = []
    for label, gradient_fn, expected, why in _INNER_LR_CASES:
        answer, stub = attempt(EX3, depends_on_inner_lr, _hidden(gradient_fn))
        if stub is not None:
            return stub
        if not isinstance(answer, (bool, np.bool_)):
            return Feedback(EX3, False, f"return True or False; for {label} your function returned {answer!r} of type "
                            f"{type(answer).__name__}", details)
        if bool(answer) != expected:
            verdict = "depends" if expected else "does not depend"
            return Feedback(EX3, False, f"for {label} you answered {bool(answer)}, but its update {verdict} on inner_lr: "
                            f"{why}. (Call it twice with the same params and tasks, inner_steps ≥ 1, two different "
                            "inner_lr, and compare the returned gradients exactly.)", details)
        details.append(f"{label}: {bool(answer)} — {why}")
    return Feedback(EX3, True, "right on all six meta-updates: the article's update and multi-task training ignore "
                    "the inner learning rate; MAML, first-order MAML and Reptile do not.", details)
