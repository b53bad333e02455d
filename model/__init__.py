"""The generative side of the SRVAE: conditionals, priors, the Pyro model, the explicit ELBO."""

from model.elbo import ELBOTerms, explicit_elbo
from model.priors import PRIORS, build_prior
from model.srvae import SRVAE

__all__ = ["PRIORS", "SRVAE", "ELBOTerms", "build_prior", "explicit_elbo"]
