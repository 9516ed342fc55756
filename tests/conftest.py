"""Shared fixtures: a per-test seeded Generator and finite-difference references built without the engine's
second-order rules (central differences of a function's value, or of the engine's first-order gradient)."""
import zlib

import numpy as np
import pytest

import mamlnp
from mamlnp.pytree import tree_flatten, tree_unflatten


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's id: reproducible, and independent between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def _fd_jvp(fn, params, v, eps=1e-6):
    """(fn(θ + εv) − fn(θ − εv)) / 2ε, fn evaluated untraced (plain NumPy) in float64."""
    leaves, treedef = tree_flatten(params)
    v_leaves, _ = tree_flatten(v)
    plus = tree_unflatten(treedef, [np.asarray(x, np.float64) + eps * d for x, d in zip(leaves, v_leaves)])
    minus = tree_unflatten(treedef, [np.asarray(x, np.float64) - eps * d for x, d in zip(leaves, v_leaves)])
    return (np.asarray(fn(plus)) - np.asarray(fn(minus))) / (2 * eps)


def _flatten(tree):
    return np.concatenate([np.ravel(x) for x in tree_flatten(tree)[0]])


def _fd_hessian(f, params, *args, eps=1e-5):
    """Dense H with column j = (∇f(θ + ε eⱼ) − ∇f(θ − ε eⱼ)) / 2ε; ∇f from the engine's reverse mode only."""
    leaves, treedef = tree_flatten(params)
    leaves = [np.asarray(x, np.float64) for x in leaves]
    sizes = [x.size for x in leaves]
    offsets = np.cumsum([0] + sizes)
    flat = np.concatenate([x.ravel() for x in leaves])
    grad = mamlnp.grad(f)

    def unflat(z):
        return tree_unflatten(treedef, [z[a:b].reshape(x.shape) for a, b, x in zip(offsets[:-1], offsets[1:], leaves)])

    H = np.empty((flat.size, flat.size))
    for j in range(flat.size):
        step = np.zeros_like(flat)
        step[j] = eps
        H[:, j] = (_flatten(grad(unflat(flat + step), *args)) - _flatten(grad(unflat(flat - step), *args))) / (2 * eps)
    return H


@pytest.fixture
def fd_jvp():
    return _fd_jvp


@pytest.fixture
def fd_hessian():
    return _fd_hessian


@pytest.fixture
def flatten():
    return _flatten
