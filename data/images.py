"""The container every data set loads into."""

from dataclasses import dataclass, replace

import numpy as np
import torch

from data.crops import crop_pairs, symmetries


@dataclass(frozen=True)
class ImageData:
    """Images as stored (N, C, H, W), in their own units and dtype (uint8 keeps MNIST or CIFAR-10
    small), mapped to the model's [0, 1] band by band:

        x = (v + ε − low_c) / span_c,   ε ~ U[0, 1) for integer pixels (fresh each training batch), else 0.

    For the built-in sets low = 0 and span = L, the number of pixel levels, so x = (v + ε)/L.
    The test set is dequantized once, with a fixed seed, so every evaluation sees the same images;
    with ``discrete`` set, integer pixels map to their bins' centres (v + ½ − low)/span instead
    (the discretized likelihood). ``train_lr``/``test_lr`` hold paired LR images y (a folder with
    ``lr/``), normalized exactly like x; without them y = d(x). With ``crop`` = P, every HR image
    gives a P×P patch and its LR image the matching (P/s)×(P/s) patch: random per training batch,
    fixed per test image. With ``augment``, each training crop is also flipped and rotated by a
    random one of the 8 symmetries of the square (x and y alike).

    Frozen: a variant (other images, the discrete grid, a saved normalization) is a new object
    (``with_options``), so no caller changes what another holds.
    """

    name: str
    train_values: torch.Tensor
    train_labels: torch.Tensor
    test_values: torch.Tensor
    test_labels: torch.Tensor
    levels: int | None
    discrete: bool = False
    low: torch.Tensor | None = None
    span: torch.Tensor | None = None
    integer: bool = True
    train_lr: torch.Tensor | None = None
    test_lr: torch.Tensor | None = None
    crop: int | None = None
    scale: int = 2
    augment: bool = False
    units: str = "range"  # how low and span were chosen (``data.folder.UNITS``)
    observed: tuple | None = None  # (low, high) per band of the training pixels, in their own units

    def __post_init__(self):
        channels = self.train_values.shape[1]
        low = torch.zeros(channels) if self.low is None else self.low
        span = torch.full((channels,), float(self.levels)) if self.span is None else self.span
        device = low.device if torch.is_tensor(low) else self.train_values.device
        object.__setattr__(self, "low", torch.as_tensor(low, dtype=torch.float32, device=device))
        object.__setattr__(self, "span", torch.as_tensor(span, dtype=torch.float32, device=device))

    def with_options(self, discrete: bool | None = None, normalization: dict | None = None,
                     **images) -> "ImageData":
        """The same data with integer pixels mapped to their bins' centres (``discrete``, for the
        discretized likelihood), with the per-band map of a saved ``normalization`` (``low``, ``span``:
        a trained model's units) instead of the one computed from the files, or with other ``images``
        or settings (``train_values=…``, ``augment=…``)."""
        changes = dict(images)
        if discrete is not None:
            changes["discrete"] = discrete
        if normalization is not None:
            changes.update(low=torch.tensor(normalization["low"]), span=torch.tensor(normalization["span"]),
                           units=normalization.get("units", "range"))
            if normalization.get("observed") is not None:
                changes["observed"] = tuple(normalization["observed"])
        return replace(self, **changes)

    @property
    def image_shape(self) -> tuple:
        c, h, w = self.train_values.shape[1:]
        return (c, self.crop, self.crop) if self.crop else (c, h, w)

    @property
    def bin_levels(self) -> float:
        """The number of bins per unit of x, per dimension, for bits/dim: the geometric mean of the
        bands' spans for integer pixels (exactly L for the built-in sets), 1 for continuous pixels
        (no bins: a density in normalized units)."""
        return float(self.span.log().mean().exp()) if self.integer else 1.0

    @property
    def paired(self) -> bool:
        return self.train_lr is not None

    @property
    def normalization(self) -> dict:
        """Per-band ``low`` and ``span`` (plain lists, for the config and checkpoint): original units =
        x · span + low; how they were chosen (``units``) and the training pixels' range (``observed``)."""
        return {"low": self.low.tolist(), "span": self.span.tolist(), "integer": self.integer, "units": self.units,
                "observed": None if self.observed is None else [list(part) for part in self.observed]}

    def band_quantiles(self, low: float, high: float, most: int = 1_000_000) -> tuple[list, list]:
        """Per band, the ``low`` and ``high`` quantiles of the training pixels in the model's units, from at
        most ``most`` pixels per band taken at a regular stride."""
        bands = self.train_values.shape[1]
        values = self.train_values.transpose(0, 1).reshape(bands, -1)
        values = values[:, ::max(1, values.shape[1] // most)].double().cpu()
        x = ((values - self.low.double().cpu()[:, None]) / self.span.double().cpu()[:, None]).numpy()
        return np.quantile(x, low, axis=1).tolist(), np.quantile(x, high, axis=1).tolist()

    def to(self, device, train: bool = True) -> "ImageData":
        """Move every tensor to ``device`` once (small data sets live on the device); with ``train``
        False the training images stay where they are (they come through a DataLoader)."""
        stay = () if train else ("train_values", "train_lr", "train_labels")
        return replace(self, **{k: v.to(device) for k, v in vars(self).items() if torch.is_tensor(v) and k not in stay})

    def normalize(self, values: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x = (v + noise − low)/span per band; integer pixels without noise go to their bins' centres
        when ``discrete`` is set."""
        values = values.float()
        if noise is not None:
            values = values + noise
        elif self.integer and self.discrete:
            values = values + 0.5
        low, span = self.low.to(values.device), self.span.to(values.device)
        return (values - low[:, None, None]) / span[:, None, None]

    def to_original_units(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse map of ``normalize`` (without the noise): v = x · span + low, per band."""
        return x * self.span[:, None, None].to(x.device) + self.low[:, None, None].to(x.device)

    def _dequantized(self, values, generator=None):
        if not self.integer or self.discrete:
            return self.normalize(values)
        noise = torch.rand(values.shape, generator=generator, device=values.device if generator is None else "cpu")
        return self.normalize(values, noise.to(values.device))

    def test_pair(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The dequantized test images x and their paired LR images y (None without ``lr/``),
        identical for a given seed on every device (the noise is drawn on the CPU)."""
        generator = torch.Generator().manual_seed(seed)
        x = self._dequantized(self.test_values, generator)
        y = None if self.test_lr is None else self._dequantized(self.test_lr, generator)
        if self.crop:
            offsets = torch.Generator().manual_seed(seed + 1)
            x, y = crop_pairs(x, y, self.crop, self.scale, offsets)
        return x, y

    def test_subset(self, count: int | None) -> "ImageData":
        """The same data with only the first ``count`` test images (all with None)."""
        if count is None or count >= len(self.test_values):
            return self
        kept = {k: getattr(self, k)[:count] for k in ("test_values", "test_labels", "test_lr")
                if getattr(self, k) is not None}
        return replace(self, **kept)

    def test_images(self, seed: int = 0) -> torch.Tensor:
        """The dequantized test set x, identical for a given seed."""
        return self.test_pair(seed)[0]

    def train_pair(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Freshly dequantized (and cropped) training images at ``index`` and their LR images
        (None without ``lr/``); uses the global torch RNG, on the data's device."""
        return self.prepare(self.train_values[index], None if self.train_lr is None else self.train_lr[index])

    def prepare(self, values: torch.Tensor, lr: torch.Tensor | None = None):
        """Stored training rows (and their LR rows) → a training batch (x, y): fresh dequantization
        noise and crops, drawn on the rows' device with the global torch RNG."""
        x = self._dequantized(values)
        y = None if lr is None else self._dequantized(lr)
        if self.crop:
            x, y = crop_pairs(x, y, self.crop, self.scale)
        if self.augment:
            x, y = symmetries(x, y)
        return x, y

    def train_batch(self, index: torch.Tensor) -> torch.Tensor:
        """Freshly dequantized training images at ``index`` (uses the global torch RNG)."""
        return self.train_pair(index)[0]
