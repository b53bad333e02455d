"""The explicit ELBO written as plain PyTorch: the networks called directly, no Pyro trace, plate
or distribution object (the baseline that Pyro's overhead is measured against)."""

import torch


def gaussian_kl(loc_q, scale_q, loc_p, scale_p) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) summed over the last dim."""
    ratio = (scale_q / scale_p).pow(2)
    return 0.5 * (ratio + ((loc_q - loc_p) / scale_p).pow(2) - 1 - ratio.log()).sum(-1)


def plain_neg_elbo(model, guide, x: torch.Tensor) -> torch.Tensor:
    """−ELBO of SPEC §4 summed over the batch, one reparameterized draw of u and z per image, for the
    SRVAE with the amortized guide and the standard normal prior:
    −[log p(x|y,z) + log p(y|u) − KL(q(u|y) ‖ N(0, I)) − KL(q(z|x) ‖ p(z|y,u))]."""
    y = guide.d(x)
    u_loc, u_scale = guide.q_u_given_y.loc_scale(y)
    z_loc, z_scale = guide.q_z_given_x.loc_scale(x)
    u = u_loc + u_scale * torch.randn_like(u_loc)
    z = z_loc + z_scale * torch.randn_like(z_loc)
    p_y, p_x = model.p_y_given_u, model.p_x_given_yz
    rec_y = p_y.log_likelihood(y, p_y.mean(u))
    rec_x = p_x.log_likelihood(x, p_x.mean(y, z))
    kl_u = gaussian_kl(u_loc, u_scale, 0.0, 1.0)  # KL(q(u|y) ‖ N(0, I))
    kl_z = gaussian_kl(z_loc, z_scale, *model.p_z_given_yu.loc_scale(y, u))
    return -(rec_x + rec_y - kl_u - kl_z).sum()

