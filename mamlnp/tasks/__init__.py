"""Task distributions: what a meta-learner is trained and tested on.

====================  ====================================================================================
``sinusoid``          the regression tasks of Finn et al. 2017 (amplitude, phase), ``SinusoidTasks``
``quadratic``         quadratic tasks whose bilevel problem has a closed form (chapter 3.1)
``permuted_classes``  N-way Gaussian classification, labels permuted per task (chapter 4, the article's setting)
``linear``            linear regression tasks around a common mean, w_t = w̄ + σε (chapter 5.5), ``LinearTasks``
``omniglot``          Omniglot read from its official zips, N-way K-shot episodes (chapter 5.1), ``OmniglotTasks``
``navigation``        the 2-D point navigation MDPs of Finn et al. 2017 §5.3 (meta-RL, chapter 5.3)
====================  ====================================================================================

May import: ``mamlnp.engine``, ``mamlnp.models``. ``mamlnp.tasks.SinusoidTasks`` and ``mamlnp.tasks.sinusoid``
stay importable from here, as before the package was split.
"""
from . import linear, navigation, quadratic
from .linear import LinearTasks
from .permuted_classes import PermutedClassTasks
from .sinusoid import SinusoidTasks, sinusoid

__all__ = ["SinusoidTasks", "sinusoid", "quadratic", "PermutedClassTasks", "linear", "LinearTasks", "navigation"]
