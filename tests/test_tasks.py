"""Tests of mamlnp.tasks.SinusoidTasks: the MAML paper's sine-wave regression tasks y = A sin(x − φ)."""
import numpy as np
import pytest

from mamlnp.tasks import SinusoidTasks, sinusoid


def test_sample_shapes_have_leading_task_axis_and_default_query_size():
    """support (T, K, 1) pairs, query (T, K_q, 1) pairs; K_q defaults to K; info holds (T,) arrays."""
    support, query, info = SinusoidTasks().sample(np.random.default_rng(0), meta_batch=4, k_support=10, k_query=7)
    assert support[0].shape == support[1].shape == (4, 10, 1)
    assert query[0].shape == query[1].shape == (4, 7, 1)
    assert info["amplitude"].shape == info["phase"].shape == (4,)
    _, default_query, _ = SinusoidTasks().sample(np.random.default_rng(0), 3, 5)
    assert default_query[0].shape == (3, 5, 1)


def test_targets_are_amplitude_times_sine_of_x_minus_phase_for_support_and_query():
    """Every point of task i, support and query alike, satisfies y = A_i sin(x − φ_i)."""
    support, query, info = SinusoidTasks().sample(np.random.default_rng(1), 6, 10, 15)
    a, phi = info["amplitude"][:, None, None], info["phase"][:, None, None]
    for x, y in (support, query):
        np.testing.assert_allclose(y, a * np.sin(x - phi), rtol=0, atol=1e-15)
    assert sinusoid(np.pi / 2, 2.0, 0.0) == pytest.approx(2.0)


def test_sample_ranges_follow_the_paper():
    """A ∈ [0.1, 5], φ ∈ [0, π], x ∈ [−5, 5] (Finn et al. 2017 §5.1), and the draws fill those ranges:
    over 20,000 tasks the means are within 5 standard errors of the uniform means 2.55, π/2 and 0."""
    task_count = 20_000
    support, query, info = SinusoidTasks().sample(np.random.default_rng(2), task_count, 5)
    amplitude, phase = info["amplitude"], info["phase"]
    x = np.concatenate([support[0], query[0]], axis=1)
    assert amplitude.min() >= 0.1 and amplitude.max() <= 5.0
    assert phase.min() >= 0.0 and phase.max() <= np.pi
    assert x.min() >= -5.0 and x.max() <= 5.0
    assert amplitude.min() < 0.2 and amplitude.max() > 4.9  # not a narrower range by mistake
    assert phase.min() < 0.01 and phase.max() > np.pi - 0.01
    assert x.min() < -4.99 and x.max() > 4.99
    for values, low, high in ((amplitude, 0.1, 5.0), (phase, 0.0, np.pi), (x.ravel(), -5.0, 5.0)):
        standard_error = (high - low) / np.sqrt(12 * values.size)
        assert abs(values.mean() - (low + high) / 2) < 5 * standard_error


def test_same_seed_same_batch_different_seed_different_batch():
    """The Generator is the only source of randomness: equal seeds give identical meta-batches."""
    a = SinusoidTasks().sample(np.random.default_rng(3), 5, 10)
    b = SinusoidTasks().sample(np.random.default_rng(3), 5, 10)
    c = SinusoidTasks().sample(np.random.default_rng(4), 5, 10)
    for pa, pb in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(a[2]["amplitude"], b[2]["amplitude"])
    assert not np.array_equal(a[0][0], c[0][0])


def test_consecutive_samples_from_one_generator_differ():
    """Drawing twice from the same Generator advances it: two meta-batches, different tasks."""
    rng = np.random.default_rng(5)
    first, second = SinusoidTasks().sample(rng, 3, 4), SinusoidTasks().sample(rng, 3, 4)
    assert not np.array_equal(first[2]["amplitude"], second[2]["amplitude"])


def test_float32_dtype_option_gives_the_float64_batch_rounded():
    """dtype=float32 returns float32 x and y, equal to the float64 batch of the same seed rounded."""
    s64, q64, _ = SinusoidTasks().sample(np.random.default_rng(6), 3, 4, dtype=np.float64)
    s32, q32, _ = SinusoidTasks().sample(np.random.default_rng(6), 3, 4, dtype=np.float32)
    for a, b in zip(s64 + q64, s32 + q32):
        assert a.dtype == np.float64 and b.dtype == np.float32
        np.testing.assert_array_equal(a.astype(np.float32), b)


def test_custom_ranges_are_respected():
    """A SinusoidTasks with narrower ranges draws only inside them."""
    tasks = SinusoidTasks(amplitude_range=(1.0, 2.0), phase_range=(0.0, 0.5), x_range=(0.0, 1.0))
    support, _, info = tasks.sample(np.random.default_rng(7), 200, 5)
    assert 1.0 <= info["amplitude"].min() and info["amplitude"].max() <= 2.0
    assert 0.0 <= info["phase"].min() and info["phase"].max() <= 0.5
    assert 0.0 <= support[0].min() and support[0].max() <= 1.0


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_sample_rejects_anything_but_a_generator(rng):
    """No global or legacy random state: rng must be a numpy.random.Generator (TypeError naming the type)."""
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator, got " + type(rng).__name__):
        SinusoidTasks().sample(rng, 2, 5)


@pytest.mark.parametrize("kwargs, name, value", [
    ({"meta_batch": 0}, "meta_batch", "0"),
    ({"meta_batch": -2}, "meta_batch", "-2"),
    ({"meta_batch": 2.0}, "meta_batch", "2.0"),
    ({"meta_batch": True}, "meta_batch", "True"),
    ({"k_support": 0}, "k_support", "0"),
    ({"k_support": -1}, "k_support", "-1"),
    ({"k_query": 0}, "k_query", "0"),
    ({"k_query": 3.5}, "k_query", "3.5"),
])
def test_sample_rejects_non_positive_or_non_integer_sizes(kwargs, name, value):
    """meta_batch, k_support and k_query must be positive integers; the message names which and its value."""
    arguments = {"meta_batch": 2, "k_support": 5, "k_query": None, **kwargs}
    with pytest.raises(ValueError, match=rf"{name} must be a positive integer, got {value}"):
        SinusoidTasks().sample(np.random.default_rng(0), **arguments)
