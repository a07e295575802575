"""Test-time optimisation: generated INR weights become free parameters, refined with Adam.

Images: MSE on the observed pixels. Views (Sec. 4.2): 1024 random rays of the support views a
step, lr 1e-4, 100 steps.

The paper does this for views (Sec. 4.2, 100 steps, lr 1e-4); we offer it for images too, on the
observed pixels. Refinement works on explicit weights, batched: each INR's loss term only
touches its own weights, so a batch refines exactly as its members would alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from models.config import INRConfig, RaySampling
from models.inr import INRWeights, grid_image_inr
from models.rays import camera_rays
from models.rendering import psnr, render_pixels
from models.view_data import PosedViews
from models.volume_rendering import render_rays


def refine(
    weights: INRWeights,
    loss_fn: Callable[[INRWeights, int], torch.Tensor],
    steps: int,
    lr: float,
    on_step: Callable[[int, float], None] | None = None,
) -> INRWeights:
    """Adam on all weights (biases too) for `steps` steps of `loss_fn(weights, step)`."""
    params = [w.detach().float().clone().requires_grad_(True) for w in weights]
    optimizer = torch.optim.Adam(params, lr=lr)
    with torch.enable_grad():
        for step in range(steps):
            loss = loss_fn(params, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step(step + 1, loss.item())
    return [p.detach() for p in params]


def image_loss(
    config: INRConfig,
    images: torch.Tensor,
    mask: torch.Tensor | None = None,
    coordinates: str = "grid",
    seed: int = 0,
) -> Callable[[INRWeights, int], torch.Tensor]:
    """Sum over the batch of each image's MSE on its observed pixels (mask (S, S), all if None).

    coordinates "continuous": each step a jittered grid with bicubic targets, as in training
    (models/objectives.py), so refinement keeps the function smooth between pixel centres;
    every jittered sample stays inside its own pixel, so the mask applies unchanged.
    """
    from models.objectives import jittered_centres

    batch, _, height, width = images.shape
    target = images.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    keep = None if mask is None else mask.reshape(-1).to(images.device)

    def loss_fn(weights: INRWeights, step: int) -> torch.Tensor:
        if coordinates == "continuous":
            generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
            rows = jittered_centres(height, generator).to(images.device)
            cols = jittered_centres(width, generator).to(images.device)
            prediction = grid_image_inr(rows, cols, weights, config)
            error = (prediction - observed_samples(images, mask, rows, cols)).pow(2)
        else:
            prediction = render_pixels(weights, config, height, width)
            error = (prediction - target).pow(2)
        if keep is not None:
            error = error[:, keep]
        return error.flatten(1).mean(dim=1).sum()

    return loss_fn


def observed_samples(
    images: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """Bicubic samples (B, R * C, 3) of the images at rows x cols, reading only the observed
    pixels: the image is cut to the mask's bounding box (a fit's content box), whose border
    pixels continue outward, so no sample blends in padding."""
    from models.objectives import sample_image

    if mask is None or bool(mask.all()):
        return sample_image(images, rows, cols)
    height, width = mask.shape
    observed_rows = mask.any(dim=1).nonzero().flatten()
    observed_cols = mask.any(dim=0).nonzero().flatten()
    top, bottom = int(observed_rows[0]), int(observed_rows[-1]) + 1
    left, right = int(observed_cols[0]), int(observed_cols[-1]) + 1

    def to_box(values: torch.Tensor, size: int, low: int, high: int) -> torch.Tensor:
        pixel = (values + 1) * size / 2 - 0.5  # continuous pixel index on the full grid
        return (pixel - low + 0.5) * 2 / (high - low) - 1

    box = images[..., top:bottom, left:right]
    return sample_image(box, to_box(rows, height, top, bottom), to_box(cols, width, left, right))


@torch.no_grad()
def observed_psnr(
    weights: INRWeights, config: INRConfig, images: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-image PSNR (clamped renders) on the observed pixels: (B,)."""
    batch, _, height, width = images.shape
    prediction = render_pixels(weights, config, height, width).clamp(0, 1)
    target = images.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    if mask is not None:
        keep = mask.reshape(-1).to(images.device)
        prediction, target = prediction[:, keep], target[:, keep]
    return psnr(prediction, target)


def random_view_rays(
    posed: PosedViews, count: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` random pixels of all the views: origins, directions, colours, each (1, R, 3)."""
    views, _, height, width = posed.images.shape
    origins, directions = camera_rays(posed.poses, height, width, posed.focal)  # (V, H, W, 3)
    colours = posed.images.permute(0, 2, 3, 1)
    pick = torch.randint(views * height * width, (count,), generator=generator)
    return (
        origins.reshape(-1, 3)[pick][None],
        directions.reshape(-1, 3)[pick][None],
        colours.reshape(-1, 3)[pick][None],
    )


def view_loss(
    inr: INRConfig,
    sampling: RaySampling,
    posed: PosedViews,
    rays_per_step: int = 1024,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Callable[[INRWeights, int], torch.Tensor]:
    """The paper's test-time objective (Sec. 4.2): each step, MSE on `rays_per_step` random rays
    of the support views, jittered samples."""

    def loss_fn(weights: INRWeights, step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        origins, directions, colours = random_view_rays(posed, rays_per_step, generator)
        prediction = render_rays(
            weights,
            inr,
            sampling,
            origins.to(device),
            directions.to(device),
            jitter=True,
            generator=generator,
        )
        return (prediction - colours.to(device)).pow(2).mean()

    return loss_fn
