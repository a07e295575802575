"""Posed views in the "learnit" ShapeNet layout the paper uses (Sec. 4.2), read exactly.

`<root>/<category>/<object_id>/transforms.json` holds `camera_angle_x` and `frames` of
`{file_path, transform_matrix}` (camera-to-world, OpenGL); the image of a frame is
`<object_id>/<basename(file_path)>.png`, RGBA composited on white. The split file is
`<root>/<category minus trailing s>_splits.json`. Training uses views 0-24 of train objects.

The files are read strictly by models/io/view_files.py (paths kept inside the object folder and
the data root); every image is checked from its header before any is decoded, and views over
MAX_VIEW_SIDE are decoded reduced and read at that size, the focal length scaled to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from models.errors import TransInrError
from models.io.images import image_size, is_file, max_pixels_setting, read_picture, resize
from models.io.view_files import (  # noqa: F401  (splits_file, lists_split: re-exported)
    Transforms,
    check_inside,
    frame_image,
    lists_split,
    splits_file,
)
from models.io.view_files import object_folders as split_folders
from models.io.view_files import read_transforms as read_transforms_file
from models.nerf.rays import camera_rays, focal_from_angle

TRAIN_VIEWS = 25
MAX_VIEW_SIDE = 512  # views are read at most this large (decoded reduced), the focal scaled
VIEW_MEMORY_BUDGET = 1 << 30  # bytes the decoded views of one object may take
VIEW_CACHE_BYTES = 2 << 30  # a train split up to this size is kept decoded in memory


@dataclass
class PosedViews:
    """Views of one object: images (V, 3, H, W) in [0, 1] on white, poses (V, 4, 4), focal."""

    images: torch.Tensor
    poses: torch.Tensor
    focal: float
    camera_angle_x: float


def read_transforms(path: Path) -> tuple[float, list]:
    """Parse and check transforms.json -> (camera_angle_x, frames) (models/io/view_files.py)."""
    transforms = read_transforms_file(path)
    return transforms.camera_angle_x, transforms.frames


def transforms_of(source: str | Path, follow_links: bool = False) -> Transforms:
    """The checked transforms.json of an object folder, or of its path."""
    source = Path(source)
    if source.suffix == ".json":
        return read_transforms_file(source)
    path = source / "transforms.json"
    if is_file(path):  # inside the folder, unless the folder itself was given as a link
        check_inside(path, source, "transforms.json", follow_links)
    return read_transforms_file(path)


def chosen_views(transforms: Transforms, views: list[int] | None) -> list[int]:
    """The view indices to read: all, or the given ones, each checked to exist."""
    count = len(transforms.frames)
    chosen = list(range(count)) if views is None else list(views)
    if not chosen:
        raise TransInrError(f"no views chosen from {transforms.path}; give at least one view index")
    for index in chosen:
        if not 0 <= index < count:
            raise TransInrError(
                f"view {index} does not exist: {transforms.path} has views 0 to {count - 1}"
            )
    return chosen


def view_side(folder: Path, index: int, path: Path, max_pixels: int) -> int:
    """The side of a square view from its file's header (nothing decoded)."""
    width, height = image_size(path, max_pixels)
    if width != height:
        raise TransInrError(f"view {index} of {folder} is {width}x{height}; views must be square")
    return width


def check_same_sides(folder: Path, chosen: list[int], sides: list[int]) -> None:
    for index, side in zip(chosen, sides, strict=True):
        if side != sides[0]:
            raise TransInrError(
                f"view {index} of {folder} is {side}x{side}, unlike view {chosen[0]} "
                f"({sides[0]}x{sides[0]}); give same-size views"
            )


def check_view_memory(folder: Path, count: int, side: int) -> None:
    """The decoded views of one object (float RGB) must fit the budget."""
    needed = count * side * side * 3 * 4
    if needed > VIEW_MEMORY_BUDGET:
        raise TransInrError(
            f"the {count} views of {folder} would take {needed / 1e9:.1f} GB decoded at "
            f"{side}x{side}, over the {VIEW_MEMORY_BUDGET / 1e9:.1f} GB budget; use fewer views "
            "(--views) or smaller images"
        )


def read_view(path: Path, side: int, max_pixels: int) -> torch.Tensor:
    """One view (3, side, side): decoded reduced when it is larger, then resized to `side`."""
    pixels = read_picture(path, max_pixels, keep=side).pixels
    if pixels.shape[1] != side or pixels.shape[2] != side:
        pixels = resize(pixels, side, side)
    return pixels


def load_views(
    source: str | Path,
    views: list[int] | None = None,
    *,
    max_pixels: int | None = None,
    follow_links: bool = False,
    max_side: int = MAX_VIEW_SIDE,
) -> PosedViews:
    """An object folder (or its transforms.json) -> PosedViews of the chosen view indices.

    Every image is checked from its header (square, one size, under `max_pixels`, inside the
    folder unless `follow_links`) before any is decoded; views larger than `max_side` are read
    at `max_side` (decoded reduced), with the focal length scaled to match."""
    transforms = transforms_of(source, follow_links)
    return views_of(transforms, views, max_pixels, follow_links, max_side)


def views_of(
    transforms: Transforms,
    views: list[int] | None = None,
    max_pixels: int | None = None,
    follow_links: bool = False,
    max_side: int = MAX_VIEW_SIDE,
) -> PosedViews:
    """The chosen views of a checked transforms.json, read as load_views reads them."""
    folder = transforms.folder
    chosen = chosen_views(transforms, views)
    max_pixels = max_pixels or max_pixels_setting()
    paths = [frame_image(transforms, index, follow_links) for index in chosen]
    sides = [
        view_side(folder, index, path, max_pixels)
        for index, path in zip(chosen, paths, strict=True)
    ]
    check_same_sides(folder, chosen, sides)
    side = min(sides[0], max_side)
    check_view_memory(folder, len(chosen), side)
    images = torch.stack([read_view(path, side, max_pixels) for path in paths])
    poses = torch.stack([transforms.frames[index].pose for index in chosen])
    angle = transforms.camera_angle_x
    return PosedViews(images, poses, focal_from_angle(side, angle), angle)


def object_folders(
    root: str | Path, category: str, split: str, follow_links: bool = False
) -> list[Path]:
    """The object folders of a split, in the split file's order (models/io/view_files.py)."""
    return split_folders(root, category, split, follow_links)


def has_split(root: str | Path, category: str, split: str) -> bool:
    """Whether the split file lists any object for `split`."""
    return lists_split(root, category, split)


def views_to_tokens_input(
    images: torch.Tensor, poses: torch.Tensor, focal: float, size: int
) -> torch.Tensor:
    """Views (..., V, 3, H, W) + poses (..., V, 4, 4) -> the tokenizer's 9-channel input
    (..., V, 9, size, size): colour (area-resized) and the rays of the resized pixels."""
    height = images.shape[-1]
    lead = images.shape[:-3]
    if height != size:
        images = F.interpolate(
            images.reshape(-1, 3, height, height), size=(size, size), mode="area"
        ).reshape(*lead, 3, size, size)
    origins, directions = camera_rays(poses, size, size, focal * size / height)  # (..., S, S, 3)
    rays = torch.cat([origins, directions], dim=-1).movedim(-1, -3)  # (..., 6, S, S)
    return torch.cat([images, rays.to(images.dtype)], dim=-3)


class ViewDataset(Dataset):
    """Objects of a learnit split: each item is (images (V, 3, H, W), poses (V, 4, 4), focal).

    The train split yields views 0-24 (the paper's training views), of the first object's size
    in every object (they are batched together); other splits all views, at least `min_views`
    of them (support views and a query view). Files are read as load_views reads them.
    With `cache_bytes`, a set whose decoded views fit in it keeps every object once read:
    decoding 16 x 25 PNGs a step was two thirds of a CPU training step (each loader worker
    holds its own copy).
    """

    def __init__(
        self,
        root: str | Path,
        category: str,
        split: str,
        limit: int = 0,
        *,
        min_views: int = 1,
        max_pixels: int | None = None,
        follow_links: bool = False,
        cache_bytes: int = 0,
    ):
        self.folders = object_folders(root, category, split, follow_links)
        if limit:
            self.folders = self.folders[:limit]
        if not self.folders:
            raise TransInrError(f"no {split} objects listed in {splits_file(Path(root), category)}")
        self.views = list(range(TRAIN_VIEWS)) if split == "train" else None
        self.min_views = max(min_views, 1)
        self.max_pixels, self.follow_links = max_pixels, follow_links
        self.cache: dict[int, PosedViews] | None = None
        self.view_size = self.load(0).images.shape[-1]
        if self.views is not None and len(self) * self.item_bytes <= cache_bytes:
            self.cache = {}

    def __len__(self) -> int:
        return len(self.folders)

    @property
    def item_bytes(self) -> int:
        """The size of one item's images (the train split's views, float RGB)."""
        return len(self.views or [0]) * 3 * self.view_size * self.view_size * 4

    def load(self, index: int) -> PosedViews:
        """The checked views of object `index` (from the cache once read, if there is one)."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        views = self.read(index)
        if self.cache is not None:
            self.cache[index] = views
        return views

    def read(self, index: int) -> PosedViews:
        """The checked views of object `index`, read from its files."""
        folder = self.folders[index]
        transforms = transforms_of(folder, self.follow_links)
        count = len(transforms.frames)
        if self.views is not None and count < len(self.views):
            raise TransInrError(
                f"{folder} has {count} views; training uses views 0-{len(self.views) - 1} of "
                f"every train object: give it {len(self.views)} or more"
            )
        if count < self.min_views:
            raise TransInrError(
                f"{folder} has {count} views; {self.min_views - 1} support views and a query "
                f"view need {self.min_views}: lower --support-views or give the object more views"
            )
        views = views_of(transforms, self.views, self.max_pixels, self.follow_links)
        side = views.images.shape[-1]
        expected = getattr(self, "view_size", side)
        if self.views is not None and side != expected:  # train objects are batched together
            raise TransInrError(
                f"the views of {folder} are read at {side}x{side}, unlike the other objects' "
                f"{expected}x{expected} ({self.folders[0]}); give every object views of one size"
            )
        return views

    def __getitem__(self, item: int | tuple[int, int]):
        index = item[0] if isinstance(item, tuple) else item
        views = self.load(index)
        return views.images, views.poses, torch.tensor(views.focal)
