"""Guide kinds (SPEC §5) and the registry behind ``--guide``."""

from guides.amortized import AmortizedGuide

GUIDES = {"amortized": AmortizedGuide}


def build_guide(name: str, x_shape, **options):
    if name not in GUIDES:
        raise ValueError(f"unknown guide {name!r}; choose from {', '.join(GUIDES)}")
    return GUIDES[name](x_shape, **options)


__all__ = ["GUIDES", "AmortizedGuide", "build_guide"]
