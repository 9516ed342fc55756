"""Checkers for the exercises of chapter 8 (the article's §8 FAQ: families of meta-learners).

1. :func:`check_lstm_cell` — the LSTM cell's rules in plain NumPy (gates, memory, output); compared with
   :func:`mamlnp.models.lstm.lstm_cell`. Swapped input/forget gates, a missing tanh on the output, a missing
   input gate and a sigmoid candidate are recognised.
2. :func:`check_preprocess_gradients` — Andrychowicz et al. (2016)'s gradient preprocessing; compared with
   :func:`mamlnp.algorithms.learned_optimizer.preprocess_gradients`. An unscaled log|g| (no /p), an unscaled
   small g (no e^p), the two entries swapped, and the threshold e^p instead of e^−p are recognised; each message
   says what the student's entry IS and what it must become, without the full formula.
3. :func:`check_joint_training_lr` — Reptile with ONE inner step is joint training: the learning rate of the
   SGD step on the joint loss that equals Reptile's update with inner lr α and outer lr ε. ε alone, α alone and
   ε/α are recognised, and the claim is verified on real updates.
"""
from __future__ import annotations

import copy

import numpy as np

from ..algorithms import learned_optimizer as lo
from ..algorithms import maml_gradient, reptile_gradient
from ..models import lstm, nn
from ..tasks import SinusoidTasks
from . import Feedback, attempt

__all__ = ["check_lstm_cell", "check_preprocess_gradients", "check_joint_training_lr"]


def _rel(a, b):
    a, b = np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


# ============================================================================ exercise 1
EX1 = "8 ex. 1: the LSTM cell"


def _cell_case():
    rng = np.random.default_rng(801)
    params = lstm.init_lstm(2, (5,), 1, rng)["layers"][0]
    params = {k: {g: v + 0.4 * rng.standard_normal(v.shape) for g, v in d.items()} for k, d in params.items()}
    x = rng.standard_normal((3, 4, 2))
    h, c = 0.5 * rng.standard_normal((3, 4, 5)), 2.0 * rng.standard_normal((3, 4, 5))
    return params, x, h, c


def _cell_variants(p, x, h, c):
    z = {g: x @ p["w_x"][g] + h @ p["w_h"][g] + p["b"][g] for g in lstm.GATES}
    i, f, o, g = _sig(z["i"]), _sig(z["f"]), _sig(z["o"]), np.tanh(z["g"])
    out = {}
    c1 = f * c + i * g
    out["right"] = (o * np.tanh(c1), c1)
    c2 = i * c + f * g
    out["the input and forget gates are swapped: the FORGET gate f scales the old memory c, the INPUT gate i "
        "scales the candidate g (c' = f ⊙ c + i ⊙ g)"] = (o * np.tanh(c2), c2)
    out["h' = o ⊙ c' misses the tanh: the output is o ⊙ tanh(c'), which keeps h in (−1, 1)"] = (o * c1, c1)
    c3 = f * c + g
    out["the input gate is missing: c' = f ⊙ c + i ⊙ g, the candidate enters only as far as i lets it"] = \
        (o * np.tanh(c3), c3)
    c4 = f * c + i * _sig(z["g"])
    out["the candidate g uses a sigmoid: it is tanh(x W_xg + h W_hg + b_g), so memory can also go down"] = \
        (o * np.tanh(c4), c4)
    return out


def check_lstm_cell(lstm_cell) -> Feedback:
    """Check ``lstm_cell(params, x, h, c) -> (h_new, c_new)`` in plain NumPy.

    ``params = {"w_x": {gate: (d_in, H)}, "w_h": {gate: (H, H)}, "b": {gate: (H,)}}`` for gate in "i", "f",
    "o", "g"; x (…, d_in), h and c (…, H). Each gate's pre-activation is x W_x + h W_h + b.
    """
    if not callable(lstm_cell):
        raise TypeError(f"check_lstm_cell expects your function, got {type(lstm_cell).__name__}")
    p, x, h, c = _cell_case()
    result, stub = attempt(EX1, lstm_cell, copy.deepcopy(p), x.copy(), h.copy(), c.copy())
    if stub is not None:
        return stub
    try:
        h_new, c_new = result
    except (TypeError, ValueError):
        return Feedback(EX1, False, f"return the pair (h_new, c_new); got {type(result).__name__}")
    if np.shape(h_new) != h.shape or np.shape(c_new) != c.shape:
        return Feedback(EX1, False, f"h_new and c_new must have the shape of h and c, {h.shape}; got "
                        f"{np.shape(h_new)} and {np.shape(c_new)}")
    variants = _cell_variants(p, x, h, c)
    right = variants.pop("right")
    library = lstm.lstm_cell(p, x, (h, c))
    assert _rel(np.concatenate([np.ravel(a) for a in library]), np.concatenate([np.ravel(a) for a in right])) < 1e-12
    err = max(_rel(h_new, right[0]), _rel(c_new, right[1]))
    if err <= 1e-10:
        return Feedback(EX1, True, "your cell equals mamlnp.models.lstm.lstm_cell: gates, memory and output all right.")
    for message, (hv, cv) in variants.items():
        if max(_rel(h_new, hv), _rel(c_new, cv)) <= 1e-10:
            return Feedback(EX1, False, message + ".")
    if _rel(c_new, right[1]) <= 1e-10:
        return Feedback(EX1, False, f"c_new is right but h_new is off by a relative {_rel(h_new, right[0]):.1e}: "
                        "h' = o ⊙ tanh(c'), with o = σ(x W_xo + h W_ho + b_o)")
    return Feedback(EX1, False, f"c_new is off by a relative {_rel(c_new, right[1]):.1e}. Gates: i, f, o = σ(x W_x + "
                    "h W_h + b), g = tanh(…); memory c' = f ⊙ c + i ⊙ g; output h' = o ⊙ tanh(c').")


# ============================================================================ exercise 2
EX2 = "8 ex. 2: gradient preprocessing"

_GRADS = np.array([3.0, -0.25, 1e-3, -2e-4, 4e-5, -1e-7, 0.0, 2e-6, 50.0])


def check_preprocess_gradients(preprocess) -> Feedback:
    """Check ``preprocess(g, p) -> array g.shape + (2,)``: (log|g|/p, sgn g) if |g| ≥ e^−p, else (−1, e^p g)."""
    if not callable(preprocess):
        raise TypeError(f"check_preprocess_gradients expects your function, got {type(preprocess).__name__}")
    for p in (10.0, 5.0):
        g = _GRADS.copy()
        result, stub = attempt(EX2, preprocess, g.copy(), p)
        if stub is not None:
            return stub
        result = np.asarray(result, dtype=np.float64)
        if result.shape != g.shape + (2,):
            return Feedback(EX2, False, f"the result must have shape g.shape + (2,) = {g.shape + (2,)} (two numbers per "
                            f"gradient entry, stacked on a last axis); got {result.shape}")
        right = lo.preprocess_gradients(g, p)
        if _rel(result, right) <= 1e-12:
            continue
        big = np.abs(g) >= np.exp(-p)
        with np.errstate(divide="ignore"):
            logg = np.where(big, np.log(np.abs(np.where(big, g, 1.0))), 0.0)
        variants = [
            ("for |g| ≥ e^−p your first entry is log|g| itself, unscaled: it must be scaled with p so that it "
             "lies in about [−1, 1], like the other inputs",
             np.stack([np.where(big, logg, -1.0), right[..., 1]], -1)),
            ("for |g| < e^−p your second entry is g itself, unscaled: it must be scaled up with p, or all these "
             "small gradients reach the LSTM as ≈ 0",
             np.stack([right[..., 0], np.where(big, np.sign(g), g)], -1)),
            ("your two entries are in swapped order: your first entry is what belongs second (the sign, or the "
             "scaled small gradient) and your second is what belongs first (the scaled log-size, or −1)",
             right[..., ::-1]),
        ]
        big2 = np.abs(g) >= np.exp(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            alt = np.stack([np.where(big2, np.log(np.abs(g)) / p, -1.0), np.where(big2, np.sign(g), np.exp(p) * g)], -1)
        variants.append(("your threshold is e^p, a huge number, so almost every gradient takes your linear branch: "
                         "the threshold must be tiny (e^−p), so that only gradients smaller than it take that branch",
                         alt))
        for message, candidate in variants:
            if _rel(candidate, right) > 1e-6 and _rel(result, candidate) <= 1e-10:
                return Feedback(EX2, False, f"p = {p:g}: {message}.")
        rows = np.flatnonzero(np.any(np.abs(result - right) > 1e-9 * max(1.0, np.max(np.abs(right))), axis=-1))
        return Feedback(EX2, False, f"p = {p:g}: wrong for the gradient entries {list(g[rows])}. Rule: "
                        "(log|g|/p, sgn g) if |g| ≥ e^−p, otherwise (−1, e^p g).")
    return Feedback(EX2, True, "your preprocessing matches Andrychowicz et al. (2016, App. A) for p = 10 and 5, "
                    "including zero and gradients on both sides of e^−p.")


# ============================================================================ exercise 3
EX3 = "8 ex. 3: Reptile with one step is joint training"


def check_joint_training_lr(joint_training_lr) -> Feedback:
    """Check ``joint_training_lr(inner_lr, outer_lr) -> lr``: the SGD learning rate on the joint loss
    (1/T) Σ_i L_i^support(θ) whose step equals Reptile's update with one inner step."""
    if not callable(joint_training_lr):
        raise TypeError(f"check_joint_training_lr expects your function, got {type(joint_training_lr).__name__}")
    rng = np.random.default_rng(803)
    params = nn.init_mlp([1, 10, 10, 1], rng, scheme="glorot")
    support, _, _ = SinusoidTasks().sample(rng, 4, 8)
    for inner_lr, outer_lr in ((0.01, 0.3), (0.05, 2.0), (0.2, 0.1)):
        lr, stub = attempt(EX3, joint_training_lr, inner_lr, outer_lr)
        if stub is not None:
            return stub
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.integer, np.floating)):
            return Feedback(EX3, False, f"return a number (a learning rate); got {type(lr).__name__}")
        _, pseudo = reptile_gradient(params, support, support, inner_lr=inner_lr, inner_steps=1)
        reptile = [p - outer_lr * g for p, g in zip(params, pseudo)]
        _, joint = maml_gradient(params, support, support, inner_lr=inner_lr, inner_steps=0)
        stepped = [p - float(lr) * g for p, g in zip(params, joint)]
        err = max(_rel(a - p, b - p) for a, b, p in zip(stepped, reptile, params))
        if err > 1e-9:
            where = f"α = {inner_lr}, ε = {outer_lr}"
            for guess, message in ((outer_lr, "ε alone ignores that the inner step is itself α∇L"),
                                   (inner_lr, "α alone ignores the outer step ε"),
                                   (outer_lr / inner_lr, "ε/α divides where it should multiply")):
                if np.isclose(lr, guess, rtol=1e-12):
                    return Feedback(EX3, False, f"{where}: your answer {lr:g} is wrong: {message}. Reptile's "
                                    "pseudo-gradient with S = 1 is θ − mean_i(θ − α∇L_i(θ)).")
            return Feedback(EX3, False, f"{where}: an SGD step with lr {lr:g} on the joint loss is not Reptile's "
                            f"update (relative difference {err:.1e}). Write θ − mean_i θ_i^(1) in terms of ∇L_i(θ).")
    return Feedback(EX3, True, "right: Reptile with one inner step is SGD on the joint (multi-task) loss with lr ε·α — "
                    "checked on real updates for three (α, ε). Nothing 'collaborative' and nothing meta about it; "
                    "the meta-learning starts with the second inner step.")
