"""Issue 6: the exp-based ELU is nn.ELU's function and gradient."""

import torch
from torch.nn import functional as F

from model.activation import ELU


def test_matches_torch_elu_and_its_gradient_over_a_wide_range():
    h = torch.linspace(-40, 40, 200_001).requires_grad_()
    ours, theirs = ELU()(h), F.elu(h)
    assert (ours - theirs).abs().max().item() < 1e-7
    (g_ours,), (g_theirs,) = torch.autograd.grad(ours.sum(), h), torch.autograd.grad(theirs.sum(), h)
    assert (g_ours - g_theirs).abs().max().item() < 1e-7 and bool(torch.isfinite(g_ours).all())


def test_gradcheck_in_double_precision():
    h = torch.randn(64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ELU(), (h,))
