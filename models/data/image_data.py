"""Image data sets for training and evaluation: CelebA, Imagenette and any folder of images.

Each item is a float (3, S, S) image in [0, 1]. CelebA and folders are resized on the short side
and centre-cropped (the paper's recipe); Imagenette trains on random S x S crops with horizontal
flips. Items are addressed as (index, seed) so that augmentation is reproducible on resume.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from models.errors import TransInrError
from models.io.images import fit_image, load_image, resize

DATASETS = ("celeba", "imagenette", "folder")
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise TransInrError(f"{what} not found at {path}; check --data")


def celeba_files(root: Path, split: str) -> list[Path]:
    """CelebA layout: img_align_celeba/ and list_eval_partition.txt (0 train, 1 val, 2 test)."""
    _require_dir(root / "img_align_celeba", "CelebA folder img_align_celeba/")
    partition_file = root / "list_eval_partition.txt"
    if not partition_file.is_file():
        raise TransInrError(f"{partition_file} not found; a CelebA root needs it (check --data)")
    wanted = str(SPLITS.index(split))
    files = []
    for line in partition_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == wanted:
            files.append(root / "img_align_celeba" / parts[0])
    return files


def imagenette_files(root: Path, split: str) -> list[Path]:
    """Imagenette layout: train/ and val/ with one folder per class (test reads val/)."""
    folder = root / ("train" if split == "train" else "val")
    _require_dir(folder, f"Imagenette folder {folder.name}/")
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)


def folder_splits(relatives: list[str]) -> dict[str, str]:
    """Deterministic 80/10/10 split: files ranked by the hash of their relative path; the first
    10% (at least one, given 3 or more files) are test, the next 10% val, the rest train."""
    ranked = sorted(relatives, key=lambda name: hashlib.sha1(name.encode()).hexdigest())
    held_out = max(1, len(ranked) // 10) if len(ranked) >= 3 else 0
    splits = {name: "train" for name in ranked}
    for name in ranked[:held_out]:
        splits[name] = "test"
    for name in ranked[held_out : 2 * held_out]:
        splits[name] = "val"
    return splits


def folder_files(root: Path, split: str) -> list[Path]:
    """Any folder of images (searched recursively), split by `folder_splits`."""
    _require_dir(root, "image folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    splits = folder_splits([p.relative_to(root).as_posix() for p in files])
    return [p for p in files if splits[p.relative_to(root).as_posix()] == split]


class ImageDataset(Dataset):
    """Images of one split, fitted to S x S; items are looked up by (index, seed)."""

    def __init__(
        self,
        dataset: str,
        root: str | Path,
        split: str,
        size: int,
        limit: int = 0,
        max_pixels: int | None = None,
    ):
        if dataset not in DATASETS:
            raise TransInrError(
                f"unknown --dataset '{dataset}'; choose one of: {', '.join(DATASETS)}"
            )
        if split not in SPLITS:
            raise TransInrError(f"unknown --split '{split}'; choose one of: {', '.join(SPLITS)}")
        root = Path(root)
        lister = {"celeba": celeba_files, "imagenette": imagenette_files, "folder": folder_files}
        self.files = lister[dataset](root, split)
        if limit:
            self.files = self.files[:limit]
        if not self.files:
            raise TransInrError(f"no {split} images found for --dataset {dataset} in {root}")
        self.size, self.max_pixels = size, max_pixels
        self.random_crop = dataset == "imagenette" and split == "train"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        image = load_image(self.files[index], self.max_pixels)
        if not self.random_crop:
            return fit_image(image, self.size, "crop")[0]
        generator = torch.Generator().manual_seed(seed)
        height, width = image.shape[1:]
        if min(height, width) < self.size:
            image = resize(image, max(self.size, height), max(self.size, width))
            height, width = image.shape[1:]
        top = int(torch.randint(height - self.size + 1, (1,), generator=generator))
        left = int(torch.randint(width - self.size + 1, (1,), generator=generator))
        crop = image[:, top : top + self.size, left : left + self.size]
        if torch.rand(1, generator=generator) < 0.5:
            crop = crop.flip(-1)
        return crop.contiguous()


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


def guarded_loader(dataset: Dataset, **options) -> Iterator:
    """A DataLoader over `dataset` (same options) whose batches raise a worker's TransInrError in
    this process, as the same one-line error."""
    from torch.utils.data import DataLoader

    loader = DataLoader(GuardedDataset(dataset), collate_fn=collate_guarded, **options)
    for batch in loader:
        if isinstance(batch, LoadFailure):
            raise TransInrError(batch.message)
        yield batch
