"""What a meta-learner is trained on, per task: the loss of a batch and the validation PSNR.

Images (Sec. 4.1): the generated INR renders the whole input grid; MSE over all pixels. With
continuous coordinates (ours, not the paper's), each step renders a jittered grid instead:
every row and every column moved by its own random offset inside its pixel, the targets
interpolated bicubically from the image, so the function between pixel centres is supervised
too. With an input size below the image size (a learned upscale), the encoder sees the image
downsampled to that size and resized back, and the INR is scored against the full image. A
`flat_images` share of each batch can be replaced by uniform colours, so that a meta-learner of
faces does not paint a ghost face onto a plain input.
Views (Sec. 4.2): the generalisation objective: INR weights from K support views, the loss on
rays of a different query view of the same object, 128 rays per object, half of them on the
foreground during the first epoch, jittered samples along each ray; optionally augmented
(mirrored objects, permuted colours: models/data/view_augment.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.core.config import ModelConfig
from models.core.inr import grid_image_inr
from models.core.metalearner import TransInr
from models.core.rendering import pixel_centres, psnr, render_pixels
from models.data.view_augment import augment_views
from models.data.view_data import views_to_tokens_input
from models.nerf.rays import camera_rays
from models.nerf.volume_rendering import render_rays, render_view

COORDINATES = ("grid", "continuous")


def jittered_centres(count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` pixel centres of (-1, 1), each moved uniformly within its own pixel: (count,)."""
    offsets = torch.rand(count, generator=generator) - 0.5
    return pixel_centres(count) + offsets * (2.0 / count)


def sample_image(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bicubic samples of (B, 3, H, W) at the grid rows x cols in (-1, 1): (B, R * C, 3).

    Pixel centres are where `pixel_centres` puts them (align_corners False); beyond the outer
    centres the border pixel continues.
    """
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1).expand(len(images), -1, -1, -1)  # (B, R, C, 2)
    samples = F.grid_sample(
        images.float(), grid, mode="bicubic", padding_mode="border", align_corners=False
    )
    return samples.clamp_(0.0, 1.0).flatten(2).transpose(1, 2)


def add_flat_images(
    images: torch.Tensor, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Replace round(fraction x B) images of the batch (B, 3, S, S) by uniform random colours."""
    count = round(fraction * len(images))
    if count == 0:
        return images
    colours = torch.rand(count, 3, 1, 1, generator=generator).to(images)
    images = images.clone()
    images[:count] = colours.expand(-1, -1, *images.shape[2:])
    return images


def degrade(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, 3, S, S) -> downsampled to input_size and resized back to S (bicubic, antialiased):
    what `encode` makes of an input_size photo (models/io/images.py `resize`)."""
    size = images.shape[-1]
    if not input_size or input_size == size:
        return images
    small = F.interpolate(images, size=input_size, mode="bicubic", antialias=True)
    back = F.interpolate(small.clamp(0.0, 1.0), size=size, mode="bicubic", antialias=True)
    return back.clamp_(0.0, 1.0)


class ImageLoss:
    """MSE of the generated INRs against the images, on the pixel grid or on a jittered one."""

    def __init__(self, config: ModelConfig, device: torch.device, coordinates: str = "grid"):
        self.inr = config.inr
        self.size = config.image_size
        self.device = device
        self.coordinates = coordinates

    def predict(self, weights: list[torch.Tensor]) -> torch.Tensor:
        return render_pixels(weights, self.inr, self.size, self.size)  # (B, S*S, 3)

    def __call__(
        self,
        weights: list[torch.Tensor],
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        image_weights: torch.Tensor | None = None,
    ):
        """(loss, PSNR): the MSE, each image's weighted by `image_weights` (B,) if given."""
        if self.coordinates == "continuous" and generator is not None:
            rows = jittered_centres(self.size, generator).to(images.device)
            cols = jittered_centres(self.size, generator).to(images.device)
            target = sample_image(images, rows, cols)
            prediction = grid_image_inr(rows, cols, weights, self.inr).float()
        else:
            target = images.permute(0, 2, 3, 1).reshape(images.shape[0], -1, 3)
            prediction = self.predict(weights).float()
        errors = (prediction - target).pow(2)  # (B, pixels, 3)
        if image_weights is not None:
            errors = errors * image_weights.to(errors)[:, None, None]
        return errors.mean(), psnr(prediction.detach(), target)


class ImageObjective:
    """Images in (optionally degraded to `input_size`), the same images out."""

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        val_set,
        val_count: int,
        coordinates: str = "grid",
        input_size: int = 0,
        seed: int = 0,
        flat_images: float = 0.0,
        flat_weight: float = 1.0,
    ):
        self.loss_fn = ImageLoss(config, device, coordinates)
        self.device = device
        self.input_size, self.seed, self.flat_images = input_size, seed, flat_images
        self.flat_weight = flat_weight
        self.val_images = torch.stack([val_set[i] for i in range(min(val_count, len(val_set)))])

    def loss(self, model: TransInr, batch: torch.Tensor, step: int, epoch: int):
        images = batch.to(self.device, non_blocking=True)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        images = add_flat_images(images, self.flat_images, generator)
        weights = None
        if self.flat_weight != 1.0:  # the flat images are the first of the batch
            weights = torch.ones(len(images))
            weights[: round(self.flat_images * len(images))] = self.flat_weight
        prediction = model(degrade(images, self.input_size))
        return self.loss_fn(prediction, images, generator, image_weights=weights)

    @torch.no_grad()
    def validate(
        self, model: TransInr, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> torch.Tensor:
        """Per-image PSNR (clamped renders on the pixel grid) of this rank's validation share."""
        scores, shard = [torch.empty(0)], self.val_images[rank::world_size]
        for images in shard.split(batch_size) if len(shard) else ():
            images = images.to(self.device)
            weights = model(degrade(images, self.input_size))
            prediction = self.loss_fn.predict(weights).clamp(0, 1)
            target = images.permute(0, 2, 3, 1).reshape(len(images), -1, 3)
            scores.append(psnr(prediction, target).cpu())
        return torch.cat(scores)


def pick_views(
    view_count: int, batch: int, support: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per object, `support` distinct support views and one other query view: (B, K), (B,)."""
    order = torch.argsort(torch.rand(batch, view_count, generator=generator), dim=1)
    return order[:, :support], order[:, support]


def gather_views(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor (B, V, ...) and index (B, K) -> (B, K, ...)."""
    return tensor[torch.arange(len(index))[:, None], index]


def support_input(config: ModelConfig, images, poses, focal, support) -> torch.Tensor:
    """The tokenizer input of the chosen support views: (B, K, 9, S, S)."""
    return views_to_tokens_input(
        gather_views(images, support),
        gather_views(poses, support),
        focal[:, None],
        config.image_size,
    )


class NerfObjective:
    """Support views in, novel query views out."""

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        val_set,
        val_count: int,
        support_views: int,
        rays_per_object: int,
        foreground_epochs: float,
        seed: int,
        augmentations: tuple[str, ...] = (),
    ):
        self.config, self.device, self.seed = config, device, seed
        self.augmentations = augmentations
        self.support_views, self.rays = support_views, rays_per_object
        self.foreground_epochs = foreground_epochs
        # Fixed validation pairs: one seed, the first val_count objects.
        generator = torch.Generator().manual_seed(12345)
        self.val_items = []
        for index in range(min(val_count, len(val_set))):
            images, poses, focal = val_set[index]
            support, query = pick_views(len(images), 1, support_views, generator)
            self.val_items.append((images[None], poses[None], focal[None], support, query))

    def sample_rays(self, images, poses, focal, query, generator, foreground: bool):
        """Rays of `self.rays` pixels of each query view, and their colours: (B, R, 3) x 3."""
        batch, _, _, height, width = images.shape
        query_images = gather_views(images, query[:, None])[:, 0]  # (B, 3, H, W)
        query_poses = gather_views(poses, query[:, None])[:, 0]  # (B, 4, 4)
        origins, directions = camera_rays(query_poses, height, width, focal)
        colours = query_images.permute(0, 2, 3, 1).reshape(batch, -1, 3)
        pixel_count = height * width
        pixels = torch.randint(pixel_count, (batch, self.rays), generator=generator)
        if foreground:
            mask = (colours < 0.99).any(dim=-1).float() + 1e-6  # (B, H*W), nearly 0 off object
            half = self.rays // 2
            pixels[:, :half] = torch.multinomial(mask, half, replacement=True, generator=generator)
        pick = pixels[..., None].expand(-1, -1, 3)
        return (
            origins.reshape(batch, -1, 3).gather(1, pick),
            directions.reshape(batch, -1, 3).gather(1, pick),
            colours.gather(1, pick),
        )

    def loss(self, model: TransInr, batch, step: int, epoch: int):
        images, poses, focal = batch
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        support, query = pick_views(images.shape[1], len(images), self.support_views, generator)
        if self.augmentations:  # only the views this step uses: (B, K + 1, ...)
            used = torch.cat([support, query[:, None]], dim=1)
            images, poses = gather_views(images, used), gather_views(poses, used)
            images, poses = augment_views(images, poses, self.augmentations, generator)
            support = torch.arange(used.shape[1] - 1).expand(len(used), -1)
            query = torch.full((len(used),), used.shape[1] - 1)
        tokens_input = support_input(self.config, images, poses, focal, support)
        origins, directions, target = self.sample_rays(
            images, poses, focal, query, generator, epoch < self.foreground_epochs
        )
        weights = model(tokens_input.to(self.device, non_blocking=True))
        prediction = render_rays(
            weights,
            self.config.inr,
            self.config.sampling,
            origins.to(self.device),
            directions.to(self.device),
            jitter=True,
            generator=generator,
        ).float()
        target = target.to(self.device)
        return (prediction - target).pow(2).mean(), psnr(prediction.detach(), target)

    @torch.no_grad()
    def validate(
        self, model: TransInr, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> torch.Tensor:
        """PSNR of full query-view renders of this rank's share of the validation pairs."""
        scores = [torch.empty(0)]
        for images, poses, focal, support, query in self.val_items[rank::world_size]:
            tokens_input = support_input(self.config, images, poses, focal, support)
            weights = model(tokens_input.to(self.device))
            query_pose = gather_views(poses, query[:, None])[:, 0].to(self.device)
            height = images.shape[-1]
            render = render_view(
                weights,
                self.config.inr,
                self.config.sampling,
                query_pose,
                height,
                height,
                focal.item(),
            )
            target = gather_views(images, query[:, None])[:, 0].permute(0, 2, 3, 1)
            scores.append(psnr(render.cpu().flatten(1), target.flatten(1)))
        return torch.cat(scores)
