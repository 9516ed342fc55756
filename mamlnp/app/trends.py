"""The experiments of chapter 7 (article §7, 总结：未来发展趋势与挑战): generalisation, curvature, initialisation.

==========================  =================================================================================
:func:`meta_train`          a minimal meta-training loop (Adam on any registered algorithm, any task sampler);
                            no checkpoints — the studies are short; the CLI's ``train`` is the full loop
:func:`pool_study`          meta-overfitting: test error against the number of distinct meta-training tasks
:func:`ood_errors`          error on tasks outside the training ranges (amplitudes, phases)
:func:`sharpness`           λ_max of each task's support-loss Hessian, by power iteration on HVPs (per task,
                            vectorised over tasks)
:func:`diverging_fraction`  how often repeated test-time steps make a task worse than not adapting at all
:func:`edge_of_stability`   α·λ_max during MAML training, for several α and seeds
:func:`first_order_gap`     how far first-order MAML's gradient is from MAML's, and the dropped term's size
==========================  =================================================================================

Every function takes explicit seeds; the same arguments give the same numbers.
"""
from __future__ import annotations

import numpy as np

from ..algorithms import ALGORITHMS, adaptation_losses, maml_gradient
from ..algorithms.maml import _Step, _stack, task_loss_fn
from ..models.nn import init_mlp
from ..models.optim import Adam
from ..tasks import SinusoidTaskPool, SinusoidTasks
from .evaluate import make_test_tasks, summarize

__all__ = ["meta_train", "pool_study", "ood_errors", "sharpness", "diverging_fraction", "edge_of_stability", "BLOWN_UP",
           "first_order_gap", "OOD_FAMILIES"]

SIZES = (1, 40, 40, 1)

# test distributions: the training ranges, and ranges the training never saw
OOD_FAMILIES = {
    "in range (A∈[0.1,5], φ∈[0,π])": SinusoidTasks(),
    "larger amplitudes (A∈[5,10])": SinusoidTasks(amplitude_range=(5.0, 10.0)),
    "other phases (φ∈[π,2π])": SinusoidTasks(phase_range=(np.pi, 2 * np.pi)),
}


def meta_train(algorithm="maml", *, iters, sampler=None, inner_lr=0.01, inner_steps=1, meta_batch=25, k=10,
               meta_lr=1e-3, seed=0, init="maml", dtype=np.float64, every=0, on_record=None):
    """Meta-train the paper's 1-40-40-1 ReLU network; return ``{"params", "losses", "records"}``.

    ``sampler`` is a task family with ``.sample(rng, meta_batch, k_support, k_query)`` (default: fresh
    sinusoids). The initialisation and then the meta-batches come from ``default_rng(seed)``. Every
    ``every`` iterations (and at 0), ``on_record(iteration, params)`` is called and its result kept in
    ``records``. ``algorithm`` is a name in :data:`mamlnp.meta.ALGORITHMS` (not Meta-SGD, whose state is larger).
    """
    if algorithm not in ALGORITHMS or algorithm == "metasgd":
        raise ValueError(f"algorithm must be one of {sorted(set(ALGORITHMS) - {'metasgd'})}, got {algorithm!r}")
    rng = np.random.default_rng(seed)
    params = init_mlp(list(SIZES), rng, scheme=init, dtype=dtype)
    sampler = SinusoidTasks() if sampler is None else sampler
    gradient = ALGORITHMS[algorithm]
    optimizer = Adam(meta_lr)
    state = optimizer.init(params)
    losses, records = np.zeros(iters), []
    for it in range(iters):
        if every and on_record is not None and it % every == 0:
            records.append((it, on_record(it, params)))
        support, query, _ = sampler.sample(rng, meta_batch, k, k, dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grads = gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps)
        losses[it] = loss
        if not np.isfinite(loss) or any(not np.all(np.isfinite(g)) for g in grads):
            raise FloatingPointError(f"{algorithm} (α={inner_lr}, seed {seed}) diverged at iteration {it + 1}")
        params, state = optimizer.update(grads, state, params)
    if every and on_record is not None:
        records.append((iters, on_record(iters, params)))
    return {"params": params, "losses": losses, "records": records}


def _test_errors(params, family, *, tasks, seed, k=10, steps=(0, 1, 10), inner_lr=0.01):
    """Per-task query MSEs ``{S: (tasks,)}``; a task whose inner loop overflowed (NaN) counts as +inf, so that
    medians and counts stay meaningful and the mean says plainly that something blew up."""
    support, query, _ = make_test_tasks(seed, tasks, k, task_family=family)
    with np.errstate(over="ignore", invalid="ignore"):
        errors = adaptation_losses(params, support, query, inner_lr=inner_lr, steps=steps)
    return {s: np.where(np.isnan(e), np.inf, e) for s, e in errors.items()}


def pool_study(pool_sizes, *, iters, tasks=300, seed=0, eval_seed=2017, inner_lr=0.01, k=10):
    """MAML trained on a finite pool of ``n`` sines (``None``: fresh sines every batch), for each n.

    Returns rows ``{"pool", "train", "test", "params"}``: mean query MSE after one step on K = ``k`` points, on new
    inputs of the pool's own sines ("train": what the meta-learner saw) and on ``tasks`` new sines ("test").
    The gap test − train is meta-overfitting: memorising the tasks instead of learning to adapt.
    """
    rows = []
    for n in pool_sizes:
        pool = None if n is None else SinusoidTaskPool.draw(np.random.default_rng([seed, 99]), n)
        run = meta_train("maml", iters=iters, sampler=pool, inner_lr=inner_lr, seed=seed, k=k)
        test = summarize(_test_errors(run["params"], SinusoidTasks(), tasks=tasks, seed=eval_seed, k=k,
                                      steps=(1,), inner_lr=inner_lr)[1])
        if pool is None:
            train = test
        else:  # the pool's own sines at fresh inputs (the same seeded inputs for every pool)
            support, query, _ = pool.sample(np.random.default_rng([eval_seed, 7]), tasks, k, 100)
            train = summarize(adaptation_losses(run["params"], support, query, inner_lr=inner_lr, steps=(1,))[1])
        rows.append({"pool": "unlimited" if n is None else int(n), "train": train, "test": test,
                     "params": run["params"]})
    return rows


def ood_errors(models, *, tasks=300, seed=2017, k=10, steps=(0, 1, 10), inner_lr=0.01, families=None):
    """``{family: {model: {steps: summary}}}`` — each model's query MSE on each test family after S steps."""
    families = OOD_FAMILIES if families is None else families
    out = {}
    for fname, family in families.items():
        out[fname] = {}
        for mname, params in models.items():
            errors = _test_errors(params, family, tasks=tasks, seed=seed, k=k, steps=steps, inner_lr=inner_lr)
            out[fname][mname] = {s: summarize(errors[s]) for s in steps}
    return out


def sharpness(params, support, *, iters=30, seed=0, activation="relu"):
    """λ_max of every task's support-loss Hessian ∇²L_i^support(θ), shape (T,), by power iteration.

    One recorded evaluation of Σ_i L_i at θ stacked per task gives every task's Hessian-vector product at
    once (the sum separates over tasks). Power iteration finds the eigenvalue of largest magnitude; the
    Rayleigh quotient vᵀHv of the final unit vector is returned (for these ReLU/MSE Hessians the dominant
    eigenvalue is the largest positive one — the Gauss–Newton part dominates).
    """
    params = list(params)
    task_count = len(support[0])
    step = _Step(task_loss_fn("mse", activation), _stack(params, task_count), support[0], support[1])
    step.grad()
    rng = np.random.default_rng(seed)
    v = [rng.standard_normal((task_count,) + np.shape(p)) for p in params]

    def normalise(vs):
        norm = np.sqrt(sum(np.sum(x.reshape(task_count, -1) ** 2, axis=1) for x in vs))
        return [x / norm.reshape((-1,) + (1,) * (x.ndim - 1)) for x in vs]

    v = normalise(v)
    for _ in range(iters):
        v = normalise(step.hvp(v))
    hv = step.hvp(v)
    return sum(np.sum((a * b).reshape(task_count, -1), axis=1) for a, b in zip(v, hv))


BLOWN_UP = 100.0  # query MSE beyond this is divergence: no in-range sine has an unadapted MSE near it (A ≤ 5)


def diverging_fraction(params, *, inner_lr, steps=10, tasks=300, seed=2017, k=5):
    """``{"worse", "blown_up", "median"}`` after ``steps`` plain SGD steps of ``inner_lr`` on ``tasks`` test tasks:
    the fraction whose query MSE exceeds their MSE before adapting (which also happens without divergence, by
    over-fitting K points), the fraction that diverged (MSE above :data:`BLOWN_UP` or overflowed), and the
    median MSE (an overflowed task counts as +inf)."""
    errors = _test_errors(params, SinusoidTasks(), tasks=tasks, seed=seed, k=k, steps=(0, steps), inner_lr=inner_lr)
    return {"worse": float(np.mean(~(errors[steps] <= errors[0]))),
            "blown_up": float(np.mean(~(errors[steps] <= BLOWN_UP))), "median": float(np.median(errors[steps]))}


def edge_of_stability(inner_lrs, seeds, *, iters, every, tasks=50, k=5, power_iters=20, dtype=np.float64):
    """For each (α, seed): MAML training, with α·λ_max(H_support) of ``tasks`` fixed K-point test tasks every
    ``every`` iterations. Returns rows ``{"inner_lr", "seed", "iterations", "alpha_lambda" (n_records, tasks),
    "after_10"}`` (after training, :func:`diverging_fraction` of 300 tasks, K = ``k``, ten steps of α)."""
    support, _, _ = make_test_tasks(2017, tasks, k)
    support = (support[0].astype(dtype), support[1].astype(dtype))
    rows = []
    for inner_lr in inner_lrs:
        for seed in seeds:
            record = lambda it, p, a=inner_lr: a * sharpness([np.asarray(x, np.float64) for x in p],  # noqa: E731
                                                             (support[0].astype(np.float64),
                                                              support[1].astype(np.float64)),
                                                             iters=power_iters)
            try:
                run = meta_train("maml", iters=iters, inner_lr=inner_lr, seed=seed, every=every, on_record=record,
                                 dtype=dtype)
            except FloatingPointError as err:
                rows.append({"inner_lr": inner_lr, "seed": seed, "error": str(err)})
                continue
            after = diverging_fraction([np.asarray(x, np.float64) for x in run["params"]], inner_lr=inner_lr, k=k)
            rows.append({"inner_lr": inner_lr, "seed": seed, "iterations": [it for it, _ in run["records"]],
                         "alpha_lambda": np.array([r for _, r in run["records"]]), "after_10": after,
                         "dtype": np.dtype(dtype).name})
    return rows


def first_order_gap(params, support, query, *, inner_lr=0.01):
    """``(cosine, relative_dropped)``: the cosine between MAML's and first-order MAML's meta-gradients, and
    ‖MAML − FOMAML‖ / ‖FOMAML‖ — the size of the dropped term α H ∇L^query relative to what is kept."""
    _, g2 = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=1)
    _, g1 = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=1, order=1)
    a = np.concatenate([g.ravel() for g in g2])
    b = np.concatenate([g.ravel() for g in g1])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))), float(np.linalg.norm(a - b) / np.linalg.norm(b))
