"""Checkers for the exercises of chapter 6 (the article's §6: tools, and what each library call computes).

1. :func:`check_first_order_maml` — what ``first_order=True`` (learn2learn) or ``track_higher_grads=False``
   (higher) computes: the query gradient at the adapted parameters, written with ``mamlnp.grad`` only; compared
   with :func:`mamlnp.meta.fomaml_gradient`. Full MAML, the unadapted gradient and a missing mean are recognised.
2. :func:`check_reptile_update` — Reptile's update θ ← θ + ε (mean_i θ_i^(S) − θ); compared with
   ``meta.reptile_gradient`` fed to SGD. A flipped sign (θ moved away from the adapted weights), adaptation on
   the query set, gradient ascent in the inner steps, the last task only, a division by S, a sum over tasks and
   ε = 1 are recognised, also in combination; a step along the right line but of the wrong length is named too.
3. :func:`check_per_task_gradients` — what ``vmap(grad(loss))`` does, with one ``mamlnp.grad`` call: per-task
   gradients (T, …) from the SUM of per-task losses at stacked parameters. Using the mean (every gradient
   divided by T) or the shared, unstacked θ (gradients summed over tasks) are recognised.
"""
from __future__ import annotations

import copy

import numpy as np

from ..algorithms import fomaml_gradient, maml_gradient, reptile_gradient
from ..engine.pytree import check_same_structure, tree_flatten
from ..engine.transforms import grad
from ..models import losses, nn
from ..tasks import SinusoidTasks
from . import Feedback, attempt

__all__ = ["check_first_order_maml", "check_reptile_update", "check_per_task_gradients"]

EXACT_RTOL = 1e-9  # two exact float64 computations agree to ~1e-14; every wrong variant differs by ≥ 1e-3


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for x in tree_flatten(tree)[0]])


def _rel(a, b):
    a, b = np.ravel(a), np.ravel(b)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def _case(seed, tasks=3, inner_steps=2):
    rng = np.random.default_rng(seed)
    params = nn.init_mlp([1, 12, 12, 1], rng, scheme="glorot")
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in params]
    support, query, _ = SinusoidTasks().sample(rng, tasks, 8)
    return params, support, query, 0.02, inner_steps


def _judge(exercise, where, got, right, wrong, hint, details, explain=None):
    """Feedback for a flat answer ``got``: None when right, else the message of the matching wrong variant.

    ``explain(got)``, if given, is asked before the generic message and may return a more specific one."""
    err = _rel(got, right)
    details.append(f"{where}: relative error {err:.1e}")
    if err <= EXACT_RTOL:
        return None
    for message, candidate in wrong:
        if _rel(candidate, right) > 1e-6 and _rel(got, candidate) <= 1e-8:
            return Feedback(exercise, False, f"{where}: {message}.", details)
    message = explain(got) if explain is not None else None
    if message is not None:
        return Feedback(exercise, False, f"{where}: {message}.", details)
    return Feedback(exercise, False, f"{where}: your answer differs from the right one by a relative {err:.2e}. {hint}",
                    details)


def _call(exercise, fn, params, support, query, *args):
    given = copy.deepcopy((params, support, query))
    result, stub = attempt(exercise, fn, *given, *args)
    if stub is not None:
        return None, stub
    for a, b in zip(tree_flatten(list(given))[0], tree_flatten([params, support, query])[0]):
        if not np.array_equal(a, b):
            return None, Feedback(exercise, False, "your function changed params, support or query in place; build "
                                  "new arrays instead (p - lr * g)")
    try:
        check_same_structure(result, params, "your result")
    except ValueError as err:
        return None, Feedback(exercise, False, str(err))
    return result, None


def _task_loss(params, x, y):
    return losses.task_mse(nn.mlp(params, x), y)  # (T,) for stacked params (T, …)


def _adapted(params, support, inner_lr, inner_steps):
    task_count = support[0].shape[0]
    theta = [np.broadcast_to(p, (task_count,) + p.shape) for p in params]
    for _ in range(inner_steps):
        g = grad(lambda th: losses.task_mse(nn.mlp(th, support[0]), support[1]).sum())(theta)
        theta = [p - inner_lr * gi for p, gi in zip(theta, g)]
    return theta


# ============================================================================ exercise 1
EX1 = "6 ex. 1: first-order MAML with grad only"


def check_first_order_maml(first_order_maml) -> Feedback:
    """Check ``first_order_maml(params, support, query, inner_lr, inner_steps) -> grads`` (shaped like params).

    ``support``/``query`` are ``(x, y)`` with a leading task axis (T, K, 1); the answer must be
    (1/T) Σ_i ∇L_i^query(θ_i^(S)), θ_i^(S) from S SGD steps of size α on task i's support set.
    """
    if not callable(first_order_maml):
        raise TypeError(f"check_first_order_maml expects your function, got {type(first_order_maml).__name__}")
    details = []
    for seed, inner_steps in ((601, 1), (602, 3)):
        params, support, query, inner_lr, _ = _case(seed, inner_steps=inner_steps)
        result, bad = _call(EX1, first_order_maml, params, support, query, inner_lr, inner_steps)
        if bad is not None:
            return bad
        _, right = fomaml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps)
        _, full = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps)
        _, unadapted = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=0)
        task_count = support[0].shape[0]
        wrong = [
            ("your answer is full (second-order) MAML: it differentiates through the inner steps. first_order=True "
             "treats the adapted θ^(S) as if ∂θ^(S)/∂θ = I: take grad of the query loss AT θ^(S), nothing more",
             _flat(full)),
            ("your answer is the query gradient of the unadapted θ: run the S inner steps on the support set first",
             _flat(unadapted)),
            (f"your answer is T = {task_count} times too large: average the per-task query gradients over tasks "
             "(the meta-loss is a mean)", task_count * _flat(right)),
        ]
        feedback = _judge(EX1, f"S = {inner_steps}", _flat(result), _flat(right), wrong,
                          "Adapt each task with S steps θ ← θ − α∇L^s(θ), then average ∇L^q at the adapted points.",
                          details)
        if feedback is not None:
            return feedback
    return Feedback(EX1, True, "your first-order MAML equals meta.fomaml_gradient for S = 1 and 3: this is what "
                    "learn2learn's first_order=True and higher's track_higher_grads=False compute.", details)


# ============================================================================ exercise 2
EX2 = "6 ex. 2: Reptile's update"


# The mistakes a Reptile update can make, each independent of the others, so combinations are recognised too.
_SET_QUERY = ("you adapted on the QUERY set: Reptile's inner steps run on each task's support set (its update never "
              "uses query)")
_SIGN_AWAY = ("your update moves θ AWAY from the adapted weights (sign flipped): Reptile steps θ toward "
              "mean θ_i^(S)")


def _reptile_variants(params, support, query, inner_lr, inner_steps, outer_lr):
    """``(message, flat update)`` for every combination of the recognised mistakes (the right one included;
    :func:`_judge` skips candidates that equal the right answer, e.g. a division by S when S = 1)."""
    task_count = support[0].shape[0]
    variants = []
    for set_mistake, data in ((None, support), (_SET_QUERY, query)):
        adapted = _adapted(params, data, inner_lr, inner_steps)
        means = [np.mean(a, axis=0) for a in adapted]
        lasts = [a[-1] for a in adapted]
        steps = [  # (mistake in how the step is formed, the step θ_new − θ)
            (None, [outer_lr * (m - p) for p, m in zip(params, means)]),
            ("your update uses only the last task's adapted weights: average θ_i^(S) over all tasks",
             [outer_lr * (a - p) for p, a in zip(params, lasts)]),
            (f"your update is divided by S = {inner_steps}: Reptile's step is ε (θ^(S) − θ), not per inner step",
             [outer_lr * (m - p) / inner_steps for p, m in zip(params, means)]),
            (f"your update sums over the T = {task_count} tasks instead of averaging",
             [task_count * outer_lr * (m - p) for p, m in zip(params, means)]),
            ("your step ignores outer_lr: it goes the whole way to the adapted weights' mean (ε = 1)",
             [m - p for p, m in zip(params, means)]),
            ("your step goes the fraction 1 − ε of the way: you moved the adapted weights' mean toward θ, not θ "
             "toward the mean", [(1.0 - outer_lr) * (m - p) for p, m in zip(params, means)]),
        ]
        for step_mistake, step in steps:
            for sign_mistake, sign in ((None, 1.0), (_SIGN_AWAY, -1.0)):
                parts = [m for m in (set_mistake, sign_mistake, step_mistake) if m is not None]
                variants.append(("; also ".join(parts), _flat([p + sign * d for p, d in zip(params, step)])))
    ascent = _adapted(params, support, -inner_lr, inner_steps)
    variants.append(("your inner steps climb the support loss (θ + α∇L): each task adapts by gradient DESCENT",
                     _flat([p + outer_lr * (np.mean(a, axis=0) - p) for p, a in zip(params, ascent)])))
    return variants


def _reptile_direction(got, params, support, query, inner_lr, inner_steps, outer_lr):
    """A message when the student's step θ_new − θ lies on the line through θ and a mean of adapted weights
    (support or query) but has the wrong length or direction, else None."""
    step = got - _flat(params)
    norm = np.linalg.norm(step)
    if not np.isfinite(norm) or norm == 0:
        return None
    for set_mistake, data in ((None, support), (_SET_QUERY, query)):
        adapted = _adapted(params, data, inner_lr, inner_steps)
        line = _flat([np.mean(a, axis=0) - p for p, a in zip(params, adapted)])
        for sign_mistake, sign in ((None, 1.0), (_SIGN_AWAY, -1.0)):
            if _rel(step / norm, sign * line / np.linalg.norm(line)) <= 1e-8:
                factor = norm / (outer_lr * np.linalg.norm(line))
                parts = [m for m in (set_mistake, sign_mistake) if m is not None]
                if abs(factor - 1.0) > 1e-8:
                    parts.append(f"your step is {factor:.3g} times as long as Reptile's (a fraction ε = outer_lr of "
                                 "the way to the adapted weights' mean)")
                return "; also ".join(parts) if parts else None
    return None


def check_reptile_update(reptile_update) -> Feedback:
    """Check ``reptile_update(params, support, query, inner_lr, inner_steps, outer_lr) -> new params``.

    The answer must be θ + ε (mean_i θ_i^(S) − θ) with θ_i^(S) from S SGD steps of size α on task i's support
    set (``query`` is not used by Reptile's update); ε = ``outer_lr``. S = 3 is checked first: with S = 1 some
    mistakes coincide (gradient ascent in the inner step equals a flipped outer sign; a division by S is invisible).
    ε ≠ 1/2, because at ε = 1/2 moving θ toward the mean equals moving the mean toward θ.
    """
    if not callable(reptile_update):
        raise TypeError(f"check_reptile_update expects your function, got {type(reptile_update).__name__}")
    details = []
    for seed, inner_steps, outer_lr in ((612, 3, 0.3), (611, 1, 0.7)):
        params, support, query, inner_lr, _ = _case(seed, inner_steps=inner_steps)
        result, bad = _call(EX2, lambda *a: reptile_update(*a, outer_lr), params, support, query, inner_lr,
                            inner_steps)
        if bad is not None:
            return bad
        _, pseudo = reptile_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps)
        right = [p - outer_lr * g for p, g in zip(params, pseudo)]
        args = (params, support, query, inner_lr, inner_steps, outer_lr)
        feedback = _judge(EX2, f"S = {inner_steps}, ε = {outer_lr}", _flat(result), _flat(right),
                          _reptile_variants(*args),
                          "Adapt every task from θ, average the adapted weights, move θ a fraction ε toward them.",
                          details, explain=lambda got: _reptile_direction(got, *args))
        if feedback is not None:
            return feedback
    return Feedback(EX2, True, "your Reptile update equals SGD with lr ε on meta.reptile_gradient for S = 3 and 1.",
                    details)


# ============================================================================ exercise 3
EX3 = "6 ex. 3: per-task gradients in one call"


def check_per_task_gradients(per_task_gradients) -> Feedback:
    """Check ``per_task_gradients(stacked_params, x, y) -> grads`` with a leading task axis.

    ``stacked_params`` is ``[W1, b1, …]`` with a leading task axis T (each task its own copy), ``x``/``y`` are
    (T, K, 1); the answer must hold ∇L_i(θ_i) for every task i, shapes like ``stacked_params`` — what
    ``vmap(grad(loss))`` returns in JAX or torch.func.
    """
    if not callable(per_task_gradients):
        raise TypeError(f"check_per_task_gradients expects your function, got {type(per_task_gradients).__name__}")
    details = []
    params, support, _, _, _ = _case(621, tasks=4)
    rng = np.random.default_rng(622)
    stacked = [p[None] + 0.05 * rng.standard_normal((4,) + p.shape) for p in params]
    x, y = support
    given = copy.deepcopy((stacked, x, y))
    result, stub = attempt(EX3, per_task_gradients, *given)
    if stub is not None:
        return stub
    try:
        check_same_structure(result, stacked, "your result")
    except ValueError as err:
        return Feedback(EX3, False, f"{err} — one gradient per task, each shaped like that task's parameters")
    right = [np.stack(parts) for parts in zip(*[
        grad(lambda th: losses.mse(nn.mlp(th, x[i]), y[i]))([p[i] for p in stacked]) for i in range(4)])]
    wrong = [("your gradients are T = 4 times too small: you differentiated the MEAN of the per-task losses; "
              "differentiate their SUM, so each task's block of the gradient is that task's own gradient",
              _flat([g / 4 for g in right]))]
    feedback = _judge(EX3, "4 tasks", _flat(result), _flat(right), wrong,
                      "grad of θ ↦ Σ_i L_i(θ_i) at the stacked θ: the sum separates over tasks, so block i is ∇L_i.",
                      details)
    if feedback is not None:
        return feedback
    return Feedback(EX3, True, "one grad call on the sum of per-task losses gives every task's own gradient — "
                    "the batching that vmap(grad(·)) does, and the one mamlnp's algorithms use.", details)
