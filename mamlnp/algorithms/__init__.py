"""The meta-learning algorithms, one module per family; ``mamlnp.meta`` is this package under its old name.

===================  ======================================================================================
``maml``             the inner loop and the exact meta-gradient (I − αH)⋯∇L, first-order MAML, ``adapt``
``reptile``          Reptile's pseudo-gradient θ − mean θ^(S)
``multitask``        plain multi-task training, and the article's §4 loop (which is the same update)
``imaml``            implicit MAML: the meta-gradient (I + H/λ)⁻¹∇L^query by conjugate gradients, no inner traces
``metasgd``          Meta-SGD: a learned step size per parameter, θ ← θ − α ⊙ ∇L^support
``anil``             ANIL: only the head adapts; the body's meta-gradient flows through the adapted head
``handwritten``      one MAML step derived by hand in NumPy, no engine: a reference for tests and ``bench``
``common_mean``      linear tasks around a common mean: closed-form risks and crossovers (Denevi et al. 2018)
``hard_sharing``     multi-task learning with a shared body and a head per task
``darts``            architecture search as a bilevel problem (DARTS): first-order, Eq. 7–8 and exact hypergradients
``protonet``         prototypical networks (metric-based): ``prototypical_logits``, ``protonet_gradient``
``fewshot``          few-shot classifiers at test time: adapted / prototype / pixel-NN / scratch / fresh-head accuracy
``policy_gradient``  REINFORCE with reward-to-go and a linear baseline, as a surrogate ``task_loss``
``maml_rl``          MAML / first-order / pretrained / Meta-SGD for RL: the inner step is a policy gradient
===================  ======================================================================================

``learned_optimizer`` is the memory-based family: a coordinate-wise LSTM that learns to optimise
(Andrychowicz et al. 2016), meta-trained by truncated backpropagation through the unrolled optimisation.

Every algorithm is vectorised over a leading task axis and takes its per-task loss either as an MLP
(``loss=``, ``activation=``) or as any function ``task_loss(params, x, y) -> (T,)``.

May import: ``mamlnp.engine``, ``mamlnp.models`` (and ``maml_rl`` the environment it samples from,
``mamlnp.tasks.navigation``). Never the application (``mamlnp.app``).
"""
import numpy as np

from .maml import (adapt, adaptation_losses, fomaml_gradient, maml_gradient, meta_gradient, task_loss_fn,
                   validate_meta_batch)
from .maml_rl import RL_ALGORITHMS, adapt_policy, meta_rl_gradient
from .multitask import article_section4_gradient, multitask_gradient
from .protonet import protonet_gradient, prototypical_logits
from .policy_gradient import reward_to_go, surrogate_loss  # (the function policy_gradient stays in its module, whose name it would shadow)
from .reptile import reptile_gradient
from . import common_mean, darts, hard_sharing, learned_optimizer
from .imaml import imaml_adapt, imaml_gradient
from .metasgd import metasgd_adapt_losses, metasgd_gradient, metasgd_joint_gradient, metasgd_initial_state
from .anil import anil_gradient, anil_inner_lrs

__all__ = [
    "meta_gradient", "maml_gradient", "adapt", "adaptation_losses", "fomaml_gradient", "reptile_gradient",
    "multitask_gradient", "article_section4_gradient", "task_loss_fn", "validate_meta_batch", "ALGORITHMS",
    "prototypical_logits", "protonet_gradient",
    "meta_rl_gradient", "adapt_policy", "RL_ALGORITHMS", "reward_to_go", "surrogate_loss",
    "learned_optimizer",
    "imaml_gradient", "imaml_adapt", "metasgd_gradient", "metasgd_adapt_losses", "anil_gradient", "anil_inner_lrs", "LEARNED_STATE",
    "adaptation_step_sizes",
]

# name -> gradient function(params, support, query, *, inner_lr, inner_steps, loss, activation)
ALGORITHMS = {
    "maml": maml_gradient,
    "fomaml": fomaml_gradient,
    "reptile": reptile_gradient,
    "multitask": multitask_gradient,
    "article": article_section4_gradient,
    "imaml": imaml_gradient,  # lam and cg_steps: keyword defaults λ = 1/α and 5 unless the caller passes them
    "anil": anil_gradient,
    "metasgd": metasgd_joint_gradient,  # its params are the joint state params + inner_lrs (see LEARNED_STATE)
}

# Algorithms whose training state is more than the model's parameters: name -> ``init(params, inner_lr)`` giving
# the extra arrays that follow the model's arrays in the state the outer optimizer steps (and checkpoints save).
LEARNED_STATE = {"metasgd": metasgd_initial_state}


def adaptation_step_sizes(algorithm, params, extra, inner_lr):
    """Per-array step sizes for meta-test adaptation, or None for plain SGD of size ``inner_lr`` on every array.

    Meta-SGD adapts with its learned α (``extra``); ANIL adapts only the head, as it was trained to.
    """
    if algorithm == "metasgd":
        return [np.asarray(a) for a in extra]
    if algorithm == "anil":
        return anil_inner_lrs(params, inner_lr)
    return None
