"""Checkers for the exercises of chapter 3.3 (the MAML derivation).

1. :func:`check_silu_rules` — the vjp, jvp and second-order rule (``vjp_tangent``) of a new primitive,
   SiLU y = x·σ(x). Each rule is checked on its own against central finite differences, so the feedback
   names the rule that is wrong; then the primitive is used inside a small function and checked end to
   end with :func:`mamlnp.check_grad` and :func:`mamlnp.check_hvp`.
2. :func:`check_one_step_meta_gradient` — one-step MAML's meta-gradient (I − αH_s(θ)) ∇L_q(θ′) from
   ``grad`` and ``hvp``, compared with the same product built from the dense Hessian; common mistakes
   (dropping H, the sign of αH, H taken at θ′, …) are recognised and named.
3. :func:`check_first_order_exact` — an example on which first-order MAML is exact: the checker
   verifies the meta-gradient against finite differences of the meta-objective, that the example is
   not trivial, and that the dropped term α H_s(θ) ∇L_q(θ′) is zero.
4. :func:`check_linear_mse_hvp` — the hand-derived Hessian-vector product of a linear layer with MSE,
   compared with the engine's ``hvp`` block by block.
5. :func:`check_sin_primitive` — the vjp, jvp and second-order rule of y = sin x (moved here from 3.2,
   which introduces reverse mode only), each tested through the engine against finite differences.

Every checker returns a :class:`~mamlnp.exercises.Feedback`; a stub that still raises
``NotImplementedError`` gets "not attempted yet".
"""
from __future__ import annotations

import copy

import numpy as np

from ..models import losses
from ..models import nn
from ..engine import ops
from ..engine.checks import check_grad, check_hvp, relative_error
from ..engine.pytree import check_same_structure, tree_flatten, tree_map, tree_unflatten
from ..engine.transforms import grad, hessian, hvp, jvp
from . import Feedback, as_primitive, attempt

__all__ = ["check_silu_rules", "check_one_step_meta_gradient", "check_first_order_exact", "check_linear_mse_hvp",
           "check_sin_primitive"]

# Central differences of smooth functions in float64 agree with a correct rule to ~1e-9; a wrong rule
# is off by O(1). Results computed by two exact routes (engine vs dense Hessian) agree to ~1e-14.
FD_RTOL = 1e-6
EXACT_RTOL = 1e-9


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for x in tree_flatten(tree)[0]])


def _unflat(flat, like):
    leaves, treedef = tree_flatten(like)
    out, start = [], 0
    for leaf in leaves:
        size = np.size(leaf)
        out.append(flat[start:start + size].reshape(np.shape(leaf)))
        start += size
    return tree_unflatten(treedef, out)


def _rel(a, b):
    """Normwise relative difference ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞) of two flat arrays (0 if both are 0)."""
    a, b = np.ravel(a), np.ravel(b)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    if not np.all(np.isfinite(a)):
        return float("inf")
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def _scalar(value, what):
    v = np.asarray(value.value if hasattr(value, "value") else value, dtype=np.float64)
    if v.size != 1:
        raise ValueError(f"{what} must return a scalar (one number), got an array of shape {v.shape}")
    return float(v.reshape(()))


# ============================================================================ exercise 1: SiLU's rules
EX1 = "3.3 ex. 1: SiLU rules"


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _silu(x):
    return x * _sigmoid(x)


def _rule_output(name, value, shape):
    """None if ``value`` is a float array of ``shape``, else a Feedback saying what came back."""
    if value is None:
        return Feedback(EX1, False, f"{name} returned None; it must return an array of shape {shape}")
    arr = np.asarray(value)
    if arr.shape != shape:
        return Feedback(EX1, False, f"{name} returned shape {arr.shape}; expected {shape} (SiLU acts elementwise)")
    return None


def check_silu_rules(student) -> Feedback:
    """Check a SiLU primitive, y = x·σ(x): forward, vjp, jvp and vjp_tangent, each against finite differences.

    ``student`` is a class written like the entries of :mod:`mamlnp.ops` (functions ``forward(x)``,
    ``vjp(i, g, out, inputs)``, ``jvp(i, t, out, inputs)``,
    ``vjp_tangent(i, g, out, out_tangent, inputs, input_tangents)``) or the Primitive built from it.
    """
    prim, problem = as_primitive(student, EX1, "check_silu_rules")
    if problem is not None:
        return problem
    rng = np.random.default_rng(20170703)
    shape = (4, 6)
    x = np.concatenate([np.linspace(-6.0, 6.0, 12), rng.uniform(-4.0, 4.0, 12)]).reshape(shape)
    g = rng.standard_normal(shape)  # an output cotangent ȳ
    t = rng.standard_normal(shape)  # an input tangent ẋ
    details = []

    out, stub = attempt(EX1, prim.forward, x)
    if stub is not None:
        return stub
    bad = _rule_output("forward", out, shape)
    if bad is not None:
        return bad
    err = _rel(out, _silu(x))
    details.append(f"forward: relative error {err:.1e} against x·σ(x)")
    if err > 1e-10:
        i = np.unravel_index(np.argmax(np.abs(np.asarray(out) - _silu(x))), shape)
        return Feedback(EX1, False, f"forward is wrong: at x = {x[i]:.4f} it gives {np.asarray(out)[i]:.6f}, "
                        f"but x·σ(x) = {_silu(x)[i]:.6f}", details)
    out = _silu(x)  # the rules below get the exact output, as the engine would give them

    eps = 1e-6
    slope = (_silu(x + eps) - _silu(x - eps)) / (2 * eps)  # dy/dx by central differences
    got, stub = attempt(EX1, prim.vjp, 0, g, out, (x,))
    if stub is not None:
        return stub
    bad = _rule_output("vjp", got, shape)
    if bad is not None:
        return bad
    err = _rel(got, g * slope)
    details.append(f"vjp: relative error {err:.1e} against ȳ·(finite-difference dy/dx)")
    if err > FD_RTOL:
        return Feedback(EX1, False, "vjp is wrong: x̄ must be ȳ·dy/dx, and for y = x·σ(x) the product rule gives "
                        "dy/dx = σ(x) + x·σ′(x) with σ′ = σ(1 − σ). Compare your vjp with finite differences "
                        f"of y (worst relative error {err:.2e}).", details)

    expected_jvp = (_silu(x + eps * t) - _silu(x - eps * t)) / (2 * eps)
    got, stub = attempt(EX1, prim.jvp, 0, t, out, (x,))
    if stub is not None:
        return stub
    bad = _rule_output("jvp", got, shape)
    if bad is not None:
        return bad
    err = _rel(got, expected_jvp)
    details.append(f"jvp: relative error {err:.1e} against (y(x + εẋ) − y(x − εẋ))/2ε")
    if err > FD_RTOL:
        return Feedback(EX1, False, "jvp is wrong: ẏ must be (dy/dx)·ẋ, the directional derivative of y along the "
                        f"tangent ẋ (worst relative error {err:.2e} against finite differences).", details)

    if prim.vjp_tangent is None:
        return Feedback(EX1, False, "vjp_tangent is None, which declares SiLU linear (its vjp would not depend on x). "
                        "But x̄ = ȳ·y′(x) changes with x: the rule must return ȳ·y″(x)·ẋ.", details)
    got, stub = attempt(EX1, prim.vjp_tangent, 0, g, out, expected_jvp, (x,), (t,))
    if stub is not None:
        return stub
    if got is None:
        return Feedback(EX1, False, "vjp_tangent returned None (a zero second-order term), but SiLU's second derivative "
                        "y″(x) is not zero: the rule must return ȳ·y″(x)·ẋ.", details)
    bad = _rule_output("vjp_tangent", got, shape)
    if bad is not None:
        return bad
    e2 = 1e-5
    vjp_plus = prim.vjp(0, g, _silu(x + e2 * t), (x + e2 * t,))
    vjp_minus = prim.vjp(0, g, _silu(x - e2 * t), (x - e2 * t,))
    expected = (np.asarray(vjp_plus) - np.asarray(vjp_minus)) / (2 * e2)  # d/dε of your (checked) vjp
    err = _rel(got, expected)
    details.append(f"vjp_tangent: relative error {err:.1e} against the finite-difference derivative of your vjp")
    if err > FD_RTOL:
        return Feedback(EX1, False, "vjp_tangent is wrong: it must be the derivative of your vjp, ȳ·y′(x), when x moves "
                        "along ẋ with ȳ held fixed, i.e. ȳ·y″(x)·ẋ. Differentiate y′ = σ + xσ(1 − σ) once more "
                        f"(worst relative error {err:.2e}).", details)

    # end to end: the primitive inside a small loss, through the engine's sweeps and broadcasting
    data = rng.standard_normal((6, 3))
    params = [rng.standard_normal((3, 2)), rng.standard_normal(2)]
    direction = [rng.standard_normal((3, 2)), rng.standard_normal(2)]

    def loss(p, xs):
        return ops.sum(ops.square(prim(ops.add(ops.matmul(xs, p[0]), p[1]))))

    for result in (check_grad(loss, params, data), check_hvp(loss, params, direction, data)):
        details.append(f"end to end, {result.what}: relative error {result.max_rel_error:.1e}")
        if not result:
            return Feedback(EX1, False, "each rule passes on its own, but the primitive fails inside a loss:\n"
                            + str(result), details)
    return Feedback(EX1, True, "forward, vjp, jvp and vjp_tangent all agree with finite differences, "
                    "and grad and hvp through your primitive are right.", details)


# ============================================================================ exercise 2: one-step meta-gradient
EX2 = "3.3 ex. 2: one-step MAML meta-gradient"


def _meta_cases():
    """(name, support_loss, query_loss, params, inner_lr): a quadratic and a small tanh network."""
    rng = np.random.default_rng(1994)
    cases = []

    a = rng.standard_normal((3, 3))
    curvature = a @ a.T + np.eye(3)
    c = rng.standard_normal((3, 1))
    b_q = rng.standard_normal((4, 3))
    d_q = rng.standard_normal((4, 1))

    def quad_support(theta):
        r = ops.sub(theta, c)
        return ops.mul(0.5, ops.sum(ops.mul(r, ops.matmul(curvature, r))))

    def quad_query(theta):
        return ops.sum(ops.softplus(ops.sub(ops.matmul(b_q, theta), d_q)))

    cases.append(("a quadratic support loss ½(θ−c)ᵀA(θ−c), softplus query loss, θ of shape (3, 1)",
                  quad_support, quad_query, rng.standard_normal((3, 1)), 0.1))

    params = nn.init_mlp([2, 5, 1], rng, scheme="glorot")
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in params]  # nonzero biases
    xs, xq = rng.uniform(-2, 2, (8, 2)), rng.uniform(-2, 2, (8, 2))
    ys, yq = np.sin(xs[:, :1]) + xs[:, 1:], np.sin(xq[:, :1]) + xq[:, 1:]

    def net_support(p):
        return losses.mse(nn.mlp(p, xs, "tanh"), ys)

    def net_query(p):
        return losses.mse(nn.mlp(p, xq, "tanh"), yq)

    cases.append(("a 2-5-1 tanh network, MSE on 8 support and 8 query points, params a list [W1, b1, W2, b2]",
                  net_support, net_query, params, 0.5))
    return cases


def _one_step_variants(support_loss, query_loss, params, inner_lr):
    """The right answer and the usual wrong ones, all as flat vectors, from dense Hessians."""
    g_s = grad(support_loss)(params)
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, g_s)
    g_q = _flat(grad(query_loss)(adapted))
    h = hessian(support_loss)(params)
    h_adapted = hessian(support_loss)(adapted)
    eye = np.eye(h.shape[0])
    right = (eye - inner_lr * h) @ g_q
    wrong = {
        "first_order": (g_q, "your answer equals ∇L_q(θ′), first-order MAML: the −αH_s(θ)∇L_q(θ′) term is missing"),
        "plus": ((eye + inner_lr * h) @ g_q, "your answer equals (I + αH)∇L_q(θ′): the sign of the Hessian term is "
                 "wrong (∂θ′/∂θ = I − α∇²L_s(θ) because θ′ = θ − α∇L_s(θ))"),
        "h_at_adapted": ((eye - inner_lr * h_adapted) @ g_q, "your answer uses the Hessian at θ′; the Jacobian of the "
                         "inner step θ′ = θ − α∇L_s(θ) contains ∇²L_s at θ, where the step started"),
        "no_alpha": ((eye - h) @ g_q, "your answer equals (I − H)∇L_q(θ′): the inner learning rate α is missing "
                     "in front of H"),
        "query_at_theta": ((eye - inner_lr * h) @ _flat(grad(query_loss)(params)),
                           "your answer evaluates ∇L_q at θ instead of at the adapted θ′ = θ − α∇L_s(θ)"),
        "support_at_adapted": ((eye - inner_lr * h) @ _flat(grad(support_loss)(adapted)),
                               "your answer multiplies the support gradient at θ′; the outer loss is the query loss"),
    }
    # the Hessian of the wrong loss: θ′ = θ − α∇L_s(θ) is built from the support loss, so its Jacobian is too
    query_hessian = ("your answer uses the Hessian of the query loss; the Jacobian of the inner step "
                     "θ′ = θ − α∇L_s(θ) contains the Hessian of the loss that step descends — the support loss")
    wrong["query_hessian_at_theta"] = ((eye - inner_lr * hessian(query_loss)(params)) @ g_q, query_hessian)
    wrong["query_hessian_at_adapted"] = ((eye - inner_lr * hessian(query_loss)(adapted)) @ g_q, query_hessian)
    return right, wrong


def check_one_step_meta_gradient(student_fn) -> Feedback:
    """Check ``student_fn(support_loss, query_loss, params, inner_lr)`` = (I − α∇²L_s(θ)) ∇L_q(θ − α∇L_s(θ)).

    ``support_loss``/``query_loss`` take ``params`` (an array or a list of arrays) and return a scalar; the
    answer must have the structure of ``params``. The reference is the same product with the dense Hessian.
    """
    if not callable(student_fn):
        raise TypeError(f"check_one_step_meta_gradient expects your function, got {type(student_fn).__name__}")
    details = []
    for name, support_loss, query_loss, params, inner_lr in _meta_cases():
        given = copy.deepcopy(params)
        result, stub = attempt(EX2, student_fn, support_loss, query_loss, given, inner_lr)
        if stub is not None:
            return stub
        if not all(np.array_equal(a, b) for a, b in zip(tree_flatten(given)[0], tree_flatten(params)[0])):
            return Feedback(EX2, False, f"on {name}: your function changed params in place; build new arrays "
                            "instead (e.g. mamlnp.pytree.tree_map(lambda p, g: p - inner_lr * g, params, grads))", details)
        try:
            check_same_structure(result, params, "your result")
        except ValueError as err:  # the student's answer has the wrong structure: that is the feedback
            return Feedback(EX2, False, f"on {name}: {err}", details)
        got = _flat(result)
        right, wrong = _one_step_variants(support_loss, query_loss, params, inner_lr)
        err = _rel(got, right)
        details.append(f"{name}: relative error {err:.1e}")
        if err > EXACT_RTOL:
            for candidate, message in wrong.values():
                if _rel(candidate, right) > 1e-6 and _rel(got, candidate) <= 1e-8:
                    return Feedback(EX2, False, f"on {name}: {message}.", details)
            # no recipe here (it would give the exercise away): say which ingredients to re-check
            return Feedback(EX2, False, f"on {name}: your meta-gradient differs from (I − αH_s(θ))∇L_q(θ′) by a "
                            f"relative {err:.2e}, and it is none of the usual mistakes this checker recognises. "
                            "Re-check each ingredient against the formula: which loss each gradient and the Hessian "
                            "belong to, the point each is evaluated at, the sign and the factor α.", details)
    return Feedback(EX2, True, "your meta-gradient equals (I − αH_s(θ))∇L_q(θ′) built from the dense Hessian, "
                    "without ever forming the Hessian yourself.", details)


# ============================================================================ exercise 3: when FO-MAML is exact
EX3 = "3.3 ex. 3: first-order MAML exact"
_EXAMPLE_KEYS = ("support_loss", "query_loss", "params", "inner_lr")


def _meta_objective(support_loss, query_loss, inner_lr):
    """F(θ) = L_q(θ − α∇L_s(θ)), evaluated without tracing (for finite differences)."""
    def objective(params):
        g_s = grad(support_loss)(params)
        adapted = tree_map(lambda p, g: p - inner_lr * g, params, g_s)
        return _scalar(query_loss(adapted), "query_loss")
    return objective


def check_first_order_exact(example_fn) -> Feedback:
    """Check ``example_fn()`` -> dict(support_loss, query_loss, params, inner_lr) on which FO-MAML is exact.

    Passes when the inner step moves θ, the meta-gradient is nonzero and matches finite differences of
    F(θ) = L_q(θ − α∇L_s(θ)), and the dropped term α H_s(θ) ∇L_q(θ′) vanishes (relative size ≤ 1e-9).
    """
    if not callable(example_fn):
        raise TypeError(f"check_first_order_exact expects your function, got {type(example_fn).__name__}")
    example, stub = attempt(EX3, example_fn)
    if stub is not None:
        return stub
    if not isinstance(example, dict) or any(k not in example for k in _EXAMPLE_KEYS):
        got = sorted(example) if isinstance(example, dict) else type(example).__name__
        return Feedback(EX3, False, f"your function must return a dict with keys {list(_EXAMPLE_KEYS)}; got {got}")
    support_loss, query_loss = example["support_loss"], example["query_loss"]
    params, inner_lr = example["params"], example["inner_lr"]
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float, np.floating)) or not (
            np.isfinite(inner_lr) and inner_lr > 0):
        return Feedback(EX3, False, f"inner_lr must be a positive finite number (α > 0), got {inner_lr!r}")
    inner_lr = float(inner_lr)
    theta = _flat(params)
    g_s = grad(support_loss)(params)
    step = inner_lr * np.linalg.norm(_flat(g_s))
    details = [f"inner step ‖α∇L_s(θ)‖ = {step:.3e} (‖θ‖ = {np.linalg.norm(theta):.3e})"]
    if step < 1e-3 * max(1.0, np.linalg.norm(theta)):
        return Feedback(EX3, False, "the inner step barely moves θ (‖α∇L_s(θ)‖ < 1e-3·max(1, ‖θ‖)). A tiny α or a zero "
                        "support gradient makes the gap small or empty for a trivial reason; find an example where "
                        "adaptation really changes θ and first-order MAML is still exact.", details)
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, g_s)
    first_order = grad(query_loss)(adapted)
    correction = hvp(support_loss)(params, first_order)
    g1 = _flat(first_order)
    g2 = g1 - inner_lr * _flat(correction)
    details.append(f"‖first-order meta-gradient‖ = {np.linalg.norm(g1):.3e}, ‖exact‖ = {np.linalg.norm(g2):.3e}")
    if np.linalg.norm(g2) < 1e-6:
        return Feedback(EX3, False, "the meta-gradient is (nearly) zero, so both versions agree trivially; choose θ or "
                        "the query loss so that the meta-gradient is not zero.", details)

    # the exact meta-gradient, checked against the meta-objective itself along random directions
    objective = _meta_objective(support_loss, query_loss, inner_lr)
    rng = np.random.default_rng(2018)
    eps = 1e-6
    for _ in range(3):
        v = rng.standard_normal(theta.size)
        v /= np.linalg.norm(v)
        fd = (objective(_unflat(theta + eps * v, params)) - objective(_unflat(theta - eps * v, params))) / (2 * eps)
        if abs(fd - g2 @ v) > 1e-6 * max(np.linalg.norm(g2), 1.0):
            return Feedback(EX3, False, "the meta-objective F(θ) = L_q(θ − α∇L_s(θ)) is not smooth at your θ (a kink, or "
                            "a loss not written with mamlnp.ops): its finite-difference slope "
                            f"{fd:.6e} differs from ⟨∇F, v⟩ = {g2 @ v:.6e}. Pick a point where both losses are twice "
                            "differentiable.", details)
    gap = np.linalg.norm(g2 - g1) / np.linalg.norm(g2)
    details.append(f"relative gap ‖g_MAML − g_FO‖/‖g_MAML‖ = {gap:.2e}")
    if gap > EXACT_RTOL:
        return Feedback(EX3, False, f"first-order MAML is not exact here: the dropped term α·H_s(θ)·∇L_q(θ′) has relative "
                        f"size {gap:.2e}. Exactness needs H_s(θ)∇L_q(θ′) = 0 — e.g. a support loss that is linear "
                        "in θ, or a query gradient in the null space of the support Hessian.", details)
    return Feedback(EX3, True, "first-order MAML is exact on your example: H_s(θ)∇L_q(θ′) = 0 while the inner step moves "
                    "θ and the meta-gradient is not zero (checked against finite differences of the meta-objective).",
                    details)


# ============================================================================ exercise 4: linear layer + MSE HVP
EX4 = "3.3 ex. 4: linear layer HVP"


def _linear_mse(params, x, y):
    """L(W, b) = (1/2n) Σ_i ‖x_i W + b − y_i‖², n = number of rows of x."""
    return ops.mul(0.5 / x.shape[0], ops.sum(ops.square(ops.sub(ops.add(ops.matmul(x, params[0]), params[1]), y))))


def check_linear_mse_hvp(student_fn) -> Feedback:
    """Check ``student_fn(W, b, V, c, X, Y) -> (HV_W, HV_b)``, the HVP of L(W, b) = (1/2n)‖XW + 1bᵀ − Y‖²
    along the direction (V, c), against the engine's ``hvp`` on problems of several shapes."""
    if not callable(student_fn):
        raise TypeError(f"check_linear_mse_hvp expects your function, got {type(student_fn).__name__}")
    rng = np.random.default_rng(1017)
    details = []
    for n, d_in, d_out in ((7, 3, 2), (5, 4, 1), (1, 2, 3)):
        w, b = rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out)
        v, c = rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out)
        x, y = rng.standard_normal((n, d_in)), rng.standard_normal((n, d_out))
        label = f"n={n}, X {x.shape}, W {w.shape}"
        result, stub = attempt(EX4, student_fn, w.copy(), b.copy(), v.copy(), c.copy(), x.copy(), y.copy())
        if stub is not None:
            return stub
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return Feedback(EX4, False, f"return a pair (HV_W, HV_b); got {type(result).__name__}", details)
        hw, hb = np.asarray(result[0], dtype=np.float64), np.asarray(result[1], dtype=np.float64)
        if hw.shape != w.shape or hb.shape != b.shape:
            return Feedback(EX4, False, f"({label}) HV_W must have W's shape {w.shape} and HV_b b's shape {b.shape}; "
                            f"got {hw.shape} and {hb.shape}", details)
        ew, eb = hvp(_linear_mse)([w, b], [v, c], x, y)
        err_w, err_b = _rel(hw, ew), _rel(hb, eb)
        details.append(f"{label}: relative error HV_W {err_w:.1e}, HV_b {err_b:.1e}")
        if max(err_w, err_b) <= EXACT_RTOL:
            continue
        residual = x @ w + b - y
        hints = [
            (n > 1 and _rel(hw, n * ew) <= 1e-8 and _rel(hb, n * eb) <= 1e-8,
             "your result is n times too large: L averages over the n rows, so H·v carries a factor 1/n"),
            (_rel(hw, 2 * ew) <= 1e-8 and _rel(hb, 2 * eb) <= 1e-8,
             "your result is twice too large: the ½ in L cancels the 2 from differentiating the square"),
            (_rel(hw, x.T @ residual / n) <= 1e-8,
             "HV_W equals the gradient Xᵀr/n: H·v is the derivative of the gradient along (V, c), not the gradient"),
            (err_w > EXACT_RTOL and _rel(hw, x.T @ (x @ v) / n) <= 1e-8,
             "HV_W misses the W–b cross term: the tangent of the residual is ṙ = XV + 1cᵀ, so HV_W = Xᵀ(XV + 1cᵀ)/n"),
            (err_b > EXACT_RTOL and _rel(hb, c) <= 1e-8,
             "HV_b misses the b–W cross term: HV_b = 1ᵀṙ/n with ṙ = XV + 1cᵀ, which also depends on V"),
        ]
        for applies, message in hints:
            if applies:
                return Feedback(EX4, False, f"({label}) {message}.", details)
        block = "HV_W" if err_w > EXACT_RTOL else "HV_b"
        return Feedback(EX4, False, f"({label}) {block} is wrong (relative error {max(err_w, err_b):.2e}). Write the "
                        "residual r = XW + 1bᵀ − Y, the gradient (Xᵀr/n, 1ᵀr/n), and differentiate it along (V, c).",
                        details)
    return Feedback(EX4, True, "your hand-derived H·v matches the engine on every shape; note it depends on X, V and c "
                    "only — the Hessian of a linear model with MSE is constant.", details)


# ============================================================================ exercise 5: a sin primitive (from 3.2)
EX5 = "3.3 ex. 5: sin primitive"


def _sign_hint(result):
    """A hint when the engine's answer in a CheckResult is a simple multiple of the finite-difference one."""
    return _ratio_hint(result.analytic, result.numeric)


def _ratio_hint(analytic, numeric):
    a = np.ravel(np.asarray(analytic, dtype=np.float64))
    n = np.ravel(np.asarray(numeric, dtype=np.float64))
    if not np.all(np.isfinite(a)) or not np.any(n):
        return []
    ratio = float(a @ n / (n @ n))
    if np.max(np.abs(a - ratio * n)) <= 1e-6 * np.max(np.abs(n)):
        if abs(ratio) < 1e-12:
            return ["your rule contributes nothing here: the engine's answer is exactly 0"]
        return [f"your answer is {ratio:.4g} × the right one" + (" — a sign error" if abs(ratio + 1) < 1e-6 else "")]
    return []


def check_sin_primitive(sin) -> Feedback:
    """Check a primitive y = sin x: forward, then each derivative rule through the engine.

    ``sin`` is the class (``forward(x)``, ``vjp(i, g, out, inputs)``, ``jvp(i, t, out, inputs)``,
    ``vjp_tangent(i, g, out, out_tangent, inputs, input_tangents)``) or the Primitive built from it with
    ``mamlnp.ops.primitive(cls, register=False)``.
    """
    prim, problem = as_primitive(sin, EX5, "check_sin_primitive")
    if problem:
        return problem
    rng = np.random.default_rng(3203)
    shape = (3, 4)
    x = rng.uniform(-3.0, 3.0, shape)
    weights = rng.standard_normal(shape)  # Σ c ⊙ sin x: a non-uniform cotangent ȳ = c reaches the vjp
    direction = rng.standard_normal(shape)
    details = []

    y, stub = attempt(EX5, prim, x)
    if stub is not None:
        return Feedback(EX5, False, "not attempted yet (forward still raises NotImplementedError)")
    y = np.asarray(getattr(y, "value", y))
    if y.shape != shape or not np.allclose(y, np.sin(x), rtol=1e-12, atol=1e-12):
        return Feedback(EX5, False, f"forward is wrong: for x of shape {shape} it returned shape {y.shape} with "
                        f"max |y − sin x| = {np.max(np.abs(y - np.sin(x))) if y.shape == shape else float('nan'):.2e}")

    def weighted(x):
        return ops.sum(ops.mul(weights, prim(x)))

    res, stub = attempt(EX5, check_grad, weighted, x)
    if stub is not None:
        return Feedback(EX5, False, "forward works; the vjp rule is not attempted yet (it raises NotImplementedError)")
    details.append(f"vjp: check_grad of Σ c ⊙ sin(x) — {res.max_rel_error:.1e}")
    if not res:
        return Feedback(EX5, False, "the vjp rule is wrong: the cotangent of x must be x̄ = ȳ ⊙ dy/dx, and the "
                        "finite differences of Σ c ⊙ sin(x) disagree with it", details + _sign_hint(res) + [str(res)])

    got, stub = attempt(EX5, jvp(prim), x, direction)
    if stub is not None:
        return Feedback(EX5, False, "forward and vjp work; the jvp rule is not attempted yet", details)
    tangent = np.asarray(got[1], dtype=np.float64)
    eps = 1e-6
    numeric = (np.sin(x + eps * direction) - np.sin(x - eps * direction)) / (2 * eps)
    err, where = relative_error(tangent, numeric, "ẏ") if tangent.shape == shape else (float("inf"), "shape")
    details.append(f"jvp: ẏ against (sin(x + εv) − sin(x − εv))/2ε — {err:.1e}")
    if not err <= FD_RTOL:
        hint = _ratio_hint(tangent, numeric) if tangent.shape == shape else []
        return Feedback(EX5, False, "the jvp rule is wrong: the output tangent must be ẏ = (dy/dx) ⊙ ẋ, the "
                        f"directional derivative along ẋ; worst at {where}", details + hint)

    if prim.vjp_tangent is None:
        return Feedback(EX5, False, "vjp_tangent is None, which declares sin linear (its vjp would not depend on "
                        "x). But x̄ = ȳ cos x changes when x moves: derive d(ȳ cos x) along ẋ", details)

    def squared(x):
        return ops.sum(ops.square(prim(x)))  # here R{ȳ} ≠ 0 too, and sin's output tangent feeds square's rule

    for label, f in (("Σ c ⊙ sin(x)", weighted), ("Σ sin(x)²", squared)):
        res, stub = attempt(EX5, check_hvp, f, x, direction)
        if stub is not None:
            return Feedback(EX5, False, "forward, vjp and jvp work; vjp_tangent (the second-order rule) is not "
                            "attempted yet", details)
        details.append(f"vjp_tangent: check_hvp of {label} — {res.max_rel_error:.1e}")
        if not res:
            return Feedback(EX5, False, "the second-order rule vjp_tangent is wrong: it must be the derivative of "
                            "your vjp, ȳ cos x, when x moves along ẋ (ȳ held fixed); the Hessian-vector product of "
                            f"{label} disagrees with finite differences of the gradient",
                            details + _sign_hint(res) + [str(res)])
    return Feedback(EX5, True, "forward, vjp, jvp and vjp_tangent all agree with finite differences "
                    f"(tolerance {FD_RTOL:.0e})", details)
