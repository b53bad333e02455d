"""The training loop: the chosen −ELBO minimised by Adam over minibatches (SPEC §7, 'Train')."""

import time

import torch
from tqdm import tqdm

from model.elbo import explicit_elbo
from training.warmup import kl_scale


def train(model, guide, data, loss_fn, epochs: int, batch_size: int, lr: float,
          test_x=None, progress: bool = True, on_epoch=None, kl_warmup: int = 0) -> list[dict]:
    """Run ``epochs`` passes over ``data.train_values`` (fresh dequantization each batch).

    Returns one history row per epoch: the mean training loss per image, a one-sample explicit
    −ELBO per image on ``test_x`` (for the loss curves), γ₁, γ₂ and the elapsed seconds.
    ``progress`` shows a bar; ``on_epoch(row)`` is called after each epoch. With ``kl_warmup`` > 0
    the KL terms of the training loss are scaled by β rising linearly from 0 to 1 over that many
    epochs (recorded as ``kl_scale``); the test −ELBO is never scaled.
    """
    params = list(model.parameters()) + list(guide.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    n = len(data.train_values)
    device = data.train_values.device
    history, start = [], time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        total = 0.0
        batches = torch.randperm(n, device=device).split(batch_size)
        for i, index in enumerate(batches):
            beta = kl_scale(epoch, (i + 1) / len(batches), kl_warmup)
            loss = loss_fn(data.train_batch(index), kl_scale=beta, index=index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        row = {"epoch": epoch, "train_loss": total / n, "kl_scale": beta}
        if test_x is not None and getattr(guide, "amortized", True):  # a local guide knows only its own images
            with torch.no_grad():
                row["test_loss"] = -explicit_elbo(model, guide.guide, test_x).elbo.mean().item()
        row.update(**model.gammas(), seconds=time.perf_counter() - start)
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.2f}/img", test=f"{row.get('test_loss', float('nan')):.2f}")
        if on_epoch is not None:
            on_epoch(row)
    bar.close()
    return history
