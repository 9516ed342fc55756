"""The bias of MAML's RL meta-gradient, measured against finite differences on common random numbers.

On the one-step version of the navigation task (horizon 1) the finite difference of the true objective is
precise, and the paper's estimator is measurably biased along log σ (it ignores how θ moves the inner
samples); adding the score term removes the bias within the CIs. Both directions of this test can fail."""
import numpy as np

from mamlnp.app.navigation_bias import bias_table, meta_gradient_bias
from mamlnp.models.policy import init_policy


def test_maml_estimator_is_biased_and_the_score_term_corrects_it():
    params = init_policy(np.random.default_rng(0), hidden=(16, 16))
    v = [np.zeros_like(p) for p in params]
    v[-1][0] = 1.0  # the direction of log σ_x
    result = meta_gradient_bias(params, [0.3, -0.2], blocks=60, block_size=10, trajectories=20, horizon=1,
                                directions=[v], eps=1e-4, seed=1)
    row = bias_table(result)[0]
    bias, ci = row["bias_maml"]
    assert bias > 3 * ci / 1.96 and bias > 0.2 * abs(row["fd"][0])  # significant and large (≈ 40 % too big)
    bias, ci = row["bias_score"]
    assert abs(bias) < 1.5 * ci  # consistent with zero at this precision
