"""Posed views in the "learnit" ShapeNet layout the paper uses (Sec. 4.2), read exactly.

`<root>/<category>/<object_id>/transforms.json` holds `camera_angle_x` and `frames` of
`{file_path, transform_matrix}` (camera-to-world, OpenGL); the image of a frame is
`<object_id>/<basename(file_path)>.png`, RGBA composited on white. The split file is
`<root>/<category minus trailing s>_splits.json`. Training uses views 0-24 of train objects.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from models.errors import TransInrError
from models.images import load_image
from models.rays import camera_rays, check_pose, focal_from_angle

TRAIN_VIEWS = 25


@dataclass
class PosedViews:
    """Views of one object: images (V, 3, H, W) in [0, 1] on white, poses (V, 4, 4), focal."""

    images: torch.Tensor
    poses: torch.Tensor
    focal: float
    camera_angle_x: float


def read_transforms(path: Path) -> tuple[float, list[dict]]:
    """Parse and check transforms.json -> (camera_angle_x, frames)."""
    if not path.is_file():
        raise TransInrError(f"{path} not found; a views folder needs a transforms.json")
    try:
        data = json.loads(path.read_text())
        angle = float(data["camera_angle_x"])
        frames = data["frames"]
        if not isinstance(frames, list) or not frames:
            raise ValueError("no frames")
        for frame in frames:
            if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
                raise ValueError("frame without file_path")
            if "transform_matrix" not in frame:
                raise ValueError("frame without transform_matrix")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise TransInrError(
            f"{path} is malformed: it needs camera_angle_x and frames of "
            "{file_path, transform_matrix}"
        ) from None
    if not 0.0 < angle < math.pi:
        raise TransInrError(f"{path}: camera_angle_x {angle} is not an angle in (0, pi) radians")
    return angle, frames


def frame_image_path(folder: Path, file_path: str) -> Path:
    name = Path(file_path).name
    return folder / (name if name.lower().endswith(".png") else name + ".png")


def load_views(source: str | Path, views: list[int] | None = None) -> PosedViews:
    """An object folder (or its transforms.json) -> PosedViews of the chosen view indices."""
    source = Path(source)
    transforms = source if source.suffix == ".json" else source / "transforms.json"
    folder = transforms.parent
    angle, frames = read_transforms(transforms)
    chosen = list(range(len(frames))) if views is None else views
    if not chosen:
        raise TransInrError(f"no views chosen from {transforms}; give at least one view index")
    for index in chosen:
        if not 0 <= index < len(frames):
            raise TransInrError(
                f"view {index} does not exist: {transforms} has views 0 to {len(frames) - 1}"
            )
    images, poses = [], []
    for index in chosen:
        frame = frames[index]
        image = load_image(frame_image_path(folder, frame["file_path"]))
        if image.shape[1] != image.shape[2]:
            raise TransInrError(
                f"view {index} of {folder} is {image.shape[2]}x{image.shape[1]}; "
                "views must be square"
            )
        if images and image.shape != images[0].shape:
            raise TransInrError(
                f"view {index} of {folder} is {image.shape[2]}x{image.shape[1]}, unlike view "
                f"{chosen[0]} ({images[0].shape[2]}x{images[0].shape[1]}); give same-size views"
            )
        images.append(image)
        poses.append(check_pose(frame["transform_matrix"], f"{transforms} frame {index}"))
    width = images[0].shape[2]
    return PosedViews(
        torch.stack(images), torch.stack(poses), focal_from_angle(width, angle), angle
    )


def splits_file(root: Path, category: str) -> Path:
    """`chairs` -> `<root>/chair_splits.json` (the category minus its trailing s)."""
    return root / f"{category[:-1] if category.endswith('s') else category}_splits.json"


def object_folders(root: str | Path, category: str, split: str) -> list[Path]:
    """The object folders of a split, in the split file's order."""
    root = Path(root)
    path = splits_file(root, category)
    if not path.is_file():
        raise TransInrError(f"split file {path} not found; check --data and --category")
    try:
        ids = json.loads(path.read_text())[split]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError
    except (KeyError, ValueError, json.JSONDecodeError):
        raise TransInrError(f"{path} has no list of object ids for split '{split}'") from None
    return [root / category / object_id for object_id in ids]


def has_split(root: str | Path, category: str, split: str) -> bool:
    """Whether the split file lists any object for `split`."""
    try:
        return bool(json.loads(splits_file(Path(root), category).read_text()).get(split))
    except (OSError, ValueError, AttributeError):
        return False


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

    The train split yields views 0-24 (the paper's training views); other splits all views.
    """

    def __init__(self, root: str | Path, category: str, split: str, limit: int = 0):
        self.folders = object_folders(root, category, split)
        if limit:
            self.folders = self.folders[:limit]
        if not self.folders:
            raise TransInrError(f"no {split} objects listed in {splits_file(Path(root), category)}")
        self.views = list(range(TRAIN_VIEWS)) if split == "train" else None

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, item: int | tuple[int, int]):
        index = item[0] if isinstance(item, tuple) else item
        views = load_views(self.folders[index], self.views)
        return views.images, views.poses, torch.tensor(views.focal)
