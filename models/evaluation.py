"""Evaluation as the paper defines it: PSNR per image (MSE over pixels and channels on [0, 1]),
averaged over the split, for the generated INRs and optionally after K refinement steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from models.data import ImageDataset
from models.metalearner import TransInr
from models.refinement import image_loss, observed_psnr, refine
from models.rendering import psnr


@dataclass
class EvalResult:
    images: int
    psnr: float
    psnr_refined: float | None = None
    refine_steps: int = 0
    per_image: list[float] = field(default_factory=list)
    per_image_refined: list[float] = field(default_factory=list)


def evaluate_images(
    model: TransInr,
    dataset: ImageDataset,
    device: torch.device,
    batch_size: int = 16,
    refine_steps: int = 0,
    refine_lr: float = 1e-4,
    workers: int = 2,
    on_batch: Callable[[int], None] | None = None,
) -> EvalResult:
    """PSNR of every image of `dataset`, without and (if refine_steps) with refinement."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    inr = model.config.inr
    plain: list[torch.Tensor] = []
    refined: list[torch.Tensor] = []
    for images in loader:
        images = images.to(device)
        with torch.inference_mode():
            weights = [w.clone() for w in model(images)]
        plain.append(observed_psnr(weights, inr, images).cpu())
        if refine_steps:
            tuned = refine(weights, image_loss(inr, images), refine_steps, refine_lr)
            refined.append(observed_psnr(tuned, inr, images).cpu())
        if on_batch is not None:
            on_batch(len(images))
    per_image = torch.cat(plain)
    result = EvalResult(len(per_image), per_image.mean().item(), per_image=per_image.tolist())
    if refine_steps:
        per_refined = torch.cat(refined)
        result.psnr_refined = per_refined.mean().item()
        result.refine_steps = refine_steps
        result.per_image_refined = per_refined.tolist()
    return result


def mean_image_psnr(train_set: ImageDataset, images: torch.Tensor, sample: int = 2000) -> float:
    """The mean-image baseline: PSNR of the average training image against each of `images`."""
    count = min(sample, len(train_set))
    mean = torch.stack([train_set[i] for i in range(count)]).mean(dim=0)
    return psnr(mean.expand_as(images).flatten(1), images.flatten(1)).mean().item()
