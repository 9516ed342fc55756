"""Task distributions: what a meta-learner is trained and tested on.

=============  ===========================================================================================
``sinusoid``   the regression tasks of Finn et al. 2017 (amplitude, phase), ``SinusoidTasks``; a fixed
               finite pool of them, ``SinusoidTaskPool``
``quadratic``  quadratic tasks whose bilevel problem has a closed form (chapter 3.1)
=============  ===========================================================================================

May import: ``mamlnp.engine``, ``mamlnp.models``. ``mamlnp.tasks.SinusoidTasks`` and ``mamlnp.tasks.sinusoid``
stay importable from here, as before the package was split.
"""
from . import quadratic
from .sinusoid import SinusoidTaskPool, SinusoidTasks, sinusoid

__all__ = ["SinusoidTasks", "SinusoidTaskPool", "sinusoid", "quadratic"]
