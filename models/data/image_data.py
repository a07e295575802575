"""Image data sets for training and evaluation: CelebA, Imagenette and any folder of images.

Each item is a float (3, S, S) image in [0, 1]. CelebA and folders are resized on the short side
and centre-cropped (the paper's recipe), mirrored left-right at random with `flip` (ours, for
training on few faces); Imagenette trains on random S x S crops with horizontal flips. Items
are addressed as (index, seed) so that augmentation is reproducible on resume.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import Dataset

from models.errors import TransInrError
from models.io.images import fit_image, load_image, resize

DATASETS = ("celeba", "imagenette", "folder")
SPLITS = ("train", "val", "test")
ALL = "all"  # every image of the data set, whatever its split (evaluation only)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise TransInrError(f"{what} not found at {path}; check --data")


def celeba_files(root: Path, split: str) -> list[Path]:
    """CelebA layout: img_align_celeba/ and list_eval_partition.txt (0 train, 1 val, 2 test;
    `all`: every listed image)."""
    _require_dir(root / "img_align_celeba", "CelebA folder img_align_celeba/")
    partition_file = root / "list_eval_partition.txt"
    if not partition_file.is_file():
        raise TransInrError(f"{partition_file} not found; a CelebA root needs it (check --data)")
    wanted = {str(SPLITS.index(name)) for name in (SPLITS if split == ALL else (split,))}
    files = []
    for line in partition_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in wanted:
            files.append(root / "img_align_celeba" / parts[0])
    return files


def imagenette_files(root: Path, split: str) -> list[Path]:
    """Imagenette layout: train/ and val/ with one folder per class (test reads val/; `all`
    both)."""
    names = ("train", "val") if split == ALL else ("train" if split == "train" else "val",)
    files = []
    for name in names:
        _require_dir(root / name, f"Imagenette folder {name}/")
        files += sorted(p for p in (root / name).glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


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
    """Any folder of images (searched recursively), split by `folder_splits` (`all`: every
    image)."""
    _require_dir(root, "image folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if split == ALL:
        return files
    splits = folder_splits([p.relative_to(root).as_posix() for p in files])
    return [p for p in files if splits[p.relative_to(root).as_posix()] == split]


class ImageDataset(Dataset):
    """Images of one split (or `all` of them), fitted to S x S; items are looked up by
    (index, seed)."""

    def __init__(
        self,
        dataset: str,
        root: str | Path,
        split: str,
        size: int,
        limit: int = 0,
        max_pixels: int | None = None,
        flip: bool = False,
    ):
        if dataset not in DATASETS:
            raise TransInrError(
                f"unknown --dataset '{dataset}'; choose one of: {', '.join(DATASETS)}"
            )
        if split not in (*SPLITS, ALL):
            choices = ", ".join((*SPLITS, ALL))
            raise TransInrError(f"unknown --split '{split}'; choose one of: {choices}")
        root = Path(root)
        lister = {"celeba": celeba_files, "imagenette": imagenette_files, "folder": folder_files}
        self.files = lister[dataset](root, split)
        if limit:
            self.files = self.files[:limit]
        if not self.files:
            which = "" if split == ALL else f"{split} "
            raise TransInrError(f"no {which}images found for --dataset {dataset} in {root}")
        self.size, self.max_pixels = size, max_pixels
        self.random_crop = dataset == "imagenette" and split == "train"
        self.flip = flip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        image = load_image(self.files[index], self.max_pixels)
        generator = torch.Generator().manual_seed(seed)
        if not self.random_crop:
            fitted = fit_image(image, self.size, "crop")[0]
            if self.flip and torch.rand(1, generator=generator) < 0.5:
                fitted = fitted.flip(-1).contiguous()
            return fitted
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
