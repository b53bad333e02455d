"""Figures (SPEC §7, 'Show'): loss curves and rows of images, drawn with matplotlib's Figure (no pyplot state)."""

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure


def loss_curves(history: list[dict], path) -> None:
    """−ELBO per image (train and test) and γ₁, γ₂ against the epoch (and the shapes p of
    generalized-normal pixels)."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 3.6))
    ax_loss, ax_gamma = fig.subplots(1, 2)
    ax_loss.plot(epochs, [row["train_loss"] for row in history], label="train (training objective)")
    if "test_loss" in history[0]:
        ax_loss.plot(epochs, [row["test_loss"] for row in history], label="test (explicit, 1 sample)")
    ax_loss.set(xlabel="epoch", ylabel="−ELBO (nats / image)", title="loss")
    ax_loss.legend()
    ax_gamma.plot(epochs, [row["gamma_x"] for row in history], label="γ₁ (x)")
    if "gamma_y" in history[0]:
        ax_gamma.plot(epochs, [row["gamma_y"] for row in history], label="γ₂ (y)")
    ax_gamma.set(xlabel="epoch", ylabel="decoder standard deviation", yscale="log", title="γ")
    ax_gamma.legend(loc="upper left")
    if "power_x" in history[0]:  # generalized-normal pixels: their shapes, on an axis of their own
        ax_power = ax_gamma.twinx()
        for name, label, style in (("power_x", "p (x)", "--"), ("power_y", "p (y)", ":")):
            ax_power.plot(epochs, [row[name] for row in history], style, color="grey", label=label)
        ax_power.set(ylabel="shape p (1 Laplace, 2 Gaussian)")
        ax_gamma.set_title("γ and shape p")
        ax_power.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def to_display(image: torch.Tensor, rgb=None, stretch=None):
    """(C, H, W) in [0, 1] → an array imshow draws: the bands ``rgb`` (three indices) as red, green and
    blue, else RGB for 3 channels, else the channel mean. ``stretch`` = (low, high) per shown channel
    maps low…high to 0…1 (a quicklook's contrast stretch)."""
    image = image.detach().float().cpu()
    if rgb is None and image.shape[0] == 3:
        rgb = (0, 1, 2)
    shown = image[list(rgb)] if rgb is not None else image.mean(0, keepdim=True)
    if stretch is not None:
        low, high = stretch
        shown = (shown - low[:, None, None]) / (high - low).clamp(min=1e-6)[:, None, None]
    shown = shown.clamp(0, 1)
    return shown.permute(1, 2, 0).numpy() if rgb is not None else shown[0].numpy()


def band_mean(image: torch.Tensor) -> np.ndarray:
    """The mean over bands of (C, H, W): what a heat map shows, whatever the number of bands."""
    return image.detach().float().mean(0).cpu().numpy()


def percentile_stretch(images: torch.Tensor, rgb=None, low=None, span=None, percent: float = 2.0):
    """The contrast stretch of a quicklook: per shown channel, the bounds (in the images' normalized
    units) of one range of data values, the ``percent`` and 100 − ``percent`` percentiles of all shown
    channels' values v = x·span + low together, so that the colours keep their balance and dark
    reflectances are visible."""
    images = images.detach().float().cpu()
    channels = list(rgb) if rgb is not None else list(range(images.shape[1]))
    low = torch.zeros(images.shape[1]) if low is None else torch.as_tensor(low, dtype=torch.float32).cpu()
    span = torch.ones(images.shape[1]) if span is None else torch.as_tensor(span, dtype=torch.float32).cpu()
    values = images[:, channels] * span[channels, None, None] + low[channels, None, None]
    bottom, top = torch.quantile(values.flatten(), torch.tensor([percent / 100, 1 - percent / 100]))
    bounds = [((bound - low[channels]) / span[channels]) for bound in (bottom, top)]
    if rgb is None:  # the mean of the bands is shown
        bounds = [b.mean(0, keepdim=True) for b in bounds]
    return bounds[0], bounds[1]


def enlarged(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (H, W, 3) at ``height`` × ``width`` by repeating its pixels (nearest neighbour), so that
    a low-resolution image fills the cell of a high-resolution one."""
    rows = np.arange(height) * image.shape[0] // height
    columns = np.arange(width) * image.shape[1] // width
    return image[rows][:, columns]


def mosaic(rows: list[tuple[str, torch.Tensor]], heat: tuple[str, ...] = (), rgb=None, stretch=None):
    """The rows of images as one RGB array (white between and after them), every image enlarged to the
    largest one's cell; returns (array, the row labels, the cell's height and width, the gap). Rows named
    in ``heat`` are a heat map of the mean over bands from 0 to the row's max, written in its label."""
    n = max(len(images) for _, images in rows)
    height = max(images.shape[-2] for _, images in rows)
    width = max(images.shape[-1] for _, images in rows)
    gap = max(1, round(0.1 * width))
    array = np.ones((len(rows) * (height + gap) - gap, n * (width + gap) - gap, 3))
    labels = []
    for r, (label, images) in enumerate(rows):
        vmax = images.float().mean(1).max().item() if label in heat else 1.0  # of the band means shown
        for c, image in enumerate(images):
            if label in heat:
                scaled = np.clip(band_mean(image) / vmax, 0, 1) if vmax > 0 else np.zeros(image.shape[-2:])
                shown = colormaps["magma"](scaled)[..., :3]
            else:
                shown = to_display(image, rgb, stretch)
                shown = np.repeat(shown[..., None], 3, axis=2) if shown.ndim == 2 else shown
            top, left = r * (height + gap), c * (width + gap)
            array[top:top + height, left:left + width] = enlarged(shown, height, width)
        labels.append(f"{label}\n(0–{vmax:.2f})" if label in heat else label)
    return array, labels, (height, width), gap


def image_rows(rows: list[tuple[str, torch.Tensor]], path, title: str = "", heat: tuple[str, ...] = (),
               rgb=None, stretch=None) -> None:
    """One row per (label, images (N, C, H, W)), one inch per image; rows named in ``heat`` use a heat
    map scaled 0…max, the others show the bands ``rgb`` with the contrast ``stretch`` (``to_display``).
    The images are one ``mosaic`` drawn by one ``imshow``: a grid of axes per image costs seconds of
    layout per figure."""
    array, labels, (height, width), gap = mosaic(rows, heat, rgb, stretch)
    inch = 1.0 / width  # inches per pixel of the mosaic
    margin, head = 1.2, 0.45 if title else 0.1
    size = (margin + array.shape[1] * inch + 0.1, head + array.shape[0] * inch + 0.1)
    fig = Figure(figsize=size)
    ax = fig.add_axes((margin / size[0], 0.1 / size[1], array.shape[1] * inch / size[0],
                       array.shape[0] * inch / size[1]))
    ax.imshow(array, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for r, label in enumerate(labels):
        middle = 0.1 + (array.shape[0] - r * (height + gap) - height / 2) * inch
        fig.text((margin - 0.08) / size[0], middle / size[1], label, ha="right", va="center", fontsize=9)
    if title:
        fig.text(0.5, 1 - 0.08 / size[1], title, ha="center", va="top", fontsize=10)
    fig.savefig(path, dpi=120)


def reliability(nominal, observed, path) -> None:
    """Observed coverage of the central intervals of the SR samples against their nominal level."""
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="calibrated")
    ax.plot(nominal, observed, marker="o", label="SRVAE samples")
    ax.set(xlabel="nominal coverage of the central interval", ylabel="fraction of true pixels inside",
           xlim=(0, 1), ylim=(0, 1), title="reliability of the SR uncertainty")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def sparsification(metrics: dict, path) -> None:
    """The sparsification curve of the SR std against its oracle (``evaluation.uncertainty``)."""
    fig = Figure(figsize=(4.4, 4))
    ax = fig.subplots()
    f = metrics["sparsification_fractions"]
    ax.plot(f, metrics["sparsification_oracle"], color="gray", linestyle="--", label="oracle (largest errors first)")
    ax.plot(f, metrics["sparsification_model"], label=f"SR std (AUSE {metrics['ause']:.3f})")
    ax.axhline(1.0, color="lightgray", linestyle=":", label=f"random (area {metrics['ause_random']:.3f})")
    ax.set(xlabel="fraction of pixels removed, most uncertain first", ylabel="MAE left / MAE of all pixels",
           xlim=(0, 1), ylim=(0, None), title="sparsification of the SR error")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def scene_quicklook(panels: list[tuple[str, torch.Tensor]], path, title: str = "", heat: tuple[str, ...] = (),
                    rgb=None, stretch=None) -> None:
    """Rows of panels (label, image (C, H, W)) side by side, each row one view (the whole scene, a
    detail at full resolution): the panels named in ``heat`` as a heat map of the mean over bands
    from 0 to its 99.5th percentile (a few extreme pixels would leave the rest black), the others in
    the bands ``rgb`` with the contrast ``stretch``."""
    rows = [panels[i:i + 3] for i in range(0, len(panels), 3)]
    fig = Figure(figsize=(12, 4.2 * len(rows) + 0.3))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, row in enumerate(rows):
        for c, (label, image) in enumerate(row):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if label in heat:
                values = band_mean(image)
                top = float(np.percentile(values, 99.5)) or 1.0
                shown = ax.imshow(values, cmap="magma", vmin=0, vmax=top, interpolation="nearest")
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, extend="max")
            else:
                ax.imshow(to_display(image, rgb, stretch), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(label, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
