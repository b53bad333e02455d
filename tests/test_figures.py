"""The rows of images in the figures are one mosaic: each image in its cell, enlarged by repeating its
pixels, heat maps scaled 0…max, white where a row has fewer images."""

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.image import imread

from evaluation.figures import enlarged, image_rows, mosaic


def test_enlarging_repeats_each_pixel():
    image = np.arange(12, dtype=float).reshape(2, 2, 3)
    assert np.array_equal(enlarged(image, 4, 6), np.kron(image, np.ones((2, 3, 1))))


def test_each_image_sits_in_its_cell_at_the_cells_size():
    generator = torch.Generator().manual_seed(0)
    low = torch.rand(2, 1, 4, 4, generator=generator)  # a low-resolution row, one image short
    high = torch.rand(3, 1, 8, 8, generator=generator)
    error = torch.rand(3, 1, 8, 8, generator=generator) * 0.3
    array, labels, (height, width), gap = mosaic([("y", low), ("x", high), ("error", error)], heat=("error",))
    assert (height, width, gap) == (8, 8, 1) and array.shape == (3 * 9 - 1, 3 * 9 - 1, 3)
    gray = np.kron(low[1, 0].numpy(), np.ones((2, 2)))
    assert np.allclose(array[0:8, 9:17], gray[..., None])
    assert np.array_equal(array[0:8, 18:26], np.ones((8, 8, 3)))  # no third y: white
    assert np.allclose(array[9:17, 0:8], high[0, 0].numpy()[..., None])
    peak = np.unravel_index(error.argmax().item(), error.shape)  # one band: its mean is itself
    assert np.allclose(array[18 + peak[2], 9 * peak[0] + peak[3]], colormaps["magma"](1.0)[:3])
    assert labels == ["y", "x", f"error\n(0–{error.max().item():.2f})"]


def test_the_figure_is_one_inch_per_image(tmp_path):
    path = tmp_path / "rows.png"
    image_rows([("x", torch.rand(5, 3, 16, 16)), ("y", torch.rand(5, 3, 8, 8))], path, title="a title")
    height, width = imread(path).shape[:2]
    assert width == round(120 * (1.2 + (5 * 18 - 2) / 16 + 0.1))
    assert height == round(120 * (0.45 + (2 * 18 - 2) / 16 + 0.1))


def test_a_heat_row_of_three_bands_shows_their_mean():
    error = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    array, labels, _, _ = mosaic([("x", torch.rand(2, 3, 8, 8)), ("std", error)], heat=("std",))
    mean = error.mean(1)
    top = mean.max().item()
    assert labels[1] == f"std\n(0–{top:.2f})"
    assert np.allclose(array[9:17, 0:8], colormaps["magma"](mean[0].numpy() / top)[..., :3])
