"""Augmentation of posed views for NeRF training (ours, not the paper's): more objects from few.

A mirrored object is a real-looking new object: every view flipped left-right, with its camera
mirrored through the plane x = 0 (the rays of the flipped pixels are the mirror images of the
original rays, so the views stay consistent). ShapeNet-aligned objects face +y, so x = 0 is their
left-right plane: a mirrored chair still faces +y. A colour permutation swaps the RGB channels
of all views of an object alike (white stays white). Real meshes are few (tens of chairs), so both
multiply what the meta-learner sees.
"""

from __future__ import annotations

import torch

AUGMENTATIONS = ("mirror", "colours")
IMAGE_AUGMENTATIONS = ("flip",)  # images: mirrored left-right at random (models/data/image_data)

# pose' = WORLD_MIRROR @ pose @ CAMERA_FLIP: world x -> -x, camera x (image columns) -> -x.
WORLD_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
CAMERA_FLIP = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))


def parse_augmentations(text: str, allowed: tuple[str, ...] = AUGMENTATIONS) -> tuple[str, ...]:
    """'mirror,colours' -> ('mirror', 'colours'); '' or 'none' -> (); a name not in `allowed` or
    a repeated one is a ValueError."""
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    if kinds == ("none",):
        return ()
    unknown = [kind for kind in kinds if kind not in allowed]
    if unknown or len(set(kinds)) != len(kinds):
        raise ValueError(f"unknown or repeated augmentation in {text!r}")
    return kinds


def mirror_views(images: torch.Tensor, poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mirror image of an object: views (..., 3, H, W) flipped left-right, poses (..., 4, 4)
    mirrored through x = 0, the left-right plane of an object facing +y (still rotations: two
    reflections)."""
    mirror, flip = WORLD_MIRROR.to(poses), CAMERA_FLIP.to(poses)
    return images.flip(-1), mirror @ poses @ flip


def augment_views(
    images: torch.Tensor, poses: torch.Tensor, kinds: tuple[str, ...], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per object of a batch (images (B, V, 3, H, W), poses (B, V, 4, 4)): mirrored with
    probability 1/2 ('mirror'), colour channels in a random order ('colours')."""
    batch = len(images)
    if "mirror" in kinds:
        chosen = torch.rand(batch, generator=generator) < 0.5
        mirrored_images, mirrored_poses = mirror_views(images, poses)
        images = torch.where(chosen[:, None, None, None, None], mirrored_images, images)
        poses = torch.where(chosen[:, None, None, None], mirrored_poses, poses)
    if "colours" in kinds:
        orders = torch.argsort(torch.rand(batch, 3, generator=generator), dim=1)  # (B, 3)
        index = orders[:, None, :, None, None].expand(-1, images.shape[1], -1, *images.shape[3:])
        images = images.gather(2, index)
    return images, poses
