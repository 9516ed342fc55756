"""The meta-learning algorithms, one module per family; ``mamlnp.meta`` is this package under its old name.

===================  ======================================================================================
``maml``             the inner loop and the exact meta-gradient (I − αH)⋯∇L, first-order MAML, ``adapt``
``reptile``          Reptile's pseudo-gradient θ − mean θ^(S)
``multitask``        plain multi-task training, and the article's §4 loop (which is the same update)
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
from .maml import (adapt, adaptation_losses, fomaml_gradient, maml_gradient, meta_gradient, task_loss_fn,
                   validate_meta_batch)
from .maml_rl import RL_ALGORITHMS, adapt_policy, meta_rl_gradient
from .multitask import article_section4_gradient, multitask_gradient
from .protonet import protonet_gradient, prototypical_logits
from .policy_gradient import reward_to_go, surrogate_loss  # (the function policy_gradient stays in its module, whose name it would shadow)
from .reptile import reptile_gradient
from . import common_mean, darts, hard_sharing, learned_optimizer

__all__ = [
    "meta_gradient", "maml_gradient", "adapt", "adaptation_losses", "fomaml_gradient", "reptile_gradient",
    "multitask_gradient", "article_section4_gradient", "task_loss_fn", "validate_meta_batch", "ALGORITHMS",
    "prototypical_logits", "protonet_gradient",
    "meta_rl_gradient", "adapt_policy", "RL_ALGORITHMS", "reward_to_go", "surrogate_loss",
    "learned_optimizer",
]

# name -> gradient function(params, support, query, *, inner_lr, inner_steps, loss, activation)
ALGORITHMS = {
    "maml": maml_gradient,
    "fomaml": fomaml_gradient,
    "reptile": reptile_gradient,
    "multitask": multitask_gradient,
    "article": article_section4_gradient,
}
