"""Attention maps of an image meta-learner: where each INR layer's weight tokens look in the image.

The last encoder layer's attention from a weight token to the data tokens, averaged over heads,
is laid on the patch grid, bilinearly upsampled and used to mask the input (paper Sec. 5, Fig. 7).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.core.metalearner import TransInr
from models.errors import TransInrError
from models.io.images import resize


def check_attention_model(model: torch.nn.Module) -> None:
    """Refuse models with no weight-token attention to map: NeRF models and non-Transformer
    baselines."""
    config = getattr(model, "config", None)
    if not isinstance(model, TransInr):
        method = getattr(config, "method", type(model).__name__)
        raise TransInrError(
            f"a {method} model has no Transformer attention to map; "
            "pass --model with a Trans-INR image checkpoint"
        )
    if config.method == "spatial":
        raise TransInrError(
            "a spatial model has no weight tokens to map (its data tokens write the INR); "
            "pass --model with a Trans-INR image checkpoint"
        )
    if config.task != "image":
        raise TransInrError(
            f"attention maps need an image model, not a {config.task} model; "
            "pass --model with an image checkpoint"
        )


@torch.no_grad()
def weight_token_attention(model: TransInr, images: torch.Tensor) -> list[torch.Tensor]:
    """Images (B, 3, S, S) in [0, 1] -> per INR layer i, the head-averaged last-layer attention
    from its g_i weight tokens to the data tokens, (B, g_i, data_token_count).

    A single-vector model has one weight token for all layers: each layer gets it, (B, 1, D).
    """
    check_attention_model(model)
    hypernetwork = model.hypernetwork
    data_tokens = model.tokenizer(images)  # (B, D, dim)
    weight_tokens = hypernetwork.weight_tokens.expand(images.shape[0], -1, -1)  # (B, T, dim)
    tokens = torch.cat([data_tokens, weight_tokens], dim=1)  # (B, D + T, dim)
    _, attention = model.transformer.forward_with_last_attention(tokens)  # (B, heads, N, N)
    data_count = data_tokens.shape[1]
    to_data = attention.mean(dim=1)[:, data_count:, :data_count]  # (B, T, D)
    if getattr(hypernetwork, "single_vector", False):
        return [to_data] * len(hypernetwork.group_counts)
    return list(to_data.split(hypernetwork.group_counts, dim=1))


def most_focused_tokens(layer_attention: torch.Tensor, count: int) -> list[int]:
    """One image's attention of one layer, (g, D) -> the ids of its `count` most focused weight
    tokens (at most g), most focused first: the highest peak share of the token's attention to
    the data tokens. Ties go to the lower id, so the choice is deterministic."""
    share = layer_attention / layer_attention.sum(dim=-1, keepdim=True).clamp_min(1e-12)  # (g, D)
    peak = share.amax(dim=-1)  # (g,)
    order = torch.sort(peak, descending=True, stable=True).indices
    return order[: min(count, len(order))].tolist()


def attention_masks(
    token_attention: torch.Tensor, image_size: int, patch_size: int, padding: int
) -> torch.Tensor:
    """Attention to the data tokens (..., D), D = grid^2 patches in row-major order -> masks
    (..., S, S) in [0, 1] aligned with the S x S input image, each divided by its maximum.

    The grid is bilinearly upsampled to the padded input (S + padding), then the padding
    (padding // 2 before, the rest after) is cropped away.
    """
    padded = image_size + padding
    grid = padded // patch_size
    leading = token_attention.shape[:-1]
    maps = token_attention.reshape(-1, 1, grid, grid).float()  # (M, 1, grid, grid)
    upsampled = F.interpolate(maps, size=(padded, padded), mode="bilinear", align_corners=False)
    before = padding // 2
    masks = upsampled[:, 0, before : before + image_size, before : before + image_size]  # (M, S, S)
    masks = masks / masks.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return masks.reshape(*leading, image_size, image_size)


def attention_figure(
    image: torch.Tensor, layer_masks: list[torch.Tensor], columns: int, cell: int
) -> np.ndarray:
    """The figure as uint8 (rows * cell, (1 + columns) * cell, 3): one row per INR layer, the
    input image (3, S, S) in [0, 1] then the image masked by each of that layer's masks
    (k_i, S, S); a layer with fewer than `columns` masks leaves its last cells white."""
    image = image.detach().float().cpu()
    figure = torch.ones(3, len(layer_masks) * cell, (1 + columns) * cell)
    for row, masks in enumerate(layer_masks):
        cells = [image] + [image * mask.detach().float().cpu() for mask in masks[:columns]]
        for column, picture in enumerate(cells):
            top, left = row * cell, column * cell
            figure[:, top : top + cell, left : left + cell] = resize(picture, cell, cell)
    return (figure.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def attention_map_figure(
    model: TransInr, image: torch.Tensor, tokens: int = 3, cell: int = 178
) -> tuple[np.ndarray, list[list[int]]]:
    """One fitted image (3, S, S) -> the Fig. 7 figure (uint8 (H, W, 3)) for its `tokens` most
    focused weight tokens per INR layer, and those token ids per layer (ids within the layer)."""
    config = model.config
    device = next(model.parameters()).device
    per_layer = weight_token_attention(model, image[None].to(device))  # [(1, g_i, D)]
    chosen = [most_focused_tokens(attention[0], tokens) for attention in per_layer]
    layer_masks = [
        attention_masks(attention[0, ids], config.image_size, config.patch_size, config.padding)
        for attention, ids in zip(per_layer, chosen, strict=True)
    ]  # [(k_i, S, S)]
    return attention_figure(image, layer_masks, tokens, cell), chosen
