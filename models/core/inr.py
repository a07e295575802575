"""Implicit neural representations as pure functions of (coordinates, weights) (paper Sec. 3.1).

An INR's weights are a list of matrices `wb` of shape (B, in + 1, out), one per linear layer,
the last row being the bias. Nothing is stored on a module: the hypernetwork returns weights,
an `.inr` file stores them, refinement optimises them, rendering consumes them.

Two activations between layers (`INRConfig.activation`), the output layer always linear:
- "relu" (the paper's INR), on Fourier features of the coordinates;
- "sine", a SIREN (Sitzmann et al. 2020): sin(SINE_OMEGA (x W + b)) after *every* hidden layer,
  SINE_OMEGA = 30 on all of them as SIREN's reference code does (not folded into the weights),
  so SIREN's Adam learning rates (1e-4 in its paper) carry over. Usually on the raw
  coordinates in (-1, 1) (`fourier_count` 0); SIREN initialisation in `init_weights`.

With `INRConfig.shift_grid` the weights end with one more tensor, a grid of first-layer bias
shifts (B, cells, width), sampled bilinearly at each coordinate and added before the first
activation: shift modulations on a latent grid, as in Spatial Functa (Bauer et al. 2023).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.core.config import INRConfig
from models.errors import TransInrError

INRWeights = list[torch.Tensor]  # per layer (B, in + 1, out)

SINE_OMEGA = 30.0  # SIREN's w0: the frequency factor of every sine layer


def fourier_frequencies(
    config: INRConfig, device: torch.device | str | None = None
) -> torch.Tensor:
    """exp(linspace(0, ln fourier_max, fourier_count)), times pi for the image INR."""
    frequencies = torch.exp(
        torch.linspace(0.0, math.log(config.fourier_max), config.fourier_count, device=device)
    )
    return frequencies * math.pi if config.fourier_pi else frequencies


def fourier_features(coords: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """(..., d) -> (..., 2 d n): [cos(x w), sin(x w)] for every coordinate and frequency."""
    phases = (coords.unsqueeze(-1) * frequencies).flatten(-2)  # (..., d * n)
    return torch.cat([torch.cos(phases), torch.sin(phases)], dim=-1)


def inr_features(coords: torch.Tensor, config: INRConfig) -> torch.Tensor:
    """The MLP's input (..., in_dim): Fourier features, or the coordinates if fourier_count 0."""
    if config.fourier_count == 0:
        return coords
    return fourier_features(coords, fourier_frequencies(config, coords.device))


def stack_weight_and_bias(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(fan_in, fan_out) weight and (fan_out,) bias -> one (fan_in + 1, fan_out) matrix.

    Copies into an empty matrix rather than `torch.cat`: under `torch.device("meta")` (the shape
    check of a checkpoint) `cat` imports torch._dynamo, a second of start-up for every command.
    """
    matrix = torch.empty(weight.shape[0] + 1, weight.shape[1], dtype=weight.dtype)
    matrix[:-1].copy_(weight)
    matrix[-1].copy_(bias)
    return matrix


def init_layer(fan_in: int, fan_out: int) -> torch.Tensor:
    """A (fan_in + 1, fan_out) weight-and-bias matrix initialised like torch's nn.Linear."""
    linear = torch.nn.Linear(fan_in, fan_out)
    return stack_weight_and_bias(linear.weight.detach().t(), linear.bias.detach())


def init_sine_layer(fan_in: int, fan_out: int, first: bool) -> torch.Tensor:
    """A SIREN layer's (fan_in + 1, fan_out) matrix: weights U(-1/in, 1/in) on the first layer,
    U(-sqrt(6/in)/w0, sqrt(6/in)/w0) on the others; biases as nn.Linear's, U(+-1/sqrt(in))."""
    bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / SINE_OMEGA
    weight = torch.empty(fan_in, fan_out).uniform_(-bound, bound)
    bias_bound = 1.0 / math.sqrt(fan_in)
    bias = torch.empty(fan_out).uniform_(-bias_bound, bias_bound)
    return stack_weight_and_bias(weight, bias)


def init_weights(config: INRConfig, batch: int = 1) -> INRWeights:
    """Fresh random weights (fitting from scratch, tests), shared across the batch.

    ReLU: torch's nn.Linear initialisation; sine: SIREN's; a shift grid starts at zero. Draws
    from torch's global generator.
    """
    shapes = list(enumerate(config.layer_shapes()))
    if config.activation == "sine":
        layers = [init_sine_layer(i, o, first=index == 0) for index, (i, o) in shapes]
    else:
        layers = [init_layer(i, o) for _, (i, o) in shapes]
    if config.shift_grid:
        layers.append(torch.zeros(config.shift_grid**2, config.width))
    return [layer.expand(batch, -1, -1).clone() for layer in layers]


def split_shift_grid(
    weights: INRWeights, config: INRConfig
) -> tuple[INRWeights, torch.Tensor | None]:
    """(the MLP's layers, the shift grid (B, cells, width) or None)."""
    if config.shift_grid:
        return weights[:-1], weights[-1]
    return weights, None


def sample_shift_grid(grid: torch.Tensor, points: torch.Tensor, config: INRConfig) -> torch.Tensor:
    """Bilinear samples of the shift grid (B, cells, width) at points (1 or B, H, W, 2) in (y, x)
    order -> (B, H * W, width); the grid's cells span shift_low to shift_high, edges clamped."""
    batch, cells = grid.shape[0], config.shift_grid
    image = grid.transpose(1, 2).reshape(batch, grid.shape[2], cells, cells)  # (B, width, y, x)
    span = config.shift_high - config.shift_low
    normalised = (points.flip(-1) - config.shift_low) * (2.0 / span) - 1.0  # (x, y) in (-1, 1)
    normalised = normalised.to(image.dtype).expand(batch, -1, -1, -1)
    shifts = F.grid_sample(
        image, normalised, mode="bilinear", padding_mode="border", align_corners=False
    )  # (B, width, H, W)
    return shifts.flatten(2).transpose(1, 2)


def linear(inputs: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """(B, N, in) @ weight + bias with wb (B, in + 1, out) -> (B, N, out)."""
    wb = wb.to(inputs.dtype)
    return torch.baddbmm(wb[:, -1:, :], inputs, wb[:, :-1, :])


def check_activation(activation: str) -> None:
    if activation not in INRConfig.ACTIVATIONS:
        raise TransInrError(f"unknown INR activation {activation!r}; choose relu or sine")


def mlp(
    features: torch.Tensor,
    weights: INRWeights,
    activation: str = "relu",
    first_shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, N, in) through the layers, `activation` between them, linear output: -> (B, N, out).

    `first_shift` (B, N, width), if given, is added to the first layer's output before its
    activation (the sampled shift grid)."""
    check_activation(activation)
    hidden = features
    for index, wb in enumerate(weights):
        hidden = linear(hidden, wb)
        if index == 0 and first_shift is not None:
            hidden = hidden + first_shift.to(hidden.dtype)
        if index < len(weights) - 1:
            if activation == "sine":
                hidden = torch.sin(SINE_OMEGA * hidden)
            else:
                hidden = torch.relu_(hidden)  # in place: one pass less over the activations
    return hidden


def image_inr(coords: torch.Tensor, weights: INRWeights, config: INRConfig) -> torch.Tensor:
    """Pixel coordinates (B, N, 2) in (-1, 1), (y, x) order -> RGB (B, N, 3), output + 0.5."""
    layers, grid = split_shift_grid(weights, config)
    shift = None if grid is None else sample_shift_grid(grid, coords[:, :, None], config)
    features = inr_features(coords, config)
    return mlp(features, layers, config.activation, shift) + config.out_bias


def grid_image_inr(
    rows: torch.Tensor,
    cols: torch.Tensor,
    weights: INRWeights,
    config: INRConfig,
    gains: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The image INR on the grid rows x cols -> RGB (B, R * C, 3), row-major.

    `gains` (row gains, column gains), each (fourier_count,), scale the cos and sin features of
    each frequency along that axis: the integrated encoding of anti-aliased rendering
    (models/core/antialias.py). None is the raw function.

    Same function as `image_inr` on the grid's coordinates, but the first layer is computed
    separably: the Fourier features of (y, x) are [cos yw, cos xw, sin yw, sin xw], so
    features @ W1 = (y part) @ W1_y + (x part) @ W1_x, one small matmul per row and per column
    instead of one per pixel. Raw coordinates (fourier_count 0) split the same way, as
    y W1[0] + x W1[1]; the activation comes after the sum, so either activation works.
    """
    check_activation(config.activation)
    weights, grid = split_shift_grid(weights, config)
    count, first = config.fourier_count, weights[0]
    frequencies = fourier_frequencies(config, rows.device)

    def axis_part(values: torch.Tensor, axis: int) -> torch.Tensor:  # (L,) -> (B, L, out)
        if count == 0:  # raw coordinates: row `axis` of W1 times the coordinate
            return values[:, None] * first[:, axis : axis + 1].to(values.dtype)
        phases = values[:, None] * frequencies  # (L, n)
        features = torch.cat([torch.cos(phases), torch.sin(phases)], dim=-1)  # (L, 2n)
        if gains is not None:
            features = features * gains[axis].to(features).repeat(2)
        cos_rows = first[:, axis * count : (axis + 1) * count]
        sin_rows = first[:, (2 + axis) * count : (3 + axis) * count]
        axis_weight = torch.cat([cos_rows, sin_rows], dim=1).to(features.dtype)  # (B, 2n, out)
        return torch.matmul(features, axis_weight)

    row_part, col_part = axis_part(rows, 0), axis_part(cols, 1)
    hidden = row_part[:, :, None] + col_part[:, None, :] + first[:, None, -1:].to(row_part.dtype)
    hidden = hidden.flatten(1, 2)  # (B, R * C, out)
    if grid is not None:
        points = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # (R, C, 2)
        hidden = hidden + sample_shift_grid(grid, points[None], config).to(hidden.dtype)
    if config.activation == "sine":
        hidden = torch.sin(SINE_OMEGA * hidden)
    else:
        hidden = torch.relu(hidden)
    return mlp(hidden, weights[1:], config.activation) + config.out_bias


def flops_per_point(config: INRConfig) -> int:
    """Multiply-adds x 2 of the linear layers for one coordinate (the INR's matmul FLOPs); the
    shift grid's bilinear sample is not counted."""
    return sum(2 * fan_in * fan_out for fan_in, fan_out in config.layer_shapes())


def nerf_inr(
    points: torch.Tensor, weights: INRWeights, config: INRConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (B, N, 3) -> colour (B, N, 3) via sigmoid and density (B, N) via ReLU (Sec. 4.2).

    No view directions, as in the paper; Fourier features of xyz without pi.
    """
    features = inr_features(points, config)
    output = mlp(features, weights, config.activation) + config.out_bias  # (B, N, 4)
    return torch.sigmoid(output[..., :3]), torch.relu(output[..., 3])
