"""N-way classification tasks with the labels permuted per task: the setting of the article's §4 code.

The article's ``MamlModel(input_size=64, output_size=10)`` is trained with cross-entropy on tasks of
64-dimensional inputs and 10 classes. Its ``TaskDataset`` is never defined; this is the standard
few-shot construction (as in Omniglot/miniImageNet N-way tasks), on synthetic data:

* a fixed pool of ``classes`` class centres μ_c ~ N(0, I_d) (d = ``dim``), drawn once from ``pool_seed``;
  the first ``train_classes`` are for meta-training, the rest are held out for meta-testing;
* a task picks ``ways`` distinct classes of its split **in random order**: class number j of the task
  gets label j, so the same class carries a different label in every task;
* an example of task label j is x = μ_{c_j} + σ ε, ε ~ N(0, I_d) (σ = ``noise``).

Because the labels are a fresh random permutation in every task, every class is equally likely to carry
every label: no single network can beat chance (accuracy 1/N, cross-entropy log N) *before* it adapts
to a task's support set. Whatever a model does above chance comes from adaptation — which is what
separates MAML from multi-task training (and from the article's loop, which is multi-task training).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import positive_int, sample_sizes

__all__ = ["PermutedClassTasks"]


@dataclass(frozen=True)
class PermutedClassTasks:
    """``ways``-way tasks over Gaussian classes in ``dim`` dimensions, labels permuted per task."""

    dim: int = 64
    ways: int = 10
    classes: int = 200
    train_classes: int = 150
    noise: float = 1.0
    pool_seed: int = 0
    centres: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("dim", "ways", "classes", "train_classes", "pool_seed"):
            if name != "pool_seed" or self.pool_seed < 0:
                positive_int(getattr(self, name), name)
        if not self.train_classes < self.classes:
            raise ValueError(f"train_classes must be below classes ({self.classes}) so that classes are left "
                             f"for testing, got {self.train_classes}")
        for name, count in (("train", self.train_classes), ("test", self.classes - self.train_classes)):
            if count < self.ways:
                raise ValueError(f"the {name} split has {count} classes but a task needs ways = {self.ways}")
        if not (np.isfinite(self.noise) and self.noise > 0):
            raise ValueError(f"noise must be a positive finite number, got {self.noise!r}")
        centres = np.random.default_rng(self.pool_seed).standard_normal((self.classes, self.dim))
        object.__setattr__(self, "centres", centres)

    def sample(self, rng, meta_batch, k_support, k_query=None, split="train", dtype=np.float64):
        """``meta_batch`` tasks with ``k_support`` support and ``k_query`` (default K) query examples **per class**.

        Returns ``(support, query, info)``: ``x`` of shape (T, ways·K, dim) and integer labels ``y`` of shape
        (T, ways·K) for ``loss="cross_entropy"``; ``info["classes"]`` (T, ways) holds each task's pool
        classes in label order (label j is class ``info["classes"][t, j]``).
        """
        k_query = sample_sizes(rng, meta_batch, k_support, k_query)
        if split == "train":
            first, count = 0, self.train_classes
        elif split == "test":
            first, count = self.train_classes, self.classes - self.train_classes
        else:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        # ways distinct classes per task, in random order: the random order is the label permutation
        classes = first + np.argsort(rng.random((meta_batch, count)), axis=1)[:, :self.ways]
        per_class = k_support + k_query
        labels = np.broadcast_to(np.arange(self.ways)[None, :, None], (meta_batch, self.ways, per_class))
        x = self.centres[classes][:, :, None, :] + self.noise * rng.standard_normal(
            (meta_batch, self.ways, per_class, self.dim))
        x = x.astype(dtype, copy=False)

        def part(sl, k):
            return (x[:, :, sl].reshape(meta_batch, self.ways * k, self.dim),
                    np.ascontiguousarray(labels[:, :, sl]).reshape(meta_batch, self.ways * k))

        support = part(slice(0, k_support), k_support)
        query = part(slice(k_support, per_class), k_query)
        return support, query, {"classes": classes}
