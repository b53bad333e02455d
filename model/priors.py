"""Priors p(u) (SPEC §6). Each is a module whose ``forward()`` returns a distribution with
batch shape () and event shape (L_u,); the model's plate broadcasts it over the images."""

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F


class StandardNormalPrior(nn.Module):
    """p(u) = N(0, I)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def forward(self) -> dist.Independent:
        return dist.Normal(self.loc, self.scale).to_event(1)


class MixtureOfGaussiansPrior(nn.Module):
    """p(u) = Σᵢ wᵢ N(mᵢ, diag sᵢ²), i = 1..K, all learnable (seed §4, eq. 17)."""

    def __init__(self, latent_dim: int, components: int = 10):
        super().__init__()
        if components < 1:
            raise ValueError(f"a mixture needs at least one component, got {components}")
        self.logits = nn.Parameter(torch.zeros(components))
        # spread the means so the components start distinct; unit scales
        self.means = nn.Parameter(torch.randn(components, latent_dim))
        self.rho = nn.Parameter(torch.full((components, latent_dim), 0.5413))  # softplus⁻¹(1)

    @property
    def scales(self) -> torch.Tensor:
        return F.softplus(self.rho) + 1e-4

    def forward(self) -> dist.MixtureSameFamily:
        components = dist.Normal(self.means, self.scales).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)


PRIORS = {"normal": StandardNormalPrior, "mog": MixtureOfGaussiansPrior}


def build_prior(name: str, latent_dim: int, components: int = 10) -> nn.Module:
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose from {', '.join(PRIORS)}")
    if name == "mog":
        return MixtureOfGaussiansPrior(latent_dim, components)
    return PRIORS[name](latent_dim)
