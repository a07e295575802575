"""Volume rendering of NeRF INRs (paper Sec. 4.2): samplers and the compositing renderer.

Coarse sampling only: `samples` depths uniformly from near to far, jittered by
U[0, 1) (far - near) / (samples - 1) in training; the last interval is 1e-3;
alpha = 1 - exp(-sigma delta); white background (rgb + 1 - accumulated alpha).
Depths are along the un-normalised ray directions, i.e. camera-space depth.
"""

from __future__ import annotations

import torch

from models.core.config import INRConfig, RaySampling
from models.core.inr import INRWeights, nerf_inr
from models.errors import TransInrError
from models.nerf.rays import camera_rays, look_at_pose

RAY_MEMORY_BUDGET = 2 << 30  # bytes the rays of one optimisation step may take
BYTES_PER_ACTIVATION = 10  # per INR activation of a sample, forward and backward (measured)


def ray_batch_bytes(inr: INRConfig, samples: int, rays: int) -> int:
    """The memory an optimisation step on `rays` rays of `samples` samples takes in the INR."""
    per_point = inr.in_dim + inr.width * (inr.depth - 1) + inr.out_dim
    return rays * samples * per_point * BYTES_PER_ACTIVATION


def check_ray_batch(inr: INRConfig, samples: int, rays: int, option: str = "--rays") -> None:
    """Refuse, before any step, a ray count whose activations would not fit RAY_MEMORY_BUDGET."""
    needed = ray_batch_bytes(inr, samples, rays)
    if rays < 1 or needed > RAY_MEMORY_BUDGET:
        most = max(1, RAY_MEMORY_BUDGET // ray_batch_bytes(inr, samples, 1))
        raise TransInrError(
            f"{option} {rays} would take {needed / 1e9:.1f} GB a step ({samples} samples a ray "
            f"through a {inr.depth} x {inr.width} INR), over the {RAY_MEMORY_BUDGET / 1e9:.1f} GB "
            f"budget; use {option} 1 to {most}"
        )


def sample_depths(
    shape: tuple[int, ...],
    near: float,
    far: float,
    samples: int,
    jitter: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Sample depths (*shape, samples), uniform from near to far, optionally jittered."""
    depths = torch.linspace(near, far, samples, device=device).expand(*shape, samples)
    if jitter:
        noise = torch.rand(*shape, samples, generator=generator, device="cpu").to(device)
        depths = depths + noise * (far - near) / max(samples - 1, 1)
    return depths


def composite(
    colour: torch.Tensor, density: torch.Tensor, depths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour (..., P, 3), density (..., P), depths (..., P) -> (rgb (..., 3), opacity (...))."""
    deltas = depths[..., 1:] - depths[..., :-1]
    deltas = torch.cat([deltas, torch.full_like(deltas[..., :1], 1e-3)], dim=-1)
    alpha = 1.0 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(1.0 - alpha + 1e-10, dim=-1)
    transmittance = torch.cat([torch.ones_like(alpha[..., :1]), transmittance[..., :-1]], dim=-1)
    weights = alpha * transmittance
    opacity = weights.sum(dim=-1)
    rgb = (weights[..., None] * colour).sum(dim=-2) + (1.0 - opacity[..., None])
    return rgb, opacity


def render_rays(
    weights: INRWeights,
    inr: INRConfig,
    sampling: RaySampling,
    origins: torch.Tensor,
    directions: torch.Tensor,
    jitter: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rays (B, R, 3) + (B, R, 3) through a batch of NeRF INRs -> rgb (B, R, 3) on white."""
    samples = sampling.samples
    batch, count = origins.shape[:2]
    depths = sample_depths(
        (batch, count), sampling.near, sampling.far, samples, jitter, generator, origins.device
    )
    points = origins[:, :, None] + directions[:, :, None] * depths[..., None]  # (B, R, P, 3)
    colour, density = nerf_inr(points.reshape(batch, count * samples, 3), weights, inr)
    rgb, _ = composite(
        colour.view(batch, count, samples, 3).float(),
        density.view(batch, count, samples).float(),
        depths,
    )
    return rgb


def render_view(
    weights: INRWeights,
    inr: INRConfig,
    sampling: RaySampling,
    pose: torch.Tensor,
    height: int,
    width: int,
    focal: float,
    chunk_points: int = 4096,
) -> torch.Tensor:
    """Full images from camera-to-world poses (B, 4, 4) -> (B, H, W, 3) in [0, 1], no grad.

    Rays go through the INR `chunk_points // samples` at a time, so the activations of a chunk
    stay in cache (4096 points: 32 rays of 128 samples); the rays themselves are made a block of
    rows at a time, so memory is the image plus one block, whatever its size.
    """
    chunk_rays = max(1, chunk_points // sampling.samples)
    batch = pose.shape[0]
    image = torch.empty(batch, height, width, 3, device=pose.device)
    block_rows = max(1, (1 << 16) // width)
    with torch.inference_mode():
        for top in range(0, height, block_rows):
            bottom = min(height, top + block_rows)
            origins, directions = camera_rays(pose.float(), height, width, focal, (top, bottom))
            origins, directions = origins.reshape(batch, -1, 3), directions.reshape(batch, -1, 3)
            block = image[:, top:bottom].view(batch, -1, 3)
            for first in range(0, origins.shape[1], chunk_rays):
                part = slice(first, first + chunk_rays)
                rgb = render_rays(weights, inr, sampling, origins[:, part], directions[:, part])
                block[:, part] = rgb.clamp(0.0, 1.0)
    return image


def orbit_poses(frames: int, elevation: float, radius: float) -> torch.Tensor:
    """`frames` cameras evenly around the object (Z up) at one elevation: (frames, 4, 4)."""
    return torch.stack([look_at_pose(360.0 * i / frames, elevation, radius) for i in range(frames)])


def camera_radius(poses: torch.Tensor) -> float:
    """Mean distance of the cameras from the origin."""
    return poses[:, :3, 3].norm(dim=-1).mean().item() if len(poses) else 4.0
