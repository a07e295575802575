"""Tokenizers: observations -> data tokens for the Transformer (paper Sec. 3.3, 4.2).

An image is zero-padded, cut into P x P patches, and each flattened patch is mapped by a Linear
layer plus a learned positional embedding (one vector per patch position). Posed views are
9-channel images of colour and ray geometry, patched the same way, without positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.core.initialisation import standard_normal


def image_to_patches(images: torch.Tensor, patch_size: int, padding: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, patch_count, C * P * P), patches in row-major order.

    `padding` zeros are added per axis: padding // 2 before, the rest after.
    """
    before, after = padding // 2, padding - padding // 2
    padded = F.pad(images, (before, after, before, after))
    patches = F.unfold(padded, kernel_size=patch_size, stride=patch_size)  # (B, C*P*P, n)
    return patches.transpose(1, 2)


class ImageTokenizer(nn.Module):
    """Zero padding, P x P patches, Linear(C P^2 -> dim) + learned positional embedding N(0, 1)."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        padding: int,
        channels: int,
        dim: int,
        positional: bool = True,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.padding = padding
        grid = (image_size + padding) // patch_size
        self.patch_embedding = nn.Linear(channels * patch_size**2, dim)
        self.position_embedding = (
            nn.Parameter(standard_normal(grid * grid, dim)) if positional else None
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> data tokens (B, patch_count, dim)."""
        tokens = self.patch_embedding(image_to_patches(images, self.patch_size, self.padding))
        if self.position_embedding is not None:
            tokens = tokens + self.position_embedding
        return tokens


class ViewTokenizer(ImageTokenizer):
    """Posed views (Sec. 4.2): each view is a 9-channel image [rgb, ray origin, ray direction],
    cut into P x P patches, Linear(9 P^2 -> dim), no positional embedding; N views give
    N x patch_count tokens, so one model takes 1, 2 or more views."""

    def __init__(self, image_size: int, patch_size: int, channels: int, dim: int):
        super().__init__(image_size, patch_size, 0, channels, dim, positional=False)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """(B, N, 9, H, W) -> data tokens (B, N * patch_count, dim)."""
        batch, count = views.shape[:2]
        tokens = super().forward(views.flatten(0, 1))  # (B * N, patch_count, dim)
        return tokens.reshape(batch, count * tokens.shape[1], -1)
