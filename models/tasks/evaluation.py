"""Evaluation as the paper defines it: PSNR per image (MSE over pixels and channels on [0, 1]),
averaged over the split, for the generated INRs and optionally after K refinement steps.
Views (Tables 3, 4): full query renders from random support/query pairs of each test object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.core.metalearner import TransInr
from models.core.rendering import psnr
from models.data.image_data import ImageDataset
from models.data.loading import guarded_loader
from models.data.view_data import PosedViews, ViewDataset
from models.nerf.volume_rendering import render_view
from models.tasks.objectives import degrade, pick_views, support_input
from models.tasks.refinement import (
    RefineSettings,
    image_loss,
    observed_psnr,
    refine,
    refine_report,
    view_loss,
)


@dataclass
class EvalResult:
    images: int
    psnr: float
    psnr_refined: float | None = None
    refine_steps: int = 0
    per_image: list[float] = field(default_factory=list)
    per_image_refined: list[float] = field(default_factory=list)
    objects: int = 0  # views: the objects scored (`images` counts their support/query pairs)
    baseline_psnr: float | None = None  # the trivial baseline's, when asked for


def evaluate_images(
    model: TransInr,
    dataset: ImageDataset,
    device: torch.device,
    batch_size: int = 16,
    refine_steps: int = 0,
    refine_lr: float | None = None,
    workers: int = 2,
    on_batch: Callable[[int], None] | None = None,
    input_size: int = 0,
) -> EvalResult:
    """PSNR of every image of `dataset`, without and (if refine_steps) with refinement
    (refine's image defaults, RefineSettings; `refine_lr` overrides the rate).

    input_size > 0 scores upscaling: the model encodes each image downsampled to input_size
    (and resized back, as `encode` does with a small photo); the INR is scored on the full
    image. Refinement needs the full image, so it is not combined with input_size.
    """
    model.eval()
    loader = guarded_loader(dataset, batch_size=batch_size, num_workers=workers)
    inr = model.config.inr
    plain: list[torch.Tensor] = []
    refined: list[torch.Tensor] = []
    for images in loader:
        images = images.to(device)
        with torch.inference_mode():
            weights = [w.clone() for w in model(degrade(images, input_size))]
        plain.append(observed_psnr(weights, inr, images).cpu())
        if refine_steps:
            settings = RefineSettings()  # the measured image defaults, lr overridable
            settings.lr = refine_lr or settings.lr
            loss_fn = image_loss(inr, images)
            tuned = refine_report(weights, loss_fn, refine_steps, settings).weights
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


def bicubic_upscale_psnr(dataset: ImageDataset, input_size: int) -> float:
    """The interpolation baseline of upscaling: each image downsampled to input_size and
    bicubically upsampled back, against the image; averaged."""
    scores = [
        psnr(degrade(image[None], input_size).flatten(1), image[None].flatten(1))
        for image in (dataset[i] for i in range(len(dataset)))
    ]
    return torch.cat(scores).mean().item()


def image_baseline(images: ImageDataset, dataset: str, data: Path, input_size: int | None) -> float:
    """The trivial baseline of an image score: bicubic upsampling of the small inputs (with
    input_size), else the mean training image of the `dataset` layout at `data`."""
    if input_size:
        return bicubic_upscale_psnr(images, input_size)
    train_set = ImageDataset(dataset, data, "train", images.size)
    return mean_image_psnr(train_set, images)


def mean_image_psnr(train_set: ImageDataset, dataset: ImageDataset, sample: int = 2000) -> float:
    """The mean-image baseline: PSNR of the average of (up to `sample`) training images against
    every image of `dataset`, averaged."""
    count = min(sample, len(train_set))
    mean = torch.stack([train_set[i] for i in range(count)]).mean(dim=0)
    scores = [psnr(mean[None].flatten(1), dataset[i][None].flatten(1)) for i in range(len(dataset))]
    return torch.cat(scores).mean().item()


def query_psnr(weights, config, pose: torch.Tensor, target: torch.Tensor, focal: float) -> float:
    """PSNR of the full render from `pose` (1, 4, 4) against the view `target` (1, 3, H, W)."""
    size = target.shape[-1]
    render = render_view(weights, config.inr, config.sampling, pose, size, size, focal)
    return psnr(render.cpu().flatten(1), target.permute(0, 2, 3, 1).flatten(1)).item()


@torch.no_grad()
def evaluate_views(
    model: TransInr,
    dataset: ViewDataset,
    device: torch.device,
    support_views: int = 1,
    pairs_per_object: int = 1,
    refine_steps: int = 0,
    refine_lr: float | None = None,
    seed: int = 0,
    on_pair: Callable[[], None] | None = None,
) -> EvalResult:
    """PSNR of full query-view renders from random support/query pairs (fixed seed), per pair,
    averaged; with refine_steps, also after test-time optimisation on the support views."""
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    plain: list[float] = []
    refined: list[float] = []
    for index in range(len(dataset)):
        images, poses, focal = dataset[index]
        for _ in range(pairs_per_object):
            support, query = pick_views(len(images), 1, support_views, generator)
            tokens_input = support_input(config, images[None], poses[None], focal[None], support)
            with torch.inference_mode():
                weights = [w.clone() for w in model(tokens_input.to(device))]
            query_pose, target = poses[query].to(device), images[query]
            plain.append(query_psnr(weights, config, query_pose, target, focal.item()))
            if refine_steps:
                posed = PosedViews(images[support[0]], poses[support[0]], focal.item(), 0.0)
                loss_fn = view_loss(config.inr, config.sampling, posed, seed=seed, device=device)
                lr = refine_lr or 1e-4  # the paper's test-time lr for views
                tuned = refine(weights, loss_fn, refine_steps, lr, keep_best=False)
                refined.append(query_psnr(tuned, config, query_pose, target, focal.item()))
            if on_pair is not None:
                on_pair()
    result = EvalResult(len(plain), sum(plain) / len(plain), per_image=plain, objects=len(dataset))
    if refine_steps:
        result.psnr_refined = sum(refined) / len(refined)
        result.refine_steps = refine_steps
        result.per_image_refined = refined
    return result


def white_image_psnr(dataset: ViewDataset, objects: int = 8) -> float:
    """The all-white baseline: PSNR of a blank white render against every view of the objects."""
    scores = [
        psnr(torch.ones_like(images).flatten(1), images.flatten(1)).mean().item()
        for images, _, _ in (dataset[i] for i in range(min(objects, len(dataset))))
    ]
    return sum(scores) / len(scores)


def evaluate_image_split(
    model: TransInr, device: torch.device, dataset: str, data: Path, split: str, *,
    limit: int = 0, max_pixels: int | None = None, batch_size: int = 16, refine_steps: int = 0,
    refine_lr: float | None = None, workers: int = 2, input_size: int | None = None,
    baseline: bool = False, on_progress: Callable[[int, int], None] | None = None,
) -> EvalResult:  # fmt: skip
    """evaluate_images on a split of a `dataset` layout at `data` (its first `limit` images);
    `baseline` adds image_baseline's score; `on_progress(done, total)` after each batch."""
    images = ImageDataset(dataset, data, split, model.config.image_size, limit, max_pixels)
    done = 0

    def on_batch(count: int) -> None:
        nonlocal done
        done += count
        if on_progress is not None:
            on_progress(done, len(images))

    result = evaluate_images(
        model, images, device, batch_size, refine_steps, refine_lr, workers, on_batch,
        input_size or 0,
    )  # fmt: skip
    if baseline:
        result.baseline_psnr = image_baseline(images, dataset, data, input_size)
    return result


def evaluate_view_split(
    model: TransInr, device: torch.device, data: Path, category: str, split: str, *,
    limit: int = 0, support_views: int = 1, pairs: int = 1, refine_steps: int = 0,
    refine_lr: float | None = None, seed: int = 0, max_pixels: int | None = None,
    follow_links: bool = False, baseline: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalResult:  # fmt: skip
    """evaluate_views on a split of the `category` objects of a learnit root (its first `limit`
    with a query view besides the support views); `baseline` adds the all-white image's score;
    `on_progress(done, total)` after each pair."""
    objects = ViewDataset(
        data, category, split, limit, min_views=support_views + 1, max_pixels=max_pixels,
        follow_links=follow_links,
    )  # fmt: skip
    total, done = len(objects) * pairs, 0

    def on_pair() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    result = evaluate_views(
        model, objects, device, support_views, pairs, refine_steps, refine_lr, seed, on_pair
    )
    if baseline:
        result.baseline_psnr = white_image_psnr(objects, len(objects))
    return result
