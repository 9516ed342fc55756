"""Models, losses and optimizers: pure functions of explicit parameter pytrees, written with ``engine.ops``.

===========  =============================================================================================
``nn``       the MLP of the MAML paper (``mlp``, ``init_mlp``) and its activations
``norm``     batch norm over each task's points (as MAML's classifier) and layer norm, from primitives
``losses``   per-task losses (mean within each task, one value per task): MSE, cross-entropy
``optim``    functional SGD and Adam over parameter pytrees (state in, state out; nothing mutated)
``fewshot``  the MAML paper's Omniglot MLP with per-task normalization (``classifier``, ``embed``)
``policy``   the Gaussian MLP policy of meta-RL (``init_policy``, ``log_prob``, ``policy_fn``)
===========  =============================================================================================

May import: ``mamlnp.engine``.
"""
from . import losses, nn, norm, optim, policy

__all__ = ["losses", "nn", "norm", "optim", "policy"]
