"""The training loop: the chosen −ELBO minimised by Adam over minibatches (SPEC §7, 'Train')."""

import math
import time

import torch
from tqdm import tqdm

from model.elbo import explicit_elbo
from training.batches import epoch_batches
from training.warmup import kl_scale


def train(model, guide, data, loss_fn, epochs: int, batch_size: int, lr: float,
          test_x=None, progress: bool = True, on_epoch=None, kl_warmup: int = 0, test_y=None,
          device=None, amp: bool = False) -> list[dict]:
    """Run ``epochs`` passes over ``data.train_values`` (fresh dequantization each batch) on
    ``device`` (default: where the data live; data kept on the host come through a DataLoader).

    Returns one history row per epoch: the mean training loss per image, a one-sample explicit
    −ELBO per image on ``test_x`` (paired with ``test_y``, if given; for the loss curves), γ₁, γ₂
    and the elapsed seconds.
    ``progress`` shows a bar; ``on_epoch(row)`` is called after each epoch. With ``kl_warmup`` > 0
    the KL terms of the training loss are scaled by β rising linearly from 0 to 1 over that many
    epochs (recorded as ``kl_scale``); the test −ELBO is never scaled. With ``amp`` the training
    loss runs under bfloat16 autocast (no loss scaling needed); the test −ELBO stays float32.
    """
    params = list(model.parameters()) + list(guide.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    n = len(data.train_values)
    steps = math.ceil(n / batch_size)
    device = device or data.train_values.device
    history, start = [], time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
        for i, (index, x, y) in enumerate(epoch_batches(data, batch_size, device)):
            beta = kl_scale(epoch, (i + 1) / steps, kl_warmup)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(x, y, kl_scale=beta, index=index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        row = {"epoch": epoch, "train_loss": total.item() / n, "kl_scale": beta}
        if test_x is not None and getattr(guide, "amortized", True):  # a local guide knows only its own images
            with torch.no_grad():
                row["test_loss"] = -explicit_elbo(model, guide.guide, test_x, test_y).elbo.mean().item()
        row.update(**model.gammas(), seconds=time.perf_counter() - start)
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.2f}/img", test=f"{row.get('test_loss', float('nan')):.2f}")
        if on_epoch is not None:
            on_epoch(row)
    bar.close()
    return history
