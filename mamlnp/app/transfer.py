"""Multi-task learning against meta-learning on one task family (article §5.5), measured on the training tasks
and on new tasks.

A finite set of M sine tasks (Finn et al. 2017's family) is the training data: each task has ``points_per_task``
noiseless points. Four learners see exactly those points:

``independent``   one network per task, trained on that task's points only (nothing shared);
``pooled``        one network for all tasks' points pooled (:func:`mamlnp.meta.multitask_gradient`) — the
                  article's §4 loop, too; on a task it is used as is (0 steps) or fine-tuned;
``hard_sharing``  a shared body and one head per task (:mod:`mamlnp.algorithms.hard_sharing`); a new task gets
                  a new head fitted on its K points in closed form (ridge), the body frozen;
``maml``          MAML (:func:`mamlnp.meta.maml_gradient`) over the M tasks, each iteration splitting every task's
                  points at random into support and query; on a task it adapts with S SGD steps of α.

Evaluation: on each *training* task, the error on ``test_points`` fresh points of that task (adapting learners
use the task's training points); on ``new_tasks`` unseen tasks, the error on their test points after using K
support points (independent networks are then trained from scratch on those K points). Errors are per task, so
every comparison comes with a 95 % CI over tasks (:func:`mamlnp.evaluate.summarize`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..algorithms import hard_sharing
from ..algorithms.maml import _Step, adaptation_losses, maml_gradient, task_loss_fn
from ..algorithms.multitask import multitask_gradient
from ..models.nn import init_mlp, mlp
from ..models.optim import Adam
from ..tasks.sinusoid import SinusoidTasks

__all__ = ["TransferConfig", "make_tasks", "train_independent", "train_pooled", "train_maml", "run_transfer",
           "simulate_common_mean", "empirical_crossover"]


@dataclass(frozen=True)
class TransferConfig:
    train_tasks: int = 20          # M
    points_per_task: int = 20      # each training task's data
    new_tasks: int = 200
    k_new: int = 10                # K support points of a new task
    test_points: int = 100
    sizes: tuple = (1, 40, 40, 1)
    iterations: int = 5000         # Adam steps of pooled, hard sharing and MAML (full batch over the M tasks)
    lr: float = 1e-3
    independent_steps: int = 1000  # Adam steps of each independent network
    independent_lr: float = 1e-2
    inner_lr: float = 0.01         # α, MAML's and the fine-tuning step
    train_inner_steps: int = 1     # MAML's S during training
    eval_steps: int = 10           # S at evaluation (MAML, fine-tuned pooled)
    ridge: float = 1e-3            # new heads of hard sharing
    seed: int = 0

    def __post_init__(self):
        for name in ("train_tasks", "points_per_task", "new_tasks", "k_new", "test_points", "iterations",
                     "independent_steps", "eval_steps", "train_inner_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if name in (
                    "iterations", "independent_steps", "eval_steps", "train_inner_steps") else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name in ('iterations', 'independent_steps', 'eval_steps', 'train_inner_steps') else 'positive'} integer, got {value!r}")
        if self.points_per_task < 2:
            raise ValueError(f"points_per_task must be ≥ 2 (MAML splits them into support and query), got "
                             f"{self.points_per_task}")


def make_tasks(config):
    """``{"train": (x, y) (M, n, 1), "train_test": (x, y), "new_support": …, "new_test": …}`` from the seed."""
    family = SinusoidTasks()
    rng = np.random.default_rng([config.seed, 1])
    train, train_test, _ = family.sample(rng, config.train_tasks, config.points_per_task, config.test_points)
    new_support, new_test, _ = family.sample(np.random.default_rng([config.seed, 2]), config.new_tasks,
                                             config.k_new, config.test_points)
    return {"train": train, "train_test": train_test, "new_support": new_support, "new_test": new_test}


def _stacked_init(rng, count, sizes):
    nets = [init_mlp(list(sizes), rng, scheme="glorot") for _ in range(count)]
    return [np.stack([n[k] for n in nets]) for k in range(len(nets[0]))]


def train_independent(rng, data, *, steps, lr, sizes=(1, 40, 40, 1)):
    """One network per task (row of ``data``), each trained by Adam on its own points only: stacked params."""
    loss = task_loss_fn("mse", "relu")
    theta = _stacked_init(rng, data[0].shape[0], sizes)
    opt = Adam(lr=lr)
    state = opt.init(theta)
    for _ in range(steps):
        g = _Step(loss, theta, data[0], data[1]).grad()   # Σ over tasks: each network gets its own gradient
        theta, state = opt.update(g, state, theta)
    return theta


def train_pooled(rng, data, *, iterations, lr, sizes=(1, 40, 40, 1)):
    """One network on all tasks' points (the multi-task gradient, full batch, Adam)."""
    params = init_mlp(list(sizes), rng, scheme="glorot")
    half = data[0].shape[1] // 2
    support, query = (data[0][:, :half], data[1][:, :half]), (data[0][:, half:], data[1][:, half:])
    opt = Adam(lr=lr)
    state = opt.init(params)
    for _ in range(iterations):
        _, g = multitask_gradient(params, support, query)   # all of each task's points: the split is irrelevant
        params, state = opt.update(g, state, params)
    return params


def train_maml(rng, data, *, iterations, lr, inner_lr, inner_steps, sizes=(1, 40, 40, 1)):
    """MAML over the M tasks: each iteration every task's points are split at random into halves."""
    params = init_mlp(list(sizes), rng, scheme="glorot")
    tasks, n = data[0].shape[:2]
    half = n // 2
    opt = Adam(lr=lr)
    state = opt.init(params)
    rows = np.arange(tasks)[:, None]
    for _ in range(iterations):
        order = np.argsort(rng.random((tasks, n)), axis=1)  # an independent random permutation per task
        x, y = data[0][rows, order], data[1][rows, order]
        _, g = maml_gradient(params, (x[:, :half], y[:, :half]), (x[:, half:], y[:, half:]), inner_lr=inner_lr,
                             inner_steps=inner_steps)
        params, state = opt.update(g, state, params)
    return params


def _mse(pred, y):
    return np.mean((np.asarray(pred) - y) ** 2, axis=(-2, -1))


def run_transfer(config=TransferConfig()):
    """Train the four learners on the M training tasks and evaluate them; returns a dict of per-task errors.

    ``result["train_tasks"][name]`` (M,) and ``result["new_tasks"][name]`` (N,) for name in independent, pooled
    (0 steps), pooled_finetuned (``eval_steps`` steps of α), hard_sharing, maml (``eval_steps`` steps), maml_0.
    """
    c = config
    data = make_tasks(c)
    rng = np.random.default_rng([c.seed, 3])
    independent = train_independent(rng, data["train"], steps=c.independent_steps, lr=c.independent_lr, sizes=c.sizes)
    pooled = train_pooled(rng, data["train"], iterations=c.iterations, lr=c.lr, sizes=c.sizes)
    shared, shared_history = hard_sharing.train_shared(hard_sharing.init_shared(rng, c.train_tasks, c.sizes),
                                                       *data["train"], steps=c.iterations, lr=c.lr)
    maml = train_maml(rng, data["train"], iterations=c.iterations, lr=c.lr, inner_lr=c.inner_lr,
                      inner_steps=c.train_inner_steps, sizes=c.sizes)

    def adapted(params, support, test):
        out = adaptation_losses(params, support, test, inner_lr=c.inner_lr, steps=(0, c.eval_steps))
        return out[0], out[c.eval_steps]

    result = {"config": asdict(c), "train_tasks": {}, "new_tasks": {}}
    for split, support, test in (("train_tasks", data["train"], data["train_test"]),
                                 ("new_tasks", data["new_support"], data["new_test"])):
        r = result[split]
        if split == "train_tasks":
            r["independent"] = _mse(mlp(independent, test[0]), test[1])
            r["hard_sharing"] = _mse(hard_sharing.predict(shared, test[0]), test[1])
        else:
            fresh = train_independent(np.random.default_rng([c.seed, 4]), support, steps=c.independent_steps,
                                      lr=c.independent_lr, sizes=c.sizes)
            r["independent"] = _mse(mlp(fresh, test[0]), test[1])
            heads = hard_sharing.fit_heads(shared["body"], support, ridge=c.ridge)
            r["hard_sharing"] = _mse(hard_sharing.predict({"body": shared["body"], "heads": heads}, test[0]), test[1])
        r["pooled"], r["pooled_finetuned"] = adapted(pooled, support, test)
        r["maml_0"], r["maml"] = adapted(maml, support, test)
    result["shared_history"] = shared_history
    return result


# ---------------------------------------------------------------------------------------- the closed-form case
def simulate_common_mean(spreads, *, dim=5, k=20, noise=0.5, inner_lr=0.1, train_tasks=200, new_tasks=4000,
                         meta_iterations=300, seed=0):
    """Linear tasks around a common mean, for each σ in ``spreads``: learn from ``train_tasks`` tasks, test on new ones.

    Per σ: h_pool = pooled least squares on all training points; h_meta = MAML's h (one step of α =
    ``inner_lr``, :func:`mamlnp.meta.common_mean.meta_train_mean`). On ``new_tasks`` new tasks with K = ``k``
    points, the excess risks ‖ŵ − w_t‖² (per task, same tasks for every estimator) of: ``mean_only`` (h_pool),
    ``least_squares`` (the task alone), ``one_step`` (from h_meta, α) and ``best_step`` (from h_meta, the
    oracle α*(σ)); and each one's closed-form expectation given the learned h (``theory_*``).
    Returns ``{"spreads", name: (len(spreads), new_tasks), "theory_" + name: (len(spreads),), "bias_pooled",
    "bias_meta": ‖h − w̄‖² (len(spreads),)}``.
    """
    from ..algorithms import common_mean as cm
    from ..tasks.linear import LinearTasks

    mean = np.random.default_rng([seed, 0]).standard_normal(dim)
    names = ("mean_only", "least_squares", "one_step", "best_step")
    out = {"spreads": np.asarray(spreads, dtype=np.float64), "mean": mean}
    for name in names:
        out[name], out["theory_" + name] = [], []
    for i, spread in enumerate(out["spreads"]):
        family = LinearTasks(tuple(mean), float(spread), noise)
        rng = np.random.default_rng([seed, 1, i])
        support, query, _ = family.sample(rng, train_tasks, k, k)
        both = tuple(np.concatenate([s, q], axis=1) for s, q in zip(support, query))
        h_pool = cm.pooled_least_squares(both)
        h_meta = cm.meta_train_mean(support, query, inner_lr=inner_lr, iterations=meta_iterations)
        new_support, _, info = family.sample(np.random.default_rng([seed, 2, i]), new_tasks, k)
        w = info["weights"]
        best_lr = cm.best_inner_lr(spread, dim, k, noise)
        estimates = {"mean_only": np.broadcast_to(h_pool, w.shape), "least_squares": cm.least_squares(new_support),
                     "one_step": cm.one_step(h_meta, new_support, inner_lr),
                     "best_step": cm.one_step(h_meta, new_support, best_lr)}
        bias_pool, bias_meta = float(np.sum((h_pool - mean) ** 2)), float(np.sum((h_meta - mean) ** 2))
        theory = {"mean_only": cm.risk_mean_only(spread, dim, bias_pool),
                  "least_squares": cm.risk_least_squares(dim, k, noise),
                  "one_step": cm.risk_one_step(spread, dim, k, noise, inner_lr, bias_meta),
                  "best_step": cm.risk_one_step(spread, dim, k, noise, best_lr, bias_meta)}
        for name in names:
            out[name].append(cm.excess_risk(estimates[name], w))
            out["theory_" + name].append(theory[name])
        out.setdefault("bias_pooled", []).append(bias_pool)
        out.setdefault("bias_meta", []).append(bias_meta)
    return {key: np.asarray(value) for key, value in out.items()}


def empirical_crossover(spreads, difference):
    """The σ where the mean of ``difference`` (len(spreads), n) changes sign, by linear interpolation in log σ
    between the two grid points around the first sign change; ``nan`` if the sign never changes."""
    d = np.mean(difference, axis=1)
    change = np.flatnonzero(np.sign(d[:-1]) != np.sign(d[1:]))
    if change.size == 0:
        return float("nan")
    i = change[0]
    x0, x1 = np.log(spreads[i]), np.log(spreads[i + 1])
    return float(np.exp(x0 + (x1 - x0) * d[i] / (d[i] - d[i + 1])))
