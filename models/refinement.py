"""Test-time optimisation: generated INR weights become free parameters, refined with Adam.

The paper does this for views (Sec. 4.2, 100 steps, lr 1e-4); we offer it for images too, on the
observed pixels. Refinement works on explicit weights, batched: each INR's loss term only
touches its own weights, so a batch refines exactly as its members would alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from models.config import INRConfig
from models.inr import INRWeights
from models.rendering import psnr, render_pixels


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
    config: INRConfig, images: torch.Tensor, mask: torch.Tensor | None = None
) -> Callable[[INRWeights, int], torch.Tensor]:
    """Sum over the batch of each image's MSE on its observed pixels (mask (S, S), all if None)."""
    batch, _, height, width = images.shape
    target = images.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    keep = None if mask is None else mask.reshape(-1).to(images.device)

    def loss_fn(weights: INRWeights, step: int) -> torch.Tensor:
        prediction = render_pixels(weights, config, height, width)
        error = (prediction - target).pow(2)
        if keep is not None:
            error = error[:, keep]
        return error.flatten(1).mean(dim=1).sum()

    return loss_fn


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
