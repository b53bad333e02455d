"""The exp-based ELU is nn.ELU's function and gradient."""

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


def test_the_clamp_sum_is_the_two_branches_bit_for_bit_special_values_included():
    h = torch.cat([torch.randn(100_000, generator=torch.Generator().manual_seed(0)) * 10,
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30, float("inf"), float("-inf"), float("nan")])])
    branches = torch.where(h > 0, h, h.clamp(max=0).exp() - 1)
    out = ELU()(h.requires_grad_())
    assert torch.allclose(out, branches, rtol=0, atol=0, equal_nan=True)  # equal, NaN where NaN
    (grad,) = torch.autograd.grad(out.sum(), h)
    branch_grad = torch.where(branches > 0, 1.0, branches + 1)
    assert torch.allclose(grad, branch_grad, rtol=0, atol=0, equal_nan=True)
