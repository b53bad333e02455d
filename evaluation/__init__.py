"""Evaluation of a trained model: ELBO cross-check, bits/dim, super-resolution, figures."""
