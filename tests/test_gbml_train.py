"""Training iMAML, Meta-SGD and ANIL: one iteration is one Adam step on the algorithm's gradient, Meta-SGD's
learned step sizes are checkpointed and resumed bit for bit, the CLI trains, evaluates and refuses bad input."""
import numpy as np
import pytest

from mamlnp import cli
from mamlnp.evaluate import evaluate_params
from mamlnp.io import read_checkpoint
from mamlnp.meta import anil_gradient, anil_inner_lrs, imaml_gradient, metasgd_gradient
from mamlnp.nn import init_mlp
from mamlnp.optim import Adam
from mamlnp.tasks import SinusoidTasks
from mamlnp.train import TrainConfig, split_state, train

SMALL = dict(meta_batch=4, k_support=5, k_query=5, sizes=(1, 16, 16, 1))


def _quiet(config, out=None, **kw):
    kw.setdefault("eval_tasks", 10)
    return train(config, out, progress=False, **kw)


def _first_batch(seed, init="maml"):
    rng = np.random.default_rng(seed)
    params = init_mlp([1, 16, 16, 1], rng, scheme=init)
    support, query, _ = SinusoidTasks().sample(rng, 4, 5, 5)
    return params, support, query


def _adam_step(grads, params):
    opt = Adam(1e-3)
    return opt.update(grads, opt.init(params), params)[0]


def test_first_imaml_iteration_uses_lam_and_cg_steps_from_the_config():
    config = TrainConfig.for_algorithm("imaml", iters=1, seed=4, lam=3.0, cg_steps=7, init="glorot", **SMALL)
    assert config.inner_steps == 5  # iMAML's default S
    result = _quiet(config)
    params, support, query = _first_batch(4, "glorot")
    _, grads = imaml_gradient(params, support, query, inner_lr=0.01, inner_steps=5, lam=3.0, cg_steps=7)
    assert all(np.array_equal(a, b) for a, b in zip(result.params, _adam_step(grads, params)))


def test_first_anil_iteration_and_its_test_time_adaptation_is_head_only():
    config = TrainConfig.for_algorithm("anil", iters=1, seed=2, init="torch", **SMALL)
    result = _quiet(config)
    params, support, query = _first_batch(2, "torch")
    _, grads = anil_gradient(params, support, query, inner_lr=0.01, inner_steps=1)
    assert all(np.array_equal(a, b) for a, b in zip(result.params, _adam_step(grads, params)))
    network, step_sizes = split_state("anil", result.params, 0.01)
    assert network == result.params
    assert [float(np.max(s)) for s in step_sizes] == [0.0, 0.0, 0.0, 0.0, 0.01, 0.01]


def test_metasgd_state_is_network_then_step_sizes_and_first_step_updates_both():
    config = TrainConfig.for_algorithm("metasgd", iters=1, seed=6, **SMALL)
    result = _quiet(config)
    params, support, query = _first_batch(6)
    lrs = [np.full(p.shape, 0.01) for p in params]
    _, (grads, lr_grads) = metasgd_gradient(params, lrs, support, query, inner_steps=1)
    expected = _adam_step(list(grads) + list(lr_grads), params + lrs)
    assert len(result.params) == 12
    assert all(np.array_equal(a, b) for a, b in zip(result.params, expected))
    network, step_sizes = split_state("metasgd", result.params, 0.01)
    assert all(np.array_equal(a, b) for a, b in zip(step_sizes, expected[6:]))
    assert not all(np.all(s == 0.01) for s in step_sizes)  # the step sizes were learned, not kept


@pytest.mark.parametrize("algorithm", ["metasgd", "imaml", "anil"])
def test_resume_reproduces_an_uninterrupted_run_bit_for_bit(tmp_path, algorithm):
    """24 iterations straight vs 12 + resume: the whole state (Meta-SGD: network and α), Adam's moments and the
    loss history are identical."""
    config = TrainConfig.for_algorithm(algorithm, iters=24, seed=5, **SMALL)
    straight = _quiet(config, tmp_path / "straight", checkpoint_every=5, eval_every=8)
    _quiet(TrainConfig.for_algorithm(algorithm, iters=12, seed=5, **SMALL), tmp_path / "split", checkpoint_every=5,
           eval_every=8)
    resumed = _quiet(config, tmp_path / "split", resume=True, checkpoint_every=5, eval_every=8)
    assert len(resumed.params) == len(straight.params) == (12 if algorithm == "metasgd" else 6)
    assert all(np.array_equal(a, b) for a, b in zip(straight.params, resumed.params))
    for key in ("m", "v"):
        assert all(np.array_equal(a, b) for a, b in zip(straight.opt_state[key], resumed.opt_state[key]))
    np.testing.assert_array_equal(straight.loss_history, resumed.loss_history)


TINY = ["--iters", "10", "--meta-batch", "3", "--hidden", "8", "8", "--eval-every", "5", "--checkpoint-every", "5",
        "--eval-tasks", "12", "--quiet", "--no-baseline"]


def test_cli_trains_metasgd_and_evaluates_it_with_its_learned_step_sizes(tmp_path, capsys):
    out = tmp_path / "metasgd"
    assert cli.main(["train", "sinusoid", *TINY, "--algo", "metasgd", "--out", str(out), "--figures",
                     str(tmp_path / "figs")]) == 0
    ckpt = read_checkpoint(out)
    assert ckpt.metadata["model"]["state_copies"] == 2 and len(ckpt.params) == 12
    table = capsys.readouterr().out
    network, step_sizes = split_state("metasgd", ckpt.params, 0.01)
    direct = evaluate_params(network, ks=(5,), steps=(1,), tasks=12, inner_lrs=step_sizes)
    assert f"{direct['rows'][0]['mse']:.3f}" in table
    plain = evaluate_params(network, ks=(5,), steps=(1,), tasks=12)  # α = 0.01 everywhere: another number
    assert plain["rows"][0]["mse"] != direct["rows"][0]["mse"]
    assert (tmp_path / "figs" / "sinusoid_adaptation.png").exists()


def test_cli_imaml_options_and_init_reach_the_config(tmp_path):
    out = tmp_path / "imaml"
    assert cli.main(["train", "sinusoid", *TINY, "--algo", "imaml", "--lam", "2.5", "--cg-steps", "3", "--init",
                     "torch", "--no-figures", "--out", str(out)]) == 0
    config = read_checkpoint(out).metadata["config"]
    assert (config["lam"], config["cg_steps"], config["init"], config["inner_steps"]) == (2.5, 3, "torch", 5)


@pytest.mark.parametrize("argv, message", [
    (["--lam", "0"], "--lam: must be a positive finite number"),
    (["--cg-steps", "0"], "--cg-steps: must be a positive integer"),
    (["--init", "he"], "--init: invalid choice"),
])
def test_bad_gbml_options_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        cli.main(["train", "sinusoid", *TINY, "--algo", "imaml", *argv, "--out", str(tmp_path / "x")])
    assert err.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_torch_init_is_uniform_within_one_over_sqrt_fan_in_with_biases():
    params = init_mlp([1, 40, 40, 1], np.random.default_rng(0), scheme="torch")
    for w, b in zip(params[::2], params[1::2]):
        bound = 1 / np.sqrt(w.shape[0])
        assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
        assert np.max(np.abs(w)) > 0.9 * bound and np.any(b != 0)
    assert anil_inner_lrs(params, 0.5)[-1][0] == 0.5
