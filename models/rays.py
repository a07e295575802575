"""Cameras and rays for view synthesis (paper Sec. 4.2, the authors' learnit convention).

Camera-to-world poses in the OpenGL convention (camera looks down -z, y up). Rays go through
pixel centres: direction ((x + 0.5 - W/2) / f, -(y + 0.5 - H/2) / f, -1) rotated by the pose,
not normalised; the origin is the camera position. focal = 0.5 W / tan(0.5 camera_angle_x).
"""

from __future__ import annotations

import math

import torch


def focal_from_angle(width: int, camera_angle_x: float) -> float:
    """Focal length in pixels from the horizontal field of view."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def camera_rays(
    pose: torch.Tensor, height: int, width: int, focal: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of every pixel: pose (..., 4, 4) -> origins, directions (..., H, W, 3)."""
    dtype, device = pose.dtype, pose.device
    cols = torch.arange(width, dtype=dtype, device=device) + 0.5
    rows = torch.arange(height, dtype=dtype, device=device) + 0.5
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    camera_dirs = torch.stack(
        [(x - 0.5 * width) / focal, -(y - 0.5 * height) / focal, -torch.ones_like(x)], dim=-1
    )  # (H, W, 3)
    rotation = pose[..., None, None, :3, :3]  # (..., 1, 1, 3, 3)
    directions = (rotation @ camera_dirs[..., None]).squeeze(-1)
    origins = pose[..., None, None, :3, 3].expand_as(directions)
    return origins, directions


def look_at_pose(azimuth: float, elevation: float, radius: float) -> torch.Tensor:
    """Camera-to-world (4, 4) on a sphere (degrees, Z up), looking at the origin, OpenGL axes."""
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
