"""The §5.2 task stream: the forgetting and backward-transfer metrics, and the three learners' bookkeeping."""
import numpy as np
import pytest

from mamlnp.app.lifelong import LEARNERS, StreamConfig, average_forgetting, backward_transfer, run_stream


def test_metrics_on_a_hand_made_matrix():
    # E[i, j]: error on task j after task i. Task 0: 1.0 → 0.5 (best) → 2.0; task 1: 1.0 → 3.0.
    e = np.array([[1.0, np.nan, np.nan],
                  [0.5, 1.0, np.nan],
                  [2.0, 3.0, 0.1]])
    assert average_forgetting(e) == pytest.approx(((2.0 - 0.5) + (3.0 - 1.0)) / 2)
    assert backward_transfer(e) == pytest.approx(((1.0 - 2.0) + (1.0 - 3.0)) / 2)


def test_no_forgetting_when_errors_only_fall():
    e = np.tril(np.ones((4, 4))) * np.linspace(1.0, 0.4, 4)[:, None]
    # every old task ends at 0.4, better than its best before (0.6): negative forgetting, positive transfer
    assert average_forgetting(e) == pytest.approx(-0.2)
    assert backward_transfer(e) > 0


def test_metrics_refuse_a_non_square_matrix():
    with pytest.raises(ValueError, match="must be square"):
        average_forgetting(np.ones((2, 3)))
    with pytest.raises(ValueError, match="must be square"):
        backward_transfer(np.ones((1, 1)))


@pytest.fixture(scope="module")
def small_runs():
    config = StreamConfig(tasks=3, points=6, test_points=8, steps_per_task=4, eval_steps=2, meta_batch=2,
                          sizes=(1, 8, 8, 1))
    return config, {learner: run_stream(config, learner) for learner in LEARNERS}


def test_streams_fill_their_matrices_and_are_reproducible(small_runs):
    config, runs = small_runs
    for learner, run in runs.items():
        assert run["zero_shot"].shape == (3, 3) and np.all(np.isfinite(run["zero_shot"]))
        assert run["arrival"].shape == (3, 3) and np.all(np.isfinite(run["arrival"]))
        again = run_stream(config, learner)
        np.testing.assert_array_equal(again["adapted"], run["adapted"])


def test_all_learners_start_from_the_same_network(small_runs):
    """Task 0 arrives before any update: its arrival errors are the same for every learner."""
    _, runs = small_runs
    first = [run["arrival"][0] for run in runs.values()]
    for other in first[1:]:
        np.testing.assert_array_equal(first[0], other)


def test_sequential_and_joint_agree_on_the_first_task(small_runs):
    """While only task 0 has been seen, 'all tasks so far' is task 0: the two learners take identical steps."""
    _, runs = small_runs
    np.testing.assert_array_equal(runs["sequential"]["zero_shot"][0], runs["joint"]["zero_shot"][0])
    assert not np.array_equal(runs["sequential"]["zero_shot"][1], runs["joint"]["zero_shot"][1])


def test_bad_input():
    with pytest.raises(ValueError, match="learner must be one of"):
        run_stream(StreamConfig(tasks=2, steps_per_task=1), "oml")
    with pytest.raises(ValueError, match="steps_per_task must be a positive integer"):
        StreamConfig(steps_per_task=0)


def test_forward_transfer_and_stream_metrics(small_runs):
    from mamlnp.app.lifelong import forward_transfer, stream_metrics
    e = np.array([[1.0, 4.0, 5.0], [0.5, 1.0, 3.0], [2.0, 3.0, 0.1]])
    assert forward_transfer(e, [9.0, 6.0, 5.0]) == pytest.approx(((6.0 - 4.0) + (5.0 - 3.0)) / 2)
    with pytest.raises(ValueError, match="one error per task"):
        forward_transfer(e, [1.0, 2.0])
    _, runs = small_runs
    m = stream_metrics(runs["ftml"], "adapted")
    assert set(m) == {"final_error", "just_learned", "forgetting", "backward_transfer", "arrival_after_S"}
    assert m["forgetting"] == pytest.approx(average_forgetting(runs["ftml"]["adapted"]))
