"""Hard parameter sharing (a shared body, a head per task) and the §5.5 transfer experiment."""
import numpy as np
import pytest

from mamlnp.app.transfer import TransferConfig, make_tasks, run_transfer
from mamlnp.meta import hard_sharing
from mamlnp.pytree import tree_flatten, tree_unflatten


def small(rng, tasks=3):
    params = hard_sharing.init_shared(rng, tasks, sizes=(1, 5, 4, 1))
    x = rng.uniform(-2, 2, (tasks, 6, 1))
    return params, x, np.sin(x) * rng.uniform(0.5, 2, (tasks, 1, 1))


def test_shared_gradient_matches_finite_differences(rng):
    params, x, y = small(rng)
    params["body"] = [p + 0.1 * rng.standard_normal(p.shape) for p in params["body"]]  # biases off zero
    value, g = hard_sharing.shared_gradient(params, x, y, activation="tanh")
    leaves, treedef = tree_flatten(params)
    g_leaves, _ = tree_flatten(g)
    v = [rng.standard_normal(p.shape) for p in leaves]
    f = lambda ls: float(np.mean(hard_sharing.task_losses(tree_unflatten(treedef, ls), x, y, "tanh")))  # noqa: E731
    eps = 1e-6
    fd = (f([p + eps * d for p, d in zip(leaves, v)]) - f([p - eps * d for p, d in zip(leaves, v)])) / (2 * eps)
    assert sum(np.sum(a * b) for a, b in zip(g_leaves, v)) == pytest.approx(fd, rel=1e-6)
    assert float(value) == pytest.approx(f(leaves))


def test_each_head_sees_only_its_own_task(rng):
    """Changing task 0's targets changes head 0's gradient and the body's, never head 1's or 2's."""
    params, x, y = small(rng)
    _, g = hard_sharing.shared_gradient(params, x, y)
    y2 = y.copy()
    y2[0] += 1.0
    _, g2 = hard_sharing.shared_gradient(params, x, y2)
    np.testing.assert_array_equal(g["heads"][0][1:], g2["heads"][0][1:])
    assert not np.allclose(g["heads"][0][0], g2["heads"][0][0])


def test_fit_heads_solves_the_ridge_problem(rng):
    params, x, y = small(rng)
    heads = hard_sharing.fit_heads(params["body"], (x, y), ridge=0.01)
    phi = np.asarray(hard_sharing.features(params["body"], x))
    for t in range(3):  # the normal equations, task by task: the gradient of the ridge objective is zero
        resid = phi[t] @ heads[0][t] + heads[1][t] - y[t]
        grad_w = 2 * phi[t].T @ resid / len(x[t]) + 2 * 0.01 * heads[0][t]
        grad_b = 2 * resid.sum(0) / len(x[t])
        np.testing.assert_allclose(grad_w, 0, atol=1e-10)
        np.testing.assert_allclose(grad_b, 0, atol=1e-10)


def test_training_lowers_the_loss(rng):
    params, x, y = small(rng)
    _, history = hard_sharing.train_shared(params, x, y, steps=50, lr=0.01)
    assert history[-1] < 0.5 * history[0]


def test_bad_input(rng):
    params, x, y = small(rng)
    with pytest.raises(ValueError, match="one row per training task"):
        hard_sharing.shared_gradient(params, x[:2], y[:2])
    with pytest.raises(ValueError, match="tasks must be a positive integer"):
        hard_sharing.init_shared(rng, 0)
    with pytest.raises(ValueError, match="ridge must be"):
        hard_sharing.fit_heads(params["body"], (x, y), ridge=-1.0)
    with pytest.raises(ValueError, match="points_per_task must be ≥ 2"):
        TransferConfig(points_per_task=1)


def test_transfer_experiment_is_reproducible_and_complete():
    config = TransferConfig(train_tasks=3, points_per_task=6, new_tasks=4, k_new=5, test_points=7, sizes=(1, 8, 8, 1),
                            iterations=5, independent_steps=5)
    a, b = run_transfer(config), run_transfer(config)
    names = {"independent", "pooled", "pooled_finetuned", "hard_sharing", "maml", "maml_0"}
    for split, count in (("train_tasks", 3), ("new_tasks", 4)):
        assert set(a[split]) == names
        for name in names:
            assert a[split][name].shape == (count,)
            np.testing.assert_array_equal(a[split][name], b[split][name])
    tasks = make_tasks(config)
    assert tasks["train"][0].shape == (3, 6, 1) and tasks["new_support"][0].shape == (4, 5, 1)
