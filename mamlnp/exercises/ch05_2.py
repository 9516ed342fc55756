"""Checkers for the exercises of chapter 5.2 (lifelong learning on a task stream): the three stream metrics.

E[i, j] is the error on task j after the stream's window for task i (N × N; entries above the diagonal are errors
on tasks not yet seen).

1. :func:`check_average_forgetting` — mean over j < N−1 of E[N−1, j] − min_{j ≤ i < N−1} E[i, j].
2. :func:`check_backward_transfer` — mean over j < N−1 of E[j, j] − E[N−1, j] (negative = forgetting).
3. :func:`check_forward_transfer` — mean over j ≥ 1 of b_j − E[j−1, j], with b_j the initial network's error.

Each checker feeds matrices on which the usual slips (the last task included, the accuracy form max instead of min,
a flipped sign, the diagonal instead of the row before) give different numbers, and names the slip it sees.
"""
from __future__ import annotations

import numpy as np

from ..app.lifelong import average_forgetting, backward_transfer, forward_transfer
from . import Feedback, attempt

__all__ = ["check_average_forgetting", "check_backward_transfer", "check_forward_transfer"]


def _matrices():
    rng = np.random.default_rng(5201)
    out = []
    for n in (3, 5):
        e = rng.uniform(0.2, 3.0, (n, n))
        out.append(e)
    return out


def _close(a, b):
    return np.isfinite(a) and abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _check(exercise, student, right, wrongs, extra_args=()):
    for e in _matrices():
        n = e.shape[0]
        args = [a(e) if callable(a) else a for a in extra_args]
        result, stub = attempt(exercise, student, e.copy(), *[np.copy(a) for a in args])
        if stub is not None:
            return stub
        got = float(result)
        want = right(e, *args)
        if _close(got, want):
            continue
        for value, message in wrongs(e, *args):
            if _close(got, value):
                return Feedback(exercise, False, f"N = {n}: {message}")
        return Feedback(exercise, False, f"N = {n}: got {got:.6g}; re-read the definition (which rows, which tasks, "
                        "which sign)")
    return None


def check_average_forgetting(student) -> Feedback:
    """Check ``average_forgetting(E) -> float``."""
    ex = "5.2 ex. 1: average forgetting"

    def wrongs(e):
        last = e.shape[0] - 1
        return [
            (np.mean([e[last, j] - np.min(e[j:last + 1, j]) for j in range(last + 1)]),
             "you included the last task (its forgetting is 0 by definition, which dilutes the mean): average over "
             "j < N − 1"),
            (np.mean([e[last, j] - np.max(e[j:last, j]) for j in range(last)]),
             "you compared with the *worst* earlier error (max): forgetting of an error is measured from the best, "
             "min_{j ≤ i < N−1} E[i, j] (the max belongs to the accuracy form)"),
            (np.mean([e[last, j] - e[j, j] for j in range(last)]),
             "you compared with the error right after learning task j (E[j, j]) — that is minus the backward "
             "transfer; forgetting compares with the best error task j ever had"),
            (np.mean([e[last, j] - np.min(e[:last, j]) for j in range(last)]),
             "you took the minimum over rows before task j was seen too (i < j): only rows i ≥ j count"),
            (np.mean([e[last, j] - np.min(e[j:last + 1, j]) for j in range(last)]),
             "your minimum includes the final row i = N − 1 itself, so forgetting can never come out negative: the "
             "best earlier error is taken over j ≤ i < N − 1"),
            (np.mean([np.max(e[j:last, j]) - e[last, j] for j in range(last)]),
             "you copied the accuracy form (best earlier value minus the final one, with max): for errors the final "
             "error comes first and the best earlier error is the smallest"),
        ]

    fail = _check(ex, student, lambda e: average_forgetting(e), wrongs)
    if fail is not None:  # a failed Feedback is falsy: test for None, not truth
        return fail
    return Feedback(ex, True, "average forgetting matches: how much worse each old task ends than the best it "
                            "ever was, averaged over the N − 1 old tasks.")


def check_backward_transfer(student) -> Feedback:
    """Check ``backward_transfer(E) -> float``."""
    ex = "5.2 ex. 2: backward transfer"

    def wrongs(e):
        last = e.shape[0] - 1
        return [
            (-backward_transfer(e), "your sign is flipped: E[j, j] − E[N−1, j], so that forgetting (a higher error "
             "at the end) comes out negative, as in GEM's accuracy form"),
            (np.mean([e[j, j] - e[last, j] for j in range(last + 1)]),
             "you included the last task (E[N−1, N−1] − E[N−1, N−1] = 0): average over j < N − 1"),
        ]

    fail = _check(ex, student, lambda e: backward_transfer(e), wrongs)
    if fail is not None:  # a failed Feedback is falsy: test for None, not truth
        return fail
    return Feedback(ex, True, "backward transfer matches: positive when later tasks lower old tasks' errors, "
                            "negative when they are forgotten.")


def check_forward_transfer(student) -> Feedback:
    """Check ``forward_transfer(E, baseline) -> float``."""
    ex = "5.2 ex. 3: forward transfer"
    baseline = lambda e: np.linspace(2.0, 4.0, e.shape[0])  # noqa: E731

    def wrongs(e, b):
        n = e.shape[0]
        return [
            (-forward_transfer(e, b), "your sign is flipped: b_j − E[j−1, j], so that a lower error than the initial "
             "network's counts as positive transfer"),
            (np.mean([b[j] - e[j, j] for j in range(1, n)]),
             "you used E[j, j], the error *after* training on task j; forward transfer is about the error before, "
             "E[j−1, j]"),
            (np.mean([b[j] - e[j - 1, j] for j in range(1, n)] + [0.0]) if n > 1 else np.nan,
             "you averaged over N terms: task 0 has no row before it, so average over j = 1 … N − 1"),
            (np.mean([b[j] - e[j - 1, j] for j in range(n)]),
             "your sum starts at j = 0, where E[j−1, j] = E[−1, 0] silently wraps around to NumPy's last row: task 0 "
             "has no row before it, start at j = 1"),
        ]

    fail = _check(ex, student, lambda e, b: forward_transfer(e, b), wrongs, extra_args=(baseline,))
    if fail is not None:  # a failed Feedback is falsy: test for None, not truth
        return fail
    return Feedback(ex, True, "forward transfer matches: how much the stream so far helps on a task before it "
                            "is trained on.")
