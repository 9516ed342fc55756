"""Omniglot figures: a grid of test tasks with the model's predictions, and accuracy against adaptation steps.

Each function builds a ``matplotlib.figure.Figure`` (no pyplot), saves it as a PNG at ``path`` (unless None) and
returns the Figure.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..algorithms.fewshot import adapted_accuracy, finetune_head_accuracy
from ..algorithms.maml import _inner_loop, _stack
from ..algorithms.protonet import prototypical_logits
from ..models.fewshot import classifier, classifier_loss, embed
from ..tasks.omniglot import OmniglotTasks
from .guard import write_figure
from .omniglot import DEFAULT_EVAL_SEED, _method_accuracy, summarize_accuracy

__all__ = ["plot_task_grid", "plot_accuracy_vs_steps", "predict", "first_layer_filters", "plot_filters",
           "embedding_coordinates", "plot_embeddings"]


def _save(fig, path):
    return write_figure(fig, path, dpi=100)


def _source(data, ways):
    """Episodes for figures: held-out alphabets if there are any, else the training characters (said in the title)."""
    if data.heldout is not None:
        return data.heldout, "held-out alphabets"
    return data.train, "training characters"


def predict(params, config, support, query, ways, steps=None):
    """Predicted query labels (T, Q) of a trained model (classifier: after ``steps`` inner steps, default the training S)."""
    algo = config["algorithm"]
    if algo == "protonet":
        xs, xq = support[0], query[0]
        emb = np.asarray(embed(params, np.concatenate([xs, xq], axis=1)))
        return np.argmax(np.asarray(prototypical_logits(emb[:, :xs.shape[1]], support[1], emb[:, xs.shape[1]:], ways)), -1)
    steps = config["inner_steps"] if steps is None else steps
    theta, _ = _inner_loop(classifier_loss, _stack(list(params), np.shape(support[0])[0]), support,
                           float(config["inner_lr"]), steps)
    return np.argmax(np.asarray(classifier(theta, query[0])), -1)


def plot_task_grid(params, config, data, path, *, tasks=4, seed=DEFAULT_EVAL_SEED, queries=6):
    """One row per test task: the support images (one per class, labelled), then query images with the model's
    predicted class (green: right, red: wrong)."""
    ways = config["ways"]
    source, where = _source(data, ways)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    support, query, _ = OmniglotTasks(source).sample(rng, tasks, ways, 1, 3)
    pred = predict(params, config, support, query, ways)
    pick = np.stack([rng.choice(query[0].shape[1], size=queries, replace=False) for _ in range(tasks)])
    fig = Figure(figsize=(1.0 * (ways + queries + 1), 1.15 * tasks))
    axes = fig.subplots(tasks, ways + queries + 1, squeeze=False)
    for t in range(tasks):
        for j in range(ways):
            ax = axes[t, j]
            ax.imshow(support[0][t, j].reshape(28, 28), cmap="gray_r")
            ax.set_title(f"class {j}", fontsize=8)
        axes[t, ways].axis("off")
        for c, q in enumerate(pick[t]):
            ax = axes[t, ways + 1 + c]
            ax.imshow(query[0][t, q].reshape(28, 28), cmap="gray_r")
            right = pred[t, q] == query[1][t, q]
            ax.set_title(f"→ {pred[t, q]}", fontsize=8, color="tab:green" if right else "tab:red")
        for ax in axes[t]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{ways}-way 1-shot test tasks ({where}): support | queries with predicted class", fontsize=9)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def plot_accuracy_vs_steps(models, data, path, *, tasks=200, seed=DEFAULT_EVAL_SEED, max_steps=10, ways=None,
                           shots=1):
    """Mean query accuracy (± 95% CI) after 0…max_steps inner SGD steps, one line per ``(label, params, config)``.

    ProtoNets do not adapt by steps and are drawn as a horizontal line; a pretrained body is drawn with a fresh head.
    """
    ways = ways or models[0][2]["ways"]
    source, where = _source(data, ways)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
    support, query, _ = OmniglotTasks(source).sample(rng, tasks, ways, shots, 15)
    steps = list(range(max_steps + 1))
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for i, (label, params, config) in enumerate(models):
        if config["algorithm"] == "protonet":
            s = summarize_accuracy(_method_accuracy(config, params, support, query, ways, 0))
            ax.axhline(s["accuracy"], color=f"C{i}", ls="--", label=f"{label} (no steps)")
            continue
        if config["algorithm"] == "pretrain":
            acc = finetune_head_accuracy(params[:-2], support, query, ways=ways, steps=steps)
        else:
            acc = adapted_accuracy(params, support, query, inner_lr=config["inner_lr"], steps=steps)
        rows = [summarize_accuracy(acc[s]) for s in steps]
        mean = np.array([r["accuracy"] for r in rows])
        ci = np.array([r["ci95"] for r in rows])
        ax.plot(steps, mean, "o-", color=f"C{i}", label=label, ms=3)
        ax.fill_between(steps, mean - ci, mean + ci, color=f"C{i}", alpha=0.2)
    ax.axhline(100 / ways, color="gray", lw=0.8, ls=":", label="chance")
    ax.set_xlabel("inner SGD steps at test time")
    ax.set_ylabel("query accuracy (%)")
    ax.set_title(f"{ways}-way {shots}-shot, {tasks} tasks from {where}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def first_layer_filters(params, count=8):
    """The ``count`` first-layer units with the largest weight norm, as 28×28 images (count, 28, 28)."""
    w = np.asarray(params[0])
    order = np.argsort(-np.linalg.norm(w, axis=0), kind="stable")[:count]
    return w[:, order].T.reshape(count, 28, 28)


def plot_filters(models, path=None, *, count=8):
    """One row per ``(label, params)``: its first-layer weights with the largest norms (red +, blue −)."""
    fig = Figure(figsize=(1.1 * count, 1.25 * len(models)))
    axes = fig.subplots(len(models), count, squeeze=False)
    for row, (label, params) in enumerate(models):
        for j, filt in enumerate(first_layer_filters(params, count)):
            ax = axes[row, j]
            lim = np.abs(filt).max() or 1.0
            ax.imshow(filt, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("first-layer weights (784 → 256), the units with the largest norms", fontsize=9)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def embedding_coordinates(features, dims=2):
    """Principal-component coordinates (n, dims) of features (n, d): centre, then project on the top singular vectors."""
    centred = np.asarray(features, dtype=np.float64) - np.mean(features, axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dims].T


def plot_embeddings(panels, labels, path=None):
    """Scatter the first two principal components of each ``(title, features (n, d))`` panel, coloured by ``labels``."""
    fig = Figure(figsize=(4.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, features) in zip(axes, panels):
        xy = embedding_coordinates(features)
        ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=12)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig
