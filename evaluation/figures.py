"""Figures (SPEC §7, 'Show'): loss curves and rows of images, drawn with matplotlib's Figure (no pyplot state)."""

import torch
from matplotlib.figure import Figure


def loss_curves(history: list[dict], path) -> None:
    """−ELBO per image (train and test) and γ₁, γ₂ against the epoch."""
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
    ax_gamma.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def to_display(image: torch.Tensor):
    """(C, H, W) in [0, 1] → an array imshow draws: RGB for 3 channels, else the channel mean."""
    image = image.detach().float().cpu()
    if image.shape[0] == 3:
        return image.permute(1, 2, 0).clamp(0, 1).numpy()
    return image.mean(0).numpy()


def image_rows(rows: list[tuple[str, torch.Tensor]], path, title: str = "", heat: tuple[str, ...] = ()) -> None:
    """One row per (label, images (N, C, H, W)); rows named in ``heat`` use a heat map scaled 0…max,
    the max written under the label."""
    n = max(len(images) for _, images in rows)
    fig = Figure(figsize=(1.1 * n + 1.2, 1.15 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, images) in enumerate(rows):
        vmax = images.max().item() if label in heat else 1.0
        for c in range(n):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(to_display(images[c]), cmap="magma" if label in heat else "gray",
                          vmin=0, vmax=vmax, interpolation="nearest")
        shown = f"{label}\n(0–{vmax:.2f})" if label in heat else label
        axes[r][0].set_ylabel(shown, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
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
