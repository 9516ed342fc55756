"""``python -m mamlnp bench omniglot``: one Omniglot meta-step in mamlnp against the same step in ``torch.func``.

The step (the MAML paper's 5-way 1-shot setting): sample T = 32 tasks, 5-way 1-shot with 15 queries per class
(28×28 images, rotations), the exact second-order MAML meta-gradient through one inner SGD step (α = 0.4) of the
784-256-128-64-64-5 network with per-task normalization, and an Adam update; float32, one thread. The torch
version computes the same function with ``vmap`` over tasks of ``grad`` of an inner ``grad`` step.

Time: the median over interleaved blocks (A B A B …) in one process, so load on a shared machine falls on both.
Memory: each implementation runs alone in a child process; reported is its peak resident set (``VmHWM``) during
setup and the steps, minus its resident set after the imports: parameters, optimizer state, data and the steps'
temporaries, not the libraries' code; for mamlnp also the NumPy allocation peak seen by ``tracemalloc``.
Images are random bytes of the right shape (the step's cost does not depend on the pixels), so no data is needed.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np

from ..algorithms import maml_gradient
from ..models.fewshot import NORM_EPS, classifier_loss, init_classifier
from ..models.optim import Adam
from ..tasks.omniglot import Alphabets, OmniglotTasks

__all__ = ["bench_omniglot", "numpy_step", "torch_step"]

T, WAYS, SHOTS, QUERIES, ALPHA = 32, 5, 1, 15, 0.4


def _tasks(seed):
    rng = np.random.default_rng(seed)
    data = Alphabets(rng.integers(0, 256, (136, 20, 28, 28), dtype=np.uint8), np.repeat(np.arange(4), 34),
                     ("a", "b", "c", "d"), tuple(str(i) for i in range(136)))
    return OmniglotTasks(data, rotate=True), rng


def numpy_step(seed=0):
    tasks, rng = _tasks(seed)
    params = init_classifier(rng, WAYS)
    opt = Adam(lr=1e-3)
    state = [opt.init(params)]
    box = [params]

    def step():
        support, query, _ = tasks.sample(rng, T, WAYS, SHOTS, QUERIES)
        _, g = maml_gradient(box[0], support, query, inner_lr=ALPHA, inner_steps=1, task_loss=classifier_loss)
        box[0], state[0] = opt.update(g, state[0], box[0])
    return step


def torch_step(seed=0):
    import torch
    from torch.func import grad

    from .torch_reference import maml_meta_loss_torch

    torch.set_num_threads(1)
    tasks, rng = _tasks(seed)
    params = [torch.tensor(p) for p in init_classifier(rng, WAYS)]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-3)

    def net(ps, x):
        h = x
        for layer in range(len(ps) // 2 - 1):
            z = h @ ps[2 * layer]
            z = z - z.mean(0, keepdim=True)
            z = z / torch.sqrt((z * z).mean(0, keepdim=True) + NORM_EPS)
            h = torch.relu(z + ps[2 * layer + 1])
        return h @ ps[-2] + ps[-1]

    def task_loss(ps, x, y):
        return torch.nn.functional.cross_entropy(net(ps, x), y)

    meta_grad = grad(maml_meta_loss_torch(task_loss, inner_lr=ALPHA, inner_steps=1))

    def step():
        support, query, _ = tasks.sample(rng, T, WAYS, SHOTS, QUERIES)
        xs, ys, xq, yq = (torch.from_numpy(np.ascontiguousarray(a)) for a in (*support, *query))
        with torch.no_grad():
            g = meta_grad([p.detach() for p in params], xs, ys, xq, yq)
        for p, gi in zip(params, g):
            p.grad = gi
        opt.step()
    return step


def _status_mb(field):
    """VmRSS / VmHWM of this process from /proc (Linux): unlike ``ru_maxrss``, VmHWM is not inherited across exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_child(which, steps):
    """Run in a child process: print JSON with the peak resident memory of setup + ``steps`` steps above the
    memory after imports (parameters, optimizer state, data and the steps' temporaries; not the libraries)."""
    import tracemalloc
    if which == "torch":
        import torch  # noqa: F401  (the library's own footprint is not the step's)
    before = _status_mb("VmRSS")
    tracemalloc.start()
    step = numpy_step() if which == "numpy" else torch_step()
    for _ in range(steps):
        step()
    traced = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"peak_mb": _status_mb("VmHWM") - before, "after_imports_mb": before,
                      "tracemalloc_peak_mb": traced / 2 ** 20}))


def _child(which, steps):
    code = ("from mamlnp.app.perf import keep_freed_memory; keep_freed_memory(); "
            f"from mamlnp.app.omniglot_bench import _memory_child; _memory_child({which!r}, {steps})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_omniglot(args):
    from .bench import _header, interleaved_medians
    print(_header())
    print(f"meta-step = sample {T} tasks ({WAYS}-way {SHOTS}-shot, {QUERIES} queries/class, 28×28, rotations) + "
          f"exact MAML meta-gradient (S=1, α={ALPHA}) of 784-256-128-64-64-{WAYS} with per-task normalization + "
          "Adam; float32, 1 thread")
    fns, labels = [numpy_step(args.seed)], ["mamlnp"]
    try:
        import torch
    except ImportError:
        print("# torch is not installed: timing mamlnp alone (torch is never a dependency of mamlnp)")
        torch = None
    if torch is not None:
        fns.append(torch_step(args.seed))
        labels.append(f"torch.func {torch.__version__}")
    started = time.perf_counter()
    medians = interleaved_medians(fns, args.steps, args.repeats, warmup=2)
    wall = time.perf_counter() - started
    memory = [_child("numpy" if i == 0 else "torch", max(2, args.steps)) for i in range(len(fns))]
    print(f"{'implementation':24s} {'ms/step':>9s} {'peak memory (MB)':>17s}")
    for label, sec, mem in zip(labels, medians, memory):
        print(f"{label:24s} {sec * 1e3:9.1f} {mem['peak_mb']:17.1f}")
    print("peak memory = peak resident set (VmHWM) of setup + steps, above the process after its imports, each "
          "implementation alone in a child process")
    print(f"mamlnp: NumPy allocation peak (tracemalloc) {memory[0]['tracemalloc_peak_mb']:.1f} MB")
    if len(fns) == 2:
        print(f"mamlnp / torch.func time ratio: {medians[0] / medians[1]:.2f} (median of {args.repeats} interleaved "
              f"blocks of {args.steps} steps; {wall:.0f} s of timing)")
        print(f"mamlnp / torch.func peak-memory ratio: {memory[0]['peak_mb'] / max(memory[1]['peak_mb'], 1e-9):.2f}")
    return 0
