"""Models, losses and optimizers: pure functions of explicit parameter pytrees, written with ``engine.ops``.

===========  =============================================================================================
``nn``       the MLP of the MAML paper (``mlp``, ``init_mlp``) and its activations
``losses``   per-task losses (mean within each task, one value per task): MSE, cross-entropy
``optim``    functional SGD and Adam over parameter pytrees (state in, state out; nothing mutated)
``policy``   the Gaussian MLP policy of meta-RL (``init_policy``, ``log_prob``, ``policy_fn``)
===========  =============================================================================================

May import: ``mamlnp.engine``.
"""
from . import losses, nn, optim, policy

__all__ = ["losses", "nn", "optim", "policy"]
