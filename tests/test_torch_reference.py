"""mamlnp's MAML meta-gradient equals torch.func's (only when PyTorch happens to be installed)."""
import numpy as np
import pytest

from mamlnp import meta
from mamlnp.app import torch_reference
from mamlnp.engine.checks import relative_error
from mamlnp.models.nn import init_mlp
from mamlnp.tasks import SinusoidTasks


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch_reference, "torch_available", lambda: False)
    with pytest.raises(ImportError, match="never a dependency"):
        torch_reference.maml_gradient_torch([], None, None, inner_lr=0.01, inner_steps=1)


@pytest.mark.parametrize("order", [1, 2])
def test_maml_gradient_matches_torch_func(order):
    pytest.importorskip("torch", reason="PyTorch is not installed (it is only used for this comparison)")
    rng = np.random.default_rng(5)
    params = init_mlp([1, 20, 20, 1], rng, scheme="glorot")
    support, query, _ = SinusoidTasks().sample(rng, 4, 10)
    ours_value, ours = meta.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=3, order=order)
    theirs_value, theirs = torch_reference.maml_gradient_torch(params, support, query, inner_lr=0.01, inner_steps=3,
                                                               first_order=(order == 1))
    assert ours_value == pytest.approx(theirs_value, rel=1e-12)
    err, where = relative_error(ours, theirs)
    assert err < 1e-10, f"{err:.2e} at {where}"
