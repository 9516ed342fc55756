"""The chapter 5.1 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""
import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

from mamlnp.exercises import ch05_1

pytestmark = pytest.mark.exercise

solutions = load_solutions("ch05_1")


# ============================================================================ exercise 1: prototype logits
def _means(es, ys, ways):
    onehot = (ys[:, None, :] == np.arange(ways)[None, :, None]).astype(float)
    return onehot @ es, onehot.sum(-1, keepdims=True)


def test_prototype_logits_checker_passes_reference():
    assert ch05_1.check_prototype_logits(solutions.prototype_logits)


def test_prototype_logits_checker_reports_stub():
    fails_with(ch05_1.check_prototype_logits(stub), "not attempted yet")


def test_prototype_logits_checker_recognises_the_sign():
    fails_with(ch05_1.check_prototype_logits(lambda *a: -solutions.prototype_logits(*a)), "sign is missing")


def test_prototype_logits_checker_recognises_unsquared_distance():
    fails_with(ch05_1.check_prototype_logits(lambda *a: -np.sqrt(-solutions.prototype_logits(*a))),
               "the distance itself")


def test_prototype_logits_checker_recognises_sums():
    def student(es, ys, eq, ways):
        sums, _ = _means(es, ys, ways)
        return -np.sum((eq[:, :, None] - sums[:, None]) ** 2, -1)
    fails_with(ch05_1.check_prototype_logits(student), "*sums*")


def test_prototype_logits_checker_recognises_first_example():
    def student(es, ys, eq, ways):
        first = np.stack([es[t, [np.flatnonzero(ys[t] == k)[0] for k in range(ways)]] for t in range(len(es))])
        return -np.sum((eq[:, :, None] - first[:, None]) ** 2, -1)
    fails_with(ch05_1.check_prototype_logits(student), "*first* support example")


def test_prototype_logits_checker_recognises_per_point_distances():
    def student(es, ys, eq, ways):
        return -np.sum((eq[:, :, None] - es[:, None]) ** 2, -1)
    fails_with(ch05_1.check_prototype_logits(student), "one per support *point*")


def test_prototype_logits_checker_recognises_assumed_sorting():
    def student(es, ys, eq, ways):
        per = es.shape[1] // ways
        means = np.stack([es[:, k * per:(k + 1) * per].mean(1) for k in range(ways)], 1)
        return -np.sum((eq[:, :, None] - means[:, None]) ** 2, -1)
    fails_with(ch05_1.check_prototype_logits(student), "sorted by class")


# ============================================================================ exercise 2: the sampler
def test_episode_sampler_checker_passes_reference():
    assert ch05_1.check_episode_sampler(solutions.episode)


def test_episode_sampler_checker_reports_stub():
    fails_with(ch05_1.check_episode_sampler(stub), "not attempted yet")


def test_episode_sampler_checker_recognises_repeated_classes():
    def student(rng, num_classes, ways, shots, queries, drawings=20):
        _, s, q = solutions.episode(rng, num_classes, ways, shots, queries, drawings)
        return rng.integers(num_classes, size=ways), s, q
    fails_with(ch05_1.check_episode_sampler(student), "repeat a class")


def test_episode_sampler_checker_recognises_overlap():
    def student(rng, num_classes, ways, shots, queries, drawings=20):
        classes = rng.choice(num_classes, size=ways, replace=False)
        return classes, rng.integers(drawings, size=(ways, shots)), rng.integers(drawings, size=(ways, queries))
    fails_with(ch05_1.check_episode_sampler(student), "a drawing repeats")


def test_episode_sampler_checker_recognises_global_rng():
    def student(rng, num_classes, ways, shots, queries, drawings=20):
        return solutions.episode(np.random.default_rng(np.random.randint(1 << 30)), num_classes, ways, shots, queries)
    fails_with(ch05_1.check_episode_sampler(student), "same seed gave two different episodes")


def test_episode_sampler_checker_recognises_the_first_classes():
    def student(rng, num_classes, ways, shots, queries, drawings=20):
        _, s, q = solutions.episode(rng, num_classes, ways, shots, queries, drawings)
        return np.arange(ways), s, q
    fails_with(ch05_1.check_episode_sampler(student), "uniformly at random")


# ============================================================================ exercise 3: rotations
def test_rotation_checker_passes_reference():
    assert ch05_1.check_rotation_classes(solutions.rotation_classes)


def test_rotation_checker_reports_stub():
    fails_with(ch05_1.check_rotation_classes(stub), "not attempted yet")


def test_rotation_checker_recognises_three_classes():
    fails_with(ch05_1.check_rotation_classes(
        lambda x: np.stack([np.rot90(x, k, axes=(-2, -1)) for k in (1, 2, 3)], 1).reshape((-1,) + x.shape[1:])),
        "3C classes")


def test_rotation_checker_recognises_block_order():
    fails_with(ch05_1.check_rotation_classes(
        lambda x: np.concatenate([np.rot90(x, k, axes=(-2, -1)) for k in range(4)])), "k·C + c")


def test_rotation_checker_recognises_clockwise():
    fails_with(ch05_1.check_rotation_classes(
        lambda x: np.stack([np.rot90(x, -k, axes=(-2, -1)) for k in range(4)], 1).reshape((-1,) + x.shape[1:])),
        "clockwise")


def test_rotation_checker_recognises_transpose():
    def student(x):
        turns = [x, np.swapaxes(x, -1, -2), np.rot90(x, 2, axes=(-2, -1)), np.rot90(x, 3, axes=(-2, -1))]
        return np.stack(turns, 1).reshape((-1,) + x.shape[1:])
    fails_with(ch05_1.check_rotation_classes(student), "transpose")
