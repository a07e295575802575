"""Rendering image INRs: pixel-centre coordinate grids, evaluated in bounded chunks (Sec. 4.1).

Coordinates are pixel centres in (-1, 1), (y, x) order. A `box` (y0, x0, y1, x1) in those
coordinates selects the region to render (the whole square by default), so an INR renders at any
resolution and aspect with memory bounded by the chunk size, not the image size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from models.core.config import INRConfig
from models.core.inr import INRWeights, grid_image_inr

FULL_BOX = (-1.0, -1.0, 1.0, 1.0)
Gains = tuple[torch.Tensor, torch.Tensor] | None  # per-axis feature gains, models/core/antialias.py


def pixel_centres(count: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Centres of `count` equal cells spanning (low, high)."""
    step = (high - low) / count
    return low + step * (torch.arange(count, dtype=torch.float32) + 0.5)


def coordinate_grid(
    height: int, width: int, box: tuple[float, float, float, float] = FULL_BOX
) -> torch.Tensor:
    """(height * width, 2) pixel-centre coordinates (y, x), row-major."""
    rows = pixel_centres(height, box[0], box[2])
    cols = pixel_centres(width, box[1], box[3])
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).view(-1, 2)


def render_pixels(weights: INRWeights, config: INRConfig, height: int, width: int) -> torch.Tensor:
    """Differentiable full render on the whole square: (B, height * width, 3), unclamped."""
    device = weights[0].device
    rows, cols = pixel_centres(height).to(device), pixel_centres(width).to(device)
    return grid_image_inr(rows, cols, weights, config)


def iter_row_chunks(
    weights: INRWeights,
    config: INRConfig,
    height: int,
    width: int,
    box: tuple[float, float, float, float] = FULL_BOX,
    chunk_pixels: int = 1 << 12,
    gains: Gains = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first_row, rgb (B, rows, width, 3) clamped to [0, 1]) over the image, no grad.

    `gains`: anti-aliasing feature gains (models/core/antialias.py); None renders the raw function.
    """
    rows_per_chunk = max(1, chunk_pixels // width)
    device = weights[0].device
    cols = pixel_centres(width, box[1], box[3]).to(device)
    all_rows = pixel_centres(height, box[0], box[2]).to(device)
    batch = weights[0].shape[0]
    with torch.inference_mode():
        for first in range(0, height, rows_per_chunk):
            rows = all_rows[first : first + rows_per_chunk]
            rgb = grid_image_inr(rows, cols, weights, config, gains)
            yield first, rgb.clamp_(0.0, 1.0).view(batch, len(rows), width, 3)


def render_image(
    weights: INRWeights,
    config: INRConfig,
    height: int,
    width: int,
    box: tuple[float, float, float, float] = FULL_BOX,
    chunk_pixels: int = 1 << 12,
    gains: Gains = None,
) -> torch.Tensor:
    """Render to a float tensor (B, 3, height, width) in [0, 1]."""
    batch = weights[0].shape[0]
    image = torch.empty(batch, height, width, 3)
    for first, rgb in iter_row_chunks(weights, config, height, width, box, chunk_pixels, gains):
        image[:, first : first + rgb.shape[1]] = rgb.float().cpu()
    return image.permute(0, 3, 1, 2)


def render_quantized(
    weights: INRWeights,
    config: INRConfig,
    height: int,
    width: int,
    box: tuple[float, float, float, float] = FULL_BOX,
    bit_depth: int = 8,
    chunk_pixels: int = 1 << 12,
    on_rows: Callable[[int], None] | None = None,
    gains: Gains = None,
) -> np.ndarray:
    """Render one INR straight into an (height, width, 3) uint8 / uint16 array, chunk by chunk.

    Memory is the output array plus one chunk: a 4096 x 4096 8-bit render needs about 50 MB.
    """
    dtype, scale = (np.uint8, 255.0) if bit_depth == 8 else (np.uint16, 65535.0)
    image = np.empty((height, width, 3), dtype=dtype)
    for first, rgb in iter_row_chunks(weights, config, height, width, box, chunk_pixels, gains):
        values = (rgb[0].float() * scale).round_().cpu().numpy().astype(dtype)
        image[first : first + values.shape[0]] = values
        if on_rows is not None:
            on_rows(values.shape[0])
    return image


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR on [0, 1]: -10 log10(MSE over all but the first dim)."""
    mse = (prediction - target).pow(2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))
