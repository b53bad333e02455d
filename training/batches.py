"""Minibatches of one epoch, for the CPU and the GPU alike: from data already on the device, or through a
``DataLoader`` with pinned memory and workers for data kept in host memory. The epoch's order is
drawn by the caller (``epoch_order``), so that a checkpoint can hold it and a resumed run can take
up the epoch at the batch where it stopped."""

import torch
from torch.utils.data import DataLoader


class RawRows:
    """Indexable by a list of positions: the stored (not yet normalized) HR rows, their LR rows
    when paired, and the positions themselves, gathered in one indexing operation per batch."""

    def __init__(self, data):
        self.values, self.lr = data.train_values, data.train_lr

    def __len__(self):
        return len(self.values)

    def __getitem__(self, positions):
        index = torch.as_tensor(positions)
        return self.values[index], None if self.lr is None else self.lr[index], index


def epoch_order(data, batch_size: int) -> list[torch.Tensor]:
    """A random order of the training images, drawn where they live, as one index tensor per batch."""
    return list(torch.randperm(len(data.train_values), device=data.train_values.device).split(batch_size))


def on_device_batches(data, batches):
    """(index, x, y) per batch for data living on the device: no host copy."""
    for index in batches:
        yield index, *data.train_pair(index)


def host_batches(data, batches, device, workers: int = 2):
    """(index, x, y) per batch for data in host memory: rows gathered by ``workers`` processes into
    pinned memory, copied to ``device`` without blocking, then dequantized there."""
    rows = RawRows(data)
    loader = DataLoader(rows, sampler=[index.tolist() for index in batches], batch_size=None, num_workers=workers,
                        pin_memory=torch.device(device).type == "cuda", collate_fn=collate)
    for values, lr, index in loader:
        move = {"device": device, "non_blocking": True}
        yield (index.to(**move), *data.prepare(values.to(**move), None if lr is None else lr.to(**move)))


def collate(batch):
    """The batch as gathered: ``RawRows`` already returns stacked tensors."""
    return batch


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are one: "cuda" names the current GPU, which tensors call "cuda:0"."""
    if a.type != b.type:
        return False
    current = torch.cuda.current_device() if a.type == "cuda" else None
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


def epoch_batches(data, batches, device, workers: int = 2):
    """(index, x, y) on ``device`` for each index tensor of ``batches`` (from ``epoch_order``): from
    the data's own tensors when they live there, else through ``host_batches``."""
    if same_device(data.train_values.device, torch.device(device)):
        return on_device_batches(data, batches)
    return host_batches(data, batches, device, workers)
