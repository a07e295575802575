"""Test-time optimisation: generated INR weights become free parameters, refined with Adam.

Images: MSE on the observed pixels. Views (Sec. 4.2): 1024 random rays of the support views a
step, lr 1e-4, 100 steps.

The paper does this for views (Sec. 4.2, 100 steps, lr 1e-4); we offer it for images too, on the
observed pixels. Refinement works on explicit weights, batched: each INR's loss term only
touches its own weights, so a batch refines exactly as its members would alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.core.config import INRConfig, RaySampling
from models.core.inr import INRWeights, grid_image_inr
from models.core.rendering import psnr, render_pixels
from models.data.view_data import PosedViews
from models.io.inr_header import ImageHeader
from models.nerf.rays import camera_rays
from models.nerf.volume_rendering import render_rays

SCHEDULES = ("constant", "cosine")


@dataclass
class RefineSettings:
    """Adam on every weight; defaults from the sweep in bench/refine.py (README, Refinement)."""

    lr: float = 1e-3
    schedule: str = "constant"  # constant | cosine (from lr down to 0 over the steps)
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Refined:
    """What refinement returns: the best weights seen, per item, and how it went."""

    weights: INRWeights
    initial_loss: torch.Tensor  # (B,) per item, before any step
    best_loss: torch.Tensor  # (B,) the loss of the returned weights
    best_step: torch.Tensor  # (B,) the step whose weights are returned (0: the input's)
    diverged: torch.Tensor  # (B,) bool: the loss rose above DIVERGED x the initial, or to NaN

    DIVERGED = 4.0


def refine_report(
    weights: INRWeights,
    loss_fn: Callable[[INRWeights, int], torch.Tensor],
    steps: int,
    settings: RefineSettings | None = None,
    on_step: Callable[[int, float], None] | None = None,
    keep_best: bool = True,
) -> Refined:
    """Adam on all weights (biases too) for `steps` steps of `loss_fn(weights, step)`, which
    returns per-item losses (B,) (or one loss for the batch). Keeps, per item, the weights of
    the lowest loss seen, the input's included, so refinement never makes an INR worse on its
    own objective; flags items whose loss diverged. For a loss on random rays, whose value
    varies with the draw, `keep_best=False` returns the last weights (still flagged)."""
    settings = settings or RefineSettings()
    params = [w.detach().float().clone().requires_grad_(True) for w in weights]
    best = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=settings.lr, betas=settings.betas)
    best_loss = initial = None
    best_step = diverged = None
    with torch.enable_grad():
        for step in range(steps + 1):
            losses = loss_fn(params, min(step, steps - 1)).reshape(-1)
            values = losses.detach().float()
            values = torch.where(torch.isfinite(values), values, torch.full_like(values, math.inf))
            if best_loss is None:
                initial, best_loss = values.clone(), values.clone()
                # on the losses' device: a GPU mask cannot index or update CPU tensors
                best_step = torch.zeros(len(values), dtype=torch.long, device=values.device)
                diverged = torch.zeros(len(values), dtype=torch.bool, device=values.device)
            else:
                better = values < best_loss if keep_best else torch.ones_like(diverged)
                if step < steps and not keep_best:
                    better = torch.zeros_like(diverged)  # only the final weights count
                if better.any():
                    for kept, current in zip(best, params, strict=True):
                        if len(values) == len(current):  # per item
                            kept[better] = current.detach()[better]
                        else:
                            kept.copy_(current.detach())
                    best_loss = torch.where(better, values, best_loss)
                    best_step[better] = step
                diverged |= values > Refined.DIVERGED * initial
            if step == steps:
                break  # the last loss only scores the final weights
            if settings.schedule == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            if on_step is not None:
                on_step(step + 1, losses.sum().item())
    return Refined(best, initial, best_loss, best_step, diverged)


def refine(
    weights: INRWeights,
    loss_fn: Callable[[INRWeights, int], torch.Tensor],
    steps: int,
    lr: float,
    on_step: Callable[[int, float], None] | None = None,
    schedule: str = "constant",
    betas: tuple[float, float] = (0.9, 0.999),
    keep_best: bool = True,
) -> INRWeights:
    """`refine_report`'s weights, with the given Adam settings."""
    settings = RefineSettings(lr, schedule, betas)
    return refine_report(weights, loss_fn, steps, settings, on_step, keep_best).weights


def refine_and_check(
    weights: INRWeights,
    loss_fn: Callable[[INRWeights, int], torch.Tensor],
    measure: Callable[[INRWeights], float],
    steps: int,
    settings: RefineSettings,
    on_step: Callable[[int, float], None] | None = None,
    keep_best: bool = True,
) -> tuple[INRWeights, float, float]:
    """Refine one INR; returns (weights, PSNR before, PSNR after) by `measure`.

    Never returns weights that `measure` scores below the input's: those are replaced by the
    input, with a warning. A diverged loss (above Refined.DIVERGED x its start, or NaN) warns,
    naming the step whose weights are kept and the fix.
    """
    before = measure(weights)
    refined = refine_report(weights, loss_fn, steps, settings, on_step, keep_best)
    after = measure(refined.weights)
    if bool(refined.diverged.any()):
        warnings.warn(
            f"the loss diverged at lr {settings.lr:g} (it rose above {Refined.DIVERGED:g}x its "
            f"start); kept the weights of step {int(refined.best_step.max())}; use a lower --lr",
            stacklevel=2,
        )
    if not after >= before:  # also NaN
        warnings.warn(
            f"refinement did not improve the PSNR ({before:.2f} -> {after:.2f} dB); kept the "
            "input's weights",
            stacklevel=2,
        )
        return [w.detach().float().clone() for w in weights], before, before
    return refined.weights, before, after


def check_refine_target(header: ImageHeader, height: int, width: int, psnr_before: float) -> None:
    """Warn when the image given to refine looks like another picture than the one encoded:
    another size or aspect than recorded, or a PSNR far below the recorded one."""
    fit = header.fit
    source = (fit.source_width, fit.source_height) if fit is not None else (width, height)
    if source != (width, height):
        warnings.warn(
            f"the image is {width}x{height} but the file was encoded from a "
            f"{source[0]}x{source[1]} picture; refine against the image it was encoded from",
            stacklevel=2,
        )
    recorded = header.refined_psnr if header.refined_psnr is not None else header.encode_psnr
    if recorded is not None and psnr_before < recorded - 3.0:
        warnings.warn(
            f"the INR scores {psnr_before:.2f} dB on this image, far below the {recorded:.2f} dB "
            "recorded in the file; is it the image it was encoded from?",
            stacklevel=2,
        )


def image_loss(
    config: INRConfig,
    images: torch.Tensor,
    mask: torch.Tensor | None = None,
    coordinates: str = "grid",
    seed: int = 0,
) -> Callable[[INRWeights, int], torch.Tensor]:
    """Each image's MSE on its observed pixels (mask (S, S), all if None): (B,).

    coordinates "continuous": each step a jittered grid with bicubic targets, as in training
    (models/tasks/objectives.py), so refinement keeps the function smooth between pixel centres;
    every jittered sample stays inside its own pixel, so the mask applies unchanged.
    """
    from models.tasks.objectives import jittered_centres

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
        return error.flatten(1).mean(dim=1)  # (B,): each image's own MSE

    return loss_fn


def observed_samples(
    images: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """Bicubic samples (B, R * C, 3) of the images at rows x cols, reading only the observed
    pixels: the image is cut to the mask's bounding box (a fit's content box), whose border
    pixels continue outward, so no sample blends in padding."""
    from models.tasks.objectives import sample_image

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
