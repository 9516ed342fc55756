"""Task distributions: what a meta-learner is trained and tested on.

====================  =============================================================================
May import: ``mamlnp.engine``, ``mamlnp.models``. ``mamlnp.tasks.SinusoidTasks`` and ``mamlnp.tasks.sinusoid``
stay importable from here, as before the package was split.
"""
from . import linear, navigation, quadratic
from .linear import LinearTasks
from .permuted_classes import PermutedClassTasks
from .sinusoid import SinusoidTaskPool, SinusoidTasks, sinusoid

__all__ = ["SinusoidTasks", "SinusoidTaskPool", "sinusoid", "quadratic", "PermutedClassTasks", "linear", "LinearTasks",
           "navigation"]
