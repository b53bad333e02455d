"""The units of a scene to super-resolve: from the file's values to the checkpoint's data units (the units it
was trained in: reflectance × 10 000 for a Sentinel-2 model), to the model's own, and back.

A checkpoint's map from its data units v to the model's x is x = (v + ε̄ − low)/span per band (ε̄ = ½, the
mean of the dequantization noise, for integer data). A file's values w reach the data units through
v = a·w + b: ``--scale a --offset b`` when given; else, for a reflectance model, a GeoTIFF's own stated scale
and offset (its physical value w·scale + offset is reflectance when the scale is below 0.01, as the
Sentinel-2 products' 0.0001 is, and reflectance × 10 000 when it is about 1); else a = 1, b = 0.
"""

from dataclasses import dataclass

import numpy as np

from data.folder import REFLECTANCE_FACTOR
from experiment.checks import UsageError

OUT_OF_RANGE_WARNING = 0.01  # a band with more of its valid pixels outside the training range is warned about
UNITS_FACTOR = 100.0  # a scene whose bright pixels are this many times darker or brighter than training's is refused


class Units:
    """The checkpoint's map between its data units v and the model's x, band by band."""

    def __init__(self, normalization: dict, device):
        import torch

        self.low = torch.tensor(normalization["low"], dtype=torch.float32, device=device)[:, None, None]
        self.span = torch.tensor(normalization["span"], dtype=torch.float32, device=device)[:, None, None]
        self.offset = 0.5 if normalization.get("integer", False) else 0.0  # the mean of the dequantization noise

    def to_model(self, values):
        return (values + self.offset - self.low) / self.span

    def to_data(self, x, spread: bool = False):
        """x (…, C, H, W) in the data's units; ``spread``: a std, scaled only."""
        span, low = self.span.cpu().numpy(), self.low.cpu().numpy()
        return x * span if spread else x * span + low - self.offset


@dataclass(frozen=True)
class InputScaling:
    """v = scale · w + offset, from the file's values w to the checkpoint's data units v, and where it came from."""

    scale: float = 1.0
    offset: float = 0.0
    source: str = "none"

    def apply(self, values: np.ndarray) -> np.ndarray:
        if self.source == "none":
            return values
        return values.astype(np.float64) * self.scale + self.offset


def describe_units(normalization: dict) -> str:
    """What the checkpoint's data units are, in words."""
    if normalization.get("units") == "reflectance":
        return f"reflectance × {normalization['span'][0]:.0f} (Sentinel-2 L1C, and L2A with its +1000 offset removed)"
    return "the units of the images the model was trained on"


def input_scaling(scale: float | None, offset: float | None, raster, normalization: dict) -> InputScaling:
    """The map from the file's values to the checkpoint's data units (the module's rule)."""
    if scale is not None or offset is not None:
        return InputScaling(1.0 if scale is None else scale, 0.0 if offset is None else offset, "--scale/--offset")
    stated = [(s, o) for s, o in zip(raster.scales, raster.offsets, strict=False) if (s, o) != (1.0, 0.0)]
    if not stated or normalization.get("units") != "reflectance":
        return InputScaling()
    if len(set(stated)) > 1 or len(stated) != len(raster.scales):
        raise UsageError("the GeoTIFF states a different scale or offset per band; give --scale and --offset that "
                         "map every band to reflectance × 10 000")
    file_scale, file_offset = stated[0]
    factor = REFLECTANCE_FACTOR if abs(file_scale) < 0.01 else 1.0
    return InputScaling(file_scale * factor, file_offset * factor, "the GeoTIFF's scale and offset")


def range_report(values: np.ndarray, valid: np.ndarray, normalization: dict) -> dict | None:
    """Per band, the share of valid pixels outside the range of the training pixels (``observed``); None when
    the checkpoint does not record that range (trained before it was kept)."""
    observed = normalization.get("observed")
    if observed is None:
        return None
    low, high = (np.asarray(part, dtype=np.float64) for part in observed)
    shares = []
    for band, image in enumerate(values):
        pixels = image[valid]
        shares.append(float(((pixels < low[band]) | (pixels > high[band])).mean()) if pixels.size else 0.0)
    return {"training_low": low.tolist(), "training_high": high.tolist(), "share_per_band": shares,
            "warned": [share > OUT_OF_RANGE_WARNING for share in shares]}


def check_units(values: np.ndarray, valid: np.ndarray, normalization: dict, image, scaling: InputScaling) -> None:
    """Refuse a scene in other units than the model's: its bright pixels (the 99th percentile of the valid
    values) ``UNITS_FACTOR`` times darker or brighter than the brightest training pixels (for example 0–1
    floats given to a model of reflectance × 10 000)."""
    observed = normalization.get("observed")
    if observed is None:
        return
    trained = float(np.max(observed[1]))
    step = max(1, int(np.sqrt(valid.size / 1e6)))  # about a million pixels are plenty for a percentile
    sample = values[:, ::step, ::step][:, valid[::step, ::step]]
    bright = float(np.percentile(sample if sample.size else values[:, valid], 99))
    if trained > 0 and not trained / UNITS_FACTOR <= bright <= trained * UNITS_FACTOR:
        mapped = "" if scaling.source == "none" else \
            f" (after {scaling.source}: × {scaling.scale:g}, {scaling.offset:+g})"
        raise UsageError(f"{image}: its bright pixels are near {bright:.4g}{mapped}, but the model was trained on "
                         f"values up to {trained:.4g}, in {describe_units(normalization)}; give the image in those "
                         "units, or map it there with --scale A --offset B (value · A + B)")
