"""Nested containers of arrays ("pytrees"): lists, tuples and dicts whose leaves are arrays.

`params` in every transform of this package is such a tree. Flattening gives the leaves in a fixed
order (dict keys sorted) together with a *treedef* that rebuilds the same structure from new leaves.
"""
from __future__ import annotations

import numpy as np

__all__ = ["tree_flatten", "tree_unflatten", "tree_map", "leaf_paths", "check_same_structure"]

_LEAF = "*"


def tree_flatten(tree):
    """Return ``(leaves, treedef)``; leaves are everything that is not a list, tuple or dict."""
    leaves = []

    def walk(node):
        if isinstance(node, (list, tuple)):
            return (type(node), [walk(child) for child in node])
        if isinstance(node, dict):
            keys = sorted(node)
            return (dict, keys, [walk(node[k]) for k in keys])
        leaves.append(node)
        return _LEAF

    treedef = walk(tree)
    return leaves, treedef


def tree_unflatten(treedef, leaves):
    """Inverse of :func:`tree_flatten`: put ``leaves`` (in order) back into ``treedef``'s structure."""
    it = iter(leaves)

    def build(spec):
        if spec == _LEAF:
            return next(it)
        if spec[0] is dict:
            return {k: build(s) for k, s in zip(spec[1], spec[2])}
        kind, children = spec
        out = [build(s) for s in children]
        return out if kind is list else tuple(out)

    return build(treedef)


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf-wise to one or more trees of the same structure."""
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])


def leaf_paths(treedef, name="params"):
    """Human-readable path of every leaf, e.g. ``params[2]`` or ``params['w']``, for error messages."""
    paths = []

    def walk(spec, prefix):
        if spec == _LEAF:
            paths.append(prefix)
        elif spec[0] is dict:
            for k, s in zip(spec[1], spec[2]):
                walk(s, f"{prefix}[{k!r}]")
        else:
            for i, s in enumerate(spec[1]):
                walk(s, f"{prefix}[{i}]")

    walk(treedef, name)
    return paths


def _describe(treedef):
    if treedef == _LEAF:
        return "array"
    if treedef[0] is dict:
        return "{" + ", ".join(f"{k!r}: {_describe(s)}" for k, s in zip(treedef[1], treedef[2])) + "}"
    kind, children = treedef
    inner = ", ".join(_describe(s) for s in children)
    return f"[{inner}]" if kind is list else f"({inner})"


def _short(text, limit=240):
    """``text`` cut to ``limit`` characters: a structure given as nested Python lists can describe itself in
    thousands of characters, which buries the message."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def check_same_structure(tree, reference, name, ref_name="params"):
    """Raise ValueError unless ``tree`` has the structure and leaf shapes of ``reference``.

    Returns the leaves of ``tree`` as float arrays.
    """
    leaves, treedef = tree_flatten(tree)
    ref_leaves, ref_def = tree_flatten(reference)
    if treedef != ref_def:
        raise ValueError(
            f"{name} has structure {_short(_describe(treedef))} but {ref_name} has structure "
            f"{_short(_describe(ref_def))}; {name} must mirror {ref_name} leaf for leaf"
            + ("; its leaves include plain Python numbers: give each leaf as a numpy array, not a nested list"
               if any(isinstance(x, (int, float)) for x in leaves) else "")
        )
    out = []
    for path, leaf, ref in zip(leaf_paths(treedef, name), leaves, ref_leaves):
        arr = np.asarray(leaf)
        if arr.shape != np.shape(ref):
            raise ValueError(f"{path} has shape {arr.shape} but the matching leaf of {ref_name} has shape {np.shape(ref)}")
        out.append(arr)
    return out
