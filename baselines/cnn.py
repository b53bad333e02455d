"""A deterministic residual CNN for super-resolution, the baseline the SRVAE's SR mean must match:
x̂ = bicubic(y) + f(y), f trained with MSE (DSen2's residual over an upsampled input).

f has the shape of the SRVAE's decoder of x without z (``model.conv.ConvXGivenYZ``): residual
blocks at y's resolution, nearest upsampling by s, the bicubic y concatenated, residual blocks at
x's resolution, a 3×3 convolution to the bands, seeing images in the same units as the SRVAE's networks
(``model.conv.NetworkUnits``). It trains on the same crops (``ImageData``), with the
same batch size, steps, Adam and learning-rate schedule as ``run.py``, so the comparison is of the
models alone.

    python -m baselines.cnn --data-dir data/sentinel2 --crop 32 --steps 6000
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from data import DataError, downscale, load_dataset, upsample
from evaluation.progress import Stages
from experiment.checks import UsageError, resolve_device
from experiment.cli import DEVICES
from experiment.config import RunConfig, network_units_for
from model.activation import ELU
from model.conv import NetworkUnits, stage, zero_last
from training.batches import epoch_batches, epoch_order
from training.loop import adam
from training.warmup import LR_SCHEDULES, lr_factor


class ResidualCNN(nn.Module):
    """x̂(y) = bicubic(y) + f(y) for LR images y (N, C, H/s, W/s)."""

    def __init__(self, bands: int, scale: int, channels: int = 32, blocks: int = 1, units: dict | None = None):
        super().__init__()
        self.scale = scale
        self.units = NetworkUnits(None if units is None else (units["low"], units["gain"]))
        self.low = nn.Sequential(nn.Conv2d(bands, channels, 3, padding=1), *stage(channels, blocks),
                                 nn.Upsample(scale_factor=scale, mode="nearest"))
        self.high = nn.Sequential(nn.Conv2d(channels + bands, channels, 3, padding=1), *stage(channels, blocks),
                                  ELU(), nn.Conv2d(channels, bands, 3, padding=1))
        zero_last(self.high)  # x̂ starts at bicubic(y)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y_big = upsample(y, self.scale, "bicubic", clamp=False)
        return y_big + self.units.back(self.high(torch.cat([self.low(self.units(y)), self.units(y_big)], dim=1)))


def train_cnn(net: ResidualCNN, data, steps: int, batch_size: int = 64, lr: float = 1e-3, schedule=None,
              progress: bool = False) -> list[float]:
    """Adam on the mean squared error of x̂(y) over ``steps`` minibatches of fresh training crops, in the
    epoch order the SRVAE's loop uses; ``schedule(step)`` multiplies the learning rate. Returns the
    losses. With ``progress``, a bar on a terminal, else a line every tenth of the steps (``Stages``). The
    batches go to the network's device, from wherever the data live."""
    optimizer = adam(net.parameters(), lr)
    device = next(net.parameters()).device
    stage = Stages()("training the CNN", steps, "steps") if progress else None
    losses = []
    while len(losses) < steps:
        for _, x, y in epoch_batches(data, epoch_order(data, batch_size), device):
            if schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr * schedule(len(losses))
            y = y if y is not None else downscale_like(data, x)
            loss = (net(y) - x).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if stage is not None:
                stage(len(losses))
            if len(losses) == steps:
                break
    if stage is not None:
        stage.close()
    return losses


def downscale_like(data, x: torch.Tensor) -> torch.Tensor:
    """y = d(x) by area averaging, the folder data's default."""
    return downscale(x, data.scale)


@torch.no_grad()
def evaluate_cnn(net: ResidualCNN, data) -> dict:
    """PSNR and SSIM (means over test images), MAE (a point forecast's CRPS), and per band PSNR and RMSE
    in the data's units, of the CNN and of bicubic upsampling, on the test set the SRVAE is measured on."""
    from evaluation.superres import image_quality, per_band

    x, y = data.test_pair()
    y = y if y is not None else downscale_like(data, x)
    metrics = {}
    for name, images in (("cnn", torch.cat([net(part) for part in y.split(64)])), ("bicubic", upsample(y, data.scale))):
        psnr, ssim = image_quality(images, x)
        error = (images.clamp(0, 1) - x).double()
        metrics.update({f"{name}_psnr": psnr.mean().item(), f"{name}_ssim": ssim.mean().item(),
                        f"{name}_mae": error.abs().mean().item(),
                        f"{name}_psnr_per_band": (-10 * per_band(error.pow(2)).log10()).tolist(),
                        f"{name}_rmse_units_per_band": (per_band(error.pow(2)).sqrt() * data.span.double()).tolist()})
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="a folder with hr/ (and lr/), as run.py's")
    parser.add_argument("--crop", type=int, default=None, help="training crop P, as run.py's --crop")
    parser.add_argument("--scale", type=int, default=2, help="as run.py's --scale [%(default)s]")
    parser.add_argument("--steps", type=int, default=4000, help="Adam steps [%(default)s, run.py's default floor]")
    parser.add_argument("--batch-size", type=int, default=64, help="crops per step [%(default)s]")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate [%(default)s]")
    parser.add_argument("--lr-schedule", default="cosine", choices=list(LR_SCHEDULES), help="[%(default)s]")
    parser.add_argument("--channels", type=int, default=32, help="feature maps [%(default)s]")
    parser.add_argument("--blocks", type=int, default=1, help="residual blocks per resolution [%(default)s]")
    parser.add_argument("--no-augment", action="store_true", help="no random flips and rotations of the training "
                        "images (by default they have them when square, as run.py's)")
    parser.add_argument("--seed", type=int, default=0, help="[%(default)s]")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where it trains [%(default)s: CUDA when present]; it is evaluated on the CPU")
    parser.add_argument("--out", type=Path, default=None, help="write the metrics as JSON there")
    parser.add_argument("--save", type=Path, default=None,
                        help="save the trained network with its units there (a state dict, for load_cnn)")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
        data = load_dataset("folder", args.data_dir, scale=args.scale, crop=args.crop)
    except (DataError, UsageError) as error:
        print(f"baselines.cnn: error: {error}", file=sys.stderr)
        return 2
    default = RunConfig(dataset="folder", crop=args.crop, augment=False if args.no_augment else None)
    data = data.with_options(augment=default.augmentation(data.image_shape))  # run.py's rule
    torch.manual_seed(args.seed)
    units = network_units_for(data)
    net = ResidualCNN(data.image_shape[0], args.scale, args.channels, args.blocks, units if units != "model" else None)
    start = time.perf_counter()
    losses = train_cnn(net.to(device), data, args.steps, args.batch_size, args.lr,
                       lambda step: lr_factor(args.lr_schedule, step, args.steps), progress=True)
    seconds = time.perf_counter() - start  # training only, as the SRVAE's train_seconds
    net.cpu()
    metrics = {**evaluate_cnn(net, data), "steps": args.steps, "final_loss": losses[-1], "seed": args.seed,
               "parameters": sum(p.numel() for p in net.parameters()), "seconds": seconds}
    print(json.dumps(metrics, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(metrics, indent=1))
    if args.save is not None:
        torch.save({"state": net.state_dict(), "bands": data.image_shape[0], "scale": args.scale,
                    "channels": args.channels, "blocks": args.blocks, "normalization": data.normalization,
                    "network_units": units}, args.save)
    return 0


def load_cnn(path: Path) -> tuple[ResidualCNN, dict, int]:
    """A network saved by ``--save``: (network, the normalization of its units, scale)."""
    saved = torch.load(path, weights_only=True)
    units = saved.get("network_units", "model")  # saved before the networks had units of their own: "model"
    net = ResidualCNN(saved["bands"], saved["scale"], saved["channels"], saved["blocks"],
                      units if units != "model" else None)
    net.load_state_dict(saved["state"])
    net.eval()
    return net, saved["normalization"], saved["scale"]


if __name__ == "__main__":
    sys.exit(main())
