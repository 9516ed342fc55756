"""The hand-written one-step MAML (no engine) is an independent oracle for the engine's meta-gradient."""
import numpy as np
import pytest

from mamlnp.checks import relative_error
from mamlnp.handwritten import maml_relu_mlp_one_step
from mamlnp.meta import maml_gradient
from mamlnp.nn import init_mlp
from mamlnp.tasks import SinusoidTasks


@pytest.mark.parametrize("sizes", [[1, 40, 40, 1], [2, 7, 3], [1, 5, 6, 4, 2]])
def test_handwritten_equals_engine_meta_gradient(sizes):
    """Σ_i (I − αH_i)∇L_i^query(θ_i')/T by hand (forward, backward, R-op written out) equals maml_gradient
    (engine, S = 1, order 2) to rounding: two independent derivations of the same number."""
    rng = np.random.default_rng(3)
    params = init_mlp(sizes, rng, scheme="glorot")
    t, k, d_in, d_out = 6, 7, sizes[0], sizes[-1]
    xs, xq = rng.uniform(-2, 2, (t, k, d_in)), rng.uniform(-2, 2, (t, k + 2, d_in))
    ys, yq = rng.standard_normal((t, k, d_out)), rng.standard_normal((t, k + 2, d_out))
    loss_engine, grads_engine = maml_gradient(params, (xs, ys), (xq, yq), inner_lr=0.05, inner_steps=1)
    loss_hand, grads_hand = maml_relu_mlp_one_step(params, (xs, ys), (xq, yq), 0.05)
    assert loss_hand == pytest.approx(loss_engine, rel=1e-13)
    err, where = relative_error(grads_engine, grads_hand)
    assert err < 1e-12, f"hand-written and engine meta-gradients differ by {err:.2e} at {where}"


def test_handwritten_paper_configuration():
    """Same check in the paper's sinusoid setting (MAML init, 25 tasks, K = 10)."""
    rng = np.random.default_rng(0)
    params = init_mlp([1, 40, 40, 1], rng)
    support, query, _ = SinusoidTasks().sample(rng, 25, 10)
    _, g_engine = maml_gradient(params, support, query, inner_lr=0.01, inner_steps=1)
    _, g_hand = maml_relu_mlp_one_step(params, support, query, 0.01)
    err, where = relative_error(g_engine, g_hand)
    assert err < 1e-12, f"differ by {err:.2e} at {where}"
