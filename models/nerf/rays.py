"""Cameras and rays for view synthesis (paper Sec. 4.2, the authors' learnit convention).

Camera-to-world poses in the OpenGL convention (camera looks down -z, y up). Rays go through
pixel centres: direction ((x + 0.5 - W/2) / f, -(y + 0.5 - H/2) / f, -1) rotated by the pose,
not normalised; the origin is the camera position. focal = 0.5 W / tan(0.5 camera_angle_x).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from models.errors import TransInrError
from models.io.safetensors_io import parse_json


def focal_from_angle(width: int, camera_angle_x: float) -> float:
    """Focal length in pixels from the horizontal field of view."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def camera_rays(
    pose: torch.Tensor,
    height: int,
    width: int,
    focal: float | torch.Tensor,
    row_range: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of every pixel: pose (..., 4, 4) -> origins, directions (..., H, W, 3).

    `focal` is a number, or a tensor broadcastable to pose's leading dims (one per camera).
    `row_range` (first, stop): only those rows of the H x W image (..., stop - first, W, 3).
    """
    dtype, device = pose.dtype, pose.device
    first, stop = row_range or (0, height)
    cols = torch.arange(width, dtype=dtype, device=device) + 0.5
    rows = torch.arange(first, stop, dtype=dtype, device=device) + 0.5
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    focal = torch.as_tensor(focal, dtype=dtype, device=device)[..., None, None]  # (..., 1, 1)
    right, up = (x - 0.5 * width) / focal, -(y - 0.5 * height) / focal
    right, up = torch.broadcast_tensors(right, up)
    camera_dirs = torch.stack([right, up, -torch.ones_like(right)], dim=-1)  # (..., H, W, 3)
    rotation = pose[..., None, None, :3, :3]  # (..., 1, 1, 3, 3)
    directions = (rotation @ camera_dirs[..., None]).squeeze(-1)
    origins = pose[..., None, None, :3, 3].expand_as(directions)
    return origins, directions


MAX_CAMERA_DISTANCE = 1e4  # what an .inr header records (NerfHeader.camera_radius)
MAX_POSE_FILE_BYTES = 1 << 20


def check_camera_options(azimuth: float, elevation: float, radius: float) -> None:
    """A camera on a sphere: finite angles in range and a positive distance, or a one-line
    error naming the option (--azimuth, --elevation, --radius)."""
    checks = (
        ("--azimuth", azimuth, -1e6, 1e6, "degrees, e.g. 30 (any turn: 390 is 30)"),
        ("--elevation", elevation, -90.0, 90.0, "degrees from -90 to 90, e.g. 30"),
    )
    for name, value, low, high, fix in checks:
        if not (math.isfinite(value) and low <= value <= high):
            raise TransInrError(f"{name} {value:g} is out of range; give {fix}")
    if not (math.isfinite(radius) and 0 < radius <= MAX_CAMERA_DISTANCE):
        raise TransInrError(
            f"--radius {radius:g} is not a camera distance; give a positive number up to "
            f"{MAX_CAMERA_DISTANCE:g}, e.g. 4"
        )


def look_at_pose(azimuth: float, elevation: float, radius: float) -> torch.Tensor:
    """Camera-to-world (4, 4) on a sphere (degrees, Z up), looking at the origin, OpenGL axes."""
    check_camera_options(azimuth, elevation, radius)
    azimuth, elevation = math.radians(azimuth), math.radians(elevation)
    position = torch.tensor(
        [
            radius * math.cos(elevation) * math.cos(azimuth),
            radius * math.cos(elevation) * math.sin(azimuth),
            radius * math.sin(elevation),
        ],
        dtype=torch.float64,
    )
    backward = position / position.norm()  # camera +z points away from the target
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    right = torch.linalg.cross(up, backward)
    if right.norm() < 1e-8:  # looking straight down or up
        right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    right = right / right.norm()
    true_up = torch.linalg.cross(backward, right)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, backward, position
    return pose.float()


def check_pose(matrix: object, where: str) -> torch.Tensor:
    """A 4 x 4 rigid camera-to-world transform, or a one-line error."""
    try:
        pose = torch.tensor(matrix, dtype=torch.float64)
    except (TypeError, ValueError):
        raise TransInrError(f"{where}: the pose is not a 4x4 matrix of numbers") from None
    if pose.shape != (4, 4) or not torch.isfinite(pose).all():
        raise TransInrError(f"{where}: the pose is not a finite 4x4 matrix")
    rotation = pose[:3, :3]
    orthonormal = torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=pose.dtype), atol=1e-3)
    bottom = torch.allclose(pose[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=pose.dtype))
    if not (orthonormal and bottom and abs(torch.linalg.det(rotation).item() - 1.0) < 1e-3):
        raise TransInrError(
            f"{where}: the pose is not a rigid transform (rotation + translation, last row "
            "0 0 0 1); give a camera-to-world matrix"
        )
    return pose.float()


def read_pose_file(path: Path) -> torch.Tensor:
    """A 4 x 4 camera-to-world matrix from a file: JSON (a 4x4 list, or an object with
    `transform_matrix`) or text with 16 numbers."""
    if not path.is_file():
        raise TransInrError(f"pose file not found: {path}; check the path")
    if path.stat().st_size > MAX_POSE_FILE_BYTES:
        raise TransInrError(f"{path} is too large for a pose (16 numbers); give the right file")
    text = path.read_text(errors="replace")
    try:
        data = parse_json(text)
        if isinstance(data, dict):
            data = data.get("transform_matrix")
    except ValueError:
        try:
            values = [float(v) for v in text.replace(",", " ").split()]
        except ValueError:
            raise TransInrError(
                f"{path} is not a pose: give JSON [[...] x4] or 16 numbers"
            ) from None
        data = [values[i : i + 4] for i in range(0, len(values), 4)]
    pose = check_pose(data, str(path))
    distance = pose[:3, 3].double().norm().item()
    if not 0 < distance <= MAX_CAMERA_DISTANCE:
        raise TransInrError(
            f"{path}: the camera is {distance:g} from the object at the origin; give a camera "
            f"within {MAX_CAMERA_DISTANCE:g} of it, not at it"
        )
    return pose
