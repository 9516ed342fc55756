"""A memory-based meta-learner: an LSTM that learns to optimise (Andrychowicz et al. 2016, arXiv:1606.04474).

The article's §8 names "LSTM-based Meta-Learner" as the memory-based family. Here the optimizer itself is
learned: an LSTM m with parameters φ reads each coordinate's gradient and proposes that coordinate's step,

    g_t = ∇f(θ_t),   (u_t, s_{t+1}) = m(pre(g_t), s_t; φ),   θ_{t+1} = θ_t + out_scale · u_t

where s_t is the LSTM's memory (its state) — which is what lets it behave like momentum, or Adam, or
something else it finds useful. It is *coordinate-wise*: the same small LSTM (two layers of 20 units in the
paper, §3.2) runs on every coordinate of θ independently, with its own state per coordinate, so its size does
not depend on the optimizee's; all T tasks × N coordinates go through one batched call.

``pre`` is the paper's gradient preprocessing (its Appendix A): gradients span many orders of magnitude,
so each one becomes the pair

    (log|g| / p, sgn g)      if |g| ≥ e^(−p)
    (−1,         e^p g)      otherwise                     (p = 10)

— the log of its size, scaled to about [−1, 1], and its sign; tiny gradients go linearly into the second
entry instead. (The rule as stated here agrees with several public reimplementations; the appendix text
itself was not read for this module.) The paper multiplies the LSTM's output by 0.1 (``out_scale``).

**Meta-training.** The meta-loss of an unroll of K steps is the optimizee's loss along the way (w_t = 1):

    L(φ) = (1/K) Σ_{t=1..K} (1/T) Σ_i f_i(θ_t)

and φ is trained by backpropagation through the unrolled optimisation, truncated to K steps at a time (the
optimizee's θ and the LSTM state carry over between truncations, without gradient). Like the paper (§2,
"we assume ∂∇_t/∂φ = 0"), the gradients g_t are treated as **inputs**: the derivative of g_t with respect to
θ_t — a Hessian — is dropped, so no second derivative of f is ever taken. The meta-gradient computed here is
therefore the exact gradient of the *frozen-gradient objective*

    L̃(φ; G) = (1/K) Σ_t mean_i f_i(θ_t(φ; G)),   θ_{t+1} = θ_t + out_scale · m(pre(G_t), s_t; φ)

at G = the gradients seen along the current trajectory. The tests check it against finite differences of
L̃ (with G held fixed), and measure how far it is from the true gradient of L (where G moves with φ).
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.core import Tape, value_of
from ..engine.pytree import tree_flatten, tree_unflatten
from ..models.lstm import init_lstm, lstm_step, zero_state
from ..models.optim import Adam

__all__ = ["PREPROCESS_P", "OUT_SCALE", "preprocess_gradients", "init_learned_optimizer", "lstm_update",
           "loss_and_gradient", "unroll_objective", "meta_loss_and_gradient", "frozen_gradients",
           "train_learned_optimizer", "rollout", "sgd_rule", "adam_rule", "lstm_rule"]

PREPROCESS_P = 10.0
OUT_SCALE = 0.1


def preprocess_gradients(grad, p=PREPROCESS_P):
    """Andrychowicz et al. (2016, App. A): each gradient entry -> (log|g|/p, sgn g) or (−1, e^p g); shape (…, 2).

    Works on plain arrays only: the gradients are inputs of the learned optimizer, never differentiated.
    """
    g = np.asarray(value_of(grad), dtype=np.float64)
    if not np.isfinite(p) or p <= 0:
        raise ValueError(f"p must be a positive finite number, got {p!r}")
    if not np.all(np.isfinite(g)):
        raise FloatingPointError("grad contains NaN or inf: the optimizee diverged before the learned optimizer saw it")
    big = np.abs(g) >= np.exp(-p)
    with np.errstate(divide="ignore"):  # log(0) only in entries the mask discards
        first = np.where(big, np.log(np.abs(g)) / p, -1.0)
    second = np.where(big, np.sign(g), np.exp(p) * g)
    return np.stack([first, second], axis=-1)


def init_learned_optimizer(rng, hidden_sizes=(20, 20)):
    """φ: a coordinate-wise LSTM with 2 inputs (the preprocessed gradient) and 1 output (the step).

    Two layers of 20 units as in the paper (§3.2). The read-out starts small (×0.1) so the first updates of a
    fresh optimizer are gentle rather than random jumps.
    """
    return init_lstm(2, hidden_sizes, 1, rng, output_scale=0.1)


def lstm_update(phi, grad, states, *, out_scale=OUT_SCALE, p=PREPROCESS_P):
    """One step of the learned optimizer: ``(Δθ, new_states)`` for gradients ``grad`` (T, N) (φ may be traced)."""
    x = preprocess_gradients(grad, p)                       # (T, N, 2), a constant
    y, new_states = lstm_step(phi, x, states)               # (T, N, 1)
    step = ops.reshape(y, shape=np.shape(x)[:-1])
    return ops.mul(step, float(out_scale)), new_states


def loss_and_gradient(loss, theta, x, y):
    """Per-task losses (T,) and the gradient (T, N) of Σ_i f_i at θ (T, N) (each row is task i's own gradient)."""
    tape = Tape()
    leaf = tape.leaf(np.asarray(value_of(theta)))
    per_task = loss(leaf, x, y)
    total = ops.sum(per_task)
    adjoints = tape.backward(total.index, np.ones_like(total.value))
    g = adjoints[leaf.index]
    return np.asarray(per_task.value), (np.zeros_like(leaf.value) if g is None else g)


def _check_unroll(theta0, steps):
    if np.ndim(theta0) != 2:
        raise ValueError(f"theta0 must have shape (T, N): one flat parameter vector per task; got {np.shape(theta0)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer (the unroll length K), got {steps!r}")


def _check_states(phi, states, theta_shape):
    """One (h, c) pair per LSTM layer, each of shape θ.shape + (H,): one memory per task and coordinate."""
    want = [tuple(theta_shape) + (np.shape(value_of(layer["w_h"]["i"]))[-1],) for layer in phi["layers"]]
    if not isinstance(states, (list, tuple)) or len(states) != len(want):
        raise ValueError(f"states0 must hold one (h, c) pair per LSTM layer ({len(want)}); got "
                         f"{len(states) if isinstance(states, (list, tuple)) else type(states).__name__}")
    for k, (pair, shape) in enumerate(zip(states, want)):
        if len(pair) != 2 or any(np.shape(value_of(a)) != shape for a in pair):
            raise ValueError(f"states0[{k}] must be (h, c), each of shape {shape} (tasks, coordinates, hidden units); "
                             f"got shapes {[np.shape(value_of(a)) for a in pair]}")


def unroll_objective(phi, loss, theta0, states0, support, steps, *, gradients=None, out_scale=OUT_SCALE,
                     p=PREPROCESS_P):
    """L(φ) over ``steps`` learned-optimizer steps from (θ₀, s₀); returns ``(value, θ_K, s_K, gradients)``.

    ``gradients=None``: g_t = ∇f(θ_t) is computed on the way (from the *values*, so it never carries a
    derivative: the paper's assumption). ``gradients=[G_0, …, G_{K−1}]``: those are used instead — the frozen
    objective L̃(φ; G) whose exact derivative :func:`meta_loss_and_gradient` returns. φ may be traced.
    """
    _check_unroll(theta0, steps)
    _check_states(phi, states0, np.shape(theta0))
    if gradients is not None and len(gradients) != steps:
        raise ValueError(f"gradients must hold one (T, N) array per step: {steps}; got {len(gradients)}")
    xs, ys = support
    theta, states, used, total = theta0, states0, [], None
    for t in range(steps):
        g = gradients[t] if gradients is not None else loss_and_gradient(loss, theta, xs, ys)[1]
        used.append(np.asarray(g))
        delta, states = lstm_update(phi, g, states, out_scale=out_scale, p=p)
        theta = ops.add(theta, delta)
        term = ops.mean(loss(theta, xs, ys))
        total = term if total is None else ops.add(total, term)
    return ops.mul(total, 1.0 / steps), theta, states, used


def meta_loss_and_gradient(phi, loss, theta0, states0, support, steps, *, out_scale=OUT_SCALE, p=PREPROCESS_P):
    """Truncated backpropagation through ``steps`` optimizer steps, optimizee gradients as inputs.

    Returns ``(meta_loss, grad_phi, theta_K, states_K)``: grad_phi has the structure of φ and equals ∇_φ L̃(φ; G)
    at the gradients G of this very trajectory; θ_K and s_K are plain arrays, ready for the next truncation.
    """
    leaves, treedef = tree_flatten(phi)
    tape = Tape()
    traced = [tape.leaf(np.asarray(leaf, dtype=np.float64)) for leaf in leaves]
    value, theta, states, _ = unroll_objective(tree_unflatten(treedef, traced), loss, theta0, states0, support,
                                               steps, out_scale=out_scale, p=p)
    if not np.isfinite(value.value):
        raise FloatingPointError(f"the meta-loss is {value.value}: the optimizee diverged under the learned optimizer")
    adjoints = tape.backward(value.index, np.ones_like(value.value))
    grads = [np.zeros_like(v.value) if adjoints[v.index] is None else adjoints[v.index] for v in traced]
    plain_states = [(np.asarray(value_of(h)), np.asarray(value_of(c))) for h, c in states]
    return float(value.value), tree_unflatten(treedef, grads), np.asarray(value_of(theta)), plain_states


def frozen_gradients(phi, loss, theta0, states0, support, steps, **kwargs):
    """G = the optimizee gradients along the trajectory of φ (to define the frozen objective L̃(·; G))."""
    _, _, _, used = unroll_objective(phi, loss, theta0, states0, support, steps, **kwargs)
    return used


def train_learned_optimizer(family, rng, *, iterations, meta_batch, horizon, truncation, meta_lr=1e-3,
                            hidden_sizes=(20, 20), phi=None, out_scale=OUT_SCALE, p=PREPROCESS_P, callback=None):
    """Meta-train φ on a task family; returns ``(phi, history)``.

    ``family`` provides ``sample(rng, T) -> (support, query)``, ``init(rng, T) -> θ₀ (T, N)`` and
    ``loss(θ, x, y) -> (T,)``. Each iteration draws ``meta_batch`` fresh tasks and fresh θ₀, runs the optimizee
    for ``horizon`` steps in truncations of ``truncation`` steps, and after every truncation takes one Adam
    step on φ (lr ``meta_lr``) — the paper's recipe (horizon 100, truncation 20, Adam). ``history`` lists
    each truncation's meta-loss. An optimizee that diverges under the current φ ends its iteration early
    (no update from it; ``nan`` in ``history``) instead of stopping the run.
    """
    for name, value in (("iterations", iterations), ("meta_batch", meta_batch), ("horizon", horizon),
                        ("truncation", truncation)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if horizon % truncation:
        raise ValueError(f"horizon ({horizon}) must be a multiple of truncation ({truncation})")
    phi = init_learned_optimizer(rng, hidden_sizes) if phi is None else phi
    leaves, treedef = tree_flatten(phi)
    opt = Adam(lr=meta_lr)
    state = opt.init(leaves)
    history = []
    for it in range(iterations):
        support, _ = family.sample(rng, meta_batch)
        theta = family.init(rng, meta_batch)
        states = zero_state(phi, np.shape(theta))
        for _ in range(horizon // truncation):
            try:
                value, grads, theta, states = meta_loss_and_gradient(tree_unflatten(treedef, leaves), family.loss,
                                                                     theta, states, support, truncation,
                                                                     out_scale=out_scale, p=p)
            except FloatingPointError:
                history.append(float("nan"))
                break
            leaves, state = opt.update(tree_flatten(grads)[0], state, leaves)
            history.append(value)
        if callback is not None:
            callback(it, history)
    return tree_unflatten(treedef, leaves), history


# ---------------------------------------------------------------------------------------- rollouts
def sgd_rule(lr):
    """θ ← θ − lr·g as an update rule ``(g, state) -> (Δθ, state)``."""
    def rule(g, state):
        return -lr * g, state
    return rule, None


def adam_rule(lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma & Ba 2015) as an update rule, per coordinate (the library's Adam on the (T, N) array)."""
    opt = Adam(lr=lr, beta1=beta1, beta2=beta2, eps=eps)

    def rule(g, state):
        if state is None:
            state = opt.init([g])
        new, state = opt.update([g], state, [np.zeros_like(g)])
        return new[0], state
    return rule, None


def lstm_rule(phi, out_scale=OUT_SCALE, p=PREPROCESS_P):
    """The learned optimizer as an update rule (plain arrays: evaluation, no tape)."""
    def rule(g, state):
        if state is None:
            state = zero_state(phi, np.shape(g))
        delta, state = lstm_update(phi, g, state, out_scale=out_scale, p=p)
        return np.asarray(delta), state
    return rule, None


def rollout(rule, loss, theta0, support, steps, query=None):
    """Run an update rule for ``steps`` steps on the support loss; losses after every step.

    ``rule`` is ``(rule_fn, state)`` from :func:`sgd_rule`, :func:`adam_rule` or :func:`lstm_rule`. Returns
    ``{"support": (steps+1, T), "query": (steps+1, T) or None, "theta": θ_K}``; a diverged task keeps ``inf``.
    """
    _check_unroll(theta0, steps)
    fn, state = rule
    xs, ys = support
    theta = np.array(theta0, dtype=np.float64)
    train, test = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            per_task, g = loss_and_gradient(loss, theta, xs, ys)
            train.append(per_task)
            if query is not None:
                test.append(np.asarray(loss(theta, query[0], query[1])))
            if t == steps:
                break
            bad = ~np.isfinite(g)
            if bad.any():  # a diverged task: freeze it at inf rather than feed NaN to everyone
                g = np.where(bad, 0.0, g)
            delta, state = fn(g, state)
            theta = theta + delta
    train = np.where(np.isfinite(train), train, np.inf)
    out = {"support": np.array(train), "query": None, "theta": theta}
    if query is not None:
        out["query"] = np.where(np.isfinite(test), np.array(test), np.inf)
    return out
