"""Plain-NumPy references the tests compare the library against (no engine involved)."""
import numpy as np

NUMPY_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "softplus": lambda z: np.log1p(np.exp(z)),
}


def numpy_mlp(params, x, activation):
    """Hand-written reference f_θ(x) = W_L(…act(x W_1 + b_1)…) + b_L for one network (no task axis)."""
    h = x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        h = h @ params[2 * layer] + params[2 * layer + 1]
        if layer < n_layers - 1:
            h = NUMPY_ACTIVATIONS[activation](h)
    return h
