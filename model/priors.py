"""Priors p(u) (SPEC §6). Each is a module whose ``forward()`` returns a distribution with
batch shape () and event shape (L_u,); the model's plate broadcasts it over the images."""

import math

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import Permute, affine_coupling
from torch import nn

from model.networks import DiagonalGaussian
from model.scales import softplus_inverse, softplus_scale


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
        self.rho = nn.Parameter(torch.full((components, latent_dim), softplus_inverse(1.0)))  # unit scales

    @property
    def scales(self) -> torch.Tensor:
        return softplus_scale(self.rho)

    def forward(self) -> dist.MixtureSameFamily:
        components = dist.Normal(self.means, self.scales).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)


class VampPrior(nn.Module):
    """p(u) = (1/K) Σₖ q(u | y*ₖ): the encoder's posterior at K learnable pseudo-inputs y*ₖ
    (Tomczak & Welling's VampPrior; SPEC §6). A mixture of diagonal Gaussians, so the explicit
    ELBO bounds its KL as for ``mog``.

    ``encoder`` is the guide's q(u | y) (it returns a diagonal Gaussian per input), registered here
    as a submodule too: the same parameters, shared, trained once (the optimizer takes the parameters
    of model and guide together, without repeats). A guide without an encoder (``local``) gives
    None: the prior then makes an encoder of its own.
    """

    def __init__(self, pseudo_shape, components: int, encoder: nn.Module | None, latent_dim: int | None = None):
        super().__init__()
        if components < 1:
            raise ValueError(f"the VampPrior needs at least one pseudo-input, got {components}")
        # pseudo-inputs y* = sigmoid(logits), so they stay images in [0, 1]
        self.pseudo_logits = nn.Parameter(torch.randn(components, *pseudo_shape) * 0.5 - 1.0)
        self.encoder = encoder if encoder is not None else FlatGaussianEncoder(math.prod(pseudo_shape), latent_dim)

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        return torch.sigmoid(self.pseudo_logits)

    def forward(self) -> dist.MixtureSameFamily:
        components = self.encoder(self.pseudo_inputs)  # batch (K,), event (L,)
        uniform = torch.zeros(components.batch_shape, device=self.pseudo_logits.device)
        return dist.MixtureSameFamily(dist.Categorical(logits=uniform), components)


class FlatGaussianEncoder(nn.Module):
    """N(μ(v), diag σ²(v)) of a flattened image v: the VampPrior's encoder when the guide has none."""

    def __init__(self, in_features: int, latent_dim: int, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.gaussian = DiagonalGaussian(in_features, latent_dim, hidden, depth)

    def forward(self, images):
        return self.gaussian(images.flatten(-3))


class FlowPrior(nn.Module):
    """p(u): N(0, I) pushed through ``layers`` affine coupling layers (RealNVP, as srVAE offers),
    each followed by a reversal of the coordinates; Pyro's own transforms. Its KL has no closed
    form: the explicit ELBO uses a Monte-Carlo KL for it and says so."""

    def __init__(self, latent_dim: int, layers: int = 4, hidden: int = 64):
        super().__init__()
        if latent_dim < 2:
            raise ValueError(f"a coupling flow needs a latent of at least 2 dimensions, got {latent_dim}")
        self.couplings = nn.ModuleList([affine_coupling(latent_dim, hidden_dims=[hidden, hidden])
                                        for _ in range(layers)])
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))
        self.register_buffer("reversal", torch.arange(latent_dim - 1, -1, -1))

    def forward(self) -> dist.TransformedDistribution:
        transforms = []
        for coupling in self.couplings:
            transforms += [coupling, Permute(self.reversal)]
        return dist.TransformedDistribution(dist.Normal(self.loc, self.scale).to_event(1), transforms)


PRIORS = {
    "normal": "N(0, I)",
    "mog": "a learnable mixture of K diagonal Gaussians (--components K)",
    "vamp": "VampPrior: the encoder's posterior at K learnable pseudo-inputs (--components K)",
    "flow": "N(0, I) through affine coupling layers (RealNVP)",
}


def build_prior(name: str, latent_dim: int, components: int = 10, encoder=None, pseudo_shape=None) -> nn.Module:
    """The prior ``name`` over a latent of ``latent_dim``; ``vamp`` needs the guide's ``encoder`` of
    inputs of ``pseudo_shape``."""
    if name == "normal":
        return StandardNormalPrior(latent_dim)
    if name == "mog":
        return MixtureOfGaussiansPrior(latent_dim, components)
    if name == "vamp":
        return VampPrior(pseudo_shape, components, encoder, latent_dim)
    if name == "flow":
        return FlowPrior(latent_dim)
    raise ValueError(f"unknown prior {name!r}; choose from {', '.join(PRIORS)}")
