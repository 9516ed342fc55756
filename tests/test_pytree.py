"""Pytrees: flatten/unflatten are inverse, the leaf order is fixed (dict keys sorted), paths name leaves,
and check_same_structure refuses a mismatch with a message naming both structures or both shapes."""
import numpy as np
import pytest

from mamlnp.pytree import check_same_structure, leaf_paths, tree_flatten, tree_map, tree_unflatten


def nested(rng):
    return {"layers": [(rng.standard_normal((2, 3)), rng.standard_normal(3)), (rng.standard_normal((3, 1)),)],
            "log_lr": np.asarray(-2.0)}


def test_flatten_unflatten_roundtrip(rng):
    """unflatten(treedef, flatten(t).leaves) rebuilds t: same container types, same leaf objects."""
    tree = nested(rng)
    leaves, treedef = tree_flatten(tree)
    assert len(leaves) == 4
    rebuilt = tree_unflatten(treedef, leaves)
    assert isinstance(rebuilt["layers"], list) and isinstance(rebuilt["layers"][0], tuple)
    assert all(a is b for a, b in zip(tree_flatten(rebuilt)[0], leaves))


def test_leaf_order_sorts_dict_keys():
    """Leaves come in sorted-key order whatever the insertion order, so two equal dicts flatten alike."""
    a, b, c = np.zeros(1), np.ones(1), np.full(1, 2.0)
    leaves, _ = tree_flatten({"z": a, "a": [b, c]})
    assert [x[0] for x in leaves] == [1.0, 2.0, 0.0]
    assert tree_flatten({"a": 1, "b": 2})[1] == tree_flatten({"b": 2, "a": 1})[1]


def test_single_array_is_a_leaf():
    """A bare array is a one-leaf tree."""
    x = np.ones((2, 2))
    leaves, treedef = tree_flatten(x)
    assert leaves == [x] and tree_unflatten(treedef, [5]) == 5


def test_leaf_paths_name_each_leaf(rng):
    """leaf_paths gives the indexing expression of every leaf, in flattening order."""
    _, treedef = tree_flatten(nested(rng))
    assert leaf_paths(treedef, "params") == [
        "params['layers'][0][0]", "params['layers'][0][1]", "params['layers'][1][0]", "params['log_lr']"]


def test_tree_map_over_two_trees(rng):
    """tree_map(f, t, u) applies f to matching leaves and keeps t's structure."""
    t, u = nested(rng), nested(rng)
    s = tree_map(lambda a, b: a + 2 * b, t, u)
    for x, a, b in zip(tree_flatten(s)[0], tree_flatten(t)[0], tree_flatten(u)[0]):
        np.testing.assert_array_equal(x, a + 2 * b)
    assert tree_flatten(s)[1] == tree_flatten(t)[1]


def test_check_same_structure_returns_array_leaves(rng):
    """A matching tree passes and its leaves come back as arrays with the reference's shapes."""
    ref = nested(rng)
    other = tree_map(lambda x: 2.0 * x, ref)
    leaves = check_same_structure(other, ref, "v")
    assert all(isinstance(x, np.ndarray) and x.shape == np.shape(r) for x, r in zip(leaves, tree_flatten(ref)[0]))


def test_check_same_structure_names_both_structures():
    """A list-vs-tuple mismatch: ValueError describing both structures."""
    with pytest.raises(ValueError, match=r"v has structure \[array, \(array\)\] but params has structure "
                                         r"\[array, array\]; v must mirror params leaf for leaf"):
        check_same_structure([np.ones(2), (np.ones(2),)], [np.ones(2), np.ones(2)], "v")


def test_check_same_structure_names_the_leaf_and_both_shapes():
    """A shape mismatch: ValueError naming the leaf path and both shapes."""
    with pytest.raises(ValueError,
                       match=r"v\['w'\] has shape \(3, 2\) but the matching leaf of params has shape \(2, 3\)"):
        check_same_structure({"w": np.ones((3, 2))}, {"w": np.ones((2, 3))}, "v")
