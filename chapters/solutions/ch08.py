"""Reference solutions to the exercises of chapter 8 (the article's §8 FAQ).

Each function answers the stub of the same name in ``08_faq.ipynb``; the checkers in
:mod:`mamlnp.exercises.ch08` accept them (``tests/test_exercises_ch08.py`` proves it).
"""
import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------------------- exercise 1
def lstm_cell(params, x, h, c):
    """Gates i, f, o = σ(x W_x + h W_h + b), candidate g = tanh(…); c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')."""
    z = {k: x @ params["w_x"][k] + h @ params["w_h"][k] + params["b"][k] for k in ("i", "f", "o", "g")}
    i, f, o, g = _sigmoid(z["i"]), _sigmoid(z["f"]), _sigmoid(z["o"]), np.tanh(z["g"])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


# ---------------------------------------------------------------------------- exercise 2
def preprocess(g, p):
    """(log|g|/p, sgn g) where |g| ≥ e^−p, else (−1, e^p g)."""
    g = np.asarray(g, dtype=np.float64)
    big = np.abs(g) >= np.exp(-p)
    safe = np.where(big, np.abs(g), 1.0)          # log only where it is used
    first = np.where(big, np.log(safe) / p, -1.0)
    second = np.where(big, np.sign(g), np.exp(p) * g)
    return np.stack([first, second], axis=-1)


# ---------------------------------------------------------------------------- exercise 3
def joint_training_lr(inner_lr, outer_lr):
    """θ − mean_i(θ − α∇L_i(θ)) = α ∇[(1/T) Σ L_i](θ); stepping ε along it is SGD with lr ε·α."""
    return outer_lr * inner_lr
