"""Reference solutions for the exercises of chapter 5.3 (05_3_meta_reinforcement_learning.ipynb).

For teachers: each function here has the name of the stub in the notebook and passes its checker in
``mamlnp.exercises.ch05_3`` (``tests/test_exercises_ch05_3.py`` proves it).
"""
import numpy as np


# ---------------------------------------------------------------- exercise 1: reward-to-go
def reward_to_go(rewards, mask, discount):
    """One backward pass: R_{H-1} = r_{H-1}, R_t = r_t + γ R_{t+1}; masked rewards count as 0."""
    r = rewards * mask
    out = np.zeros_like(r)
    running = np.zeros(r.shape[:-1])
    for t in range(r.shape[-1] - 1, -1, -1):
        running = r[..., t] + discount * running
        out[..., t] = running
    return out * mask


# ---------------------------------------------------------------- exercise 2: the surrogate's gradient
def surrogate_dmu(actions, mu, sigma, advantages):
    """L(μ) = −(1/n) Σ A log N(a; μ, σ²);  ∂/∂μ log N = (a − μ)/σ²  ⇒  ∂L/∂μ = −(1/n) Σ A (a − μ)/σ²."""
    return -np.mean(advantages * (actions - mu)) / sigma ** 2


# ---------------------------------------------------------------- exercise 3: the linear baseline
def fit_baseline(features, returns, mask, reg):
    """Ridge regression on the rows that happened: (ΦᵀΦ + λI) c = ΦᵀR."""
    keep = mask > 0
    X, y = features[keep], returns[keep]
    return np.linalg.solve(X.T @ X + reg * np.eye(X.shape[1]), X.T @ y)
