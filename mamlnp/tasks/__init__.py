"""Task distributions: what a meta-learner is trained and tested on.

=============  ===========================================================================================
``sinusoid``   the regression tasks of Finn et al. 2017 (amplitude, phase), ``SinusoidTasks``
``quadratic``  quadratic tasks whose bilevel problem has a closed form (chapter 3.1)
``navigation`` the 2-D point navigation MDPs of Finn et al. 2017 §5.3 (meta-RL, chapter 5.3)
=============  ===========================================================================================

May import: ``mamlnp.engine``, ``mamlnp.models``. ``mamlnp.tasks.SinusoidTasks`` and ``mamlnp.tasks.sinusoid``
stay importable from here, as before the package was split.
"""
from . import navigation, quadratic
from .sinusoid import SinusoidTasks, sinusoid

__all__ = ["SinusoidTasks", "sinusoid", "quadratic", "navigation"]
