"""Anti-aliased rendering of image INRs: integrated Fourier features and the native band limit.

An image INR is trained on a grid of `input_size` pixels across the square (-1, 1), so the
function it holds is the image as seen through pixels of width 2 / input_size, and it knows
nothing of frequencies at or above that grid's Nyquist rate. Rendering on another grid applies,
per axis and per Fourier frequency w of the first layer, a gain on its cos and sin features:

- below the native size (render pixels wider than native ones), the integrated encoding of
  mip-NeRF (Barron et al. 2021, Sec. 3.1): the feature averaged over a Gaussian footprint,
  exp(-w^2 s^2 / 2), with s^2 = (render pixel^2 - native pixel^2) / 12, the extra blur a
  render pixel needs beyond what a native pixel already averaged (a box of width d has
  variance d^2 / 12);
- at any size other than native, frequencies at or above the native Nyquist rate
  (w >= pi / native pixel) are dropped: on the native grid they alias to lower frequencies,
  between its pixels they are noise (the paper presets' 1024 pi at 178 px, or an old file's
  top frequency exactly at Nyquist).

At the native grid every gain is 1: the render is the raw function, bit for bit. Only the
first layer's features are filtered; the ReLU layers after it can still add harmonics.
"""

from __future__ import annotations

import math

import torch

from models.core.config import INRConfig
from models.core.inr import fourier_frequencies

NYQUIST_TOLERANCE = 1e-6  # relative: a frequency this close to Nyquist counts as at Nyquist


def axis_gains(config: INRConfig, native_pixel: float, render_pixel: float) -> torch.Tensor | None:
    """Gains (fourier_count,) of one axis's features, or None when they are all 1 (at the
    native grid, or above it for an INR with no frequency at or above Nyquist)."""
    if config.fourier_count == 0 or math.isclose(render_pixel, native_pixel, rel_tol=1e-9):
        return None
    frequencies = fourier_frequencies(config).double()
    variance = max(render_pixel**2 - native_pixel**2, 0.0) / 12.0
    gains = torch.exp(-0.5 * variance * frequencies**2)
    nyquist = math.pi / native_pixel
    gains[frequencies >= nyquist * (1.0 - NYQUIST_TOLERANCE)] = 0.0
    return None if bool(torch.all(gains == 1.0)) else gains.float()


def render_gains(
    config: INRConfig,
    input_size: int,
    height: int,
    width: int,
    box: tuple[float, float, float, float] = (-1.0, -1.0, 1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(row gains, column gains) for a height x width render of `box`; None when no feature
    changes (the native grid, or an upscale of a band-limited INR): the raw function."""
    native_pixel = 2.0 / input_size
    rows = axis_gains(config, native_pixel, (box[2] - box[0]) / height)
    cols = axis_gains(config, native_pixel, (box[3] - box[1]) / width)
    if rows is None and cols is None:
        return None
    ones = torch.ones(config.fourier_count)
    return (ones if rows is None else rows, ones if cols is None else cols)


def highest_frequency_ratio(config: INRConfig, input_size: int) -> float:
    """The top Fourier frequency as a fraction of the input grid's Nyquist rate."""
    if config.fourier_count == 0:
        return 0.0
    return float(fourier_frequencies(config).max()) / (math.pi * input_size / 2.0)
