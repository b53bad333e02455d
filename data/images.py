"""The container every data set loads into."""

from dataclasses import dataclass

import torch

from data.dequantize import dequantize


@dataclass
class ImageData:
    """Discrete pixel levels (float tensors of integers in [0, levels)) of shape (N, C, H, W).

    Training batches are dequantized afresh each time; the test set once, with a fixed seed,
    so every evaluation sees the same continuous test images. With ``discrete`` set, both are
    the bins' centres (v + ½)/L instead, for the discretized likelihood.
    """

    name: str
    train_values: torch.Tensor
    train_labels: torch.Tensor
    test_values: torch.Tensor
    test_labels: torch.Tensor
    levels: int
    discrete: bool = False

    @property
    def image_shape(self) -> tuple:
        return tuple(self.train_values.shape[1:])

    def to(self, device) -> "ImageData":
        """Move every tensor to ``device`` once (small data sets live on the device)."""
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in vars(self).items()}
        return ImageData(**moved)

    def test_images(self, seed: int = 0) -> torch.Tensor:
        """The dequantized test set, identical for a given seed."""
        if self.discrete:
            return (self.test_values + 0.5) / self.levels
        generator = torch.Generator().manual_seed(seed)  # on the CPU, so every device agrees
        return dequantize(self.test_values.cpu(), self.levels, generator).to(self.test_values.device)

    def train_batch(self, index: torch.Tensor) -> torch.Tensor:
        """Freshly dequantized training images at ``index`` (uses the global torch RNG)."""
        if self.discrete:
            return (self.train_values[index] + 0.5) / self.levels
        return dequantize(self.train_values[index], self.levels)
