"""Every algorithm accepts any model: ``task_loss(params, x, y) -> (T,)`` over any parameter pytree.

The model here is not an MLP: a dict of parameters with a learned input scaling and a tanh feature,
f(x) = tanh((x ⊙ s) W + b) · v + c. Its MAML meta-gradient is checked against central finite differences of
the bilevel objective itself, L_meta(θ) = mean_i L_i^query(θ − α∇L_i^support(θ)) (S plain-NumPy steps).
"""
import numpy as np
import pytest

from mamlnp import ops
from mamlnp.engine.checks import numerical_grad
from mamlnp.meta import (adapt, adaptation_losses, article_section4_gradient, fomaml_gradient, maml_gradient,
                         meta_gradient, multitask_gradient, reptile_gradient)


def model(p, x):
    """f(x) for a dict θ = {scale (d,), W (d, h), b (h,), v (h, 1), c (1,)}; works on Vars and on arrays."""
    scaled = ops.mul(x, ops.reshape(p["scale"], p["scale"].shape[:-1] + (1,) + p["scale"].shape[-1:]))
    hidden = ops.tanh(ops.affine(scaled, p["W"], p["b"]))
    return ops.affine(hidden, p["v"], p["c"])


def task_loss(p, x, y):
    residual = ops.sub(model(p, x), y)
    return ops.mean(ops.mul(residual, residual), axis=(-2, -1))


def init(rng, d=2, h=5):
    return {"scale": 1.0 + 0.3 * rng.standard_normal(d), "W": 0.7 * rng.standard_normal((d, h)),
            "b": 0.1 * rng.standard_normal(h), "v": 0.7 * rng.standard_normal((h, 1)), "c": np.zeros(1)}


def meta_batch(rng, tasks=3, k=4, d=2):
    def pair():
        x = rng.uniform(-2, 2, (tasks, k, d))
        return x, np.sin(x.sum(-1, keepdims=True)) * rng.uniform(0.5, 2, (tasks, 1, 1))
    return pair(), pair()


def bilevel_objective(p, support, query, inner_lr, inner_steps, analytic_grad):
    losses = []
    for i in range(len(support[0])):
        q = {k: v.copy() for k, v in p.items()}
        for _ in range(inner_steps):
            g = analytic_grad(q, support[0][i], support[1][i])
            q = {k: q[k] - inner_lr * g[k] for k in q}
        losses.append(float(task_loss(q, query[0][i][None], query[1][i][None])[0]))
    return np.mean(losses)


def engine_task_grad(q, x, y):
    """The inner gradient inside the FD reference: the engine's first-order reverse mode (checked elsewhere)."""
    from mamlnp import grad
    return grad(lambda p: ops.sum(task_loss(p, x[None], y[None])))(q)


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_maml_gradient_of_dict_model_matches_finite_differences_of_bilevel_objective(rng, inner_steps):
    params = init(rng)
    support, query = meta_batch(rng)
    value, grads = maml_gradient(params, support, query, inner_lr=0.1, inner_steps=inner_steps, task_loss=task_loss)
    assert set(grads) == set(params) and all(grads[k].shape == params[k].shape for k in params)
    assert value == pytest.approx(bilevel_objective(params, support, query, 0.1, inner_steps, engine_task_grad), rel=1e-12)
    fd = numerical_grad(lambda p: bilevel_objective(p, support, query, 0.1, inner_steps, engine_task_grad), params,
                        eps=1e-5)
    for key in params:
        for idx in np.ndindex(params[key].shape):
            assert grads[key][idx] == pytest.approx(fd[key][idx], rel=1e-6, abs=1e-8), (key, idx)


def test_first_order_differs_from_second_order_for_a_curved_model(rng):
    """Guards the check above against a meta-gradient that silently drops the Hessian term."""
    params = init(rng)
    support, query = meta_batch(rng)
    _, second = maml_gradient(params, support, query, inner_lr=0.1, inner_steps=1, task_loss=task_loss)
    _, first = fomaml_gradient(params, support, query, inner_lr=0.1, inner_steps=1, task_loss=task_loss)
    assert max(np.max(np.abs(second[k] - first[k])) for k in params) > 1e-4


def test_meta_gradient_and_maml_gradient_agree_on_tuple_params(rng):
    params = init(rng)
    keys = sorted(params)
    support, query = meta_batch(rng)

    def tuple_loss(p, x, y):
        return task_loss(dict(zip(keys, p)), x, y)

    as_tuple = tuple(params[k] for k in keys)
    v1, g1 = maml_gradient(params, support, query, inner_lr=0.05, inner_steps=2, task_loss=task_loss)
    v2, g2 = meta_gradient(tuple_loss, as_tuple, support, query, inner_lr=0.05, inner_steps=2)
    assert isinstance(g2, tuple) and v1 == v2
    for k, g in zip(keys, g2):
        np.testing.assert_array_equal(g1[k], g)


def test_every_algorithm_takes_task_loss_and_returns_the_params_structure(rng):
    params = init(rng)
    before = {k: v.copy() for k, v in params.items()}
    support, query = meta_batch(rng)
    for fn in (maml_gradient, fomaml_gradient, reptile_gradient, multitask_gradient, article_section4_gradient):
        value, grads = fn(params, support, query, inner_lr=0.05, inner_steps=2, task_loss=task_loss)
        assert np.isfinite(value) and set(grads) == set(params), fn.__name__
    adapted = adapt(params, support, inner_lr=0.05, inner_steps=2, task_loss=task_loss)
    assert all(adapted[k].shape == (3,) + params[k].shape for k in params)
    curves = adaptation_losses(params, support, query, inner_lr=0.05, steps=(0, 2), task_loss=task_loss)
    np.testing.assert_allclose(curves[2], task_loss(adapted, *query), rtol=1e-12)
    np.testing.assert_allclose(curves[0], task_loss({k: v[None] for k, v in params.items()}, *query), rtol=1e-12)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_multitask_gradient_of_dict_model_is_plain_gradient_on_all_points(rng):
    from mamlnp import grad
    params = init(rng)
    support, query = meta_batch(rng)
    _, grads = multitask_gradient(params, support, query, task_loss=task_loss)
    x = np.concatenate([support[0], query[0]], axis=1)
    y = np.concatenate([support[1], query[1]], axis=1)
    expected = grad(lambda p: ops.mean(task_loss(p, x, y)))(params)
    for k in params:
        np.testing.assert_allclose(grads[k], expected[k], rtol=1e-12, atol=1e-15)


def test_task_loss_must_return_one_value_per_task(rng):
    params = init(rng)
    support, query = meta_batch(rng)
    with pytest.raises(ValueError, match=r"one loss per task, shape \(3,\); got shape \(\)"):
        maml_gradient(params, support, query, inner_lr=0.1, inner_steps=1,
                      task_loss=lambda p, x, y: ops.sum(task_loss(p, x, y)))


def test_bad_task_loss_and_meta_batch_are_clear_errors(rng):
    params = init(rng)
    support, query = meta_batch(rng)
    with pytest.raises(TypeError, match="task_loss must be a function"):
        maml_gradient(params, support, query, inner_lr=0.1, inner_steps=1, task_loss="mse")
    with pytest.raises(ValueError, match="support has 3 tasks but query has 2"):
        maml_gradient(params, support, (query[0][:2], query[1][:2]), inner_lr=0.1, inner_steps=1, task_loss=task_loss)
    with pytest.raises(ValueError, match="disagree on the task axis"):
        maml_gradient(params, (support[0], support[1][:2]), query, inner_lr=0.1, inner_steps=1, task_loss=task_loss)
    with pytest.raises(TypeError, match=r"params\['W'\] has dtype int64"):
        maml_gradient({**params, "W": np.ones((2, 5), int)}, support, query, inner_lr=0.1, inner_steps=1,
                      task_loss=task_loss)
    with pytest.raises(TypeError, match="object-dtype"):
        maml_gradient(params, (support[0].astype(object), support[1]), query, inner_lr=0.1, inner_steps=1,
                      task_loss=task_loss)


def test_mlp_path_refuses_integer_params_like_grad_does():
    params = [np.ones((1, 3), int), np.zeros(3), np.ones((3, 1)), np.zeros(1)]
    x = np.zeros((2, 4, 1))
    with pytest.raises(TypeError, match=r"params\[0\] has dtype int64"):
        maml_gradient(params, (x, x), (x, x), inner_lr=0.1, inner_steps=1)


def test_mlp_path_refuses_object_and_string_data_like_task_loss_does():
    """Object-dtype x on the MLP path raised AttributeError deep in the engine; now a TypeError naming it."""
    params = [np.ones((1, 3)), np.zeros(3), np.ones((3, 1)), np.zeros(1)]
    x = np.zeros((2, 4, 1))
    with pytest.raises(TypeError, match="support x has dtype object; expected a real numeric array"):
        maml_gradient(params, (x.astype(object), x), (x, x), inner_lr=0.1, inner_steps=1)
    with pytest.raises(TypeError, match="query y has dtype <U1"):
        maml_gradient(params, (x, x), (x, np.full(x.shape, "a")), inner_lr=0.1, inner_steps=1)
