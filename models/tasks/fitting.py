"""Fitting an INR to one image from scratch by gradient descent: the paper's baseline, which the
meta-learner replaces with one forward pass (random initialisation, then Adam on every weight
against the image's pixels).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from models.core.config import INRConfig
from models.core.inr import INRWeights, init_weights
from models.core.presets import preset_config
from models.core.rendering import FULL_BOX
from models.errors import TransInrError
from models.io.images import content_mask, is_greyscale, read_fitted
from models.io.inr_file import InrFile
from models.io.inr_header import ImageHeader
from models.tasks.refinement import image_loss, observed_psnr, refine

# Adam learning rates per activation, from a sweep on a photo with celeba89's INR at 89 x 89:
# relu 3e-3 and sine 1e-3 are faster early but unstable; relu 3e-4, sine 1e-4 are slower.
DEFAULT_LR = {"relu": 1e-3, "sine": 3e-4}


def baseline_inr(preset: str, activation: str) -> tuple[INRConfig, int]:
    """The INR a from-scratch fit trains, and its default size: the image preset's architecture
    and input size, with `activation` (relu, or sine: a SIREN on the raw coordinates)."""
    config = preset_config(preset, "image")
    inr = dataclasses.replace(config.inr, activation=activation)
    if activation == "sine":
        inr.fourier_count = 0  # SIREN takes the raw coordinates
    return inr, config.image_size


def fit_image(
    image: torch.Tensor,
    inr: INRConfig,
    steps: int,
    lr: float,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
    seed: int = 0,
    mask: torch.Tensor | None = None,
) -> tuple[INRWeights, float]:
    """Fit a freshly initialised INR to `image` (3, H, W) in [0, 1] on its H x W pixel grid.

    `steps` Adam steps of `lr` on the MSE over all pixels (or those in `mask` (H, W));
    `on_step(step, mse)` after each. The initialisation depends only on `seed`. Returns the
    weights, per layer (in + 1, out) on the CPU, and the final PSNR of the clamped render.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise TransInrError(f"fit_image takes a (3, H, W) image, not {tuple(image.shape)}")
    if steps < 1:
        raise TransInrError(f"--steps {steps} must be at least 1")
    if not (math.isfinite(lr) and lr > 0):
        raise TransInrError(f"--lr {lr} must be a positive number, e.g. {DEFAULT_LR['relu']}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        initial = init_weights(inr)
    try:
        target = image[None].to(device)
        loss_fn = image_loss(inr, target, mask)
        weights = refine([w.to(device) for w in initial], loss_fn, steps, lr, on_step)
        score = observed_psnr(weights, inr, target, mask).item()
    except RuntimeError as error:  # torch.OutOfMemoryError, or the CPU allocator's failure
        if "memory" not in str(error).lower():
            raise
        raise TransInrError(
            f"out of memory fitting {image.shape[1]}x{image.shape[2]} pixels (every step renders "
            "the whole image); use a smaller --size"
        ) from None
    return [w[0].cpu() for w in weights], score


def fit_image_file(
    path: str | Path,
    inr: INRConfig,
    size: int,
    steps: int,
    lr: float,
    fit: str = "crop",
    device: torch.device | str = "cpu",
    max_pixels: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    seed: int = 0,
) -> tuple[InrFile, float]:
    """Load an image, fit it to size x size (crop, pad or resize) and fit an INR to it.

    Returns the `.inr` content (with the same image info as `transinr encode` writes, so
    render, info and refine treat it alike) and the seconds the fitting took. With `pad`, only
    the picture's pixels count, not the padding.
    """
    fitted, fit_info, picture = read_fitted(path, size, fit, max_pixels)
    full = tuple(fit_info.content_box) == FULL_BOX
    mask = None if full else content_mask(size, fit_info.content_box)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    weights, score = fit_image(fitted, inr, steps, lr, device, on_step, seed, mask)
    seconds = time.perf_counter() - started
    header = ImageHeader(
        **fit_info.header_fields(size, path, is_greyscale(picture.pixels)),
        fit_steps=steps,
        fit_lr=lr,
        fit_seed=seed,
        activation=inr.activation,
        psnr=round(score, 4),
    )
    return InrFile(weights, inr, "image", header), seconds
