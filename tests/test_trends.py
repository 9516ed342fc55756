"""Chapter 7's study code (mamlnp.app.trends) and the finite task pool: the measurements are what they claim."""
import numpy as np
import pytest

import mamlnp
from mamlnp.app import trends
from mamlnp.app.evaluate import make_test_tasks
from mamlnp.meta import maml_gradient
from mamlnp.models import losses
from mamlnp.nn import init_mlp, mlp
from mamlnp.tasks import SinusoidTaskPool, SinusoidTasks


def test_sharpness_equals_the_top_eigenvalue_of_each_tasks_dense_hessian():
    """Power iteration on per-task HVPs vs np.linalg.eigvalsh of the dense support Hessian (engine ``hessian``),
    task by task, on a small ReLU network; a wrong task pairing or scale would be far off."""
    rng = np.random.default_rng(0)
    params = init_mlp([1, 6, 6, 1], rng, scheme="glorot")
    support, _, _ = SinusoidTasks().sample(rng, 3, 5)
    got = trends.sharpness(params, support, iters=300)
    shapes = [p.shape for p in params]

    def unflat(z):
        out, start = [], 0
        for s in shapes:
            n = int(np.prod(s))
            out.append(z[start:start + n].reshape(s))
            start += n
        return out

    flat = np.concatenate([p.ravel() for p in params])
    for i in range(3):
        f = lambda z: losses.LOSSES["mse"][1](mlp(unflat(z), support[0][i], "relu"), support[1][i])  # noqa: E731
        eigenvalues = np.linalg.eigvalsh(mamlnp.hessian(f)(flat))
        top = eigenvalues[np.argmax(np.abs(eigenvalues))]
        assert got[i] == pytest.approx(top, rel=1e-6)
    assert len(set(np.round(got, 6))) == 3  # three different tasks, three different curvatures


def test_task_pool_reuses_exactly_its_sines_and_draws_fresh_inputs():
    pool = SinusoidTaskPool.draw(np.random.default_rng(1), 4)
    support, query, info = pool.sample(np.random.default_rng(2), 50, 5, 7)
    assert set(info["index"]) <= {0, 1, 2, 3} and len(set(info["index"])) == 4
    np.testing.assert_allclose(support[1], info["amplitude"][:, None, None] * np.sin(support[0] - info["phase"][:, None, None]))
    assert query[0].shape == (50, 7, 1)
    assert set(np.round(info["amplitude"], 12)) == set(np.round(pool.amplitudes, 12))
    with pytest.raises(ValueError, match="equal length"):
        SinusoidTaskPool((1.0, 2.0), (0.5,))


def test_meta_train_is_one_adam_step_per_iteration_and_reproducible():
    run = trends.meta_train("maml", iters=2, seed=3, meta_batch=4, k=5)
    again = trends.meta_train("maml", iters=2, seed=3, meta_batch=4, k=5)
    assert all(np.array_equal(a, b) for a, b in zip(run["params"], again["params"]))
    rng = np.random.default_rng(3)
    params = init_mlp([1, 40, 40, 1], rng)
    support, query, _ = SinusoidTasks().sample(rng, 4, 5, 5)
    assert run["losses"][0] == maml_gradient(params, support, query, inner_lr=0.01, inner_steps=1)[0]
    with pytest.raises(ValueError, match="algorithm must be one of"):
        trends.meta_train("metasgd", iters=1)


def test_first_order_gap_matches_a_direct_computation_and_is_positive_for_the_network():
    """For the MLP at the paper's init the dropped term is not zero; the cosine is ≤ 1 and the two agree with
    a direct computation of both gradients."""
    rng = np.random.default_rng(4)
    params = init_mlp([1, 40, 40, 1], rng, scheme="torch")
    support, query, _ = SinusoidTasks().sample(rng, 10, 10)
    cosine, dropped = trends.first_order_gap(params, support, query)
    g2 = np.concatenate([g.ravel() for g in maml_gradient(params, support, query, inner_lr=0.01, inner_steps=1)[1]])
    g1 = np.concatenate([g.ravel() for g in maml_gradient(params, support, query, inner_lr=0.01, inner_steps=1,
                                                          order=1)[1]])
    assert cosine == pytest.approx(g1 @ g2 / np.linalg.norm(g1) / np.linalg.norm(g2))
    assert dropped == pytest.approx(np.linalg.norm(g2 - g1) / np.linalg.norm(g1)) and dropped > 0


def test_diverging_fraction_counts_tasks_made_worse_by_repeated_steps():
    params = init_mlp([1, 40, 40, 1], np.random.default_rng(0), scheme="glorot")
    calm = trends.diverging_fraction(params, inner_lr=1e-3, tasks=20)
    wild = trends.diverging_fraction(params, inner_lr=1.0, tasks=20)  # α far beyond 2/λ_max
    assert calm["worse"] < 0.5 and calm["blown_up"] == 0.0 and calm["median"] < 20
    assert wild["worse"] == 1.0 and wild["blown_up"] == 1.0 and wild["median"] > 1e3


def test_edge_of_stability_and_pool_study_rows_have_their_fields():
    rows = trends.edge_of_stability([0.01], [0], iters=4, every=2, tasks=5, power_iters=3)
    assert rows[0]["alpha_lambda"].shape == (3, 5) and rows[0]["iterations"] == [0, 2, 4]
    study = trends.pool_study([3, None], iters=2, tasks=10)
    assert [r["pool"] for r in study] == [3, "unlimited"] and study[1]["train"] is study[1]["test"]
