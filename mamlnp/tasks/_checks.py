"""The argument checks every task family's ``sample`` shares (one message each, wherever it is raised)."""
from __future__ import annotations

import numpy as np


def check_rng(rng):
    """TypeError unless ``rng`` is a NumPy Generator (np.random.default_rng(seed))."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def positive_int(value, name):
    """``int(value)``; ValueError naming ``name`` unless it is a positive integer (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def sample_sizes(rng, meta_batch, k_support, k_query):
    """Check a ``sample(rng, meta_batch, k_support, k_query=None)`` call; return ``k_query`` (default: K)."""
    check_rng(rng)
    k_query = k_support if k_query is None else k_query
    for value, name in ((meta_batch, "meta_batch"), (k_support, "k_support"), (k_query, "k_query")):
        positive_int(value, name)
    return k_query
