"""The article's §4 loop in its own setting: permuted-label classification tasks and the training/evaluation
helpers of mamlnp.app.article_setting."""
import numpy as np
import pytest

from mamlnp.app.article_setting import classification_curves, mean_ci, train_classifier
from mamlnp.tasks import PermutedClassTasks


def test_tasks_have_the_article_shapes_and_a_fresh_label_permutation_per_task():
    family = PermutedClassTasks()
    (xs, ys), (xq, yq), info = family.sample(np.random.default_rng(0), 50, 2, 3)
    assert xs.shape == (50, 20, 64) and ys.shape == (50, 20) and xq.shape == (50, 30, 64) and yq.shape == (50, 30)
    assert np.issubdtype(ys.dtype, np.integer) and set(np.unique(ys)) == set(range(10))
    classes = info["classes"]
    assert all(len(set(row)) == 10 for row in classes) and classes.max() < family.train_classes
    # each example sits at its class centre plus noise: label j of task t is pool class classes[t, j]
    centre_of = family.centres[np.take_along_axis(classes, ys, axis=1)]
    assert (xs - centre_of).std() == pytest.approx(family.noise, rel=0.05)
    # one pool class carries different labels in different tasks (the permutation)
    labels_of_class = {int(c): set() for c in np.unique(classes)}
    for row in classes:
        for label, c in enumerate(row):
            labels_of_class[int(c)].add(label)
    assert max(len(s) for s in labels_of_class.values()) > 3
    _, _, test_info = family.sample(np.random.default_rng(0), 20, 1, split="test")
    assert test_info["classes"].min() >= family.train_classes


def test_same_seed_same_tasks_and_bad_input_is_named():
    family = PermutedClassTasks()
    a = family.sample(np.random.default_rng(3), 2, 1)
    b = family.sample(np.random.default_rng(3), 2, 1)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        family.sample(np.random.default_rng(0), 2, 1, split="val")
    with pytest.raises(ValueError, match="test split has 5 classes but a task needs ways = 10"):
        PermutedClassTasks(classes=155, train_classes=150)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        family.sample(0, 2, 1)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        train_classifier("mamll", iters=1, meta_batch=1)


def test_article_loop_is_multitask_training_bit_for_bit_in_its_own_setting():
    article = train_classifier("article", iters=20, meta_batch=1, same_data=True, seed=1)
    multitask = train_classifier("multitask", iters=20, meta_batch=1, same_data=True, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(article["params"], multitask["params"]))
    np.testing.assert_array_equal(article["loss_history"], multitask["loss_history"])


def test_maml_learns_to_adapt_where_multitask_training_stays_at_chance():
    # α = 0.1 learns in 100 iterations (the chapter's full run uses the article's α = 0.01, which needs ~1000)
    settings = dict(iters=100, meta_batch=5, inner_lr=0.1, inner_steps=5, seed=0)
    runs = {name: train_classifier(name, **settings)["params"] for name in ("maml", "multitask")}
    curves = {name: classification_curves(p, steps=(0, 5), tasks=200, inner_lr=0.1) for name, p in runs.items()}
    for name in runs:  # before adapting: chance (1/10) for every model, the labels being permuted per task
        mean, ci = mean_ci(curves[name][0]["accuracy"])
        assert abs(mean - 0.1) < max(2 * ci, 0.02), (name, mean, ci)
    maml_after, _ = mean_ci(curves["maml"][5]["accuracy"])
    multitask_after, _ = mean_ci(curves["multitask"][5]["accuracy"])
    assert maml_after > 0.8 and multitask_after < 0.5, (maml_after, multitask_after)
    # the loss is the cross-entropy of the same logits: log 10 at chance
    assert np.mean(curves["multitask"][0]["loss"]) == pytest.approx(np.log(10), rel=0.1)
