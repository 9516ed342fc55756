"""The meta-learning algorithms, one module per family; ``mamlnp.meta`` is this package under its old name.

=================  ========================================================================================
``maml``           the inner loop and the exact meta-gradient (I − αH)⋯∇L, first-order MAML, ``adapt``
``reptile``        Reptile's pseudo-gradient θ − mean θ^(S)
``multitask``      plain multi-task training, and the article's §4 loop (which is the same update)
``handwritten``    one MAML step derived by hand in NumPy, no engine: a reference for tests and ``bench``
=================  ========================================================================================

``learned_optimizer`` is the memory-based family: a coordinate-wise LSTM that learns to optimise
(Andrychowicz et al. 2016), meta-trained by truncated backpropagation through the unrolled optimisation.

Every algorithm is vectorised over a leading task axis and takes its per-task loss either as an MLP
(``loss=``, ``activation=``) or as any function ``task_loss(params, x, y) -> (T,)``.

May import: ``mamlnp.engine``, ``mamlnp.models``. Never the application (``mamlnp.app``).
"""
from .maml import (adapt, adaptation_losses, fomaml_gradient, maml_gradient, meta_gradient, task_loss_fn,
                   validate_meta_batch)
from .multitask import article_section4_gradient, multitask_gradient
from .reptile import reptile_gradient
from . import learned_optimizer

__all__ = [
    "meta_gradient", "maml_gradient", "adapt", "adaptation_losses", "fomaml_gradient", "reptile_gradient",
    "multitask_gradient", "article_section4_gradient", "task_loss_fn", "validate_meta_batch", "ALGORITHMS",
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
