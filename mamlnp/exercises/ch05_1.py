"""Checkers for the exercises of chapter 5.1 (few-shot learning on Omniglot).

1. :func:`check_prototype_logits` — a prototypical network's classifier in NumPy: the logits of each query against
   each class are −‖f(x) − c_k‖², with c_k the mean support embedding of class k. Compared with
   :func:`mamlnp.algorithms.protonet.prototypical_logits` on episodes with unequal numbers of shots; the usual
   wrong answers (distance not squared, the sign, a sum instead of a mean, the first example instead of the mean,
   distances to every support point) are recognised.
2. :func:`check_episode_sampler` — an N-way K-shot sampler: N distinct classes, K support and Q query drawings per
   class with no drawing in both, from the ``numpy.random.Generator`` it is given (same seed, same episode), every
   class equally likely.
3. :func:`check_rotation_classes` — rotation augmentation (Santoro et al. 2016; the MAML setup): turn C characters
   into 4C classes, class 4c + k being character c rotated by k quarter turns counter-clockwise (``np.rot90``).

Every checker returns a :class:`~mamlnp.exercises.Feedback`; a stub that still raises ``NotImplementedError`` gets
"not attempted yet".
"""
from __future__ import annotations

import numpy as np

from ..algorithms.protonet import prototypical_logits
from . import Feedback, attempt

__all__ = ["check_prototype_logits", "check_episode_sampler", "check_rotation_classes"]

RTOL = 1e-9


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


# ============================================================================ exercise 1: prototype logits
EX1 = "5.1 ex. 1: prototype logits"


def _proto_cases():
    rng = np.random.default_rng(5101)
    cases = []
    for tasks, ways, shots, queries, dim in ((2, 3, 2, 4, 5), (1, 4, 3, 2, 3)):
        labels = np.tile(np.repeat(np.arange(ways), shots), (tasks, 1))
        labels[:, -1] = 0  # unequal shots: class 0 has one more example, the last class one fewer
        order = np.argsort(rng.random(labels.shape), axis=1)  # and the support set is not sorted by class
        labels = np.take_along_axis(labels, order, axis=1)
        cases.append((rng.standard_normal((tasks, labels.shape[1], dim)), labels,
                      rng.standard_normal((tasks, queries, dim)), ways))
    return cases


def _proto_wrong(es, ys, eq, ways):
    onehot = (ys[:, None, :] == np.arange(ways)[None, :, None]).astype(float)        # (T, ways, n)
    sums = onehot @ es
    means = sums / onehot.sum(-1, keepdims=True)
    firsts = np.stack([es[t, [int(np.flatnonzero(ys[t] == k)[0]) for k in range(ways)]] for t in range(len(es))])

    def sqdist(c):
        return np.sum((eq[:, :, None, :] - c[:, None, :, :]) ** 2, axis=-1)
    return [
        ("your logits are +‖f(x) − c_k‖²: the sign is missing, so the *farthest* prototype wins. Use the negative "
         "squared distance", sqdist(means)),
        ("your logits are −‖f(x) − c_k‖, the distance itself: the squared Euclidean distance is what Snell et al. use "
         "(and what the softmax expects here)", -np.sqrt(sqdist(means))),
        ("your prototypes are the *sums* of each class's support embeddings, not their means: with unequal shots "
         "the classes with more examples move away. Divide by each class's count", -sqdist(sums)),
        ("your prototypes are each class's *first* support example, not the mean of all its examples",
         -sqdist(firsts)),
        ("your prototypes are the means of the first examples in order, as if the support set were sorted by class; "
         "it is not — select each class's examples by their labels", None),
    ]


def check_prototype_logits(student):
    """``student(support_embeddings (T, n, d), support_labels (T, n), query_embeddings (T, Q, d), ways)`` →
    logits (T, Q, ways) = −‖f(x_q) − c_k‖² with c_k the mean of class k's support embeddings (plain NumPy)."""
    for es, ys, eq, ways in _proto_cases():
        answer, stub = attempt(EX1, student, es.copy(), ys.copy(), eq.copy(), ways)
        if stub is not None:
            return stub
        right = np.asarray(prototypical_logits(es, ys, eq, ways))
        answer = np.asarray(answer, dtype=np.float64)
        if answer.shape != right.shape:
            if answer.shape == (es.shape[0], eq.shape[1], es.shape[1]):
                return Feedback(EX1, False, f"your logits have shape {answer.shape}: one per support *point*. A "
                                "prototypical network compares each query with one prototype per *class* (the mean "
                                f"of the class's embeddings), shape {right.shape}")
            return Feedback(EX1, False, f"your logits have shape {answer.shape}; expected {right.shape} (tasks, "
                            "queries, ways)")
        if _rel(answer, right) <= RTOL:
            continue
        for message, wrong in _proto_wrong(es, ys, eq, ways):
            if wrong is not None and _rel(answer, wrong) <= 1e-6:
                return Feedback(EX1, False, message)
        ways_sorted = es.shape[1] // ways
        sorted_means = np.stack([es[:, k * ways_sorted:(k + 1) * ways_sorted].mean(1) for k in range(ways)], 1)
        if _rel(answer, -np.sum((eq[:, :, None] - sorted_means[:, None]) ** 2, -1)) <= 1e-6:
            return Feedback(EX1, False, _proto_wrong(es, ys, eq, ways)[-1][0])
        return Feedback(EX1, False, f"your logits differ from −‖f(x) − c_k‖² by {_rel(answer, right):.2e} "
                        "(relative); compute each class's mean support embedding from the labels, then the squared "
                        "distances of every query to every mean, negated")
    return Feedback(EX1, True, "your logits equal −‖f(x) − c_k‖² with class means, for unequal shots and unsorted "
                    "support sets")


# ============================================================================ exercise 2: an N-way K-shot sampler
EX2 = "5.1 ex. 2: N-way K-shot sampler"


def check_episode_sampler(student):
    """``student(rng, num_classes, ways, shots, queries, drawings=20)`` → ``(classes (ways,), support (ways, shots),
    query (ways, queries))``: distinct classes; drawing indices per class, none in both support and query."""
    num_classes, ways, shots, queries = 12, 5, 2, 3
    counts = np.zeros(num_classes)
    state_before = np.random.get_state()[1].copy()
    for seed in range(300):
        out, stub = attempt(EX2, student, np.random.default_rng(seed), num_classes, ways, shots, queries)
        if stub is not None:
            return stub
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            return Feedback(EX2, False, "return a tuple (classes, support, query) of index arrays")
        classes, support, query = (np.asarray(a) for a in out)
        if classes.shape != (ways,) or support.shape != (ways, shots) or query.shape != (ways, queries):
            return Feedback(EX2, False, f"shapes {classes.shape}, {support.shape}, {query.shape}; expected ({ways},), "
                            f"({ways}, {shots}), ({ways}, {queries})")
        if not (np.issubdtype(classes.dtype, np.integer) and np.issubdtype(support.dtype, np.integer)):
            return Feedback(EX2, False, "return integer indices (classes and drawing numbers)")
        if classes.min() < 0 or classes.max() >= num_classes or support.min() < 0 or max(support.max(), query.max()) >= 20:
            return Feedback(EX2, False, f"indices out of range: classes must lie in [0, {num_classes - 1}] and "
                            "drawings in [0, 19]")
        if len(set(classes.tolist())) != ways:
            return Feedback(EX2, False, f"classes {classes.tolist()} repeat a class: an N-way task needs N *distinct* "
                            "classes (sample without replacement), or two labels would name the same character")
        for k in range(ways):
            both = np.concatenate([support[k], query[k]])
            if len(set(both.tolist())) != shots + queries:
                return Feedback(EX2, False, f"class {classes[k]} uses drawings {support[k].tolist()} for support and "
                                f"{query[k].tolist()} for query: a drawing repeats, so the query set tests on an "
                                "image the learner was shown. Draw shots + queries distinct drawings per class")
        counts[classes] += 1
        if seed == 0:
            again = student(np.random.default_rng(0), num_classes, ways, shots, queries)
            if not all(np.array_equal(a, b) for a, b in zip(out, again)):
                return Feedback(EX2, False, "the same seed gave two different episodes: draw every random number "
                                "from the rng argument (never np.random.* or the random module)")
    if not np.array_equal(np.random.get_state()[1], state_before):
        return Feedback(EX2, False, "your sampler used NumPy's global random state (np.random.*): use the rng argument")
    expected = 300 * ways / num_classes
    if counts.min() < 0.6 * expected or counts.max() > 1.4 * expected:
        return Feedback(EX2, False, f"over 300 episodes the classes were chosen {counts.astype(int).tolist()} times "
                        f"(≈{expected:.0f} each expected): choose the classes uniformly at random, not the first N or "
                        "a fixed block")
    return Feedback(EX2, True, "distinct classes, disjoint support and query drawings, reproducible from the rng, "
                    "every class equally likely")


# ============================================================================ exercise 3: rotations as new classes
EX3 = "5.1 ex. 3: rotations as new classes"


def check_rotation_classes(student):
    """``student(images (C, D, H, W))`` → (4C, D, H, W): class 4c + k is character c turned by k × 90°
    counter-clockwise (``np.rot90(image, k)``)."""
    rng = np.random.default_rng(5103)
    images = rng.integers(0, 256, (3, 2, 5, 5)).astype(np.uint8)
    answer, stub = attempt(EX3, student, images.copy())
    if stub is not None:
        return stub
    answer = np.asarray(answer)
    right = np.stack([np.rot90(images, k, axes=(-2, -1)) for k in range(4)], axis=1).reshape(12, 2, 5, 5)
    if answer.shape == (9, 2, 5, 5):
        return Feedback(EX3, False, "you made 3C classes: the unrotated character (k = 0) is one of the four classes too")
    if answer.shape != right.shape:
        return Feedback(EX3, False, f"shape {answer.shape}; expected {right.shape} = (4C, drawings, H, W)")
    if np.array_equal(answer, right):
        return Feedback(EX3, True, "class 4c + k is character c turned by k quarter turns; all its drawings turn "
                        "together")
    block = np.stack([np.rot90(images, k, axes=(-2, -1)) for k in range(4)], axis=0).reshape(12, 2, 5, 5)
    if np.array_equal(answer, block):
        return Feedback(EX3, False, "your classes are ordered k·C + c (all characters at one angle, then the next "
                        "angle); the exercise asks for 4c + k, the four turns of a character next to each other")
    clockwise = np.stack([np.rot90(images, -k, axes=(-2, -1)) for k in range(4)], axis=1).reshape(12, 2, 5, 5)
    if np.array_equal(answer, clockwise):
        return Feedback(EX3, False, "you turned clockwise (np.rot90(x, -k)); the convention here is counter-clockwise, "
                        "np.rot90(x, k)")
    if np.array_equal(answer[1::4], np.swapaxes(images, -1, -2)):
        return Feedback(EX3, False, "your 90° class is the transpose of the image (a reflection across the diagonal), "
                        "not a rotation: rotate over the last two axes with np.rot90(x, k, axes=(-2, -1))")
    if np.array_equal(answer[1::4], np.rot90(images, 1, axes=(0, 1))[: len(answer[1::4])]) or \
            not np.array_equal(answer[0::4], images):
        return Feedback(EX3, False, "class 4c must be character c itself and the rotation must act on the image axes "
                        "(the last two), not on the character or drawing axes")
    return Feedback(EX3, False, "class 4c + k is not np.rot90(character c, k) for every drawing; rotate all drawings "
                    "of a character by the same angle")
