"""Encoding: observations -> complete INR weights in one forward pass, as `.inr` files (Sec. 3).

No gradient steps: the meta-learner reads the fitted image, or the posed views of an object, and
writes every weight of the INR.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from models.core.config import INRConfig, RaySampling
from models.core.metalearner import TransInr
from models.core.rendering import psnr
from models.data.view_data import PosedViews, load_views, views_to_tokens_input
from models.errors import TransInrError
from models.io.checkpoint import Checkpoint
from models.io.images import content_mask, is_greyscale, read_fitted
from models.io.inr_file import InrFile
from models.io.inr_header import MAX_TEXT, ImageHeader, NerfHeader, SceneBounds, with_refinement
from models.nerf.volume_rendering import camera_radius, render_rays
from models.tasks.refinement import (
    RefineSettings,
    image_loss,
    observed_psnr,
    random_view_rays,
    refine_report,
)


@torch.inference_mode()
def encode_batch(model: TransInr, images: torch.Tensor) -> list[torch.Tensor]:
    """(B, 3, S, S) in [0, 1] -> INR weights, per layer (B, in + 1, out)."""
    return model(images)


def timed_encode(model: TransInr, observations: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    """encode_batch and the seconds it took (the GPU waited for, when there is one)."""
    cuda = observations.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(observations.device)
    started = time.perf_counter()
    weights = encode_batch(model, observations)
    if cuda:
        torch.cuda.synchronize(observations.device)
    return weights, time.perf_counter() - started


def encode_image_file(
    model: TransInr,
    checkpoint: Checkpoint,
    path: str | Path,
    fit: str = "crop",
    device: torch.device | str = "cpu",
    max_pixels: int | None = None,
) -> tuple[InrFile, float]:
    """Load, fit and encode one image; returns the `.inr` content and the forward-pass seconds."""
    if checkpoint.config.task != "image":
        raise TransInrError(
            f"model {checkpoint.model_id} is a {checkpoint.config.task} model; encoding an "
            "image needs an image model (--model)"
        )
    size = checkpoint.config.image_size
    fitted, fit_info, picture = read_fitted(path, size, fit, max_pixels)
    batch = fitted[None].to(device)
    weights, seconds = timed_encode(model, batch)
    mask = content_mask(size, fit_info.content_box)
    score = observed_psnr(weights, checkpoint.config.inr, batch, mask).item()
    header = ImageHeader(
        **fit_info.header_fields(size, path, is_greyscale(picture.pixels)),
        source_model=checkpoint.model_id,
        encode_psnr=round(score, 4),
    )
    weights = [w[0].detach().cpu() for w in weights]
    return InrFile(weights, checkpoint.config.inr, "image", header), seconds


def encode_views_file(
    model: TransInr,
    checkpoint: Checkpoint,
    source: str | Path,
    views: list[int] | None = None,
    device: torch.device | str = "cpu",
    max_pixels: int | None = None,
    follow_links: bool = False,
) -> tuple[InrFile, float]:
    """Encode posed views of one object (a learnit folder or transforms.json) into a NeRF INR;
    the views are read as load_views reads them (`max_pixels`, `follow_links`)."""
    config = checkpoint.config
    if config.task != "nerf":
        raise TransInrError(
            f"model {checkpoint.model_id} is an image model; encoding views needs a "
            "NeRF model (--model)"
        )
    views = views if views is not None else [0]
    if len(views) > config.max_views:
        raise TransInrError(
            f"{len(views)} support views given, more than this model allows ({config.max_views}); "
            f"pass at most {config.max_views} with --views"
        )
    posed = load_views(source, views, max_pixels=max_pixels, follow_links=follow_links)
    tokens_input = views_to_tokens_input(
        posed.images[None], posed.poses[None], posed.focal, config.image_size
    ).to(device)
    weights, seconds = timed_encode(model, tokens_input)
    score = support_ray_psnr(weights, config.inr, config.sampling, posed, device)
    radius = camera_radius(posed.poses)
    size = posed.images.shape[-1]
    header = NerfHeader(
        near=config.near,
        far=config.far,
        samples=config.samples,
        camera_angle_x=posed.camera_angle_x,
        focal=posed.focal,
        view_size=size,
        native_width=size,
        native_height=size,
        camera_convention="OpenGL camera-to-world, pixel-centre rays, depth along -z",
        support_views=list(views),
        support_poses=posed.poses.tolist(),
        scene_bounds=SceneBounds(radius=max(radius - config.near, 0.0)),
        camera_radius=radius,
        source_model=checkpoint.model_id,
        source_views=str(source)[:MAX_TEXT],
        encode_psnr=round(score, 4),
    )
    weights = [w[0].detach().cpu() for w in weights]
    return InrFile(weights, config.inr, "nerf", header), seconds


def fitted_observation(
    header: ImageHeader, path: str | Path, max_pixels: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The image an image INR observes, fitted as its file records: (3, S, S) in [0, 1], the
    mask (S, S) of observed pixels, and the picture's (height, width) before fitting."""
    fit_mode = header.fit.mode if header.fit is not None else "crop"
    fitted, fit_info, picture = read_fitted(path, header.input_size, fit_mode, max_pixels)
    mask = content_mask(header.input_size, fit_info.content_box)
    return fitted, mask, (picture.height, picture.width)


def refine_encoded_images(
    files: list[InrFile],
    sources: list[str | Path],
    steps: int,
    settings: RefineSettings,
    device: torch.device | str = "cpu",
    max_pixels: int | None = None,
    batch_size: int = 16,
    on_step: Callable[[int], None] | None = None,
) -> None:
    """Refine freshly encoded image INRs against their own inputs, in batches of images with
    the same observed box; each file's weights are replaced and its header records the PSNR
    before and after (encode and refine in one go). `on_step(images)` after every step."""
    observations = [
        fitted_observation(f.header, s, max_pixels) for f, s in zip(files, sources, strict=True)
    ]
    groups: dict[bytes, list[int]] = {}
    for index, (_, mask, _) in enumerate(observations):
        groups.setdefault(mask.numpy().tobytes(), []).append(index)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            images = torch.stack([observations[i][0] for i in chunk]).to(device)
            mask = observations[chunk[0]][1]
            inr = files[chunk[0]].inr
            weights = [
                torch.stack(layer).to(device)
                for layer in zip(*(files[i].weights for i in chunk), strict=True)
            ]
            loss_fn = image_loss(inr, images, mask)
            refined = refine_report(
                weights,
                loss_fn,
                steps,
                settings,
                None if on_step is None else lambda step, loss, n=len(chunk): on_step(n),
            )
            before = observed_psnr(weights, inr, images, mask)
            after = observed_psnr(refined.weights, inr, images, mask)
            for offset, index in enumerate(chunk):
                improved = bool(after[offset] >= before[offset])
                source = refined.weights if improved else weights
                files[index].weights = [w[offset].detach().cpu() for w in source]
                files[index].header = with_refinement(
                    files[index].header,
                    steps,
                    settings.lr,
                    settings.schedule,
                    before[offset].item(),
                    max(after[offset], before[offset]).item(),
                )


@torch.no_grad()
def support_ray_psnr(
    weights: list[torch.Tensor],
    inr: INRConfig,
    sampling: RaySampling,
    posed: PosedViews,
    device: torch.device | str = "cpu",
    rays: int = 1024,
) -> float:
    """PSNR of the INR on `rays` fixed random pixels of its support views (cheap observed fit)."""
    generator = torch.Generator().manual_seed(0)
    origins, directions, colours = random_view_rays(posed, rays, generator)
    prediction = render_rays(weights, inr, sampling, origins.to(device), directions.to(device))
    return psnr(prediction.clamp(0, 1).cpu().flatten(1), colours.flatten(1)).item()
