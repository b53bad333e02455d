"""Guide kinds (SPEC §5) and the registry behind ``--guide``."""

from guides.amortized import AmortizedGuide
from guides.local import LocalGuide
from guides.semi_amortized import SemiAmortizedGuide
from guides.vae import AmortizedVAEGuide

GUIDES = {"amortized": AmortizedGuide, "local": LocalGuide, "semi-amortized": SemiAmortizedGuide}
VAE_GUIDES = {"amortized": AmortizedVAEGuide}


def guide_kind(name: str, model: str = "srvae") -> type:
    """The class of guide ``name`` for the model kind ``model`` ("srvae" or the "vae" baseline): what it
    supports is declared on it (``DownscalingGuide``)."""
    registry = VAE_GUIDES if model == "vae" else GUIDES
    if name not in registry:
        raise ValueError(f"unknown guide {name!r} for model {model}; choose from {', '.join(registry)}")
    return registry[name]


def build_guide(name: str, x_shape, model: str = "srvae", **options):
    """The guide ``name`` for the model kind ``model``."""
    return guide_kind(name, model)(x_shape, **options)


__all__ = ["GUIDES", "VAE_GUIDES", "AmortizedGuide", "AmortizedVAEGuide", "LocalGuide", "SemiAmortizedGuide",
           "build_guide", "guide_kind"]
