"""The LSTM cell and the learned optimizer (Andrychowicz et al. 2016): rules, preprocessing, meta-gradient.

Every derivative is checked against central finite differences of its own objective; the meta-gradient is the
exact gradient of the frozen-gradient objective L̃(φ; G) (optimizee gradients as inputs), and a test shows that
it is measurably NOT the gradient of the true unrolled objective (the check can tell the two apart).
"""
import numpy as np
import pytest

from mamlnp import check_grad, check_hvp
from mamlnp.algorithms import learned_optimizer as lo
from mamlnp.engine.checks import numerical_grad, relative_error
from mamlnp.engine.pytree import tree_flatten, tree_map
from mamlnp.models import lstm
from mamlnp.models.flat import FlatMLP, linear_regression_loss
from mamlnp.tasks.regression import LinearRegressionTasks
from mamlnp.tasks.sinusoid import SinusoidTasks


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _cell_problem(seed=0):
    rng = np.random.default_rng(seed)
    params = lstm.init_lstm(2, (3,), 1, rng)
    layer = tree_map(lambda a: a + 0.3 * rng.standard_normal(np.shape(a)), params["layers"][0])
    x = rng.standard_normal((2, 4, 2))
    h, c = 0.5 * rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    return layer, x, h, c, rng


# ---------------------------------------------------------------------------------------- the cell
def test_cell_matches_the_equations_with_a_concatenated_matmul():
    """h', c' equal the textbook cell written with [x, h] @ [W_x; W_h] (so the sum of two matmuls is that)."""
    layer, x, h, c, _ = _cell_problem()
    xh = np.concatenate([x, h], axis=-1)
    z = {k: xh @ np.concatenate([layer["w_x"][k], layer["w_h"][k]], axis=0) + layer["b"][k] for k in lstm.GATES}
    i, f, o, g = _sigmoid(z["i"]), _sigmoid(z["f"]), _sigmoid(z["o"]), np.tanh(z["g"])
    c_ref = f * c + i * g
    h_ref = o * np.tanh(c_ref)
    h_new, c_new = lstm.lstm_cell(layer, x, (h, c))
    np.testing.assert_allclose(c_new, c_ref, rtol=1e-13)
    np.testing.assert_allclose(h_new, h_ref, rtol=1e-13)


def test_cell_with_closed_gates_forgets_or_keeps():
    """Forget gate wide open and input gate shut keeps c exactly; the reverse replaces it by the candidate."""
    layer, x, h, c, _ = _cell_problem()
    keep = tree_map(np.zeros_like, layer)
    keep["b"]["f"], keep["b"]["i"] = np.full(3, 50.0), np.full(3, -50.0)
    np.testing.assert_allclose(lstm.lstm_cell(keep, x, (h, c))[1], c, atol=1e-15)
    erase = tree_map(np.zeros_like, layer)
    erase["b"]["f"], erase["b"]["i"], erase["b"]["g"] = np.full(3, -50.0), np.full(3, 50.0), np.full(3, 0.5)
    np.testing.assert_allclose(lstm.lstm_cell(erase, x, (h, c))[1], np.tanh(0.5), atol=1e-15)


def _cell_objective(p):
    h_new, c_new = lstm.lstm_cell(p["layer"], p["x"], (p["h"], p["c"]))
    # weighted, so that every output entry gets a different cotangent
    return (h_new * h_new * 1.3 + c_new * np.linspace(-1, 1, 3)).sum()


def test_cell_gradient_and_hvp_match_finite_differences():
    """∂/∂(weights, x, h, c) and H·v of a scalar of (h', c') against central differences."""
    layer, x, h, c, rng = _cell_problem()
    params = {"layer": layer, "x": x, "h": h, "c": c}
    check_grad(_cell_objective, params).assert_ok()
    v = tree_map(lambda a: rng.standard_normal(np.shape(a)), params)
    check_hvp(_cell_objective, params, v).assert_ok()


def test_stacked_lstm_gradient_and_hvp_match_finite_differences():
    rng = np.random.default_rng(1)
    params = lstm.init_lstm(2, (3, 2), 1, rng)
    x = rng.standard_normal((2, 3, 2))
    states = [(0.3 * rng.standard_normal((2, 3, k)), rng.standard_normal((2, 3, k))) for k in (3, 2)]

    def f(p):
        y, new = lstm.lstm_step(p, x, states)
        y2, _ = lstm.lstm_step(p, x * 0.5, new)  # two time steps: the state carries the dependence on p
        return (y2 * y2).sum() + (y * 0.7).sum()

    check_grad(f, params).assert_ok()
    check_hvp(f, params, tree_map(lambda a: rng.standard_normal(np.shape(a)), params)).assert_ok()


def test_lstm_refuses_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        lstm.init_lstm(2, (), 1, rng)
    with pytest.raises(ValueError, match="input_size"):
        lstm.init_lstm(0, (3,), 1, rng)
    with pytest.raises(TypeError, match="Generator"):
        lstm.init_lstm(2, (3,), 1, 0)
    params = lstm.init_lstm(2, (3, 3), 1, rng)
    with pytest.raises(ValueError, match="2 layers"):
        lstm.lstm_step(params, np.zeros((1, 2, 2)), lstm.zero_state(params, (1, 2))[:1])


# ---------------------------------------------------------------------------------------- preprocessing
def test_preprocessing_known_values():
    p = 10.0
    g = np.array([1.0, -np.exp(-5.0), 1e-6, 0.0, -2e-5])
    out = lo.preprocess_gradients(g, p)
    np.testing.assert_allclose(out[0], [0.0, 1.0])
    np.testing.assert_allclose(out[1], [-0.5, -1.0])
    np.testing.assert_allclose(out[2], [-1.0, np.exp(10.0) * 1e-6])
    np.testing.assert_allclose(out[3], [-1.0, 0.0])
    np.testing.assert_allclose(out[4], [-1.0, -np.exp(10.0) * 2e-5])


def test_preprocessing_is_continuous_at_the_threshold():
    """At |g| = e^−p both branches give (−1, ±1): the rule has no jump (why the threshold is e^−p)."""
    edge = np.exp(-10.0)
    above, below = lo.preprocess_gradients(np.array([edge * (1 + 1e-9), -edge * (1 + 1e-9)])), \
        lo.preprocess_gradients(np.array([edge * (1 - 1e-9), -edge * (1 - 1e-9)]))
    np.testing.assert_allclose(above, below, atol=1e-8)


def test_preprocessing_refuses_non_finite_gradients():
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        lo.preprocess_gradients(np.array([1.0, np.nan]))


# ---------------------------------------------------------------------------------------- the meta-gradient
def _meta_problem(steps=3):
    rng = np.random.default_rng(7)
    model = FlatMLP((1, 3, 1), activation="tanh")  # smooth: finite differences need no kink-free luck
    support, _, _ = SinusoidTasks().sample(rng, 2, 5)
    theta0 = model.init(rng, 2)
    phi = lstm.init_lstm(2, (3,), 1, rng, output_scale=3.0)  # large steps, so the optimizee really moves
    phi = tree_map(lambda a: a + 0.2 * rng.standard_normal(np.shape(a)), phi)
    states0 = [(0.1 * rng.standard_normal((2, model.num_params, 3)), 0.1 * rng.standard_normal((2, model.num_params, 3)))]
    return model, support, theta0, phi, states0, steps


def test_meta_gradient_is_the_gradient_of_the_frozen_gradient_objective():
    """meta_loss_and_gradient == central differences of L̃(φ; G), G = the trajectory's optimizee gradients."""
    model, support, theta0, phi, states0, steps = _meta_problem()
    value, grad, _, _ = lo.meta_loss_and_gradient(phi, model.loss, theta0, states0, support, steps)
    frozen = lo.frozen_gradients(phi, model.loss, theta0, states0, support, steps)

    def objective(p):
        return lo.unroll_objective(p, model.loss, theta0, states0, support, steps, gradients=frozen)[0]

    assert value == pytest.approx(float(objective(phi)), rel=1e-14)
    result = check_grad(objective, phi)
    result.assert_ok()  # the engine's own gradient of L̃ …
    err, where = relative_error(grad, result.numeric)
    assert err < 1e-6, f"meta-gradient vs finite differences of the frozen objective: {err:.2e} at {where}"


def test_meta_gradient_is_not_the_gradient_of_the_true_objective():
    """Finite differences of the TRUE unroll (gradients recomputed at the perturbed θ_t) differ: the dropped
    second-derivative terms are real, and the comparison above would catch a gradient that included them."""
    model, support, theta0, phi, states0, steps = _meta_problem()
    _, grad, _, _ = lo.meta_loss_and_gradient(phi, model.loss, theta0, states0, support, steps)
    numeric = numerical_grad(lambda p: float(lo.unroll_objective(p, model.loss, theta0, states0, support, steps)[0]),
                             phi, eps=1e-6)
    err, _ = relative_error(tree_flatten(grad)[0], tree_flatten(numeric)[0])
    # measured 2.5e-4 here: small (the log-preprocessing makes the LSTM's input insensitive to θ), but
    # 10⁵ × the finite-difference noise (~1e-9) of the frozen check above
    assert err > 1e-5, f"expected the frozen-gradient meta-gradient to differ from the true one, got {err:.2e}"


def test_meta_gradient_check_fails_for_a_wrong_meta_gradient():
    """Cutting the backward pass through the LSTM's memory between steps (a plausible bug) fails the check."""
    model, support, theta0, phi, states0, steps = _meta_problem()
    frozen = lo.frozen_gradients(phi, model.loss, theta0, states0, support, steps)
    _, right, theta, states = lo.meta_loss_and_gradient(phi, model.loss, theta0, states0, support, steps)
    # the same K steps as K truncations of one step each: state and θ carried, their gradient path cut
    wrong = tree_map(np.zeros_like, phi)
    th, st = theta0, states0
    for t in range(steps):
        _, g, th, st = lo.meta_loss_and_gradient(phi, model.loss, th, st, support, 1)
        wrong = tree_map(lambda a, b: a + b / steps, wrong, g)
    result = check_grad(lambda p: lo.unroll_objective(p, model.loss, theta0, states0, support, steps,
                                                      gradients=frozen)[0], phi)
    assert relative_error(right, result.numeric)[0] < 1e-6
    assert relative_error(wrong, result.numeric)[0] > 1e-3


def test_unroll_refuses_bad_arguments():
    model, support, theta0, phi, states0, steps = _meta_problem()
    with pytest.raises(ValueError, match="theta0"):
        lo.unroll_objective(phi, model.loss, theta0[0], states0, support, 2)
    with pytest.raises(ValueError, match="steps"):
        lo.unroll_objective(phi, model.loss, theta0, states0, support, 0)
    with pytest.raises(ValueError, match="states0\\[0\\] must be"):
        lo.unroll_objective(phi, model.loss, theta0, [(s[0][:1], s[1][:1]) for s in states0], support, 2)
    with pytest.raises(ValueError, match="one \\(h, c\\) pair per LSTM layer"):
        lo.unroll_objective(phi, model.loss, theta0, states0 * 2, support, 2)
    with pytest.raises(ValueError, match="one \\(T, N\\) array per step"):
        lo.unroll_objective(phi, model.loss, theta0, states0, support, 2, gradients=[np.zeros_like(theta0)])


# ---------------------------------------------------------------------------------------- rollouts & training
def test_sgd_rollout_matches_closed_form_least_squares_steps():
    rng = np.random.default_rng(3)
    support, _, _ = LinearRegressionTasks(dim=4).sample(rng, 3, 6)
    x, y = support
    theta = rng.standard_normal((3, 4))
    out = lo.rollout(lo.sgd_rule(0.05), linear_regression_loss, theta, support, 4)
    ref = theta.copy()
    for _ in range(4):
        grad = 2.0 / 6 * np.einsum("tnd,tn->td", x, (x @ ref[:, :, None] - y)[..., 0])
        ref = ref - 0.05 * grad
    np.testing.assert_allclose(out["theta"], ref, rtol=1e-12)
    np.testing.assert_allclose(out["support"][-1], np.mean((x @ ref[:, :, None] - y) ** 2, axis=(1, 2)), rtol=1e-12)


def test_lstm_rollout_is_per_task_and_per_coordinate():
    """T tasks in one batched call give exactly what T one-task calls give (nothing mixes across the batch)."""
    rng = np.random.default_rng(4)
    model = FlatMLP((1, 5, 1))
    support, query, _ = SinusoidTasks().sample(rng, 3, 5)
    theta = model.init(rng, 3)
    phi = lo.init_learned_optimizer(rng, (4,))
    both = lo.rollout(lo.lstm_rule(phi), model.loss, theta, support, 5, query)
    for t in range(3):
        one = lo.rollout(lo.lstm_rule(phi), model.loss, theta[t:t + 1], (support[0][t:t + 1], support[1][t:t + 1]), 5,
                         (query[0][t:t + 1], query[1][t:t + 1]))
        np.testing.assert_allclose(one["support"][:, 0], both["support"][:, t], rtol=1e-12)
        np.testing.assert_allclose(one["query"][:, 0], both["query"][:, t], rtol=1e-12)


def test_training_lowers_the_meta_loss_on_held_out_regression_tasks():
    from mamlnp.app.optimizer_comparison import regression_family
    family = regression_family(dim=5)
    phi0 = lo.init_learned_optimizer(np.random.default_rng(0), (8,))
    phi, history = lo.train_learned_optimizer(family, np.random.default_rng(1), iterations=25, meta_batch=8,
                                              horizon=20, truncation=10, meta_lr=3e-3, phi=phi0)
    support, _ = family.sample(np.random.default_rng(99), 16)
    theta = family.init(np.random.default_rng(98), 16)
    before = lo.rollout(lo.lstm_rule(phi0), family.loss, theta, support, 20)["support"].mean()
    after = lo.rollout(lo.lstm_rule(phi), family.loss, theta, support, 20)["support"].mean()
    assert np.all(np.isfinite(history)), "no optimizee should diverge on this easy family"
    assert after < 0.5 * before, (before, after)


def test_training_refuses_bad_arguments():
    from mamlnp.app.optimizer_comparison import regression_family
    with pytest.raises(ValueError, match="multiple of truncation"):
        lo.train_learned_optimizer(regression_family(), np.random.default_rng(0), iterations=1, meta_batch=2,
                                   horizon=10, truncation=3)
    with pytest.raises(ValueError, match="iterations"):
        lo.train_learned_optimizer(regression_family(), np.random.default_rng(0), iterations=0, meta_batch=2,
                                   horizon=10, truncation=5)
