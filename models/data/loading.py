"""Feeding a training or evaluation loop, for every task: resumable data order and loaders whose
worker errors come back as the same one-line errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from models.errors import TransInrError


class EpochSampler(Sampler):
    """Shuffles every epoch from (seed, epoch) and can start mid-epoch: resumable data order.

    Yields (index, augmentation seed) pairs. For data-parallel training the stream is cut into
    global batches of `batch_size` and rank r of W takes the r-th W-th of each, so the global
    order, and hence the result, does not depend on the number of processes.
    """

    def __init__(
        self,
        length: int,
        seed: int,
        epoch: int = 0,
        start: int = 0,
        batch_size: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.length, self.seed, self.epoch, self.start = length, seed, epoch, start
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.length, generator=generator).tolist()

    def global_stream(self) -> Iterator[tuple[int, int]]:
        epoch, start = self.epoch, self.start
        while True:
            for position, index in enumerate(self.order(epoch)[start:], start=start):
                yield index, (self.seed * 1_000_003 + epoch) * 1_000_003 + position
            epoch, start = epoch + 1, 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        stream = self.global_stream()
        if self.world_size == 1:
            yield from stream
            return
        local = self.batch_size // self.world_size
        while True:
            batch = list(itertools.islice(stream, self.batch_size))
            yield from batch[self.rank * local : (self.rank + 1) * local]

    def __len__(self) -> int:  # infinite stream; the training loop counts steps
        return 1 << 62


# --- loading in background workers: errors come back as the same one-line errors -----------


class LoadFailure:
    """An item that could not be read, carried out of a loader worker as data: raised there, a
    TransInrError would come back wrapped in the worker's traceback."""

    def __init__(self, message: str):
        self.message = message


class GuardedDataset(Dataset):
    """`dataset` whose unreadable items (a TransInrError) become LoadFailure items."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        try:
            return self.dataset[item]
        except TransInrError as error:
            return LoadFailure(str(error))


def collate_guarded(items: list) -> object:
    """default_collate, or the first LoadFailure of the batch (items that cannot be batched
    together are one too)."""
    from torch.utils.data import default_collate

    failures = [item for item in items if isinstance(item, LoadFailure)]
    if failures:
        return failures[0]
    try:
        return default_collate(items)
    except RuntimeError as error:
        return LoadFailure(
            f"cannot batch the data set's items ({str(error)[:120]}); give every item one size"
        )


def ignore_stop_signals(worker_id: int) -> None:
    """A loader worker's start: Ctrl-C (SIGINT to the terminal's process group) and SIGTERM to
    the whole group (`pkill -f`, a cluster's stop) are the main process's to handle, which
    checkpoints and then shuts the workers down; a worker dying first would crash the run."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def guarded_loader(dataset: Dataset, **options) -> Iterator:
    """A DataLoader over `dataset` (same options) whose batches raise a worker's TransInrError in
    this process, as the same one-line error. Its workers leave stop signals to this process."""
    from torch.utils.data import DataLoader

    if options.get("num_workers", 0) > 0:
        options.setdefault("worker_init_fn", ignore_stop_signals)
    loader = DataLoader(GuardedDataset(dataset), collate_fn=collate_guarded, **options)
    for batch in loader:
        if isinstance(batch, LoadFailure):
            raise TransInrError(batch.message)
        yield batch
