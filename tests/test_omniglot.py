"""Omniglot (article §5.1): the loader, the task sampler, the classifier with per-task normalization, prototypical
networks, the test-time baselines, and the training job.

Tests that read the real data use ``../shared/data/omniglot`` (beside the repository) and skip, saying why, when
it is absent; everything else runs on synthetic images and small networks.
"""
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mamlnp
from mamlnp import ops
from mamlnp.algorithms import adapt, fomaml_gradient, maml_gradient
from mamlnp.algorithms.fewshot import (adapted_accuracy, finetune_head_accuracy, pixel_nn_accuracy, protonet_accuracy,
                                       scratch_accuracy)
from mamlnp.algorithms.protonet import prototypes, prototypical_logits, protonet_gradient, protonet_loss
from mamlnp.engine.checks import check_grad, check_hvp
from mamlnp.models.fewshot import classifier, classifier_loss, embed, init_classifier, task_normalize
from mamlnp.tasks import omniglot as og

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
needs_data = pytest.mark.skipif(not (DATA / "images_background_small1.zip").is_file(),
                                reason=f"the shared Omniglot files are not at {DATA} (../shared/data/omniglot beside "
                                       "the repository); the project never commits the data")


# ------------------------------------------------------------------------------------------------ helpers
def _png(rng, size=105):
    from PIL import Image
    bits = rng.random((size, size)) > 0.1
    im = Image.fromarray(bits.astype(np.uint8) * 255).convert("1")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _fake_split(path, rng, alphabets=2, characters=2, drawings=20):
    with zipfile.ZipFile(path, "w") as z:
        for a in range(alphabets):
            for c in range(characters):
                for d in range(drawings):
                    z.writestr(f"{Path(path).stem}/Alpha{a}/character{c + 1:02d}/{a}{c:02d}_{d + 1:02d}.png", _png(rng))
    return path


def _synthetic(rng, alphabets=3, per_alphabet=6):
    c = alphabets * per_alphabet
    return og.Alphabets(rng.integers(0, 256, (c, 20, 28, 28), dtype=np.uint8),
                        np.repeat(np.arange(alphabets), per_alphabet), tuple(f"A{i}" for i in range(alphabets)),
                        tuple(f"A{i // per_alphabet}/character{i:02d}" for i in range(c)), "synthetic")


def _episode(rng, tasks=2, ways=3, shots=2, queries=2, d=6):
    ys = np.tile(np.repeat(np.arange(ways), shots), (tasks, 1))
    yq = np.tile(np.repeat(np.arange(ways), queries), (tasks, 1))
    return (rng.standard_normal((tasks, ways * shots, d)), ys), (rng.standard_normal((tasks, ways * queries, d)), yq)


# ------------------------------------------------------------------------------------------------ loader
def test_reading_a_split_builds_arrays_and_a_cache_keyed_by_checksum(tmp_path, rng):
    zpath = _fake_split(tmp_path / "mine.zip", rng)
    found = og.load_alphabets(zpath, cache_dir=tmp_path / "cache")
    assert found.images.shape == (4, 20, 28, 28) and found.images.dtype == np.uint8
    assert found.alphabets == ("Alpha0", "Alpha1") and list(found.alphabet_of) == [0, 0, 1, 1]
    assert set(np.unique(found.images)) <= {0, 255}  # the reference resize of a 1-bit PNG is nearest-neighbour
    caches = list((tmp_path / "cache").glob("mine-*.npz"))
    assert len(caches) == 1 and og.sha256_file(zpath)[:16] in caches[0].name
    again = og.load_alphabets(zpath, cache_dir=tmp_path / "cache")  # served from the cache
    np.testing.assert_array_equal(again.images, found.images)
    _fake_split(zpath, np.random.default_rng(1))  # new bytes, new key: the stale cache is never used
    changed = og.load_alphabets(zpath, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("mine-*.npz"))) == 2
    assert not np.array_equal(changed.images, found.images)


def test_lanczos_option_gives_grey_levels(tmp_path, rng):
    zpath = _fake_split(tmp_path / "mine.zip", rng, alphabets=1, characters=1)
    grey = og.load_alphabets(zpath, cache_dir=tmp_path, resample="lanczos")
    assert len(np.unique(grey.images)) > 2
    with pytest.raises(ValueError, match="resample must be one of"):
        og.load_alphabets(zpath, cache_dir=tmp_path, resample="bicubic")


def test_full_split_structure_is_verified(tmp_path, rng):
    zpath = _fake_split(tmp_path / "images_evaluation.zip", rng)
    with pytest.raises(og.OmniglotError, match="found 2 alphabets, 4 characters.*official file has 20, 659"):
        og.load_alphabets(zpath, cache_dir=tmp_path / "cache")


def test_a_character_with_missing_drawings_is_refused(tmp_path, rng):
    zpath = _fake_split(tmp_path / "mine.zip", rng, alphabets=1, characters=1, drawings=19)
    with pytest.raises(og.OmniglotError, match="must have 20 drawings"):
        og.load_alphabets(zpath, cache_dir=tmp_path)


def test_wrong_checksum_and_missing_file_say_what_to_do(tmp_path, rng):
    fake = _fake_split(tmp_path / "images_background_small1.zip", rng, alphabets=1, characters=1)
    with pytest.raises(og.OmniglotError, match="SHA-256 .* expected f38eb80f"):
        og.load_alphabets(fake, cache_dir=tmp_path)
    with pytest.raises(og.OmniglotError, match=r"images_background_small2.zip.*place it.*still zipped, at"):
        og.load_alphabets(tmp_path / "images_background_small2.zip", cache_dir=tmp_path)


def test_failed_download_names_the_file_and_the_place(tmp_path):
    with pytest.raises(og.OmniglotError, match=r"could not download images_background.zip.*place it.*"
                                               + str(tmp_path / "images_background.zip").replace("\\", "\\\\")):
        og.download("images_background.zip", tmp_path, url=(tmp_path / "nowhere.zip").as_uri())
    assert not list(tmp_path.glob(".*part"))
    with pytest.raises(ValueError, match="name must be one of"):
        og.download("mnist.zip", tmp_path)


@needs_data
def test_shared_minimal_splits_have_the_documented_structure(tmp_path):
    small1 = og.load_alphabets(DATA / "images_background_small1.zip", cache_dir=tmp_path)
    small2 = og.load_alphabets(DATA / "images_background_small2.zip", cache_dir=tmp_path)
    assert small1.counts() == (5, 136, 20) and small2.counts() == (5, 156, 20)
    heldout = small2.without(small1)
    assert heldout.alphabets == ("Japanese_(katakana)", "Sanskrit", "Tagalog") and heldout.num_characters == 106
    merged = small1.merge(small2)
    assert merged.counts() == (8, 242, 20)  # Greek and Latin are in both minimal splits: counted once
    ink = small1.images.mean() / 255
    assert 0.02 < ink < 0.2  # ink is 1 and paper 0 (inverted as in the reference), strokes are thin


@needs_data
def test_lake_runs_pair_every_test_item_with_one_training_class(tmp_path):
    runs = og.load_lake_runs(DATA / "all_runs.zip", cache_dir=tmp_path)
    assert runs.support.shape == runs.query.shape == (20, 20, 28, 28)
    for labels in runs.query_labels:  # each run's 20 test items use each of its 20 classes once
        assert sorted(labels) == list(range(20))
    assert runs.query_labels[0, 0] == 7  # run01/test/item01.png ↔ run01/training/class08.png
    (xs, ys), (xq, yq) = runs.episodes()
    assert xs.shape == (20, 20, 784) and xs.dtype == np.float32 and 0 <= xs.min() and xs.max() <= 1


# ------------------------------------------------------------------------------------------------ sampler
def test_sampler_shapes_labels_and_distinct_characters(rng):
    data = _synthetic(rng)
    support, query, info = og.OmniglotTasks(data).sample(np.random.default_rng(0), 7, 5, 2, 3)
    assert support[0].shape == (7, 10, 784) and query[0].shape == (7, 15, 784) and support[0].dtype == np.float32
    assert (support[1] == np.repeat(np.arange(5), 2)).all() and (query[1] == np.repeat(np.arange(5), 3)).all()
    assert all(len(set(c)) == 5 for c in info["characters"])
    assert all(len(set(d)) == 5 for d in info["drawings"].reshape(-1, 5))  # support and query drawings differ
    c, d = info["characters"][3, 2], info["drawings"][3, 2]  # the images are the ones the info names
    np.testing.assert_array_equal(support[0][3, 4:6], og.to_inputs(data.images[c, d[:2]]))
    np.testing.assert_array_equal(query[0][3, 6:9], og.to_inputs(data.images[c, d[2:]]))
    again = og.OmniglotTasks(data).sample(np.random.default_rng(0), 7, 5, 2, 3)
    np.testing.assert_array_equal(again[0][0], support[0])  # same seed, same tasks


def test_within_alphabet_tasks_use_one_alphabet(rng):
    data = _synthetic(rng, alphabets=4, per_alphabet=5)
    _, _, info = og.OmniglotTasks(data, within_alphabet=True).sample(rng, 50, 5, 1, 1)
    alph = data.alphabet_of[info["characters"]]
    assert (alph == alph[:, :1]).all() and len(np.unique(alph[:, 0])) > 1
    _, _, info = og.OmniglotTasks(data).sample(rng, 50, 5, 1, 1)
    assert (data.alphabet_of[info["characters"]].std(axis=1) > 0).any()  # unstructured tasks mix alphabets
    with pytest.raises(ValueError, match="no alphabet has 6 characters"):
        og.OmniglotTasks(data, within_alphabet=True).sample(rng, 2, 6, 1, 1)


def test_rotations_turn_whole_classes_by_quarter_turns(rng):
    data = _synthetic(rng)
    support, query, info = og.OmniglotTasks(data, rotate=True).sample(rng, 20, 3, 1, 2)
    assert set(np.unique(info["turns"])) == {0, 1, 2, 3}
    for t in (0, 7):
        for j in range(3):
            c, d, k = info["characters"][t, j], info["drawings"][t, j], info["turns"][t, j]
            want = np.rot90(data.images[c, d[0]], k)
            np.testing.assert_array_equal(support[0][t, j].reshape(28, 28), want.astype(np.float32) / 255)
            np.testing.assert_array_equal(query[0][t, 2 * j + 1].reshape(28, 28),
                                          np.rot90(data.images[c, d[2]], k).astype(np.float32) / 255)
    with pytest.raises(ValueError, match="quarter_turns must have shape"):
        og.rotate_images(np.zeros((2, 28, 28)), [1])


def test_sampler_rejects_bad_requests(rng):
    tasks = og.OmniglotTasks(_synthetic(rng))
    with pytest.raises(ValueError, match="shots \\+ queries = 21"):
        tasks.sample(rng, 2, 5, 1, 20)
    with pytest.raises(ValueError, match="ways must be a positive integer, got 0"):
        tasks.sample(rng, 2, 0, 1, 1)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        tasks.sample(0, 2, 5, 1, 1)
    with pytest.raises(ValueError, match="ways = 19 exceeds the 18 characters"):
        tasks.sample(rng, 2, 19, 1, 1)


# ------------------------------------------------------------------------------------------------ the model
def test_task_normalize_is_per_task_and_its_derivatives_check(rng):
    z = rng.standard_normal((3, 5, 4)) * 3 + 2
    out = np.asarray(task_normalize(z))
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=1), z.var(axis=1) / (z.var(axis=1) + 1e-3))
    f = lambda p: ops.sum(ops.mul(task_normalize(p), np.sin(np.arange(60.0)).reshape(3, 5, 4)))
    assert check_grad(f, z)
    assert check_hvp(f, z, rng.standard_normal(z.shape))


def test_classifier_shapes_and_float32(rng):
    params = init_classifier(rng, 5)
    assert [p.shape for p in params[::2]] == [(784, 256), (256, 128), (128, 64), (64, 64), (64, 5)]
    assert all(p.dtype == np.float32 for p in params)
    x = rng.random((2, 7, 784)).astype(np.float32)
    assert np.asarray(classifier(params, x)).shape == (2, 7, 5) and np.asarray(classifier(params, x)).dtype == np.float32
    assert np.asarray(embed(params[:-2], x)).shape == (2, 7, 64)


def _bilevel(params, support, query, inner_lr, inner_steps):
    adapted = adapt(params, support, inner_lr=inner_lr, inner_steps=inner_steps, task_loss=classifier_loss)
    return float(np.mean(classifier_loss(adapted, *query)))


def test_maml_meta_gradient_of_the_classifier_matches_finite_differences(rng):
    """FD of L_meta(θ) = mean_i L_i^query(θ_i^(S)) along random directions; FOMAML must fail the same check."""
    support, query = _episode(rng)
    params = [p * 40 + 0.2 * rng.standard_normal(p.shape) for p in init_classifier(rng, 3, inputs=6, hidden=(5, 4),
                                                                                   dtype=np.float64)]
    kw = dict(inner_lr=0.5, inner_steps=2)
    _, exact = maml_gradient(params, support, query, task_loss=classifier_loss, **kw)
    _, first = fomaml_gradient(params, support, query, task_loss=classifier_loss, **kw)
    eps = 1e-6
    for _ in range(3):
        v = [rng.standard_normal(p.shape) for p in params]
        fd = (_bilevel([p + eps * d for p, d in zip(params, v)], support, query, **kw)
              - _bilevel([p - eps * d for p, d in zip(params, v)], support, query, **kw)) / (2 * eps)
        assert sum(np.sum(g * d) for g, d in zip(exact, v)) == pytest.approx(fd, rel=1e-5, abs=1e-8)
    assert sum(np.sum(g * d) for g, d in zip(first, v)) != pytest.approx(fd, rel=1e-3)  # the check can fail


# ------------------------------------------------------------------------------------------------ ProtoNets
def test_prototypical_logits_are_negative_squared_distances_to_class_means(rng):
    es, eq = rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 4, 3))
    ys = np.array([[0, 1, 2, 0, 1, 2], [2, 2, 1, 0, 0, 1]])
    logits = np.asarray(prototypical_logits(es, ys, eq, 3))
    for t in range(2):
        for k in range(3):
            c = es[t][ys[t] == k].mean(axis=0)
            np.testing.assert_allclose(logits[t, :, k], -np.sum((eq[t] - c) ** 2, axis=-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(prototypes(es, ys, 3))[1, 2], es[1, :2].mean(0))


def test_prototypical_logits_refuse_a_class_without_support(rng):
    es, eq = rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 2, 3))
    with pytest.raises(ValueError, match="task 0 has no support example of class 2"):
        prototypical_logits(es, np.array([[0, 1, 0, 1]]), eq, 3)
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        prototypical_logits(es, np.array([[0, 1, 2, 1]]), eq, 2)
    with pytest.raises(TypeError, match="integer class indices"):
        prototypical_logits(es, np.zeros((1, 4)), eq, 2)


def test_protonet_gradient_matches_finite_differences_and_flows_through_prototypes(rng):
    support, query = _episode(rng)
    body = [p * 40 + 0.2 * rng.standard_normal(p.shape) for p in init_classifier(rng, None, inputs=6, hidden=(5, 4),
                                                                                 dtype=np.float64)]
    loss, grads = protonet_gradient(body, support, query, ways=3, embed=embed)
    f = lambda p: protonet_loss(p, support, query, ways=3, embed=embed)
    assert loss == pytest.approx(float(np.asarray(f(body))))
    result = check_grad(f, body)
    assert result, result
    # gradient through the query embeddings only (prototypes held fixed) is a different, wrong answer
    fixed = np.asarray(embed(body, np.concatenate([support[0], query[0]], 1)))[:, :6]

    def query_only(p):
        emb = embed(p, np.concatenate([support[0], query[0]], 1))
        return ops.mean(mamlnp.losses.task_cross_entropy(prototypical_logits(fixed, support[1],
                                                                              ops.getitem(emb, (slice(None), slice(6, None))), 3),
                                                         query[1]))
    wrong = mamlnp.grad(query_only)(body)
    assert not all(np.allclose(a, b, rtol=1e-3) for a, b in zip(wrong, grads))


# ------------------------------------------------------------------------------------------------ baselines
def test_pixel_nearest_neighbour(rng):
    xs = rng.random((1, 3, 10))
    xq = xs[:, [2, 0, 1]] + 0.01
    assert pixel_nn_accuracy((xs, np.array([[0, 1, 2]])), (xq, np.array([[2, 0, 0]]))) == pytest.approx([2 / 3])


def test_fresh_head_is_chance_before_fitting_and_learns_after(rng):
    support, query = _episode(rng, tasks=4, ways=3, shots=4, queries=4, d=6)
    support = (support[0] + 3 * support[1][..., None], support[1])  # separable classes
    query = (query[0] + 3 * query[1][..., None], query[1])
    body = init_classifier(rng, None, inputs=6, hidden=(8,), dtype=np.float64)
    acc = finetune_head_accuracy([b * 50 for b in body], support, query, ways=3, steps=(0, 100))
    np.testing.assert_allclose(acc[0], 1 / 3)
    assert acc[100].mean() > 0.6
    scratch = scratch_accuracy(support, query, ways=3, rng=rng, inner_lr=0.5, steps=(0, 100), hidden=(8,))
    assert scratch[100].mean() > 0.6


def test_chunking_changes_no_number(rng):
    support, query = _episode(rng, tasks=5)
    params = init_classifier(rng, 3, inputs=6, hidden=(5,), dtype=np.float64)
    params = [p * 30 for p in params]
    a = adapted_accuracy(params, support, query, inner_lr=0.3, steps=(0, 2), chunk=2)
    b = adapted_accuracy(params, support, query, inner_lr=0.3, steps=(0, 2), chunk=100)
    for s in (0, 2):
        np.testing.assert_array_equal(a[s], b[s])
    np.testing.assert_array_equal(protonet_accuracy(params[:-2], support, query, ways=3, chunk=2),
                                  protonet_accuracy(params[:-2], support, query, ways=3))


# ------------------------------------------------------------------------------------------------ the job
def _tiny_config(**kw):
    from mamlnp.app.omniglot import OmniglotConfig
    base = dict(ways=3, shots=1, queries=2, meta_batch=2, inner_lr=0.4, inner_steps=1, iters=4, hidden=(8,))
    base.update(kw)
    return OmniglotConfig(**base)


@pytest.mark.parametrize("algo", ["maml", "protonet", "pretrain", "reptile", "article"])
def test_resumed_training_is_bit_exact(tmp_path, rng, algo):
    from mamlnp.app.omniglot import OmniglotData, train_omniglot
    data = OmniglotData(_synthetic(rng))
    straight, hist, _ = train_omniglot(_tiny_config(algorithm=algo), data, tmp_path / "a", eval_every=100)
    train_omniglot(_tiny_config(algorithm=algo, iters=2), data, tmp_path / "b", eval_every=100)
    resumed, hist_b, _ = train_omniglot(_tiny_config(algorithm=algo), data, tmp_path / "b", resume=True, eval_every=100)
    for p, q in zip(straight, resumed):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(hist, hist_b)
    assert all(p.dtype == np.float32 for p in straight)


@pytest.mark.parametrize("interrupt_at_call", [2, 3])
def test_interrupt_saves_the_last_completed_iteration_and_resumes_bit_for_bit(tmp_path, rng, monkeypatch,
                                                                             interrupt_at_call):
    """Ctrl-C inside iteration k's meta-gradient saves iteration k − 1 with the RNG rewound; resuming equals an
    uninterrupted run (the loop shared with the sinusoid and navigation jobs)."""
    from mamlnp.app import omniglot
    data = omniglot.OmniglotData(_synthetic(rng))
    config = _tiny_config(iters=5)
    straight, hist, _ = omniglot.train_omniglot(config, data, tmp_path / "a", eval_every=100, checkpoint_every=2)
    real_make = omniglot._make_step

    def make_interrupting(*args, **kwargs):
        real, calls = real_make(*args, **kwargs), {"n": 0}

        def step(*a, **k):
            calls["n"] += 1
            if calls["n"] == interrupt_at_call:
                raise KeyboardInterrupt
            return real(*a, **k)
        return step

    monkeypatch.setattr(omniglot, "_make_step", make_interrupting)
    with pytest.raises(KeyboardInterrupt):
        omniglot.train_omniglot(config, data, tmp_path / "b", eval_every=100, checkpoint_every=2)
    monkeypatch.setattr(omniglot, "_make_step", real_make)
    from mamlnp.app.io import read_checkpoint
    assert read_checkpoint(tmp_path / "b").metadata["iteration"] == interrupt_at_call - 1
    resumed, hist_b, _ = omniglot.train_omniglot(config, data, tmp_path / "b", resume=True, eval_every=100,
                                                 checkpoint_every=2)
    for p, q in zip(straight, resumed):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(hist, hist_b)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, rng):
    from mamlnp.app.omniglot import OmniglotData, train_omniglot
    from mamlnp.app.train import TrainingDiverged
    with pytest.raises(TrainingDiverged, match="iteration 1: parameter array .* NaN/inf.*kept"):
        train_omniglot(_tiny_config(meta_lr=1e300), OmniglotData(_synthetic(rng)), tmp_path / "run")
    from mamlnp.app.io import read_checkpoint
    assert read_checkpoint(tmp_path / "run").metadata["iteration"] == 0


def test_resume_with_other_settings_is_refused(tmp_path, rng):
    from mamlnp.app.omniglot import OmniglotData, train_omniglot
    from mamlnp.app.train import ConfigMismatch
    data = OmniglotData(_synthetic(rng))
    train_omniglot(_tiny_config(iters=1), data, tmp_path / "r")
    with pytest.raises(ConfigMismatch, match="ways: checkpoint has 3, requested 4"):
        train_omniglot(_tiny_config(ways=4), data, tmp_path / "r", resume=True)


def test_cli_bad_data_dir_exits_2_and_writes_nothing(tmp_path, capsys):
    from mamlnp.cli import main
    code = main(["train", "omniglot", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "run"),
                 "--iters", "1", "--quiet"])
    assert code == 2 and "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@needs_data
def test_cli_train_evaluate_plot_on_the_shared_files(tmp_path, capsys):
    import json
    from mamlnp.cli import main
    run = tmp_path / "run"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["train", "omniglot", "--algo", "protonet", "--ways", "5", "--meta-batch", "2", "--iters", "2",
                 "--data-dir", str(DATA), "--out", str(run), "--eval-tasks", "4", "--no-baselines", "--quiet",
                 *cache]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data-dir", str(DATA), "--tasks", "4", "--json", *cache]) == 0
    out = json.loads(capsys.readouterr().out)
    lake = out["models"][0]["evaluation"]["settings"][-1]
    assert lake["source"] == "lake" and len(lake["by_steps"]["0"]["error_per_run"]) == 20
    assert {r["setting"] for r in out["baselines"]["settings"]} >= {"5-way 1-shot", "20-way 1-shot"}
    assert main(["plot", str(run), "--data-dir", str(DATA), "--tasks", "4", "--max-steps", "1",
                 "--out-dir", str(tmp_path / "fig"), *cache]) == 0
    assert (tmp_path / "fig" / "omniglot_tasks.png").is_file()
    assert (tmp_path / "fig" / "omniglot_accuracy_vs_steps.png").is_file()
