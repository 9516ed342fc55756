"""Reference solutions to the exercises of chapter 5.1 (few-shot learning on Omniglot).

Each function answers the stub of the same name in ``05_1_few_shot_learning.ipynb``; the checkers in
:mod:`mamlnp.exercises.ch05_1` accept them (``tests/test_exercises_ch05_1.py`` proves it).
"""
import numpy as np


# ---------------------------------------------------------------------------- exercise 1
def prototype_logits(support_embeddings, support_labels, query_embeddings, ways):
    """−‖f(x_q) − c_k‖² with c_k the mean support embedding of class k; (T, n, d), (T, n), (T, Q, d) -> (T, Q, ways)."""
    onehot = (support_labels[:, None, :] == np.arange(ways)[None, :, None]).astype(float)   # (T, ways, n)
    centres = onehot @ support_embeddings / onehot.sum(-1, keepdims=True)                    # class means (T, ways, d)
    diff = query_embeddings[:, :, None, :] - centres[:, None, :, :]                          # (T, Q, ways, d)
    return -np.sum(diff ** 2, axis=-1)


# ---------------------------------------------------------------------------- exercise 2
def episode(rng, num_classes, ways, shots, queries, drawings=20):
    """N distinct classes; for each, shots + queries distinct drawings split into support and query."""
    classes = rng.choice(num_classes, size=ways, replace=False)
    picks = np.stack([rng.choice(drawings, size=shots + queries, replace=False) for _ in range(ways)])
    return classes, picks[:, :shots], picks[:, shots:]


# ---------------------------------------------------------------------------- exercise 3
def rotation_classes(images):
    """(C, D, H, W) -> (4C, D, H, W): class 4c + k is character c turned by k quarter turns counter-clockwise."""
    turned = np.stack([np.rot90(images, k, axes=(-2, -1)) for k in range(4)], axis=1)       # (C, 4, D, H, W)
    return turned.reshape((-1,) + images.shape[1:])
