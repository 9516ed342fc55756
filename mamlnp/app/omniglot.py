"""Few-shot classification on Omniglot (article §5.1): training, evaluation, figures and the CLI's ``omniglot`` family.

``python -m mamlnp train omniglot --ways 5 --shots 1 --algo maml --data-dir DIR`` meta-trains the MAML paper's
784-256-128-64-64-N network (:mod:`mamlnp.models.fewshot`) on episodes from the training characters, writes
checkpoints to the run folder (:mod:`mamlnp.app.io`), then evaluates it with the baselines and writes
``eval.md``/``eval.json``.

Algorithms (``--algo``):

``maml`` / ``fomaml`` / ``reptile`` / ``article``
    through :data:`mamlnp.meta.ALGORITHMS` with ``task_loss=classifier_loss`` (``article`` is the article's §4
    loop, i.e. multi-task training on episodes, whose labels are shuffled from episode to episode).
``protonet``
    prototypical networks on the body (no output layer): :func:`mamlnp.algorithms.protonet.protonet_gradient`.
``pretrain``
    non-episodic multi-task pretraining: one classifier over every training class (characters × rotations), on
    minibatches of the same number of images as a meta-batch; tested with a fresh head fitted to each support set.

Splits (``--split``):

``small1``         meta-train on background small 1 (5 alphabets, 136 characters); held-out alphabets for the
                   N-way tests: background small 2's alphabets that small 1 lacks (3 alphabets, 106 characters)
``small1+small2``  meta-train on both minimal splits (8 alphabets, 242 characters); held-out alphabets:
                   the evaluation set if present, else none (Lake's runs only)
``full``           the MAML paper's protocol: background + evaluation (1,623 characters) shuffled with a fixed
                   seed, 1,200 characters for meta-training and the other 423 for testing

Lake's 20 one-shot runs (``all_runs.zip``; evaluation alphabets, 20-way within-alphabet) are used whenever present.

Determinism: initial parameters and training episodes come from ``default_rng(seed)``; its state is stored in
every checkpoint, so a resumed run reproduces an uninterrupted one bit for bit. Test episodes come from
``SeedSequence([eval_seed, setting])`` and are the same for every model (paired comparisons).
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..algorithms import ALGORITHMS
from ..algorithms.fewshot import (adapted_accuracy, finetune_head_accuracy, pixel_nn_accuracy, protonet_accuracy,
                                  scratch_accuracy)
from ..algorithms.protonet import protonet_gradient
from ..engine import ops
from ..engine.transforms import value_and_grad
from ..models.fewshot import HIDDEN, classifier_loss, embed, init_classifier
from ..models.optim import OPTIMIZERS
from ..tasks.omniglot import (KNOWN_SHA256, OmniglotError, OmniglotTasks, STRUCTURE, download, load_alphabets,
                              load_lake_runs, rotate_images, to_inputs)
from .io import has_checkpoint, read_checkpoint, save_checkpoint
from .guard import atomic_write_text, strict_json, write_json
from .train import ConfigMismatch, LoopState, SettingsRecord, job_run_folder, run_iterations

__all__ = ["OmniglotConfig", "OMNIGLOT_ALGORITHMS", "SPLITS", "load_split", "train_omniglot", "evaluate_checkpoint",
           "evaluate_baselines", "test_settings", "summarize_accuracy", "format_report", "add_train_parser",
           "cmd_train", "cmd_evaluate", "cmd_plot", "OmniglotData"]

OMNIGLOT_ALGORITHMS = ("maml", "fomaml", "reptile", "article", "protonet", "pretrain")
SPLITS = ("small1", "small1+small2", "full")
# Defaults: the MAML reference code's README commands (cbfinn/maml, main.py): 5-way — meta-batch 32, α = 0.4, one
# inner step, Adam β = 1e-3, 60,000 iterations; 20-way — meta-batch 16, α = 0.1, five inner steps.
WAYS_DEFAULTS = {5: {"meta_batch": 32, "inner_lr": 0.4, "inner_steps": 1},
                 20: {"meta_batch": 16, "inner_lr": 0.1, "inner_steps": 5}}
ALGO_DEFAULTS = {"reptile": {"inner_steps": 5}}
FULL_SPLIT_SEED, FULL_SPLIT_TRAIN = 1, 1200
DEFAULT_EVAL_SEED = 2017
EVAL_QUERIES = 15


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class OmniglotConfig(SettingsRecord):
    """Everything that determines an Omniglot training run's numbers (plus ``iters``, how far it goes)."""

    algorithm: str = "maml"
    task: str = "omniglot"
    split: str = "small1"
    ways: int = 5
    shots: int = 1
    queries: int = 15
    meta_batch: int = 32
    inner_lr: float = 0.4
    inner_steps: int = 1
    meta_lr: float = 1e-3
    optimizer: str = "adam"
    iters: int = 60_000
    seed: int = 0
    rotate: bool = True
    resample: str = "reference"
    hidden: tuple = HIDDEN

    def __post_init__(self):
        if self.algorithm not in OMNIGLOT_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(OMNIGLOT_ALGORITHMS)}, got {self.algorithm!r}")
        if self.task != "omniglot":
            raise ValueError(f"task must be 'omniglot', got {self.task!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        for name in ("ways", "shots", "queries", "meta_batch", "iters"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.ways < 2:
            raise ValueError(f"ways must be at least 2 (a 1-way task has nothing to classify), got {self.ways}")
        if self.shots + self.queries > 20:
            raise ValueError(f"shots + queries = {self.shots + self.queries} exceeds the 20 drawings per character")
        if not _is_int(self.inner_steps) or self.inner_steps < 0:
            raise ValueError(f"inner_steps must be a non-negative integer, got {self.inner_steps!r}")
        if self.algorithm == "reptile" and self.inner_steps < 1:
            raise ValueError("reptile needs inner_steps ≥ 1 (with S = 0 its update is zero)")
        for name in ("inner_lr", "meta_lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.rotate, bool):
            raise ValueError(f"rotate must be True or False, got {self.rotate!r}")
        if self.resample not in ("reference", "lanczos"):
            raise ValueError(f"resample must be 'reference' or 'lanczos', got {self.resample!r}")
        hidden = tuple(self.hidden) if isinstance(self.hidden, (list, tuple)) else ()
        if not hidden or any(not _is_int(h) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be one or more positive integers, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))

    @classmethod
    def for_algorithm(cls, algorithm="maml", **overrides):
        """Reference defaults for the number of ways, then the algorithm's, then ``overrides``."""
        ways = overrides.get("ways") or cls.ways
        values = dict(WAYS_DEFAULTS.get(ways, {}))
        values.update(ALGO_DEFAULTS.get(algorithm, {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(algorithm=algorithm, **values)



# ------------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class OmniglotData:
    train: object                 # Alphabets
    heldout: object = None        # Alphabets of held-out alphabets (or characters, for "full")
    lake: object = None           # LakeRuns
    heldout_name: str = ""


def _file(data_dir, name, cache_dir, fetch):
    path = Path(data_dir) / name
    if path.is_file():
        return path
    cached = Path(cache_dir) / name if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return cached
    if fetch:
        return download(name, cache_dir)
    return None


def load_split(data_dir, split="small1", *, cache_dir=None, resample="reference", fetch=False):
    """The training characters, held-out test characters and Lake's runs of a split (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise OmniglotError(f"--data-dir {str(data_dir)!r} is not a folder; it should hold the Omniglot zips "
                            f"({', '.join(sorted(KNOWN_SHA256))})")
    kw = dict(cache_dir=cache_dir, resample=resample)

    def need(name):
        path = _file(data_dir, name, cache_dir, fetch)
        if path is None:
            hint = " (or pass --download)" if name in STRUCTURE and name not in KNOWN_SHA256 else ""
            raise OmniglotError(f"split {split!r} needs {name}, which is not in {str(data_dir)!r}{hint}; place the "
                                f"official file there")
        return path

    def maybe(name):
        return _file(data_dir, name, cache_dir, False)

    lake_path = maybe("all_runs.zip")
    lake = load_lake_runs(lake_path, **kw) if lake_path else None
    evaluation = maybe("images_evaluation.zip")
    if split == "full":
        both = load_alphabets(need("images_background.zip"), **kw).merge(
            load_alphabets(need("images_evaluation.zip"), **kw))
        order = np.random.default_rng(FULL_SPLIT_SEED).permutation(both.num_characters)
        train, test = (_subset(both, order[:FULL_SPLIT_TRAIN]), _subset(both, order[FULL_SPLIT_TRAIN:]))
        return OmniglotData(train, test, lake, f"{test.num_characters} held-out characters (MAML protocol)")
    small1 = load_alphabets(need("images_background_small1.zip"), **kw)
    if split == "small1":
        small2_path = maybe("images_background_small2.zip")
        if evaluation:
            heldout, name = load_alphabets(evaluation, **kw), "evaluation alphabets"
        elif small2_path:
            heldout = load_alphabets(small2_path, **kw).without(small1)
            name = f"held-out alphabets {', '.join(heldout.alphabets)} (background small 2 minus small 1)"
        else:
            heldout, name = None, ""
        return OmniglotData(small1, heldout, lake, name)
    train = small1.merge(load_alphabets(need("images_background_small2.zip"), **kw))
    heldout = load_alphabets(evaluation, **kw) if evaluation else None
    return OmniglotData(train, heldout, lake, "evaluation alphabets" if heldout is not None else "")


def _subset(alphabets, index):
    from ..tasks.omniglot import Alphabets
    index = np.sort(np.asarray(index))
    return Alphabets(alphabets.images[index], alphabets.alphabet_of[index], alphabets.alphabets,
                     tuple(np.array(alphabets.characters)[index]), alphabets.source)


# ------------------------------------------------------------------------------------------------ training
def _pretrain_batch(rng, data, config):
    """A minibatch of as many images as a meta-batch holds, labelled by class = character × 4 + quarter turns."""
    n = config.meta_batch * config.ways * (config.shots + config.queries)
    chars = rng.integers(data.num_characters, size=n)
    drawings = rng.integers(data.images.shape[1], size=n)
    turns = rng.integers(4, size=n) if config.rotate else np.zeros(n, dtype=np.int64)
    images = rotate_images(data.images[chars, drawings], turns)
    return to_inputs(images)[None], (chars * 4 + turns)[None].astype(np.int64)


def _pretrain_classes(data):
    return data.num_characters * 4


def _init_params(config, rng, data):
    if config.algorithm == "protonet":
        return init_classifier(rng, None, hidden=config.hidden)
    ways = _pretrain_classes(data) if config.algorithm == "pretrain" else config.ways
    return init_classifier(rng, ways, hidden=config.hidden)


def _sizes(config, params):
    return [int(np.shape(params[0])[0])] + [int(np.shape(w)[1]) for w in params[0::2]]


def _make_step(config, data):
    """(params, rng) -> (loss, grads): one training iteration's gradient for the configured algorithm."""
    tasks = OmniglotTasks(data, rotate=config.rotate)
    if config.algorithm == "pretrain":
        def loss_fn(p, x, y):
            return ops.mean(classifier_loss(p, x, y))

        def step(params, rng):
            x, y = _pretrain_batch(rng, data, config)
            loss, grads = value_and_grad(loss_fn)(params, x, y)
            return float(loss), grads
        return step

    def step(params, rng):
        support, query, _ = tasks.sample(rng, config.meta_batch, config.ways, config.shots, config.queries)
        if config.algorithm == "protonet":
            return protonet_gradient(params, support, query, ways=config.ways, embed=embed)
        return ALGORITHMS[config.algorithm](params, support, query, inner_lr=config.inner_lr,
                                            inner_steps=config.inner_steps, task_loss=classifier_loss)
    return step


def _metadata(config, params, iteration, rng, wall, evals, optimizer):
    from .. import __version__
    return {"algorithm": config.algorithm, "task": "omniglot", "config": config.to_dict(),
            "model": {"sizes": _sizes(config, params), "kind": "embedding" if config.algorithm == "protonet" else
                      "classifier", "normalization": "per-task (mamlnp.models.fewshot)", "dtype": "float32",
                      "layout": "params = [W1, b1, ...]; hidden layer: relu(task_normalize(h @ W) + b); "
                                "output layer (classifier only): h @ W + b"},
            "optimizer": {"name": config.optimizer, **{k: float(v) for k, v in asdict(optimizer).items()}},
            "iteration": int(iteration), "complete": bool(iteration >= config.iters),
            "rng_state": rng.bit_generator.state, "wall_time_s": float(wall), "evals": evals,
            "mamlnp_version": __version__, "numpy_version": np.__version__}


def train_omniglot(config, data, out=None, *, resume=False, overwrite=False, checkpoint_every=500,
                   eval_every=1000, progress=None, verbose=False):
    """Train ``config`` on ``data.train``; return ``(params, loss_history, wall_time_s)``.

    Checkpoints (``out/checkpoint.npz``) at iteration 0, every ``checkpoint_every`` iterations and at the end;
    ``resume=True`` continues bit-exactly. NaN/inf stops training with :class:`TrainingDiverged` and keeps the
    last good checkpoint. Every ``eval_every`` iterations the mean accuracy on 100 validation episodes from the
    *training* characters is logged (a fit monitor, not a test number).
    """
    if not isinstance(config, OmniglotConfig):
        raise TypeError(f"config must be an OmniglotConfig, got {type(config).__name__}")
    ckpt_file = None
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"output folder {str(out)!r} is a file, not a directory")
        ckpt_file = out / "checkpoint.npz"
        if not resume and ckpt_file.exists() and not overwrite:
            raise FileExistsError(f"{str(out)!r} already holds a checkpoint; resume it or choose another folder")
    optimizer = OPTIMIZERS[config.optimizer](lr=config.meta_lr)
    history = np.zeros(config.iters)
    if resume:
        ckpt = read_checkpoint(ckpt_file)
        saved = OmniglotConfig.from_dict(ckpt.metadata.get("config") or {})
        diffs = [f"{k}: checkpoint has {v!r}, requested {config.identity()[k]!r}"
                 for k, v in saved.identity().items() if config.identity()[k] != v]
        if diffs:
            raise ConfigMismatch(f"cannot resume {ckpt.path}: " + "; ".join(diffs))
        start = int(ckpt.metadata["iteration"])
        if start > config.iters:
            raise ConfigMismatch(f"cannot resume {ckpt.path} to iters={config.iters}: it is at iteration {start}")
        params = [np.array(p) for p in ckpt.params]
        opt_state = ckpt.opt_state
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt.metadata["rng_state"]
        history[:start] = ckpt.loss_history
        evals, wall_before = list(ckpt.metadata.get("evals", [])), float(ckpt.metadata.get("wall_time_s", 0.0))
    else:
        rng = np.random.default_rng(config.seed)
        params = _init_params(config, rng, data.train)
        opt_state = optimizer.init(params)
        start, evals, wall_before = 0, [], 0.0
    gradient = _make_step(config, data.train)
    began = time.perf_counter()
    state = LoopState(params, opt_state, start, (ckpt_file, start) if resume else (None, None))

    def save(done):
        if ckpt_file is not None:
            save_checkpoint(ckpt_file, state.params,
                            _metadata(config, state.params, done, rng, wall_before + time.perf_counter() - began,
                                      evals, optimizer),
                            opt_state=state.opt_state, loss_history=history[:done])
            state.last_saved = (ckpt_file, done)

    if not resume:
        save(0)
    from tqdm.auto import tqdm
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = tqdm(total=config.iters, initial=start, disable=not show, desc=config.algorithm, unit="it",
               file=sys.stderr, dynamic_ncols=True, mininterval=1.0)

    def say(line):
        if verbose:
            tqdm.write(line, file=sys.stderr)

    inner = "" if config.algorithm in ("protonet", "pretrain") else f"α={config.inner_lr}, S={config.inner_steps}, "
    say(f"[{config.algorithm}] {config.ways}-way {config.shots}-shot on {config.split} "
        f"({data.train.num_characters} characters{' × 4 rotations' if config.rotate else ''}), iterations {start}"
        f"→{config.iters}, meta-batch {config.meta_batch}, {inner}{config.optimizer} lr={config.meta_lr}, "
        f"seed {config.seed}")

    def step(it):
        loss, grads = gradient(state.params, rng)
        return loss, grads, None if np.isfinite(loss) else f"the loss is {loss}"

    def after(done):
        if done % 50 == 0 and show:
            bar.set_postfix_str(f"loss {np.mean(history[done - 50:done]):.3f}", refresh=False)
        if done % eval_every == 0 or done == config.iters:
            acc = _monitor(config, state.params, data.train)
            evals.append({"iteration": done, "train_episode_accuracy": acc})
            say(f"[{config.algorithm}] iteration {done}/{config.iters}: loss {np.mean(history[max(0, done - eval_every):done]):.4f}"
                f" (mean of last {min(eval_every, done)}); accuracy on 100 episodes of training characters {acc:.3f}")

    run_iterations(state, iters=config.iters, rng=rng, optimizer=optimizer, history=history, step=step, after=after,
                   save=save, checkpoint_every=checkpoint_every, bar=bar, note=lambda loss: f" (loss {loss:.4g})")
    done, params = state.done, state.params
    return params, history[:done].copy(), wall_before + time.perf_counter() - began


def _monitor(config, params, data):
    """Mean query accuracy on 100 fixed episodes of the training characters (its own seed stream)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 99]))
    support, query, _ = OmniglotTasks(data, rotate=config.rotate).sample(rng, 100, config.ways, config.shots,
                                                                         config.queries)
    steps = 50 if config.algorithm == "pretrain" else config.inner_steps  # a fresh head needs more than one step
    return float(np.mean(_method_accuracy(config.to_dict(), params, support, query, config.ways, steps)))


# ------------------------------------------------------------------------------------------------ evaluation
def test_settings(data):
    """The evaluation settings available for ``data``: (name, ways, shots, source)."""
    out = []
    if data.heldout is not None:
        out += [("5-way 1-shot", 5, 1, "heldout"), ("5-way 5-shot", 5, 5, "heldout"),
                ("20-way 1-shot", 20, 1, "heldout")]
    if data.lake is not None:
        out.append(("Lake's 20 runs (20-way 1-shot, within alphabet)", 20, 1, "lake"))
    return out


def _episodes(data, setting_index, ways, shots, source, tasks, seed):
    if source == "lake":
        return data.lake.episodes()
    rng = np.random.default_rng(np.random.SeedSequence([seed, setting_index]))
    support, query, _ = OmniglotTasks(data.heldout).sample(rng, tasks, ways, shots, EVAL_QUERIES)
    return support, query


def _method_accuracy(config, params, support, query, ways, steps):
    """Per-task accuracy of a trained model (``config`` a dict) after ``steps`` (an int) adaptation steps."""
    algo = config["algorithm"]
    if algo == "protonet":
        return protonet_accuracy(params, support, query, ways=ways)
    if algo == "pretrain":
        return finetune_head_accuracy(params[:-2], support, query, ways=ways, steps=(steps,))[steps]
    if np.shape(params[-1])[-1] != ways:
        return None  # a classifier trained for another number of ways
    return adapted_accuracy(params, support, query, inner_lr=config["inner_lr"], steps=(steps,))[steps]


def summarize_accuracy(per_task):
    """Mean accuracy ± 95% CI (1.96·s/√n, s the sample std over n tasks), in percent."""
    per_task = np.asarray(per_task, dtype=np.float64)
    n = per_task.size
    std = float(np.std(per_task, ddof=1)) if n > 1 else float("nan")
    return {"accuracy": 100 * float(np.mean(per_task)), "ci95": 100 * 1.96 * std / np.sqrt(n) if n > 1 else None,
            "tasks": int(n)}


def _lake_result(per_run):
    err = 100 * (1 - np.asarray(per_run))
    return {"error_per_run": [round(float(e), 2) for e in err], "mean_error": float(np.mean(err)),
            "ci95": float(1.96 * np.std(err, ddof=1) / np.sqrt(err.size)), "runs": int(err.size)}


def evaluate_checkpoint(params, config, data, *, tasks=600, seed=DEFAULT_EVAL_SEED, steps=None):
    """Accuracy of a trained model in every available test setting (see :func:`test_settings`).

    Gradient-based models adapt with their training α for each S in ``steps`` (default: the training S and 10);
    ProtoNets need no steps; pretraining fits a fresh head for 50 steps (default). Settings whose number of ways
    the model cannot output (a 5-way classifier on 20-way tasks) are reported as not applicable.
    """
    algo = config["algorithm"]
    if steps is None:
        steps = [50] if algo == "pretrain" else sorted({int(config["inner_steps"]), 10})
    if algo == "protonet":
        steps = [0]
    results = []
    for i, (name, ways, shots, source) in enumerate(test_settings(data)):
        support, query = _episodes(data, i, ways, shots, source, tasks, seed)
        row = {"setting": name, "ways": ways, "shots": shots, "source": source, "by_steps": {}}
        for s in steps:
            acc = _method_accuracy(config, params, support, query, ways, s)
            if acc is None:
                row["not_applicable"] = f"a {np.shape(params[-1])[-1]}-way classifier cannot answer {ways}-way tasks"
                break
            row["by_steps"][str(s)] = _lake_result(acc) if source == "lake" else summarize_accuracy(acc)
        results.append(row)
    return {"steps": [int(s) for s in steps], "settings": results}


def evaluate_baselines(data, *, tasks=600, seed=DEFAULT_EVAL_SEED, scratch_steps=50, scratch_lr=0.1,
                       scratch_tasks=None):
    """Pixel nearest neighbour and a network trained from scratch on each support set, in every test setting.

    Training a whole network per task is the expensive part: ``scratch_tasks`` limits it to the first that many
    tasks of each setting (the same tasks as the other methods'; the count is in the result). Lake's 20 runs are
    always all used.
    """
    results = []
    for i, (name, ways, shots, source) in enumerate(test_settings(data)):
        support, query = _episodes(data, i, ways, shots, source, tasks, seed)
        nn = pixel_nn_accuracy(support, query)
        if scratch_tasks is not None and source != "lake":
            support = tuple(a[:scratch_tasks] for a in support)
            query = tuple(a[:scratch_tasks] for a in query)
        scratch = scratch_accuracy(support, query, ways=ways, rng=np.random.default_rng(seed), inner_lr=scratch_lr,
                                   steps=(scratch_steps,))[scratch_steps]
        fmt = _lake_result if source == "lake" else summarize_accuracy
        results.append({"setting": name, "ways": ways, "shots": shots, "source": source,
                        "pixel_nn": fmt(nn), "scratch": fmt(scratch)})
    return {"scratch_steps": scratch_steps, "scratch_lr": scratch_lr, "settings": results}


def _cell(entry, tasks=None):
    if entry is None:
        return "n/a"
    if "mean_error" in entry:
        return f"{entry['mean_error']:.1f} % error (± {entry['ci95']:.1f})"
    note = f" ({entry['tasks']} tasks)" if tasks is not None and entry["tasks"] != tasks else ""
    return f"{entry['accuracy']:.1f} ± {entry['ci95']:.1f} %{note}"


def format_report(models, baselines, *, tasks, seed, heldout_name):
    """A markdown table: one row per model/baseline, one column per setting."""
    settings = [r["setting"] for r in (baselines or models[0]["evaluation"])["settings"]]
    head = (f"Omniglot test episodes: {tasks} per N-way setting on {heldout_name or 'no held-out alphabets'} "
            f"(seed {seed}, {EVAL_QUERIES} queries per class), mean accuracy ± 95% CI; Lake's 20 runs: mean error "
            "over the runs ± 95% CI (Lake's Modified Hausdorff Distance baseline: 38.8 % error).")
    lines = [head, "", "| model | " + " | ".join(settings) + " |", "|---|" + "---|" * len(settings)]
    for m in models:
        ev = m["evaluation"]
        for s in ev["steps"]:
            label = m["label"] + ("" if m["algorithm"] == "protonet" else f", S={s}")
            cells = []
            for row in ev["settings"]:
                cells.append("n/a" if "not_applicable" in row else _cell(row["by_steps"].get(str(s))))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if baselines:
        for key, label in (("pixel_nn", "pixel nearest neighbour"),
                           ("scratch", f"from scratch ({baselines['scratch_steps']} SGD steps, "
                                       f"lr {baselines['scratch_lr']})")):
            lines.append(f"| {label} | " + " | ".join(_cell(r[key], tasks) for r in baselines["settings"]) + " |")
    return "\n".join(lines)


LABELS = {"maml": "MAML", "fomaml": "first-order MAML", "reptile": "Reptile", "article": "article §4 loop",
          "protonet": "Prototypical network", "pretrain": "pretrained body + fresh head"}


def _label(md):
    cfg = md.get("config", {})
    return f"{LABELS.get(md.get('algorithm'), md.get('algorithm'))} ({cfg.get('ways')}-way {cfg.get('shots')}-shot " \
           f"training, {md.get('iteration')} it.)"


# ------------------------------------------------------------------------------------------------ CLI
TRAIN_DESCRIPTION = """\
Meta-train the MAML paper's 784-256-128-64-64-N classifier (per-task normalization) on Omniglot episodes.

--data-dir DIR must hold the official zips (images_background_small1.zip, images_background_small2.zip,
all_runs.zip; for --split full also images_background.zip and images_evaluation.zip, or pass --download).
Decoded images are cached under --cache-dir (default $MAMLNP_CACHE or ~/.cache/mamlnp/omniglot).

Defaults follow the MAML reference code: 5-way — meta-batch 32, α = 0.4, S = 1; 20-way — meta-batch 16,
α = 0.1, S = 5; Adam 1e-3; 15 query images per class; rotations by multiples of 90° as new classes.
The run folder (--out, default runs/omniglot-ALGO-Nway-Kshot-seedSEED) gets checkpoints; --resume continues
bit-exactly. After training the model and the baselines (pixel nearest neighbour, training from scratch) are
evaluated on 600 seeded test episodes per setting and Lake's 20 runs; eval.md and eval.json are written."""


def add_train_parser(families, positive_int, nonnegative_int, positive_float):
    """The ``train omniglot`` sub-parser (added to the CLI's family sub-parsers)."""
    import argparse
    t = families.add_parser("omniglot", help="few-shot classification of handwritten characters (article §5.1)",
                            description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = t.add_argument_group("what to train")
    g.add_argument("--algo", choices=OMNIGLOT_ALGORITHMS, default=None, help="default maml")
    g.add_argument("--ways", type=positive_int, help="N classes per task (default 5)")
    g.add_argument("--shots", type=positive_int, help="K support images per class (default 1)")
    g.add_argument("--queries", type=positive_int, help="query images per class (default 15)")
    g.add_argument("--meta-batch", type=positive_int, metavar="T")
    g.add_argument("--inner-lr", type=positive_float, metavar="ALPHA")
    g.add_argument("--inner-steps", type=nonnegative_int, metavar="S")
    g.add_argument("--meta-lr", type=positive_float, metavar="BETA")
    g.add_argument("--iters", type=positive_int, metavar="N", help="iterations (default 60000, the reference's)")
    g.add_argument("--seed", type=nonnegative_int)
    g.add_argument("--split", choices=SPLITS, help="default small1")
    g.add_argument("--no-rotate", action="store_true", help="no rotated classes during training")
    g.add_argument("--resample", choices=("reference", "lanczos"), help="28×28 resize (default reference)")
    d = t.add_argument_group("data, run folder, output")
    d.add_argument("--data-dir", required=True, metavar="DIR", help="folder holding the Omniglot zips")
    d.add_argument("--cache-dir", metavar="DIR", help="decoded-array cache (default ~/.cache/mamlnp/omniglot)")
    d.add_argument("--download", action="store_true", help="fetch missing full zips from the dataset repository")
    d.add_argument("--out", metavar="DIR")
    d.add_argument("--resume", metavar="DIR")
    d.add_argument("--overwrite", action="store_true")
    d.add_argument("--checkpoint-every", type=positive_int, default=500, metavar="M")
    d.add_argument("--eval-every", type=positive_int, default=1000, metavar="E")
    d.add_argument("--eval-tasks", type=positive_int, default=600, metavar="N")
    d.add_argument("--eval-seed", type=nonnegative_int, default=DEFAULT_EVAL_SEED)
    d.add_argument("--no-baselines", action="store_true", help="do not evaluate the pixel-NN / scratch baselines")
    d.add_argument("--quiet", action="store_true")
    return t


_FLAGS = ("algo", "ways", "shots", "queries", "meta_batch", "inner_lr", "inner_steps", "meta_lr", "iters", "seed",
          "split", "resample")


def cmd_train(args, usage_error):
    started = time.perf_counter()
    overrides = {("algorithm" if f == "algo" else f): getattr(args, f) for f in _FLAGS if getattr(args, f) is not None}
    if args.no_rotate:
        overrides["rotate"] = False
    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out).resolve() != run_dir.resolve():
            raise usage_error(f"--out {args.out!r} and --resume {args.resume!r} name different folders")
        if args.overwrite:
            raise usage_error("--resume and --overwrite contradict each other")
        saved = read_checkpoint(run_dir)
        if saved.metadata.get("task") != "omniglot":
            raise usage_error(f"{saved.path} is a {saved.metadata.get('task')!r} run, not an omniglot one")
        config = OmniglotConfig.from_dict({**saved.metadata["config"], **overrides})
        resume = True
    else:
        config = OmniglotConfig.for_algorithm(overrides.pop("algorithm", "maml"), **overrides)
        run_dir = Path(args.out or f"runs/omniglot-{config.algorithm}-{config.ways}way-{config.shots}shot-seed{config.seed}")
        if run_dir.exists() and not run_dir.is_dir():
            raise usage_error(f"--out {str(run_dir)!r} is a file, not a directory; nothing was written")
        if has_checkpoint(run_dir) and not args.overwrite:
            raise usage_error(f"{str(run_dir)!r} already holds a checkpoint; continue it with --resume {run_dir}, "
                              "start over with --overwrite, or choose another --out")
        resume = False
    with job_run_folder(run_dir, "--resume" if resume else "--out"):
        return _train_job(args, config, run_dir, resume, usage_error, started)


def _train_job(args, config, run_dir, resume, usage_error, started):
    """Load the data, train, evaluate and write eval.md / eval.json (atomically) into the locked ``run_dir``."""
    try:
        data = load_split(args.data_dir, config.split, cache_dir=args.cache_dir, resample=config.resample,
                          fetch=args.download)
    except OmniglotError as err:
        raise usage_error(str(err)) from None
    if config.ways > data.train.num_characters:
        raise usage_error(f"--ways {config.ways} exceeds the {data.train.num_characters} training characters")
    verbose = not args.quiet
    params, history, wall = train_omniglot(config, data, run_dir, resume=resume, overwrite=args.overwrite,
                                           checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                                           progress=None if verbose else False, verbose=verbose)
    ckpt = read_checkpoint(run_dir)
    model = {"label": _label(ckpt.metadata), "checkpoint": str(ckpt.path), "algorithm": config.algorithm,
             "config": config.to_dict(), "wall_time_s": ckpt.metadata["wall_time_s"],
             "evaluation": evaluate_checkpoint(ckpt.params, config.to_dict(), data, tasks=args.eval_tasks,
                                               seed=args.eval_seed)}
    baselines = None if args.no_baselines else evaluate_baselines(data, tasks=args.eval_tasks, seed=args.eval_seed)
    report = format_report([model], baselines, tasks=args.eval_tasks, seed=args.eval_seed,
                           heldout_name=data.heldout_name)
    atomic_write_text(run_dir / "eval.md", report + "\n")
    write_json(run_dir / "eval.json", {"tasks": args.eval_tasks, "seed": args.eval_seed, "heldout": data.heldout_name,
                                       "models": [model], "baselines": baselines})
    print(report)
    if verbose:
        print(f"\ncheckpoint: {ckpt.path} (training {wall:.0f} s)\ntable:      {run_dir / 'eval.md'} and eval.json"
              f"\nwall time:  {time.perf_counter() - started:.0f} s for this command")
    return 0


def cmd_evaluate(args, usage_error):
    """``evaluate`` for omniglot checkpoints: every setting, every model, and the baselines (``--json``)."""
    if not getattr(args, "data_dir", None):
        raise usage_error("evaluating an omniglot checkpoint needs --data-dir DIR (the folder of the Omniglot zips)")
    ckpts = [read_checkpoint(p) for p in args.checkpoints]
    if any(c.metadata.get("task") != "omniglot" for c in ckpts):
        raise usage_error("evaluate either omniglot checkpoints or sinusoid ones in one call, not both")
    split = ckpts[0].metadata["config"]["split"]
    try:
        data = load_split(args.data_dir, split, cache_dir=getattr(args, "cache_dir", None),
                          resample=ckpts[0].metadata["config"]["resample"])
    except OmniglotError as err:
        raise usage_error(str(err)) from None
    steps = None if args.steps == [0, 1, 10] else args.steps  # the sinusoid default means "the model's default"
    models = [{"label": _label(c.metadata), "checkpoint": str(c.path), "algorithm": c.metadata["algorithm"],
               "config": c.metadata["config"], "iteration": c.metadata["iteration"],
               "wall_time_s": c.metadata.get("wall_time_s"),
               "evaluation": evaluate_checkpoint(c.params, c.metadata["config"], data, tasks=args.tasks, seed=args.seed,
                                                 steps=steps)} for c in ckpts]
    baselines = evaluate_baselines(data, tasks=args.tasks, seed=args.seed)
    if args.json:
        print(strict_json({"tasks": args.tasks, "seed": args.seed, "heldout": data.heldout_name, "models": models,
                           "baselines": baselines}, indent=1))
    else:
        print(format_report(models, baselines, tasks=args.tasks, seed=args.seed, heldout_name=data.heldout_name))
    return 0


def cmd_plot(args, usage_error):
    from .omniglot_plots import plot_accuracy_vs_steps, plot_task_grid
    if not getattr(args, "data_dir", None):
        raise usage_error("plotting an omniglot checkpoint needs --data-dir DIR (the folder of the Omniglot zips)")
    ckpt = read_checkpoint(args.checkpoint)
    cfg = ckpt.metadata["config"]
    try:
        data = load_split(args.data_dir, cfg["split"], cache_dir=getattr(args, "cache_dir", None),
                          resample=cfg["resample"])
    except OmniglotError as err:
        raise usage_error(str(err)) from None
    out_dir = Path(args.out_dir)
    prefix = args.prefix if args.prefix != "sinusoid" else "omniglot"
    grid, curve = out_dir / f"{prefix}_tasks.png", out_dir / f"{prefix}_accuracy_vs_steps.png"
    plot_task_grid(ckpt.params, cfg, data, grid, seed=args.seed)
    plot_accuracy_vs_steps([(_label(ckpt.metadata), ckpt.params, cfg)], data, curve, tasks=min(args.tasks, 200),
                           seed=args.seed, max_steps=args.max_steps)
    for f in (grid, curve):
        print(f)
    return 0
