"""Optimizers as pure functions: ``state = opt.init(params)``; ``params, state = opt.update(grads, state, params)``.

Nothing is mutated: every update returns new arrays, so a checkpoint of (params, state) is all there is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SGD", "Adam", "OPTIMIZERS"]


def _check_lr(lr, name="lr"):
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(lr).__name__} {lr!r}")
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {lr!r}")


def _check_grads(grads, params):
    """zip() would silently drop parameters beyond a short grads list, and broadcasting would hide a
    wrongly shaped gradient: refuse both."""
    if len(grads) != len(params):
        raise ValueError(f"grads has {len(grads)} arrays but params has {len(params)}; they must match one to one")
    for k, (g, p) in enumerate(zip(grads, params)):
        if np.shape(g) != np.shape(p):
            raise ValueError(f"grads[{k}] has shape {np.shape(g)} but params[{k}] has shape {np.shape(p)}")


@dataclass(frozen=True)
class SGD:
    """θ ← θ − lr · g."""

    lr: float = 1e-2

    def __post_init__(self):
        _check_lr(self.lr)

    def init(self, params):
        return {"step": 0}

    def update(self, grads, state, params):
        _check_grads(grads, params)
        lr = float(self.lr)  # a Python float keeps float32 parameters float32 (an np.float64 would promote them)
        return [p - lr * g for p, g in zip(params, grads)], {"step": state["step"] + 1}


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr·m̂/(√v̂ + ε),
    with bias-corrected m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        _check_lr(self.lr)
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        if not np.isfinite(self.eps) or self.eps <= 0:  # ε = 0 turns a zero gradient entry into 0/0 = NaN
            raise ValueError(f"eps must be a positive finite number, got {self.eps!r}")

    def init(self, params):
        return {"step": 0, "m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params]}

    def update(self, grads, state, params):
        _check_grads(grads, params)
        t = state["step"] + 1
        # Python floats, not np.float64 scalars: NumPy ≥ 2 would promote float32 parameters to float64
        b1, b2 = float(self.beta1), float(self.beta2)
        correction2 = math.sqrt(1.0 - b2 ** t)
        step_size = float(self.lr) * correction2 / (1.0 - b1 ** t)
        eps = float(self.eps) * correction2
        new_params, new_m, new_v = [], [], []
        for p, g, m, v in zip(params, grads, state["m"], state["v"]):
            m = b1 * m + (1.0 - b1) * g
            v = b2 * v + (1.0 - b2) * (g * g)
            # ε is scaled by √(1−β₂ᵗ) so this folded form equals lr·m̂/(√v̂ + ε) exactly
            new_params.append(p - step_size * m / (np.sqrt(v) + eps))
            new_m.append(m)
            new_v.append(v)
        return new_params, {"step": t, "m": new_m, "v": new_v}


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
